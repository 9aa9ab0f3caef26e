#!/usr/bin/env bash
# Builds the `mortar` image (deploy/Dockerfile's runtime stage) from the release binary the
# tests built, on an engine without a registry: the base image from Debian's packages first
# (deploy/base-image.sh), then the runtime stage with the binary, stripped of its debug info.
# Usage: deploy/image.sh [tag]   (default mortar:dev). Prints the image's size.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
tag=${1:-mortar:dev}
binary="$CARGO_TARGET_DIR/release/mortar"
[ -x "$binary" ] || cargo build --release -p mortar-node --bin mortar
deploy/base-image.sh
context=$(mktemp -d /tmp/mortar-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
strip --strip-debug -o "$context/mortar" "$binary"
# The legacy builder: any engine has it (BuildKit needs the buildx plugin with newer clients).
DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile --target runtime -t "$tag" "$context" \
  >/dev/null 2>"$context/build.log" || { cat "$context/build.log" >&2; exit 1; }
echo "image: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
