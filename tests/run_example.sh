#!/bin/sh
# run_example.sh BINARY: runs an example and compares its output with
# examples/expected/NAME.txt. Both build systems run the examples through this script.
set -u
bin=$1
name=$(basename "$bin")
root=$(cd "$(dirname "$0")/.." && pwd)
expected="$root/examples/expected/$name.txt"
set --
if [ "$name" = digest_tree ]; then
    set -- "$root/examples/expected/digest_data"
    # The expected digests are checked against sha512sum's, so that an expected file
    # regenerated from a wrong digest_tree fails too.
    sums=$(cd "$1" && while read -r sum size path; do
        printf '%s  %s\n' "$sum" "$path"
    done <"$expected" | sha512sum -c --quiet 2>&1)
    if [ $? -ne 0 ]; then
        printf '%s: sha512sum disagrees with %s:\n%s\n' "$name" "$expected" "$sums"
        exit 1
    fi
fi
# Examples of the "mpi" context run as a job of 3 ranks (as root, Open MPI wants consent).
case $name in
mpi_*)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    set -- "$bin" "$@"
    bin=mpiexec
    set -- -np 3 --oversubscribe --bind-to none "$@"
    ;;
esac
# timeout: an example that hangs fails instead of stalling the build.
out=$(timeout 60 "$bin" "$@" 2>&1)
status=$?
if [ $status -ne 0 ]; then
    printf '%s exited with status %s:\n%s\n' "$name" "$status" "$out"
    exit 1
fi
if [ "$out" != "$(cat "$expected")" ]; then
    printf '%s: the output differs from %s:\n' "$name" "$expected"
    printf '%s\n' "$out" | diff -u "$expected" -
    exit 1
fi
printf '%s: output as expected\n' "$name"
