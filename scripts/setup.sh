#!/usr/bin/env bash
# Installs what ProcPool needs to build, test and benchmark on Debian bookworm.
# Boost 1.81 only comes as versioned packages there; an unversioned libboost-*-dev would pull
# 1.74 and clash, so every Boost package is named with its version.
set -euo pipefail
packages=(
  g++ cmake make python3 pkg-config
  libboost1.81-dev libboost-serialization1.81-dev libboost-test1.81-dev
  libboost-filesystem1.81-dev libboost-program-options1.81-dev libboost-json1.81-dev
  libboost1.81-tools-dev gnuplot-nox libssl-dev
  libboost-mpi1.81-dev openmpi-bin
  clang-16 libclang-rt-16-dev llvm-16 # scripts/fuzz.sh: libFuzzer, and llvm-symbolizer for reports
)
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
