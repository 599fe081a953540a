#!/usr/bin/env bash
# Counts what the bot writes to disk: the release binary against the fake Twitch through
# 1,000 color changes, a reload and IDLE_SECONDS (default 600) idle, with `strace -f -c`
# attached, and inotify on the config's directory (which must see nothing). Prints the
# figures docs/behaviour.md quotes; the test itself fails if anything is written beside the config.
#   scripts/flash-writes.sh [IDLE_SECONDS]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,6p' "$0" | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "needs strace (apt-get install strace)" >&2; exit 1; }
TCC_STRACE=1 TCC_FLASH_IDLE_SECS="${1:-600}" \
    cargo test --locked --release --test flash -- --nocapture 2>&1 | grep -E '^flash:|test result'
