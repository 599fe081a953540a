//! The EventSub messages a session acts on: welcome, keepalive, notification (the user's
//! own chat messages), session_reconnect and revocation.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{silence_limit, Session, Sub, Timer, RESUBSCRIBE_AFTER, REVOKED_AGAIN_WITHIN};
use crate::chat::{CloseReason, Event, Link, Order};
use crate::endpoint::Url;
use crate::{endpoint, log};

/// The envelope's `metadata`: what the payload is.
struct Metadata {
    message_type: String,
    /// Notifications and revocations only.
    subscription_type: Option<String>,
}

/// `session_welcome`'s session.
struct WelcomeSession {
    id: String,
    keepalive_timeout_seconds: Option<u64>,
}

/// A `channel.chat.message` notification's event.
struct ChatMessage {
    message_id: String,
    /// Shared chat: on a copy shown in another channel, the id of the message in the channel
    /// where it was sent; `null` there.
    source_message_id: Option<String>,
    broadcaster_user_login: String,
    chatter_user_id: String,
    text: String,
}

/// `revocation`'s subscription.
struct RevokedSubscription {
    status: String,
    broadcaster_user_id: String,
}

/// A field of an EventSub message that is not what the bot needs, named by its path
/// (`payload.event.chatter_user_id`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldError {
    /// The field, or an object on the way to it, is absent or `null`.
    Missing(String),
    /// The field is there but is not a string.
    NotText(String),
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldError::Missing(path) => write!(f, "missing field `{path}`"),
            FieldError::NotText(path) => write!(f, "field `{path}` is not a string"),
        }
    }
}

/// The string at `path` in `message`, or an error that names the field. (Typed by hand:
/// serde's derive for these few structs costs 26 KB of binary.)
fn field_text(message: &Value, path: &[&str]) -> Result<String, FieldError> {
    let mut at = message;
    for (depth, key) in path.iter().enumerate() {
        at = match at.get(key) {
            Some(v) if !v.is_null() => v,
            _ => return Err(FieldError::Missing(path[..=depth].join("."))),
        };
    }
    match at.as_str() {
        Some(s) => Ok(s.to_owned()),
        None => Err(FieldError::NotText(path.join("."))),
    }
}

impl Metadata {
    fn read(m: &Value) -> Result<Metadata, FieldError> {
        Ok(Metadata {
            message_type: field_text(m, &["metadata", "message_type"])?,
            subscription_type: field_text(m, &["metadata", "subscription_type"]).ok(),
        })
    }
}

impl WelcomeSession {
    fn read(m: &Value) -> Result<WelcomeSession, FieldError> {
        Ok(WelcomeSession {
            id: field_text(m, &["payload", "session", "id"])?,
            keepalive_timeout_seconds: m["payload"]["session"]["keepalive_timeout_seconds"]
                .as_u64(),
        })
    }
}

impl ChatMessage {
    fn read(m: &Value) -> Result<ChatMessage, FieldError> {
        let field = |name| field_text(m, &["payload", "event", name]);
        Ok(ChatMessage {
            message_id: field("message_id")?,
            source_message_id: field("source_message_id").ok(),
            broadcaster_user_login: field("broadcaster_user_login")?,
            chatter_user_id: field("chatter_user_id")?,
            text: field_text(m, &["payload", "event", "message", "text"])?,
        })
    }
}

impl RevokedSubscription {
    fn read(m: &Value) -> Result<RevokedSubscription, FieldError> {
        Ok(RevokedSubscription {
            status: field_text(m, &["payload", "subscription", "status"])?,
            broadcaster_user_id: field_text(
                m,
                &[
                    "payload",
                    "subscription",
                    "condition",
                    "broadcaster_user_id",
                ],
            )?,
        })
    }
}

impl Session {
    pub(super) fn handle_text(&mut self, now: Instant, link: Link, text: &str) {
        let Ok(message) = serde_json::from_str::<Value>(text) else {
            return self
                .events
                .push_back(Event::Dropped("EventSub message that is not JSON".into()));
        };
        let header = match Metadata::read(&message) {
            Ok(header) => header,
            Err(e) => {
                return self.events.push_back(Event::Dropped(format!(
                    "EventSub message not understood: {e}"
                )))
            }
        };
        let limit = silence_limit(self.keepalive);
        match header.message_type.as_str() {
            "session_welcome" => match WelcomeSession::read(&message) {
                Ok(session) => self.welcome(now, link, session),
                Err(e) => self.close(CloseReason::Lost(format!("EventSub welcome: {e}"))),
            },
            "session_keepalive" => {
                self.timers.set(Timer::Silence, Some(now + limit));
            }
            "notification" => {
                self.timers.set(Timer::Silence, Some(now + limit));
                if header.subscription_type.as_deref() != Some("channel.chat.message") {
                    return self.events.push_back(Event::Dropped(format!(
                        "EventSub notification of type {}",
                        log::quoted(header.subscription_type.as_deref().unwrap_or(""))
                    )));
                }
                match ChatMessage::read(&message) {
                    Ok(event) => self.notification(event),
                    Err(e) => self.events.push_back(Event::Dropped(format!(
                        "EventSub chat message not understood: {e}"
                    ))),
                }
            }
            "session_reconnect" => {
                match field_text(&message, &["payload", "session", "reconnect_url"]) {
                    Ok(url) => self.reconnect(&url),
                    Err(e) => self.close(CloseReason::Lost(format!(
                        "EventSub sent an unusable session_reconnect: {e}"
                    ))),
                }
            }
            "revocation" => match RevokedSubscription::read(&message) {
                Ok(subscription) => self.revocation(now, subscription),
                Err(e) => self.events.push_back(Event::Dropped(format!(
                    "EventSub revocation not understood: {e}"
                ))),
            },
            other => self.events.push_back(Event::Dropped(format!(
                "EventSub message of type {}",
                log::quoted(other)
            ))),
        }
    }

    fn welcome(&mut self, now: Instant, link: Link, session: WelcomeSession) {
        let Some(i) = self.socket(link) else { return };
        let id = session.id;
        if id.is_empty() {
            return self.close(CloseReason::Lost(
                "EventSub welcome without a session id".into(),
            ));
        }
        if self.sockets[i].welcomed {
            return self
                .events
                .push_back(Event::Dropped("a second EventSub welcome".into()));
        }
        self.sockets[i].welcomed = true;
        if let Some(secs) = session.keepalive_timeout_seconds {
            self.keepalive = Duration::from_secs(secs.clamp(1, 600));
        }
        // the first welcome of the session, not one after a session_reconnect
        let first = self.session_id.replace(id).is_none();
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

    fn notification(&mut self, event: ChatMessage) {
        let channel = event.broadcaster_user_login;
        let reading = self
            .channels
            .get(&channel)
            .is_some_and(|c| c.sub != Sub::Dead);
        if reading && event.chatter_user_id == self.user_id {
            // Redeliveries (EventSub delivers at least once) and shared chat's copies carry
            // the same id; the user core acts on it once.
            let copy = (event.source_message_id.as_ref()).is_some_and(|s| *s != event.message_id);
            self.events.push_back(Event::OwnMessage {
                channel,
                text: event.text,
                id: Some(event.source_message_id.unwrap_or(event.message_id)),
                copy,
            });
        }
    }

    fn reconnect(&mut self, url: &str) {
        if self.sockets.len() > 1 {
            return;
        }
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

    fn revocation(&mut self, now: Instant, subscription: RevokedSubscription) {
        let status = subscription.status.as_str();
        let broadcaster = subscription.broadcaster_user_id.as_str();
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
}
