#!/usr/bin/env bash
# Run the tested blocks of docs/runbook.md against a simulated disaster:
#
#   1. a repository, two volume folders and a real etcd member with keys
#      (some overwritten, some deleted) are backed up;
#   2. the runbook's scheduled-drill blocks (runbook:drill) run and must pass;
#   3. full loss: etcd is killed, its data directory and both volume folders
#      are deleted; only the repository is kept;
#   4. the runbook's full-restore blocks (runbook:full-restore) run, in order,
#      as written, with the variables set for this machine;
#   5. every etcd key and value, and every file (content, mode, size, mtime,
#      symlink target), must be back; the restored etcd's revision must not
#      be lower than the one recorded at backup;
#   6. one volume is damaged again and the single-volume blocks
#      (runbook:single-pv) must bring it back.
#
# Needs etcd and etcdctl (scripts/setup.sh installs etcd-server and
# etcd-client) and python3, and root. Uses target/debug/lifeboat (built if missing), or
# LIFEBOAT_BIN. KEEP=1 keeps the work folder.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
runbook="$root/docs/runbook.md"
bin=${LIFEBOAT_BIN:-$root/target/debug/lifeboat}
if [[ ! -x $bin ]]; then
  (cd "$root" && nice -n 19 env CARGO_INCREMENTAL=0 cargo build -p lifeboat-cli)
fi
# The runbook restores volumes back into / (where they were), which sets the
# metadata of the folders above them: that is root's work.
if [[ $(id -u) != 0 ]]; then
  echo "runbook-test: must run as root (the runbook restores into /)" >&2
  exit 1
fi
for tool in etcd etcdctl python3; do
  command -v "$tool" >/dev/null || { echo "runbook-test: $tool is not installed (scripts/setup.sh)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/lifeboat-runbook.XXXXXX)
pids=()
cleanup() {
  local rc=$?
  for p in "${pids[@]}"; do
    kill -- "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 || $rc != 0 ]]; then
    echo "runbook-test: work folder kept: $work" >&2
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT

say() { printf '\n== runbook-test: %s\n' "$*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The blocks of one section, concatenated in order.
blocks() {
  awk -v tag="$1" '
    $0 == "```bash runbook:" tag { on = 1; next }
    on && /^```/ { on = 0; print ""; next }
    on { print }
  ' "$runbook"
}

# Run a section's blocks in a new process group (so that what they start in
# the background, like etcd, is stopped at the end), with the runbook's
# variables from this environment.
run_section() {
  local code
  code=$(blocks "$1")
  [[ -n $code ]] || { echo "runbook-test: no blocks tagged runbook:$1 in $runbook" >&2; exit 1; }
  say "running the runbook's $1 blocks"
  setsid bash -euo pipefail -c "set -x; $code" &
  local pid=$!
  pids+=("-$pid")
  wait "$pid"
}

# --- the cluster before the disaster ----------------------------------------
mkdir -p "$work/bin"
ln -s "$bin" "$work/bin/lifeboat"
export PATH="$work/bin:$PATH"
export XDG_CACHE_HOME="$work/cache"
export LIFEBOAT_REPOSITORY="$work/repo"
printf 'runbook-test-password' >"$work/password"
export LIFEBOAT_PASSWORD_FILE="$work/password"
unset LIFEBOAT_PASSWORD LIFEBOAT_PASSWORD_COMMAND
export SCRATCH="$work/scratch"
export MEMBER_NAME=node-1
export MEMBER_DATA_DIR="$work/etcd-data"
export MEMBER_PEER_URL="http://127.0.0.1:$(free_port)"
export MEMBER_CLIENT_URL="http://127.0.0.1:$(free_port)"
export MEMBER_LOG="$work/etcd.log"
export RESTORE_ROOT=/
export ETCDCTL_API=3
pv_a="$work/pv/app-data"
pv_b="$work/pv/db"
export PV_PATHS="$pv_a $pv_b"
export LIFEBOAT_POLICY="$work/lifeboat.toml"
cat >"$LIFEBOAT_POLICY" <<'EOF'
default_tier = "tier3"
[tiers.tier0]
rpo = "1h"
rto = "15m"
drill_every = "7d"
[tiers.tier3]
rpo = "24h"
rto = "24h"
drill_every = "90d"
[[sources]]
name = "etcd"
tags = ["etcd-snapshot"]
tier = "tier0"
EOF

lifeboat init --kdf-memory-kib 1024 --kdf-iterations 1 >/dev/null

say "starting etcd and writing keys"
etcd --name "$MEMBER_NAME" --data-dir "$MEMBER_DATA_DIR" \
  --listen-client-urls "$MEMBER_CLIENT_URL" --advertise-client-urls "$MEMBER_CLIENT_URL" \
  --listen-peer-urls "$MEMBER_PEER_URL" --initial-advertise-peer-urls "$MEMBER_PEER_URL" \
  --initial-cluster "$MEMBER_NAME=$MEMBER_PEER_URL" >"$work/etcd-original.log" 2>&1 &
etcd_pid=$!
pids+=("$etcd_pid")
ctl() { etcdctl --endpoints "$MEMBER_CLIENT_URL" "$@"; }
for _ in $(seq 1 120); do ctl endpoint health >/dev/null 2>&1 && break; sleep 0.5; done
ctl endpoint health >/dev/null
# 300 keys in 3 transactions (one put each would wait for 300 fsyncs), then
# 40 overwritten and 21 deleted, so that there is history.
txn() { { printf '\n'; cat; printf '\n\n'; } | ctl txn >/dev/null; }
for batch in 0 1 2; do
  for i in $(seq $((batch * 100 + 1)) $((batch * 100 + 100))); do
    printf 'put /registry/pods/ns-%d/pod-%04d %s\n' $((i % 7)) "$i" "$(head -c 96 /dev/urandom | base64 -w0)"
  done | txn
done
for i in $(seq 1 40); do printf 'put /registry/pods/ns-%d/pod-%04d rewritten-%d\n' $((i % 7)) "$i" "$i"; done | txn
for i in $(seq 250 270); do printf 'del /registry/pods/ns-%d/pod-%04d\n' $((i % 7)) "$i"; done | txn
ctl put "/registry/secrets/kube-system/with space" "value with \"quotes\" and
a line feed" >/dev/null

say "writing the volume folders"
mkdir -p "$pv_a/static/css" "$pv_a/uploads/2026/12" "$pv_b"
head -c 3000000 /dev/urandom >"$pv_a/uploads/2026/12/photo.bin"
printf 'body { color: red }\n' >"$pv_a/static/css/site.css"
: >"$pv_a/static/empty"
ln -s static/css/site.css "$pv_a/current.css"
printf 'secret\n' >"$pv_a/config.yaml"
chmod 600 "$pv_a/config.yaml"
chmod 750 "$pv_a/uploads"
{ head -c 65536 /dev/urandom; head -c 4194304 /dev/zero; head -c 4096 /dev/urandom; } >"$pv_b/table.ibd"
printf 'log line %d\n' $(seq 1 5000) >"$pv_b/wal.log"
touch -d '2026-01-02 03:04:05.123456789' "$pv_b/wal.log"

say "backing up"
for pv in $PV_PATHS; do lifeboat backup -q "$pv"; done
lifeboat etcd backup -q --endpoint "$MEMBER_CLIENT_URL" --node-name "$MEMBER_NAME"
recorded_revision=$(lifeboat --json snapshots | python3 -c '
import json, sys
s = [x for x in json.load(sys.stdin) if x["source"] == "etcd"]
print(s[-1]["source_meta"]["revision"])')

# What must come back.
ctl get "" --prefix >"$work/expected-etcd.txt"
manifest() {
  (
    cd "$1"
    find . -printf '%p %y %m\n' | sort
    find . -type f -printf '%p %s %T@\n' | sort
    find . -type l -printf '%p -> %l\n' | sort
    find . -type f -exec sha256sum {} + | sort
  )
}
manifest "$pv_a" >"$work/expected-a.txt"
manifest "$pv_b" >"$work/expected-b.txt"
[[ $(grep -c . "$work/expected-etcd.txt") -gt 500 ]]

# --- a scheduled drill, as the runbook says ---------------------------------
run_section drill
lifeboat --json drills | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert len(d) == 3 and all(x["ok"] for x in d), d
print("runbook-test: 3 drills recorded, all passed", file=sys.stderr)'
grep -q '^lifeboat_source_stale{source="etcd"' "$SCRATCH/lifeboat.prom"

# --- the disaster -------------------------------------------------------------
say "full loss: etcd killed, its data directory and the volume folders deleted"
kill "$etcd_pid"
wait "$etcd_pid" 2>/dev/null || true
rm -rf "$MEMBER_DATA_DIR" "$pv_a" "$pv_b" "$SCRATCH"
[[ ! -e $MEMBER_DATA_DIR && ! -e $pv_a && ! -e $pv_b ]]

run_section full-restore

say "checking that every key and file is back"
ctl get "" --prefix >"$work/restored-etcd.txt"
diff -u "$work/expected-etcd.txt" "$work/restored-etcd.txt"
served_revision=$(ctl endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
if ((served_revision < recorded_revision)); then
  echo "runbook-test: etcd serves revision $served_revision, below the $recorded_revision recorded" >&2
  exit 1
fi
diff -u "$work/expected-a.txt" <(manifest "$pv_a")
diff -u "$work/expected-b.txt" <(manifest "$pv_b")
echo "runbook-test: $(grep -c . "$work/expected-etcd.txt") etcd lines and $(grep -c . "$work/expected-a.txt") + $(grep -c . "$work/expected-b.txt") manifest lines match" >&2

# --- one volume lost again ----------------------------------------------------
say "single volume: a file deleted and one overwritten in $pv_b"
rm "$pv_b/wal.log"
printf 'garbage' >"$pv_b/table.ibd"
export PV_PATH="$pv_b"
run_section single-pv
diff -u "$work/expected-b.txt" <(manifest "$pv_b")

say "passed"
