//! The async driver of one user: finds the user id and color, keeps an IRC connection up,
//! and turns own messages into color changes. All decisions live in the sans-IO cores
//! ([`crate::irc::Session`], [`crate::bot::ColorBot`]); this file only awaits.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nanorand::{Rng, WyRand};
use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::backoff::Backoff;
use crate::bot::{BotEvent, Change, ColorBot, Outcome};
use crate::clock::{timeout_at, Clock};
use crate::config::{self, UserConfig};
use crate::device::Prompter;
use crate::helix::{ApiError, Credentials, Helix};
use crate::irc::{self, CloseReason, Event, Session};
use crate::log;
use crate::oauth::OAuth;
use crate::secret::Secret;
use crate::tokens::TokenKeeper;
use crate::transport::{Endpoint, Transport};

/// A connection that stayed logged in this long resets the reconnect backoff.
const HEALTHY: Duration = Duration::from_secs(30);
/// Longest wait for a rate-limit bucket to refill.
const MAX_RATE_WAIT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every user shares: time, network, Helix, the IRC endpoint and the config file.
pub struct Shared {
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
    /// Where chat is.
    pub irc: Endpoint,
    /// The config file, for persisting changes.
    pub config_path: PathBuf,
}

type ChangeFuture = Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// Runs one user until the process ends. Every failure is logged and retried with backoff,
/// so one user's trouble never stops another; returns only if the user could not be
/// authorised within the allowed attempts.
pub async fn run(shared: Arc<Shared>, user: UserConfig) {
    let keeper = Arc::new(TokenKeeper::new(
        &user,
        shared.config_path.clone(),
        shared.oauth.clone(),
        shared.clock.clone(),
        shared.prompter.clone(),
    ));
    let attempts = shared.auth_attempts;
    let mut task = UserTask {
        keeper: keeper.clone(),
        rng: WyRand::new(),
        bot: ColorBot::new(user.is_prime_or_turbo, user.enabled, None),
        user_id: String::new(),
        in_flight: None,
        last_channel: None,
        shared,
        user,
    };
    task.log_start();
    if let Err(e) = keeper.ready(attempts).await {
        log!(
            Error,
            task.name(),
            None,
            "{e}; giving up on this user (the others keep running)"
        );
        return;
    }
    future::or(keeper.maintain(attempts), async {
        task.identify().await;
        task.run_connections().await
    })
    .await;
}

struct UserTask {
    keeper: Arc<TokenKeeper>,
    shared: Arc<Shared>,
    user: UserConfig,
    user_id: String,
    bot: ColorBot,
    in_flight: Option<ChangeFuture>,
    last_channel: Option<String>,
    rng: WyRand,
}

enum Wake {
    Read(std::io::Result<usize>),
    Timer,
    Change(Outcome),
}

impl UserTask {
    fn name(&self) -> Option<&str> {
        Some(&self.user.username)
    }

    fn jitter(&mut self) -> f64 {
        f64::from(self.rng.generate_range(0u32..1000)) / 1000.0
    }

    fn log_start(&self) {
        let mode = if self.user.is_prime_or_turbo {
            "random hex colors (Prime/Turbo)"
        } else {
            "named colors"
        };
        let auto = if self.user.enabled {
            ""
        } else {
            "; automatic changes disabled (\"enabled\": false)"
        };
        log!(
            Info,
            self.name(),
            None,
            "starting: channels {}; {mode}{auto}",
            self.user
                .channels
                .iter()
                .map(|c| format!("#{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    fn creds<'a>(&'a self, token: &'a Secret) -> Credentials<'a> {
        Credentials {
            token,
            client_id: &self.user.client_id,
        }
    }

    /// Finds the user id (retrying until it works) and the color in use.
    async fn identify(&mut self) {
        let mut backoff = Backoff::default();
        loop {
            let token = self.keeper.access();
            match self.shared.helix.get_user(self.creds(&token)).await {
                Ok(me) => {
                    if !me.login.eq_ignore_ascii_case(&self.user.username) {
                        log!(Warn, self.name(), None, "the access token belongs to {:?}, not to this user; its colors are the ones that will change", me.login);
                    }
                    self.user_id = me.id;
                    break;
                }
                Err(e) if is_unauthorized(&e) && self.keeper.refresh(&token).await.is_ok() => {}
                Err(e) => {
                    if is_unauthorized(&e) {
                        backoff.saturate();
                    }
                    let wait = backoff.next_delay(self.jitter());
                    log!(
                        Error,
                        self.name(),
                        None,
                        "cannot look up the user id: {}; retrying in {:.1}s",
                        describe(&e),
                        wait.as_secs_f64()
                    );
                    self.sleep(wait).await;
                }
            }
        }
        let token = self.keeper.access();
        match self
            .shared
            .helix
            .get_color(self.creds(&token), &self.user_id)
            .await
        {
            Ok(color) => {
                log!(
                    Debug,
                    self.name(),
                    None,
                    "user id {}, current color {}",
                    self.user_id,
                    color.as_deref().unwrap_or("(never set)")
                );
                self.bot = ColorBot::new(self.user.is_prime_or_turbo, self.user.enabled, color);
            }
            Err(e) => log!(
                Warn,
                self.name(),
                None,
                "cannot read the current color ({}); the first change may repeat it",
                describe(&e)
            ),
        }
    }

    async fn sleep(&self, wait: Duration) {
        let clock = &self.shared.clock;
        clock.sleep_until(clock.now() + wait).await;
    }

    async fn run_connections(&mut self) -> ! {
        let mut backoff = Backoff::default();
        loop {
            let started = self.shared.clock.now();
            let token = self.keeper.access();
            let (mut end, ready_at) = self.connection(&token).await;
            let healthy =
                ready_at.is_some_and(|at| self.shared.clock.now().duration_since(at) >= HEALTHY);
            if healthy {
                backoff.reset();
            }
            if let ConnEnd::Closed(CloseReason::AuthFailed(text)) = &end {
                match self.keeper.refresh(&token).await {
                    Ok(_) => {
                        end = ConnEnd::Io(format!(
                            "chat login refused ({text}); retrying with the refreshed token"
                        ))
                    }
                    Err(e) => {
                        log!(Error, self.name(), None, "cannot refresh the token: {e}");
                        backoff.saturate();
                    }
                }
            }
            let wait = backoff.next_delay(self.jitter());
            let lived = self.shared.clock.now().duration_since(started).as_secs();
            match &end {
                ConnEnd::Closed(CloseReason::AuthFailed(text)) => log!(Error, self.name(), None, "chat login refused ({text}) and the token could not be renewed; retrying in {}s", wait.as_secs()),
                end => log!(Warn, self.name(), None, "chat connection ended after {lived}s: {end}; reconnecting in {:.1}s", wait.as_secs_f64()),
            }
            self.wait_serving_changes(wait).await;
        }
    }

    /// Sleeps, while still finishing a color change in flight.
    async fn wait_serving_changes(&mut self, wait: Duration) {
        let until = self.shared.clock.now() + wait;
        loop {
            let sleep = self.shared.clock.sleep_until(until);
            let outcome = future::or(
                async {
                    sleep.await;
                    None
                },
                async {
                    match self.in_flight.as_mut() {
                        Some(change) => Some(change.await),
                        None => future::pending().await,
                    }
                },
            )
            .await;
            match outcome {
                Some(outcome) => {
                    self.in_flight = None;
                    self.finish_change(outcome);
                }
                None => return,
            }
        }
    }

    /// One IRC connection, from connect to close. Returns how it ended and when it became ready.
    async fn connection(&mut self, token: &Secret) -> (ConnEnd, Option<Instant>) {
        let shared = self.shared.clone();
        let clock = &*shared.clock;
        log!(Debug, self.name(), None, "connecting to {}", shared.irc);
        let mut stream = match shared.transport.connect(&shared.irc).await {
            Ok(s) => s,
            Err(e) => {
                return (
                    ConnEnd::Io(format!("cannot connect to {}: {e}", shared.irc)),
                    None,
                )
            }
        };
        let mut session =
            Session::new(clock.now(), &self.user.username, token, &self.user.channels);
        let mut ready_at = None;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(event) = session.poll_event() {
                if let Event::Closed(reason) = event {
                    return (ConnEnd::Closed(reason), ready_at);
                }
                if event == Event::Ready {
                    ready_at = Some(clock.now());
                }
                self.on_irc_event(event);
            }
            while let Some(line) = session.poll_transmit() {
                log!(Debug, self.name(), None, "> {}", irc::redact(&line));
                let write = async {
                    stream.write_all(line.as_bytes()).await?;
                    stream.flush().await
                };
                match timeout_at(clock, clock.now() + WRITE_TIMEOUT, write).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return (ConnEnd::Io(format!("write failed: {e}")), ready_at),
                    None => return (ConnEnd::Io("write timed out".into()), ready_at),
                }
            }
            let deadline = session.poll_timeout();
            let wake = {
                let read = async { Wake::Read(stream.read(&mut buf).await) };
                let timer = async {
                    match deadline {
                        Some(at) => clock.sleep_until(at).await,
                        None => future::pending().await,
                    }
                    Wake::Timer
                };
                let change = async {
                    match self.in_flight.as_mut() {
                        Some(change) => Wake::Change(change.await),
                        None => future::pending().await,
                    }
                };
                future::or(read, future::or(timer, change)).await
            };
            match wake {
                Wake::Read(Ok(0)) => return (ConnEnd::Eof, ready_at),
                Wake::Read(Ok(n)) => session.handle_input(clock.now(), &buf[..n]),
                // A peer that closes without TLS close_notify is still just a closed connection.
                Wake::Read(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return (ConnEnd::Eof, ready_at)
                }
                Wake::Read(Err(e)) => return (ConnEnd::Io(format!("read failed: {e}")), ready_at),
                Wake::Timer => session.handle_timeout(clock.now()),
                Wake::Change(outcome) => {
                    self.in_flight = None;
                    self.finish_change(outcome);
                }
            }
        }
    }

    fn on_irc_event(&mut self, event: Event) {
        match event {
            Event::Ready => log!(
                Info,
                self.name(),
                None,
                "connected to chat at {}",
                self.shared.irc
            ),
            Event::Joined(chan) => log!(Info, self.name(), Some(&chan), "joined"),
            Event::Parted(chan) => log!(
                Warn,
                self.name(),
                Some(&chan),
                "left the channel (parted or banned)"
            ),
            Event::Privmsg(msg) => {
                let own = match (&msg.user_id, self.user_id.is_empty()) {
                    (Some(id), false) => *id == self.user_id,
                    _ => msg.login.eq_ignore_ascii_case(&self.user.username),
                };
                if !own {
                    return;
                }
                log!(Debug, self.name(), Some(&msg.channel), "own message seen");
                self.last_channel = Some(msg.channel);
                if let Some(change) = self.bot.on_own_message(&mut self.rng) {
                    self.start_change(change);
                }
            }
            Event::Notice {
                channel,
                msg_id,
                text,
            } => {
                let chan = (channel != "*").then_some(channel.as_str());
                log!(
                    Warn,
                    self.name(),
                    chan,
                    "notice from Twitch: {text} ({})",
                    msg_id.as_deref().unwrap_or("no msg-id")
                );
            }
            Event::GlobalUserState { .. } => {}
            Event::Dropped(why) => log!(Debug, self.name(), None, "ignored a chat line: {why}"),
            Event::Closed(_) => {}
        }
    }

    fn start_change(&mut self, change: Change) {
        let shared = self.shared.clone();
        let keeper = self.keeper.clone();
        let client_id = self.user.client_id.clone();
        let user_id = self.user_id.clone();
        log!(Debug, self.name(), None, "setting color {}", change.color);
        self.in_flight = Some(Box::pin(async move {
            if let Some(at) = change.not_before {
                let clock = &shared.clock;
                let wait = at
                    .duration_since(clock.wall())
                    .unwrap_or_default()
                    .min(MAX_RATE_WAIT);
                clock.sleep_until(clock.now() + wait).await;
            }
            let put = |token: Secret| {
                let (shared, client_id, user_id, color) =
                    (&shared, &client_id, &user_id, &change.color);
                async move {
                    let creds = Credentials {
                        token: &token,
                        client_id,
                    };
                    (shared.helix.put_color(creds, user_id, color).await, token)
                }
            };
            let (mut result, token) = put(keeper.access()).await;
            // 401: refresh (one refresh per user, however many callers) and retry once.
            if matches!(result, Err(ApiError::Status { status: 401, .. })) {
                if let Ok(fresh) = keeper.refresh(&token).await {
                    result = put(fresh).await.0;
                }
            }
            match result {
                Ok(_) => Outcome::Done,
                Err(ApiError::Status {
                    status: 400,
                    message,
                    ..
                }) => Outcome::Rejected(message),
                Err(ApiError::Status {
                    status: 401,
                    message,
                    ..
                }) => Outcome::Unauthorized(message),
                Err(ApiError::Status {
                    status: 429, rate, ..
                }) => {
                    let fallback = shared.clock.wall() + Duration::from_secs(1);
                    Outcome::RateLimited(Some(rate.reset_at().unwrap_or(fallback)))
                }
                Err(e) => Outcome::Failed(e.to_string()),
            }
        }));
    }

    fn finish_change(&mut self, outcome: Outcome) {
        let next = self.bot.on_outcome(outcome, &mut self.rng);
        let chan = self.last_channel.clone();
        let chan = chan.as_deref();
        while let Some(event) = self.bot.poll_event() {
            match event {
                BotEvent::Changed { old, new } => {
                    log!(Info, self.name(), chan, "color changed {} → {new}", old.as_deref().unwrap_or("(unknown)"))
                }
                BotEvent::PrimeLost => {
                    log!(Warn, self.name(), None, "Twitch refused a hex color but took a named one: this account has no Turbo/Prime; using named colors from now on");
                    self.persist_named_colors();
                }
                BotEvent::FallbackFailed { hex_error, named_error } => log!(Error, self.name(), chan, "color not changed: hex color refused ({hex_error}) and named color refused too ({named_error})"),
                BotEvent::RateLimited => log!(Warn, self.name(), chan, "rate limited by Twitch; retrying once the bucket refills"),
                BotEvent::Failed(why) => log!(Error, self.name(), chan, "color not changed: {why}"),
                BotEvent::Unauthorized(why) => log!(Error, self.name(), chan, "color not changed: Twitch refused the access token ({why}) and it could not be renewed"),
            }
        }
        if let Some(change) = next {
            self.start_change(change);
        }
    }

    fn persist_named_colors(&self) {
        let path = self.shared.config_path.clone();
        let username = self.user.username.clone();
        let result = config::update_user(&path, &username, |entry| {
            entry.insert("is_prime_or_turbo".into(), serde_json::Value::Bool(false));
        });
        match result {
            Ok(()) => log!(Info, self.name(), None, "saved \"is_prime_or_turbo\": false to {}", path.display()),
            Err(e) => log!(Error, self.name(), None, "could not save \"is_prime_or_turbo\": false ({e}); the bot will try hex colors again after a restart"),
        }
    }
}

/// How a connection ended.
enum ConnEnd {
    Closed(CloseReason),
    Eof,
    Io(String),
}

impl std::fmt::Display for ConnEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnEnd::Closed(reason) => write!(f, "{reason}"),
            ConnEnd::Eof => f.write_str("server closed the connection"),
            ConnEnd::Io(e) => f.write_str(e),
        }
    }
}

fn is_unauthorized(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 401, .. })
}

fn describe(e: &ApiError) -> String {
    if is_unauthorized(e) {
        format!("{e} (the access token or client id was refused)")
    } else {
        e.to_string()
    }
}
