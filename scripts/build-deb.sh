#!/usr/bin/env bash
# Debian packages from the static release binaries in dist/ (scripts/build-release.sh runs
# this after building them), with dpkg-deb: no debhelper, no source package, nothing to
# install on a Debian or Ubuntu machine. For each binary that is there:
#
#   x86_64-unknown-linux-musl       -> twitch-colorchanger_<version>-1_amd64.deb
#   aarch64-unknown-linux-musl      -> …_arm64.deb
#   arm-unknown-linux-musleabihf    -> …_armhf.deb and …_armel.deb (ARMv6 with VFP, hard-float)
#
# armhf gets the ARMv6 binary, not the ARMv7 one: Raspberry Pi OS's 32-bit armhf runs on the
# ARMv6 Pi Zero and Pi 1 too, and the ARMv6 build runs on every armhf machine. armel is
# Debian's ARMv5 soft-float port: the static binary needs no libc of either ABI, but it does
# need an ARMv6 CPU with VFP (a Pi Zero/1 running Debian armel); on an ARMv5 CPU (Kirkwood
# NAS, …) the armel package refuses to install rather than leave a binary that dies with
# SIGILL.
#
# Each package: /usr/bin/twitch-colorchanger, the hardened unit (scripts/systemd, with the
# binary in /usr/bin), the service user (sysusers.d, else useradd), /etc/twitch-colorchanger
# at 0700 owned by it, an example config as a conffile (copied to the config on first
# install; the bot rewrites the config, so the config itself is never a conffile and dpkg
# never asks about it), a man page from --help (scripts/debian/manpage.py), README.Debian,
# and a copyright file with the licence of every crate in the binary
# (scripts/debian/copyright.py).
#
#   scripts/build-deb.sh                       # every binary in dist/
#   scripts/build-deb.sh aarch64-unknown-linux-musl
#   DEB_VERSION=0.0.9-1 DEB_OUT=/tmp scripts/build-deb.sh   # another version, elsewhere
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb_version=${DEB_VERSION:-$version-1}
out_dir=${DEB_OUT:-dist}
maintainer="twitch-colorchanger maintainers <twitch-colorchanger@users.noreply.github.com>"
# reproducible: file times and the changelog's date are the commit's
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH

arches_of() {
    case "$1" in
        x86_64-unknown-linux-musl) echo amd64 ;;
        aarch64-unknown-linux-musl) echo arm64 ;;
        arm-unknown-linux-musleabihf) echo armhf armel ;;
    esac
}

# The man page comes from a binary this machine can run (any of them, under binfmt/qemu).
manpage=$(mktemp)
stage=
trap 'rm -f "$manpage"; [ -z "$stage" ] || rm -rf "$stage"' EXIT
for f in dist/twitch-colorchanger-"$version"-*; do
    case "$f" in *.tar.gz | *.cdx.json) continue ;; esac
    if "$f" --version >/dev/null 2>&1; then
        python3 scripts/debian/manpage.py "$f" > "$manpage"
        break
    fi
done
if [ ! -s "$manpage" ]; then
    echo "no binary in dist/ runs on this machine, and the man page is written from its --help:" >&2
    echo "build one first: scripts/build-release.sh x86_64-unknown-linux-musl (on amd64; it makes the packages too)" >&2
    exit 1
fi

unit() {
    # the unit of scripts/systemd without its how-to-install comment, the binary in /usr/bin
    sed -e '1,/^\[Unit\]/{/^\[Unit\]/!d}' -e 's|/usr/local/bin/|/usr/bin/|' \
        -e 's|^Documentation=|Documentation=man:twitch-colorchanger(1) |' \
        scripts/systemd/twitch-colorchanger.service
}

changelog() {
    cat <<EOF
twitch-colorchanger ($deb_version) unstable; urgency=medium

  * twitch-colorchanger $version, packaged from its static release binary.
    What changed: /usr/share/doc/twitch-colorchanger/changelog.gz.

 -- $maintainer  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
}

preinst_armel() {
    cat <<'EOF'
#!/bin/sh
# twitch-colorchanger preinst (armel): the binary is built for ARMv6 with VFP (hard-float
# instructions; static, so the ABI of the system's libc does not matter). Refuse an ARMv5 CPU,
# where it would die with SIGILL, and say what to do instead.
set -e
if [ "$1" = install ] || [ "$1" = upgrade ]; then
    if grep -q '^Features' /proc/cpuinfo 2>/dev/null && ! grep -q '^Features.*\bvfp\b' /proc/cpuinfo; then
        echo "twitch-colorchanger: this CPU has no VFP (ARMv5?); the armel package needs an ARMv6 CPU with VFP, such as a Raspberry Pi Zero or 1" >&2
        exit 1
    fi
fi
exit 0
EOF
}

built=0
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl arm-unknown-linux-musleabihf)
for target in "${targets[@]}"; do
    binary="dist/twitch-colorchanger-$version-$target"
    [ -f "$binary" ] && [ -n "$(arches_of "$target")" ] || continue
    copyright=$(python3 scripts/debian/copyright.py "$target")
    for arch in $(arches_of "$target"); do
        stage=$(mktemp -d)
        root="$stage/root"
        doc="$root/usr/share/doc/twitch-colorchanger"
        install -d -m 0755 "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
            "$root/usr/lib/sysusers.d" "$root/usr/share/man/man1" "$doc" \
            "$root/usr/share/lintian/overrides"
        # 0755 here; postinst makes it 0700 for the service user with dpkg-statoverride, which
        # dpkg then applies on every upgrade
        install -d -m 0755 "$root/etc/twitch-colorchanger"
        install -m 0755 "$binary" "$root/usr/bin/twitch-colorchanger"
        unit > "$root/lib/systemd/system/twitch-colorchanger.service"
        install -m 0644 scripts/debian/sysusers.conf "$root/usr/lib/sysusers.d/twitch-colorchanger.conf"
        install -m 0644 scripts/debian/twitch_colorchanger.conf.example \
            "$root/etc/twitch-colorchanger/twitch_colorchanger.conf.example"
        gzip -9n < "$manpage" > "$root/usr/share/man/man1/twitch-colorchanger.1.gz"
        install -m 0644 scripts/debian/README.Debian "$doc/README.Debian"
        gzip -9n < CHANGELOG.md > "$doc/changelog.gz"
        changelog | gzip -9n > "$doc/changelog.Debian.gz"
        printf '%s\n' "$copyright" > "$doc/copyright"
        install -m 0644 scripts/debian/lintian-overrides "$root/usr/share/lintian/overrides/twitch-colorchanger"
        chmod 0644 "$root/lib/systemd/system/twitch-colorchanger.service" "$doc"/*

        for script in postinst prerm postrm; do
            install -m 0755 "scripts/debian/$script" "$root/DEBIAN/$script"
        done
        if [ "$arch" = armel ]; then
            preinst_armel > "$root/DEBIAN/preinst"
            chmod 0755 "$root/DEBIAN/preinst"
        fi
        echo /etc/twitch-colorchanger/twitch_colorchanger.conf.example > "$root/DEBIAN/conffiles"
        cat > "$root/DEBIAN/control" <<EOF
Package: twitch-colorchanger
Version: $deb_version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: passwd, procps
Section: net
Priority: optional
Homepage: https://github.com/twitch-colorchanger/twitch-colorchanger
Description: change your Twitch chat name color after every message you send
 A long-running bot for one or more Twitch accounts: every time one of them
 sends a chat message, from any client, it changes that account's name color
 (a random hex color for Prime/Turbo, else one of Twitch's 15 named colors,
 never the same twice in a row; or a rainbow or your own palette).
 .
 It authorises with Twitch's device-code flow, renews and stores its tokens
 in the config file, reconnects after any fault, reloads the config when it
 changes and takes commands from chat. A static binary (no libc, the Mozilla
 root certificates compiled in) run by a hardened systemd unit as its own
 system user.
EOF
        (cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
        chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
        find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
        out="$out_dir/twitch-colorchanger_${deb_version}_$arch.deb"
        dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
        rm -rf "$stage"
        stage=
        echo "   $out ($(stat -c %s "$out") bytes)"
        built=$((built + 1))
    done
done
[ "$built" -gt 0 ] || echo "   none: no binary in dist/ for a Debian architecture (amd64, arm64, armhf, armel)"
