//! Keeping one user's tokens valid, as a sans-IO state machine in the shape of quinn-proto's
//! `Connection`: validate at start and hourly, refresh ahead of expiry and when something
//! refused the token (one renewal at a time), save every new pair before it is used and
//! retry a failed save, retry a token endpoint that is down, and fall back to the
//! device-code flow when nothing else works.
//!
//! Answers go in with `now` (`handle_*`); what to do comes out as [`TokenAction`]s, what
//! happened as [`TokenEvent`]s, and one deadline from [`TokenCore::poll_timeout`]. The
//! user's driver performs the actions (OAuth calls, the config write, the device flow) and
//! arms its one timer with that deadline, so a new deadline set on any path is seen at once.

use std::collections::VecDeque;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::answer::{DeviceCode, OAuthError, TokenSet, Validation};
use crate::backoff::Backoff;
use crate::config::user::{ConfigError, UserConfig};
use crate::log;
use crate::secret::Secret;
use crate::timer::Timers;

mod authorise;
mod renew;
mod saving;
mod schedule;

pub use self::schedule::{Due, Schedule};

/// Validate this often (Twitch requires hourly validation of chat clients).
pub const VALIDATE_EVERY: Duration = Duration::from_secs(3600);
/// Refresh this long before the access token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(600);
/// Never refresh on schedule more often than this, whatever `expires_in` says.
pub(crate) const MIN_REFRESH_GAP: Duration = Duration::from_secs(30);
/// First retry of a failed save after this long, doubling up to [`SAVE_RETRY_MAX`].
pub(crate) const SAVE_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest pause between retries of a failed save.
pub(crate) const SAVE_RETRY_MAX: Duration = Duration::from_secs(300);
/// The first retry after the token endpoint failed (network, 5xx), doubling from there.
pub(crate) const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest pause between retries of a token endpoint that keeps failing.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(180);
/// The pause between refreshes while the token endpoint refuses the app itself (a wrong
/// client id or secret): only a config edit mends that, and the edit restarts the user.
pub(crate) const APP_REFUSED_RETRY: Duration = Duration::from_secs(3600);
/// Unattended, the first pause before a new device code (doubling up to 30 minutes).
pub(crate) const NEXT_CODE_FIRST: Duration = Duration::from_secs(60);

/// Who asked for a renewal with [`TokenCore::handle_refused`], so that the answer finds
/// its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The user lookup got 401.
    Lookup,
    /// Chat refused the login.
    Chat,
    /// The color change got 401.
    Color,
    /// Twitch revoked the authorization of one EventSub subscription.
    Subscription,
}

/// Why a token could not be renewed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RenewError {
    /// Twitch refused the refresh token (or the token lacks what the bot needs): the person
    /// must authorise again, and the device-code flow has started.
    Refused(String),
    /// Twitch could not be asked (network, 5xx); the renewal is retried with backoff.
    Unavailable(String),
    /// Twitch says the token is valid: whatever refused it had another reason.
    StillValid(String),
}

impl fmt::Display for RenewError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenewError::Refused(why) => write!(f, "it could not be renewed ({why})"),
            RenewError::Unavailable(why) => write!(f, "it cannot be renewed right now ({why})"),
            RenewError::StillValid(why) => f.write_str(why),
        }
    }
}

/// A token pair and its expiry, as written to the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The access token.
    pub access: Secret,
    /// The refresh token.
    pub refresh: Secret,
    /// When the access token expires, if known.
    pub expires_at: Option<SystemTime>,
}

/// What the driver should do for the tokens; each is answered with one `handle_*` call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenAction {
    /// `GET /oauth2/validate` with this access token; answer with
    /// [`TokenCore::handle_validated`].
    Validate(Secret),
    /// `POST /oauth2/token` with this refresh token; answer with
    /// [`TokenCore::handle_refreshed`].
    Refresh(Secret),
    /// Write this pair to the user's entry in the config file; answer with
    /// [`TokenCore::handle_saved`].
    Save(Pair),
    /// `POST /oauth2/device`: ask for a device code; answer with [`TokenAnswer::Code`].
    /// The core then shows it ([`TokenEvent::Prompt`]) and polls for its outcome.
    Authorize,
    /// `POST /oauth2/token` with this device code: has the person approved it yet? Answer
    /// with [`TokenAnswer::Polled`].
    PollCode(Secret),
}

/// How a [`TokenAction`] ended, for [`TokenCore::handle_answer`].
#[derive(Debug)]
pub enum TokenAnswer {
    /// The answer to [`TokenAction::Validate`].
    Validated(Result<Validation, OAuthError>),
    /// The answer to [`TokenAction::Refresh`].
    Refreshed(Result<TokenSet, OAuthError>),
    /// How [`TokenAction::Save`] ended.
    Saved(Result<(), ConfigError>),
    /// The answer to [`TokenAction::Authorize`].
    Code(Result<DeviceCode, OAuthError>),
    /// The answer to [`TokenAction::PollCode`].
    Polled(Result<TokenSet, OAuthError>),
}

/// What happened to the tokens, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenEvent {
    /// The first valid token is in place: the user can start.
    Ready,
    /// A new access token is in use (a refresh, or the device flow someone completed).
    Renewed,
    /// The renewal asked for with [`TokenCore::handle_refused`] for this purpose ended.
    Answer(Purpose, Result<(), RenewError>),
    /// No token could be had within the allowed device codes: the user stops.
    GaveUp(String),
    /// Show the person this device code (again, as a reminder, when `reminder`).
    Prompt(Prompt),
}

/// A device code to show the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    /// The code.
    pub code: DeviceCode,
    /// How long it stays valid.
    pub left: Duration,
    /// The code was shown already: this is a reminder.
    pub reminder: bool,
}

/// The tokens as the rest of the process may see them (the status, the supervisor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// The pair in use.
    pub access: Secret,
    /// The refresh token in use.
    pub refresh: Secret,
    /// When the access token expires, as far as known.
    pub expires_at: Option<SystemTime>,
    /// The device-code flow waits for the person.
    pub(crate) authorising: bool,
    /// Why the pair in use is not in the config file, if it is not.
    pub(crate) unsaved: Option<String>,
}

/// Where the tokens stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not known to be valid yet (start-up).
    Starting,
    /// A valid token is in use.
    Ready,
    /// The device-code flow runs; codes issued so far.
    Authorising(u32),
    /// No token could be had; nothing more happens.
    GaveUp,
}

/// Why a validation was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// The start-up or hourly check of the token in use.
    Routine,
    /// The token just refreshed by a routine check whose token Twitch refused.
    AfterRefresh,
    /// A service refused the token without saying why (chat): is it still valid, and
    /// does it have this scope?
    Refused(&'static str),
}

/// What follows a refresh once its pair is saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nothing (a refresh on schedule).
    Done,
    /// Validate the new token (a routine check found the old one invalid).
    Validate,
    /// The device flow's pair: authorised.
    Authorised,
}

/// The one operation in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Busy {
    Validate(Check),
    /// Validating the pair the device flow just obtained.
    ValidateNew(TokenSet),
    Refresh {
        spare: bool,
        then: Then,
    },
    /// Saving a new pair; it is adopted when the save ends, whatever the outcome.
    Save {
        pair: Pair,
        expires_in: Option<Duration>,
        then: Then,
    },
    /// Saving the pair in use again, after a failed save.
    Resave(Pair),
    /// Asking for a device code.
    Device,
    /// Asking whether the person approved the device code.
    Poll,
}

/// A renewal someone asked for that has not started yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Refresh,
    Check(&'static str),
}

/// The operation a [`Timer::Retry`] repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    Validate(Check),
    Refresh(Then),
}

crate::timer::timers! {
    enum Timer {
        /// Repeat the operation the token endpoint failed (see [`Retry`]).
        Retry,
        /// Save the pair in use again.
        Save,
        /// Issue the next device code.
        NextCode,
        /// Ask whether the device code was approved.
        Poll,
        /// Remind the person of the device code.
        Remind,
    }
    table TimerTable
}

#[derive(Debug)]
struct Unsaved {
    error: String,
    backoff: Backoff,
    failures: u32,
}

/// One user's tokens and every rule that keeps them valid. No I/O, no clock of its own.
#[derive(Debug)]
pub struct TokenCore {
    username: String,
    /// Where the tokens are saved (the config file), for messages.
    saved_to: String,
    client_id: String,
    access: Secret,
    refresh: Secret,
    expires_at: Option<SystemTime>,
    stage: Stage,
    /// A valid token was in use once (the first one is announced as [`TokenEvent::Ready`]).
    ready_once: bool,
    schedule: Schedule,
    busy: Option<Busy>,
    /// A renewal asked for while something else was in flight, and the stale token.
    want: Option<(Want, Secret)>,
    /// Who waits for the answer of the renewal asked for or running.
    waiters: Vec<Purpose>,
    retry: Option<Retry>,
    retry_backoff: Backoff,
    /// The token endpoint refused the app itself once already (said at ERROR only once).
    app_refused: bool,
    unsaved: Option<Unsaved>,
    /// Refresh tokens an interrupted save left behind, tried once each when Twitch refuses ours.
    spares: Vec<Secret>,
    /// Device codes before giving up; `None`: forever, pausing between codes (unattended).
    attempts: Option<u32>,
    code_pause: Backoff,
    /// The device code shown to the person, while it is polled.
    code: Option<authorise::Code>,
    timers: TimerTable,
    actions: VecDeque<TokenAction>,
    events: VecDeque<TokenEvent>,
}

/// `token`, or an empty one if it holds bytes no token has (a line break would even let it
/// inject into the IRC PASS line or an HTTP header): then the bot refreshes, or runs the
/// device flow, and says why.
fn usable(username: &str, field: &str, token: &Secret) -> Secret {
    if token.expose().bytes().all(|b| b.is_ascii_graphic()) {
        return token.clone();
    }
    log!(Warn, Some(username), None, "field {field:?} in the config holds characters no token has (a space or a line break?); not using it");
    Secret::default()
}

impl TokenCore {
    /// The tokens of `user` as the config file `saved_to` holds them; the first action
    /// checks them.
    /// `spares` are refresh tokens found in leftover temp files of the config (newest first).
    /// `attempts` bounds the device codes issued in a row (`None`: unattended, forever).
    pub fn new(
        user: &UserConfig,
        saved_to: &Path,
        spares: Vec<Secret>,
        attempts: Option<u32>,
    ) -> TokenCore {
        let mut core = TokenCore {
            username: user.username.clone(),
            saved_to: saved_to.display().to_string(),
            client_id: user.client_id.clone(),
            access: usable(&user.username, "access_token", &user.access_token),
            refresh: usable(&user.username, "refresh_token", &user.refresh_token),
            expires_at: user.token_expiry,
            stage: Stage::Starting,
            ready_once: false,
            schedule: Schedule::default(),
            busy: None,
            want: None,
            waiters: Vec::new(),
            retry: None,
            retry_backoff: Backoff::new(RETRY_FIRST, RETRY_MAX),
            app_refused: false,
            unsaved: None,
            spares,
            attempts,
            code_pause: Backoff::new(NEXT_CODE_FIRST, Duration::from_secs(30 * 60)),
            code: None,
            timers: Timers::default(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        core.begin();
        core
    }

    fn who(&self) -> Option<&str> {
        Some(&self.username)
    }

    fn start(&mut self, busy: Busy, action: TokenAction) {
        self.busy = Some(busy);
        self.actions.push_back(action);
    }

    /// The start-up check: validate the token, refresh it, or authorise.
    fn begin(&mut self) {
        if !self.access.is_empty() {
            let access = self.access.clone();
            self.start(
                Busy::Validate(Check::Routine),
                TokenAction::Validate(access),
            );
        } else if !self.refresh.is_empty() {
            log!(Info, self.who(), None, "no usable access token: refreshing");
            self.start_refresh(Then::Validate);
        } else {
            self.authorize_first();
        }
    }

    fn start_refresh(&mut self, then: Then) {
        if self.refresh.is_empty() {
            return self.authorize("no refresh token".into());
        }
        let refresh = self.refresh.clone();
        self.start(
            Busy::Refresh { spare: false, then },
            TokenAction::Refresh(refresh),
        );
    }

    fn answer(&mut self, result: Result<(), RenewError>) {
        for purpose in self.waiters.drain(..) {
            self.events
                .push_back(TokenEvent::Answer(purpose, result.clone()));
        }
    }

    /// Starts what is wanted or due, when nothing is in flight.
    fn next(&mut self, now: Instant) {
        if self.busy.is_some() || self.stage != Stage::Ready {
            return;
        }
        if let Some((want, stale)) = self.want.take() {
            if stale != self.access && !self.access.is_empty() {
                return self.answer(Ok(()));
            }
            // a renewal now supersedes a pending retry of the same
            self.timers.set(Timer::Retry, None);
            self.retry = None;
            return match want {
                Want::Refresh => self.start_refresh(Then::Done),
                Want::Check(scope) => {
                    let access = self.access.clone();
                    self.start(
                        Busy::Validate(Check::Refused(scope)),
                        TokenAction::Validate(access),
                    );
                }
            };
        }
        self.handle_timeout(now);
    }

    /// Handles every timer due at `now` (one operation at a time: the rest when it ends).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.busy.is_some() || self.stage == Stage::GaveUp {
            return;
        }
        if self.code.is_some() {
            return self.code_timeout(now);
        }
        let mut due = |t: Timer| {
            let due = self.timers.is_due(t, now);
            if due {
                self.timers.set(t, None);
            }
            due
        };
        if due(Timer::NextCode) {
            if matches!(self.stage, Stage::Authorising(_)) {
                self.start(Busy::Device, TokenAction::Authorize);
            }
            return;
        }
        if due(Timer::Save) {
            if self.stage == Stage::Ready && self.unsaved.is_some() {
                let pair = self.pair();
                self.start(Busy::Resave(pair.clone()), TokenAction::Save(pair));
            }
            return;
        }
        if due(Timer::Retry) {
            match self.retry.take() {
                Some(Retry::Refresh(then)) => self.start_refresh(then),
                Some(Retry::Validate(check)) => {
                    let access = self.access.clone();
                    self.start(Busy::Validate(check), TokenAction::Validate(access));
                }
                None => {}
            }
            return;
        }
        if self.stage != Stage::Ready {
            return;
        }
        match self.schedule.take_due(now) {
            Some(Due::Refresh) => self.start_refresh(Then::Done),
            Some(Due::Validate) => {
                let access = self.access.clone();
                self.start(
                    Busy::Validate(Check::Routine),
                    TokenAction::Validate(access),
                );
            }
            None => {}
        }
    }

    fn pair(&self) -> Pair {
        Pair {
            access: self.access.clone(),
            refresh: self.refresh.clone(),
            expires_at: self.expires_at,
        }
    }

    /// Hands over how the last [`TokenAction`] ended.
    pub fn handle_answer(&mut self, now: Instant, wall: SystemTime, answer: TokenAnswer) {
        match answer {
            TokenAnswer::Validated(r) => self.handle_validated(now, wall, r),
            TokenAnswer::Refreshed(r) => self.handle_refreshed(now, wall, r),
            TokenAnswer::Saved(r) => self.handle_saved(now, r),
            TokenAnswer::Code(r) => self.handle_code(now, r),
            TokenAnswer::Polled(r) => self.handle_polled(now, r),
        }
    }

    /// Where the tokens are saved (the config file), for messages.
    pub(crate) fn saved_to(&self) -> &str {
        &self.saved_to
    }

    /// The next operation for the driver.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<TokenAction> {
        crate::queue::pop(&mut self.actions)
    }

    /// The next thing that happened.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TokenEvent> {
        crate::queue::pop(&mut self.events)
    }

    /// When [`TokenCore::handle_timeout`] should next be called: nothing while an operation
    /// is in flight (what came due meanwhile runs when it ends).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.busy.is_some() || self.stage == Stage::GaveUp {
            return None;
        }
        let schedule = match self.stage {
            Stage::Ready => self.schedule.poll_timeout(),
            _ => None,
        };
        [schedule, self.timers.next()].into_iter().flatten().min()
    }

    /// The access token to use now.
    pub fn access(&self) -> &Secret {
        &self.access
    }

    /// True while a pair Twitch may already have rotated is between its request and its
    /// save: a stop now could lose it.
    pub(crate) fn renewal_in_flight(&self) -> bool {
        matches!(
            self.busy,
            Some(Busy::Refresh { .. } | Busy::Save { .. } | Busy::ValidateNew(_))
        )
    }

    /// The tokens as the status and the supervisor see them.
    pub fn status(&self) -> TokenStatus {
        TokenStatus {
            access: self.access.clone(),
            refresh: self.refresh.clone(),
            expires_at: self.expires_at,
            authorising: matches!(self.stage, Stage::Authorising(_)),
            unsaved: self.unsaved.as_ref().map(|u| u.error.clone()),
        }
    }
}

#[cfg(test)]
mod tests;
