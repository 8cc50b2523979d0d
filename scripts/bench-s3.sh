#!/usr/bin/env bash
# Lifeboat and restic against the same 3-node Garage cluster on loopback:
# first backup, unchanged second backup, full restore, check --read-data.
# Prints one line per step (wall time, CPU, peak RSS) and verifies both
# restores with diff -r. Results and discussion: docs/benchmarks.md ("Against Garage").
#
#   [BIG_FILES="a b"] scripts/bench-s3.sh SOURCE_DIR [LIFEBOAT_BINARY]
#
# With BIG_FILES, the listed files of SOURCE_DIR are also restored alone.
#
# Needs restic on PATH (apt-get install -y restic) and GNU time.
set -euo pipefail
SRC=$(cd "${1:?usage: bench-s3.sh SOURCE_DIR [LIFEBOAT_BINARY]}" && pwd)
LB=${2:-$(dirname "$0")/../target/release/lifeboat}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-bench-XXXXXX")
G=$WORK/garage
trap 'bash "$HERE/garage.sh" stop "$G"; rm -rf "$WORK"' EXIT
bash "$HERE/garage.sh" start "$G" >/dev/null
# shellcheck disable=SC1091
. "$G/env"
export LIFEBOAT_PASSWORD=bench-pw RESTIC_PASSWORD=bench-pw
export LIFEBOAT_CACHE_DIR=$WORK/lifeboat-cache RESTIC_CACHE_DIR=$WORK/restic-cache
LBR=s3://lifeboat-test/lifeboat
RR=s3:$AWS_ENDPOINT_URL/lifeboat-test/restic
t() { # t NAME command...: run, print wall/CPU/RSS
    local name=$1; shift
    if ! /usr/bin/time -f "$name wall=%e s user=%U s sys=%S s maxrss=%M KiB" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        echo "$name FAILED"; tail -5 "$WORK/$name.err"; return 1
    fi
    tail -1 "$WORK/$name.err"
}
"$LB" -r $LBR init >/dev/null
restic -r "$RR" init >/dev/null 2>&1
t lifeboat-backup-1 "$LB" -r $LBR -q backup "$SRC"
t restic-backup-1 restic -r "$RR" -q backup "$SRC"
t restic-backup-2 restic -r "$RR" -q backup "$SRC"
t lifeboat-backup-2 "$LB" -r $LBR -q backup "$SRC"
t lifeboat-restore "$LB" -r $LBR -q restore latest --target "$WORK/r-lifeboat"
t restic-restore restic -r "$RR" -q restore latest --target "$WORK/r-restic"
# The big files alone (BIG_FILES: space-separated names under SOURCE_DIR).
inc_lb=(); inc_r=()
for f in ${BIG_FILES:-}; do inc_lb+=(--include "$SRC/$f"); inc_r+=(--include "$SRC/$f"); done
if [[ -n ${BIG_FILES:-} ]]; then
    t lifeboat-restore-big "$LB" -r $LBR -q restore latest --target "$WORK/rb-lifeboat" "${inc_lb[@]}"
    t restic-restore-big restic -r "$RR" -q restore latest --target "$WORK/rb-restic" "${inc_r[@]}"
    for f in $BIG_FILES; do
        cmp "$SRC/$f" "$WORK/rb-lifeboat$SRC/$f" && cmp "$SRC/$f" "$WORK/rb-restic$SRC/$f"
    done && echo "big files restored identical by both"
fi
t lifeboat-check "$LB" -r $LBR -q check --read-data
t restic-check restic -r "$RR" -q check --read-data
diff -r "$SRC" "$WORK/r-lifeboat$SRC" >/dev/null && echo "lifeboat restore identical"
diff -r "$SRC" "$WORK/r-restic$SRC" >/dev/null && echo "restic restore identical"
