#!/usr/bin/env bash
# Installs the system packages Mortar's build and tests need, when they are missing:
# libclang (bindgen, for the rocksdb crate), protoc (the etcd-client crate's build script), ping
# and nftables (chaos tests), etcd (`mortar bench compare`), gdb and curl (the chaos harness
# records the thread stacks of a node that stops serving, and every node's metrics). Safe to
# re-run.
set -euo pipefail
need=()
have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  dpkg -s libclang-dev >/dev/null 2>&1 && return 0
  compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null
}
have_libclang || need+=(libclang-dev)
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
command -v ping >/dev/null 2>&1 || need+=(iputils-ping)
command -v nft >/dev/null 2>&1 || need+=(nftables)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v gdb >/dev/null 2>&1 || need+=(gdb)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
