#!/usr/bin/env bash
# Sets up, builds with CMake and with b2, and runs every test under both. The README's second
# quick-start command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

bash scripts/setup.sh # installs only the packages that are missing; no apt-get when none is

echo "== CMake build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure --no-tests=error)

echo "== b2 build and tests"
b2 -j"$jobs" -q -l 300 # -l: no action (test) may run longer than 300 s

echo "== procpool-perf smoke run (no thresholds: the machine is shared)"
# Bounded: a hang fails here, named, instead of stalling the run.
timeout 600 build/perf/procpool-perf --quick --repeat 1 --plot build/perf-smoke.png
test -s build/perf-smoke.png
