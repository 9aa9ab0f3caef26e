#!/usr/bin/env bash
# The compose cluster for real (CI runs this): builds the image, `up`s deploy/compose.yaml (TLS,
# tokens and the gossip key on), then: the CLI tour through every node; `docker kill` of one
# node while writes go on through the others, its restart, and every write read back through
# it; a rolling restart of all three under a write load, then every acknowledged write read
# back; `down -v`. Bounded in count and time; removes its containers, network and volumes, also
# on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/image.sh
image=${MORTAR_IMAGE:-mortar:dev}
export MORTAR_IMAGE=$image
project=mortar-ci-$$
work=$(mktemp -d /tmp/mortar-compose-test.XXXXXX)
# Compose v1 (docker-compose, Debian's package) or v2 (the docker plugin), whichever is here.
if command -v docker-compose >/dev/null 2>&1; then compose=(docker-compose); else compose=(docker compose); fi
dc() { "${compose[@]}" -p "$project" -f deploy/compose.yaml "$@"; }
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ]; then dc logs --tail 30 >&2 2>&1 || true; fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "compose-test: FAILED: $*" >&2; exit 1; }
say() { echo "compose-test: $*"; }
# node <n> <mortar args...>: the CLI inside node n's container (its CA, the admin token, itself).
node() { local n=$1; shift; docker exec "$(dc ps -q "mortar-$n")" mortar "$@"; }
# client <script>: a one-shot container on the cluster's network with the client token.
client() {
  docker run --rm -i --network "${project}_default" -v "${project}_secrets:/secrets:ro" \
    -e MORTAR_CA=/secrets/ca.pem -e MORTAR_TOKEN_FILE=/secrets/client.token \
    --entrypoint bash "$image" -c "$1"
}
wait_ready() {
  for n in "$@"; do
    for attempt in $(seq 120); do
      node "$n" health --ready >/dev/null 2>&1 && break
      [ "$attempt" -eq 120 ] && fail "mortar-$n not ready within 60 s"
      sleep 0.5
    done
  done
}

dc up -d >/dev/null 2>&1 || fail "compose up"
wait_ready 1 2 3
say "three nodes ready (TLS, tokens, gossip key)"

for n in 1 2 3; do node "$n" kv put "tour-$n" "v$n" >/dev/null; done
for n in 1 2 3; do
  for k in 1 2 3; do
    [ "$(node "$n" kv get "tour-$k")" = "v$k" ] || fail "tour-$k read through mortar-$n"
  done
  node "$n" call counter "tour-$n" increment >/dev/null || fail "actor call through mortar-$n"
done
[ "$(node 1 admin members | grep -c ' active ')" -eq 3 ] || fail "admin members does not list three active nodes"
client 'mortar kv get tour-1 --endpoint mortar-2:7100' | grep -qx v1 || fail "a client container with the client token"
if client 'unset MORTAR_TOKEN_FILE; mortar kv get tour-1 --endpoint mortar-2:7100' >/dev/null 2>&1; then
  fail "a client without a token was served"
fi
say "tour: puts, gets, actor calls and admin through every node; no token, no answer"

dc kill mortar-3 >/dev/null 2>&1
for i in $(seq 20); do node $(( i % 2 + 1 )) kv put "down-$i" "v$i" >/dev/null || fail "write down-$i with mortar-3 down"; done
dc start mortar-3 >/dev/null 2>&1
wait_ready 3
for i in $(seq 20); do
  [ "$(node 3 kv get "down-$i")" = "v$i" ] || fail "down-$i read through the restarted mortar-3"
done
say "mortar-3 killed: 20 writes through the others, all read back through it after its restart"

# A write load through all three nodes (bounded: 400 writes, 300 s), acknowledged keys on stdout.
client 'for i in $(seq 400); do
          if mortar kv put roll-$i v$i --endpoint mortar-$(( i % 3 + 1 )):7100 --timeout-ms 5000 >/dev/null 2>&1; then
            echo roll-$i
          fi
        done' >"$work/acked" &
load=$!
started=$(date +%s)
for n in 1 2 3; do
  sleep 2
  dc restart mortar-$n >/dev/null 2>&1
  wait_ready "$n"
done
rolled=$(( $(date +%s) - started ))
timeout 300 tail --pid=$load -f /dev/null || fail "the write load did not end within 300 s"
wait $load || true
acked=$(wc -l <"$work/acked")
[ "$acked" -ge 100 ] || fail "only $acked of 400 writes acknowledged during the rolling restart"
lost=$(client 'while read -r key; do
                 [ "$(mortar kv get "$key" --endpoint mortar-1:7100)" = "v${key#roll-}" ] || echo "$key"
               done' <"$work/acked")
[ -z "$lost" ] || fail "acknowledged writes not read back: $lost"
say "rolling restart of all three in ${rolled} s under load: $acked of 400 writes acknowledged, every one read back"

dc down -v >/dev/null 2>&1 || fail "compose down -v"
[ -z "$(docker volume ls -q --filter "name=${project}_")" ] || fail "volumes left after down -v"
say "down -v: containers, network and volumes gone"
