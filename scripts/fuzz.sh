#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ with Clang 16 under AddressSanitizer and
# UndefinedBehaviorSanitizer (build-fuzz), replays each one's committed seeds (ctest), then
# fuzzes each for a bounded time (FUZZ_SECONDS, 30 by default). .ci/run runs it after
# scripts/sanitize.sh. A crash, a leak, a sanitizer report or a timeout fails it, and the
# input that did it is left in build-fuzz/findings/<target>/ to add to fuzz/corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${FUZZ_SECONDS:-30}

bash scripts/setup.sh

echo "== fuzz: build (clang++-16, -fsanitize=fuzzer,address,undefined)"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++-16 -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPROCPOOL_SANITIZE=address,undefined,fuzzer-no-link -DPROCPOOL_BUILD_FUZZERS=ON \
    -DPROCPOOL_BUILD_TESTS=OFF -DPROCPOOL_BUILD_EXAMPLES=OFF -DPROCPOOL_BUILD_PERF=OFF \
    -DPROCPOOL_INSTALL=OFF -DPROCPOOL_WITH_MPI=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)"

export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0
export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-16/bin/llvm-symbolizer # reports name functions and lines
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== fuzz: the seed corpora"
(cd build-fuzz && ctest --output-on-failure --no-tests=error)

targets=$(grep -E '^[a-z_]+$' fuzz/targets.txt)
for t in $targets; do
    echo "== fuzz: $t for ${seconds} s"
    work=build-fuzz/corpus/$t findings=build-fuzz/findings/$t
    rm -rf "$findings"
    mkdir -p "$work" "$findings"
    # -timeout: an input that runs a second is a hang; -rss_limit_mb: one that grows without
    # bound is a finding too. New inputs go to the work corpus, never to the committed one.
    if ! build-fuzz/fuzz/"$t" -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$findings/" "$work" "fuzz/corpus/$t" \
        >"build-fuzz/$t.log" 2>&1; then
        tail -60 "build-fuzz/$t.log"
        echo "== fuzz: $t FAILED; the input is in $findings/"
        exit 1
    fi
    grep -E '^stat::number_of_executed_units|^#[0-9]+.*DONE' "build-fuzz/$t.log" | tail -2 || true
done
echo "== fuzz: passed"
