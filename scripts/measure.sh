#!/usr/bin/env bash
# Prints the size of the static x86_64 release binary, and the bot's peak memory and the
# time for every user's color to change after a message (median of 10 rounds) in an
# end-to-end run against the fake Twitch, over IRC and over EventSub. Figures only: nothing
# here passes or fails on them.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
rustup target list --installed | grep -qx "$target" || rustup target add "$target"
CC_x86_64_unknown_linux_musl="${CC_x86_64_unknown_linux_musl:-gcc}" \
    cargo build --locked --release --target "$target"
bin="target/$target/release/twitch-colorchanger"
printf 'binary: %s bytes (%s)\n' "$(stat -c %s "$bin")" "$bin"
for transport in irc eventsub; do
    FIGURES_TRANSPORT=$transport FIGURES_USERS="${FIGURES_USERS:-20}" \
        cargo test --locked --release --test e2e -- --ignored --nocapture figures 2>&1 \
        | grep '^figures:'
done
