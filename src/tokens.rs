//! Keeping one user's tokens valid: validate at start and hourly, refresh ahead of expiry
//! and on demand (one refresh at a time), save every new pair before it is used, and fall
//! back to the device-code flow when nothing else works.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use smol::future;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::{self, UserConfig};
use crate::device::{self, Prompter};
use crate::log;
use crate::oauth::{Client, OAuth, OAuthError, TokenSet, Validation, REQUIRED_SCOPE};
use crate::secret::Secret;

/// Validate this often (Twitch requires hourly validation of chat clients).
pub const VALIDATE_EVERY: Duration = Duration::from_secs(3600);
/// Refresh this long before the access token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(600);
/// Never refresh on schedule more often than this, whatever `expires_in` says.
pub const MIN_REFRESH_GAP: Duration = Duration::from_secs(30);

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

    /// Try again at `at` (after a transient failure).
    pub fn retry_at(&mut self, at: Instant) {
        self.next_validate = Some(self.next_validate.map_or(at, |v| v.min(at)));
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

    /// The next moment something is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.next_validate, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Why no valid token could be had.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenError {
    /// The user must authorise again (device flow); the reason.
    NeedsAuthorization(String),
    /// Twitch could not be asked right now; try later.
    Transient(String),
    /// Twitch says the token is valid: whatever refused it did so for another reason.
    StillValid(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NeedsAuthorization(why) => {
                write!(f, "{why}; the user must authorise again")
            }
            TokenError::Transient(why) | TokenError::StillValid(why) => f.write_str(why),
        }
    }
}

struct State {
    access: Secret,
    refresh: Secret,
    schedule: Schedule,
    expires_at: Option<SystemTime>,
    /// The pair in use is not in the file: why, and when to try saving it again.
    unsaved: Option<Unsaved>,
}

struct Unsaved {
    error: String,
    retry_at: Instant,
    backoff: Backoff,
    failures: u32,
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

/// Refreshes between their request and the save of their answer, in this process.
static REFRESHES: AtomicUsize = AtomicUsize::new(0);

/// Counts one refresh in flight while it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        REFRESHES.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        REFRESHES.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How many token refreshes are between their request and the save of their answer: a
/// stop now could lose a pair Twitch has already rotated.
pub fn refreshes_in_flight() -> usize {
    REFRESHES.load(Ordering::SeqCst)
}

/// First retry of a failed save after this long, doubling up to [`SAVE_RETRY_MAX`].
pub const SAVE_RETRY_FIRST: Duration = Duration::from_secs(5);
/// The longest pause between retries of a failed save.
pub const SAVE_RETRY_MAX: Duration = Duration::from_secs(300);

/// One user's tokens and everything that keeps them valid.
pub struct TokenKeeper {
    username: String,
    client_id: String,
    client_secret: Secret,
    config_path: PathBuf,
    oauth: Arc<OAuth>,
    clock: Arc<dyn Clock>,
    prompter: Arc<dyn Prompter>,
    state: Mutex<State>,
    refreshing: smol::lock::Mutex<()>,
    needs_auth: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// Signalled after each new pair is adopted, for the user's driver.
    renewed: (async_channel::Sender<()>, async_channel::Receiver<()>),
    authorising: AtomicBool,
    /// Refresh tokens an interrupted save left behind, to try when Twitch refuses ours.
    spares: Mutex<Vec<Secret>>,
}

impl TokenKeeper {
    /// A keeper for `user`'s tokens, saving to `config_path`.
    pub fn new(
        user: &UserConfig,
        config_path: PathBuf,
        oauth: Arc<OAuth>,
        clock: Arc<dyn Clock>,
        prompter: Arc<dyn Prompter>,
    ) -> TokenKeeper {
        TokenKeeper {
            username: user.username.clone(),
            client_id: user.client_id.clone(),
            client_secret: user.client_secret.clone(),
            config_path,
            oauth,
            clock,
            prompter,
            state: Mutex::new(State {
                access: usable(&user.username, "access_token", &user.access_token),
                refresh: usable(&user.username, "refresh_token", &user.refresh_token),
                schedule: Schedule::default(),
                expires_at: user.token_expiry,
                unsaved: None,
            }),
            refreshing: smol::lock::Mutex::new(()),
            needs_auth: async_channel::bounded(1),
            renewed: async_channel::bounded(1),
            authorising: AtomicBool::new(false),
            spares: Mutex::new(Vec::new()),
        }
    }

    /// Yields once after each new token pair (a refresh, the device flow); a pair adopted
    /// while nobody was waiting is reported at the next wait.
    pub fn renewals(&self) -> async_channel::Receiver<()> {
        self.renewed.1.clone()
    }

    /// Refresh tokens found in leftover temp files of the config (newest first): a process
    /// killed after Twitch rotated the pair but before the rename left them there. They are
    /// tried, once each, before Twitch's refusal of our refresh token sends the person to the
    /// device flow.
    pub fn with_spares(self, spares: Vec<Secret>) -> TokenKeeper {
        *self.spares.lock().unwrap_or_else(|p| p.into_inner()) = spares;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self) -> Option<&str> {
        Some(&self.username)
    }

    fn client(&self) -> Client<'_> {
        Client {
            id: &self.client_id,
            secret: &self.client_secret,
        }
    }

    /// The access token to use now.
    pub fn access(&self) -> Secret {
        self.lock().access.clone()
    }

    /// The pair in use (the one last saved): access and refresh token.
    pub fn tokens(&self) -> (Secret, Secret) {
        let state = self.lock();
        (state.access.clone(), state.refresh.clone())
    }

    /// When the access token in use expires, as far as known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.lock().expires_at
    }

    /// True while the device-code flow waits for the person.
    pub fn is_authorising(&self) -> bool {
        self.authorising.load(Ordering::Relaxed)
    }

    /// Replaces `stale` (a token a caller saw refused) with a fresh one. Callers that come
    /// while a refresh is running wait for it and get its result; a token that was already
    /// replaced is not refreshed again.
    pub async fn refresh(&self, stale: &Secret) -> Result<Secret, TokenError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let refresh_token = {
            let state = self.lock();
            if state.access != *stale && !state.access.is_empty() {
                return Ok(state.access.clone());
            }
            state.refresh.clone()
        };
        if refresh_token.is_empty() {
            return Err(TokenError::NeedsAuthorization("no refresh token".into()));
        }
        let _in_flight = InFlight::enter();
        match self.oauth.refresh(self.client(), &refresh_token).await {
            Ok(set) => {
                log!(Info, self.name(), None, "access token refreshed");
                Ok(self.adopt(set).await)
            }
            Err(OAuthError::InvalidToken(why)) => {
                while let Some(spare) = self.next_spare() {
                    if let Ok(set) = self.oauth.refresh(self.client(), &spare).await {
                        log!(Warn, self.name(), None, "Twitch refused the saved refresh token, but took the newer one an interrupted save had left beside the config: recovered");
                        return Ok(self.adopt(set).await);
                    }
                }
                self.signal_needs_auth();
                Err(TokenError::NeedsAuthorization(format!(
                    "Twitch refused the refresh token ({why})"
                )))
            }
            Err(e) => Err(TokenError::Transient(format!(
                "cannot refresh the access token: {e}"
            ))),
        }
    }

    /// Saves a new pair (off the executor thread: the write waits for the disk), then makes
    /// it the one in use. Returns the new access token.
    async fn adopt(&self, set: TokenSet) -> Secret {
        let expires_in = set.expires_in.map(Duration::from_secs);
        let expiry = expires_in.map(|e| self.clock.wall() + e);
        let saved = self
            .save(&set.access_token, &set.refresh_token, expiry)
            .await;
        let mut state = self.lock();
        state.access = set.access_token.clone();
        state.refresh = set.refresh_token;
        state.expires_at = expiry;
        state.schedule.renewed(self.clock.now(), expires_in);
        match saved {
            Ok(()) => {
                state.unsaved = None;
                log!(
                    Debug,
                    self.name(),
                    None,
                    "new tokens saved to {}",
                    self.config_path.display()
                );
            }
            Err(error) => {
                let mut backoff = Backoff::new(SAVE_RETRY_FIRST, SAVE_RETRY_MAX);
                let wait = backoff.next_delay(1.0);
                log!(Error, self.name(), None, "could not save the new tokens ({error}); they are kept in memory and the save is retried in {}s, but if the bot stops before a save succeeds this user must authorise again", wait.as_secs());
                state.unsaved = Some(Unsaved {
                    error,
                    retry_at: self.clock.now() + wait,
                    backoff,
                    failures: 1,
                });
            }
        }
        drop(state);
        // the driver learns of it once the pair is in place
        let _ = self.renewed.0.try_send(());
        set.access_token
    }

    /// Writes a pair to the config file, off the executor thread.
    async fn save(
        &self,
        access: &Secret,
        refresh: &Secret,
        expiry: Option<SystemTime>,
    ) -> Result<(), String> {
        let (path, username) = (self.config_path.clone(), self.username.clone());
        let (access, refresh) = (access.clone(), refresh.clone());
        smol::unblock(move || config::save_tokens(&path, &username, &access, &refresh, expiry))
            .await
            .map_err(|e| e.to_string())
    }

    /// Why the pair in use is not saved, if it is not.
    pub fn unsaved(&self) -> Option<String> {
        self.lock().unsaved.as_ref().map(|u| u.error.clone())
    }

    /// Tries again to save the pair in use, after a failed save.
    async fn retry_save(&self) {
        let (access, refresh, expiry) = {
            let state = self.lock();
            (
                state.access.clone(),
                state.refresh.clone(),
                state.expires_at,
            )
        };
        let result = self.save(&access, &refresh, expiry).await;
        let mut state = self.lock();
        let still_current = state.access == access && state.refresh == refresh;
        let Some(unsaved) = state.unsaved.as_mut() else {
            return;
        };
        match result {
            Ok(()) if still_current => {
                log!(
                    Info,
                    self.name(),
                    None,
                    "the tokens are saved to {} now (after {} failed attempt(s))",
                    self.config_path.display(),
                    unsaved.failures
                );
                state.unsaved = None;
            }
            Ok(()) => {}
            Err(error) => {
                unsaved.failures += 1;
                let wait = unsaved.backoff.next_delay(1.0);
                unsaved.retry_at = self.clock.now() + wait;
                log!(
                    Warn,
                    self.name(),
                    None,
                    "still cannot save the tokens ({error}); trying again in {}s",
                    wait.as_secs()
                );
                unsaved.error = error;
            }
        }
    }

    fn next_spare(&self) -> Option<Secret> {
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        (!spares.is_empty()).then(|| spares.remove(0))
    }

    fn signal_needs_auth(&self) {
        let _ = self.needs_auth.0.try_send(());
    }

    /// The token was refused by a service that does not say why (a chat login): asks Twitch
    /// whether it is valid first, and refreshes it only if Twitch says it is not, so that a
    /// refusal for another reason never rotates the pair again and again.
    /// `scope` is the one chat needs (`chat:read` for IRC, `user:read:chat` for EventSub):
    /// a valid token without it starts the device flow (in unattended runs).
    pub async fn renew_refused(&self, stale: &Secret, scope: &str) -> Result<Secret, TokenError> {
        if self.access() != *stale {
            return Ok(self.access()); // renewed meanwhile
        }
        match self.oauth.validate(stale).await {
            Ok(v) if !v.scopes.iter().any(|s| s == scope) => {
                self.signal_needs_auth();
                Err(TokenError::NeedsAuthorization(format!(
                    "the access token is valid but lacks the {scope} scope that chat needs (it has: {}); the device flow asks for it (or run twitch-colorchanger setup after removing access_token)",
                    v.scopes.join(" ")
                )))
            }
            Ok(v) => Err(TokenError::StillValid(format!(
                "Twitch says the access token is valid (account {}, {} more minutes), so chat refused the login for another reason (a suspended account, or Twitch trouble); not renewing it",
                crate::log::quoted(&v.login),
                v.expires_in / 60
            ))),
            Err(OAuthError::InvalidToken(_)) => self.refresh(stale).await,
            Err(e) => Err(TokenError::Transient(format!(
                "cannot validate the access token: {e}"
            ))),
        }
    }

    /// Validates the token in use (refreshing it if Twitch refuses it) and checks that it is
    /// this user's and has the scope the bot needs.
    pub async fn check(&self) -> Result<Validation, TokenError> {
        let mut access = self.access();
        let mut refreshed = false;
        if access.is_empty() {
            if self.lock().refresh.is_empty() {
                return Err(TokenError::NeedsAuthorization("no access token yet".into()));
            }
            log!(
                Info,
                self.name(),
                None,
                "no usable access token: refreshing"
            );
            access = self.refresh(&access).await?;
            refreshed = true;
        }
        loop {
            match self.oauth.validate(&access).await {
                Ok(v) => {
                    if !v.login.eq_ignore_ascii_case(&self.username) {
                        return Err(TokenError::NeedsAuthorization(format!(
                            "the access token belongs to {:?}, not to {:?} (authorise with the right account, or fix \"username\")",
                            v.login, self.username
                        )));
                    }
                    if !v.scopes.iter().any(|s| s == REQUIRED_SCOPE) {
                        return Err(TokenError::NeedsAuthorization(format!(
                            "the access token lacks the {REQUIRED_SCOPE} scope (it has: {})",
                            v.scopes.join(" ")
                        )));
                    }
                    if !v.client_id.is_empty() && v.client_id != self.client_id {
                        log!(Warn, self.name(), None, "the access token was issued to client id {}, not the configured {}; Helix will refuse it", v.client_id, self.client_id);
                    }
                    {
                        let mut state = self.lock();
                        let expires_in = Duration::from_secs(v.expires_in);
                        state.schedule.validated(self.clock.now(), expires_in);
                        state.expires_at = Some(self.clock.wall() + expires_in);
                    }
                    log!(
                        Debug,
                        self.name(),
                        None,
                        "token valid for {} more minutes",
                        v.expires_in / 60
                    );
                    return Ok(v);
                }
                Err(OAuthError::InvalidToken(_)) if !refreshed => {
                    log!(
                        Info,
                        self.name(),
                        None,
                        "access token expired or revoked; refreshing"
                    );
                    access = self.refresh(&access).await?;
                    refreshed = true;
                }
                Err(OAuthError::InvalidToken(why)) => {
                    return Err(TokenError::NeedsAuthorization(format!(
                        "Twitch refused a just-refreshed token ({why})"
                    )))
                }
                Err(e) => {
                    return Err(TokenError::Transient(format!(
                        "cannot validate the access token: {e}"
                    )))
                }
            }
        }
    }

    /// Runs the device-code flow until a valid token for this user is saved. `attempts`
    /// bounds how many codes are issued (`None`: unattended, forever, with growing pauses).
    pub async fn authorize(&self, attempts: Option<u32>) -> Result<(), String> {
        let _one_at_a_time = self.refreshing.lock().await;
        self.authorising.store(true, Ordering::Relaxed);
        let result = self.authorize_locked(attempts).await;
        self.authorising.store(false, Ordering::Relaxed);
        result
    }

    async fn authorize_locked(&self, attempts: Option<u32>) -> Result<(), String> {
        let mut pause = Backoff::new(Duration::from_secs(60), Duration::from_secs(30 * 60));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = device::run(
                &self.oauth,
                &*self.clock,
                self.client(),
                &self.username,
                &*self.prompter,
            )
            .await;
            let failure = match outcome {
                Ok(set) => match self.oauth.validate(&set.access_token).await {
                    Ok(v) if !v.login.eq_ignore_ascii_case(&self.username) => format!(
                        "Twitch account {:?} approved the code, but this entry is for {:?}: approve while logged in as {:?}",
                        v.login, self.username, self.username
                    ),
                    Ok(v) => {
                        let expires_in = Duration::from_secs(v.expires_in);
                        let set = TokenSet {
                            expires_in: Some(v.expires_in),
                            ..set
                        };
                        self.adopt(set).await;
                        self.lock().schedule.validated(self.clock.now(), expires_in);
                        match self.unsaved() {
                            None => log!(Info, self.name(), None, "authorised; tokens saved to {}", self.config_path.display()),
                            Some(e) => log!(Error, self.name(), None, "authorised, but the tokens could not be saved to {} ({e}): keep the bot running until a save succeeds, or this user must authorise again", self.config_path.display()),
                        }
                        while self.needs_auth.1.try_recv().is_ok() {}
                        return Ok(());
                    }
                    Err(e) => format!("cannot validate the new token: {e}"),
                },
                Err(e) => e.to_string(),
            };
            if attempts.is_some_and(|max| attempt >= max) {
                return Err(format!(
                    "authorisation failed {attempt} times, last: {failure}"
                ));
            }
            // Someone is at the terminal: a new code at once. Unattended: pause, growing, so
            // that Twitch is not asked for codes nobody reads.
            let wait = if attempts.is_some() {
                Duration::ZERO
            } else {
                pause.next_delay(1.0)
            };
            log!(
                Warn,
                self.name(),
                None,
                "authorisation not completed ({failure}); new code in {}s",
                wait.as_secs()
            );
            self.sleep(wait).await;
        }
    }

    async fn sleep(&self, wait: Duration) {
        self.clock.sleep_until(self.clock.now() + wait).await;
    }

    /// Makes sure a valid token exists before the user starts: validates it, refreshes it,
    /// or runs the device flow. Transient failures are retried with backoff.
    pub async fn ready(&self, attempts: Option<u32>) -> Result<(), String> {
        let mut backoff = Backoff::default();
        loop {
            match self.check().await {
                Ok(_) => return Ok(()),
                Err(TokenError::NeedsAuthorization(why)) => {
                    log!(
                        Warn,
                        self.name(),
                        None,
                        "{why}: starting the device-code flow"
                    );
                    self.authorize(attempts).await?;
                    return Ok(());
                }
                Err(TokenError::Transient(why) | TokenError::StillValid(why)) => {
                    let wait = backoff.next_delay(0.75);
                    log!(
                        Error,
                        self.name(),
                        None,
                        "{why}; retrying in {:.1}s",
                        wait.as_secs_f64()
                    );
                    self.sleep(wait).await;
                }
            }
        }
    }

    /// Keeps the token valid for as long as the user runs: hourly validation, refresh before
    /// expiry, and the device flow when a refresh is refused.
    pub async fn maintain(&self, attempts: Option<u32>) {
        let mut backoff = Backoff::default();
        loop {
            let (deadline, save_at) = {
                let state = self.lock();
                let save_at = state.unsaved.as_ref().map(|u| u.retry_at);
                let schedule = state.schedule.poll_timeout();
                (schedule.into_iter().chain(save_at).min(), save_at)
            };
            let woken_for_auth = future::or(
                async {
                    match deadline {
                        Some(at) => self.clock.sleep_until(at).await,
                        None => future::pending().await,
                    }
                    false
                },
                async {
                    let _ = self.needs_auth.1.recv().await;
                    true
                },
            )
            .await;
            if !woken_for_auth && save_at.is_some_and(|at| at <= self.clock.now()) {
                self.retry_save().await;
                continue;
            }
            let result = if woken_for_auth {
                Err(TokenError::NeedsAuthorization(
                    "Twitch refused the refresh token".into(),
                ))
            } else {
                let due = self.lock().schedule.due(self.clock.now());
                match due {
                    Some(Due::Refresh) => {
                        let stale = self.access();
                        self.refresh(&stale).await.map(|_| ())
                    }
                    Some(Due::Validate) => self.check().await.map(|_| ()),
                    None => continue,
                }
            };
            match result {
                Ok(()) => backoff.reset(),
                Err(TokenError::Transient(why) | TokenError::StillValid(why)) => {
                    let wait = backoff.next_delay(0.75);
                    log!(
                        Error,
                        self.name(),
                        None,
                        "{why}; trying again in {:.1}s",
                        wait.as_secs_f64()
                    );
                    let at = self.clock.now() + wait;
                    self.lock().schedule.retry_at(at);
                }
                Err(TokenError::NeedsAuthorization(why)) => {
                    log!(
                        Error,
                        self.name(),
                        None,
                        "{why}: the user must authorise again; starting the device-code flow"
                    );
                    if let Err(e) = self.authorize(attempts).await {
                        log!(
                            Error,
                            self.name(),
                            None,
                            "{e}; color changes stop for this user until the bot is restarted"
                        );
                        future::pending::<()>().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_hourly_and_refreshes_ten_minutes_before_expiry() {
        let t = Instant::now();
        let mut s = Schedule::default();
        assert_eq!((s.due(t), s.poll_timeout()), (None, None));
        s.validated(t, Duration::from_secs(4 * 3600));
        assert_eq!(s.poll_timeout(), Some(t + VALIDATE_EVERY));
        assert_eq!(s.due(t + VALIDATE_EVERY), Some(Due::Validate));
        s.validated(t + VALIDATE_EVERY, Duration::from_secs(3 * 3600));
        // the last hour: validation at +2h, refresh at +4h-10min
        s.validated(t + VALIDATE_EVERY * 3, Duration::from_secs(3600));
        assert_eq!(
            s.poll_timeout(),
            Some(t + VALIDATE_EVERY * 4 - REFRESH_AHEAD)
        );
        assert_eq!(
            s.due(t + VALIDATE_EVERY * 4 - REFRESH_AHEAD),
            Some(Due::Refresh)
        );
    }

    #[test]
    fn a_short_lived_token_is_refreshed_soon_but_not_in_a_loop() {
        let t = Instant::now();
        let mut s = Schedule::default();
        s.renewed(t, Some(Duration::from_secs(5)));
        assert_eq!(s.poll_timeout(), Some(t + MIN_REFRESH_GAP));
        s.renewed(t, None);
        assert_eq!(s.poll_timeout(), Some(t + VALIDATE_EVERY));
        s.retry_at(t + Duration::from_secs(2));
        assert_eq!(s.due(t + Duration::from_secs(2)), Some(Due::Validate));
    }
}
