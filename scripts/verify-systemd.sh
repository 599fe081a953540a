#!/usr/bin/env bash
# Proves the amd64 Debian package (dist/, from scripts/build-release.sh) under a real systemd:
# Debian bookworm booted with systemd-nspawn (the root filesystem made by debootstrap once and
# kept in target/systemd/), sharing this machine's network, against the independent fake Twitch
# (scripts/independent-twitch.py --serve) on 127.0.0.1:
#   - the previous version installed, a config written, `setup` authorised as the service user;
#   - `systemctl start`: active once the bot says READY=1, in chat, a color change after a
#     chat message, `status` right as the service user and as root, `systemctl status` showing
#     the bot's "1 of 1 user(s) in chat", the journal's lines without a second timestamp and
#     with their priority (`journalctl -p err` finds an error);
#   - `systemctl reload` applies an edit (a channel joined); a broken edit is an error line;
#   - `systemctl stop` within 5 s, the tokens in the config; a `kill -9` restarted by Restart=;
#     a bot stopped with SIGSTOP killed and restarted by the watchdog; exit status 2 (a config
#     problem) not restarted;
#   - open files: the unit's limit, and 1,000 users in chat under it with no word of open files
#     (the Rust fake Twitch of tests/systemd.rs), and under a drop-in of LimitNOFILE=1024:524288;
#   - `systemd-analyze security` at or below 2.0; the upgrade to this version while it runs
#     (restarted, the config byte for byte), then purge.
# Root only (debootstrap, systemd-nspawn, nsenter; installed with apt-get when missing). The
# unit's restart and watchdog times are shortened by a drop-in, so that this takes about three
# minutes (plus one for debootstrap on the first run).
#
#   scripts/verify-systemd.sh
set -euo pipefail
case "${1:-}" in -h | --help) sed -n '2,/^set -/p' "$0" | sed '$d' | cut -c3-; exit 0 ;; esac
cd "$(dirname "$0")/.."

fail() { echo "FAIL: $*" >&2; exit 1; }
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || fail "run as root (it boots a container)"
    exec sudo "$0" "$@"
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
deb=dist/twitch-colorchanger_"$version"-1_amd64.deb
bin=dist/twitch-colorchanger-"$version"-x86_64-unknown-linux-musl
[ -f "$deb" ] && [ -x "$bin" ] || fail "no $deb or $bin: run scripts/build-release.sh x86_64-unknown-linux-musl first"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- the root filesystem, made once (procps: the unit's ExecReload runs /bin/kill)
cache=target/systemd
packages=systemd,systemd-sysv,dbus,procps
rootfs=$cache/rootfs
if [ "$(cat "$cache/rootfs.packages" 2>/dev/null)" != "$packages" ]; then
    echo "== debootstrap bookworm ($packages) into $rootfs"
    mkdir -p "$cache"
    # systemd starts no unit in a root directory of mode 0700 (mktemp's)
    chmod 0755 "$cache"
    rm -rf "$rootfs" "$rootfs.new"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs.new" \
        http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || fail "debootstrap failed (see $cache/debootstrap.log)"
    mv "$rootfs.new" "$rootfs"
    echo "$packages" >"$cache/rootfs.packages"
fi
work=$(mktemp -d)
chmod 0755 "$work"
mkdir -p "$work/share"
started=$(date +%s)

nspawn_pid=""
fake_pid=""
many_pid=""
cleanup() {
    set +e
    [ -n "$many_pid" ] && kill "$many_pid" 2>/dev/null && wait "$many_pid" 2>/dev/null
    [ -n "$nspawn_pid" ] && kill "$nspawn_pid" 2>/dev/null && wait "$nspawn_pid" 2>/dev/null
    [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null && wait "$fake_pid" 2>/dev/null
    exec 3>&- 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# --- the independent fake Twitch, its chat fed through a FIFO
mkfifo "$work/chat"
exec 3<>"$work/chat"
python3 scripts/independent-twitch.py "$bin" --serve <"$work/chat" >"$work/fake.log" 2>&1 &
fake_pid=$!
waitfor() { # seconds description command...: polls the command until it succeeds
    local limit=$1 what=$2 i
    shift 2
    for ((i = 0; i < limit * 10; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    fail "$what: not within $limit s"
}
waitfor 30 "the fake Twitch starts" grep -q '^TWITCH_IRC_URL=' "$work/fake.log"
fake_dir=$(sed -n 's|^config \(.*\)/twitch_colorchanger.conf$|\1|p' "$work/fake.log")
read -ra exports < <(grep '^TWITCH_IRC_URL=' "$work/fake.log")
env_lines=()
for e in "${exports[@]}"; do
    case "$e" in TWITCH_CA_FILE=*) e=TWITCH_CA_FILE=/srv/fake-twitch/ca.pem ;; esac
    env_lines+=("$e")
done

# --- boot
cp "$deb" "$work/share/current.deb"
DEB_VERSION="$version~prev-1" DEB_OUT="$work/share" scripts/build-deb.sh x86_64-unknown-linux-musl >/dev/null
# what a run installs goes to a tmpfs over the tree, thrown away after (--volatile=overlay)
echo "== boot Debian bookworm with systemd (systemd-nspawn)"
systemd-nspawn --quiet --boot --register=no --keep-unit --machine="tcc-verify-$$" \
    --directory="$rootfs" --volatile=overlay \
    --bind-ro="$fake_dir:/srv/fake-twitch" --bind-ro="$(realpath "$work/share"):/srv/share" \
    </dev/null >"$work/console.log" 2>&1 &
nspawn_pid=$!
leader() { pgrep -P "$nspawn_pid" | head -n 1; }
waitfor 30 "the container's init starts" leader
inside() { nsenter --target "$(leader)" --all -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
booted() { case "$(inside systemctl is-system-running)" in running | degraded) return 0 ;; esac; return 1; }
waitfor 60 "the container boots" booted
echo "   $(inside systemctl --version | head -n 1), $(inside systemctl is-system-running)"

unit=twitch-colorchanger.service
conf=/etc/twitch-colorchanger/twitch_colorchanger.conf
show() { inside systemctl show -P "$1" "$unit"; }
as_service() { inside runuser -u twitch-colorchanger -- "$@"; }
journal() { inside journalctl --no-pager -o cat -u "$unit" "$@"; }
# the journal of this run of the bot (its invocation) holds a line matching $1
said() { inside journalctl --no-pager -o cat "_SYSTEMD_INVOCATION_ID=$(show InvocationID)" "${@:2}" | grep -q "$1"; }

echo "== install the previous version, authorise with setup"
out=$(inside dpkg -i "/srv/share/twitch-colorchanger_$version~prev-1_amd64.deb" 2>&1) || fail "install: $out"
[ "$(show Type)" = notify ] || fail "the unit's Type is $(show Type)"
inside grep -qx 'WatchdogSec=30s' /lib/systemd/system/$unit || fail "the unit has no 30 s watchdog"
inside mkdir -p /etc/systemd/system/$unit.d
{
    echo "[Service]"
    for e in "${env_lines[@]}"; do echo "Environment=$e"; done
    echo "# shorter than the shipped unit's, to keep this quick"
    echo "RestartSec=1s"
    echo "WatchdogSec=5s"
} | inside sh -c "cat > /etc/systemd/system/$unit.d/fake-twitch.conf"
inside systemctl daemon-reload
as_service sh -c "cat > $conf" <<'EOF'
{
  "users": [
    { "username": "newuser_42", "client_id": "indepclient", "channels": ["mychannel"] }
  ]
}
EOF
said=$(as_service env "${env_lines[@]}" twitch-colorchanger setup -c "$conf" 2>&1) \
    || fail "setup failed: $said"
inside grep -q '"refresh_token": "indeprefresh' "$conf" || fail "setup saved no tokens"
echo "   tokens saved by setup (the fake approved the device code)"

echo "== systemctl start"
t0=$(date +%s%N)
inside systemctl start "$unit" || fail "start failed: $(journal | tail -n 20)"
echo "   active in $(( ($(date +%s%N) - t0) / 1000000 )) ms (READY=1)"
[ "$(show ActiveState)" = active ] || fail "not active"
[ "$(show WatchdogUSec)" = 5s ] || fail "the watchdog is $(show WatchdogUSec), not the drop-in's 5 s"
waitfor 20 "in chat" said '#mychannel\] joined$'
pid=$(show MainPID)
echo hello >&3
waitfor 20 "a color change after a chat message" grep -q 'color set to .* (HTTP 204)' "$work/fake.log"
echo "   joined #mychannel; a chat message changed the color"
status_ok() { inside systemctl status --no-pager "$unit" | grep -q 'Status: "1 of 1 user(s) in chat"'; }
waitfor 10 "systemctl status shows the bot's status line" status_ok
inside systemctl status --no-pager "$unit" | sed -n 's/^ *\(Status: .*\)/   systemctl status: \1/p'
for who in service root; do
    if [ "$who" = service ]; then out=$(as_service twitch-colorchanger status -c "$conf" 2>&1);
    else out=$(inside twitch-colorchanger status -c "$conf" 2>&1); fi
    grep -q 'newuser_42  connected' <<<"$out" || fail "status as $who: $out"
done
echo "   twitch-colorchanger status: connected, as the service user and as root"
lines=$(journal)
grep -q '^INFO  \[newuser_42 #mychannel\] joined$' <<<"$lines" || fail "no plain joined line: $lines"
! grep -q '^20[0-9][0-9]-' <<<"$lines" || fail "a journal line carries its own timestamp: $lines"
! grep -q '^<[0-9]>' <<<"$lines" || fail "journald kept a priority prefix: $lines"
[ -z "$(journal -p warning)" ] || fail "warnings at start: $(journal -p warning)"
echo "   the journal: no second timestamp; nothing at warning or above"

echo "== systemctl reload"
edit() { as_service sh -c "sed -i '$1' $conf"; }
edit 's/"mychannel"/"mychannel", "otherchannel"/'
inside systemctl reload "$unit"
waitfor 20 "the edit applied" said '#otherchannel\] joined$'
[ "$(show MainPID)" = "$pid" ] || fail "reload restarted the bot"
edit 's/"channels"/"channels" "broken"/'
inside systemctl reload "$unit"
waitfor 10 "journalctl -p err finds the broken edit" said 'config not reloaded' -p err
edit 's/"channels" "broken"/"channels"/'
inside systemctl reload "$unit"
[ "$(show ActiveState)" = active ] || fail "not active after the reloads"
echo "   an edit joined #otherchannel on reload; a broken edit is an error (journalctl -p err)"

echo "== systemctl stop"
t0=$(date +%s%N)
inside systemctl stop "$unit"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$ms" -le 5000 ] || fail "stop took $ms ms"
inside grep -q '"refresh_token": "indeprefresh' "$conf" || fail "the tokens are gone after stop"
as_service twitch-colorchanger check -c "$conf" >/dev/null || fail "check fails after stop"
echo "   stopped in $ms ms; the tokens are in the config"

echo "== kill -9, SIGSTOP (watchdog), exit status 2"
inside systemctl start "$unit"
pid=$(show MainPID)
restarts=$(show NRestarts)
inside systemctl kill --signal=KILL --kill-who=main "$unit"
restarted() { local now; now=$(show MainPID); [ "$now" != 0 ] && [ "$now" != "$1" ] && [ "$(show ActiveState)" = active ]; }
waitfor 20 "restarted after kill -9" restarted "$pid"
[ "$(show NRestarts)" = $((restarts + 1)) ] || fail "NRestarts is $(show NRestarts)"
echo "   kill -9: restarted by Restart=on-failure"
pid=$(show MainPID)
inside kill -STOP "$pid"
waitfor 30 "restarted by the watchdog" restarted "$pid"
inside journalctl --no-pager -u "$unit" | grep -q 'Watchdog timeout' || fail "no watchdog timeout in the journal"
echo "   SIGSTOP: the watchdog (5 s here) killed it and Restart= started it again"
inside cp "$conf" /root/good.conf
as_service sh -c "echo '{ \"users\": [' > $conf"
inside systemctl restart "$unit" 2>/dev/null && fail "a broken config started"
[ "$(show ExecMainStatus)" = 2 ] || fail "exit status $(show ExecMainStatus), not 2"
[ "$(show SubState)" = failed ] || fail "exit 2 is $(show SubState), not failed (no restart)"
inside install -o twitch-colorchanger -g twitch-colorchanger -m 0600 /root/good.conf "$conf"
inside systemctl reset-failed "$unit"
echo "   exit status 2 (config problem): failed, not restarted"

echo "== open files"
soft=$(show LimitNOFILESoft)
hard=$(show LimitNOFILE)
echo "   the unit: LimitNOFILE=$soft:$hard"
thousand() { # label: 1,000 users in chat under the unit as it is now configured
    inside systemctl stop "$unit"
    rm -rf "$work/share/many"
    mkdir -m 0755 "$work/share/many"
    SYSTEMD_SHARE="$work/share/many" SYSTEMD_USERS=1000 \
        cargo test --locked --test systemd -- --ignored --nocapture >"$work/many.log" 2>&1 &
    many_pid=$!
    waitfor 300 "the fake Twitch for 1,000 users starts" test -f "$work/share/many/env"
    inside install -o twitch-colorchanger -g twitch-colorchanger -m 0600 /srv/share/many/twitch_colorchanger.conf "$conf"
    { echo "[Service]"; cat "$work/share/many/env"; } \
        | inside sh -c "cat > /etc/systemd/system/$unit.d/many.conf"
    inside systemctl daemon-reload
    inside systemctl start "$unit"
    waitfor 60 "$1: 1,000 users in chat" grep -q '^joined: ' "$work/many.log"
    if said 'open files\|descriptor'; then
        fail "$1: the bot spoke of open files: $(journal | grep 'open files\|descriptor' | head -n 3)"
    fi
    echo "   $1: $(sed -n 's/^joined: //p' "$work/many.log"), nothing said of open files," \
        "$(inside cat /proc/"$(show MainPID)"/limits | awk '/open files/ { print "limits " $4 ":" $5 }')"
    inside systemctl stop "$unit"
    touch "$work/share/many/done"
    wait "$many_pid" || fail "$1: $(tail -n 20 "$work/many.log")"
    many_pid=""
    inside rm /etc/systemd/system/$unit.d/many.conf
}
thousand "the unit's limit"
printf '[Service]\nLimitNOFILE=1024:524288\n' | inside sh -c "cat > /etc/systemd/system/$unit.d/nofile.conf"
thousand "a drop-in of LimitNOFILE=1024:524288"
inside rm /etc/systemd/system/$unit.d/nofile.conf
inside systemctl stop "$unit"
inside install -o twitch-colorchanger -g twitch-colorchanger -m 0600 /root/good.conf "$conf"
inside systemctl daemon-reload

echo "== systemd-analyze security"
exposure=$(inside systemd-analyze security --no-pager "$unit" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 2.0) }' || fail "exposure $exposure, above 2.0"
echo "   overall exposure $exposure"

echo "== upgrade while running, then purge"
inside systemctl start "$unit"
waitfor 20 "in chat again" status_ok
pid=$(show MainPID)
inside cat "$conf" >"$work/before"
inside dpkg -i /srv/share/current.deb >/dev/null
[ "$(inside dpkg-query -W -f '${Version}' twitch-colorchanger)" = "$version-1" ] || fail "the upgrade did not install $version-1"
restarted_ok() { restarted "$pid" && status_ok; }
waitfor 20 "restarted by the upgrade, in chat" restarted_ok
inside cat "$conf" | cmp -s - "$work/before" || fail "the upgrade changed the config"
echo "   $(inside twitch-colorchanger --version): restarted, in chat, the config byte for byte"
inside dpkg -P twitch-colorchanger >/dev/null
[ "$(show ActiveState)" = inactive ] || fail "purge left the service $(show ActiveState)"
inside test ! -e /etc/twitch-colorchanger || fail "purge left /etc/twitch-colorchanger"
echo "   purge stopped the bot and deleted /etc/twitch-colorchanger"
echo "the package works under systemd ($(( $(date +%s) - started )) s)"
