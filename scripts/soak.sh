#!/usr/bin/env bash
# Runs the release binary against the fake Twitch on the real clock for SECONDS (default 600)
# and prints RSS at the start and the end (figures only; not part of CI).
#   scripts/soak.sh [SECONDS]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
TCC_SOAK_SECONDS="${1:-600}" cargo test --locked --release --test e2e -- --ignored --nocapture real_clock_soak 2>&1 \
    | grep -E '^soak:|test result'
