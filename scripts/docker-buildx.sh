#!/usr/bin/env bash
# Builds (and with --push, pushes) the multi-arch scratch image from the binaries in dist/.
# Run scripts/build-release.sh first. Needs Docker with buildx.
#   scripts/docker-buildx.sh IMAGE[:TAG] [--push]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
image=${1:-ghcr.io/twitch-colorchanger/twitch-colorchanger:latest}
shift || true
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
docker buildx build \
    --platform linux/amd64,linux/arm64,linux/arm/v7,linux/arm/v6,linux/riscv64 \
    --build-arg "VERSION=$version" \
    --target prebuilt \
    -t "$image" \
    "$@" \
    .
