//! The color side of the user core: own messages and chat commands, the color change and
//! its outcome (401 → renew → retry once, 429 wait, hex → named fallback), and the answers
//! to the token renewals it asked for.

use std::time::{Duration, Instant, SystemTime};

use super::{
    Action, Fault, Field, Putting, Timer, UserCore, MAX_RATE_WAIT, NO_RENEWAL_AFTER_USELESS,
    RECENT_COLORS,
};
use crate::answer::{ApiError, ErrorKind};
use crate::bot::{BotEvent, Change, Outcome};
use crate::color::Typed;
use crate::command::Command;
use crate::tokens::{Purpose, RenewError};
use crate::{command, log, mode};

impl UserCore {
    /// A token refresh asked for with [`Action::RefreshToken`] ended.
    pub fn handle_refreshed(
        &mut self,
        now: Instant,
        purpose: Purpose,
        result: Result<(), RenewError>,
    ) {
        match (purpose, result) {
            (Purpose::Lookup, Ok(())) => self.actions.push_back(Action::LookUpUser),
            (Purpose::Lookup, Err(e)) => {
                if !matches!(e, RenewError::Unavailable(_)) {
                    self.backoff.saturate();
                }
                self.retry_lookup(now, format!("the token was refused: {e}"));
            }
            (Purpose::Chat, Ok(())) => {
                // a new token is a new chance: not the wait that refused tokens piled up
                self.backoff.reset();
                self.reconnect_later(now)
            }
            (Purpose::Chat, Err(e)) => {
                let why = format!("chat login refused: {e}");
                log!(Error, self.who(), None, "{why}");
                self.error(Fault::Token, why);
                if !matches!(e, RenewError::Unavailable(_)) {
                    self.backoff.saturate();
                }
                self.reconnect_later(now);
            }
            (Purpose::Color, Ok(())) => {
                if let Some(putting) = &mut self.putting {
                    putting.retried = true;
                    let color = putting.color.clone();
                    self.actions.push_back(Action::SetColor(color));
                }
            }
            (Purpose::Color, Err(RenewError::Unavailable(why))) => {
                self.putting = None;
                self.finish(
                    now,
                    Outcome::Failed(format!(
                        "Twitch no longer takes the access token, and renewing it failed for now ({why})"
                    )),
                );
            }
            (Purpose::Color, Err(e)) => {
                self.putting = None;
                self.finish(now, Outcome::Unauthorized(e.to_string()));
            }
            // the chat session subscribes again on its own; this only says how the check went
            (Purpose::Subscription, Ok(())) => log!(
                Info,
                self.who(),
                None,
                "token renewed after Twitch revoked a chat subscription"
            ),
            (Purpose::Subscription, Err(RenewError::StillValid(_))) => log!(
                Info,
                self.who(),
                None,
                "Twitch says the token is valid: subscribing to the channel again once"
            ),
            (Purpose::Subscription, Err(e)) => {
                let why = format!("after a revoked chat subscription, the token check failed: {e}");
                log!(Warn, self.who(), None, "{why}");
                self.error(Fault::Token, why);
            }
        }
    }

    pub(super) fn own_message(&mut self, now: Instant, channel: String, text: &str) {
        self.counters.messages += 1;
        log!(Debug, self.who(), Some(&channel), "own message seen");
        self.last_channel = Some(channel);
        let chan = self.last_channel.clone();
        let chan = chan.as_deref();
        let change = match command::parse(text) {
            None => self.bot.on_own_message(&mut self.rng),
            Some(cmd @ (Command::Disable | Command::Enable)) => {
                let enabled = cmd == Command::Enable;
                let (word, what) = if enabled {
                    ("cce", "enabled")
                } else {
                    ("ccd", "disabled")
                };
                log!(
                    Info,
                    self.who(),
                    chan,
                    "{word}: automatic color changes {what}"
                );
                self.bot.set_enabled(enabled);
                self.actions
                    .push_back(Action::Persist(Field::Enabled(enabled)));
                None
            }
            Some(Command::SetColor(Typed::Hex(hex))) if !self.bot.prime_or_turbo() => {
                log!(Info, self.who(), chan, "ccc {hex}: hex colors need Turbo or Prime (\"is_prime_or_turbo\" is false); use a named color");
                None
            }
            Some(Command::SetColor(typed)) => {
                let color = match typed {
                    Typed::Named(name) => name.to_owned(),
                    Typed::Hex(hex) => hex,
                };
                log!(Info, self.who(), chan, "ccc: setting color {color}");
                self.bot.request(color)
            }
            Some(Command::SetMode(kind)) => {
                let mut colors = self.bot.colors().clone();
                colors.kind = kind;
                if kind == mode::Kind::Palette && !colors.has_palette() {
                    log!(Info, self.who(), chan, "ccm palette: this user has no \"palette\" of two or more colors in the config; ignored");
                } else {
                    let what = colors.describe(self.bot.prime_or_turbo());
                    log!(Info, self.who(), chan, "ccm {kind}: colors now {what}");
                    self.bot.set_colors(colors);
                    self.actions
                        .push_back(Action::Persist(Field::ColorMode(kind)));
                }
                None
            }
            Some(Command::Invalid(why)) => {
                log!(Info, self.who(), chan, "{why}; ignored");
                None
            }
        };
        if let Some(change) = change {
            self.start_change(now, change);
        }
    }

    pub(super) fn start_change(&mut self, now: Instant, change: Change) {
        match change.after {
            Some(wait) if !wait.is_zero() => {
                self.held = Some(change.color);
                self.timers
                    .set(Timer::Change, Some(now + wait.min(MAX_RATE_WAIT)));
            }
            _ => {
                log!(Debug, self.who(), None, "setting color {}", change.color);
                self.putting = Some(Putting {
                    color: change.color.clone(),
                    retried: false,
                });
                self.actions.push_back(Action::SetColor(change.color));
            }
        }
    }

    /// The color change asked for with [`Action::SetColor`] ended; `wall` reads the time
    /// Twitch gives for a rate-limit bucket's refill.
    pub fn handle_put(&mut self, now: Instant, wall: SystemTime, result: Result<(), ApiError>) {
        let retried = match &self.putting {
            Some(putting) => putting.retried,
            None => return,
        };
        // A token Twitch refused even just after a renewal is not renewed again for a while:
        // the cause is elsewhere (a scope, the client id), and each renewal rotates the pair.
        let renewal_helps = self
            .useless_renewal
            .is_none_or(|at| now.duration_since(at) >= NO_RENEWAL_AFTER_USELESS);
        let outcome = match result {
            Ok(()) => Outcome::Done,
            Err(ApiError::Status {
                status,
                message,
                rate,
            }) => match ErrorKind::of_status(status) {
                ErrorKind::Unauthorized if !retried && renewal_helps => {
                    self.actions.push_back(Action::RefreshToken(Purpose::Color));
                    return;
                }
                ErrorKind::Unauthorized => {
                    if retried {
                        self.useless_renewal = Some(now);
                    }
                    Outcome::Unauthorized(format!(
                        "{} even with a freshly renewed token: a missing scope, or a client id that does not match the token",
                        log::quoted(&message)
                    ))
                }
                ErrorKind::Invalid => Outcome::Rejected(message),
                ErrorKind::RateLimited => {
                    let refill = rate.reset_at().map(|at| at.duration_since(wall));
                    let refill = refill.map(Result::unwrap_or_default);
                    Outcome::RateLimited(Some(refill.unwrap_or(Duration::from_secs(1))))
                }
                _ => Outcome::Failed(format!("HTTP {status}: {message}")),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        };
        self.putting = None;
        self.finish(now, outcome);
    }

    pub(super) fn finish(&mut self, now: Instant, outcome: Outcome) {
        let next = self.bot.on_outcome(outcome, &mut self.rng);
        let chan = self.last_channel.clone();
        let chan = chan.as_deref();
        while let Some(event) = self.bot.poll_event() {
            match event {
                BotEvent::Changed { old, new } => {
                    self.counters.changes += 1;
                    self.counters.last_change_at = Some(now);
                    let recent = &mut self.counters.recent;
                    if recent.len() == RECENT_COLORS {
                        recent.pop_front();
                    }
                    recent.push_back((new.as_str().into(), now));
                    log!(
                        Info,
                        self.who(),
                        chan,
                        "color changed {} → {new}",
                        old.as_deref().unwrap_or("(unknown)")
                    );
                }
                BotEvent::PrimeLost => {
                    log!(Warn, self.who(), None, "Twitch refused a hex color but took a named one: this account has no Turbo/Prime; using named colors from now on");
                    self.actions
                        .push_back(Action::Persist(Field::PrimeOrTurbo(false)));
                }
                BotEvent::FallbackFailed {
                    hex_error,
                    named_error,
                } => {
                    let why = format!(
                        "hex color refused ({}) and named color refused too ({})",
                        log::quoted(&hex_error),
                        log::quoted(&named_error)
                    );
                    log!(Error, self.who(), chan, "color not changed: {why}");
                    self.error(Fault::Color, why);
                }
                BotEvent::RateLimited => log!(
                    Warn,
                    self.who(),
                    chan,
                    "rate limited by Twitch; retrying once the bucket refills"
                ),
                BotEvent::Failed(why) => {
                    let why = log::capped(&why);
                    log!(Error, self.who(), chan, "color not changed: {why}");
                    self.error(Fault::Color, why);
                }
                BotEvent::Unauthorized(why) => {
                    let why = format!("Twitch refused the access token: {why}");
                    log!(Error, self.who(), chan, "color not changed: {why}");
                    self.error(Fault::Token, why);
                }
            }
        }
        if let Some(change) = next {
            self.start_change(now, change);
        }
    }
}
