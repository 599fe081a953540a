#!/usr/bin/env bash
# Proves the binaries in dist/ (from scripts/build-release.sh): for each target
#   - statically linked, no ELF interpreter, no dynamic section (file + readelf);
#   - size against the budget (under 2 MB);
#   - its dependency list embedded (scripts/audit-info.py reads cargo auditable's section) and
#     its CycloneDX SBOM beside it, both naming this version and rustls;
#   - `--version` under qemu user emulation;
#   - the end-to-end suites (tests/e2e.rs, tests/tokens.rs, tests/live.rs, tests/demo.rs) run
#     against that binary under qemu, talking TLS to the fake Twitch on 127.0.0.1: every
#     target must change a color;
#   - `demo` as a newcomer runs it (default pace, NO_COLOR, its own TMPDIR): exit 0, the
#     summary printed, within 30 s, and its temporary directory gone;
# and for x86_64 the scratch check: the binary alone in an empty root (no libc, no CA store,
# no /tmp), as a numeric non-root user, changes a color and writes its config.
#
#   scripts/verify-release.sh                 # every binary in dist/
#   scripts/verify-release.sh aarch64-unknown-linux-musl
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

BUDGET=2000000 # "under 2 MB"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for f in dist/twitch-colorchanger-"$version"-*; do
        case "$f" in *.tar.gz | *.cdx.json | *SHA256SUMS | *SIZES.md) continue ;; esac
        [ -f "$f" ] && targets+=("${f#dist/twitch-colorchanger-"$version"-}")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "no binaries in dist/: run scripts/build-release.sh first" >&2; exit 2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
command -v file >/dev/null 2>&1 || missing+=(file)
command -v readelf >/dev/null 2>&1 || missing+=(binutils)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

runner() {
    local host
    host=$(uname -m)
    case "$1" in
        x86_64-*) [ "$host" = x86_64 ] && echo "" || echo "qemu-x86_64-static" ;;
        aarch64-*) [ "$host" = aarch64 ] && echo "" || echo "qemu-aarch64-static" ;;
        armv7-*) echo "qemu-arm-static -cpu cortex-a7" ;;
        arm-*) echo "qemu-arm-static -cpu arm1176" ;; # a real ARMv6 CPU (Pi Zero/1)
        riscv64gc-*) echo "qemu-riscv64-static" ;;
        mips-*) echo "qemu-mips-static -cpu 24Kc" ;;    # ath79 routers: MIPS 24Kc
        mipsel-*) echo "qemu-mipsel-static -cpu 24KEc" ;; # ramips MT7621 is 1004Kc; 24KEc is in qemu
        *) echo "unknown target $1" >&2; return 1 ;;
    esac
}

echo "== building the end-to-end tests (host)"
cargo test --locked --release --test e2e --test tokens --test live --test demo --no-run 2>&1 | tail -n 2

failed=0
report=()
for t in "${targets[@]}"; do
    bin="dist/twitch-colorchanger-$version-$t"
    echo "== $t"
    [ -f "$bin" ] || { echo "missing $bin" >&2; failed=1; report+=("| $t | - | missing | | | | |"); continue; }
    size=$(stat -c %s "$bin")
    static=ok
    file -b "$bin" | grep -Eq 'statically linked|static-pie linked' || static="NOT STATIC"
    readelf -l "$bin" | grep -q 'INTERP' && static="HAS INTERPRETER"
    readelf -d "$bin" 2>/dev/null | grep -q 'NEEDED' && static="NEEDS LIBRARIES"
    # the tests' fake Twitch and its crash-window hook stay out of what ships
    if grep -aq -e 'TCC_PAUSE_BEFORE_RENAME' -e 'token_script' "$bin"; then
        static="HAS TEST HOOKS"
    fi
    budget=ok
    [ "$size" -le "$BUDGET" ] || budget=OVER
    bom=ok
    deps=$(scripts/audit-info.py "$bin") || deps=""
    grep -q "^twitch-colorchanger $version " <<<"$deps" && grep -q '^rustls ' <<<"$deps" || bom="NO DEPENDENCY LIST"
    python3 - "$bin.cdx.json" "$version" <<'PY' || bom="NO SBOM ($bin.cdx.json)"
import json, sys
bom = json.load(open(sys.argv[1]))
assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.5"
assert bom["metadata"]["component"]["name"] == "twitch-colorchanger"
assert bom["metadata"]["component"]["version"] == sys.argv[2]
assert any(c["purl"].startswith("pkg:cargo/rustls@") for c in bom["components"])
PY
    echo "   dependency list and SBOM: $bom"
    run=$(runner "$t")
    # shellcheck disable=SC2086
    if ver=$($run "$bin" --version) && [[ "$ver" == *"target $t)"* ]]; then
        echo "   $ver"
    else
        echo "   --version failed or names another target: $ver"
        ver="FAILED"
    fi
    e2e=ok
    if ! TCC_BIN="$PWD/$bin" TCC_RUNNER="$run" cargo test --locked --release --no-fail-fast --test e2e --test tokens --test live --test demo -- --test-threads=2 >"dist/e2e-$t.log" 2>&1; then
        e2e="FAILED (dist/e2e-$t.log)"
    fi
    grep -E '^test result' "dist/e2e-$t.log" | sed 's/^/   /'
    demo=ok
    tmp=$(mktemp -d)
    start=$(date +%s)
    # shellcheck disable=SC2086
    if ! TMPDIR="$tmp" NO_COLOR=1 timeout 60 $run "$bin" demo >"dist/demo-$t.log" 2>&1; then
        demo="FAILED (dist/demo-$t.log)"
    elif ! grep -q 'Done in' "dist/demo-$t.log" || [ -n "$(ls -A "$tmp")" ]; then
        demo="NO SUMMARY OR LEFT FILES (dist/demo-$t.log)"
    elif [ $(($(date +%s) - start)) -gt 30 ]; then
        demo="TOO SLOW: $(($(date +%s) - start)) s"
    fi
    rm -rf "$tmp"
    grep -A1 'Done in' "dist/demo-$t.log" | sed 's/^/   demo:/' || true
    [ "$static" = ok ] && [ "$budget" = ok ] && [ "$bom" = ok ] && [ "$ver" != FAILED ] && [ "$e2e" = ok ] && [ "$demo" = ok ] || failed=1
    report+=("| $t | $size | $static | $budget | $bom | $e2e | $demo |")
done

scratch="not run (no x86_64 binary)"
for t in "${targets[@]}"; do
    [ "$t" = x86_64-unknown-linux-musl ] || continue
    echo "== scratch check (x86_64 binary alone in an empty root)"
    if [ "$(id -u)" != 0 ]; then
        scratch="skipped (needs root for chroot)"
    elif TCC_BIN="$PWD/dist/twitch-colorchanger-$version-$t" cargo test --locked --release --test e2e -- --ignored scratch_root_smoke >dist/scratch.log 2>&1; then
        scratch=ok
    else
        scratch="FAILED (dist/scratch.log)"
        failed=1
    fi
done

echo
echo "| target | bytes | static | < 2 MB | dependency list, SBOM | end-to-end under emulation | demo |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${report[@]}"
echo
echo "scratch check: $scratch"
exit $failed
