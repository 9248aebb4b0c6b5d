#!/usr/bin/env bash
# Builds the library, the tests and the examples under AddressSanitizer with
# UndefinedBehaviorSanitizer (build-asan), then under ThreadSanitizer (build-tsan), and runs the
# ctest suite in each. .ci/run runs it after scripts/test.sh; `scripts/sanitize.sh asan` (or
# tsan) runs one; SANITIZE_TESTS=REGEX runs only the ctest entries it matches. docs/testing.md
# says what runs where and why.
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
    # -O1 -g1: the sanitizers' own advice (fast enough to run, line numbers in reports), and it
    # compiles in about half the time of -O2 -g on this project's heavy translation units.
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPROCPOOL_SANITIZE="$sanitize" \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
        -DPROCPOOL_BUILD_PERF=OFF -DPROCPOOL_INSTALL=OFF >/dev/null
    cmake --build "$dir" -j"$jobs"
    rm -rf "$reports"
    mkdir -p "$reports"
    echo "== $name: tests"
    local status=0
    (cd "$dir" && ctest --output-on-failure --no-tests=error -E "$excluded" \
        ${SANITIZE_TESTS:+-R "$SANITIZE_TESTS"}) || status=$?
    # GCC 12's UndefinedBehaviorSanitizer, linked with AddressSanitizer, writes to stderr
    # whatever log_path says; a worker's stderr is its test's, which ctest keeps in
    # LastTest.log, passed or not: a report there fails the stage too.
    if grep -E "runtime error: |^==[0-9]+==ERROR: |^WARNING: ThreadSanitizer|^SUMMARY: [A-Za-z]+Sanitizer" \
        "$dir/Testing/Temporary/LastTest.log"; then
        echo "== $name: a sanitizer reported in a test's output (above; $dir/Testing/Temporary/LastTest.log)"
        status=1
    fi
    # LeakSanitizer's own note when a thread it would stop is already exiting (it checks the
    # process without that thread's registers): not a finding, so a file with nothing else in
    # it is set aside, and said.
    for f in "$reports"/*; do
        [ -e "$f" ] || continue
        if ! grep -qvE '^==[0-9]+==Unable to get registers from thread [0-9]+\.$|^$' "$f"; then
            echo "== $name: set aside (LeakSanitizer could not stop an exiting thread): $(cat "$f")"
            rm "$f"
        fi
    done
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
# Open MPI's leaks (tests/sanitizers/lsan.supp) can only be told from ours by the modules in
# their stacks: its components stay loaded (no dlclose at finalize), and the allocation stacks
# are unwound the slow way (fast_unwind_on_malloc=0), since Open MPI's libraries are built
# without frame pointers and the fast unwinder stops at their first frame, "<unknown module>".
export OMPI_MCA_mca_base_component_disable_dlclose=1
if [ "$which" = all ] || [ "$which" = asan ]; then
    ASAN_OPTIONS="$signals:detect_leaks=1:fast_unwind_on_malloc=0:detect_stack_use_after_return=1:strict_init_order=1:log_path=$root/build-asan/sanitizer-reports/asan" \
    LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        run_stage asan address,undefined
fi
if [ "$which" = all ] || [ "$which" = tsan ]; then
    TSAN_OPTIONS="$signals:halt_on_error=1:second_deadlock_stack=1:suppressions=$supp/tsan.supp:log_path=$root/build-tsan/sanitizer-reports/tsan" \
        run_stage tsan thread
fi
