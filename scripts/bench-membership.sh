#!/usr/bin/env bash
# Membership changes measured on loopback, three nodes to start with:
#  1. the pause a replace causes: a closed-loop KV load through nodes 1 and 2 (no change), then
#     the same load while node 3 is SIGKILLed, its directory wiped, and a new node joins with
#     --replace 3 (p50, p99 and max of the load, side by side);
#  2. the pause a remove of a live member causes (the same load, `mortar admin remove`);
#  3. time from `mortar node --join` to ready (the control plane lists it ready) with about
#     100 MB and 1 GB of data in the group (--mb to choose);
#  4. the cost at rest: each node's CPU over 20 idle seconds (gossip, epoxy's timer and the control
#     plane's heartbeats together).
# Everything is bounded; only the processes this script started are ended, and its temporary
# directory is removed.
#
#   scripts/bench-membership.sh [--clients 16] [--seconds 15] [--mb "100 1024"] [--bin PATH] [--port-base 7900]
set -euo pipefail
clients=16 seconds=15 sizes="100 1024" port_base=7900
bin=${CARGO_TARGET_DIR:-$HOME/.cache/mortar-target}/release/mortar
while [ $# -gt 0 ]; do
  case $1 in
    --clients) clients=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --mb) sizes=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --port-base) port_base=$2; shift 2 ;;
    *) echo "bench-membership: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$bin" ] || { echo "bench-membership: no mortar binary at $bin (cargo build --release -p mortar-node)" >&2; exit 2; }
for n in "$clients" "$seconds" "$port_base" $sizes; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "bench-membership: $n is not a number" >&2; exit 2; }
done

work=$(mktemp -d /tmp/mortar-bench-membership.XXXXXX)
declare -A pid=()
cleanup() {
  local status=$?
  for p in "${pid[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$status" -ne 0 ]; then
    mkdir -p "$work.logs" && cp "$work"/*.log "$work.logs/" 2>/dev/null || true
    echo "bench-membership: failed; the nodes' logs are in $work.logs" >&2
  fi
  rm -rf "$work"
}
trap cleanup EXIT

grpc() { echo "127.0.0.1:$((port_base + $1))"; }
http() { echo "127.0.0.1:$((port_base + 100 + $1))"; }
cluster="1=$(grpc 1),2=$(grpc 2),3=$(grpc 3)"

start() { # start <slot>: one of the three initial nodes
  "$bin" node --id "$1" --listen "$(grpc "$1")" --http "$(http "$1")" --data-dir "$work/n$1" \
    --initial-cluster "$cluster" --request-timeout-ms 2000 >>"$work/n$1.log" 2>&1 &
  pid[$1]=$!
}
join() { # join <slot> [--replace <id>]: a new node at slot's ports, through node 1
  local slot=$1; shift
  "$bin" node --join "$(grpc 1)" "$@" --listen "$(grpc "$slot")" --http "$(http "$slot")" \
    --data-dir "$work/n$slot" --request-timeout-ms 2000 >>"$work/n$slot.log" 2>&1 &
  pid[$slot]=$!
}
ready() { # ready <slot>: waits up to 120 s for /readyz
  local deadline=$(($(date +%s) + 120))
  until curl -sf "http://$(http "$1")/readyz" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "node at slot $1 not ready; its log:" >&2; tail -20 "$work/n$1.log" >&2; exit 1; }
    sleep 0.1
  done
}
ready_in_members() { # ready_in_members <address>: waits up to 600 s until the directory lists it ready
  local deadline=$(($(date +%s) + 600))
  until "$bin" admin members --json --endpoint "$(grpc 1)" 2>/dev/null |
    python3 -c "import json,sys; m=[r for r in json.load(sys.stdin)['members'] if r['address']=='$1' and r['state']=='active']; sys.exit(0 if m and m[0]['ready'] else 1)"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$1 never became ready" >&2; exit 1; }
    sleep 0.2
  done
}
load() { # load <label>: the closed-loop load through nodes 1 and 2; prints p50/p99/max
  "$bin" bench kv --endpoints "$(grpc 1),$(grpc 2)" --clients "$clients" --duration "$seconds" \
    --warmup 1 --timeout-ms 10000 --json 2>/dev/null | tail -1 |
    python3 -c "import json,sys; r=json.load(sys.stdin); print('  $1 %6.0f ops/s  p50 %6.2f ms  p99 %7.2f ms  max %7.1f ms  errors %d' % (r['ops_per_sec'], r['p50_ms'], r['p99_ms'], r['max_ms'], r['errors']))"
}
id_at() { # id_at <address>: the live member's id at that address
  "$bin" admin members --json --endpoint "$(grpc 1)" |
    python3 -c "import json,sys; print([r['id'] for r in json.load(sys.stdin)['members'] if r['address']=='$1' and r['state'] in ('active','joining')][0])"
}

for i in 1 2 3; do start "$i"; done
for i in 1 2 3; do ready "$i"; done

echo "== 1. replace under load ($clients clients, $seconds s) =="
load "no change:      "
( sleep 4; kill -9 "${pid[3]}"; rm -rf "$work/n3"; sleep 3; join 4 --replace 3; echo "$!" >"$work/join.pid" ) &
changer=$!
load "replace of n3:  "
wait "$changer"
pid[4]=$(cat "$work/join.pid")
ready 4
grep -h "state transfer complete\|reported ready" "$work/n4.log" | sed 's/^/  n4: /'

echo "== 2. remove of a live member under load =="
join 5
ready 5
ready_in_members "$(grpc 5)"
five=$(id_at "$(grpc 5)")
( sleep 4; "$bin" admin remove "$five" --endpoint "$(grpc 1)" >"$work/remove.out" 2>&1 ) &
changer=$!
load "remove of n$five:   "
wait "$changer"
sed 's/^/  /' "$work/remove.out"

echo "== 3. join time =="
slot=6
for mb in $sizes; do
  value=$((mb * 1024 * 1024 / 8000))
  "$bin" bench kv --endpoints "$(grpc 1),$(grpc 2)" --clients 8 --keys 1000 --value-size "$value" \
    --ops-max 8000 --duration 3600 --warmup 0 >/dev/null 2>&1
  started=$(date +%s%N)
  join "$slot"
  ready_in_members "$(grpc "$slot")"
  took=$(echo "scale=2; ($(date +%s%N) - $started) / 1000000000" | bc)
  echo "  ${mb} MB in the group (8,000 keys of $value B, written once): --join to ready in ${took} s"
  grep -h "state transfer complete" "$work/n$slot.log" | sed 's/^/    /' | cut -c1-200
  "$bin" admin remove "$(id_at "$(grpc "$slot")")" --endpoint "$(grpc 1)" >/dev/null
  slot=$((slot + 1))
done

echo "== 4. at rest (20 s idle) =="
sleep 2
declare -A before=()
ticks=$(getconf CLK_TCK)
for s in 1 2 4; do
  before[$s]=$(awk '{print $14 + $15}' "/proc/${pid[$s]}/stat")
done
sleep 20
for s in 1 2 4; do
  after=$(awk '{print $14 + $15}' "/proc/${pid[$s]}/stat")
  echo "  slot $s: $(echo "scale=2; ($after - ${before[$s]}) * 100 / $ticks / 20" | bc)% of one core"
done
