#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60) with cargo-fuzz (libFuzzer +
# AddressSanitizer), on the stable toolchain with RUSTC_BOOTSTRAP=1 (no nightly needed), and
# prints the executions per target. Exits non-zero if a target finds a crash; its input is
# then in fuzz/artifacts/<target>/ (turn it into a regression test, fix, run again).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cd fuzz && cargo fuzz list)
fi
echo "== building the fuzz targets"
(cd fuzz && cargo fuzz build 2>&1 | tail -n 1)
failed=0
printf '| target | seconds | executions | exec/s | corpus |\n|---|---|---|---|---|\n' >fuzz/last-run.md
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus/$t"
    # seeds: the public IRC vectors for the IRC targets, the README's config for the loader
    case "$t" in
        irc_line | chat_session)
            python3 - "fuzz/corpus/$t" <<'PY'
import json, os, sys
out = sys.argv[1]
for i, t in enumerate(json.load(open("tests/data/irc-parser-tests/msg-split.json"))["tests"]):
    with open(os.path.join(out, f"seed-{i}"), "w") as f:
        f.write(t["input"] + "\r\n")
PY
            ;;
        config) cp scripts/docker-compose.yml "fuzz/corpus/$t/seed-compose" 2>/dev/null || true ;;
        web_request)
            printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\n\r\n' >"fuzz/corpus/$t/seed-get"
            printf 'HEAD /?x=1 HTTP/1.0\n\n' >"fuzz/corpus/$t/seed-head"
            ;;
        eventsub_session)
            # each piece: a head byte (0x40: a text frame; length in 32-byte units), then JSON
            python3 - "fuzz/corpus/$t" <<'PY'
import os, sys
out = sys.argv[1]
def piece(text):
    text += " " * (-len(text) % 32)
    return bytes([0x40 | len(text) // 32]) + text.encode()
meta = '{"metadata":{"message_id":"%s","message_type":"%s","message_timestamp":"2026-11-26T10:00:00Z"%s},"payload":%s}'
welcome = meta % ("w", "session_welcome", "", '{"session":{"id":"S1","keepalive_timeout_seconds":10}}')
chat = meta % ("n", "notification", ',"subscription_type":"channel.chat.message"',
    '{"event":{"broadcaster_user_login":"lumenwave","chatter_user_id":"81234567","message_id":"m","message":{"text":"hi"}}}')
reconnect = meta % ("r", "session_reconnect", "", '{"session":{"reconnect_url":"wss://eventsub.example/ws?x=1"}}')
revoke = meta % ("v", "revocation", "", '{"subscription":{"status":"user_removed","condition":{"broadcaster_user_id":"1"}}}')
keepalive = meta % ("k", "session_keepalive", "", "{}")
for name, seq in {"welcome-chat": [welcome, chat, chat], "reconnect": [welcome, reconnect, welcome],
                  "revoke": [welcome, revoke, keepalive]}.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(b"".join(piece(t) for t in seq))
PY
            ;;
    esac
    log="fuzz/$t.log"
    if (cd fuzz && cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1) >"$log" 2>&1; then
        runs=$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')
        rate=$(( runs / seconds )) 2>/dev/null || rate='?'
        corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
        printf '| %s | %s | %s | %s | %s |\n' "$t" "$seconds" "$runs" "$rate" "$corpus" | tee -a fuzz/last-run.md
    else
        failed=1
        echo "!! $t found a crash: see $log and fuzz/artifacts/$t/"
        grep -m3 -E 'panicked|ERROR' "$log" || true
    fi
done
exit $failed
