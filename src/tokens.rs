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

use crate::backoff::Backoff;
use crate::config::UserConfig;
use crate::device::DeviceError;
use crate::log;
use crate::oauth::{OAuthError, TokenSet, Validation, REQUIRED_SCOPE};
use crate::secret::Secret;
use crate::timer::Timers;

/// Validate this often (Twitch requires hourly validation of chat clients).
pub const VALIDATE_EVERY: Duration = Duration::from_secs(3600);
/// Refresh this long before the access token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(600);
/// Never refresh on schedule more often than this, whatever `expires_in` says.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(30);
/// First retry of a failed save after this long, doubling up to [`SAVE_RETRY_MAX`].
pub const SAVE_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest pause between retries of a failed save.
pub const SAVE_RETRY_MAX: Duration = Duration::from_secs(300);
/// The first retry after the token endpoint failed (network, 5xx), doubling from there.
pub const RETRY_FIRST: Duration = Duration::from_secs(2);
/// The longest pause between retries of a token endpoint that keeps failing.
pub const RETRY_MAX: Duration = Duration::from_secs(180);
/// Unattended, the first pause before a new device code (doubling up to 30 minutes).
pub const NEXT_CODE_FIRST: Duration = Duration::from_secs(60);

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
    pub fn take_due(&mut self, now: Instant) -> Option<Due> {
        let due = self.due(now);
        match due {
            Some(Due::Refresh) => self.refresh_at = None,
            Some(Due::Validate) => self.next_validate = None,
            None => {}
        }
        due
    }

    /// The next moment something is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_validate, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}

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
    /// Run one device-code authorisation (show a code, poll until it is approved, declined
    /// or expired); answer with [`TokenCore::handle_device`].
    Authorize,
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
    pub authorising: bool,
    /// Why the pair in use is not in the config file, if it is not.
    pub unsaved: Option<String>,
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
    Device,
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

#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Repeat the operation the token endpoint failed (see [`Retry`]).
    Retry = 0,
    /// Save the pair in use again.
    Save = 1,
    /// Issue the next device code.
    NextCode = 2,
}

impl crate::timer::Kind for Timer {
    fn index(self) -> usize {
        self as usize
    }
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
    unsaved: Option<Unsaved>,
    /// Refresh tokens an interrupted save left behind, tried once each when Twitch refuses ours.
    spares: Vec<Secret>,
    /// Device codes before giving up; `None`: forever, pausing between codes (unattended).
    attempts: Option<u32>,
    code_pause: Backoff,
    timers: Timers<Timer, 3>,
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
            unsaved: None,
            spares,
            attempts,
            code_pause: Backoff::new(NEXT_CODE_FIRST, Duration::from_secs(30 * 60)),
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
            self.authorize("no access token yet".into());
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

    /// `stale` was refused by a service for `purpose`: renew it. A Helix 401 refreshes; a
    /// refusal that gives no reason (`check`: the scope chat needs) asks Twitch first whether
    /// the token is valid, so that a refusal for another reason never rotates the pair. One
    /// renewal at a time: a request that comes while one runs waits for its outcome, and a
    /// token that was already replaced is not renewed again. Answered with
    /// [`TokenEvent::Answer`].
    pub fn handle_refused(
        &mut self,
        now: Instant,
        purpose: Purpose,
        stale: &Secret,
        check: Option<&'static str>,
    ) {
        match self.stage {
            Stage::Ready => {}
            // the device flow's outcome answers it (as a renewal, or as the end)
            Stage::Authorising(_) => return self.waiters.push(purpose),
            Stage::Starting | Stage::GaveUp => {
                let why = "no valid token yet".to_owned();
                let answer = TokenEvent::Answer(purpose, Err(RenewError::Unavailable(why)));
                return self.events.push_back(answer);
            }
        }
        if *stale != self.access && !self.access.is_empty() {
            // renewed meanwhile
            self.events.push_back(TokenEvent::Answer(purpose, Ok(())));
            return;
        }
        self.waiters.push(purpose);
        let want = match check {
            Some(scope) => Want::Check(scope),
            None => Want::Refresh,
        };
        match &self.busy {
            // a refresh of this very token is under way: its outcome answers this one too
            Some(Busy::Refresh { .. } | Busy::Save { .. }) => {}
            Some(_) => {
                // a refresh is the stronger request: it wins over a check
                if !matches!(self.want, Some((Want::Refresh, _))) {
                    self.want = Some((want, stale.clone()));
                }
            }
            None => {
                self.want = Some((want, stale.clone()));
                self.next(now);
            }
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

    /// A `GET /oauth2/validate` asked for with [`TokenAction::Validate`] ended; `wall` is
    /// the wall-clock now, for the expiry.
    pub fn handle_validated(
        &mut self,
        now: Instant,
        wall: SystemTime,
        result: Result<Validation, OAuthError>,
    ) {
        match self.busy.take() {
            Some(Busy::Validate(check)) => self.validated(now, wall, check, result),
            Some(Busy::ValidateNew(set)) => self.validated_new(now, wall, set, result),
            other => self.busy = other,
        }
        self.next(now);
    }

    fn validated(
        &mut self,
        now: Instant,
        wall: SystemTime,
        check: Check,
        result: Result<Validation, OAuthError>,
    ) {
        let v = match result {
            Ok(v) => v,
            Err(OAuthError::InvalidToken(why)) => {
                return match check {
                    Check::Routine => {
                        log!(
                            Info,
                            self.who(),
                            None,
                            "access token expired or revoked; refreshing"
                        );
                        self.start_refresh(Then::Validate)
                    }
                    Check::AfterRefresh => {
                        self.authorize(format!("Twitch refused a just-refreshed token ({why})"))
                    }
                    Check::Refused(_) => self.start_refresh(Then::Done),
                };
            }
            Err(e) => {
                let why = format!("cannot validate the access token: {e}");
                return match check {
                    // chat retries on its own (it reconnects with backoff)
                    Check::Refused(_) => self.answer(Err(RenewError::Unavailable(why))),
                    Check::Routine | Check::AfterRefresh => {
                        self.transient(now, why, Retry::Validate(Check::Routine))
                    }
                };
            }
        };
        let expires_in = Duration::from_secs(v.expires_in);
        if let Check::Refused(scope) = check {
            if !v.scopes.iter().any(|s| s == scope) {
                return self.authorize(format!(
                    "the access token is valid but lacks the {scope} scope that chat needs (it has: {}); the device flow asks for it (or run twitch-colorchanger setup after removing access_token)",
                    v.scopes.join(" ")
                ));
            }
            self.schedule.validated(now, expires_in);
            self.expires_at = Some(wall + expires_in);
            let why = format!(
                "Twitch says the access token is valid (account {}, {} more minutes), so it was refused for another reason (a suspended account, or Twitch trouble); not renewing it",
                log::quoted(&v.login),
                v.expires_in / 60
            );
            // a Helix 401 that came meanwhile still wants its refresh (see `want`)
            let (chat, helix) = std::mem::take(&mut self.waiters)
                .into_iter()
                .partition(|p| matches!(p, Purpose::Chat | Purpose::Subscription));
            self.waiters = chat;
            self.answer(Err(RenewError::StillValid(why)));
            self.waiters = helix;
            return;
        }
        if !v.login.eq_ignore_ascii_case(&self.username) {
            return self.authorize(format!(
                "the access token belongs to {}, not to {} (authorise with the right account, or fix \"username\")",
                log::quoted(&v.login),
                log::quoted(&self.username)
            ));
        }
        if !v.scopes.iter().any(|s| s == REQUIRED_SCOPE) {
            return self.authorize(format!(
                "the access token lacks the {REQUIRED_SCOPE} scope (it has: {})",
                v.scopes.join(" ")
            ));
        }
        if !v.client_id.is_empty() && v.client_id != self.client_id {
            log!(Warn, self.who(), None, "the access token was issued to client id {}, not the configured {}; Helix will refuse it", log::quoted(&v.client_id), log::quoted(&self.client_id));
        }
        self.schedule.validated(now, expires_in);
        self.expires_at = Some(wall + expires_in);
        self.retry_backoff.reset();
        log!(
            Debug,
            self.who(),
            None,
            "token valid for {} more minutes",
            v.expires_in / 60
        );
        if self.stage == Stage::Starting {
            self.stage = Stage::Ready;
            self.ready_once = true;
            self.events.push_back(TokenEvent::Ready);
        }
    }

    fn validated_new(
        &mut self,
        now: Instant,
        wall: SystemTime,
        set: TokenSet,
        result: Result<Validation, OAuthError>,
    ) {
        match result {
            Ok(v) if !v.login.eq_ignore_ascii_case(&self.username) => {
                let failure = format!(
                    "Twitch account {} approved the code, but this entry is for {}: approve while logged in as {}",
                    log::quoted(&v.login),
                    log::quoted(&self.username),
                    log::quoted(&self.username)
                );
                self.code_failed(now, failure);
            }
            Ok(v) => {
                let set = TokenSet {
                    expires_in: Some(v.expires_in),
                    ..set
                };
                self.adopt(wall, set, Then::Authorised);
            }
            Err(e) => self.code_failed(now, format!("cannot validate the new token: {e}")),
        }
    }

    /// A `POST /oauth2/token` asked for with [`TokenAction::Refresh`] ended.
    pub fn handle_refreshed(
        &mut self,
        now: Instant,
        wall: SystemTime,
        result: Result<TokenSet, OAuthError>,
    ) {
        let Some(Busy::Refresh { spare, then }) = self.busy.clone() else {
            return;
        };
        self.busy = None;
        match result {
            Ok(set) => {
                if spare {
                    log!(Warn, self.who(), None, "Twitch refused the saved refresh token, but took the newer one an interrupted save had left beside the config: recovered");
                } else {
                    log!(Info, self.who(), None, "access token refreshed");
                }
                self.adopt(wall, set, then);
            }
            // refused, or a spare that did not work (each is tried once): the next spare
            Err(e) if spare || matches!(e, OAuthError::InvalidToken(_)) => {
                if !self.spares.is_empty() {
                    let spare = self.spares.remove(0);
                    self.start(
                        Busy::Refresh { spare: true, then },
                        TokenAction::Refresh(spare),
                    );
                } else {
                    let why = match e {
                        OAuthError::InvalidToken(why) => why,
                        e => e.to_string(),
                    };
                    self.authorize(format!("Twitch refused the refresh token ({why})"));
                }
            }
            Err(e) => {
                let retry = Retry::Refresh(match then {
                    Then::Validate => Then::Validate,
                    Then::Done | Then::Authorised => Then::Done,
                });
                self.transient(now, format!("cannot refresh the access token: {e}"), retry);
            }
        }
        self.next(now);
    }

    /// A new pair is saved before it is used: the save first, then adoption.
    fn adopt(&mut self, wall: SystemTime, set: TokenSet, then: Then) {
        let expires_in = set.expires_in.map(Duration::from_secs);
        let pair = Pair {
            access: set.access_token,
            refresh: set.refresh_token,
            expires_at: expires_in.map(|e| wall + e),
        };
        self.start(
            Busy::Save {
                pair: pair.clone(),
                expires_in,
                then,
            },
            TokenAction::Save(pair),
        );
    }

    /// The token endpoint could not be asked: answer who waits, and try again with backoff.
    fn transient(&mut self, now: Instant, why: String, retry: Retry) {
        let wait = self.retry_backoff.next_delay(0.75);
        log!(
            Error,
            self.who(),
            None,
            "{why}; trying again in {:.1}s",
            wait.as_secs_f64()
        );
        self.answer(Err(RenewError::Unavailable(format!(
            "{why}; trying again in {:.1}s",
            wait.as_secs_f64()
        ))));
        self.retry = Some(retry);
        self.timers.set(Timer::Retry, Some(now + wait));
    }

    /// A config write asked for with [`TokenAction::Save`] ended (`Err`: why it failed).
    pub fn handle_saved(&mut self, now: Instant, result: Result<(), String>) {
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

    fn saved_new(
        &mut self,
        now: Instant,
        pair: Pair,
        expires_in: Option<Duration>,
        then: Then,
        result: Result<(), String>,
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
                    error,
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

    fn resaved(&mut self, now: Instant, pair: Pair, result: Result<(), String>) {
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
                unsaved.error = error;
                self.timers.set(Timer::Save, Some(now + wait));
            }
        }
    }

    /// Sends the person to the device flow (or gives up, when codes are not allowed).
    fn authorize(&mut self, why: String) {
        log!(
            Error,
            self.who(),
            None,
            "{why}: the user must authorise again; starting the device-code flow"
        );
        self.answer(Err(RenewError::Refused(why)));
        self.want = None;
        self.retry = None;
        self.timers.set(Timer::Retry, None);
        self.stage = Stage::Authorising(0);
        self.start(Busy::Device, TokenAction::Authorize);
    }

    /// One device-code authorisation asked for with [`TokenAction::Authorize`] ended.
    pub fn handle_device(&mut self, now: Instant, result: Result<TokenSet, DeviceError>) {
        if self.busy != Some(Busy::Device) {
            return;
        }
        self.busy = None;
        match result {
            Ok(set) => {
                let access = set.access_token.clone();
                self.start(Busy::ValidateNew(set), TokenAction::Validate(access));
            }
            Err(e) => self.code_failed(now, e.to_string()),
        }
    }

    fn code_failed(&mut self, now: Instant, failure: String) {
        let Stage::Authorising(codes) = self.stage else {
            return;
        };
        let codes = codes + 1;
        self.stage = Stage::Authorising(codes);
        if self.attempts.is_some_and(|max| codes >= max) {
            let why = format!("authorisation failed {codes} times, last: {failure}");
            self.stage = Stage::GaveUp;
            self.answer(Err(RenewError::Refused(why.clone())));
            self.events.push_back(TokenEvent::GaveUp(why));
            return;
        }
        // Someone is at the terminal: a new code at once. Unattended: pause, growing, so
        // that Twitch is not asked for codes nobody reads.
        let wait = if self.attempts.is_some() {
            Duration::ZERO
        } else {
            self.code_pause.next_delay(1.0)
        };
        log!(
            Warn,
            self.who(),
            None,
            "authorisation not completed ({failure}); new code in {}s",
            wait.as_secs()
        );
        self.timers.set(Timer::NextCode, Some(now + wait));
    }

    /// Handles every timer due at `now` (one operation at a time: the rest when it ends).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.busy.is_some() || self.stage == Stage::GaveUp {
            return;
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

    /// The next operation for the driver.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<TokenAction> {
        self.actions.pop_front()
    }

    /// The next thing that happened.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TokenEvent> {
        self.events.pop_front()
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
    pub fn renewal_in_flight(&self) -> bool {
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
