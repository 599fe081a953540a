//! When to validate and when to refresh, as plain data.

use std::time::{Duration, Instant};

use super::{MIN_REFRESH_GAP, REFRESH_AHEAD, VALIDATE_EVERY};

/// What the schedule says is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Refresh the access token.
    Refresh,
    /// Validate the access token.
    Validate,
}

/// When to validate and when to refresh, as plain data.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    next_validate: Option<Instant>,
    refresh_at: Option<Instant>,
}

impl Schedule {
    /// A token was validated at `now` with `expires_in` left.
    pub fn validated(&mut self, now: Instant, expires_in: Duration) {
        self.next_validate = Some(now + VALIDATE_EVERY);
        self.refresh_at = Some(now + expires_in.saturating_sub(REFRESH_AHEAD));
    }

    /// A new token was obtained at `now`, living `expires_in` if known.
    pub fn renewed(&mut self, now: Instant, expires_in: Option<Duration>) {
        self.next_validate = Some(now + VALIDATE_EVERY);
        self.refresh_at =
            expires_in.map(|e| now + e.saturating_sub(REFRESH_AHEAD).max(MIN_REFRESH_GAP));
    }

    /// What is due at `now`, refresh first.
    pub fn due(&self, now: Instant) -> Option<Due> {
        if self.refresh_at.is_some_and(|t| t <= now) {
            Some(Due::Refresh)
        } else if self.next_validate.is_some_and(|t| t <= now) {
            Some(Due::Validate)
        } else {
            None
        }
    }

    /// What is due at `now`, taken off the schedule: it is not due again until the token is
    /// next validated or renewed (a failure retries on its own timer).
    pub(crate) fn take_due(&mut self, now: Instant) -> Option<Due> {
        let due = self.due(now);
        match due {
            Some(Due::Refresh) => self.refresh_at = None,
            Some(Due::Validate) => self.next_validate = None,
            None => {}
        }
        due
    }

    /// The next moment something is due.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_validate, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}
