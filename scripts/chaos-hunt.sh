#!/usr/bin/env bash
# A long chaos hunt: `mortar-chaos run` over and over, with consecutive seeds, cycling through
# cluster sizes 3, 5 and 7, the three workloads and the nemeses, until a time budget is spent.
# Every run leaves one line in the summary and its `summary.json` in `summaries/`; a run that
# fails also keeps its run directory and its output. Needs root (network namespaces), like
# `mortar-chaos run`.
#
#   scripts/chaos-hunt.sh [--minutes 60] [--first-seed 1] [--out DIR]
#
# A run starts only while the budget lasts, and each run is bounded by its own time limit, so the
# hunt ends at most one run (about five minutes) after the budget. Ctrl-C stops it; the run in
# progress cleans up after itself. Exit status: 0 when every run passed, 1 when one failed, 2 on
# bad arguments or a failed build.
set -uo pipefail
cd "$(dirname "$0")/.."

minutes=60
seed=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=${2:-}; shift 2 ;;
    --first-seed) seed=${2:-}; shift 2 ;;
    --out) out=${2:-}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos-hunt: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$minutes" in ''|*[!0-9]*) echo "chaos-hunt: --minutes takes a whole number" >&2; exit 2 ;; esac
case "$seed" in ''|*[!0-9]*) echo "chaos-hunt: --first-seed takes a whole number" >&2; exit 2 ;; esac
[ -n "$out" ] || out=$(mktemp -d /tmp/mortar-hunt.XXXXXX)
mkdir -p "$out/bin" "$out/summaries" || exit 2

scripts/setup.sh || exit 2
. scripts/env.sh
# The test build's command: its artifacts are reused (`-p` alone resolves other feature sets and
# recompiles the node).
cargo build --release --workspace --all-targets || exit 2
# The hunt runs these copies, so a rebuild meanwhile does not change what is tested.
cp "$CARGO_TARGET_DIR/release/mortar" "$CARGO_TARGET_DIR/release/mortar-chaos" "$out/bin/" || exit 2

# nodes workload nemesis seconds [more run arguments]
setups=(
  "5 register partition,kill,pause 240"
  "3 register mixed 150"
  "7 register mixed 200"
  "5 counter mixed 150"
  "5 register partition,kill,loss,restart 90 --latency-ms-max 200 --loss-percent-max 30"
  "5 set mixed 150"
  "3 counter restart,kill,partition 120"
  "5 register kill,latency,partition 150 --latency-ms-max 200"
)

summary="$out/summary.txt"
end=$(( $(date +%s) + minutes * 60 ))
runs=0
failed=0
echo "chaos-hunt: runs in $out, seeds from $seed, for $minutes minutes; summary in $summary"
while [ "$(date +%s)" -lt "$end" ]; do
  read -r nodes workload nemesis seconds more <<< "${setups[$(( runs % ${#setups[@]} ))]}"
  dir="$out/run-$seed"
  # shellcheck disable=SC2086 # `more` is a list of arguments
  "$out/bin/mortar-chaos" run --nodes "$nodes" --workload "$workload" --nemesis "$nemesis" \
    --time-limit "$seconds" --seed "$seed" --mortar-bin "$out/bin/mortar" --out "$dir" $more \
    > "$dir.log" 2>&1
  status=$?
  [ "$status" -eq 130 ] && { echo "chaos-hunt: interrupted at seed $seed" | tee -a "$summary"; break; }
  verdict=$(tail -n 1 "$dir.log")
  line="$(date +%T) seed $seed: $nodes nodes, $workload, $nemesis, $seconds s${more:+ $more}: $verdict"
  echo "$line" | tee -a "$summary"
  if [ "$status" -eq 0 ]; then
    # Keep the summary (a few kB: availability, recovery times, restarts) of every run.
    cp "$dir/summary.json" "$out/summaries/run-$seed.json" 2>/dev/null
    rm -rf "$dir" "$dir.log"
  else
    failed=$((failed + 1))
    echo "  kept $dir and $dir.log" | tee -a "$summary"
  fi
  runs=$((runs + 1))
  seed=$((seed + 1))
done
echo "chaos-hunt: $runs runs, $failed failed; summary in $summary"
[ "$failed" -eq 0 ]
