#!/usr/bin/env bash
# Builds the runtime stage's base image, `debian:bookworm-slim`, from Debian's packages, for a
# Docker engine that reaches no registry (with one, `docker pull debian:bookworm-slim` does the
# same). debootstrap's minbase variant, without apt's caches, docs and locales, imported as one
# layer. Does nothing when the image exists. Needs root and debootstrap (apt-get install
# debootstrap); cleans up its directory, also on failure.
set -euo pipefail
image=${MORTAR_BASE_IMAGE:-debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base-image: $image exists"
  exit 0
fi
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
root=$(mktemp -d /tmp/mortar-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
tar -C "$root" -c . | docker import - "$image" >/dev/null
echo "base-image: built $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
