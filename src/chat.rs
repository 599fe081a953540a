//! The chat boundary: what the bot needs from a chat connection, whichever protocol carries
//! it. Each protocol session is a sans-IO state machine (bytes and `now` in; bytes, events
//! and a deadline out); [`Session`] is the enum the driver holds, so a second transport
//! plugs in beside IRC without the user core knowing which one is in use.

use std::fmt;
use std::time::Instant;

use crate::irc;
use crate::secret::Secret;

/// Something a chat session reports to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Logged in: chat works from now on.
    Ready,
    /// The server confirmed that this channel (login, without `#`) is joined.
    Joined(String),
    /// The channel was left (our PART, or the server removed us).
    Left(String),
    /// The user's own account wrote `text` in `channel`, from any client.
    OwnMessage {
        /// Channel login, without `#`.
        channel: String,
        /// The message text.
        text: String,
    },
    /// A notice from the server (moderation, rate limits, …).
    Notice {
        /// The channel, or `None` for the whole connection.
        channel: Option<String>,
        /// Twitch's machine-readable id, when given.
        msg_id: Option<String>,
        /// The human text.
        text: String,
    },
    /// Input that was not processed, with the reason (for debug logs).
    Dropped(String),
    /// The session is over; the driver closes the connection.
    Closed(CloseReason),
}

/// Why a chat session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The server refused the login, with its text.
    AuthFailed(String),
    /// The server asked us to reconnect.
    Reconnect,
    /// No login confirmation in time.
    LoginTimeout,
    /// The connection went silent and did not answer our keepalive.
    Timeout,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::AuthFailed(text) => write!(f, "login refused: {text}"),
            CloseReason::Reconnect => f.write_str("server asked to reconnect"),
            CloseReason::LoginTimeout => f.write_str("no login confirmation in time"),
            CloseReason::Timeout => f.write_str("the connection went silent"),
        }
    }
}

/// Who is logging in, and where.
#[derive(Debug, Clone, Copy)]
pub struct Login<'a> {
    /// The account's login.
    pub login: &'a str,
    /// The account's user id, when known: the surest own-message test.
    pub user_id: Option<&'a str>,
    /// The user access token.
    pub token: &'a Secret,
    /// Channels to join, logins without `#`.
    pub channels: &'a [String],
}

/// Bytes to write, with what a debug log may show of them (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// What goes on the wire.
    pub bytes: Vec<u8>,
    /// A redacted rendering for logs.
    pub shown: String,
}

/// One live chat session, of whichever protocol.
#[non_exhaustive]
pub enum Session {
    /// Twitch IRC (TMI).
    Irc(irc::Session),
}

impl Session {
    /// An IRC session that logs in as `login` at `now`.
    pub fn irc(now: Instant, login: Login<'_>) -> Session {
        Session::Irc(irc::Session::new(now, login))
    }

    /// Feeds bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        match self {
            Session::Irc(s) => s.handle_input(now, bytes),
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Session::Irc(s) => s.handle_timeout(now),
        }
    }

    /// Joins `channel` on the live connection (paced by the protocol's limits).
    pub fn join(&mut self, now: Instant, channel: &str) {
        match self {
            Session::Irc(s) => s.join(now, channel),
        }
    }

    /// Leaves `channel` on the live connection.
    pub fn part(&mut self, channel: &str) {
        match self {
            Session::Irc(s) => s.part(channel),
        }
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            Session::Irc(s) => s.poll_transmit().map(|line| Transmit {
                shown: irc::redact(&line).to_owned(),
                bytes: line.into_bytes(),
            }),
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            Session::Irc(s) => s.poll_event(),
        }
    }

    /// When [`Session::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Session::Irc(s) => s.poll_timeout(),
        }
    }
}
