#!/usr/bin/env bash
# A short mixed chaos run on 5 nodes in network namespaces (as root), checked by mortar-chaos.
# Any anomaly in the history (a linearizability violation, a lost write) fails CI. A run whose
# history is valid but in which a node did not serve again within the recovery bound is reported
# loudly, with its run directory kept, but does not fail the build: see the issue notes.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
out=$(mktemp -d /tmp/mortar-ci-chaos.XXXXXX)
cargo build --release -p mortar-chaos -p mortar-node || exit 1
"$CARGO_TARGET_DIR/release/mortar-chaos" run --nodes 5 --workload register --nemesis mixed \
  --time-limit 90 --mortar-bin "$CARGO_TARGET_DIR/release/mortar" --out "$out/run"
status=$?
check="$out/run/check.json"
if [ ! -f "$check" ]; then
  echo "chaos: the run produced no check.json (exit $status); see $out" >&2
  exit 1
fi
if ! python3 -c "import json,sys; sys.exit(0 if json.load(open('$check'))['valid'] else 1)"; then
  echo "chaos: ANOMALY in the history: see $out/run/report.txt" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "chaos: WARNING: history valid, but the run did not pass (exit $status); see $out/run/summary.json" >&2
else
  rm -rf "$out"
fi
exit 0
