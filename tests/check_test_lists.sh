#!/bin/sh
# check_test_lists.sh CTEST BUILD_DIR B2 [B2 ARGUMENTS...]: b2 runs the same tests as ctest.
# Compares the tests `ctest -N` lists in BUILD_DIR with the tests the Jamfiles of this source
# tree declare (`b2 -n --procpool-list-tests`, procpool.jam: one "procpool-test: NAME" a line),
# and fails, naming each test that only one of them runs.
set -u
ctest=$1 build=$2 b2=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
# What only CMake can test: its own package (installed, found with find_package, vendored with
# add_subdirectory, read through pkg-config), and this check.
cmake_only="package_static package_shared package_subdirectory package_pkgconfig
b2_and_ctest_run_the_same_tests"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$build" && "$ctest" -N) >"$tmp/ctest.out" 2>&1; then
    echo "FAIL: ctest -N failed in $build:"
    cat "$tmp/ctest.out"
    exit 1
fi
printf '%s\n' $cmake_only | sort >"$tmp/cmake_only"
sed -n 's/^ *Test *#[0-9]*: *//p' "$tmp/ctest.out" | sort -u | comm -23 - "$tmp/cmake_only" \
    >"$tmp/ctest"
# -n: b2 only reads the Jamfiles and plans the build; nothing is built.
if ! (cd "$root" && "$b2" -n -d0 --procpool-list-tests "$@") >"$tmp/b2.out" 2>&1; then
    echo "FAIL: b2 --procpool-list-tests failed in $root:"
    cat "$tmp/b2.out"
    exit 1
fi
sed -n 's/^procpool-test: //p' "$tmp/b2.out" | sort -u >"$tmp/b2"

status=0
if [ ! -s "$tmp/ctest" ] || [ ! -s "$tmp/b2" ]; then
    echo "FAIL: no tests listed (ctest: $(wc -l <"$tmp/ctest"), b2: $(wc -l <"$tmp/b2"))"
    status=1
fi
for name in $(comm -23 "$tmp/ctest" "$tmp/b2"); do
    echo "FAIL: only ctest runs $name"
    status=1
done
for name in $(comm -13 "$tmp/ctest" "$tmp/b2"); do
    echo "FAIL: only b2 runs $name"
    status=1
done
if [ "$status" -eq 0 ]; then
    echo "PASS: ctest and b2 run the same $(wc -l <"$tmp/b2") tests ($(echo $cmake_only | wc -w) CMake-only ones aside)"
fi
exit "$status"
