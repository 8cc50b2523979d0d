#!/usr/bin/env bash
# Stream backups on standard input, Lifeboat builds and restic side by side:
# 2 GiB of zeros through a pipe, 2 GB of random bytes as a regular file and
# through a pipe. Each backup goes into a new local repository; the figures
# are /usr/bin/time's wall/user/sys/peak-RSS-KiB/minor-faults of the backup
# process only (docs/benchmarks.md, "Streams").
#
# usage: scripts/bench-streams.sh WORKDIR RUNS NAME=BINARY...
#   e.g. scripts/bench-streams.sh /var/tmp/streams 2 \
#        before=/tmp/lifeboat-45386ad after=target/release/lifeboat restic=/usr/bin/restic
set -euo pipefail
W=$1 RUNS=$2
shift 2
mkdir -p "$W"
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
[[ -f $W/random2g ]] || head -c 2000000000 /dev/urandom >"$W/random2g"
for run in $(seq 1 "$RUNS"); do
    for case in zeros-pipe random-file random-pipe; do
        for tool in "$@"; do
            name=${tool%%=*} bin=${tool#*=}
            repo=$W/repo-$name
            rm -rf "$repo"
            "$bin" -r "$repo" init -q >/dev/null 2>&1
            sync
            T=(/usr/bin/time -f %e/%U/%S/%M/%R -o "$W/t.out" "$bin" -r "$repo" backup -q --stdin --stdin-filename)
            case $case in
            zeros-pipe) head -c 2G /dev/zero | "${T[@]}" z ;;
            random-file) "${T[@]}" r <"$W/random2g" ;;
            random-pipe) cat "$W/random2g" | "${T[@]}" r ;;
            esac
            echo "$case $name run$run: wall/user/sys/maxrssKB/minflt = $(cat "$W/t.out")"
            rm -rf "$repo"
        done
    done
done
