//! The EventSub messages a session acts on: welcome, keepalive, notification (the user's
//! own chat messages, de-duplicated), session_reconnect and revocation.

use super::*;

impl Session {
    pub(super) fn handle_text(&mut self, now: Instant, link: Link, text: &str) {
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

    pub(super) fn welcome(&mut self, now: Instant, link: Link, session: &Value) {
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

    pub(super) fn notification(&mut self, metadata: &Value, event: &Value) {
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

    pub(super) fn reconnect(&mut self, session: &Value) {
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

    pub(super) fn revocation(&mut self, now: Instant, subscription: &Value) {
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
}
