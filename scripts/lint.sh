#!/usr/bin/env bash
# Structural checks that clippy cannot make; .ci/run runs them with the gates.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

echo "==> no two files of a crate import each other"
python3 scripts/module-cycles.py || fail=1

echo "==> the facade crate pulls in no argument parser, prompt or terminal crate"
if cargo tree -q -p lifeboat -e normal --prefix none | grep -E '^(clap|clap_complete|clap_mangen|rpassword|indicatif) '; then
    echo "lint: the lifeboat facade depends on the crates above" >&2
    fail=1
fi

echo "==> test machinery (fault injection, fail points) stays out of the shipped binaries"
for bin in lifeboat-cli lifeboat-mover; do
    if cargo tree -q -p "$bin" -e normal,features | grep -F 'feature "testing"'; then
        echo "lint: a normal build of $bin turns on a testing feature" >&2
        fail=1
    fi
done

exit "$fail"
