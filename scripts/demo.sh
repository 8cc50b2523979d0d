#!/usr/bin/env bash
# Build Lifeboat and run a backup and restore round trip in a temporary
# local repository, printing each step.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building lifeboat (release)"
cargo build --release -p lifeboat-cli --quiet
LB="$PWD/target/release/lifeboat"

WORK="$(mktemp -d -t lifeboat-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export LIFEBOAT_REPOSITORY="$WORK/repo"
export LIFEBOAT_PASSWORD="demo-password-$RANDOM"
SRC="$PWD/crates"

run() { echo; echo "\$ lifeboat $*"; "$LB" "$@"; }

echo "==> demo repository: $LIFEBOAT_REPOSITORY"
run init
run backup "$SRC" --tag demo
echo "-- demo: changing one file and backing up again (only new chunks are stored)"
cp -r "$SRC" "$WORK/src2"
echo "a change" >> "$WORK/src2/core/src/lib.rs"
run backup "$SRC" --tag demo
head -c 64000000 /dev/urandom > "$WORK/stream.bin"
echo; echo "\$ lifeboat backup --stdin --stdin-filename stream.bin < stream.bin (61 MiB)"
"$LB" backup --stdin --stdin-filename stream.bin < "$WORK/stream.bin"
run snapshots
run restore latest --target "$WORK/restored-stream"
cmp "$WORK/stream.bin" "$WORK/restored-stream/stream.bin"
echo "-- stream restored byte-identical"
SNAP=$("$LB" snapshots --json --tag demo | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["short_id"])')
run restore "$SNAP" --target "$WORK/restored"
diff -r "$SRC" "$WORK/restored$SRC"
echo "-- file tree restored byte-identical: $SRC"
run stats
echo
echo "demo finished: backup, dedup, stdin stream and restore all verified"
