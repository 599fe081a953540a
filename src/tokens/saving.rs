//! Saving a new pair before it is used, and retrying a save that failed.

use std::time::{Duration, Instant};

use super::{
    Busy, Check, Pair, Stage, Then, Timer, TokenAction, TokenCore, TokenEvent, Unsaved,
    SAVE_RETRY_FIRST, SAVE_RETRY_MAX,
};
use crate::backoff::Backoff;
use crate::config::user::ConfigError;
use crate::log;

impl TokenCore {
    /// A config write asked for with [`TokenAction::Save`] ended (`Err`: why it failed).
    pub fn handle_saved(&mut self, now: Instant, result: Result<(), ConfigError>) {
        match self.busy.take() {
            Some(Busy::Save {
                pair,
                expires_in,
                then,
            }) => self.saved_new(now, pair, expires_in, then, result),
            Some(Busy::Resave(pair)) => self.resaved(now, pair, result),
            other => self.busy = other,
        }
        self.next(now);
    }

    pub(super) fn saved_new(
        &mut self,
        now: Instant,
        pair: Pair,
        expires_in: Option<Duration>,
        then: Then,
        result: Result<(), ConfigError>,
    ) {
        self.access = pair.access;
        self.refresh = pair.refresh;
        self.expires_at = pair.expires_at;
        self.schedule.renewed(now, expires_in);
        self.retry_backoff.reset();
        self.retry = None;
        self.timers.set(Timer::Retry, None);
        match result {
            Ok(()) => {
                self.unsaved = None;
                self.timers.set(Timer::Save, None);
                log!(
                    Debug,
                    self.who(),
                    None,
                    "new tokens saved to {}",
                    self.saved_to
                );
            }
            Err(error) => {
                let mut backoff = Backoff::new(SAVE_RETRY_FIRST, SAVE_RETRY_MAX);
                let wait = backoff.next_delay(1.0);
                log!(Error, self.who(), None, "could not save the new tokens ({error}); they are kept in memory and the save is retried in {}s, but if the bot stops before a save succeeds this user must authorise again", wait.as_secs());
                self.unsaved = Some(Unsaved {
                    error: error.to_string(),
                    backoff,
                    failures: 1,
                });
                self.timers.set(Timer::Save, Some(now + wait));
            }
        }
        match then {
            Then::Done => {
                self.events.push_back(TokenEvent::Renewed);
                self.answer(Ok(()));
            }
            Then::Validate => {
                let access = self.access.clone();
                self.start(
                    Busy::Validate(Check::AfterRefresh),
                    TokenAction::Validate(access),
                );
                if self.stage == Stage::Ready {
                    self.events.push_back(TokenEvent::Renewed);
                    self.answer(Ok(()));
                }
            }
            Then::Authorised => {
                match &self.unsaved {
                    None => log!(Info, self.who(), None, "authorised; tokens saved to {}", self.saved_to),
                    Some(u) => log!(Error, self.who(), None, "authorised, but the tokens could not be saved to {} ({}): keep the bot running until a save succeeds, or this user must authorise again", self.saved_to, u.error),
                }
                self.code_pause.reset();
                self.timers.set(Timer::NextCode, None);
                let first = !std::mem::replace(&mut self.ready_once, true);
                self.stage = Stage::Ready;
                self.events.push_back(if first {
                    TokenEvent::Ready
                } else {
                    TokenEvent::Renewed
                });
                self.answer(Ok(()));
            }
        }
    }

    pub(super) fn resaved(&mut self, now: Instant, pair: Pair, result: Result<(), ConfigError>) {
        let current = pair.access == self.access && pair.refresh == self.refresh;
        let Some(unsaved) = self.unsaved.as_mut() else {
            return;
        };
        match result {
            Ok(()) if current => {
                log!(
                    Info,
                    Some(self.username.as_str()),
                    None,
                    "the tokens are saved to {} now (after {} failed attempt(s))",
                    self.saved_to,
                    unsaved.failures
                );
                self.unsaved = None;
            }
            Ok(()) => {}
            Err(error) => {
                unsaved.failures += 1;
                let wait = unsaved.backoff.next_delay(1.0);
                log!(
                    Warn,
                    Some(self.username.as_str()),
                    None,
                    "still cannot save the tokens ({error}); trying again in {}s",
                    wait.as_secs()
                );
                unsaved.error = error.to_string();
                self.timers.set(Timer::Save, Some(now + wait));
            }
        }
    }
}
