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
use serde_json::Value;

use crate::chat::{ApiAnswer, ApiFailure, ApiRequest, CloseReason, Event, Link, Order, Transmit};
use crate::endpoint::{self, Endpoint, Url};
use crate::http::ResponseParser;
use crate::log;
use crate::timer::Timers;
use crate::ws::{self, Message, Opcode};

/// Twitch's limit of enabled subscriptions on one WebSocket connection.
pub const MAX_SUBSCRIPTIONS: usize = 300;
/// From opening a connection to its welcome.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(20);
/// Message ids remembered to drop redeliveries (EventSub delivers at least once).
const REMEMBERED: usize = 256;
/// Logins per `GET /helix/users` request.
const LOGINS_PER_LOOKUP: usize = 100;
/// After Twitch revoked the authorization of one channel's subscription, subscribe again
/// this much later (the token is checked, and renewed if need be, meanwhile).
pub const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(5);
/// A second revocation of the same channel within this long drops the channel.
pub const REVOKED_AGAIN_WITHIN: Duration = Duration::from_secs(3600);

/// How long silence means a dead connection: the keepalive timeout plus half of it plus a
/// second, for delivery delays.
pub fn silence_limit(keepalive: Duration) -> Duration {
    keepalive + keepalive / 2 + Duration::from_secs(1)
}

/// What each close code of the EventSub server means (twitch-facts §4.7).
pub fn close_code_meaning(code: u16) -> &'static str {
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
    Handshake(ResponseParser),
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

#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Nothing received for too long (or no welcome yet).
    Silence = 0,
    /// Subscribe again to a channel whose subscription was revoked.
    Resubscribe = 1,
}

impl crate::timer::Kind for Timer {
    fn index(self) -> usize {
        self as usize
    }
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
    seen: VecDeque<String>,
    timers: Timers<Timer, 2>,
    transmits: VecDeque<Transmit>,
    orders: VecDeque<Order>,
    events: VecDeque<Event>,
}

impl Session {
    /// A session on the connection the driver just opened to `endpoint` (link 0), asking for
    /// `target`, for the user `user_id` reading `channels`.
    pub fn new(
        now: Instant,
        endpoint: &Endpoint,
        target: &str,
        user_id: &str,
        channels: &[String],
        seed: u64,
    ) -> Session {
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
            seen: VecDeque::new(),
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
        s.add_socket(0, endpoint.clone(), target.to_owned());
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
        s.phase = Phase::Handshake(ResponseParser::new(false));
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
                let body = crate::helix::error_message(parsed.response.body());
                return self.close(CloseReason::Lost(format!(
                    "EventSub refused the WebSocket upgrade: HTTP {status}: {body}"
                )));
            }
            let accept = parsed
                .response
                .headers()
                .get("sec-websocket-accept")
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
    pub fn handle_lost(&mut self, _now: Instant, link: Link, why: String) {
        if !self.closed && self.socket(link).is_some() {
            self.lost(link, why);
        }
    }

    /// The connection asked for with [`Order::Dial`] is open (or failed).
    pub fn handle_dialed(&mut self, _now: Instant, link: Link, result: Result<(), String>) {
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

    fn handle_text(&mut self, now: Instant, link: Link, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return self
                .events
                .push_back(Event::Dropped("EventSub message that is not JSON".into()));
        };
        let metadata = &message["metadata"];
        let payload = &message["payload"];
        let kind = metadata["message_type"].as_str().unwrap_or("");
        let limit = silence_limit(self.keepalive);
        match kind {
            "session_welcome" => self.welcome(now, link, &payload["session"]),
            "session_keepalive" => {
                self.timers.set(Timer::Silence, Some(now + limit));
            }
            "notification" => {
                self.timers.set(Timer::Silence, Some(now + limit));
                self.notification(metadata, &payload["event"]);
            }
            "session_reconnect" => self.reconnect(&payload["session"]),
            "revocation" => self.revocation(now, &payload["subscription"]),
            other => self.events.push_back(Event::Dropped(format!(
                "EventSub message of type {}",
                log::quoted(other)
            ))),
        }
    }

    fn welcome(&mut self, now: Instant, link: Link, session: &Value) {
        let Some(i) = self.socket(link) else { return };
        let Some(id) = session["id"].as_str().filter(|id| !id.is_empty()) else {
            return self.close(CloseReason::Lost(
                "EventSub welcome without a session id".into(),
            ));
        };
        if self.sockets[i].welcomed {
            return self
                .events
                .push_back(Event::Dropped("a second EventSub welcome".into()));
        }
        self.sockets[i].welcomed = true;
        if let Some(secs) = session["keepalive_timeout_seconds"].as_u64() {
            self.keepalive = Duration::from_secs(secs.clamp(1, 600));
        }
        // the first welcome of the session, not one after a session_reconnect
        let first = self.session_id.replace(id.to_owned()).is_none();
        self.timers
            .set(Timer::Silence, Some(now + silence_limit(self.keepalive)));
        // a reconnect is complete: the old socket goes (its subscriptions moved here)
        let older: Vec<Link> = self.sockets[..i].iter().map(|s| s.link).collect();
        for old in older {
            self.hang_up(old, 1000, "reconnected");
        }
        if first {
            self.events.push_back(Event::Ready);
        }
        self.pump();
    }

    fn notification(&mut self, metadata: &Value, event: &Value) {
        if metadata["subscription_type"].as_str() != Some("channel.chat.message") {
            return self.events.push_back(Event::Dropped(format!(
                "EventSub notification of type {}",
                log::quoted(metadata["subscription_type"].as_str().unwrap_or(""))
            )));
        }
        let ids = [
            metadata["message_id"].as_str().unwrap_or(""),
            event["message_id"].as_str().unwrap_or(""),
        ];
        if ids
            .iter()
            .any(|id| !id.is_empty() && self.seen.iter().any(|s| s == id))
        {
            return self.events.push_back(Event::Dropped(
                "EventSub delivered a message again (same message id)".into(),
            ));
        }
        for id in ids.into_iter().filter(|id| !id.is_empty()) {
            if self.seen.len() == REMEMBERED {
                self.seen.pop_front();
            }
            self.seen.push_back(id.to_owned());
        }
        let channel = event["broadcaster_user_login"].as_str().unwrap_or("");
        let reading = self
            .channels
            .get(channel)
            .is_some_and(|c| c.sub != Sub::Dead);
        if reading && event["chatter_user_id"].as_str() == Some(self.user_id.as_str()) {
            self.events.push_back(Event::OwnMessage {
                channel: channel.to_owned(),
                text: event["message"]["text"].as_str().unwrap_or("").to_owned(),
            });
        }
    }

    fn reconnect(&mut self, session: &Value) {
        if self.sockets.len() > 1 {
            return;
        }
        let url = session["reconnect_url"].as_str().unwrap_or("");
        let current_tls = self.sockets.first().is_some_and(|s| s.endpoint.tls);
        match endpoint::parse_ws_url(url) {
            Ok(parsed) if current_tls && !parsed.endpoint.tls => {
                self.close(CloseReason::Lost(format!(
                    "EventSub asked to reconnect without TLS ({})",
                    log::quoted(url)
                )))
            }
            Ok(Url { endpoint, path }) => {
                let link = self.next_link;
                self.next_link += 1;
                self.add_socket(link, endpoint.clone(), path);
                self.orders.push_back(Order::Dial { link, endpoint });
            }
            Err(e) => self.close(CloseReason::Lost(format!(
                "EventSub sent an unusable reconnect URL: {}",
                log::capped(&e.to_string())
            ))),
        }
    }

    fn revocation(&mut self, now: Instant, subscription: &Value) {
        let status = subscription["status"].as_str().unwrap_or("");
        let broadcaster = subscription["condition"]["broadcaster_user_id"]
            .as_str()
            .unwrap_or("");
        let Some(login) = self
            .channels
            .iter()
            .find(|(_, c)| c.id.as_deref() == Some(broadcaster))
            .map(|(login, _)| login.clone())
        else {
            return self.events.push_back(Event::Dropped(
                "revocation of a subscription for a channel not read".into(),
            ));
        };
        self.events.push_back(Event::Notice {
            channel: Some(login.clone()),
            msg_id: Some(log::capped(status)),
            text: "Twitch revoked the chat subscription".into(),
        });
        match status {
            // One channel's subscription lost its authorisation: the other channels go on.
            // The token is checked (renewed if invalid); the channel is subscribed again once,
            // and dropped if Twitch revokes it again.
            "authorization_revoked" => {
                let Some(c) = self.channels.get_mut(&login) else {
                    return;
                };
                let again = c
                    .revoked_at
                    .is_some_and(|at| now.saturating_duration_since(at) < REVOKED_AGAIN_WITHIN);
                c.revoked_at = Some(now);
                if again {
                    c.sub = Sub::Dead;
                    self.events.push_back(Event::Unreadable {
                        channel: login,
                        why: "Twitch revoked the authorization of this channel's chat subscription twice within an hour; no longer reading it (edit the config or restart the bot to try again)".into(),
                    });
                    self.pump();
                } else {
                    c.sub = Sub::Held(now + RESUBSCRIBE_AFTER);
                    self.arm_resubscribe();
                    self.events.push_back(Event::SubscriptionRevoked {
                        channel: login,
                        again_in: RESUBSCRIBE_AFTER,
                    });
                }
            }
            // the channel's account is gone, or the subscription type was retired
            "user_removed" | "version_removed" => {
                if let Some(c) = self.channels.get_mut(&login) {
                    c.sub = Sub::Dead;
                }
                self.events.push_back(Event::Left(login));
                self.pump();
            }
            _ => {
                if let Some(c) = self.channels.get_mut(&login) {
                    c.sub = Sub::Wanted;
                }
                self.events.push_back(Event::Left(login));
                self.pump();
            }
        }
    }

    /// Reads `channel` (a login without `#`) from now on: subscribes when the session allows.
    pub fn join(&mut self, channel: &str) {
        if self.closed || self.channels.contains_key(channel) {
            return;
        }
        let live = self
            .channels
            .values()
            .filter(|c| c.sub != Sub::Dead)
            .count();
        let sub = if live >= MAX_SUBSCRIPTIONS {
            self.events.push_back(Event::Notice {
                channel: Some(channel.to_owned()),
                msg_id: Some("too_many_channels".into()),
                text: format!("Twitch allows {MAX_SUBSCRIPTIONS} EventSub subscriptions per connection; this channel is not read (use IRC for more channels)"),
            });
            Sub::Dead
        } else {
            Sub::Wanted
        };
        self.channels.insert(
            channel.to_owned(),
            Channel {
                id: None,
                sub,
                revoked_at: None,
            },
        );
        self.pump();
    }

    /// Stops reading `channel`: its subscription is deleted.
    pub fn part(&mut self, channel: &str) {
        if self.closed {
            return;
        }
        let Some(c) = self.channels.remove(channel) else {
            return;
        };
        if let (Some(id), Sub::Active(sub)) = (c.id, c.sub) {
            self.leaving.push(Leaving {
                broadcaster_id: id,
                subscription_id: sub,
            });
        }
        self.events.push_back(Event::Left(channel.to_owned()));
        self.pump();
    }

    /// Starts the next Helix call: look channels up, subscribe, unsubscribe. One at a time.
    fn pump(&mut self) {
        if self.closed || self.in_flight.is_some() {
            return;
        }
        let Some(session_id) = self.session_id.clone() else {
            return;
        };
        let unresolved: Vec<String> = self
            .channels
            .iter()
            .filter(|(_, c)| c.id.is_none() && c.sub == Sub::Wanted)
            .map(|(login, _)| login.clone())
            .take(LOGINS_PER_LOOKUP)
            .collect();
        if !unresolved.is_empty() {
            self.in_flight = Some(InFlight::Resolve(unresolved.clone()));
            self.orders
                .push_back(Order::Api(ApiRequest::Resolve(unresolved)));
            return;
        }
        let wanted = self.channels.iter_mut().find(|(_, c)| c.sub == Sub::Wanted);
        if let Some((login, c)) = wanted {
            c.sub = Sub::Requested;
            let broadcaster_id = c.id.clone().unwrap_or_default();
            self.in_flight = Some(InFlight::Subscribe(login.clone()));
            self.orders.push_back(Order::Api(ApiRequest::Subscribe {
                broadcaster_id,
                user_id: self.user_id.clone(),
                session_id,
            }));
            return;
        }
        if let Some(Leaving {
            broadcaster_id,
            subscription_id: id,
        }) = self.leaving.pop()
        {
            self.in_flight = Some(InFlight::Unsubscribe);
            self.orders.push_back(Order::Api(ApiRequest::Unsubscribe {
                broadcaster_id,
                session_id,
                id,
            }));
            return;
        }
        // Twitch closes a socket without subscriptions (4003) within seconds: reconnecting
        // would only repeat that, so the session ends until the channels change
        if self.channels.values().all(|c| c.sub == Sub::Dead) {
            self.close(CloseReason::NothingToRead);
        }
    }

    /// A Helix call asked for with [`Order::Api`] ended.
    pub fn handle_api(&mut self, _now: Instant, answer: ApiAnswer) {
        let in_flight = self.in_flight.take();
        if self.closed {
            return;
        }
        match (in_flight, answer) {
            (Some(InFlight::Resolve(asked)), ApiAnswer::Resolved(Ok(found))) => {
                for login in asked {
                    let id = found
                        .iter()
                        .find(|(l, _)| l.eq_ignore_ascii_case(&login))
                        .map(|(_, id)| id.clone());
                    let Some(c) = self.channels.get_mut(&login) else {
                        continue;
                    };
                    match id {
                        Some(id) => c.id = Some(id),
                        None => {
                            c.sub = Sub::Dead;
                            self.events.push_back(Event::Notice {
                                channel: Some(login),
                                msg_id: Some("no_such_channel".into()),
                                text: "Twitch has no channel with this name; it is not read".into(),
                            });
                        }
                    }
                }
            }
            (Some(InFlight::Resolve(_)), ApiAnswer::Resolved(Err(f))) => {
                return self.api_failed("cannot look up the channels' ids", None, f);
            }
            (Some(InFlight::Subscribe(login)), ApiAnswer::Subscribed(result)) => {
                let wanted = self
                    .channels
                    .get(&login)
                    .is_some_and(|c| c.sub == Sub::Requested);
                match result {
                    Ok(id) if wanted => self.subscribed(&login, Some(id)),
                    Ok(id) => {
                        // parted while the request was in flight
                        let broadcaster = self.channels.get(&login).and_then(|c| c.id.clone());
                        self.leaving.push(Leaving {
                            broadcaster_id: broadcaster.unwrap_or_default(),
                            subscription_id: Some(id),
                        });
                    }
                    Err(f) if f.status == Some(409) => self.subscribed(&login, None),
                    Err(f) if f.status == Some(400) => {
                        if let Some(c) = self.channels.get_mut(&login) {
                            c.sub = Sub::Dead;
                        }
                        self.events.push_back(Event::Notice {
                            channel: Some(login),
                            msg_id: Some("subscription_refused".into()),
                            text: format!("Twitch refused the chat subscription: {}", f.message),
                        });
                    }
                    Err(f) => return self.api_failed("cannot subscribe to chat", Some(&login), f),
                }
            }
            (Some(InFlight::Unsubscribe), ApiAnswer::Unsubscribed(Err(f))) => {
                self.events.push_back(Event::Dropped(format!(
                    "could not delete a chat subscription: {}",
                    f.message
                )));
            }
            _ => {}
        }
        self.pump();
    }

    fn subscribed(&mut self, login: &str, id: Option<String>) {
        if let Some(c) = self.channels.get_mut(login) {
            c.sub = Sub::Active(id);
            self.events.push_back(Event::Joined(login.to_owned()));
        }
    }

    fn api_failed(&mut self, what: &str, channel: Option<&str>, f: ApiFailure) {
        let at = channel.map(|c| format!(" #{c}")).unwrap_or_default();
        let reason = match f.status {
            Some(401) => CloseReason::AuthFailed(f.message),
            Some(403) => CloseReason::AuthFailed(format!(
                "{} (reading chat over EventSub needs a token with the user:read:chat scope)",
                f.message
            )),
            Some(429) => CloseReason::Lost(format!(
                "{what}{at}: HTTP 429: {}: Twitch allows 3 EventSub WebSocket connections per client id and user; another program or another copy of this bot is using them",
                f.message
            )),
            Some(status) => CloseReason::Lost(format!("{what}{at}: HTTP {status}: {}", f.message)),
            None => CloseReason::Lost(format!("{what}{at}: {}", f.message)),
        };
        self.close(reason);
    }

    /// Arms the resubscribe timer for the earliest held channel.
    fn arm_resubscribe(&mut self) {
        let at = self
            .channels
            .values()
            .filter_map(|c| match c.sub {
                Sub::Held(at) => Some(at),
                _ => None,
            })
            .min();
        self.timers.set(Timer::Resubscribe, at);
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
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next connection or Helix call needed.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: &str = "81234567";

    fn endpoint() -> Endpoint {
        Endpoint {
            tls: true,
            host: "eventsub.example".into(),
            port: 443,
        }
    }

    fn text_frame(text: &str) -> Vec<u8> {
        ws::encode_unmasked(0x81, text.as_bytes())
    }

    fn transmits(s: &mut Session) -> Vec<Transmit> {
        std::iter::from_fn(|| s.poll_transmit()).collect()
    }

    fn events(s: &mut Session) -> Vec<Event> {
        std::iter::from_fn(|| s.poll_event()).collect()
    }

    fn orders(s: &mut Session) -> Vec<Order> {
        std::iter::from_fn(|| s.poll_order()).collect()
    }

    /// The server's side of the upgrade: a 101 that accepts the key in the request.
    fn accept(request: &Transmit) -> Vec<u8> {
        let text = String::from_utf8(request.bytes.clone()).unwrap();
        let key = text
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap();
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            ws::accept_for(key)
        )
        .into_bytes()
    }

    fn welcome(id: &str, keepalive: u64) -> Vec<u8> {
        text_frame(&format!(
            r#"{{"metadata":{{"message_id":"w-{id}","message_type":"session_welcome","message_timestamp":"2026-11-26T10:00:00.1Z"}},"payload":{{"session":{{"id":"{id}","status":"connected","connected_at":"2026-11-26T10:00:00.1Z","keepalive_timeout_seconds":{keepalive},"reconnect_url":null}}}}}}"#
        ))
    }

    fn chat(mid: &str, channel: &str, chatter: &str, text: &str) -> Vec<u8> {
        text_frame(&format!(
            r#"{{"metadata":{{"message_id":"{mid}","message_type":"notification","message_timestamp":"2026-11-26T10:00:01.1Z","subscription_type":"channel.chat.message","subscription_version":"1"}},"payload":{{"subscription":{{"id":"sub","status":"enabled","type":"channel.chat.message","version":"1","condition":{{"broadcaster_user_id":"555","user_id":"{ME}"}},"transport":{{"method":"websocket","session_id":"S1"}},"created_at":"2026-11-26T10:00:00Z","cost":0}},"event":{{"broadcaster_user_id":"555","broadcaster_user_login":"{channel}","broadcaster_user_name":"{channel}","chatter_user_id":"{chatter}","chatter_user_login":"x","chatter_user_name":"x","message_id":"m-{mid}","message":{{"text":"{text}","fragments":[]}},"message_type":"text","badges":[],"cheer":null,"color":"","reply":null,"channel_points_custom_reward_id":null}}}}}}"#
        ))
    }

    fn control(kind: &str, payload: &str) -> Vec<u8> {
        text_frame(&format!(
            r#"{{"metadata":{{"message_id":"c-{kind}","message_type":"{kind}","message_timestamp":"2026-11-26T10:00:02.1Z"}},"payload":{payload}}}"#
        ))
    }

    /// A session welcomed as S1 whose channels are subscribed.
    fn subscribed(t: Instant, channels: &[&str]) -> Session {
        let chans: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
        let mut s = Session::new(t, &endpoint(), "/ws", ME, &chans, 7);
        let out = transmits(&mut s);
        assert_eq!(out.len(), 1);
        assert!(out[0].shown.starts_with("GET /ws"));
        let mut bytes = accept(&out[0]);
        bytes.extend(welcome("S1", 10));
        s.handle_input(t, 0, &bytes);
        assert_eq!(events(&mut s), [Event::Ready]);
        assert_eq!(
            orders(&mut s),
            [Order::Api(ApiRequest::Resolve(chans.clone()))]
        );
        let ids: Vec<(String, String)> = chans
            .iter()
            .enumerate()
            .map(|(i, c)| (c.clone(), format!("55{i}")))
            .collect();
        s.handle_api(t, ApiAnswer::Resolved(Ok(ids)));
        for (i, c) in chans.iter().enumerate() {
            assert_eq!(
                orders(&mut s),
                [Order::Api(ApiRequest::Subscribe {
                    broadcaster_id: format!("55{i}"),
                    user_id: ME.into(),
                    session_id: "S1".into()
                })]
            );
            s.handle_api(t, ApiAnswer::Subscribed(Ok(format!("sub{i}"))));
            assert_eq!(events(&mut s), [Event::Joined(c.clone())]);
        }
        assert!(orders(&mut s).is_empty());
        s
    }

    fn failure(status: u16, message: &str) -> ApiFailure {
        ApiFailure {
            status: Some(status),
            message: message.into(),
        }
    }

    #[test]
    fn welcomes_subscribes_and_reports_only_own_messages_once() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &chat("a", "lumenwave", "999", "someone else"));
        assert!(events(&mut s).is_empty());
        s.handle_input(t, 0, &chat("b", "lumenwave", ME, "hello"));
        let own = Event::OwnMessage {
            channel: "lumenwave".into(),
            text: "hello".into(),
        };
        assert_eq!(events(&mut s), [own]);
        // redelivered (at least once): the same message id changes nothing
        s.handle_input(t, 0, &chat("b", "lumenwave", ME, "hello"));
        assert!(matches!(events(&mut s)[..], [Event::Dropped(_)]));
        // a channel no longer read is ignored even if Twitch still delivers it
        s.handle_input(t, 0, &chat("c", "elsewhere", ME, "hi"));
        assert!(events(&mut s).is_empty());
        // the client only ever wrote the upgrade request
        assert!(transmits(&mut s).is_empty());
    }

    #[test]
    fn silence_past_the_keepalive_window_closes_and_keepalives_prevent_it() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        let limit = silence_limit(Duration::from_secs(10));
        assert_eq!(s.poll_timeout(), Some(t + limit));
        let t1 = t + Duration::from_secs(9);
        s.handle_input(t1, 0, &control("session_keepalive", "{}"));
        assert_eq!(s.poll_timeout(), Some(t1 + limit));
        s.handle_timeout(t + limit);
        assert!(events(&mut s).is_empty());
        s.handle_timeout(t1 + limit);
        assert_eq!(events(&mut s), [Event::Closed(CloseReason::Timeout)]);
    }

    #[test]
    fn leaving_says_close_1000_and_nothing_more() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        s.leave();
        let out = transmits(&mut s);
        assert_eq!(out.len(), 1);
        assert!(out[0].then_close && out[0].link == 0 && out[0].shown == "close 1000");
        // a masked Close frame carrying 1000
        let mask = &out[0].bytes[2..6];
        assert_eq!(out[0].bytes[..2], [0x88, 0x82]);
        assert_eq!(
            [out[0].bytes[6] ^ mask[0], out[0].bytes[7] ^ mask[1]],
            1000u16.to_be_bytes()
        );
        assert!(events(&mut s).is_empty() && s.poll_timeout().is_none());
        s.handle_input(t, 0, &control("session_keepalive", "{}"));
        s.leave();
        assert!(transmits(&mut s).is_empty() && events(&mut s).is_empty());
    }

    #[test]
    fn no_welcome_in_time_is_a_login_timeout() {
        let t = Instant::now();
        let mut s = Session::new(t, &endpoint(), "/ws", ME, &[], 1);
        s.handle_timeout(t + WELCOME_TIMEOUT);
        assert_eq!(events(&mut s), [Event::Closed(CloseReason::LoginTimeout)]);
    }

    #[test]
    fn answers_pings_with_masked_pongs() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &[0x89, 0x02, b'h', b'i']);
        let out = transmits(&mut s);
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].link, out[0].bytes[0], out[0].bytes[1]),
            (0, 0x8A, 0x82)
        );
        let mask = &out[0].bytes[2..6];
        assert_eq!(
            [out[0].bytes[6] ^ mask[0], out[0].bytes[7] ^ mask[1]],
            *b"hi"
        );
        assert!(events(&mut s).is_empty());
    }

    #[test]
    fn session_reconnect_keeps_the_old_socket_until_the_new_welcome() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(
            t,
            0,
            &control(
                "session_reconnect",
                r#"{"session":{"id":"S1","status":"reconnecting","keepalive_timeout_seconds":null,"reconnect_url":"wss://eventsub.example?reconnect=abc"}}"#,
            ),
        );
        let dial = orders(&mut s);
        let [Order::Dial { link, endpoint }] = &dial[..] else {
            panic!("{dial:?}")
        };
        assert_eq!((*link, endpoint.host.as_str()), (1, "eventsub.example"));
        s.handle_dialed(t, 1, Ok(()));
        let out = transmits(&mut s);
        assert_eq!(out[0].link, 1);
        assert!(
            out[0].shown.starts_with("GET /?reconnect=abc"),
            "{}",
            out[0].shown
        );
        s.handle_input(t, 1, &accept(&out[0]));
        // the old socket still delivers until the new one is welcomed
        s.handle_input(t, 0, &chat("d", "lumenwave", ME, "during"));
        assert_eq!(events(&mut s).len(), 1);
        s.handle_input(t, 1, &welcome("S2", 10));
        let out = transmits(&mut s);
        assert_eq!(out.len(), 1);
        assert!(out[0].then_close && out[0].link == 0);
        assert_eq!(out[0].bytes[0], 0x88);
        // subscriptions carried over: nothing is subscribed again, no second Ready
        assert!(orders(&mut s).is_empty());
        assert!(events(&mut s).is_empty());
        s.handle_input(t, 1, &chat("e", "lumenwave", ME, "after"));
        assert_eq!(events(&mut s).len(), 1);
        // a channel added later is subscribed on the new session
        s.join("newchan");
        assert_eq!(
            orders(&mut s),
            [Order::Api(ApiRequest::Resolve(vec!["newchan".into()]))]
        );
        s.handle_api(
            t,
            ApiAnswer::Resolved(Ok(vec![("newchan".into(), "777".into())])),
        );
        assert_eq!(
            orders(&mut s),
            [Order::Api(ApiRequest::Subscribe {
                broadcaster_id: "777".into(),
                user_id: ME.into(),
                session_id: "S2".into()
            })]
        );
    }

    #[test]
    fn a_failed_reconnect_ends_the_session_and_a_plain_text_one_is_refused() {
        let t = Instant::now();
        let mut s = subscribed(t, &["lumenwave"]);
        let reconnect = |url: &str| {
            control(
                "session_reconnect",
                &format!(
                    r#"{{"session":{{"id":"S1","status":"reconnecting","reconnect_url":"{url}"}}}}"#
                ),
            )
        };
        s.handle_input(t, 0, &reconnect("wss://eventsub.example/x"));
        orders(&mut s);
        s.handle_dialed(t, 1, Err("refused".into()));
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("reconnect URL"))
        );

        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &reconnect("ws://evil.example/x"));
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("without TLS"))
        );
    }

    #[test]
    fn close_codes_say_what_they_mean() {
        let t = Instant::now();
        for (code, words) in [
            (4000, "internal server error"),
            (4001, "inbound traffic"),
            (4002, "ping-pong"),
            (4003, "connection unused"),
            (4004, "grace time"),
            (4005, "network timeout"),
            (4006, "network error"),
            (4007, "invalid reconnect"),
        ] {
            let mut s = subscribed(t, &["lumenwave"]);
            let mut frame = vec![0x88, 2 + 3];
            frame.extend_from_slice(&u16::to_be_bytes(code));
            frame.extend_from_slice(b"bye");
            s.handle_input(t, 0, &frame);
            let evs = events(&mut s);
            let [Event::Closed(CloseReason::Lost(why))] = &evs[..] else {
                panic!("{code}: {evs:?}")
            };
            assert!(
                why.contains(&code.to_string()) && why.contains(words),
                "{why}"
            );
            // the close is answered, and the socket dropped
            let out = transmits(&mut s);
            assert!(out.len() == 1 && out[0].then_close && out[0].bytes[0] == 0x88);
        }
    }

    #[test]
    fn revocations_resubscribe_drop_the_channel_or_renew_the_token() {
        let t = Instant::now();
        let revoke = |status: &str| {
            control(
                "revocation",
                &format!(
                    r#"{{"subscription":{{"id":"sub0","status":"{status}","type":"channel.chat.message","version":"1","condition":{{"broadcaster_user_id":"550","user_id":"{ME}"}}}}}}"#
                ),
            )
        };
        let mut s = subscribed(t, &["lumenwave", "other"]);
        s.handle_input(t, 0, &revoke("user_removed"));
        let evs = events(&mut s);
        assert!(
            matches!(&evs[..], [Event::Notice { msg_id: Some(id), .. }, Event::Left(c)] if id == "user_removed" && c == "lumenwave")
        );
        assert!(orders(&mut s).is_empty());
        // the last readable channel gone: Twitch would close the idle socket (4003), so the
        // session ends itself, with a Close frame
        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &revoke("user_removed"));
        assert_eq!(
            events(&mut s)[2..],
            [Event::Closed(CloseReason::NothingToRead)]
        );
        assert!(s.poll_transmit().is_some_and(|t| t.then_close));

        // authorization_revoked: the session and the other channel stay; the token is to be
        // checked; the channel is subscribed again once after a delay, and dropped if Twitch
        // revokes it again
        let mut s = subscribed(t, &["lumenwave", "other"]);
        s.handle_input(t, 0, &revoke("authorization_revoked"));
        let evs = events(&mut s);
        assert!(
            matches!(&evs[..], [Event::Notice { .. }, Event::SubscriptionRevoked { channel, again_in }] if channel == "lumenwave" && *again_in == RESUBSCRIBE_AFTER),
            "{evs:?}"
        );
        assert!(orders(&mut s).is_empty() && transmits(&mut s).is_empty());
        assert_eq!(s.poll_timeout(), Some(t + RESUBSCRIBE_AFTER));
        s.handle_timeout(t + RESUBSCRIBE_AFTER);
        assert!(matches!(
            &orders(&mut s)[..],
            [Order::Api(ApiRequest::Subscribe { broadcaster_id, .. })] if broadcaster_id == "550"
        ));
        s.handle_api(t, ApiAnswer::Subscribed(Ok("sub9".into())));
        assert_eq!(events(&mut s), [Event::Joined("lumenwave".into())]);
        let later = t + RESUBSCRIBE_AFTER + Duration::from_secs(60);
        s.handle_input(later, 0, &revoke("authorization_revoked"));
        let evs = events(&mut s);
        assert!(
            matches!(&evs[..], [Event::Notice { .. }, Event::Unreadable { channel, why }] if channel == "lumenwave" && why.contains("twice")),
            "{evs:?}"
        );
        assert!(orders(&mut s).is_empty() && transmits(&mut s).is_empty());
        s.handle_timeout(later + RESUBSCRIBE_AFTER);
        assert!(orders(&mut s).is_empty(), "a dropped channel stays dropped");
        // a revocation long after the first one is a first one again
        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &revoke("authorization_revoked"));
        s.handle_timeout(t + RESUBSCRIBE_AFTER);
        s.handle_api(t, ApiAnswer::Subscribed(Ok("sub9".into())));
        events(&mut s);
        orders(&mut s);
        s.handle_input(
            t + REVOKED_AGAIN_WITHIN * 2,
            0,
            &revoke("authorization_revoked"),
        );
        assert!(matches!(
            &events(&mut s)[..],
            [Event::Notice { .. }, Event::SubscriptionRevoked { .. }]
        ));

        let mut s = subscribed(t, &["lumenwave"]);
        s.handle_input(t, 0, &revoke("moderator_removed"));
        events(&mut s);
        assert!(matches!(
            &orders(&mut s)[..],
            [Order::Api(ApiRequest::Subscribe { .. })]
        ));
    }

    #[test]
    fn subscription_answers_409_401_403_429() {
        let t = Instant::now();
        let start = || {
            let mut s = Session::new(t, &endpoint(), "/ws", ME, &["lumenwave".into()], 3);
            let out = transmits(&mut s);
            let mut bytes = accept(&out[0]);
            bytes.extend(welcome("S1", 10));
            s.handle_input(t, 0, &bytes);
            orders(&mut s);
            s.handle_api(
                t,
                ApiAnswer::Resolved(Ok(vec![("lumenwave".into(), "5".into())])),
            );
            orders(&mut s);
            events(&mut s);
            s
        };
        let mut s = start();
        s.handle_api(
            t,
            ApiAnswer::Subscribed(Err(failure(409, "subscription already exists"))),
        );
        assert_eq!(events(&mut s), [Event::Joined("lumenwave".into())]);
        // unsubscribing without the id asks for it to be looked up
        s.part("lumenwave");
        assert_eq!(events(&mut s), [Event::Left("lumenwave".into())]);
        assert_eq!(
            orders(&mut s),
            [Order::Api(ApiRequest::Unsubscribe {
                broadcaster_id: "5".into(),
                session_id: "S1".into(),
                id: None
            })]
        );

        let mut s = start();
        s.handle_api(
            t,
            ApiAnswer::Subscribed(Err(failure(401, "Invalid OAuth token"))),
        );
        assert_eq!(
            events(&mut s),
            [Event::Closed(CloseReason::AuthFailed(
                "Invalid OAuth token".into()
            ))]
        );

        let mut s = start();
        s.handle_api(
            t,
            ApiAnswer::Subscribed(Err(failure(
                403,
                "subscription missing proper authorization",
            ))),
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::AuthFailed(why))] if why.contains("user:read:chat"))
        );

        let mut s = start();
        s.handle_api(
            t,
            ApiAnswer::Subscribed(Err(failure(
                429,
                "number of websocket transports limit exceeded",
            ))),
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("3 EventSub WebSocket connections"))
        );
    }

    #[test]
    fn unknown_channels_and_more_than_300_are_refused_with_a_notice() {
        let t = Instant::now();
        let names: Vec<String> = (0..301).map(|i| format!("c{i:03}")).collect();
        let mut s = Session::new(t, &endpoint(), "/ws", ME, &names, 3);
        let evs = events(&mut s);
        assert!(
            matches!(&evs[..], [Event::Notice { channel: Some(c), msg_id: Some(id), .. }] if c == "c300" && id == "too_many_channels")
        );
        let out = transmits(&mut s);
        let mut bytes = accept(&out[0]);
        bytes.extend(welcome("S1", 10));
        s.handle_input(t, 0, &bytes);
        events(&mut s);
        let first = orders(&mut s);
        let [Order::Api(ApiRequest::Resolve(batch))] = &first[..] else {
            panic!()
        };
        assert_eq!(batch.len(), 100);
        // none of them exists: each gets a notice, and the next batch is asked for
        s.handle_api(t, ApiAnswer::Resolved(Ok(vec![])));
        let evs = events(&mut s);
        assert_eq!(evs.len(), 100);
        assert!(
            matches!(&evs[0], Event::Notice { msg_id: Some(id), .. } if id == "no_such_channel")
        );
        assert!(
            matches!(&orders(&mut s)[..], [Order::Api(ApiRequest::Resolve(b))] if b.len() == 100)
        );
    }

    #[test]
    fn a_wrong_accept_or_a_refused_upgrade_ends_the_session() {
        let t = Instant::now();
        let mut s = Session::new(t, &endpoint(), "/ws", ME, &[], 1);
        transmits(&mut s);
        s.handle_input(
            t,
            0,
            b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n",
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("Sec-WebSocket-Accept"))
        );

        let mut s = Session::new(t, &endpoint(), "/ws", ME, &[], 1);
        transmits(&mut s);
        s.handle_input(
            t,
            0,
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\nno",
        );
        assert!(
            matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("HTTP 429"))
        );
    }
}
