# Minimal for now: a scratch image around a static binary built beforehand with
#   cargo build --release --target x86_64-unknown-linux-musl
# The multi-arch image (TARGETARCH/TARGETVARIANT, non-root user, labels) is the distribution issue.
FROM scratch
COPY target/x86_64-unknown-linux-musl/release/twitch-colorchanger /twitch-colorchanger
ENV TWITCH_CONF_FILE=/config/twitch_colorchanger.conf
VOLUME ["/config"]
ENTRYPOINT ["/twitch-colorchanger"]
