#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test of the workspace in the one
# release profile (unit, simulation, storage conformance, multi-process cluster tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/env.sh
exec cargo test --release --workspace "$@"
