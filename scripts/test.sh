#!/usr/bin/env bash
# Install what the tests need, then run every test (unit, integration, doc).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

# The S3 tests run against a 3-node Garage cluster (scripts/garage.sh): install
# Garage when missing (cargo install, several minutes; kept in ~/.cargo/bin),
# start one cluster for the whole run, stop it on exit. LIFEBOAT_SKIP_S3=1
# skips them; without it, a failure to install or start Garage fails the run.
if [[ "${LIFEBOAT_SKIP_S3:-}" != 1 ]]; then
    bash scripts/garage.sh install
    garage_dir=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-garage-XXXXXX")
    rmdir "$garage_dir"
    trap 'bash scripts/garage.sh stop "$garage_dir"' EXIT
    bash scripts/garage.sh start "$garage_dir" --watch $$ >/dev/null
    export LIFEBOAT_TEST_GARAGE_DIR=$garage_dir
    echo "==> Garage cluster in $garage_dir"
fi

# Tests never skip themselves: one whose server or privilege is missing
# fails. What this machine cannot run is left out here by a filter instead,
# so nextest's summary counts it as skipped, never as passed (filters on test
# names, not binaries: a test left out with its whole binary is not counted):
# - the S3 tests (every test named `*s3*`: those of the `s3` and `garage`
#   binaries start with `s3_`) with LIFEBOAT_SKIP_S3=1;
# - the tests that need root (named `*_as_root`) when not run as root;
# - the etcd TLS tests (named `etcd_tls_*`) without `openssl`, which makes
#   their certificates;
# - the loop-device tests (named `block_device_*`) where, as root, no loop
#   device can be had (`losetup -f` fails: no loop driver, a container).
# CI runs as root with Garage, so there nothing is left out.
skip=()
if [[ "${LIFEBOAT_SKIP_S3:-}" == 1 ]]; then
    skip+=("test(/s3/)")
    echo "==> LIFEBOAT_SKIP_S3=1: the S3 tests are left out (counted as skipped)"
fi
if [[ "$(id -u)" != 0 ]]; then
    skip+=("test(/_as_root$/)")
    echo "==> not root: the tests that need root are left out (counted as skipped)"
fi
if ! command -v openssl >/dev/null 2>&1; then
    skip+=("test(/^etcd_tls_/)")
    echo "==> no openssl: the etcd TLS tests are left out (counted as skipped)"
fi
if [[ "$(id -u)" == 0 ]] && ! losetup -f >/dev/null 2>&1; then
    skip+=("test(/^block_device_/)")
    echo "==> no free loop device: the loop-device tests are left out (counted as skipped)"
fi
if ! docker info >/dev/null 2>&1; then
    skip+=("test(/docker_/)")
    echo "==> no Docker engine: the mover image tests are left out (counted as skipped)"
fi
filter=()
if ((${#skip[@]})); then
    joined=$(printf ' | %s' "${skip[@]}")
    filter=(-E "not (${joined:3})")
fi

cargo nextest run --workspace --all-targets --no-fail-fast "${filter[@]}"
cargo test --workspace --doc
