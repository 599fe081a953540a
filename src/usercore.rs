//! One user's decisions, free of I/O (in the shape of quinn-proto's `Connection`): chat
//! events, Helix answers, token refreshes, config updates and chat commands go in with
//! `now`; actions for the driver (look the user up, connect, join, part, set a color,
//! refresh the token, persist a field) and one deadline come out. The driver in
//! [`crate::user`] only performs the actions and reports how they ended.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use nanorand::{Rng, WyRand};

use crate::backoff::Backoff;
use crate::bot::{BotEvent, Change, ColorBot, Outcome};
use crate::chat::{self, CloseReason, Protocol};
use crate::color::Typed;
use crate::command::{self, Command};
use crate::config::UserConfig;
use crate::log;
use crate::mode;
use crate::timer::Timers;
use crate::tokens::{Purpose, RenewError};

/// A chat connection that stayed logged in this long resets the reconnect backoff.
pub const HEALTHY: Duration = Duration::from_secs(30);
/// Longest wait for a rate-limit bucket to refill.
pub const MAX_RATE_WAIT: Duration = Duration::from_secs(60);

/// After a renewed token was refused all the same, a 401 does not renew it again for this long.
pub const NO_RENEWAL_AFTER_USELESS: Duration = Duration::from_secs(600);

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Find the token owner's id and current color; report with [`UserCore::handle_lookup`].
    LookUpUser,
    /// Open a chat session with [`UserCore::channels`]; report its events with
    /// [`UserCore::handle_chat`] and a lost connection with [`UserCore::handle_disconnected`].
    Connect,
    /// Join this channel on the live chat session.
    Join(String),
    /// Leave this channel on the live chat session.
    Part(String),
    /// `PUT /chat/color`; report with [`UserCore::handle_put`].
    SetColor(String),
    /// The token was refused: refresh it; report with [`UserCore::handle_refreshed`].
    RefreshToken(Purpose),
    /// Write this field to the user's entry in the config file.
    Persist(Field),
}

/// A config field the bot changes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `"enabled"` (chat commands `ccd` / `cce`).
    Enabled(bool),
    /// `"is_prime_or_turbo"` (a hex color refused, a named one taken).
    PrimeOrTurbo(bool),
    /// `"color_mode"` (chat command `ccm`).
    ColorMode(mode::Kind),
}

/// The token owner, as Helix reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub id: String,
    /// Login.
    pub login: String,
    /// The color in use; `Err` with the reason when it could not be read.
    pub color: Result<Option<String>, String>,
}

/// Why a Helix call failed, as far as the core needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401, with Twitch's message.
    Unauthorized(String),
    /// Anything else, described.
    Other(String),
}

/// How a `PUT /chat/color` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutResult {
    /// 204.
    Done,
    /// An error status, Twitch's message, and for 429 how long until the bucket refills.
    Status {
        /// The HTTP status.
        status: u16,
        /// Twitch's message.
        message: String,
        /// Until the rate-limit bucket refills, when Twitch said.
        retry_after: Option<Duration>,
    },
    /// No answer (network, bad body), described.
    Failed(String),
}

/// Where the user stands, for the status file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Looking up the user.
    Starting,
    /// Opening a chat connection.
    Connecting,
    /// In chat, changing colors.
    Connected,
    /// In chat, automatic changes off.
    Disabled,
    /// Chat lost; waiting to reconnect.
    Reconnecting,
    /// Not connected: none of the channels can be read (until the config changes).
    Idle,
}

impl State {
    /// The name used in the status file.
    pub fn name(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Connecting => "connecting",
            State::Connected => "connected",
            State::Disabled => "disabled",
            State::Reconnecting => "reconnecting",
            State::Idle => "idle",
        }
    }
}

/// What survives a restart of the user (a reload that changed its credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Successful color changes.
    pub changes: u64,
    /// Own chat messages seen.
    pub messages: u64,
    /// When the last change succeeded.
    pub last_change_at: Option<Instant>,
    /// The last thing that went wrong.
    pub last_error: Option<String>,
}

/// A snapshot for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where the user stands.
    pub state: State,
    /// Automatic changes on.
    pub enabled: bool,
    /// Hex colors in use.
    pub prime_or_turbo: bool,
    /// Channels joined (confirmed by the server), sorted.
    pub joined: Vec<String>,
    /// The color in use, as far as known.
    pub color: Option<String>,
    /// Counters.
    pub counters: Counters,
    /// Since when chat has been down (`None` while connected).
    pub chat_down_since: Option<Instant>,
    /// How chat is read.
    pub transport: Protocol,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chat {
    /// No user id yet: not connecting.
    Idle,
    /// A session is being opened or is logging in.
    Connecting,
    /// Logged in since then.
    Ready(Instant),
    /// Waiting for the reconnect timer.
    Waiting,
    /// Waiting for a token refresh before reconnecting.
    Refreshing,
    /// Nothing to read (EventSub: no channel exists): not connecting until the config changes.
    Parked,
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    /// Look the user up again, or reconnect.
    Retry = 0,
    /// Send the color change held back by a 429.
    Change = 1,
}

impl crate::timer::Kind for Timer {
    fn index(self) -> usize {
        self as usize
    }
}

/// The color change in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Putting {
    color: String,
    /// Already sent again after a token renewal (a second 401 is not renewed again).
    retried: bool,
}

/// One user's state: chat, color changes, commands, counters.
pub struct UserCore {
    name: String,
    channels: Vec<String>,
    transport: Protocol,
    bot: ColorBot,
    rng: WyRand,
    identity: Option<Identity>,
    chat: Chat,
    joined: BTreeSet<String>,
    backoff: Backoff,
    lookup_refreshed: bool,
    /// The color being PUT, and whether it was already retried after a refresh.
    putting: Option<Putting>,
    /// A color held back by a 429, sent when [`Timer::Change`] fires.
    held: Option<String>,
    last_channel: Option<String>,
    timers: Timers<Timer, 2>,
    actions: VecDeque<Action>,
    counters: Counters,
    chat_down_since: Option<Instant>,
    /// When a renewed token was refused all the same (see [`NO_RENEWAL_AFTER_USELESS`]).
    useless_renewal: Option<Instant>,
}

impl UserCore {
    /// A core for `user`, carrying `counters` over from an earlier run, seeded for tests.
    pub fn new(now: Instant, user: &UserConfig, counters: Counters, seed: u64) -> UserCore {
        let mut bot = ColorBot::new(user.is_prime_or_turbo, user.enabled, None);
        bot.set_colors(user.colors.clone());
        let core = UserCore {
            name: user.username.clone(),
            channels: user.channels.clone(),
            transport: user.chat_transport.unwrap_or_default(),
            bot,
            rng: WyRand::new_seed(seed),
            identity: None,
            chat: Chat::Idle,
            joined: BTreeSet::new(),
            backoff: Backoff::default(),
            lookup_refreshed: false,
            putting: None,
            held: None,
            last_channel: None,
            timers: Timers::default(),
            actions: VecDeque::from([Action::LookUpUser]),
            counters,
            chat_down_since: Some(now),
            useless_renewal: None,
        };
        core.log_start();
        core
    }

    fn who(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn jitter(&mut self) -> f64 {
        f64::from(self.rng.generate_range(0u32..1000)) / 1000.0
    }

    fn log_start(&self) {
        let mode = self.bot.colors().describe(self.bot.prime_or_turbo());
        let auto = if self.bot.enabled() {
            ""
        } else {
            "; automatic changes disabled (\"enabled\": false)"
        };
        log!(
            Info,
            self.who(),
            None,
            "starting: channels {}; {mode}; chat over {}{auto}",
            hashed(&self.channels),
            self.transport.display_name()
        );
    }

    /// The channels to join when connecting.
    pub fn channels(&self) -> &[String] {
        &self.channels
    }

    /// How chat is read (the driver opens this kind of session on [`Action::Connect`]).
    pub fn transport(&self) -> Protocol {
        self.transport
    }

    /// The user id, once looked up.
    pub fn user_id(&self) -> Option<&str> {
        self.identity.as_ref().map(|i| i.id.as_str())
    }

    fn error(&mut self, why: String) {
        self.counters.last_error = Some(why);
    }

    /// The user lookup ended.
    pub fn handle_lookup(&mut self, now: Instant, result: Result<Identity, Failure>) {
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
            Err(Failure::Unauthorized(_)) if !self.lookup_refreshed => {
                self.lookup_refreshed = true;
                self.actions
                    .push_back(Action::RefreshToken(Purpose::Lookup));
            }
            Err(failure) => {
                let why = match failure {
                    Failure::Unauthorized(m) => {
                        self.backoff.saturate();
                        format!("HTTP 401: {m} (the access token or client id was refused)")
                    }
                    Failure::Other(m) => m,
                };
                self.retry_lookup(now, why);
            }
        }
    }

    fn retry_lookup(&mut self, now: Instant, why: String) {
        let jitter = self.jitter();
        let wait = self.backoff.next_delay(jitter);
        log!(
            Error,
            self.who(),
            None,
            "cannot look up the user id: {why}; retrying in {:.1}s",
            wait.as_secs_f64()
        );
        self.error(format!("cannot look up the user id: {why}"));
        self.timers.set(Timer::Retry, Some(now + wait));
    }

    fn connect(&mut self) {
        self.chat = Chat::Connecting;
        self.actions.push_back(Action::Connect);
    }

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
                self.error(why);
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
                self.error(why);
            }
        }
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
            chat::Event::OwnMessage { channel, text } => self.own_message(now, channel, &text),
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
                self.error(format!("#{channel}: {why}"));
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
                self.error(why.to_owned());
            }
            chat::Event::Closed(reason) => {
                let routine = reason == CloseReason::Reconnect;
                self.handle_disconnected(now, &reason.to_string(), routine)
            }
        }
    }

    fn chat_lost(&mut self, now: Instant) {
        if let Chat::Ready(since) = self.chat {
            if now.duration_since(since) >= HEALTHY {
                self.backoff.reset();
            }
        }
        self.joined.clear();
        self.chat_down_since.get_or_insert(now);
    }

    /// The chat connection failed or ended (`routine`: the server asked for it).
    pub fn handle_disconnected(&mut self, now: Instant, why: &str, routine: bool) {
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
            self.error(format!("chat: {why}"));
        }
        let wait = self.wait_to_reconnect(now);
        log!(
            Warn,
            self.who(),
            None,
            "chat connection ended{lived}: {why}; reconnecting in {:.1}s",
            wait.as_secs_f64()
        );
    }

    fn reconnect_later(&mut self, now: Instant) {
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
    fn wait_to_reconnect(&mut self, now: Instant) -> Duration {
        let jitter = self.jitter();
        let wait = self.backoff.next_delay(jitter);
        self.chat = Chat::Waiting;
        self.timers.set(Timer::Retry, Some(now + wait));
        wait
    }

    fn own_message(&mut self, now: Instant, channel: String, text: &str) {
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

    fn start_change(&mut self, now: Instant, change: Change) {
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

    /// The color change asked for with [`Action::SetColor`] ended.
    pub fn handle_put(&mut self, now: Instant, result: PutResult) {
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
            PutResult::Done => Outcome::Done,
            PutResult::Status { status: 401, .. } if !retried && renewal_helps => {
                self.actions.push_back(Action::RefreshToken(Purpose::Color));
                return;
            }
            PutResult::Status {
                status: 401,
                message,
                ..
            } => {
                if retried {
                    self.useless_renewal = Some(now);
                }
                Outcome::Unauthorized(format!(
                    "{} even with a freshly renewed token: a missing scope, or a client id that does not match the token",
                    log::quoted(&message)
                ))
            }
            PutResult::Status {
                status: 400,
                message,
                ..
            } => Outcome::Rejected(message),
            PutResult::Status {
                status: 429,
                retry_after,
                ..
            } => Outcome::RateLimited(Some(retry_after.unwrap_or(Duration::from_secs(1)))),
            PutResult::Status {
                status, message, ..
            } => Outcome::Failed(format!("HTTP {status}: {message}")),
            PutResult::Failed(why) => Outcome::Failed(why),
        };
        self.putting = None;
        self.finish(now, outcome);
    }

    fn finish(&mut self, now: Instant, outcome: Outcome) {
        let next = self.bot.on_outcome(outcome, &mut self.rng);
        let chan = self.last_channel.clone();
        let chan = chan.as_deref();
        while let Some(event) = self.bot.poll_event() {
            match event {
                BotEvent::Changed { old, new } => {
                    self.counters.changes += 1;
                    self.counters.last_change_at = Some(now);
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
                    self.error(why);
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
                    self.error(why);
                }
                BotEvent::Unauthorized(why) => {
                    let why = format!("Twitch refused the access token: {why}");
                    log!(Error, self.who(), chan, "color not changed: {why}");
                    self.error(why);
                }
            }
        }
        if let Some(change) = next {
            self.start_change(now, change);
        }
    }

    /// The person edited this user's settings (channels, `enabled`, `is_prime_or_turbo`):
    /// applied in place, joining and leaving channels on the live session.
    pub fn handle_config(&mut self, user: &UserConfig) {
        let added: Vec<String> = user
            .channels
            .iter()
            .filter(|c| !self.channels.contains(c))
            .cloned()
            .collect();
        let removed: Vec<String> = self
            .channels
            .iter()
            .filter(|c| !user.channels.contains(c))
            .cloned()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            log!(
                Info,
                self.who(),
                None,
                "channels now {} (joining {}, leaving {})",
                hashed(&user.channels),
                or_none(&added),
                or_none(&removed)
            );
            self.channels = user.channels.clone();
            if matches!(self.chat, Chat::Connecting | Chat::Ready(_)) {
                self.actions.extend(added.into_iter().map(Action::Join));
                self.actions.extend(removed.into_iter().map(Action::Part));
            } else if self.chat == Chat::Parked && !added.is_empty() {
                self.connect();
            }
        }
        let transport = user.chat_transport.unwrap_or_default();
        if transport != self.transport {
            self.transport = transport;
            let live = matches!(self.chat, Chat::Connecting | Chat::Ready(_));
            let when = if live {
                "now"
            } else {
                "from the next connection"
            };
            log!(
                Info,
                self.who(),
                None,
                "chat over {} {when} (config file)",
                transport.display_name()
            );
            if live || self.chat == Chat::Parked {
                // only the chat side restarts: the old session goes when the driver connects
                self.joined.clear();
                self.connect();
            }
        }
        if user.colors != *self.bot.colors() {
            self.bot.set_colors(user.colors.clone());
            let what = user.colors.describe(user.is_prime_or_turbo);
            log!(Info, self.who(), None, "colors now {what} (config file)");
        }
        if user.enabled != self.bot.enabled() {
            self.bot.set_enabled(user.enabled);
            let what = if user.enabled { "enabled" } else { "disabled" };
            log!(
                Info,
                self.who(),
                None,
                "automatic color changes {what} (config file)"
            );
        }
        if user.is_prime_or_turbo != self.bot.prime_or_turbo() {
            self.bot.set_prime_or_turbo(user.is_prime_or_turbo);
            let what = if user.is_prime_or_turbo {
                "random hex colors"
            } else {
                "named colors"
            };
            log!(Info, self.who(), None, "using {what} (config file)");
        }
    }

    /// The token keeper has a new token (a refresh, or the device flow someone just
    /// completed): a reconnect or lookup waiting out the backoff that refused tokens built
    /// up is tried now.
    pub fn handle_token_renewed(&mut self, now: Instant) {
        let waiting = self.chat == Chat::Waiting || self.identity.is_none();
        if waiting && self.timers.get(Timer::Retry).is_some() {
            log!(Info, self.who(), None, "new token: trying again now");
            self.backoff.reset();
            self.timers.set(Timer::Retry, Some(now));
        }
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers.is_due(Timer::Retry, now) {
            self.timers.set(Timer::Retry, None);
            if self.identity.is_none() {
                self.lookup_refreshed = false;
                self.actions.push_back(Action::LookUpUser);
            } else {
                self.connect();
            }
        }
        if self.timers.is_due(Timer::Change, now) {
            self.timers.set(Timer::Change, None);
            if let Some(color) = self.held.take() {
                self.start_change(now, Change { color, after: None });
            }
        }
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`UserCore::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Where the user stands.
    pub fn status(&self) -> Status {
        let state = match self.chat {
            Chat::Idle if self.identity.is_none() => State::Starting,
            Chat::Idle | Chat::Connecting => State::Connecting,
            Chat::Ready(_) if self.bot.enabled() => State::Connected,
            Chat::Ready(_) => State::Disabled,
            Chat::Waiting | Chat::Refreshing => State::Reconnecting,
            Chat::Parked => State::Idle,
        };
        Status {
            state,
            enabled: self.bot.enabled(),
            prime_or_turbo: self.bot.prime_or_turbo(),
            joined: self.joined.iter().cloned().collect(),
            color: self.bot.current().map(str::to_owned),
            counters: self.counters.clone(),
            chat_down_since: self.chat_down_since,
            transport: self.transport,
        }
    }
}

fn hashed(channels: &[String]) -> String {
    channels
        .iter()
        .map(|c| format!("#{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn or_none(channels: &[String]) -> String {
    if channels.is_empty() {
        "none".into()
    } else {
        hashed(channels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::color;
    use crate::secret::Secret;

    fn user(channels: &[&str], prime: bool) -> UserConfig {
        UserConfig {
            username: "HueShift_Bot".into(),
            access_token: Secret::new("t"),
            refresh_token: Secret::default(),
            client_id: "cid".into(),
            client_secret: Secret::default(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            is_prime_or_turbo: prime,
            enabled: true,
            token_expiry: None,
            chat_transport: None,
            colors: Default::default(),
        }
    }

    fn actions(core: &mut UserCore) -> Vec<Action> {
        std::iter::from_fn(|| core.poll_action()).collect()
    }

    fn me() -> Identity {
        Identity {
            id: "81234567".into(),
            login: "hueshift_bot".into(),
            color: Ok(Some("#1E90FF".into())),
        }
    }

    /// A core that has looked itself up and is in chat.
    fn ready(t: Instant, channels: &[&str], prime: bool) -> UserCore {
        let mut core = UserCore::new(t, &user(channels, prime), Counters::default(), 7);
        assert_eq!(actions(&mut core), [Action::LookUpUser]);
        core.handle_lookup(t, Ok(me()));
        assert_eq!(actions(&mut core), [Action::Connect]);
        assert_eq!(core.status().state, State::Connecting);
        core.handle_chat(t, chat::Event::Ready);
        for c in channels {
            core.handle_chat(t, chat::Event::Joined(c.to_string()));
        }
        core
    }

    fn say(core: &mut UserCore, t: Instant, text: &str) {
        core.handle_chat(
            t,
            chat::Event::OwnMessage {
                channel: "lumenwave".into(),
                text: text.into(),
            },
        );
    }

    fn set_color(action: &Action) -> &str {
        match action {
            Action::SetColor(c) => c,
            other => panic!("expected SetColor, got {other:?}"),
        }
    }

    #[test]
    fn own_message_sets_a_new_color_and_counts() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], true);
        assert_eq!(core.status().state, State::Connected);
        say(&mut core, t, "hello");
        let acts = actions(&mut core);
        let color = set_color(&acts[0]).to_owned();
        assert!(color::is_hex(&color) && !color::same(&color, "#1E90FF"));
        core.handle_put(t + Duration::from_millis(5), PutResult::Done);
        let s = core.status();
        assert_eq!(s.color.as_deref(), Some(color.as_str()));
        assert_eq!((s.counters.changes, s.counters.messages), (1, 1), "{s:?}");
        assert_eq!(
            s.counters.last_change_at,
            Some(t + Duration::from_millis(5))
        );
        assert_eq!(s.joined, ["lumenwave"]);
    }

    #[test]
    fn a_401_refreshes_the_token_and_retries_once() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, "hi");
        let color = set_color(&actions(&mut core)[0]).to_owned();
        let refused = PutResult::Status {
            status: 401,
            message: "Invalid OAuth token".into(),
            retry_after: None,
        };
        core.handle_put(t, refused.clone());
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
        core.handle_refreshed(t, Purpose::Color, Ok(()));
        assert_eq!(actions(&mut core), [Action::SetColor(color)]);
        // refused again: given up, not refreshed in a loop
        core.handle_put(t, refused.clone());
        assert_eq!(actions(&mut core), []);
        assert!(core
            .status()
            .counters
            .last_error
            .unwrap()
            .contains("even with a freshly renewed token"));
        // a renewal Twitch refuses is said as such
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, "hi");
        actions(&mut core);
        core.handle_put(t, refused);
        actions(&mut core);
        core.handle_refreshed(
            t,
            Purpose::Color,
            Err(RenewError::Refused("Invalid refresh token".into())),
        );
        assert_eq!(
            core.status().counters.last_error.unwrap(),
            "Twitch refused the access token: it could not be renewed (Invalid refresh token)"
        );
    }

    #[test]
    fn a_token_refused_even_after_renewal_is_not_renewed_again_for_a_while() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        let refused = || PutResult::Status {
            status: 401,
            message: "Missing scope: user:manage:chat_color".into(),
            retry_after: None,
        };
        say(&mut core, t, "hi");
        actions(&mut core);
        core.handle_put(t, refused());
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
        core.handle_refreshed(t, Purpose::Color, Ok(()));
        actions(&mut core);
        core.handle_put(t, refused());
        let error = core.status().counters.last_error.unwrap();
        assert!(
            error.contains("Missing scope") && error.contains("even with a freshly renewed token"),
            "{error}"
        );
        assert!(!error.contains("could not be renewed"), "{error}");
        // the next message: no renewal, the same honest error
        let t1 = t + Duration::from_secs(60);
        say(&mut core, t1, "again");
        actions(&mut core);
        core.handle_put(t1, refused());
        assert_eq!(actions(&mut core), []);
        // ten minutes later a renewal is worth one more try
        let t2 = t + NO_RENEWAL_AFTER_USELESS;
        say(&mut core, t2, "later");
        actions(&mut core);
        core.handle_put(t2, refused());
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
    }

    #[test]
    fn an_unreachable_token_endpoint_is_not_called_a_refusal() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, "hi");
        actions(&mut core);
        core.handle_put(
            t,
            PutResult::Status {
                status: 401,
                message: "Invalid OAuth token".into(),
                retry_after: None,
            },
        );
        actions(&mut core);
        core.handle_refreshed(
            t,
            Purpose::Color,
            Err(RenewError::Unavailable("HTTP 503: upstream down".into())),
        );
        let error = core.status().counters.last_error.unwrap();
        assert_eq!(
            error,
            "Twitch no longer takes the access token, and renewing it failed for now (HTTP 503: upstream down)"
        );
        // chat: an outage is not a refusal either, so the backoff is not pushed to its cap
        core.handle_chat(
            t,
            chat::Event::Closed(CloseReason::AuthFailed(
                "Login authentication failed".into(),
            )),
        );
        actions(&mut core);
        core.handle_refreshed(
            t,
            Purpose::Chat,
            Err(RenewError::Unavailable("timeout".into())),
        );
        assert!(core.poll_timeout().unwrap() - t <= Duration::from_secs(2));
    }

    #[test]
    fn a_429_waits_for_the_bucket_on_the_clock() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, "hi");
        let color = set_color(&actions(&mut core)[0]).to_owned();
        core.handle_put(
            t,
            PutResult::Status {
                status: 429,
                message: "Too Many Requests".into(),
                retry_after: Some(Duration::from_secs(7)),
            },
        );
        assert_eq!(actions(&mut core), []);
        assert_eq!(core.poll_timeout(), Some(t + Duration::from_secs(7)));
        core.handle_timeout(t + Duration::from_secs(6));
        assert_eq!(actions(&mut core), []);
        core.handle_timeout(t + Duration::from_secs(7));
        assert_eq!(actions(&mut core), [Action::SetColor(color)]);
    }

    #[test]
    fn a_429_without_a_reset_header_waits_a_second() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, "hi");
        actions(&mut core);
        core.handle_put(
            t,
            PutResult::Status {
                status: 429,
                message: "Too Many Requests".into(),
                retry_after: None,
            },
        );
        assert_eq!(core.poll_timeout(), Some(t + Duration::from_secs(1)));
    }

    #[test]
    fn chat_commands_switch_persist_and_set_colors() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], false);
        say(&mut core, t, " CCD ");
        assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(false))]);
        assert_eq!(core.status().state, State::Disabled);
        say(&mut core, t, "now nothing changes");
        assert_eq!(actions(&mut core), []);
        // ccc works while disabled; hex is refused without Turbo/Prime; junk is ignored
        say(&mut core, t, "ccc Sea_Green");
        assert_eq!(actions(&mut core), [Action::SetColor("sea_green".into())]);
        core.handle_put(t, PutResult::Done);
        for ignored in ["ccc #a1b2c3", "ccc", "ccc red blue", "ccc purple"] {
            say(&mut core, t, ignored);
            assert_eq!(actions(&mut core), [], "{ignored}");
        }
        say(&mut core, t, "cce");
        assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(true))]);
        say(&mut core, t, "cccombo");
        assert!(matches!(actions(&mut core)[..], [Action::SetColor(_)]));
        assert_eq!(core.status().counters.messages, 9);
    }

    #[test]
    fn ccm_switches_the_color_mode_and_persists_it() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], true);
        say(&mut core, t, "ccm rainbow");
        assert_eq!(
            actions(&mut core),
            [Action::Persist(Field::ColorMode(mode::Kind::Rainbow))]
        );
        // the next own message moves the hue on by 30° from the color in use (#1E90FF, 210°)
        say(&mut core, t, "hello");
        let first = set_color(&actions(&mut core)[0]).to_owned();
        assert_eq!(mode::hue_of(&first), Some(240));
        core.handle_put(t, PutResult::Done);
        say(&mut core, t, "again");
        assert_eq!(mode::hue_of(set_color(&actions(&mut core)[0])), Some(270));
        // no palette in the config: ccm palette is refused; junk is ignored
        for ignored in ["ccm palette", "ccm gradient", "ccm"] {
            say(&mut core, t, ignored);
            assert_eq!(actions(&mut core), [], "{ignored}");
        }
        let mut edited = user(&["lumenwave"], true);
        edited.colors = mode::Settings {
            kind: mode::Kind::Palette,
            palette: vec!["red".into(), "blue".into()],
            ..mode::Settings::default()
        };
        core.handle_config(&edited);
        assert_eq!(core.bot.colors().kind, mode::Kind::Palette);
    }

    #[test]
    fn prime_users_may_ask_for_hex() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], true);
        say(&mut core, t, "ccc abc");
        assert_eq!(actions(&mut core), [Action::SetColor("#aabbcc".into())]);
    }

    #[test]
    fn a_refused_hex_color_persists_named_colors() {
        let t = Instant::now();
        let mut core = ready(t, &["lumenwave"], true);
        say(&mut core, t, "x");
        actions(&mut core);
        let rejected = PutResult::Status {
            status: 400,
            message: "invalid color".into(),
            retry_after: None,
        };
        core.handle_put(t, rejected);
        let named = set_color(&actions(&mut core)[0]).to_owned();
        assert!(!color::is_hex(&named));
        core.handle_put(t, PutResult::Done);
        assert_eq!(
            actions(&mut core),
            [Action::Persist(Field::PrimeOrTurbo(false))]
        );
        assert!(!core.status().prime_or_turbo);
    }

    #[test]
    fn lost_chat_reconnects_with_backoff_reset_after_a_healthy_connection() {
        let t = Instant::now();
        let mut core = ready(t, &["a"], true);
        core.handle_disconnected(t + Duration::from_secs(5), "read failed", false);
        assert_eq!(core.status().state, State::Reconnecting);
        assert_eq!(
            core.status().chat_down_since,
            Some(t + Duration::from_secs(5))
        );
        let first = core.poll_timeout().unwrap() - (t + Duration::from_secs(5));
        assert!(first <= Duration::from_secs(1), "{first:?}");
        let t1 = t + Duration::from_secs(6);
        core.handle_timeout(t1);
        assert_eq!(actions(&mut core), [Action::Connect]);
        // a connect failure: the next wait is longer
        core.handle_disconnected(t1, "cannot connect", false);
        let second = core.poll_timeout().unwrap() - t1;
        assert!(second >= Duration::from_secs(1), "{second:?}");
        core.handle_timeout(t1 + second);
        actions(&mut core);
        // a connection that stayed up 30 s resets the backoff
        let t2 = t1 + second;
        core.handle_chat(t2, chat::Event::Ready);
        assert_eq!(core.status().chat_down_since, None);
        let t3 = t2 + HEALTHY;
        core.handle_chat(t3, chat::Event::Closed(CloseReason::Reconnect));
        assert!(core.poll_timeout().unwrap() - t3 <= Duration::from_secs(1));
        assert_eq!(
            core.status().counters.last_error.as_deref(),
            Some("chat: cannot connect")
        );
    }

    #[test]
    fn refused_chat_login_refreshes_then_reconnects() {
        let t = Instant::now();
        let mut core = ready(t, &["a"], true);
        core.handle_chat(
            t,
            chat::Event::Closed(CloseReason::AuthFailed(
                "Login authentication failed".into(),
            )),
        );
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Chat)]);
        assert_eq!(core.poll_timeout(), None);
        core.handle_refreshed(
            t,
            Purpose::Chat,
            Err(RenewError::StillValid(
                "valid, refused for another reason".into(),
            )),
        );
        // a failed refresh waits the longest backoff step before trying again
        assert!(core.poll_timeout().unwrap() - t >= Duration::from_secs(90));
    }

    #[test]
    fn a_renewed_token_reconnects_at_once_whatever_the_backoff_was() {
        let t = Instant::now();
        let mut core = ready(t, &["a"], true);
        let refused = || {
            chat::Event::Closed(CloseReason::AuthFailed(
                "Login authentication failed".into(),
            ))
        };
        core.handle_chat(t, refused());
        actions(&mut core);
        core.handle_refreshed(
            t,
            Purpose::Chat,
            Err(RenewError::StillValid("valid".into())),
        );
        let at = core.poll_timeout().unwrap();
        assert!(at - t >= Duration::from_secs(90), "saturated");
        core.handle_timeout(at);
        assert_eq!(actions(&mut core), [Action::Connect]);
        // refused again; this time a new token comes (a refresh, or the device flow for a
        // missing scope): the bot tries it within the first backoff step, not minutes later
        core.handle_chat(at, refused());
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Chat)]);
        let renewed = at + Duration::from_secs(120);
        core.handle_refreshed(renewed, Purpose::Chat, Ok(()));
        assert!(core.poll_timeout().unwrap() - renewed <= Duration::from_secs(1));
    }

    #[test]
    fn a_token_from_the_device_flow_ends_the_wait_for_chat() {
        let t = Instant::now();
        let mut core = ready(t, &["a"], true);
        // EventSub's 403 for a missing scope: the refresh is refused, the device flow starts
        // in the token keeper, and chat waits the longest step
        core.handle_chat(
            t,
            chat::Event::Closed(CloseReason::AuthFailed("lacks user:read:chat".into())),
        );
        actions(&mut core);
        core.handle_refreshed(
            t,
            Purpose::Chat,
            Err(RenewError::Refused("lacks the scope".into())),
        );
        assert!(core.poll_timeout().unwrap() - t >= Duration::from_secs(90));
        let approved = t + Duration::from_secs(40);
        core.handle_token_renewed(approved);
        assert_eq!(core.poll_timeout(), Some(approved));
        core.handle_timeout(approved);
        assert_eq!(actions(&mut core), [Action::Connect]);
        // a renewal while chat is fine changes nothing
        core.handle_chat(approved, chat::Event::Ready);
        core.handle_token_renewed(approved);
        assert_eq!(core.poll_timeout(), None);
    }

    #[test]
    fn nothing_to_read_parks_chat_until_the_channels_change() {
        let t = Instant::now();
        let mut core = ready(t, &["typo"], true);
        core.handle_chat(t, chat::Event::Closed(CloseReason::NothingToRead));
        // no reconnect loop (Twitch would close a socket without subscriptions every time),
        // and not "down": the config names nothing readable, and says so
        assert_eq!(core.poll_timeout(), None);
        assert!(actions(&mut core).is_empty());
        let status = core.status();
        assert_eq!(status.state, State::Idle);
        assert_eq!(status.chat_down_since, None);
        assert!(status
            .counters
            .last_error
            .is_some_and(|e| e.contains("no such channel")));
        // a token renewal changes nothing; an edit that only removes does not either
        core.handle_token_renewed(t);
        assert_eq!(core.poll_timeout(), None);
        // a new channel: connect again
        core.handle_config(&user(&["typo", "lumenwave"], true));
        assert_eq!(actions(&mut core), [Action::Connect]);
        assert_eq!(core.status().state, State::Connecting);
    }

    #[test]
    fn lookup_failures_retry_and_a_401_refreshes_once() {
        let t = Instant::now();
        let mut core = UserCore::new(t, &user(&["a"], true), Counters::default(), 1);
        actions(&mut core);
        assert_eq!(core.status().state, State::Starting);
        core.handle_lookup(t, Err(Failure::Unauthorized("Invalid OAuth token".into())));
        assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Lookup)]);
        core.handle_refreshed(t, Purpose::Lookup, Ok(()));
        assert_eq!(actions(&mut core), [Action::LookUpUser]);
        core.handle_lookup(t, Err(Failure::Other("HTTP 503: down".into())));
        let at = core.poll_timeout().unwrap();
        core.handle_timeout(at);
        assert_eq!(actions(&mut core), [Action::LookUpUser]);
        core.handle_lookup(at, Ok(me()));
        assert_eq!(actions(&mut core), [Action::Connect]);
    }

    #[test]
    fn config_edits_join_and_part_on_the_live_session_and_apply_flags() {
        let t = Instant::now();
        let mut core = ready(t, &["a", "b"], true);
        let mut edited = user(&["b", "c"], false);
        edited.enabled = false;
        core.handle_config(&edited);
        assert_eq!(
            actions(&mut core),
            [Action::Join("c".into()), Action::Part("a".into())]
        );
        let s = core.status();
        assert!(!s.enabled && !s.prime_or_turbo);
        assert_eq!(core.channels(), ["b", "c"]);
        // the same config again changes nothing
        core.handle_config(&edited);
        assert_eq!(actions(&mut core), []);
        // while chat is down the list is only remembered for the next connection
        core.handle_disconnected(t, "gone", false);
        core.handle_config(&user(&["d"], false));
        assert_eq!(actions(&mut core), []);
        assert_eq!(core.channels(), ["d"]);
    }

    #[test]
    fn a_transport_switch_reconnects_chat_only_and_waits_while_chat_is_down() {
        let t = Instant::now();
        let mut core = ready(t, &["a"], true);
        assert_eq!(core.status().transport, Protocol::Irc);
        let mut edited = user(&["a"], true);
        edited.chat_transport = Some(Protocol::EventSub);
        core.handle_config(&edited);
        // no lookup, no refresh: a new chat session of the other kind
        assert_eq!(actions(&mut core), [Action::Connect]);
        let s = core.status();
        assert_eq!(
            (s.transport, s.state),
            (Protocol::EventSub, State::Connecting)
        );
        assert!(s.joined.is_empty());
        assert_eq!(core.transport(), Protocol::EventSub);
        // while chat is down, the next connection simply uses the new one
        core.handle_disconnected(t, "gone", false);
        core.handle_config(&user(&["a"], true));
        assert_eq!(actions(&mut core), []);
        assert_eq!(core.transport(), Protocol::Irc);
    }

    #[test]
    fn counters_carry_over() {
        let t = Instant::now();
        let carried = Counters {
            changes: 4,
            messages: 9,
            last_change_at: Some(t),
            last_error: None,
        };
        let core = UserCore::new(t, &user(&["a"], true), carried.clone(), 1);
        assert_eq!(core.status().counters, carried);
    }
}
