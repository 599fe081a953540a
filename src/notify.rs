//! Tells systemd how the service is doing, as sd_notify(3) describes: one datagram to the Unix
//! socket `$NOTIFY_SOCKET` per state (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`,
//! `WATCHDOG=1`). Outside systemd, or when the socket is gone, nothing is sent: systemd is
//! told, never waited for, so the datagram is sent without blocking.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The way to systemd's notification socket, if the bot runs under one that listens.
#[derive(Debug, Default)]
pub struct Notify {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notify {
    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` of the process environment.
    pub fn from_env() -> Notify {
        let var = |k: &str| std::env::var(k).ok();
        Notify::from_vars(
            var("NOTIFY_SOCKET"),
            var("WATCHDOG_USEC"),
            var("WATCHDOG_PID"),
        )
    }

    fn from_vars(socket: Option<String>, usec: Option<String>, pid: Option<String>) -> Notify {
        let socket = socket.as_deref().and_then(address).and_then(|addr| {
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((socket, addr))
        });
        let watchdog = socket
            .as_ref()
            .and_then(|_| watchdog_every(usec.as_deref(), pid.as_deref(), std::process::id()));
        Notify { socket, watchdog }
    }

    /// Sends `state` (lines of `KEY=value`); a failure is dropped, as sd_notify's callers do.
    pub fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket {
            let _ = socket.send_to_addr(state.as_bytes(), addr);
        }
    }

    /// How often to send `WATCHDOG=1`: half the watchdog period systemd asks for, if it asks.
    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog
    }
}

/// The socket address `NOTIFY_SOCKET` names: a path, or an abstract name after `@`.
fn address(text: &str) -> Option<SocketAddr> {
    if let Some(name) = text.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(name).ok();
    }
    text.starts_with('/')
        .then(|| SocketAddr::from_pathname(text).ok())
        .flatten()
}

/// Half of `WATCHDOG_USEC`, when it is meant for process `own` (`WATCHDOG_PID` unset or equal).
fn watchdog_every(usec: Option<&str>, pid: Option<&str>, own: u32) -> Option<Duration> {
    if pid.is_some_and(|p| p.parse() != Ok(own)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_pinged_at_half_its_period_and_only_for_its_own_process() {
        let every = |usec, pid| watchdog_every(usec, pid, 42);
        assert_eq!(every(Some("30000000"), None), Some(Duration::from_secs(15)));
        assert_eq!(
            every(Some("30000000"), Some("42")),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            every(Some("30000000"), Some("41")),
            None,
            "another process's watchdog"
        );
        assert_eq!(every(Some("0"), None), None);
        assert_eq!(every(Some("soon"), None), None);
        assert_eq!(every(None, None), None);
    }

    #[test]
    fn states_reach_a_socket_by_path_or_by_abstract_name() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let by_path = UnixDatagram::bind(&path).unwrap();
        let name = format!("@tcc-notify-test-{}", std::process::id());
        let by_name = UnixDatagram::bind_addr(&address(&name).unwrap()).unwrap();
        for (listener, at) in [(&by_path, path.to_str().unwrap()), (&by_name, &name)] {
            // a datagram that never comes fails the test instead of hanging it
            listener
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let notify = Notify::from_vars(Some(at.into()), Some("2000000".into()), None);
            assert_eq!(notify.watchdog_every(), Some(Duration::from_secs(1)));
            notify.send("READY=1\nSTATUS=1 of 1 user(s) in chat");
            let mut buf = [0; 128];
            let n = listener.recv(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"READY=1\nSTATUS=1 of 1 user(s) in chat");
        }
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn without_a_socket_nothing_is_sent_and_no_watchdog_is_kept() {
        for socket in [None, Some("relative/path".into()), Some(String::new())] {
            let notify = Notify::from_vars(socket, Some("2000000".into()), None);
            assert!(notify.socket.is_none());
            assert_eq!(notify.watchdog_every(), None);
            notify.send("READY=1");
        }
    }
}
