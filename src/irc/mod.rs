//! Twitch chat over IRC: the line format, and the sans-IO session behind [`crate::chat_session::ChatSession`].

pub mod commands;
mod message;
mod session;

pub use message::{Message, ParseError};
pub use session::{
    redact, Session, IDLE_BEFORE_PING, JOIN_LIMIT, JOIN_WINDOW, MAX_LINE, PONG_TIMEOUT,
    REGISTER_TIMEOUT,
};
