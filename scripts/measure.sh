#!/usr/bin/env bash
# Prints the figures of the static x86_64 release binary as shipped, over IRC and over
# EventSub, against the fake Twitch (tests/figures.rs): its size; for one user sending 200
# own messages 50 ms apart, the bot's CPU for the 200 color changes, its idle CPU, and the
# reaction time inside the bot (chat message read to color request written, from its
# /metrics histogram); and its peak memory (VmHWM) with 1, 100 and 1,000 users. Figures
# only: nothing here passes or fails on them.
#
# Then the message path in detail, one user on IRC: the bot's CPU read by `perf stat -e
# task-clock` (to the microsecond) for 200 messages 50 ms apart and for 1,000 messages 20 ms
# apart, and the system calls per color change by kind (`strace -f -c` over the 1,000
# messages, start-up left out). strace and perf (Debian's strace and linux-perf) are
# installed when missing. About three minutes in all.
#
#   scripts/measure.sh
#   FIGURES_BIN=target/release/twitch-colorchanger scripts/measure.sh   # another build
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
bin=${FIGURES_BIN:-}
if [ -z "$bin" ]; then
    # the release binary as shipped (zig, musl, std rebuilt for size), not a plain cargo build
    scripts/build-release.sh "$target" >/dev/null
    bin="dist/twitch-colorchanger-$version-$target"
fi
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
printf 'binary: %s bytes (%s)\n' "$(stat -c %s "$bin")" "$bin"
cargo test --locked --release --test figures --no-run 2>/dev/null
figures() { # transport users rounds gap_ms idle_s
    TCC_BIN="$bin" FIGURES_TRANSPORT=$1 FIGURES_USERS=$2 FIGURES_ROUNDS=$3 \
        FIGURES_GAP_MS=$4 FIGURES_IDLE_SECS=$5 \
        cargo test --locked --release --test figures -- --ignored --nocapture 2>&1 \
        | sed -n 's/^figures: //p'
}
field() { tr ' ' '\n' | sed -n "s/^$1=//p"; }
echo
echo '| transport | CPU, 200 changes (ms) | idle CPU, 10 s (ms) | reaction p50 / p99 / mean (ms) | VmHWM 1 user | 100 users | 1,000 users | 1,000 ready in |'
echo '|---|---|---|---|---|---|---|---|'
for transport in irc eventsub; do
    one=$(figures "$transport" 1 200 50 10)
    hundred=$(figures "$transport" 100 1 0 0)
    thousand=$(figures "$transport" 1000 1 0 0)
    for line in "$one" "$hundred" "$thousand"; do echo "   $line" >&2; done
    mib() { awk -v k="$(echo "$1" | field VmHWM_kB)" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
    printf '| %s | %s | %s | %s / %s / %s | %s | %s | %s | %s s |\n' "$transport" \
        "$(echo "$one" | field cpu_ms_per_200_changes)" \
        "$(echo "$one" | field 'idle_cpu_ms_in_10s')" \
        "$(echo "$one" | field reaction_ms_p50)" "$(echo "$one" | field reaction_ms_p99)" \
        "$(echo "$one" | field reaction_ms_mean)" \
        "$(mib "$one")" "$(mib "$hundred")" "$(mib "$thousand")" \
        "$(echo "$thousand" | field ready_s)"
done

echo
echo "== the message path, one user on IRC"
missing=()
command -v strace >/dev/null 2>&1 || missing+=(strace)
command -v perf >/dev/null 2>&1 || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || true
fi
if ! command -v strace >/dev/null 2>&1 || ! perf stat -e task-clock true >/dev/null 2>&1; then
    echo "no strace or no perf here: not measured"
    exit 0
fi
for run in "200 50" "1000 20"; do
    set -- $run
    line=$(FIGURES_PERF=1 figures irc 1 "$1" "$2" 0)
    echo "   $line" >&2
    printf 'CPU (task-clock) for %s messages %s ms apart: %s ms (%s ms in 10 ms ticks)\n' "$1" "$2" \
        "$(echo "$line" | field task_clock_ms)" "$(echo "$line" | field cpu_ms)"
done
counts=$(mktemp)
line=$(FIGURES_STRACE="$counts" figures irc 1 1000 20 0)
changes=$(echo "$line" | field color_changes)
echo "system calls per color change (strace -f -c over $changes changes):"
# strace -c: % time, seconds, usecs/call, calls, [errors,] syscall; the total line last
awk -v n="$changes" '
    $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { per[$NF] = $4 / n; total += $4 }
    END {
        for (k in per) if (per[k] >= 0.05) printf "  %-16s %6.2f\n", k, per[k] | "sort -k2 -rn"
        close("sort -k2 -rn")
        printf "  %-16s %6.2f\n", "all", total / n
    }' "$counts"
rm -f "$counts"
