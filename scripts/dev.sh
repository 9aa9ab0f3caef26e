#!/usr/bin/env bash
# The run command: installs what is missing, then starts a local three-node cluster
# (`mortar dev`; Ctrl-C stops it). Arguments are passed to `mortar dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
exec cargo run --release -- dev "$@"
