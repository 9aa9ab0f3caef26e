# Sourced by the scripts: one build directory outside the clone, shared by tests, runs and CI, so
# RocksDB (about 12 minutes to build cold on 2 cores) is compiled once per machine.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mortar-target}"
