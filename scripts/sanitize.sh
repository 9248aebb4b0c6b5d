#!/usr/bin/env bash
# Builds the library, the tests and the examples under AddressSanitizer with
# UndefinedBehaviorSanitizer (build-asan), then under ThreadSanitizer (build-tsan), and runs the
# ctest suite in each. .ci/run runs it after scripts/test.sh; `scripts/sanitize.sh asan` (or
# tsan) runs one. docs/testing.md says what runs where and why.
#
# Every sanitized process writes its reports to a file of its own (log_path), so a report in a
# worker, whose exit the test may have taken as a lost worker, still fails the stage: the stage
# fails when any report file exists, whatever ctest said.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)
which=${1:-all}

bash scripts/setup.sh

# Left out under sanitizers, each for its reason:
#  - package_*: they build and install the library again, outside this build's flags, to check
#    the packaging (scripts/test.sh runs them).
#  - b2_and_ctest_run_the_same_tests: it compares this build's test list with b2's.
excluded='^(package_|b2_and_ctest_run_the_same_tests$)'

# Common to both: a deliberate crash in a test (a task that dereferences null, aborts, or is
# killed) must stay the signal it is, for the pool to report it as one, so the sanitizers leave
# those signals alone; what they are for is finding the bugs nobody meant.
signals=handle_segv=0:handle_sigbus=0:handle_sigfpe=0:handle_sigill=0:handle_abort=0

run_stage() {
    local name=$1 sanitize=$2
    local dir=build-$name reports=$root/build-$name/sanitizer-reports
    echo "== $name: build (-fsanitize=$sanitize)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROCPOOL_SANITIZE="$sanitize" \
        -DPROCPOOL_BUILD_PERF=OFF -DPROCPOOL_INSTALL=OFF >/dev/null
    cmake --build "$dir" -j"$jobs"
    rm -rf "$reports"
    mkdir -p "$reports"
    echo "== $name: tests"
    local status=0
    (cd "$dir" && ctest --output-on-failure --no-tests=error -E "$excluded") || status=$?
    if compgen -G "$reports/*" >/dev/null; then
        echo "== $name: sanitizer reports:"
        for f in "$reports"/*; do
            echo "--- $f"
            cat "$f"
        done
        status=1
    fi
    if [ "$status" -ne 0 ]; then
        echo "== $name: FAILED"
        return 1
    fi
    echo "== $name: passed, no report"
}

supp=$root/tests/sanitizers
if [ "$which" = all ] || [ "$which" = asan ]; then
    ASAN_OPTIONS="$signals:detect_leaks=1:detect_stack_use_after_return=1:strict_init_order=1:log_path=$root/build-asan/sanitizer-reports/asan" \
    LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$root/build-asan/sanitizer-reports/ubsan" \
        run_stage asan address,undefined
fi
if [ "$which" = all ] || [ "$which" = tsan ]; then
    TSAN_OPTIONS="$signals:halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$root/build-tsan/sanitizer-reports/tsan" \
        run_stage tsan thread
fi
