#!/usr/bin/env bash
# Installs the system packages Mortar's build and tests need, when they are missing:
# libclang-dev (bindgen, for the rocksdb crate), protobuf-compiler (the etcd-client crate's build
# script), iputils-ping and nftables (chaos tests), etcd-server (`mortar-chaos bench compare`),
# gdb and curl (the chaos harness records the thread stacks of a node that stops serving, and
# every node's metrics), python3 (CI reads the chaos checker's JSON), prometheus (its promtool
# checks a node's /metrics in tests/cluster.rs). Safe to re-run.
#
# `MORTAR_SETUP_ROOT=DIR scripts/setup.sh --print-missing` prints what it would install, judging
# the file system under DIR; scripts/setup_test.sh tests the detection that way.
set -euo pipefail
root="${MORTAR_SETUP_ROOT:-}"

# have_libclang: true when bindgen (clang-sys) would find libclang: LIBCLANG_PATH set, or one of
# the four names clang-sys loads (libclang.so, libclang-*.so, libclang.so.*, libclang-*.so.*) in
# an LLVM library directory. libclang-cpp.so.N is another library and does not count.
have_libclang() {
  [ -n "${LIBCLANG_PATH:-}" ] && return 0
  local dir f base
  for dir in "$root"/usr/lib/llvm-*/lib "$root"/usr/lib/x86_64-linux-gnu "$root"/usr/lib/aarch64-linux-gnu "$root"/usr/lib; do
    [ -d "$dir" ] || continue
    for f in "$dir"/libclang*.so*; do
      [ -e "$f" ] || continue
      base=${f##*/}
      case "$base" in
        libclang-cpp*) ;;
        libclang.so | libclang.so.* | libclang-*.so | libclang-*.so.*) return 0 ;;
      esac
    done
  done
  return 1
}

# have <command>: the command exists (under the fake root, when one is set).
have() {
  if [ -n "$root" ]; then
    local d
    for d in /usr/bin /usr/sbin /bin /sbin /usr/local/bin; do
      [ -x "$root$d/$1" ] && return 0
    done
    return 1
  fi
  command -v "$1" >/dev/null 2>&1
}

need=()
have_libclang || need+=(libclang-dev)
have protoc || need+=(protobuf-compiler)
have ping || need+=(iputils-ping)
have nft || need+=(nftables)
have etcd || need+=(etcd-server)
have gdb || need+=(gdb)
have curl || need+=(curl)
have python3 || need+=(python3)
have promtool || need+=(prometheus)

if [ "${1:-}" = "--print-missing" ]; then
  echo "${need[*]}"
  exit 0
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! have_libclang; then
  echo "setup: libclang-dev is installed but no libclang.so was found; set LIBCLANG_PATH to the directory holding it" >&2
  exit 1
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is not installed; install Rust from https://rustup.rs and run this again" >&2
  exit 1
fi
