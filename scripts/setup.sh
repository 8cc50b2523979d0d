#!/usr/bin/env bash
# Install what building and testing Lifeboat needs on a Debian or Ubuntu
# machine. Idempotent: each tool is installed only when missing.
# - protoc (protobuf-compiler): the etcd gRPC client is generated at build time;
# - etcd, etcdctl (etcd-server, etcd-client): the etcd tests start a real etcd;
# - mkfs.ext4, e2fsck (e2fsprogs): filesystem images of the block and sparse tests;
# - strace: the durable-writes test traces a backup's system calls;
# - setpriv (util-linux): the unreadable-file test runs as an unprivileged user;
# - cargo-nextest: the test runner.
set -euo pipefail

need() { command -v "$1" >/dev/null 2>&1; }

missing=()
need protoc || missing+=(protobuf-compiler)
need etcd || missing+=(etcd-server)
need etcdctl || missing+=(etcd-client)
need mkfs.ext4 || missing+=(e2fsprogs)
need strace || missing+=(strace)
need setpriv || missing+=(util-linux)
# openssl: the etcd TLS test makes its own CA and certificates.
need openssl || missing+=(openssl)
# losetup (util-linux, mount): the block-device test attaches a loop device.
need losetup || missing+=(mount)
# The mover's image: a static musl binary (zstd's C part needs musl-gcc), a
# CA bundle copied in; the manifest check installs its validator in a venv.
need musl-gcc || missing+=(musl-tools)
[[ -s /etc/ssl/certs/ca-certificates.crt ]] || missing+=(ca-certificates)
python3 -c 'import ensurepip' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
    if ! need apt-get; then
        echo "setup: missing ${missing[*]} and no apt-get to install them" >&2
        exit 1
    fi
    echo "==> installing ${missing[*]}"
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}" >/dev/null ||
        { "${sudo_cmd[@]}" apt-get update -q >/dev/null &&
            "${sudo_cmd[@]}" apt-get install -y -q "${missing[@]}" >/dev/null; }
fi

if ! need cargo-nextest; then
    echo "==> installing cargo-nextest"
    cargo install cargo-nextest --locked
fi

if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    echo "==> adding the x86_64-unknown-linux-musl target (the mover's static binary)"
    rustup target add x86_64-unknown-linux-musl
fi
