//! Twitch chat over IRC: the line format, the sans-IO session, and its async driver.

mod message;
mod session;

pub use message::{Message, ParseError};
pub use session::{
    redact, CloseReason, Event, Privmsg, Session, IDLE_BEFORE_PING, JOIN_LIMIT, JOIN_WINDOW,
    MAX_LINE, PONG_TIMEOUT, REGISTER_TIMEOUT,
};
