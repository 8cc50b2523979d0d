#!/usr/bin/env bash
# Build the lifeboat-mover image without pulling anything:
#
#   bash scripts/image.sh [TAG]     (default tag lifeboat-mover:dev)
#
# 1. a static binary: cargo build --release --target x86_64-unknown-linux-musl
#    (zstd's C code is compiled with musl-gcc, from Debian's musl-tools);
# 2. a root filesystem in a temporary build context: the binary (stripped),
#    the host's CA bundle, /etc/passwd and /etc/group with the non-root
#    user 65532, an empty /tmp;
# 3. docker build with crates/mover/Dockerfile (FROM scratch), then a check
#    that the image is under 30 MB, runs as 65532 and starts.
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-lifeboat-mover:dev}
target=x86_64-unknown-linux-musl
max_bytes=$((30 * 1000 * 1000))
die() { echo "image.sh: $*" >&2; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
command -v musl-gcc >/dev/null || die "musl-gcc is missing: apt-get install musl-tools (scripts/setup.sh)"
rustup target list --installed 2>/dev/null | grep -qx "$target" || rustup target add "$target"
bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s $bundle ]] || die "no CA bundle at $bundle: apt-get install ca-certificates"

echo "==> cargo build --release --target $target -p lifeboat-mover" >&2
CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-musl-gcc} \
    cargo build --release --locked --target "$target" -p lifeboat-mover >&2
bin=${CARGO_TARGET_DIR:-target}/$target/release/lifeboat-mover
file "$bin" 2>/dev/null | grep -q "static" || ldd "$bin" 2>&1 | grep -qE "not a dynamic|statically linked" \
    || die "$bin is not static"

ctx=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-mover-image-XXXXXX")
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/data"
cp "$bin" "$root/lifeboat-mover"
strip "$root/lifeboat-mover" 2>/dev/null || true
cp "$bundle" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nmover:x:65532:65532:lifeboat mover:/tmp:/sbin/nologin\n' >"$root/etc/passwd"
printf 'root:x:0:\nmover:x:65532:\n' >"$root/etc/group"
chmod 1777 "$root/tmp"
chmod 0755 "$root/lifeboat-mover"
cp crates/mover/Dockerfile "$ctx/Dockerfile"

echo "==> docker build -t $tag" >&2
docker build -q -t "$tag" "$ctx" >&2

size=$(docker image inspect -f '{{.Size}}' "$tag")
user=$(docker image inspect -f '{{.Config.User}}' "$tag")
echo "==> $tag: $size bytes, user $user" >&2
((size < max_bytes)) || die "the image is $size bytes, over $max_bytes"
[[ $user == 65532:65532 ]] || die "the image runs as $user, not 65532"
docker run --rm --read-only --network none "$tag" --version >&2 || die "the image does not start"
echo "$tag"
