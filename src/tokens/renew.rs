//! Renewing the token: a refusal asked about, validations (routine, after a refresh, of a
//! device-flow pair) and what they mean, refreshes with spare refresh tokens, and a token
//! endpoint that is down.

use std::time::{Duration, Instant, SystemTime};

use super::{
    Busy, Check, Pair, Purpose, RenewError, Retry, Stage, Then, Timer, TokenAction, TokenCore,
    TokenEvent, Want, APP_REFUSED_RETRY,
};
use crate::answer::{OAuthError, TokenSet, Validation, REQUIRED_SCOPE};
use crate::log;
use crate::secret::Secret;

impl TokenCore {
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

    pub(super) fn validated(
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
                        let quiet = self.quiet(now, &e);
                        self.transient(now, why, quiet, Retry::Validate(Check::Routine))
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

    pub(super) fn validated_new(
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
        let Some(Busy::Refresh { spare, then }) = self.busy else {
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
                self.app_refused = false;
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
                match e {
                    OAuthError::AppRefused(..) => self.app_refused(now, e.to_string(), retry),
                    e => {
                        let why = format!("cannot refresh the access token: {e}");
                        let quiet = self.quiet(now, &e);
                        self.transient(now, why, quiet, retry)
                    }
                }
            }
        }
        self.next(now);
    }

    /// The token endpoint refuses the app rather than the refresh token
    /// ([`OAuthError::AppRefused`]: a wrong `client_id` or `client_secret`). Asking again
    /// soon cannot help, and the refresh token may still be good, so no device flow: it is
    /// said once at ERROR and tried again hourly; an edit of either field restarts the user
    /// at once.
    fn app_refused(&mut self, now: Instant, cause: String, retry: Retry) {
        let why = format!(
            "Twitch refuses to renew tokens for this app ({cause}): check \"client_id\" and \"client_secret\" of this user in {}; trying again hourly and as soon as either changes",
            self.saved_to
        );
        if self.app_refused {
            log!(Debug, self.who(), None, "{why}");
        } else {
            log!(Error, self.who(), None, "{why}");
        }
        self.app_refused = true;
        self.answer(Err(RenewError::Unavailable(why)));
        self.retry = Some(retry);
        self.timers.set(Timer::Retry, Some(now + APP_REFUSED_RETRY));
    }

    /// A new pair is saved before it is used: the save first, then adoption.
    pub(super) fn adopt(&mut self, wall: SystemTime, set: TokenSet, then: Then) {
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

    /// Whether a failure to reach the token endpoint goes unsaid (a debug line): a clock that
    /// looks wrong was said once already; a want of file descriptors is said at most once a
    /// minute.
    fn quiet(&mut self, now: Instant, e: &OAuthError) -> bool {
        if e.is_clock() {
            return true;
        }
        e.is_descriptors() && !crate::log::seldom(self.who().unwrap_or_default(), now)
    }

    /// The token endpoint could not be asked: answer who waits, and try again with backoff.
    /// `quiet`: the cause was said once already (a clock that looks wrong), so each try is
    /// only a debug line.
    pub(super) fn transient(&mut self, now: Instant, why: String, quiet: bool, retry: Retry) {
        let wait = self.retry_backoff.next_delay(0.75);
        let line = format!("{why}; trying again in {:.1}s", wait.as_secs_f64());
        if quiet {
            log!(Debug, self.who(), None, "{line}");
        } else {
            log!(Error, self.who(), None, "{line}");
        }
        self.answer(Err(RenewError::Unavailable(line)));
        self.retry = Some(retry);
        self.timers.set(Timer::Retry, Some(now + wait));
    }
}
