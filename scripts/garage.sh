#!/usr/bin/env bash
# A 3-node Garage cluster (S3-compatible, replication factor 3) on loopback
# ports, for tests and benchmarks.
#
#   scripts/garage.sh install            install garage if missing (cargo install)
#   scripts/garage.sh start DIR [--watch PID]
#                                        start a cluster in DIR, create a bucket and a
#                                        key, print its environment (export lines);
#                                        with --watch, stop it when process PID ends
#   scripts/garage.sh env DIR            print the environment of a running cluster
#   scripts/garage.sh stop DIR           stop the cluster and delete DIR
#   scripts/garage.sh kill-node DIR N    kill node N (1-3) with SIGKILL
#   scripts/garage.sh start-node DIR N   start node N again
#
# The environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
# AWS_DEFAULT_REGION, AWS_ENDPOINT_URL (node 1's S3 port), and for the tests
# LIFEBOAT_TEST_GARAGE_DIR and LIFEBOAT_TEST_S3_BUCKET. Lifeboat then reaches
# the bucket as s3://lifeboat-test/PREFIX, restic as
# s3:$AWS_ENDPOINT_URL/lifeboat-test/PREFIX.
#
# GARAGE_BIN names the garage binary (default: garage on PATH, then
# ~/.cargo/bin/garage). GARAGE_VERSION is the version installed (2.5.0).
set -euo pipefail

GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}
BUCKET=lifeboat-test
REGION=garage
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")

die() { echo "garage.sh: $*" >&2; exit 1; }

find_garage() {
    if [[ -n "${GARAGE_BIN:-}" && -x "${GARAGE_BIN}" ]]; then echo "$GARAGE_BIN"; return 0; fi
    if command -v garage >/dev/null 2>&1; then command -v garage; return 0; fi
    if [[ -x "$HOME/.cargo/bin/garage" ]]; then echo "$HOME/.cargo/bin/garage"; return 0; fi
    return 1
}

install() {
    if g=$(find_garage); then
        echo "garage.sh: using $g ($("$g" --version 2>/dev/null | head -1))" >&2
        return 0
    fi
    echo "garage.sh: installing garage $GARAGE_VERSION with cargo (several minutes)" >&2
    # Its own target dir: a shared CARGO_TARGET_DIR would hold the build lock.
    # Only the features the tests use (LMDB metadata, the metrics the tests
    # count requests with): no SQLite build, no K2V API.
    env -u CARGO_TARGET_DIR cargo install garage --locked --version "$GARAGE_VERSION" \
        --no-default-features --features bundled-libs,lmdb,metrics >&2
    find_garage >/dev/null || die "garage is still not found after installing it"
}

hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# http_ok PORT PATH: whether GET http://127.0.0.1:PORT/PATH answers 200 (no curl needed).
http_ok() {
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$2" >&3
        read -r -t 5 line <&3 || exit 1
        [[ "$line" == *" 200 "* ]]
    ) 2>/dev/null
}

# A base port with 9 free ports after it.
pick_base() {
    for _ in $(seq 1 50); do
        local base=$((20000 + (RANDOM % 3000) * 10))
        local free=1
        for i in $(seq 0 8); do
            if port_busy $((base + i)); then free=0; break; fi
        done
        if [[ $free == 1 ]]; then echo "$base"; return 0; fi
    done
    die "no free ports found"
}

gcmd() { # gcmd DIR N args...: the garage CLI against node N
    local dir=$1 n=$2; shift 2
    "$G" -c "$dir/node$n/garage.toml" "$@"
}

start_node() {
    local dir=$1 n=$2
    local log="$dir/node$n/garage.log"
    # setsid: not in the caller's process group, so a test's Ctrl-C or
    # timeout kill does not take the cluster down half-way.
    RUST_LOG=${GARAGE_LOG:-warn} setsid "$G" -c "$dir/node$n/garage.toml" server \
        >>"$log" 2>&1 </dev/null &
    echo $! >"$dir/node$n/pid"
}

wait_for() { # wait_for SECONDS what command...
    local secs=$1 what=$2; shift 2
    for _ in $(seq 1 $((secs * 5))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.2
    done
    die "timed out waiting for $what"
}

start() {
    local dir=$1 watch=${2:-}
    G=$(find_garage) || { install; G=$(find_garage); }
    [[ -e "$dir/env" ]] && die "$dir already holds a cluster (stop it first)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # Leave nothing running if starting fails half-way.
    trap 'stop "$dir"' EXIT
    local base secret
    base=$(pick_base)
    secret=$(hex 32)
    echo "$base" >"$dir/base_port"
    for n in 1 2 3; do
        local rpc=$((base + (n - 1) * 3)) s3=$((base + (n - 1) * 3 + 1)) admin=$((base + (n - 1) * 3 + 2))
        mkdir -p "$dir/node$n/meta" "$dir/node$n/data"
        cat >"$dir/node$n/garage.toml" <<EOF
metadata_dir = "$dir/node$n/meta"
data_dir = "$dir/node$n/data"
db_engine = "lmdb"
replication_factor = 3
consistency_mode = "consistent"
compression_level = "none"
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "$REGION"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
metrics_token = "lifeboat-test-metrics"
EOF
        start_node "$dir" "$n"
    done
    for n in 1 2 3; do
        wait_for 60 "node $n" gcmd "$dir" "$n" status
    done
    local ids=()
    for n in 1 2 3; do
        ids+=("$(gcmd "$dir" "$n" node id -q 2>/dev/null | tail -1)")
    done
    wait_for 60 "node 2 to join" gcmd "$dir" 1 node connect "${ids[1]}"
    wait_for 60 "node 3 to join" gcmd "$dir" 1 node connect "${ids[2]}"
    local short=()
    for id in "${ids[@]}"; do short+=("${id:0:16}"); done
    gcmd "$dir" 1 layout assign -z dc1 -c 10G "${short[@]}" >/dev/null
    gcmd "$dir" 1 layout apply --version 1 >/dev/null
    local key_id="GK$(hex 12)" key_secret
    key_secret=$(hex 32)
    wait_for 60 "the key import" gcmd "$dir" 1 key import --yes -n lifeboat "$key_id" "$key_secret"
    wait_for 60 "the bucket" gcmd "$dir" 1 bucket create "$BUCKET"
    gcmd "$dir" 1 bucket allow --read --write --owner "$BUCKET" --key lifeboat >/dev/null
    local endpoint="http://127.0.0.1:$((base + 1))"
    cat >"$dir/env" <<EOF
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$key_secret
export AWS_REGION=$REGION
export AWS_DEFAULT_REGION=$REGION
export AWS_ENDPOINT_URL=$endpoint
export LIFEBOAT_TEST_GARAGE_DIR=$dir
export LIFEBOAT_TEST_S3_BUCKET=$BUCKET
EOF
    # Ready when an S3 request succeeds on every node.
    for n in 1 2 3; do
        wait_for 60 "S3 on node $n" http_ok $((base + (n - 1) * 3 + 2)) /health
    done
    if [[ -n "$watch" ]]; then
        # Stop the cluster when the process that asked for it is gone.
        setsid bash -c "while kill -0 $watch 2>/dev/null; do sleep 1; done; '$SELF' stop '$dir'" \
            >/dev/null 2>&1 </dev/null &
    fi
    trap - EXIT
    cat "$dir/env"
}

stop() {
    local dir=$1
    [[ -d "$dir" ]] || return 0
    for n in 1 2 3; do
        if [[ -f "$dir/node$n/pid" ]]; then
            kill "$(cat "$dir/node$n/pid")" 2>/dev/null || true
        fi
    done
    sleep 0.5
    for n in 1 2 3; do
        if [[ -f "$dir/node$n/pid" ]]; then
            kill -9 "$(cat "$dir/node$n/pid")" 2>/dev/null || true
        fi
    done
    rm -rf "$dir"
}

cmd=${1:-}
case "$cmd" in
install) install ;;
start)
    [[ $# -ge 2 ]] || die "usage: garage.sh start DIR [--watch PID]"
    watch=""
    if [[ "${3:-}" == "--watch" ]]; then watch=${4:?--watch needs a PID}; fi
    start "$2" "$watch"
    ;;
env)
    [[ -f "${2:-}/env" ]] || die "no cluster in ${2:-}"
    cat "$2/env"
    ;;
stop) stop "${2:?usage: garage.sh stop DIR}" ;;
kill-node)
    dir=${2:?usage: garage.sh kill-node DIR N}
    n=${3:?usage: garage.sh kill-node DIR N}
    kill -9 "$(cat "$dir/node$n/pid")"
    ;;
start-node)
    dir=${2:?usage: garage.sh start-node DIR N}
    n=${3:?usage: garage.sh start-node DIR N}
    G=$(find_garage) || die "garage not installed"
    start_node "$dir" "$n"
    base=$(cat "$dir/base_port")
    wait_for 60 "node $n" http_ok $((base + (n - 1) * 3 + 2)) /health
    ;;
*)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    [[ -z "$cmd" || "$cmd" == help || "$cmd" == -h ]] || exit 2
    ;;
esac
