#!/usr/bin/env bash
# Tests scripts/setup.sh's detection against fake roots: libclang counts only under the names
# bindgen loads (a fresh machine has libclang-cpp.so.14 alone, which is another library).
set -euo pipefail
cd "$(dirname "$0")/.."
fake=$(mktemp -d /tmp/mortar-setup-test.XXXXXX)
trap 'rm -rf "$fake"' EXIT
passed=0
failed=0
missing() { env -u LIBCLANG_PATH MORTAR_SETUP_ROOT="$1" bash scripts/setup.sh --print-missing; }
expect() { # expect <name> <root> <word> yes|no
  local got
  got=$(missing "$2")
  case " $got " in *" $3 "*) got=yes ;; *) got=no ;; esac
  if [ "$got" = "$4" ]; then echo "ok: $1"; passed=$((passed + 1)); else echo "FAILED: $1 (wants $3: expected $4, got $got)"; failed=$((failed + 1)); fi
}
mk() { mkdir -p "$(dirname "$fake/$1/$2")"; : >"$fake/$1/$2"; }

mk cpp-only usr/lib/llvm-14/lib/libclang-cpp.so.14
expect "only libclang-cpp.so.14 is not libclang" "$fake/cpp-only" libclang-dev yes
mk dev usr/lib/llvm-14/lib/libclang-cpp.so.14
mk dev usr/lib/llvm-14/lib/libclang.so
expect "libclang.so counts" "$fake/dev" libclang-dev no
mk versioned usr/lib/llvm-16/lib/libclang-16.so.1
expect "libclang-16.so.1 counts" "$fake/versioned" libclang-dev no
mk multiarch usr/lib/x86_64-linux-gnu/libclang.so.1
expect "libclang.so.1 in the multiarch directory counts" "$fake/multiarch" libclang-dev no
mkdir -p "$fake/empty"
expect "an empty root has no libclang" "$fake/empty" libclang-dev yes
expect "an empty root has no protoc" "$fake/empty" protobuf-compiler yes
mk tools usr/bin/protoc
chmod +x "$fake/tools/usr/bin/protoc"
expect "an executable protoc counts" "$fake/tools" protobuf-compiler no
echo "setup_test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
