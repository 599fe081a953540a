# syntax=docker/dockerfile:1
# A scratch image holding only the static binary and its license, for linux/amd64, linux/arm64,
# linux/arm/v7, linux/arm/v6 and linux/riscv64. Two ways to build (README, "Docker"):
#
#   1. From prebuilt binaries (the default, small and fast): run scripts/build-release.sh
#      first, then scripts/docker-buildx.sh. The `pick` stage selects dist/ binary of the
#      platform being built, by TARGETARCH/TARGETVARIANT.
#   2. From source, for people without prebuilt binaries (native platform):
#      docker build --target from-source -t twitch-colorchanger .

ARG VERSION=0.1.0

FROM --platform=$BUILDPLATFORM busybox:1.37 AS pick
ARG TARGETARCH
ARG TARGETVARIANT
ARG VERSION
COPY dist/ /dist/
RUN case "${TARGETARCH}${TARGETVARIANT}" in \
        amd64) t=x86_64-unknown-linux-musl ;; \
        arm64) t=aarch64-unknown-linux-musl ;; \
        armv7) t=armv7-unknown-linux-musleabihf ;; \
        armv6) t=arm-unknown-linux-musleabihf ;; \
        riscv64) t=riscv64gc-unknown-linux-musl ;; \
        *) echo "unsupported platform ${TARGETARCH}${TARGETVARIANT}" >&2; exit 1 ;; \
    esac \
    && cp "/dist/twitch-colorchanger-${VERSION}-${t}" /twitch-colorchanger \
    && chmod 0755 /twitch-colorchanger \
    && mkdir -m 0700 /config

FROM scratch AS prebuilt
ARG VERSION
LABEL org.opencontainers.image.title="twitch-colorchanger" \
      org.opencontainers.image.description="Changes your Twitch chat name color after every message you send" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=pick /twitch-colorchanger /twitch-colorchanger
COPY LICENSE /LICENSE
COPY --from=pick --chown=65532:65532 /config /config
ENV TWITCH_CONF_FILE=/config/twitch_colorchanger.conf
VOLUME ["/config"]
USER 65532:65532
# Exec form only: a scratch image has no shell. Reads /config/…status.json, which the bot
# rewrites every 30 s: exit 1 if the bot is gone, stuck, or a user has had no chat for 5 min.
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s CMD ["/twitch-colorchanger", "--health-check"]
ENTRYPOINT ["/twitch-colorchanger"]

FROM rust:1-alpine AS source-build
# Versions come with the rust:1-alpine base; pinning them here would break with each base update.
# hadolint ignore=DL3018
RUN apk add --no-cache musl-dev gcc git
WORKDIR /src
COPY . .
RUN cargo build --locked --release \
    && cp target/release/twitch-colorchanger /twitch-colorchanger \
    && mkdir -m 0700 /config

FROM scratch AS from-source
ARG VERSION
LABEL org.opencontainers.image.title="twitch-colorchanger" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
COPY --from=source-build /twitch-colorchanger /twitch-colorchanger
COPY LICENSE /LICENSE
COPY --from=source-build --chown=65532:65532 /config /config
ENV TWITCH_CONF_FILE=/config/twitch_colorchanger.conf
VOLUME ["/config"]
USER 65532:65532
HEALTHCHECK --interval=60s --timeout=10s --start-period=30s CMD ["/twitch-colorchanger", "--health-check"]
ENTRYPOINT ["/twitch-colorchanger"]

# The default target: the prebuilt image.
FROM prebuilt
