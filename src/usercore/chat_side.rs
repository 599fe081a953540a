//! The chat side of the user core: looking the user up, connecting, chat events, losing
//! the connection and the reconnect backoff, and what a new token changes for chat.

use std::time::{Duration, Instant};

use super::{Action, Chat, Fault, Identity, Timer, UserCore, HEALTHY};
use crate::answer::{ApiError, ErrorKind};
use crate::bot::ColorBot;
use crate::chat::CloseReason;
use crate::tokens::Purpose;
use crate::{chat, log};

impl UserCore {
    /// The user lookup ended.
    pub fn handle_lookup(&mut self, now: Instant, result: Result<Identity, ApiError>) {
        match result {
            Ok(identity) => {
                if !identity.login.eq_ignore_ascii_case(&self.name) {
                    log!(Warn, self.who(), None, "the access token belongs to {}, not to this user; its colors are the ones that will change", log::quoted(&identity.login));
                }
                let color = match &identity.color {
                    Ok(color) => {
                        log!(
                            Debug,
                            self.who(),
                            None,
                            "user id {}, current color {}",
                            identity.id,
                            color.as_deref().unwrap_or("(never set)")
                        );
                        color.clone()
                    }
                    Err(why) => {
                        log!(
                            Warn,
                            self.who(),
                            None,
                            "cannot read the current color ({why}); the first change may repeat it"
                        );
                        None
                    }
                };
                let colors = self.bot.colors().clone();
                self.bot = ColorBot::new(self.bot.prime_or_turbo(), self.bot.enabled(), color);
                self.bot.set_colors(colors);
                self.identity = Some(identity);
                self.backoff.reset();
                self.connect();
            }
            Err(e) if e.kind() == ErrorKind::Unauthorized && !self.lookup_refreshed => {
                self.lookup_refreshed = true;
                self.actions
                    .push_back(Action::RefreshToken(Purpose::Lookup));
            }
            Err(e) => {
                let why = if e.kind() == ErrorKind::Unauthorized {
                    self.backoff.saturate();
                    format!("{e} (the access token or client id was refused)")
                } else {
                    e.to_string()
                };
                self.retry_lookup(now, why);
            }
        }
    }

    pub(super) fn retry_lookup(&mut self, now: Instant, why: String) {
        let jitter = self.jitter();
        let wait = self.backoff.next_delay(jitter);
        log!(
            Error,
            self.who(),
            None,
            "cannot look up the user id: {why}; retrying in {:.1}s",
            wait.as_secs_f64()
        );
        self.error(Fault::Lookup, format!("cannot look up the user id: {why}"));
        self.timers.set(Timer::Retry, Some(now + wait));
    }

    pub(super) fn connect(&mut self) {
        self.chat = Chat::Connecting;
        self.actions.push_back(Action::Connect);
    }

    /// An event from the chat session.
    pub fn handle_chat(&mut self, now: Instant, event: chat::Event) {
        match event {
            chat::Event::Ready => {
                self.chat = Chat::Ready(now);
                self.chat_down_since = None;
                log!(
                    Info,
                    self.who(),
                    None,
                    "connected to chat ({})",
                    self.transport.display_name()
                );
            }
            chat::Event::Joined(chan) => {
                log!(Info, self.who(), Some(&chan), "joined");
                self.joined.insert(chan);
            }
            chat::Event::Left(chan) => {
                if self.channels.contains(&chan) {
                    log!(
                        Warn,
                        self.who(),
                        Some(&chan),
                        "left the channel (parted or banned)"
                    );
                } else {
                    log!(Info, self.who(), Some(&chan), "left");
                }
                self.joined.remove(&chan);
            }
            chat::Event::OwnMessage {
                channel,
                text,
                id,
                copy,
            } => {
                if id.is_none_or(|id| self.seen.first_sighting(&id)) {
                    self.own_message(now, channel, &text);
                } else if copy {
                    log!(Debug, self.who(), Some(&channel), "own message shown again here by shared chat: acted on once already, skipped");
                } else {
                    log!(Debug, self.who(), Some(&channel), "own message seen again (shared chat's original after a copy, or delivered twice): acted on once already, skipped");
                }
            }
            chat::Event::Notice {
                channel,
                msg_id,
                text,
            } => log!(
                Warn,
                self.who(),
                channel.as_deref(),
                "notice from Twitch: {} ({})",
                log::quoted(&text),
                log::quoted(msg_id.as_deref().unwrap_or("no msg-id"))
            ),
            chat::Event::SubscriptionRevoked { channel, again_in } => {
                log!(
                    Warn,
                    self.who(),
                    Some(&channel),
                    "Twitch revoked the authorization of this channel's chat subscription; checking the token, and subscribing again in {}s (the other channels go on)",
                    again_in.as_secs()
                );
                self.joined.remove(&channel);
                self.actions
                    .push_back(Action::RefreshToken(Purpose::Subscription));
            }
            chat::Event::Unreadable { channel, why } => {
                log!(Warn, self.who(), Some(&channel), "{why}");
                self.joined.remove(&channel);
                self.error(Fault::Chat, format!("#{channel}: {why}"));
            }
            chat::Event::Dropped(why) => {
                log!(Debug, self.who(), None, "ignored chat input: {why}")
            }
            chat::Event::Closed(CloseReason::AuthFailed(text)) => {
                self.chat_lost(now);
                log!(
                    Warn,
                    self.who(),
                    None,
                    "chat login refused ({}); refreshing the token",
                    log::quoted(&text)
                );
                self.chat = Chat::Refreshing;
                self.actions.push_back(Action::RefreshToken(Purpose::Chat));
            }
            chat::Event::Closed(CloseReason::NothingToRead) => {
                self.chat_lost(now);
                self.chat_down_since = None;
                self.chat = Chat::Parked;
                let why = "none of the channels can be read over EventSub (Twitch has no such channel, or it was removed); not connecting again until the config names another channel or chat transport";
                log!(Warn, self.who(), None, "{why}");
                self.error(Fault::Chat, why.to_owned());
            }
            chat::Event::Closed(reason) => {
                let routine = reason == CloseReason::Reconnect;
                self.handle_disconnected(now, &reason.to_string(), routine)
            }
        }
    }

    pub(super) fn chat_lost(&mut self, now: Instant) {
        if let Chat::Ready(since) = self.chat {
            self.counters.reconnects += 1;
            if now.duration_since(since) >= HEALTHY {
                self.backoff.reset();
            }
        }
        self.joined.clear();
        self.chat_down_since.get_or_insert(now);
    }

    /// The chat connection failed or ended (`routine`: the server asked for it).
    pub fn handle_disconnected(&mut self, now: Instant, why: &str, routine: bool) {
        self.disconnected(now, why, routine, false);
    }

    /// The chat connection could not be opened for want of file descriptors: the others'
    /// connections keep working and this one waits its turn with the usual backoff, said at
    /// most once a minute.
    pub fn handle_no_descriptors(&mut self, now: Instant, why: &str) {
        let quiet = !crate::log::seldom(self.who().unwrap_or_default(), now);
        self.disconnected(now, why, false, quiet);
    }

    fn disconnected(&mut self, now: Instant, why: &str, routine: bool, quiet: bool) {
        if matches!(
            self.chat,
            Chat::Idle | Chat::Waiting | Chat::Refreshing | Chat::Parked
        ) {
            return;
        }
        let lived = match self.chat {
            Chat::Ready(since) => format!(" after {}s", now.duration_since(since).as_secs()),
            _ => String::new(),
        };
        self.chat_lost(now);
        if !routine {
            self.error(Fault::Chat, format!("chat: {why}"));
        }
        let wait = self.wait_to_reconnect(now);
        let line = format!(
            "chat connection ended{lived}: {why}; reconnecting in {:.1}s",
            wait.as_secs_f64()
        );
        if quiet {
            log!(Debug, self.who(), None, "{line}");
        } else {
            log!(Warn, self.who(), None, "{line}");
        }
    }

    pub(super) fn reconnect_later(&mut self, now: Instant) {
        let wait = self.wait_to_reconnect(now);
        log!(
            Info,
            self.who(),
            None,
            "reconnecting to chat in {:.1}s",
            wait.as_secs_f64()
        );
    }

    /// Arms the reconnect timer at the next backoff step; returns the wait.
    pub(super) fn wait_to_reconnect(&mut self, now: Instant) -> Duration {
        let jitter = self.jitter();
        let wait = self.backoff.next_delay(jitter);
        self.chat = Chat::Waiting;
        self.timers.set(Timer::Retry, Some(now + wait));
        wait
    }

    /// The token keeper has a new token (a refresh, or the device flow someone just
    /// completed): a reconnect or lookup waiting out the backoff that refused tokens built
    /// up is tried now.
    pub(crate) fn handle_token_renewed(&mut self, now: Instant) {
        let waiting = self.chat == Chat::Waiting || self.identity.is_none();
        if waiting && self.timers.get(Timer::Retry).is_some() {
            log!(Info, self.who(), None, "new token: trying again now");
            self.backoff.reset();
            self.timers.set(Timer::Retry, Some(now));
        }
    }
}
