# syntax=docker/dockerfile:1
# A scratch image holding only the static binary, its license, /config and an empty /tmp, for linux/amd64,
# linux/arm64, linux/arm/v7, linux/arm/v6 and linux/riscv64. Two ways to build
# (docs/building.md, "The container image"):
#
#   1. From prebuilt binaries (the default, small and fast, and offline: no base image is
#      pulled): run scripts/build-release.sh first (it stages dist/image/<arch><variant>/ and
#      dist/image/root/config, mode 0700), then scripts/docker-buildx.sh, or
#      scripts/image-buildah.sh to build and check it with buildah.
#   2. From source, for people without prebuilt binaries (native platform):
#      docker build --target from-source -t ghcr.io/twitch-colorchanger/twitch-colorchanger .

ARG VERSION=0.1.0

FROM scratch AS prebuilt
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION
LABEL org.opencontainers.image.title="twitch-colorchanger" \
      org.opencontainers.image.description="Changes your Twitch chat name color after every message you send" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY dist/image/${TARGETARCH}${TARGETVARIANT}/twitch-colorchanger /twitch-colorchanger
COPY LICENSE /LICENSE
# root/ holds config/ (mode 0700) and tmp/ (1777, for `demo`): copying their parent keeps
# their modes
COPY --chown=65532:65532 dist/image/root/ /
ENV TWITCH_CONF_FILE=/config/twitch_colorchanger.conf
VOLUME ["/config"]
USER 65532:65532
# Exec form only: a scratch image has no shell. Reads /config/…status.json, which the bot
# rewrites every 30 s: exit 1 if the bot is gone, stuck, or a user has had no chat for 5 min.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s CMD ["/twitch-colorchanger", "--health-check"]
ENTRYPOINT ["/twitch-colorchanger"]

FROM docker.io/library/rust:1-alpine AS source-build
# Versions come with the rust:1-alpine base; pinning them here would break with each base update.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc git
WORKDIR /src
COPY . .
RUN cargo build --locked --release \
    && cp target/release/twitch-colorchanger /twitch-colorchanger \
    && mkdir -p /rootfs/config /rootfs/tmp \
    && chmod 0700 /rootfs/config \
    && chmod 1777 /rootfs/tmp

FROM scratch AS from-source
ARG VERSION
LABEL org.opencontainers.image.title="twitch-colorchanger" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=source-build /twitch-colorchanger /twitch-colorchanger
COPY LICENSE /LICENSE
COPY --from=source-build --chown=65532:65532 /rootfs/ /
ENV TWITCH_CONF_FILE=/config/twitch_colorchanger.conf
VOLUME ["/config"]
USER 65532:65532
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s CMD ["/twitch-colorchanger", "--health-check"]
ENTRYPOINT ["/twitch-colorchanger"]

# The default target: the prebuilt image.
FROM prebuilt
