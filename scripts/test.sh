#!/usr/bin/env bash
# Install what the tests need, then run every test (unit, integration, doc).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need cargo-nextest; then
    echo "==> installing cargo-nextest"
    cargo install cargo-nextest --locked
fi
# setpriv (util-linux) lets the unreadable-file test run as an unprivileged user.
if ! need setpriv && need apt-get; then
    apt-get install -y -q util-linux >/dev/null || true
fi

cargo nextest run --workspace --all-targets --no-fail-fast
cargo test --workspace --doc
