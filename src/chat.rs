//! The chat boundary's vocabulary: what the bot needs from a chat connection, whichever
//! protocol carries it (events, bytes to transmit, orders for the driver, close reasons).
//! Each protocol session is a sans-IO state machine (bytes and `now` in; bytes, events and a
//! deadline out) that speaks this vocabulary; [`crate::chat_session::ChatSession`], beside
//! the driver, is the enum that holds either, so neither protocol knows the other.
//!
//! A session may use more than one connection at a time (EventSub's `session_reconnect`
//! keeps the old socket until the new one is welcomed), so bytes carry a [`Link`] number,
//! and a session may ask the driver for a connection or a Helix call ([`Order`]).

use std::fmt;

use crate::answer::ErrorKind;
use crate::endpoint::Endpoint;
use crate::secret::Secret;

/// Which of a session's connections bytes belong to. The connection the driver opened
/// for the session is link 0; further ones are numbered by the session.
pub type Link = u32;

/// Which protocol carries a user's chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Twitch IRC (TMI): one TLS connection, the default.
    #[default]
    Irc,
    /// EventSub over WebSocket, with a subscription per channel.
    EventSub,
}

impl Protocol {
    /// The name in the config file, the environment and the status.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Irc => "irc",
            Protocol::EventSub => "eventsub",
        }
    }

    /// The protocol's usual name, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            Protocol::Irc => "IRC",
            Protocol::EventSub => "EventSub",
        }
    }

    /// Reads a name as written in the config or the environment (any case).
    pub fn parse(name: &str) -> Option<Protocol> {
        match name.trim().to_ascii_lowercase().as_str() {
            "irc" => Some(Protocol::Irc),
            "eventsub" => Some(Protocol::EventSub),
            _ => None,
        }
    }

    /// The scope a user token needs to read chat this way.
    pub fn scope(self) -> &'static str {
        match self {
            Protocol::Irc => "chat:read",
            Protocol::EventSub => "user:read:chat",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
        /// Which message this is, the same for every copy Twitch shows of it: in shared chat
        /// a message sent in one channel is shown in every channel of the session, and each
        /// copy names the message it came from. `None` when the wire gave no id.
        id: Option<String>,
        /// This is such a copy, shown in another channel than the one it was sent in.
        copy: bool,
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
    /// Twitch revoked the authorization of this channel's subscription (EventSub): the
    /// session holds the channel and subscribes again after `again_in`; the token should be
    /// checked meanwhile. The other channels are not affected.
    SubscriptionRevoked {
        /// Channel login, without `#`.
        channel: String,
        /// When the session subscribes again.
        again_in: std::time::Duration,
    },
    /// This channel is no longer read, and why (until the config changes or a restart).
    Unreadable {
        /// Channel login, without `#`.
        channel: String,
        /// Why, for the log and the status.
        why: String,
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
    /// The connection was lost or the server ended the session, described.
    Lost(String),
    /// None of the channels can be read (EventSub: none exists, or all were removed), and
    /// Twitch closes a socket without subscriptions: nothing to connect for.
    NothingToRead,
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::AuthFailed(text) => write!(f, "login refused: {text}"),
            CloseReason::Reconnect => f.write_str("server asked to reconnect"),
            CloseReason::LoginTimeout => f.write_str("no login confirmation in time"),
            CloseReason::Timeout => f.write_str("the connection went silent"),
            CloseReason::Lost(why) => f.write_str(why),
            CloseReason::NothingToRead => {
                f.write_str("no channel can be read: none of them exists on Twitch any more")
            }
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
    /// The connection to write to.
    pub link: Link,
    /// What goes on the wire.
    pub bytes: Vec<u8>,
    /// A redacted rendering for logs.
    pub shown: String,
    /// Close this connection once the bytes are written (a WebSocket close frame).
    pub(crate) then_close: bool,
}

/// Something a session needs the driver to do besides writing bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Open another connection, as `link`; report how that went to the session
    /// (`handle_dialed`), then feed its bytes with that link number.
    Dial {
        /// The number the session gave it.
        link: Link,
        /// Where to connect.
        endpoint: Endpoint,
    },
    /// Call Helix with the user's token; report the answer to the session (`handle_api`).
    Api(ApiRequest),
}

/// A Helix call a session needs (EventSub subscriptions are made over HTTP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiRequest {
    /// `GET /helix/users?login=…`: the user ids of up to 100 channel logins.
    Resolve(Vec<String>),
    /// `POST /helix/eventsub/subscriptions` for `channel.chat.message` v1.
    Subscribe {
        /// The channel's user id.
        broadcaster_id: String,
        /// The reading user (the token's owner).
        user_id: String,
        /// The WebSocket session to deliver to.
        session_id: String,
    },
    /// `DELETE /helix/eventsub/subscriptions?id=…`; without an id, the user's
    /// `channel.chat.message` subscription for this channel is looked up first.
    Unsubscribe {
        /// The channel's user id.
        broadcaster_id: String,
        /// The WebSocket session it was made for.
        session_id: String,
        /// The subscription id, when known.
        id: Option<String>,
    },
}

/// A Helix call that failed: the HTTP status (`None`: no answer) and Twitch's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    /// The HTTP status, if there was an answer.
    pub status: Option<u16>,
    /// Twitch's message, or what went wrong (escaped and capped).
    pub message: String,
    /// How long until the rate-limit bucket is full again (`Ratelimit-Reset`), if Twitch said.
    pub refill_in: Option<std::time::Duration>,
}

impl ApiFailure {
    /// What the failure means to the session.
    pub fn kind(&self) -> ErrorKind {
        self.status.map_or(ErrorKind::NoAnswer, |s| {
            ErrorKind::of_answer(s, &self.message)
        })
    }
}

/// How an [`ApiRequest`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAnswer {
    /// `(login, id)` of each channel that exists.
    Resolved(Result<Vec<(String, String)>, ApiFailure>),
    /// The new subscription's id.
    Subscribed(Result<String, ApiFailure>),
    /// The subscription is gone.
    Unsubscribed(Result<(), ApiFailure>),
}
