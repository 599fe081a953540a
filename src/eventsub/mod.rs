//! Chat over EventSub WebSocket, free of I/O: the WebSocket handshake and frames
//! ([`crate::ws`]), the session's welcome, keepalive, `session_reconnect` (a second socket
//! kept until its welcome), revocations and close codes, and the `channel.chat.message`
//! subscriptions, asked of the driver as Helix calls ([`Order::Api`]). It produces the same
//! [`Event`]s as the IRC session: the user core cannot tell which one is in use.
//!
//! Twitch's rules (twitch-facts §4): the client sends nothing but Pong and Close; a
//! subscription must be made within the welcome's keepalive window; nothing for longer
//! than the keepalive timeout means the connection is dead (then every subscription is
//! gone and a new session subscribes again); after `session_reconnect` the subscriptions
//! carry over to the new socket, which is not subscribed again.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use nanorand::{Rng, WyRand};

use crate::chat::{CloseReason, Event, Link, Order, Transmit};
use crate::endpoint::{self, Endpoint, Url};
use crate::http::wire::ResponseParser;
use crate::log;
use crate::timer::Timers;

mod messages;
mod subscriptions;
use crate::ws::{self, Message, Opcode};

/// Twitch's limit of enabled subscriptions on one WebSocket connection.
pub(crate) const MAX_SUBSCRIPTIONS: usize = 300;
/// From opening a connection to its welcome.
pub(crate) const WELCOME_TIMEOUT: Duration = Duration::from_secs(20);
/// Logins per `GET /helix/users` request.
const LOGINS_PER_LOOKUP: usize = 100;
/// After Twitch revoked the authorization of one channel's subscription, subscribe again
/// this much later (the token is checked, and renewed if need be, meanwhile).
pub(crate) const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(5);
/// After a 429 of Helix's bucket: wait until `Ratelimit-Reset`, at least the first and at most
/// the second (a reset far ahead, or none, must not hold a channel for long).
pub(crate) const BUCKET_WAIT: std::ops::Range<Duration> =
    Duration::from_secs(1)..Duration::from_secs(60);
/// A second revocation of the same channel within this long drops the channel.
pub(crate) const REVOKED_AGAIN_WITHIN: Duration = Duration::from_secs(3600);

/// How long silence means a dead connection: the keepalive timeout plus half of it plus a
/// second, for delivery delays.
pub(crate) fn silence_limit(keepalive: Duration) -> Duration {
    keepalive + keepalive / 2 + Duration::from_secs(1)
}

/// What each close code of the EventSub server means (twitch-facts §4.7).
pub(crate) fn close_code_meaning(code: u16) -> &'static str {
    match code {
        4000 => "internal server error",
        4001 => "the client sent inbound traffic",
        4002 => "the client failed ping-pong",
        4003 => "connection unused (no subscription in time)",
        4004 => "reconnect grace time expired",
        4005 => "network timeout",
        4006 => "network error",
        4007 => "invalid reconnect",
        1000 => "normal closure",
        1001 => "going away",
        _ => "unknown close code",
    }
}

#[derive(Debug)]
enum Phase {
    /// The driver is opening the connection.
    Dialing,
    /// The upgrade request is sent; reading the answer.
    Handshake(Box<ResponseParser>),
    /// Frames flow.
    Open,
}

#[derive(Debug)]
struct Socket {
    link: Link,
    endpoint: Endpoint,
    target: String,
    key: [u8; 16],
    phase: Phase,
    decoder: ws::Decoder,
    welcomed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Sub {
    /// To subscribe (once the channel's id is known).
    Wanted,
    /// The subscription request is in flight.
    Requested,
    /// Subscribed, with the subscription id when Twitch gave it (not after a 409).
    Active(Option<String>),
    /// Revoked (authorization_revoked): subscribe again at this moment.
    Held(Instant),
    /// Not readable (no such channel, over the limit, revoked for good).
    Dead,
}

#[derive(Debug)]
struct Channel {
    id: Option<String>,
    sub: Sub,
    /// When Twitch last revoked the authorization of this channel's subscription.
    revoked_at: Option<Instant>,
}

/// A subscription to delete.
#[derive(Debug)]
struct Leaving {
    broadcaster_id: String,
    /// Its id when known (not after a 409).
    subscription_id: Option<String>,
}

#[derive(Debug)]
enum InFlight {
    Resolve(Vec<String>),
    Subscribe(String),
    Unsubscribe,
}

crate::timer::timers! {
    enum Timer {
        /// Nothing received for too long (or no welcome yet).
        Silence,
        /// Subscribe again to a channel whose subscription was revoked.
        Resubscribe,
    }
    table TimerTable
}

/// One user's chat over EventSub.
#[derive(Debug)]
pub struct Session {
    user_id: String,
    rng: WyRand,
    /// Open sockets, oldest first: two only between `session_reconnect` and the new welcome.
    sockets: Vec<Socket>,
    next_link: Link,
    /// The newest welcome's session id; `None` until the first welcome.
    session_id: Option<String>,
    keepalive: Duration,
    closed: bool,
    channels: BTreeMap<String, Channel>,
    /// Subscriptions to delete: (broadcaster id, subscription id when known).
    leaving: Vec<Leaving>,
    in_flight: Option<InFlight>,
    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    orders: VecDeque<Order>,
    events: VecDeque<Event>,
}

impl Session {
    /// A session on the connection the driver just opened to `endpoint` (link 0), asking for
    /// `target`, for the user `user_id` reading `channels`.
    pub fn new(now: Instant, url: &Url, user_id: &str, channels: &[String], seed: u64) -> Session {
        let mut s = Session {
            user_id: user_id.to_owned(),
            rng: WyRand::new_seed(seed),
            sockets: Vec::new(),
            next_link: 1,
            session_id: None,
            keepalive: Duration::from_secs(10),
            closed: false,
            channels: BTreeMap::new(),
            leaving: Vec::new(),
            in_flight: None,
            timers: Timers::default(),
            transmits: VecDeque::new(),
            orders: VecDeque::new(),
            events: VecDeque::new(),
        };
        for channel in channels {
            s.join(channel);
        }
        if user_id.is_empty() {
            s.close(CloseReason::Lost(
                "the user id is not known yet, and EventSub needs it".into(),
            ));
            return s;
        }
        s.add_socket(0, url.endpoint.clone(), url.path.clone());
        s.handshake(0);
        s.timers.set(Timer::Silence, Some(now + WELCOME_TIMEOUT));
        s
    }

    fn add_socket(&mut self, link: Link, endpoint: Endpoint, target: String) {
        let key = self.rng.generate::<u128>().to_le_bytes();
        self.sockets.push(Socket {
            link,
            endpoint,
            target,
            key,
            phase: Phase::Dialing,
            decoder: ws::Decoder::new(),
            welcomed: false,
        });
    }

    fn socket(&self, link: Link) -> Option<usize> {
        self.sockets.iter().position(|s| s.link == link)
    }

    fn handshake(&mut self, link: Link) {
        let Some(i) = self.socket(link) else { return };
        let s = &mut self.sockets[i];
        let request = ws::handshake_request(&endpoint::host_header(&s.endpoint), &s.target, &s.key);
        s.phase = Phase::Handshake(Box::new(ResponseParser::new(false)));
        let shown = format!("GET {} (WebSocket upgrade)", log::capped(&s.target));
        self.transmits.push_back(Transmit {
            link,
            bytes: request.into_bytes(),
            shown,
            then_close: false,
        });
    }

    fn mask(&mut self) -> [u8; 4] {
        self.rng.generate::<u32>().to_le_bytes()
    }

    fn send_frame(&mut self, link: Link, opcode: Opcode, payload: &[u8], shown: String) {
        let mask = self.mask();
        self.transmits.push_back(Transmit {
            link,
            bytes: ws::encode_frame(opcode, payload, mask),
            shown,
            then_close: false,
        });
    }

    /// Sends a close frame on `link` and drops the socket.
    fn hang_up(&mut self, link: Link, code: u16, reason: &str) {
        if let Some(i) = self.socket(link) {
            let open = matches!(self.sockets[i].phase, Phase::Open);
            self.sockets.remove(i);
            let mask = self.mask();
            self.transmits.push_back(Transmit {
                link,
                bytes: if open {
                    ws::encode_close(code, reason, mask)
                } else {
                    Vec::new()
                },
                shown: format!("close {code}"),
                then_close: true,
            });
        }
    }

    fn close(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.leave();
        self.events.push_back(Event::Closed(reason));
    }

    /// Ends the session from this side without an event (its owner is replacing it): a
    /// Close 1000 on every socket, then nothing more.
    pub fn leave(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.timers.clear();
        let links: Vec<Link> = self.sockets.iter().map(|s| s.link).collect();
        for link in links {
            self.hang_up(link, 1000, "");
        }
    }

    /// Bytes read from connection `link`.
    pub fn handle_input(&mut self, now: Instant, link: Link, bytes: &[u8]) {
        if self.closed {
            return;
        }
        let Some(i) = self.socket(link) else { return };
        let mut frames = bytes.to_vec();
        if let Phase::Handshake(parser) = &mut self.sockets[i].phase {
            let parsed = match parser.feed(bytes) {
                Ok(None) => return,
                Ok(Some(parsed)) => parsed,
                Err(e) => return self.close(CloseReason::Lost(format!("EventSub handshake: {e}"))),
            };
            let status = parsed.response.status().as_u16();
            if status != 101 {
                let body = crate::answer::error_message(parsed.response.body());
                return self.close(CloseReason::Lost(format!(
                    "EventSub refused the WebSocket upgrade: HTTP {status}: {body}"
                )));
            }
            let accept = parsed
                .response
                .headers()
                .get(http::header::SEC_WEBSOCKET_ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if accept != ws::accept_value(&self.sockets[i].key) {
                return self.close(CloseReason::Lost(
                    "EventSub answered the WebSocket upgrade with a wrong Sec-WebSocket-Accept"
                        .into(),
                ));
            }
            self.sockets[i].phase = Phase::Open;
            frames = parsed.upgraded.unwrap_or_default();
        }
        if let Err(e) = self.sockets[i].decoder.feed(&frames) {
            self.hang_up(link, 1002, "protocol error");
            return self.lost(link, format!("EventSub: {e}"));
        }
        while let Some(message) = self
            .socket(link)
            .and_then(|i| self.sockets[i].decoder.poll_message())
        {
            if self.closed {
                return;
            }
            match message {
                Message::Text(text) => self.handle_text(now, link, &text),
                Message::Ping(payload) => {
                    self.send_frame(link, Opcode::Pong, &payload, "pong".into())
                }
                Message::Pong(_) => {}
                Message::Binary(_) => self.events.push_back(Event::Dropped(
                    "binary WebSocket message from EventSub".into(),
                )),
                Message::Close(close) => {
                    let (code, reason) = close.unwrap_or((1005, String::new()));
                    self.hang_up(link, code.min(4999), "");
                    let why = format!(
                        "EventSub closed the connection: {code} {}{}",
                        close_code_meaning(code),
                        if reason.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", log::quoted(&reason))
                        }
                    );
                    return self.lost(link, why);
                }
            }
        }
    }

    /// Connection `link` is gone (already removed, or to remove now).
    fn lost(&mut self, link: Link, why: String) {
        if let Some(i) = self.socket(link) {
            self.sockets.remove(i);
        }
        // the old socket of a reconnect may go first: its successor carries the subscriptions
        if self.sockets.is_empty() || link > self.sockets[0].link {
            self.close(CloseReason::Lost(why));
        } else {
            self.events
                .push_back(Event::Dropped(format!("old EventSub socket gone: {why}")));
        }
    }

    /// Connection `link` ended.
    pub(crate) fn handle_lost(&mut self, _now: Instant, link: Link, why: String) {
        if !self.closed && self.socket(link).is_some() {
            self.lost(link, why);
        }
    }

    /// The connection asked for with [`Order::Dial`] is open (or failed).
    pub fn handle_dialed(&mut self, _now: Instant, link: Link, result: std::io::Result<()>) {
        if self.closed || self.socket(link).is_none() {
            return;
        }
        match result {
            Ok(()) => self.handshake(link),
            Err(why) => self.lost(
                link,
                format!("cannot reach the EventSub reconnect URL: {why}"),
            ),
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        if self.timers.is_due(Timer::Resubscribe, now) {
            for c in self.channels.values_mut() {
                if matches!(c.sub, Sub::Held(at) if at <= now) {
                    c.sub = Sub::Wanted;
                }
            }
            self.arm_resubscribe();
            self.pump();
        }
        if !self.timers.is_due(Timer::Silence, now) {
            return;
        }
        if self.session_id.is_none() {
            self.close(CloseReason::LoginTimeout);
        } else {
            self.close(CloseReason::Timeout);
        }
    }

    /// The next bytes to write.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        crate::queue::pop(&mut self.transmits)
    }

    /// The next connection or Helix call needed.
    #[must_use]
    pub fn poll_order(&mut self) -> Option<Order> {
        crate::queue::pop(&mut self.orders)
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

#[cfg(test)]
mod tests;
