//! One IRC connection's protocol state, free of I/O: bytes and `now` in; lines, chat events
//! and the next deadline out. It decides which messages are the user's own.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::commands::{self, Command};
use super::message::Message;
use crate::chat::{CloseReason, Event, Login};
use crate::timer::Timers;

/// No `001` within this long after connecting: the connection has failed.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);
/// The server silent for this long: send our own PING.
pub const IDLE_BEFORE_PING: Duration = Duration::from_secs(60);
/// Our PING unanswered (nothing at all received) for this long: the connection is dead.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// At most `JOIN_LIMIT` JOINs in any `JOIN_WINDOW`.
pub const JOIN_WINDOW: Duration = Duration::from_secs(10);
/// See [`JOIN_WINDOW`].
pub const JOIN_LIMIT: usize = 20;
/// Longer lines are dropped.
pub const MAX_LINE: usize = 8 * 1024;

const AUTH_FAILURES: [&str; 5] = [
    "Login authentication failed",
    "Improperly formatted auth",
    "Login unsuccessful",
    "Error logging in",
    "Invalid NICK",
];

crate::timer::timers! {
    enum Timer {
        Register,
        Idle,
        Pong,
        Join,
    }
    table TimerTable
}

/// The state of one IRC connection, from registration to close.
pub struct Session {
    login: String,
    user_id: Option<String>,
    ready: bool,
    closed: bool,
    inbuf: Vec<u8>,
    discarding: bool,
    outbox: VecDeque<String>,
    events: VecDeque<Event>,
    timers: TimerTable,
    join_queue: VecDeque<String>,
    join_log: VecDeque<Instant>,
}

impl Session {
    /// Starts a session: queues CAP REQ, PASS and NICK, and arms the registration timer.
    /// The token may carry an `oauth:` prefix.
    pub fn new(now: Instant, login: Login<'_>) -> Session {
        let token = login.token.expose();
        let token = token.strip_prefix("oauth:").unwrap_or(token);
        let nick = login.login.to_ascii_lowercase();
        let mut session = Session {
            outbox: VecDeque::from([
                commands::cap_req().to_string(),
                commands::pass(token).to_string(),
                commands::nick(&nick).to_string(),
            ]),
            login: nick,
            user_id: login.user_id.map(str::to_owned),
            ready: false,
            closed: false,
            inbuf: Vec::new(),
            discarding: false,
            events: VecDeque::new(),
            timers: Timers::default(),
            join_queue: login.channels.iter().cloned().collect(),
            join_log: VecDeque::new(),
        };
        session
            .timers
            .set(Timer::Register, Some(now + REGISTER_TIMEOUT));
        session
            .timers
            .set(Timer::Idle, Some(now + IDLE_BEFORE_PING));
        session
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.closed {
            return;
        }
        let mut rest = bytes;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(pos);
            rest = &tail[1..];
            // Only complete lines show the server alive: a byte now and then is not enough.
            self.timers.set(Timer::Idle, Some(now + IDLE_BEFORE_PING));
            self.timers.set(Timer::Pong, None);
            if self.discarding {
                self.discarding = false;
                self.inbuf.clear();
                continue;
            }
            if self.inbuf.len() + head.len() > MAX_LINE {
                self.inbuf.clear();
                self.events
                    .push_back(Event::Dropped(format!("line longer than {MAX_LINE} bytes")));
                continue;
            }
            // a whole line in what came is read where it is; only a line begun in an
            // earlier read is put together
            let joined;
            let line = if self.inbuf.is_empty() {
                head
            } else {
                let mut line = std::mem::take(&mut self.inbuf);
                line.extend_from_slice(head);
                joined = line;
                &joined
            };
            match std::str::from_utf8(line) {
                Ok(line) => self.handle_line(now, line.trim_end_matches('\r')),
                Err(_) => self
                    .events
                    .push_back(Event::Dropped("line is not valid UTF-8".into())),
            }
            if self.closed {
                return;
            }
        }
        if self.discarding {
            return;
        }
        self.inbuf.extend_from_slice(rest);
        if self.inbuf.len() > MAX_LINE {
            self.inbuf.clear();
            self.discarding = true;
            self.events
                .push_back(Event::Dropped(format!("line longer than {MAX_LINE} bytes")));
        }
    }

    fn handle_line(&mut self, now: Instant, line: &str) {
        if line.is_empty() {
            return;
        }
        let msg = match Message::parse(line) {
            Ok(msg) => msg,
            Err(e) => {
                self.events.push_back(Event::Dropped(format!("{e}")));
                return;
            }
        };
        let command = match Command::try_from(&msg) {
            Ok(command) => command,
            Err(e) => return self.events.push_back(Event::Dropped(e.to_string())),
        };
        match command {
            Command::Ping { text } => self.outbox.push_back(commands::pong(text).to_string()),
            Command::Welcome if !self.ready => {
                self.ready = true;
                self.timers.set(Timer::Register, None);
                self.events.push_back(Event::Ready);
                self.flush_joins(now);
            }
            Command::Reconnect => self.close(CloseReason::Reconnect),
            Command::Notice {
                channel: None,
                text,
                ..
            } if AUTH_FAILURES.iter().any(|f| text.starts_with(f)) => {
                self.close(CloseReason::AuthFailed(text.to_owned()))
            }
            Command::Notice {
                channel,
                msg_id,
                text,
            } => self.events.push_back(Event::Notice {
                channel: channel.map(str::to_owned),
                msg_id: msg_id.map(str::to_owned),
                text: text.to_owned(),
            }),
            Command::Membership {
                joined,
                channel,
                nick,
            } if nick.eq_ignore_ascii_case(&self.login) => {
                let channel = channel.to_owned();
                self.events.push_back(if joined {
                    Event::Joined(channel)
                } else {
                    Event::Left(channel)
                });
            }
            Command::Privmsg {
                channel,
                sender,
                user_id,
                id,
                source_id,
                text,
            } => {
                // The user id is the sure test; the login serves until the id is known.
                let own = match (&self.user_id, user_id) {
                    (Some(mine), Some(theirs)) => mine == theirs,
                    _ => sender.eq_ignore_ascii_case(&self.login),
                };
                if own {
                    self.events.push_back(Event::OwnMessage {
                        channel: channel.to_owned(),
                        text: text.to_owned(),
                        // shared chat: the source's id on every copy, else the message's own
                        id: source_id.or(id).map(str::to_owned),
                        copy: source_id.is_some() && source_id != id,
                    });
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.closed = true;
        self.timers.clear();
        self.events.push_back(Event::Closed(reason));
    }

    /// The connection ended: the session is over.
    pub(crate) fn handle_lost(&mut self, why: String) {
        if !self.closed {
            self.close(CloseReason::Lost(why));
        }
    }

    /// Joins `channel` (a login without `#`): at once if the pacing allows, else when it does.
    /// Before login it waits for the welcome like the initial channels.
    pub fn join(&mut self, now: Instant, channel: &str) {
        if self.closed || self.join_queue.iter().any(|c| c == channel) {
            return;
        }
        self.join_queue.push_back(channel.to_owned());
        if self.ready {
            self.flush_joins(now);
        }
    }

    /// Leaves `channel`; a JOIN still waiting for its turn is simply not sent.
    pub fn part(&mut self, channel: &str) {
        if self.closed {
            return;
        }
        let queued = self.join_queue.len();
        self.join_queue.retain(|c| c != channel);
        if self.ready && queued == self.join_queue.len() {
            self.outbox.push_back(commands::part(channel).to_string());
        }
    }

    fn flush_joins(&mut self, now: Instant) {
        while self
            .join_log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= JOIN_WINDOW)
        {
            self.join_log.pop_front();
        }
        while self.join_log.len() < JOIN_LIMIT {
            let Some(chan) = crate::queue::pop(&mut self.join_queue) else {
                break;
            };
            self.outbox.push_back(commands::join(&chan).to_string());
            self.join_log.push_back(now);
        }
        let next = match (self.join_queue.is_empty(), self.join_log.front()) {
            (false, Some(oldest)) => Some(*oldest + JOIN_WINDOW),
            _ => None,
        };
        self.timers.set(Timer::Join, next);
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.timers.is_due(Timer::Register, now) {
            return self.close(CloseReason::LoginTimeout);
        }
        if self.timers.is_due(Timer::Pong, now) {
            return self.close(CloseReason::Timeout);
        }
        if self.timers.is_due(Timer::Idle, now) {
            self.outbox.push_back(commands::ping().to_string());
            self.timers.set(Timer::Idle, None);
            self.timers.set(Timer::Pong, Some(now + PONG_TIMEOUT));
        }
        if self.timers.is_due(Timer::Join, now) {
            self.flush_joins(now);
        }
    }

    /// The next line to write, with its CRLF. PASS lines hold the token: never log them
    /// unfiltered (see [`redact`]).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<String> {
        crate::queue::pop(&mut self.outbox).map(|mut line| {
            line.push_str("\r\n");
            line
        })
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        crate::queue::pop(&mut self.events)
    }

    /// When [`Session::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

/// A line fit for a debug log: the token of a PASS line is hidden.
pub fn redact(line: &str) -> &str {
    if line.starts_with("PASS ") {
        "PASS oauth:<redacted>"
    } else {
        line.trim_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn t0() -> Instant {
        Instant::now()
    }

    fn drain(s: &mut Session) -> Vec<String> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn login(now: Instant, channels: &[&str]) -> Session {
        let chans: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let token = Secret::new("oauth:tok123");
        let mut s = Session::new(
            now,
            Login {
                login: "HueShift_Bot",
                user_id: Some("81234567"),
                token: &token,
                channels: &chans,
            },
        );
        assert_eq!(
            drain(&mut s),
            [
                "CAP REQ :twitch.tv/tags twitch.tv/commands\r\n",
                "PASS oauth:tok123\r\n",
                "NICK hueshift_bot\r\n"
            ]
        );
        s
    }

    #[test]
    fn joins_every_channel_after_welcome() {
        let t = t0();
        let mut s = login(t, &["lumenwave", "other"]);
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome, GLHF!\r\n");
        assert_eq!(drain(&mut s), ["JOIN #lumenwave\r\n", "JOIN #other\r\n"]);
        s.handle_input(
            t,
            b":hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv JOIN #lumenwave\r\n",
        );
        assert_eq!(
            events(&mut s),
            [Event::Ready, Event::Joined("lumenwave".into())]
        );
    }

    #[test]
    fn limits_joins_to_twenty_per_ten_seconds() {
        let t = t0();
        let names: Vec<String> = (0..45).map(|i| format!("c{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut s = login(t, &refs);
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
        assert_eq!(drain(&mut s).len(), 20);
        let next = s.poll_timeout().unwrap();
        assert_eq!(next, t + JOIN_WINDOW);
        s.handle_timeout(t + Duration::from_secs(9));
        assert!(drain(&mut s).is_empty());
        s.handle_timeout(t + JOIN_WINDOW);
        assert_eq!(drain(&mut s).len(), 20);
        s.handle_timeout(t + JOIN_WINDOW * 2);
        assert_eq!(
            drain(&mut s),
            [
                "JOIN #c40\r\n",
                "JOIN #c41\r\n",
                "JOIN #c42\r\n",
                "JOIN #c43\r\n",
                "JOIN #c44\r\n"
            ]
        );
    }

    #[test]
    fn answers_ping_with_matching_pong() {
        let t = t0();
        let mut s = login(t, &[]);
        s.handle_input(t, b"PING :tmi.twitch.tv\r\nPING :abc def\r\n");
        assert_eq!(
            drain(&mut s),
            ["PONG :tmi.twitch.tv\r\n", "PONG :abc def\r\n"]
        );
    }

    #[test]
    fn silent_server_gets_a_ping_then_times_out() {
        let t = t0();
        let mut s = login(t, &[]);
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
        events(&mut s);
        assert_eq!(s.poll_timeout(), Some(t + IDLE_BEFORE_PING));
        s.handle_timeout(t + IDLE_BEFORE_PING);
        assert_eq!(drain(&mut s), ["PING :tmi.twitch.tv\r\n"]);
        assert_eq!(s.poll_timeout(), Some(t + IDLE_BEFORE_PING + PONG_TIMEOUT));
        s.handle_timeout(t + IDLE_BEFORE_PING + PONG_TIMEOUT);
        assert_eq!(events(&mut s), [Event::Closed(CloseReason::Timeout)]);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn an_answer_to_our_ping_keeps_the_connection() {
        let t = t0();
        let mut s = login(t, &[]);
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
        s.handle_timeout(t + IDLE_BEFORE_PING);
        let later = t + IDLE_BEFORE_PING + Duration::from_secs(1);
        s.handle_input(
            later,
            b":tmi.twitch.tv PONG tmi.twitch.tv :tmi.twitch.tv\r\n",
        );
        assert_eq!(s.poll_timeout(), Some(later + IDLE_BEFORE_PING));
    }

    #[test]
    fn a_server_trickling_bytes_without_a_line_end_is_dead() {
        let t = t0();
        let mut s = login(t, &[]);
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
        events(&mut s);
        let mut now = t;
        for _ in 0..(IDLE_BEFORE_PING.as_secs() / 5) {
            now += Duration::from_secs(5);
            s.handle_input(now, b"x");
            s.handle_timeout(now);
        }
        assert_eq!(drain(&mut s), ["PING :tmi.twitch.tv\r\n"]);
        for _ in 0..(PONG_TIMEOUT.as_secs() / 5) {
            now += Duration::from_secs(5);
            s.handle_input(now, b"x");
            s.handle_timeout(now);
        }
        assert_eq!(events(&mut s), [Event::Closed(CloseReason::Timeout)]);
    }

    #[test]
    fn no_welcome_in_time_fails_the_connection() {
        let t = t0();
        let mut s = login(t, &["a"]);
        s.handle_timeout(t + REGISTER_TIMEOUT);
        assert_eq!(events(&mut s), [Event::Closed(CloseReason::LoginTimeout)]);
    }

    #[test]
    fn login_failure_and_reconnect_close_the_session() {
        let t = t0();
        let mut s = login(t, &[]);
        s.handle_input(
            t,
            b":tmi.twitch.tv NOTICE * :Login authentication failed\r\n",
        );
        assert_eq!(
            events(&mut s),
            [Event::Closed(CloseReason::AuthFailed(
                "Login authentication failed".into()
            ))]
        );
        let mut s = login(t, &[]);
        s.handle_input(
            t,
            b":tmi.twitch.tv 001 x :w\r\n:tmi.twitch.tv RECONNECT\r\nPING :x\r\n",
        );
        assert_eq!(
            events(&mut s),
            [Event::Ready, Event::Closed(CloseReason::Reconnect)]
        );
        assert!(!drain(&mut s).iter().any(|l| l.starts_with("PONG")));
    }

    #[test]
    fn reports_own_messages_split_across_reads_and_ignores_others() {
        let t = t0();
        let mut s = login(t, &[]);
        let line = "@color=#1E90FF;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi there\r\n";
        let (a, b) = line.as_bytes().split_at(30);
        s.handle_input(t, a);
        assert!(events(&mut s).is_empty());
        s.handle_input(t, b);
        assert_eq!(
            events(&mut s),
            [Event::OwnMessage {
                channel: "lumenwave".into(),
                text: "hi there".into(),
                id: None,
                copy: false,
            }]
        );
        // shared chat: the original and a copy name the same message; only the copy is one
        s.handle_input(t, b"@id=o1;room-id=1;source-id=o1;source-room-id=1;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi\r\n");
        s.handle_input(t, b"@id=c2;room-id=2;source-id=o1;source-room-id=1;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #partner :hi\r\n");
        s.handle_input(t, b"@id=p3;room-id=1;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :plain\r\n");
        let ids: Vec<_> = events(&mut s)
            .into_iter()
            .map(|e| match e {
                Event::OwnMessage {
                    channel, id, copy, ..
                } => (channel, id.unwrap(), copy),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            ids,
            [
                ("lumenwave".into(), "o1".into(), false),
                ("partner".into(), "o1".into(), true),
                ("lumenwave".into(), "p3".into(), false),
            ]
        );
        // another chatter, and one whose login looks like ours but whose id is not
        s.handle_input(
            t,
            b"@user-id=999 :someone!someone@someone.tmi.twitch.tv PRIVMSG #lumenwave :ccd\r\n",
        );
        s.handle_input(t, b"@user-id=998 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :x\r\n");
        assert_eq!(events(&mut s), []);
    }

    #[test]
    fn joins_and_parts_on_the_live_connection() {
        let t = t0();
        let mut s = login(t, &["a"]);
        s.join(t, "early"); // before the welcome: waits for it
        assert!(drain(&mut s).is_empty());
        s.handle_input(t, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
        assert_eq!(drain(&mut s), ["JOIN #a\r\n", "JOIN #early\r\n"]);
        s.join(t, "b");
        s.part("a");
        assert_eq!(drain(&mut s), ["JOIN #b\r\n", "PART #a\r\n"]);
        s.handle_input(
            t,
            b":hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PART #a\r\n",
        );
        assert_eq!(events(&mut s), [Event::Ready, Event::Left("a".into())]);
    }

    #[test]
    fn drops_long_and_invalid_lines_and_keeps_going() {
        let t = t0();
        let mut s = login(t, &[]);
        let mut long = vec![b'x'; MAX_LINE + 10];
        long.extend_from_slice(b"\r\nPING :a\r\n");
        s.handle_input(t, &long[..MAX_LINE / 2]);
        s.handle_input(t, &long[MAX_LINE / 2..]);
        s.handle_input(t, b"\xff\xfe\r\nPING :b\r\n");
        let evs = events(&mut s);
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert!(evs.iter().all(|e| matches!(e, Event::Dropped(_))));
        assert_eq!(drain(&mut s), ["PONG :a\r\n", "PONG :b\r\n"]);
    }

    #[test]
    fn redacts_the_pass_line() {
        assert_eq!(redact("PASS oauth:secret\r\n"), "PASS oauth:<redacted>");
        assert_eq!(redact("JOIN #a\r\n"), "JOIN #a");
    }
}
