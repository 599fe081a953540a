//! The chat session a user's driver holds, of whichever protocol: the one module that knows
//! both transports (their constructors, and how each maps onto the chat boundary's
//! vocabulary in [`crate::chat`]). Neither protocol, nor the vocabulary, knows this module.

use std::time::Instant;

use crate::chat::{ApiAnswer, Event, Link, Login, Order, Protocol, Transmit};
use crate::endpoint::Url;
use crate::eventsub;
use crate::irc;

/// One live chat session, of whichever protocol.
#[non_exhaustive]
pub enum ChatSession {
    /// Twitch IRC (TMI).
    Irc(Box<irc::Session>),
    /// EventSub over WebSocket.
    EventSub(Box<eventsub::Session>),
}

impl ChatSession {
    /// An IRC session that logs in as `login` at `now`.
    pub fn irc(now: Instant, login: Login<'_>) -> ChatSession {
        ChatSession::Irc(Box::new(irc::Session::new(now, login)))
    }

    /// An EventSub session on the connection just opened to `url` (link 0), reading
    /// `channels` for the user `user_id`; `seed` for WebSocket keys and masks.
    pub fn eventsub(
        now: Instant,
        url: &Url,
        user_id: &str,
        channels: &[String],
        seed: u64,
    ) -> ChatSession {
        let session = eventsub::Session::new(now, url, user_id, channels, seed);
        ChatSession::EventSub(Box::new(session))
    }

    /// Which protocol this is.
    pub fn transport(&self) -> Protocol {
        match self {
            ChatSession::Irc(_) => Protocol::Irc,
            ChatSession::EventSub(_) => Protocol::EventSub,
        }
    }

    /// Feeds bytes read from connection `link`.
    pub fn handle_input(&mut self, now: Instant, link: Link, bytes: &[u8]) {
        match self {
            ChatSession::Irc(s) => s.handle_input(now, bytes),
            ChatSession::EventSub(s) => s.handle_input(now, link, bytes),
        }
    }

    /// Connection `link` ended (closed by the peer, or a read or write failed).
    pub(crate) fn handle_lost(&mut self, now: Instant, link: Link, why: String) {
        match self {
            ChatSession::Irc(s) => s.handle_lost(why),
            ChatSession::EventSub(s) => s.handle_lost(now, link, why),
        }
    }

    /// An [`Order::Dial`] ended. IRC never dials: it has one connection, the driver's.
    pub fn handle_dialed(&mut self, now: Instant, link: Link, result: std::io::Result<()>) {
        if let ChatSession::EventSub(s) = self {
            s.handle_dialed(now, link, result);
        }
    }

    /// An [`Order::Api`] call ended. IRC never calls Helix: joining a channel is a line.
    pub fn handle_api(&mut self, now: Instant, answer: ApiAnswer) {
        if let ChatSession::EventSub(s) = self {
            s.handle_api(now, answer);
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            ChatSession::Irc(s) => s.handle_timeout(now),
            ChatSession::EventSub(s) => s.handle_timeout(now),
        }
    }

    /// Joins `channel` on the live connection (paced by the protocol's limits).
    pub fn join(&mut self, now: Instant, channel: &str) {
        match self {
            ChatSession::Irc(s) => s.join(now, channel),
            ChatSession::EventSub(s) => s.join(channel),
        }
    }

    /// Leaves `channel` on the live connection.
    pub fn part(&mut self, channel: &str) {
        match self {
            ChatSession::Irc(s) => s.part(channel),
            ChatSession::EventSub(s) => s.part(channel),
        }
    }

    /// Ends the session from this side because its owner replaces it (a switch of transport):
    /// EventSub queues a Close 1000 on each socket (send them with [`ChatSession::poll_transmit`]).
    /// IRC has no goodbye to send: dropping the connection is its way of leaving. No event
    /// follows.
    pub fn leave(&mut self) {
        if let ChatSession::EventSub(s) = self {
            s.leave();
        }
    }

    /// The next bytes to write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            ChatSession::Irc(s) => s.poll_transmit().map(|line| Transmit {
                link: 0,
                shown: irc::redact(&line).to_owned(),
                bytes: line.into_bytes(),
                then_close: false,
            }),
            ChatSession::EventSub(s) => s.poll_transmit(),
        }
    }

    /// The next connection or Helix call the session needs. IRC needs neither (see
    /// [`ChatSession::handle_dialed`] and [`ChatSession::handle_api`]).
    #[must_use]
    pub fn poll_order(&mut self) -> Option<Order> {
        match self {
            ChatSession::Irc(_) => None,
            ChatSession::EventSub(s) => s.poll_order(),
        }
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        match self {
            ChatSession::Irc(s) => s.poll_event(),
            ChatSession::EventSub(s) => s.poll_event(),
        }
    }

    /// When [`ChatSession::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            ChatSession::Irc(s) => s.poll_timeout(),
            ChatSession::EventSub(s) => s.poll_timeout(),
        }
    }
}
