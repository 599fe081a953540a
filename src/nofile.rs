//! Open files. A process starts with the soft limit its parent gave it: 1,024 under systemd
//! and most container runtimes, below what a thousand users need, under a hard limit that
//! allows far more. The bot raises its soft limit to the hard one at start (as Go's runtime
//! does for every program), estimates what its users need, and says once, naming what to
//! raise, when even the hard limit is below that.

use std::fmt;

/// Descriptors the process holds whatever its users: standard streams, the reactor's epoll,
/// eventfd and timer, the signal pipe, the config watcher and lock, the log and status files,
/// the blocking pool's files.
const BASE: u64 = 32;
/// The shared HTTP client: at most 64 exchanges in flight, and up to 64 idle connections for
/// each of Helix and OAuth.
const HTTP: u64 = 3 * 64;
/// The status listener: its socket and its at most 8 connections.
const LISTENER: u64 = 9;

/// Whether `e` says no file could be opened: the process is at its open-files limit (EMFILE)
/// or the system at its own (ENFILE).
pub fn exhausted(e: &std::io::Error) -> bool {
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    matches!(e.raw_os_error(), Some(ENFILE | EMFILE))
}

/// The open-files limits of the process; `u64::MAX` for unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// What the process may open now.
    pub soft: u64,
    /// What the soft limit may be raised to without privileges.
    pub hard: u64,
}

/// The limits in force.
pub fn current() -> Limits {
    let now = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    Limits {
        soft: now.current.unwrap_or(u64::MAX),
        hard: now.maximum.unwrap_or(u64::MAX),
    }
}

/// Raises the soft limit to the hard one. Returns the limits before and after (the same when
/// nothing could be changed).
pub fn raise() -> (Limits, Limits) {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let before = current();
    if before.soft >= before.hard {
        return (before, before);
    }
    let hard = (before.hard != u64::MAX).then_some(before.hard);
    let raised = Rlimit {
        current: hard,
        maximum: hard,
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => (
            before,
            Limits {
                soft: before.hard,
                ..before
            },
        ),
        Err(_) => (before, before),
    }
}

/// What `irc` users on IRC and `eventsub` users on EventSub need, with the listener or not: one
/// chat connection each (two for EventSub, whose reconnect overlaps the old socket), plus the
/// process's own.
pub fn need(irc: usize, eventsub: usize, listener: bool) -> u64 {
    let users = irc as u64 + 2 * eventsub as u64;
    BASE + HTTP + if listener { LISTENER } else { 0 } + users
}

/// The hard limit is below what the users need: what to say, and what to raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooLow {
    /// The hard limit.
    pub limit: u64,
    /// The estimate.
    pub need: u64,
}

impl TooLow {
    /// `Some` when `limits.hard` is below `need`.
    pub fn check(limits: Limits, need: u64) -> Option<TooLow> {
        (limits.hard < need).then_some(TooLow {
            limit: limits.hard,
            need,
        })
    }
}

impl fmt::Display for TooLow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this process may open {} files, and its users need about {}: users beyond that wait for their turn to connect. Raise the limit: LimitNOFILE= in the systemd unit, ulimit -n before starting it, procd_set_param limits nofile=\"N N\" on OpenWrt, --ulimit nofile=N:N for docker run (a pod gets its runtime's)",
            self.limit, self.need
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_users_need_more_than_the_usual_soft_limit() {
        assert_eq!(need(0, 0, false), 224);
        assert_eq!(need(1000, 0, true), 224 + 9 + 1000);
        assert_eq!(need(0, 1000, false), 224 + 2000);
        let usual = Limits {
            soft: 1024,
            hard: 524_288,
        };
        assert!(
            need(1000, 0, true) > usual.soft,
            "the soft limit must be raised"
        );
        assert_eq!(TooLow::check(usual, need(1000, 0, true)), None);
    }

    #[test]
    fn a_hard_limit_too_low_names_what_to_raise() {
        let low = Limits { soft: 64, hard: 64 };
        let too_low = TooLow::check(low, need(12, 0, false)).unwrap();
        let text = too_low.to_string();
        assert!(
            text.starts_with("this process may open 64 files, and its users need about 236"),
            "{text}"
        );
        for what in [
            "LimitNOFILE=",
            "ulimit -n",
            "procd_set_param limits",
            "--ulimit nofile",
        ] {
            assert!(text.contains(what), "{what}: {text}");
        }
    }

    #[test]
    fn raising_leaves_the_hard_limit_and_lifts_the_soft_one_to_it() {
        let (before, after) = raise();
        assert_eq!(after.hard, before.hard);
        assert_eq!(after.soft, before.hard, "{before:?} -> {after:?}");
        assert_eq!(raise(), (after, after), "nothing left to raise");
    }
}
