#!/usr/bin/env bash
# Restart-to-serve: 5 nodes on loopback under a conflicting KV load; each run SIGKILLs n2 and n5
# together, keeps them down for --down seconds, restarts them on their data directories, and
# times until each answers a put (a new CLI process every 50 ms, 1 s request timeout; the time
# includes starting the process and opening RocksDB). Prints one line per restarted node and the
# median. Everything is bounded; only the processes this script started are ended, and its
# temporary directory is removed.
#
#   scripts/bench-restart.sh [--runs 5] [--down 5] [--clients 32] [--bin PATH] [--port-base 7600]
set -euo pipefail
runs=5 down=5 clients=32 port_base=7600
bin=${CARGO_TARGET_DIR:-$HOME/.cache/mortar-target}/release/mortar
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --down) down=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    *) echo "bench-restart: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench-restart: no mortar binary at $bin (cargo build --release -p mortar-node)" >&2; exit 2; }
for n in "$runs" "$down" "$clients" "$port_base"; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench-restart: $n is not a number" >&2; exit 2; }
done

work=$(mktemp -d /tmp/mortar-bench-restart.XXXXXX)
declare -A pid=()
load=""
cleanup() {
  for p in "${pid[@]}" $load; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

grpc() { echo "127.0.0.1:$((port_base + $1))"; }
cluster=$(for i in 1 2 3 4 5; do printf '%s=%s,' "$i" "$(grpc "$i")"; done); cluster=${cluster%,}
seeds=$(for i in 1 2 3 4 5; do printf '127.0.0.1:%s,' $((port_base + 200 + i)); done); seeds=${seeds%,}

start() { # start <node> <data root>
  "$bin" node --id "$1" --listen "$(grpc "$1")" --http "127.0.0.1:$((port_base + 100 + $1))" \
    --data-dir "$2/n$1" --initial-cluster "$cluster" --gossip-listen "127.0.0.1:$((port_base + 200 + $1))" \
    --gossip-seeds "$seeds" --request-timeout-ms 1000 >>"$2/n$1.log" 2>&1 &
  pid[$1]=$!
}

# serve_time <node> <start ns>: seconds from <start ns> until the node answers a put (30 s at most).
serve_time() {
  local deadline=$(($(date +%s) + 30))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    if "$bin" kv put --endpoint "$(grpc "$1")" --timeout-ms 1000 "probe-n$1" v >/dev/null 2>&1; then
      echo "scale=3; ($(date +%s%N) - $2) / 1000000000" | bc
      return
    fi
    sleep 0.05
  done
  echo never
}

times=()
for run in $(seq 1 "$runs"); do
  dir=$work/run-$run; mkdir -p "$dir"
  for i in 1 2 3 4 5; do start "$i" "$dir"; done
  serve_time 1 "$(date +%s%N)" >/dev/null
  "$bin" bench kv --endpoints "$(grpc 1),$(grpc 3),$(grpc 4)" --clients "$clients" --conflict 0.3 --keys 5 \
    --duration $((down + 40)) --warmup 0 --timeout-ms 3000 --ops-max 5000000 >"$dir/load.log" 2>&1 &
  load=$!
  sleep 3
  kill -9 "${pid[2]}" "${pid[5]}"; wait "${pid[2]}" "${pid[5]}" 2>/dev/null || true
  sleep "$down"
  restarted=$(date +%s%N)
  start 2 "$dir"; start 5 "$dir"
  serve_time 2 "$restarted" >"$dir/t2" & p2=$!
  serve_time 5 "$restarted" >"$dir/t5" & p5=$!
  wait $p2 $p5
  for i in 2 5; do
    t=$(cat "$dir/t$i"); times+=("$t")
    echo "run $run: n$i served ${t} s after its restart (down ${down} s, ${clients} clients on the others)"
  done
  kill -9 $load "${pid[@]}" 2>/dev/null || true; wait 2>/dev/null || true
  load=""; pid=()
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median " a[int((NR+1)/2)] " s, max " a[NR] " s over " NR " restarts"}'
