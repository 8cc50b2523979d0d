#!/usr/bin/env bash
# CI's fuzz stage: installs cargo-fuzz if missing, builds every target, and
# runs each for FUZZ_SECONDS (default 30). Fails on a build error or crash.
set -euo pipefail
cd "$(dirname "$0")"
source ./env.sh

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
echo "==> building the fuzz targets (${FUZZ_CARGO[*]} build ${FUZZ_BUILD_FLAGS[*]})"
start=$(date +%s)
"${FUZZ_CARGO[@]}" build "${FUZZ_BUILD_FLAGS[@]}"
echo "built in $(($(date +%s) - start)) s"
echo "==> running each target for ${FUZZ_SECONDS:-30} s"
./run.sh "${FUZZ_SECONDS:-30}"
