#!/usr/bin/env bash
# Renders the status page (three users: two changing colors, one waiting for its device code)
# in headless Chromium and saves a screenshot; checks that the browser's DOM holds every user.
#   scripts/screenshot.sh [OUT.png]      (default docs/status-page.png)
# Installs Debian's chromium if it is missing (needs root or sudo and the apt registry).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,5p' "$0" | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
out="${1:-docs/status-page.png}"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "== installing chromium (Debian package)"
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get install -y --no-install-recommends chromium >/dev/null
    browser=$(command -v chromium)
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
TCC_PAGE_OUT="$work" cargo test --locked --test web every_endpoint -- --quiet >/dev/null
# no JavaScript: the page must stand without it (and a reload would race the screenshot)
flags=(--headless --no-sandbox --disable-gpu --disable-javascript --hide-scrollbars
    --user-data-dir="$work/profile")
"$browser" "${flags[@]}" --dump-dom "file://$work/status-page.html" 2>/dev/null >"$work/dom.html"
for user in hueshift_bot lumen_wave new_user; do
    grep -q "<h2>$user<span" "$work/dom.html" || { echo "the rendered page lacks $user" >&2; exit 1; }
done
mkdir -p "$(dirname "$out")"
"$browser" "${flags[@]}" --window-size=900,1400 --screenshot="$out" \
    "file://$work/status-page.html" 2>/dev/null
[ "$(stat -c %s "$out")" -gt 10000 ] || { echo "$out looks empty" >&2; exit 1; }
echo "screenshot: $out ($(stat -c %s "$out") bytes)"
