#!/usr/bin/env bash
# Dataset benchmark: lifeboat and restic side by side, on a warm page
# cache and local repositories. Not part of CI (it takes minutes and its
# figures depend on the machine). Writes docs/bench/results.{md,json,svg}.
#
#   bash scripts/bench.sh                 # real tree + mixed, ext4, bbolt
#   SIZE=256 DATASETS=mixed bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
missing=()
need restic || missing+=(restic)
[ -x /usr/bin/time ] || missing+=(time)
need mkfs.ext4 || missing+=(e2fsprogs)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq && $sudo apt-get install -y -qq "${missing[@]}"
fi

cargo build --release -p lifeboat-cli -p lifeboat-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

WORK=${WORK:-/var/tmp/lifeboat-bench}
mkdir -p "$WORK"
# The real tree: a copy of the Rust toolchain, the cargo registry and
# /usr/share (about 2 GB, 105k files on the development machine), so that
# nothing changes it between runs.
TREE=${TREE:-$WORK/tree}
if [ ! -d "$TREE" ]; then
  mkdir -p "$TREE"
  cp -a "$(readlink -f "$HOME/.rustup/toolchains/stable-x86_64-unknown-linux-gnu")" "$TREE/toolchain"
  [ -d "$HOME/.cargo/registry" ] && cp -a "$HOME/.cargo/registry" "$TREE/cargo-registry"
  cp -a /usr/share "$TREE/usr-share"
fi

mkdir -p docs/bench
"$target_dir/release/lifeboat-bench" \
  --work "$WORK/run" \
  --tree "$TREE" \
  --datasets "${DATASETS:-mixed,ext4,bbolt}" \
  --size "${SIZE:-1024}" \
  --runs "${RUNS:-3}" \
  --lifeboat "$target_dir/release/lifeboat" \
  --out docs/bench/results
