//! The async driver of one user, in the shape of quinn's `ConnectionDriver`: it performs the
//! work the sans-IO `Account` asks for (Helix and OAuth calls, chat connections, config
//! writes), reports how each ended, moves chat bytes between the connections and the account
//! and arms one timer. It makes no choice of its own: what passes between the token core, the
//! user core and the chat session is decided in `account.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nanorand::{Rng, WyRand};

use crate::account::Account;
use crate::chat;
use crate::clock::Clock;
use crate::config::{ConfigFile, UserConfig};
use crate::device::Prompter;
use crate::directory::Directory;
use crate::endpoint::{Endpoint, Url};
use crate::helix::Helix;
use crate::log;
use crate::oauth::{AppCredentials, OAuth};
use crate::secret::Secret;
use crate::tokens::{TokenAnswer, TokenCore, TokenEvent, TokenStatus};
use crate::transport::Transport;
use crate::usercore::{Counters, Status};

mod calls;
mod driver;
mod mailbox;

pub use self::mailbox::Mailbox;

use self::calls::token_op;
use self::driver::Driver;

/// What every user shares: time, network, Helix, the IRC endpoint and the config file.
pub struct Services {
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Byte streams (IRC).
    pub transport: Arc<dyn Transport>,
    /// Helix, with its pooled HTTP client.
    pub helix: Helix,
    /// OAuth (tokens), sharing that client.
    pub oauth: Arc<OAuth>,
    /// Shows device codes to the person.
    pub prompter: Arc<dyn Prompter>,
    /// How many device codes to try before giving up on a user; `None`: forever (unattended).
    pub auth_attempts: Option<u32>,
    /// Where IRC chat is.
    pub irc: Endpoint,
    /// Where EventSub is: the endpoint and the request target (path and query).
    pub eventsub: Url,
    /// The chat transport of users whose entry does not choose one.
    pub default_transport: chat::Protocol,
    /// Channel logins → user ids, for the whole process (EventSub subscriptions).
    pub channels: Mutex<Directory>,
    /// The config file, for persisting changes.
    pub config: Arc<ConfigFile>,
    /// What TLS handshakes found out about this machine's clock.
    pub clock_watch: Arc<crate::skew::Watch>,
}

/// An order from the supervisor to a running user (see [`Mailbox`]).
#[derive(Debug, Clone)]
pub enum Control {
    /// The person edited this user's settings (same credentials).
    Update(Box<UserConfig>),
    /// The process is stopping: end once no rotated token pair is left unsaved (bounded by
    /// [`STOP_GRACE`]).
    Stop,
}

/// The longest a stop waits for a token refresh in flight to be answered and saved.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// What a user's driver publishes for the supervisor: the user and its tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// The user's state and counters.
    pub user: Status,
    /// The tokens' state.
    pub tokens: TokenStatus,
}

/// Why a user stopped for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserError {
    /// No valid token within the allowed device codes; the last reason.
    NotAuthorised(String),
    /// `setup`: authorised, but the new tokens could not be saved; why.
    NotSaved(String),
}

impl std::fmt::Display for UserError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UserError::NotAuthorised(why) => f.write_str(why),
            UserError::NotSaved(why) => write!(
                f,
                "authorised, but the tokens could not be saved ({why}); fix that and run setup again"
            ),
        }
    }
}

impl std::error::Error for UserError {}

/// Runs one user until it is stopped (the supervisor drops the task, or posts
/// [`Mailbox::stop`] to `mailbox`, where the user's reports go). Every failure is logged and retried with backoff,
/// so one user's trouble never stops another; returns an error only if the user could not
/// be authorised within the allowed attempts. `spares` are refresh tokens an interrupted
/// save left behind (see [`TokenCore::new`]).
///
/// The user is set up here and the future returned holds only the driver: an `async fn`
/// keeps its arguments (the config, the counters) for as long as it runs, a third of a
/// kilobyte per user for nothing.
pub fn run(
    services: Arc<Services>,
    user: UserConfig,
    spares: Vec<Secret>,
    mailbox: Arc<Mailbox>,
    counters: Counters,
) -> impl Future<Output = Result<(), UserError>> {
    let seed = WyRand::new().generate::<u64>();
    let mut user = user;
    user.chat_transport
        .get_or_insert(services.default_transport);
    let tokens = TokenCore::new(
        &user,
        services.config.path(),
        spares,
        services.auth_attempts,
    );
    let account = Account::new(services.clock.now(), &user, tokens, counters, seed);
    let app = AppCredentials {
        id: user.client_id,
        secret: user.client_secret,
    };
    let mut driver = Driver::new(services, app, account, mailbox, user.username);
    async move {
        let result = driver.drive().await;
        if let Err(why) = &result {
            log!(
                Error,
                driver.who(),
                None,
                "{why}; giving up on this user (the others keep running)"
            );
        }
        result
    }
}

/// Runs one user with no supervisor (tests, benchmarks): nobody updates or stops it. Only
/// with the `fake-twitch` feature (the tests').
#[cfg(feature = "fake-twitch")]
pub async fn run_alone(services: Arc<Services>, user: UserConfig) -> Result<(), UserError> {
    let mailbox = Mailbox::new(async_channel::bounded(1).0);
    run(services, user, Vec::new(), mailbox, Counters::default()).await
}

/// Makes sure `user` has a valid token (validating, refreshing, or running the device flow,
/// at most `attempts` codes), as `setup` does, without starting chat. Returns the token
/// status at the end.
pub async fn authorise(
    services: Arc<Services>,
    user: &UserConfig,
    spares: Vec<Secret>,
    attempts: u32,
) -> Result<TokenStatus, UserError> {
    let mut tokens = TokenCore::new(user, services.config.path(), spares, Some(attempts));
    let app = AppCredentials {
        id: user.client_id.clone(),
        secret: user.client_secret.clone(),
    };
    let clock = &*services.clock;
    let mut op: Option<Pin<Box<dyn Future<Output = TokenAnswer>>>> = None;
    loop {
        while let Some(event) = tokens.poll_event() {
            match event {
                TokenEvent::Ready => return Ok(tokens.status()),
                TokenEvent::Prompt(p) if p.reminder => {
                    services.prompter.remind(&user.username, &p.code, p.left)
                }
                TokenEvent::Prompt(p) => services.prompter.show(&user.username, &p.code, p.left),
                TokenEvent::GaveUp(why) => return Err(UserError::NotAuthorised(why)),
                _ => {}
            }
        }
        if op.is_none() {
            if let Some(action) = tokens.poll_action() {
                op = Some(token_op(&services, &app, &user.username, action));
            }
        }
        let answer = match (op.as_mut(), tokens.poll_timeout()) {
            (Some(fut), _) => Some(fut.await),
            (None, Some(at)) => {
                clock.sleep_until(at).await;
                None
            }
            (None, None) => return Err(UserError::NotAuthorised("the token check stalled".into())),
        };
        let now = clock.now();
        match answer {
            Some(answer) => {
                op = None;
                tokens.handle_answer(now, clock.wall(), answer);
            }
            None => tokens.handle_timeout(now),
        }
    }
}
