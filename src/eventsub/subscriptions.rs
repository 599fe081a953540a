//! A session's subscriptions as Helix calls, one at a time: resolving channel logins to
//! ids, subscribing, deleting, and what each answer means (409, 400, 401/403, 429); and the
//! channels held after a revocation until they are subscribed again.

use std::time::Instant;

use super::{
    Channel, InFlight, Leaving, Session, Sub, Timer, BUCKET_WAIT, LOGINS_PER_LOOKUP,
    MAX_SUBSCRIPTIONS,
};
use crate::answer::ErrorKind;
use crate::chat::{ApiAnswer, ApiFailure, ApiRequest, CloseReason, Event, Order};

impl Session {
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
    pub(super) fn pump(&mut self) {
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
    pub fn handle_api(&mut self, now: Instant, answer: ApiAnswer) {
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
            (Some(InFlight::Resolve(asked)), ApiAnswer::Resolved(Err(f)))
                if f.kind() == ErrorKind::RateLimited =>
            {
                self.wait_for_bucket(now, &asked, &f);
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
                    Err(f) if f.kind() == ErrorKind::Conflict => self.subscribed(&login, None),
                    Err(f) if f.kind() == ErrorKind::RateLimited => {
                        self.wait_for_bucket(now, std::slice::from_ref(&login), &f);
                    }
                    Err(f) if f.kind() == ErrorKind::Invalid => {
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

    pub(super) fn subscribed(&mut self, login: &str, id: Option<String>) {
        if let Some(c) = self.channels.get_mut(login) {
            c.sub = Sub::Active(id);
            self.events.push_back(Event::Joined(login.to_owned()));
        }
    }

    pub(super) fn api_failed(&mut self, what: &str, channel: Option<&str>, f: ApiFailure) {
        let at = channel.map(|c| format!(" #{c}")).unwrap_or_default();
        let reason = match (f.kind(), f.status) {
            (ErrorKind::Unauthorized, _) => CloseReason::AuthFailed(f.message),
            (ErrorKind::Forbidden, _) => CloseReason::AuthFailed(format!(
                "{} (reading chat over EventSub needs a token with the user:read:chat scope)",
                f.message
            )),
            (ErrorKind::TransportLimit, _) => CloseReason::Lost(format!(
                "{what}{at}: HTTP 429: {}: Twitch allows 3 EventSub WebSocket connections per client id and user; another program or another copy of this bot is using them",
                f.message
            )),
            (_, Some(status)) => {
                CloseReason::Lost(format!("{what}{at}: HTTP {status}: {}", f.message))
            }
            (_, None) => CloseReason::Lost(format!("{what}{at}: {}", f.message)),
        };
        self.close(reason);
    }

    /// Helix's rate-limit bucket is empty (a 429 that is not the transport limit): `channels`
    /// wait until it refills (`Ratelimit-Reset`, within [`BUCKET_WAIT`]), then are looked up
    /// or subscribed again on this same session; the session and the other channels are
    /// left alone.
    fn wait_for_bucket(&mut self, now: Instant, channels: &[String], f: &ApiFailure) {
        let wait = f
            .refill_in
            .unwrap_or(BUCKET_WAIT.start)
            .clamp(BUCKET_WAIT.start, BUCKET_WAIT.end);
        for login in channels {
            if let Some(c) = self.channels.get_mut(login) {
                if matches!(c.sub, Sub::Wanted | Sub::Requested) {
                    c.sub = Sub::Held(now + wait);
                    self.events.push_back(Event::Notice {
                        channel: Some(login.clone()),
                        msg_id: Some("rate_limited".into()),
                        text: format!(
                            "Twitch's rate limit (HTTP 429: {}): subscribing again in {}s",
                            f.message,
                            wait.as_secs_f64().ceil()
                        ),
                    });
                }
            }
        }
        self.arm_resubscribe();
    }

    /// Arms the resubscribe timer for the earliest held channel.
    pub(super) fn arm_resubscribe(&mut self) {
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
}
