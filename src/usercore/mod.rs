//! One user's decisions, free of I/O (in the shape of quinn-proto's `Connection`): chat
//! events, Helix answers, token refreshes, config updates and chat commands go in with
//! `now`; actions for the driver (look the user up, connect, join, part, set a color,
//! refresh the token, persist a field) and one deadline come out. The driver in
//! [`crate::user`] only performs the actions and reports how they ended.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nanorand::{Rng, WyRand};

use crate::answer::ApiError;
use crate::backoff::Backoff;
use crate::bot::{Change, ColorBot};
use crate::chat::Protocol;
use crate::config::user::UserConfig;
use crate::log;
use crate::mode;
use crate::timer::Timers;

mod chat_side;
mod colors;
mod edits;
mod seen;
use crate::tokens::Purpose;
use seen::SeenMessages;

/// A chat connection that stayed logged in this long resets the reconnect backoff.
pub(crate) const HEALTHY: Duration = Duration::from_secs(30);
/// Longest wait for a rate-limit bucket to refill.
pub(crate) const MAX_RATE_WAIT: Duration = Duration::from_secs(60);

/// After a renewed token was refused all the same, a 401 does not renew it again for this long.
pub(crate) const NO_RENEWAL_AFTER_USELESS: Duration = Duration::from_secs(600);

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

impl Field {
    /// The config file's key and value for this field.
    pub fn entry(self) -> (&'static str, serde_json::Value) {
        match self {
            Field::Enabled(on) => ("enabled", on.into()),
            Field::PrimeOrTurbo(on) => ("is_prime_or_turbo", on.into()),
            Field::ColorMode(kind) => ("color_mode", kind.name().into()),
        }
    }
}

/// The token owner, as Helix reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub id: String,
    /// Login.
    pub login: String,
    /// The color in use; `Err` with the reason when it could not be read.
    pub color: Result<Option<String>, ApiError>,
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
    /// Errors, by what failed.
    pub errors: Errors,
    /// Chat connections lost after they were up.
    pub reconnects: u64,
    /// The last [`RECENT_COLORS`] colors set, oldest first, with when. Shared strings: the
    /// counters are copied into every status report, about two per message, and 20 owned
    /// strings were 40 of the 167 allocations a color change made (2026-12-07).
    pub recent: VecDeque<(Arc<str>, Instant)>,
}

/// How many colors [`Counters::recent`] keeps (the status page shows them).
pub const RECENT_COLORS: usize = 20;

/// Errors counted by what failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Errors {
    /// Looking up the user id or color.
    pub lookup: u64,
    /// Chat: a lost connection, a channel that cannot be read.
    pub chat: u64,
    /// Setting a color.
    pub color: u64,
    /// The token: refused, or renewing it failed.
    pub token: u64,
}

/// What an error was about, for [`Errors`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    Lookup,
    Chat,
    Color,
    Token,
}

/// A snapshot for status reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Where the user stands.
    pub state: State,
    /// Automatic changes on.
    pub enabled: bool,
    /// Hex colors in use.
    pub(crate) prime_or_turbo: bool,
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

crate::timer::timers! {
    enum Timer {
        /// Look the user up again, or reconnect.
        Retry,
        /// Send the color change held back by a 429.
        Change,
    }
    table TimerTable
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
    /// Own messages acted on lately (shared chat's copies and redeliveries act once).
    seen: SeenMessages,
    timers: TimerTable,
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
            seen: SeenMessages::default(),
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

    fn error(&mut self, fault: Fault, why: String) {
        let errors = &mut self.counters.errors;
        *match fault {
            Fault::Lookup => &mut errors.lookup,
            Fault::Chat => &mut errors.chat,
            Fault::Color => &mut errors.color,
            Fault::Token => &mut errors.token,
        } += 1;
        self.counters.last_error = Some(why);
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
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        crate::queue::pop(&mut self.actions)
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
mod tests;
