#!/usr/bin/env bash
# Builds fully static, stripped release binaries with cargo-zigbuild (zig from PyPI as C
# compiler and linker), installing whatever a fresh machine lacks. The standard library is
# rebuilt with the release profile and its `optimize_for_size` feature (-Zbuild-std, on
# stable through RUSTC_BOOTSTRAP): smaller algorithms, same behaviour, panic messages kept;
# it takes the x86_64 binary from 2.02 MB to 1.77 MB. Unwind tables are left out
# (force-unwind-tables=no): with panic = "abort" nothing unwinds, and a stripped binary's
# backtrace names nothing anyway; that is another 240 KB on x86_64 (.eh_frame).
# Each binary carries its dependency list (cargo auditable: a compressed `.dep-v0` section of
# about 1.2 KB, readable by `cargo audit bin`, syft or trivy), and gets a CycloneDX SBOM
# beside it (cargo cyclonedx). Both tools come from crates.io (cargo install, about 90 s).
#
#   scripts/build-release.sh                 # all seven targets
#   scripts/build-release.sh x86_64-unknown-linux-musl aarch64-unknown-linux-musl
#
# Output in dist/: twitch-colorchanger-<version>-<target>, a .tar.gz of each with README.md
# and LICENSE, its SBOM twitch-colorchanger-<version>-<target>.cdx.json, the Debian packages
# of amd64, arm64, armhf and armel (scripts/build-deb.sh; where dpkg-deb is), SHA256SUMS of
# all of them, and SIZES.md (a table of sizes against the 2 MB budget, and what
# `demo` and the HTTP listener add to x86_64 against their 150 KB and 40 KB budgets: over
# either, the script fails).
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

ALL_TARGETS=(
    x86_64-unknown-linux-musl
    aarch64-unknown-linux-musl
    armv7-unknown-linux-musleabihf
    arm-unknown-linux-musleabihf
    riscv64gc-unknown-linux-musl
    mips-unknown-linux-musl
    mipsel-unknown-linux-musl
)
ZIGLANG_VERSION=0.17.1
ZIGBUILD_VERSION=0.24.0
AUDITABLE_VERSION=0.7.7
CYCLONEDX_VERSION=0.5.9
BUDGET=2000000      # "under 2 MB"
DEMO_BUDGET=150000  # what demo may add to the x86_64 binary
WEB_BUDGET=40000    # what the HTTP listener (feature web) may add to it

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

# Targets with a prebuilt std from rustup (their target is added for its linker setup; std
# itself is rebuilt from source like everywhere else).
has_prebuilt_std() {
    case "$1" in
        x86_64-unknown-linux-musl | aarch64-unknown-linux-musl) return 0 ;;
        *) return 1 ;;
    esac
}

install_tools() {
    if ! python3 -c "import ziglang" 2>/dev/null || ! command -v cargo-zigbuild >/dev/null 2>&1; then
        echo "== installing ziglang $ZIGLANG_VERSION (the linker, about 50 MB) and cargo-zigbuild $ZIGBUILD_VERSION"
        echo "   from PyPI into $(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
        python3 -m pip install --progress-bar off --disable-pip-version-check \
            "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$ZIGBUILD_VERSION"
        command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
    fi
    if ! command -v cargo-zigbuild >/dev/null 2>&1; then
        # pip's script directory may not be on PATH
        PATH="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"
        export PATH
    fi
    if ! cargo auditable --help >/dev/null 2>&1 || ! cargo cyclonedx --help >/dev/null 2>&1; then
        echo "== installing cargo-auditable $AUDITABLE_VERSION and cargo-cyclonedx $CYCLONEDX_VERSION from crates.io"
        echo "   into ${CARGO_HOME:-$HOME/.cargo}/bin (built from source once, about 90 s; cargo shows its progress)"
        cargo install --locked "cargo-auditable@$AUDITABLE_VERSION" "cargo-cyclonedx@$CYCLONEDX_VERSION"
    fi
    rustup component list --installed | grep -q '^rust-src' || rustup component add rust-src
    for t in "${targets[@]}"; do
        if has_prebuilt_std "$t"; then
            rustup target list --installed | grep -qx "$t" || rustup target add "$t"
        fi
    done
}

known() {
    local t
    for t in "${ALL_TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    return 1
}

for t in "${targets[@]}"; do
    known "$t" || { echo "unknown target $t (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
done
install_tools
mkdir -p dist

# build TARGET [CARGO ARGS…]: target/TARGET/release/twitch-colorchanger
build() {
    local t=$1
    shift
    RUSTC_BOOTSTRAP=1 cargo auditable zigbuild --locked --release --target "$t" "$@" \
        --config "target.$t.rustflags = ['-C', 'force-unwind-tables=no']" \
        -Zbuild-std=std,panic_abort -Zbuild-std-features=optimize_for_size
}

for t in "${targets[@]}"; do
    echo "== building $t"
    start=$(date +%s)
    build "$t"
    name="twitch-colorchanger-$version-$t"
    cp "target/$t/release/twitch-colorchanger" "dist/$name"
    stage=$(mktemp -d)
    mkdir "$stage/$name"
    cp "dist/$name" "$stage/$name/twitch-colorchanger"
    cp README.md LICENSE "$stage/$name/"
    tar -C "$stage" -czf "dist/$name.tar.gz" "$name"
    rm -rf "$stage"
    # written beside Cargo.toml, then moved beside the binary
    cargo cyclonedx --quiet --format json --spec-version 1.5 --target "$t" --no-build-deps \
        --override-filename "$name.cdx"
    mv "$name.cdx.json" "dist/$name.cdx.json"
    echo "   built in $(($(date +%s) - start)) s"
done

# What `demo` (and the part of the fake Twitch it plays against) and the HTTP listener
# (`web`) add: x86_64 built again without each.
demo_cost=""
web_cost=""
x86=x86_64-unknown-linux-musl
if [[ " ${targets[*]} " == *" $x86 "* ]]; then
    full=$(stat -c %s "dist/twitch-colorchanger-$version-$x86")
    echo "== building $x86 without demo (to measure what demo costs)"
    build "$x86" --no-default-features --features web
    demo_cost=$((full - $(stat -c %s "target/$x86/release/twitch-colorchanger")))
    echo "== building $x86 without web (to measure what the HTTP listener costs)"
    build "$x86" --no-default-features --features demo
    web_cost=$((full - $(stat -c %s "target/$x86/release/twitch-colorchanger")))
fi

# The container image's inputs (Dockerfile, "prebuilt"): each binary where the image build
# finds it by TARGETARCH/TARGETVARIANT, and the /config and /tmp directories with their modes.
platform_dir() {
    case "$1" in
        x86_64-unknown-linux-musl) echo amd64 ;;
        aarch64-unknown-linux-musl) echo arm64 ;;
        armv7-unknown-linux-musleabihf) echo armv7 ;;
        arm-unknown-linux-musleabihf) echo armv6 ;;
        riscv64gc-unknown-linux-musl) echo riscv64 ;;
        *) return 1 ;; # MIPS: no container image (routers run the binary itself)
    esac
}
for t in "${targets[@]}"; do
    platform_dir "$t" >/dev/null || continue
    mkdir -p "dist/image/$(platform_dir "$t")"
    install -m 0755 "dist/twitch-colorchanger-$version-$t" "dist/image/$(platform_dir "$t")/twitch-colorchanger"
done
mkdir -p dist/image/root/config dist/image/root/tmp
chmod 0700 dist/image/root/config
chmod 1777 dist/image/root/tmp # for `docker run … demo` (a scratch image has no /tmp)

if command -v dpkg-deb >/dev/null 2>&1; then
    echo "== Debian packages"
    scripts/build-deb.sh "${targets[@]}"
else
    echo "== no dpkg-deb on this machine: no Debian packages"
fi

(
    cd dist
    shopt -s nullglob
    sha256sum twitch-colorchanger-"$version"-* twitch-colorchanger_"$version"-*.deb > SHA256SUMS
    {
        echo "| target | bytes | budget 2 MB |"
        echo "|---|---|---|"
        for f in twitch-colorchanger-"$version"-*; do
            case "$f" in *.tar.gz | *.cdx.json) continue ;; esac
            size=$(stat -c %s "$f")
            verdict=ok
            [ "$size" -le "$BUDGET" ] || verdict="OVER"
            printf '| %s | %s | %s |\n' "${f#twitch-colorchanger-"$version"-}" "$size" "$verdict"
        done
        if [ -n "$demo_cost" ]; then
            verdict=ok
            [ "$demo_cost" -le "$DEMO_BUDGET" ] || verdict="OVER"
            echo
            echo "demo adds $demo_cost bytes to the x86_64 binary (budget 150 KB): $verdict"
        fi
        if [ -n "$web_cost" ]; then
            verdict=ok
            [ "$web_cost" -le "$WEB_BUDGET" ] || verdict="OVER"
            echo "the HTTP listener (web) adds $web_cost bytes to the x86_64 binary (budget 40 KB): $verdict"
        fi
    } > SIZES.md
    cat SIZES.md
)
if [ -n "$demo_cost" ] && [ "$demo_cost" -gt "$DEMO_BUDGET" ]; then
    echo "demo is over its size budget" >&2
    exit 1
fi
if [ -n "$web_cost" ] && [ "$web_cost" -gt "$WEB_BUDGET" ]; then
    echo "the HTTP listener is over its size budget" >&2
    exit 1
fi
