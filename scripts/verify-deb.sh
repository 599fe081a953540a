#!/usr/bin/env bash
# Proves the Debian packages in dist/ (scripts/build-deb.sh, run by build-release.sh):
#   - every package: the Architecture its name says, and a binary of that architecture
#     inside (dpkg-deb --info/--contents, file);
#   - amd64, installed on this machine (root, or sudo) as a user would:
#       lintian clean (errors and warnings; overrides justified in scripts/debian/);
#       install of an older version (the same binary packaged as <version>~prev-1): the
#       system user, /etc/twitch-colorchanger at 0700 owned by it, the config from the example
#       at 0600, `check` run as the service user;
#       a config with tokens written, then the upgrade: the config byte for byte, the directory
#       still 0700, `--version` of the installed binary, the man page;
#       systemd-analyze verify on the installed unit;
#       remove: the binary gone, the config byte for byte; purge: the directory gone;
#     all with DEBIAN_FRONTEND=noninteractive and stdin closed: nothing may ask.
# It refuses to run where twitch-colorchanger is installed already (a purge would delete
# that config and its tokens), and removes the system user it created.
#
#   scripts/verify-deb.sh
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
debs=(dist/twitch-colorchanger_"$version"-1_*.deb)
[ -f "${debs[0]}" ] || { echo "no packages in dist/: run scripts/build-release.sh first" >&2; exit 2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== every package: its architecture and its binary"
for deb in "${debs[@]}"; do
    arch=${deb##*_}
    arch=${arch%.deb}
    [ "$(dpkg-deb --field "$deb" Architecture)" = "$arch" ] || fail "$deb: Architecture is not $arch"
    contents=$(dpkg-deb --contents "$deb")
    grep -q ' \./usr/bin/twitch-colorchanger$' <<<"$contents" || fail "$deb: no /usr/bin/twitch-colorchanger"
    unpacked=$(mktemp -d)
    dpkg-deb --extract "$deb" "$unpacked"
    kind=$(file -b "$unpacked/usr/bin/twitch-colorchanger")
    rm -rf "$unpacked"
    case "$arch" in
        amd64) want="x86-64" ;;
        arm64) want="ARM aarch64" ;;
        armhf | armel) want="ARM, EABI5" ;;
        *) fail "$deb: unknown architecture $arch" ;;
    esac
    case "$kind" in *"$want"*"statically linked"*) ;; *) fail "$deb: the binary is $kind, not $want static" ;; esac
    echo "   $deb: $arch, $want, static"
done

deb=dist/twitch-colorchanger_"$version"-1_amd64.deb
if [ ! -f "$deb" ]; then
    echo "no amd64 package: install, upgrade, remove and purge not tried"
    exit 0
fi
if [ "$(dpkg --print-architecture)" != amd64 ]; then
    echo "not an amd64 machine: install, upgrade, remove and purge not tried"
    exit 0
fi
if dpkg-query -W -f '${Status}' twitch-colorchanger 2>/dev/null | grep -qv 'not-installed'; then
    fail "twitch-colorchanger is installed on this machine: this test would purge its config and tokens; run it in a container or chroot"
fi
missing=()
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== lintian"
lintian --fail-on error,warning "$deb" 2>&1 | grep -v 'running with root privileges' || true
lintian --fail-on error,warning "$deb" >/dev/null 2>&1 || fail "lintian reports errors or warnings"

work=$(mktemp -d)
had_user=0
getent passwd twitch-colorchanger >/dev/null && had_user=1
cleanup() {
    as_root env DEBIAN_FRONTEND=noninteractive dpkg --purge twitch-colorchanger >/dev/null 2>&1 || true
    if [ "$had_user" = 0 ] && getent passwd twitch-colorchanger >/dev/null; then
        as_root userdel twitch-colorchanger || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
dpkg_() { as_root env DEBIAN_FRONTEND=noninteractive dpkg "$@" </dev/null; }
dir=/etc/twitch-colorchanger
conf=$dir/twitch_colorchanger.conf
owner_mode() { as_root stat -c '%U:%G %a' "$1"; }

echo "== install the previous version"
DEB_VERSION="$version~prev-1" DEB_OUT="$work" scripts/build-deb.sh x86_64-unknown-linux-musl >/dev/null
said=$(dpkg_ -i "$work/twitch-colorchanger_$version~prev-1_amd64.deb" 2>&1)
grep -q "twitch-colorchanger: next, put your login, client id and channels into $conf" <<<"$said" \
    || fail "a first install names no next step: $said"
uid=$(id -u twitch-colorchanger) || fail "no system user twitch-colorchanger"
[ "$uid" -lt 1000 ] || fail "twitch-colorchanger has uid $uid, not a system uid"
[ "$(owner_mode "$dir")" = "twitch-colorchanger:twitch-colorchanger 700" ] || fail "$dir is $(owner_mode "$dir")"
[ "$(owner_mode "$conf")" = "twitch-colorchanger:twitch-colorchanger 600" ] || fail "$conf is $(owner_mode "$conf")"
as_root cmp -s "$conf" scripts/debian/twitch_colorchanger.conf.example || fail "$conf is not the example"
# the example's placeholders are named, and the service user can read its config
out=$(as_root runuser -u twitch-colorchanger -- twitch-colorchanger check -c "$conf" 2>&1) && fail "check passed the example"
grep -q 'still holds the example placeholder' <<<"$out" || fail "check said: $out"
echo "   user $uid, $dir 700, $conf 600 from the example, check names its placeholders, the next step said"

echo "== a config with tokens, then the upgrade"
as_root runuser -u twitch-colorchanger -- sh -c "cat > $conf" <<'EOF'
{
  "users": [
    {
      "username": "someone",
      "client_id": "0123456789abcdefghijklmnopqrst",
      "access_token": "abcdefghijklmnopqrstuvwxyz0123",
      "refresh_token": "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcd",
      "channels": ["someone"],
      "is_prime_or_turbo": true
    }
  ]
}
EOF
as_root cat "$conf" > "$work/before"
said=$(dpkg_ -i "$deb" 2>&1)
! grep -q "next, put your login" <<<"$said" || fail "an upgrade repeats the first install's next step"
[ "$(dpkg-query -W -f '${Version}' twitch-colorchanger)" = "$version-1" ] || fail "the upgrade did not install $version-1"
as_root cmp "$conf" "$work/before" || fail "the upgrade changed $conf"
[ "$(owner_mode "$dir")" = "twitch-colorchanger:twitch-colorchanger 700" ] || fail "after the upgrade $dir is $(owner_mode "$dir")"
[ "$(owner_mode "$conf")" = "twitch-colorchanger:twitch-colorchanger 600" ] || fail "after the upgrade $conf is $(owner_mode "$conf")"
installed=$(twitch-colorchanger --version)
case "$installed" in "twitch-colorchanger $version "*) ;; *) fail "--version says $installed" ;; esac
zcat /usr/share/man/man1/twitch-colorchanger.1.gz | grep -q '^\.SH EXIT STATUS' || fail "the man page has no EXIT STATUS"
echo "   config byte for byte, $dir 700; $installed"

echo "== systemd-analyze verify"
systemd-analyze verify /lib/systemd/system/twitch-colorchanger.service
echo "   the unit verifies"

echo "== remove, then purge"
dpkg_ -r twitch-colorchanger >/dev/null
[ ! -e /usr/bin/twitch-colorchanger ] || fail "remove left /usr/bin/twitch-colorchanger"
as_root cmp "$conf" "$work/before" || fail "remove changed $conf"
dpkg_ -P twitch-colorchanger >/dev/null
as_root test ! -e "$dir" || fail "purge left $dir"
! dpkg-statoverride --list "$dir" >/dev/null || fail "purge left the statoverride of $dir"
echo "   remove kept the config; purge deleted $dir"
echo "the Debian packages are fine"
