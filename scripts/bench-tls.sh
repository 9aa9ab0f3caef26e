#!/usr/bin/env bash
# TLS off and on, side by side in one run: three nodes on loopback (ports 7501-7503, HTTP
# 7601-7603), `mortar bench kv` through all three at 1 and 64 clients for 10 s each. Builds
# nothing: run after `cargo build --release`. Cleans up its nodes and directory, also on failure.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
M="$CARGO_TARGET_DIR/release/mortar"
[ -x "$M" ] || { echo "bench-tls: build first: cargo build --release" >&2; exit 1; }
dir=$(mktemp -d /tmp/mortar-bench-tls.XXXXXX)
pids=()
stop() { [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null && wait "${pids[@]}" 2>/dev/null; pids=(); }
trap 'stop; rm -rf "$dir"' EXIT
"$M" cert ca --dir "$dir/tls" >/dev/null && "$M" cert node --dir "$dir/tls" 127.0.0.1 >/dev/null || exit 1
members=1=127.0.0.1:7501,2=127.0.0.1:7502,3=127.0.0.1:7503
for mode in plain tls; do
  node_flags=(); client_flags=()
  if [ "$mode" = tls ]; then
    node_flags=(--tls-cert "$dir/tls/node.pem" --tls-key "$dir/tls/node.key" --tls-ca "$dir/tls/ca.pem")
    client_flags=(--ca "$dir/tls/ca.pem")
  fi
  for i in 1 2 3; do
    "$M" node --id "$i" --initial-cluster "$members" --listen "127.0.0.1:750$i" --http "127.0.0.1:760$i" \
      --data-dir "$dir/data-$mode/$i" "${node_flags[@]}" >"$dir/node-$mode-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 1 2 3; do
    for _ in $(seq 150); do curl -sf "127.0.0.1:760$i/readyz" >/dev/null && break; sleep 0.2; done
  done
  for clients in 1 64; do
    echo "== TLS $mode, $clients clients"
    timeout 60 "$M" bench kv --endpoints 127.0.0.1:7501,127.0.0.1:7502,127.0.0.1:7503 \
      --clients "$clients" --duration 10 "${client_flags[@]}" | tail -1
  done
  stop
done
