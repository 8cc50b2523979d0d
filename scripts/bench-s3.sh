#!/usr/bin/env bash
# Lifeboat and restic against the same 3-node Garage cluster on loopback:
# first backup, unchanged second backup, full restore, check --read-data,
# and the tree as one tar on standard input (backup, then dump).
# Prints one line per step (wall time, CPU, peak RSS, the Garage cluster's
# CPU in that step, and Lifeboat's requests by kind) and verifies both
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
# Where the restores go (RESTORE_DIR, default the work folder). On an ext4
# without a journal, as on the benchmark VM, creating files soon after many
# were deleted makes the kernel scan for inodes it may reuse
# (recently_deleted), which took 12-18 s of system time per restore there;
# a tmpfs such as /dev/shm leaves that out, for both tools alike.
RESTORE=$(mktemp -d "${RESTORE_DIR:-$WORK}/restores-XXXXXX")
trap 'bash "$HERE/garage.sh" stop "$G"; rm -rf "$WORK" "$RESTORE"' EXIT
LBR=s3://lifeboat-test/lifeboat
RR=s3:$AWS_ENDPOINT_URL/lifeboat-test/restic
# CPU seconds (user + system) the cluster's garage processes have used so
# far: the server's share of each step, on the same cores as the client.
garage_cpu() {
    local tick total=0 pid
    tick=$(getconf CLK_TCK)
    for pid in $(pgrep -x garage); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$total $tick"
}
t() { # t NAME command...: run, print wall/CPU/RSS, and the cluster's CPU
    local name=$1 before after; shift
    before=$(garage_cpu)
    if ! /usr/bin/time -f "$name wall=%e s user=%U s sys=%S s maxrss=%M KiB" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.err"; then
        echo "$name FAILED"; tail -5 "$WORK/$name.err"; return 1
    fi
    after=$(garage_cpu)
    echo "$(tail -1 "$WORK/$name.err") garage_cpu=$(awk -v a="$after" -v b="$before" \
        'BEGIN { split(a, x, " "); split(b, y, " "); printf "%.2f", (x[1] - y[1]) / x[2] }') s$(requests "$name")"
}
# Lifeboat's requests in a step, from LIFEBOAT_STORE_STATS (one JSON line
# per store it opened): GETs (whole and ranged), HEADs, LISTs, PUTs,
# DELETEs, and bytes read and written.
requests() {
    local f="$WORK/$1.stats"
    [[ -s $f ]] || return 0
    python3 - "$f" <<'PY'
import json, sys
t = {}
for line in open(sys.argv[1]):
    for k, v in json.loads(line).items():
        if isinstance(v, int):
            t[k] = t.get(k, 0) + v
print(" requests: get=%d range=%d head=%d list=%d put=%d delete=%d read=%.1fMB written=%.1fMB" % (
    t.get("get", 0), t.get("get_range", 0), t.get("head", 0), t.get("list", 0), t.get("put", 0),
    t.get("delete", 0), (t.get("get_bytes", 0) + t.get("range_bytes", 0)) / 1e6,
    t.get("bytes_written", 0) / 1e6), end="")
PY
}
# lb NAME args...: Lifeboat, timed, with its request counters kept.
lb() {
    local name=$1; shift
    LIFEBOAT_STORE_STATS="$WORK/$name.stats" t "$name" "$LB" -r $LBR -q "$@"
}
"$LB" -r $LBR init >/dev/null
restic -r "$RR" init >/dev/null 2>&1
lb lifeboat-backup-1 backup "$SRC"
t restic-backup-1 restic -r "$RR" -q backup "$SRC"
t restic-backup-2 restic -r "$RR" -q backup "$SRC"
lb lifeboat-backup-2 backup "$SRC"
lb lifeboat-restore restore latest --target "$RESTORE/r-lifeboat"
t restic-restore restic -r "$RR" -q restore latest --target "$RESTORE/r-restic"
# The big files alone (BIG_FILES: space-separated names under SOURCE_DIR).
inc_lb=(); inc_r=()
for f in ${BIG_FILES:-}; do inc_lb+=(--include "$SRC/$f"); inc_r+=(--include "$SRC/$f"); done
if [[ -n ${BIG_FILES:-} ]]; then
    lb lifeboat-restore-big restore latest --target "$RESTORE/rb-lifeboat" "${inc_lb[@]}"
    t restic-restore-big restic -r "$RR" -q restore latest --target "$RESTORE/rb-restic" "${inc_r[@]}"
    for f in $BIG_FILES; do
        cmp "$SRC/$f" "$RESTORE/rb-lifeboat$SRC/$f" && cmp "$SRC/$f" "$RESTORE/rb-restic$SRC/$f"
    done && echo "big files restored identical by both"
fi
lb lifeboat-check check --read-data
t restic-check restic -r "$RR" -q check --read-data
# A stream: the tree as one tar on standard input (made once, beforehand,
# so that both tools read the same bytes from the page cache), then
# written back out (lifeboat dump / restic dump).
tar cf "$WORK/stream.tar" -C "$SRC" .
lb lifeboat-stdin backup --stdin --stdin-filename stream.tar <"$WORK/stream.tar"
t restic-stdin restic -r "$RR" -q backup --stdin --stdin-filename stream.tar <"$WORK/stream.tar"
# (t keeps a step's standard output in $WORK/NAME.out.)
lb lifeboat-stdin-dump dump latest stream.tar
t restic-stdin-dump restic -r "$RR" -q dump latest stream.tar
cmp "$WORK/stream.tar" "$WORK/lifeboat-stdin-dump.out" &&
    cmp "$WORK/stream.tar" "$WORK/restic-stdin-dump.out" && echo "streams dumped identical by both"
rm -f "$WORK/stream.tar" "$WORK"/*-stdin-dump.out
diff -r "$SRC" "$RESTORE/r-lifeboat$SRC" >/dev/null && echo "lifeboat restore identical"
diff -r "$SRC" "$RESTORE/r-restic$SRC" >/dev/null && echo "restic restore identical"
