#!/usr/bin/env bash
# Crash-consistency trials (issue 18; docs/reliability.md, "Crash trials").
#
#   scripts/crash-trials.sh [TRIALS] [SEED]
#
# Each trial builds a small real tree and a repository with three snapshots
# of it, then runs a backup (even trials) or a prune (odd trials: forget the
# first snapshot, `prune --instant-delete --max-unused 0`) of the real
# `lifeboat` binary, which SIGKILLs itself at a random store request:
# `LIFEBOAT_FAULTS=kill_at=K` (the store's `testing` feature). K is drawn,
# from the trial's seed, out of the requests an uninterrupted run of the same
# operation on the same repository made (a traced run, undone before the
# trial). After the kill: `check --read-data` must pass, every snapshot that
# was complete before the kill (and one the killed backup may have finished)
# must restore byte-identical to its source tree, and after a killed backup
# the next backup must succeed. Prints one row per trial and a summary;
# exits 1 if any trial failed.
#
# Environment:
#   LIFEBOAT_BIN   the binary to test (default: build it with the testing
#                  feature: `cargo test -p lifeboat-cli --test prune_sigkill
#                  --no-run`, which makes target/debug/lifeboat read
#                  LIFEBOAT_FAULTS)
#   CRASH_WORK     scratch directory (default: a new one under $TMPDIR);
#                  a failed trial's directory is kept there
#   CRASH_KEEP=1   keep every trial's directory
set -euo pipefail

TRIALS=${1:-10}
SEED=${2:-$(date +%s)}
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${LIFEBOAT_BIN:-}" ]; then
    (cd "$ROOT" && nice -n 19 cargo test -q -p lifeboat-cli --test prune_sigkill --no-run) >&2
    LIFEBOAT_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/lifeboat"
fi
BIN=$LIFEBOAT_BIN
# A binary without the testing feature ignores LIFEBOAT_FAULTS, and no
# kill would ever happen: refuse it.
probe=$(LIFEBOAT_FAULTS=no_such_fault=1 "$BIN" -r /nonexistent/crash-trials snapshots 2>&1 || true)
if [[ $probe != *"unknown key"* ]]; then
    echo "crash-trials: $BIN does not read LIFEBOAT_FAULTS (built without the store's testing feature)" >&2
    exit 2
fi

WORK=${CRASH_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/crash-trials.XXXXXX")}
mkdir -p "$WORK"
PASSWORD="crash-trials-password"

# Reproducible random numbers: a 64-bit LCG in this shell (no subshells,
# whose draws would not advance it), seeded per trial, its output mixed
# (MurmurHash3's finaliser) so that low bits do not follow the seed's.
STATE=1
rnd() { # rnd N: REPLY = a number in [0, N)
    STATE=$((STATE * 6364136223846793005 + 1442695040888963407))
    local z=$((STATE ^ ((STATE >> 33) & 0x7fffffff)))
    z=$((z * -49064778989728563)) # 0xff51afd7ed558ccd
    z=$((z ^ ((z >> 33) & 0x7fffffff)))
    z=$((z * -4265267296055464877)) # 0xc4ceb9fe1a85ec53
    z=$((z ^ ((z >> 33) & 0x7fffffff)))
    REPLY=$(((z & 0x7fffffffffffffff) % $1))
}

# gen SEED BYTES: reproducible incompressible bytes.
gen() {
    openssl enc -aes-128-ctr -nosalt -pbkdf2 -iter 1 -pass "pass:$1" </dev/zero 2>/dev/null |
        head -c "$2" || true
}

# write_file PATH SEED: random or compressible content of a random size
# (some files above the chunker's maximum, so several chunks).
write_file() {
    local size kind
    rnd 8
    kind=$REPLY
    rnd 3000000
    case $kind in
        0) size=$((1000000 + REPLY / 2)) ;;
        1 | 2) size=$((REPLY % 4096)) ;;
        *) size=$((4096 + REPLY % 400000)) ;;
    esac
    rnd 3
    if [ "$REPLY" = 0 ]; then
        yes "line of $2 in a compressible file" | head -c "$size" >"$1" || true
    else
        gen "$2" "$size" >"$1"
    fi
}

make_tree() { # make_tree DIR SEED
    local d i
    for d in a b c/d; do
        mkdir -p "$1/$d"
        for i in 0 1 2 3 4 5 6; do
            write_file "$1/$d/f$i" "$2-$d-$i"
        done
    done
}

change_tree() { # change_tree DIR SEED: rewrite three files, add two, remove one
    local dirs=(a b c/d) i d
    for i in 0 1 2; do
        rnd 3
        d=${dirs[$REPLY]}
        rnd 7
        write_file "$1/$d/f$REPLY" "$2-rw-$i"
    done
    write_file "$1/a/new-$2" "$2-new-a"
    write_file "$1/c/d/new-$2" "$2-new-c"
    rnd 7
    rm -f "$1/b/f$REPLY"
}

lb() { "$BIN" "$@"; }

snapshot_id() { # the snapshot id in a backup's --json summary on stdin
    grep -o '"snapshot_id":"[0-9a-f]*"' | tail -n1 | cut -d'"' -f4
}

# restores_as ID SRCDIR TRIALDIR: restore ID and compare with SRCDIR.
restores_as() {
    local target="$3/restore"
    rm -rf "$target"
    lb restore "$1" --target "$target" >/dev/null 2>>"$3/log" &&
        diff -r "$2" "$target$(realpath "$3")/src" >>"$3/log" 2>&1
    local rc=$?
    rm -rf "$target"
    return $rc
}

# Kill point: r12/25 is the 12th of 25 requests, w3/9 the 3rd of 9 writes,
# then the request it died at.
printf '%-5s %-6s %-10s %-36s %-6s %-5s %s\n' trial op seed "kill point" check lost next
FAILED=0
KILLED=0
CHECK_FAILS=0
LOST=0
CHECKED_SNAPSHOTS=0
START=$(date +%s)
for ((t = 1; t <= TRIALS; t++)); do
    tseed=$((SEED + t))
    STATE=$tseed
    T="$WORK/t$t"
    rm -rf "$T"
    mkdir -p "$T/ver"
    T=$(realpath "$T")
    export LIFEBOAT_REPOSITORY="$T/repo" LIFEBOAT_PASSWORD="$PASSWORD" LIFEBOAT_CACHE_DIR="$T/cache"
    unset LIFEBOAT_FAULTS
    : >"$T/log"
    fail=""

    lb init --kdf-memory-kib 1024 --kdf-iterations 1 --pack-size 1 >>"$T/log" 2>&1
    make_tree "$T/src" "$tseed"
    committed=()
    for b in 1 2 3; do
        [ "$b" = 1 ] || change_tree "$T/src" "$tseed-$b"
        id=$(lb --json backup "$T/src" 2>>"$T/log" | snapshot_id)
        cp -a "$T/src" "$T/ver/$id"
        committed+=("$id")
    done

    if ((t % 2 == 0)); then
        op=backup
        change_tree "$T/src" "$tseed-4"
        cmd=(--json backup "$T/src")
    else
        op=prune
        lb forget "${committed[0]}" >>"$T/log" 2>&1
        rm -rf "$T/ver/${committed[0]}"
        committed=("${committed[@]:1}")
        cmd=(prune --instant-delete --max-unused 0)
    fi

    # Count every request, or only writes (puts, creates, deletes).
    rnd 2
    if [ "$REPLY" = 0 ]; then kill_on=requests; else kill_on=writes; fi
    # The uninterrupted run, traced, then undone: how many requests it makes.
    cp -a "$T/repo" "$T/repo.before"
    cp -a "$T/cache" "$T/cache.before"
    LIFEBOAT_FAULTS="trace=$T/reference.trace" lb "${cmd[@]}" >>"$T/log" 2>&1
    if [ "$kill_on" = requests ]; then
        total=$(wc -l <"$T/reference.trace")
    else
        total=$(tail -n1 "$T/reference.trace" | cut -d' ' -f2)
    fi
    rm -rf "$T/repo" "$T/cache"
    mv "$T/repo.before" "$T/repo"
    mv "$T/cache.before" "$T/cache"

    rnd "$total"
    at=$((1 + REPLY))
    set +e
    LIFEBOAT_FAULTS="kill_at=$at,kill_on=$kill_on,trace=$T/kill.trace" lb "${cmd[@]}" >"$T/killed.out" 2>>"$T/log"
    rc=$?
    set -e
    if [ "$rc" = 137 ]; then
        KILLED=$((KILLED + 1))
        what=$(tail -n1 "$T/kill.trace" | awk '{print $3, substr($4, 1, 16)}')
        point="${kill_on:0:1}$at/$total $what"
    else
        point="${kill_on:0:1}$at/$total not killed (exit $rc)"
        fail="$fail not-killed"
    fi

    # A backup killed after its snapshot was written: that one must be
    # whole too.
    if [ "$op" = backup ]; then
        for id in $(lb --json snapshots 2>>"$T/log" | grep -o '"id":"[0-9a-f]*"' | cut -d'"' -f4); do
            case " ${committed[*]} " in
                *" $id "*) ;;
                *) cp -a "$T/src" "$T/ver/$id" && committed+=("$id") ;;
            esac
        done
    fi

    if lb check --read-data >>"$T/log" 2>&1; then
        check=ok
    else
        check="FAIL"
        CHECK_FAILS=$((CHECK_FAILS + 1))
        fail="$fail check"
    fi
    lost=0
    for id in "${committed[@]}"; do
        CHECKED_SNAPSHOTS=$((CHECKED_SNAPSHOTS + 1))
        if ! restores_as "$id" "$T/ver/$id" "$T"; then
            lost=$((lost + 1))
            echo "snapshot $id does not restore as it was backed up" >>"$T/log"
        fi
    done
    LOST=$((LOST + lost))
    [ "$lost" = 0 ] || fail="$fail lost"

    next=-
    if [ "$op" = backup ]; then
        if lb --json backup "$T/src" >"$T/next.out" 2>>"$T/log"; then
            next=ok
        else
            next=FAIL
            fail="$fail next-backup"
        fi
    fi

    printf '%-5s %-6s %-10s %-36s %-6s %-5s %s\n' "$t" "$op" "$tseed" "$point" "$check" "$lost" "$next"
    if [ -n "$fail" ]; then
        FAILED=$((FAILED + 1))
        echo "  trial $t failed:$fail (kept: $T, log: $T/log)"
    elif [ "${CRASH_KEEP:-0}" != 1 ]; then
        rm -rf "$T"
    fi
done
ELAPSED=$(($(date +%s) - START))

echo
echo "trials: $TRIALS (seed $SEED), killed: $KILLED, check failures: $CHECK_FAILS," \
    "committed snapshots restored: $((CHECKED_SNAPSHOTS - LOST)) of $CHECKED_SNAPSHOTS," \
    "lost: $LOST, failed trials: $FAILED, time: ${ELAPSED}s"
if [ "$FAILED" = 0 ] && [ -z "${CRASH_WORK:-}" ] && [ "${CRASH_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
fi
[ "$FAILED" = 0 ]
