#!/usr/bin/env bash
# Prints the size of the static x86_64 release binary, and the bot's peak memory and the
# time for every user's color to change after a message (median of 10 rounds) in an
# end-to-end run against the fake Twitch, over IRC and over EventSub. Figures only: nothing
# here passes or fails on them.
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
# the release binary as shipped (zig, std rebuilt for size), not a plain cargo build
scripts/build-release.sh "$target" >/dev/null
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
bin="dist/twitch-colorchanger-$version-$target"
printf 'binary: %s bytes (%s)\n' "$(stat -c %s "$bin")" "$bin"
for transport in irc eventsub; do
    FIGURES_TRANSPORT=$transport FIGURES_USERS="${FIGURES_USERS:-20}" \
        cargo test --locked --release --test e2e -- --ignored --nocapture figures 2>&1 \
        | grep '^figures:'
done
