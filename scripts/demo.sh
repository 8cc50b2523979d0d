#!/usr/bin/env bash
# Build Lifeboat and run a backup and restore round trip in a temporary
# local repository, printing each step and checking what it claims.
# DEMO_PROFILE=debug uses the dev build instead of a release build.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

case "${DEMO_PROFILE:-release}" in
release)
    echo "==> building lifeboat (release)"
    cargo build --release -p lifeboat-cli --quiet
    LB="$PWD/target/release/lifeboat"
    ;;
debug)
    echo "==> building lifeboat (debug)"
    cargo build -p lifeboat-cli --quiet
    LB="$PWD/target/debug/lifeboat"
    ;;
*)
    echo "DEMO_PROFILE must be release or debug" >&2
    exit 2
    ;;
esac

WORK="$(mktemp -d -t lifeboat-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
export LIFEBOAT_REPOSITORY="$WORK/repo"
export LIFEBOAT_PASSWORD="demo-password-$RANDOM"
# A copy of the sources, so that the demo can change a file of the tree it backs up.
SRC="$WORK/src"
cp -r "$PWD/crates" "$SRC"

run() { echo; echo "\$ lifeboat $*"; "$LB" "$@"; }

echo "==> demo repository: $LIFEBOAT_REPOSITORY"
run init
run backup "$SRC" --tag demo

echo
echo "-- demo: changing one file of $SRC and backing up again (only the change is stored)"
echo "// a change" >> "$SRC/core/src/lib.rs"
echo "\$ lifeboat backup $SRC --tag demo --json"
SECOND=$("$LB" backup "$SRC" --tag demo --json | tail -n 1)
python3 - "$SECOND" <<'EOF'
import json, sys
s = json.loads(sys.argv[1])
print(f"Files: {s['files_new']} new, {s['files_changed']} changed, "
      f"{s['files_unchanged']} unchanged; {s['dirs']} directories")
print(f"Added to the repository: {s['bytes_added']} B in "
      f"{s['data_blobs']} data and {s['tree_blobs']} tree blobs ({s['bytes_stored']} B stored)")
# One file changed: one file read again, a few KiB of new blobs (its chunk
# and the trees above it), nothing else.
assert s["files_changed"] == 1 and s["files_new"] == 0, s
assert s["data_blobs"] == 1, s
assert s["bytes_added"] < 256 * 1024, s
print("-- only the changed file and the directories above it were stored")
EOF

head -c 64000000 /dev/urandom > "$WORK/stream.bin"
echo; echo "\$ lifeboat backup --stdin --stdin-filename stream.bin < stream.bin (61 MiB)"
"$LB" backup --stdin --stdin-filename stream.bin < "$WORK/stream.bin"
run snapshots
run restore latest --target "$WORK/restored-stream"
cmp "$WORK/stream.bin" "$WORK/restored-stream/stream.bin"
echo "-- stream restored byte-identical"
# The newest demo snapshot: the tree as changed.
SNAP=$("$LB" snapshots --json --tag demo | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["short_id"])')
run restore "$SNAP" --target "$WORK/restored"
diff -r "$SRC" "$WORK/restored$SRC"
echo "-- file tree restored byte-identical, with the change: $SRC"
run stats
echo
echo "demo finished: backup, a second backup storing only the change, stdin stream and restore all verified"
