#!/usr/bin/env bash
# Four short mixed chaos runs on 5 nodes in network namespaces (as root), checked by mortar-chaos:
# `register` (KV, linearizability) for 90 s, `set` (chat-room actors: no acknowledged message lost
# across failovers) for 60 s, `queue` (durable queues: every acknowledged job handled exactly once)
# for 30 s and `alarms` (every acknowledged alarm fired exactly once, never early) for 30 s: about
# 4 minutes of runs in all. Any anomaly in a history (a linearizability violation, a lost write, a
# job handled twice) fails CI.
# A run whose history is valid but in which a node did not serve again within the recovery bound
# is reported loudly, with its run directory kept, but does not fail the build: see the issue
# notes.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
out=$(mktemp -d /tmp/mortar-ci-chaos.XXXXXX)
# The same command as the test build's (scripts/test.sh builds every target of the workspace), so
# every artifact is reused: `-p mortar-chaos -p mortar-node` alone resolves other feature sets of
# shared dependencies and recompiles the node.
cargo build --release --workspace --all-targets || exit 1

# run <name> <workload> <seconds>: one run; exits the script on an anomaly.
warned=0
run() {
  local name=$1 workload=$2 seconds=$3
  "$CARGO_TARGET_DIR/release/mortar-chaos" run --nodes 5 --workload "$workload" --nemesis mixed \
    --time-limit "$seconds" --mortar-bin "$CARGO_TARGET_DIR/release/mortar" --out "$out/$name"
  local status=$?
  local check="$out/$name/check.json"
  if [ ! -f "$check" ]; then
    echo "chaos: the $name run produced no check.json (exit $status); see $out" >&2
    exit 1
  fi
  if ! python3 -c "import json,sys; sys.exit(0 if json.load(open('$check'))['valid'] else 1)"; then
    echo "chaos: ANOMALY in the $name history: see $out/$name/report.txt" >&2
    exit 1
  fi
  if [ "$status" -ne 0 ]; then
    echo "chaos: WARNING: $name history valid, but the run did not pass (exit $status); see $out/$name/summary.json" >&2
    warned=1
  fi
}

run register register 90
run set set 60
run queue queue 30
run alarms alarms 30
[ "$warned" -eq 0 ] && rm -rf "$out"
exit 0
