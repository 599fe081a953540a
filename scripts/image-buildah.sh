#!/usr/bin/env bash
# Builds the multi-arch scratch image from the binaries staged in dist/image/ (run
# scripts/build-release.sh first) with buildah, offline (FROM scratch + COPY only: no base
# image is pulled), and checks each platform's image: size (at most 3 MB), user 65532,
# entrypoint, HEALTHCHECK, /config mode 0700 owned by 65532, /tmp 1777, `demo` run in the
# native image's root as its user, and `--version` run from the
# image's own root filesystem (through qemu for foreign architectures). Installs buildah
# (Debian package) when missing. Needs root (vfs storage, chroot isolation, mounts).
#   scripts/image-buildah.sh [IMAGE]   (default ghcr.io/twitch-colorchanger/twitch-colorchanger:latest)
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."
image=${1:-ghcr.io/twitch-colorchanger/twitch-colorchanger:latest}
limit=3000000
if ! command -v buildah >/dev/null 2>&1; then
    echo "== installing buildah"
    apt-get install -y --no-install-recommends buildah >/dev/null
fi
b() { buildah --storage-driver vfs "$@"; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
[ -d dist/image/root/config ] || { echo "dist/image/ is missing: run scripts/build-release.sh first" >&2; exit 1; }

platform_of() {
    case "$1" in
        amd64) echo linux/amd64 ;;
        arm64) echo linux/arm64 ;;
        armv7) echo linux/arm/v7 ;;
        armv6) echo linux/arm/v6 ;;
        riscv64) echo linux/riscv64 ;;
    esac
}
qemu_of() {
    case "$1" in
        amd64) [ "$(uname -m)" = x86_64 ] || echo qemu-x86_64-static ;;
        arm64) [ "$(uname -m)" = aarch64 ] || echo qemu-aarch64-static ;;
        armv7 | armv6) echo qemu-arm-static ;;
        riscv64) echo qemu-riscv64-static ;;
    esac
}

b manifest rm "$image" >/dev/null 2>&1 || true
b manifest create "$image" >/dev/null
failed=0
for dir in dist/image/*/; do
    arch=$(basename "$dir")
    [ "$arch" = root ] && continue
    platform=$(platform_of "$arch")
    [ -n "$platform" ] || { echo "unknown platform directory $dir" >&2; exit 1; }
    echo "== $platform"
    target_arch=$(echo "$platform" | cut -d/ -f2)
    target_variant=$(echo "$platform" | cut -s -d/ -f3)
    variant=()
    [ -z "$target_variant" ] || variant=(--variant "$target_variant")
    b bud --quiet --isolation chroot --format docker --platform "$platform" \
        --build-arg "TARGETARCH=$target_arch" --build-arg "TARGETVARIANT=$target_variant" \
        --build-arg "VERSION=$version" --target prebuilt -t "$image-$arch" . >/dev/null
    # buildah 1.28 (Debian 12) records every arm image as v7: set the platform explicitly,
    # in the image and in the manifest list, so a v6 device finds its image
    ctr=$(b from --quiet --pull-never "$image-$arch" 2>/dev/null)
    b config --os linux --arch "$target_arch" "${variant[@]}" "$ctr"
    b commit --quiet --format docker "$ctr" "$image-$arch" >/dev/null
    b manifest add --os linux --arch "$target_arch" "${variant[@]}" "$image" "$image-$arch" >/dev/null
    mnt=$(b mount "$ctr")
    check() { # what, got, want
        if [ "$2" = "$3" ]; then echo "   ok   $1: $2"; else echo "   FAIL $1: $2 (want $3)"; failed=1; fi
    }
    size=$(du -sb "$mnt" | cut -f1)
    if [ "$size" -le "$limit" ]; then echo "   ok   size: $size bytes"; else echo "   FAIL size: $size bytes (over $limit)"; failed=1; fi
    check files "$(cd "$mnt" && find . -mindepth 1 | sort | tr '\n' ' ')" "./LICENSE ./config ./tmp ./twitch-colorchanger "
    check user "$(b inspect --format '{{.Docker.Config.User}}' "$ctr")" "65532:65532"
    check entrypoint "$(b inspect --format '{{.Docker.Config.Entrypoint}}' "$ctr")" "[/twitch-colorchanger]"
    check healthcheck "$(b inspect --format '{{.Docker.Config.Healthcheck.Test}}' "$ctr")" "[CMD /twitch-colorchanger --health-check]"
    check "/config" "$(stat -c '%a %u:%g' "$mnt/config")" "700 65532:65532"
    check "/tmp" "$(stat -c '%a' "$mnt/tmp")" "1777"
    check platform "$(b inspect --type image --format '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}{{if .OCIv1.Variant}}/{{.OCIv1.Variant}}{{end}}' "$image-$arch")" "$platform"
    qemu=$(qemu_of "$arch")
    if [ -z "$qemu" ]; then
        out=$(chroot "$mnt" /twitch-colorchanger --version 2>&1) || true
    else
        out=$("$qemu" "$mnt/twitch-colorchanger" --version 2>&1) || true
    fi
    case "$out" in
        "twitch-colorchanger $version "*) echo "   ok   --version: $out" ;;
        *) echo "   FAIL --version: $out"; failed=1 ;;
    esac
    if [ -z "$qemu" ]; then
        # `docker run --rm IMAGE demo`: the image's own /tmp, as its user
        out=$(chroot --userspec=65532:65532 "$mnt" /twitch-colorchanger demo --pause 0 2>&1) || true
        case "$out" in
            *"Done in"*) check "demo, tmp left" "$(ls -A "$mnt/tmp")" "" ;;
            *) echo "   FAIL demo: $(printf '%s' "$out" | tail -n 3)"; failed=1 ;;
        esac
    fi
    b umount "$ctr" >/dev/null
    b rm "$ctr" >/dev/null
done
echo "== manifest $image"
b manifest inspect "$image" | grep -o '"architecture": "[a-z0-9]*"\|"variant": "[a-z0-9]*"' | tr '\n' ' '
echo
exit $failed
