#!/usr/bin/env bash
# The test command: installs what is missing, then runs every test of the workspace in the one
# release profile (unit, simulation, storage conformance, multi-process cluster tests). Every test
# binary runs even when an earlier one fails (--no-fail-fast); the exit status is non-zero if any
# test failed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup_test.sh
. scripts/env.sh
exec cargo test --release --workspace --no-fail-fast "$@"
