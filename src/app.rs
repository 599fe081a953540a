//! Wiring for the binary: environment overrides, shared services, and the supervisor that
//! holds one task per user, applies config edits live and keeps the status file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::future;

use crate::chat::Protocol;
use crate::clock::{timeout_at, Clock, SystemClock};
use crate::config::{self, ConfigError, ConfigFile, UserConfig};
use crate::device;
use crate::endpoint::{self, Endpoint, Url};
use crate::helix::Helix;
use crate::http::HttpClient;
use crate::log;
use crate::oauth::OAuth;
use crate::status;
use crate::transport::{self, NetTransport, Transport};
use crate::user::{self, Control, Report, Reporter, Services};
use crate::usercore::Counters;
use crate::watch;

/// Default chat endpoint.
pub const DEFAULT_IRC_URL: &str = "tls://irc.chat.twitch.tv:6697";
/// Default Helix base URL.
pub const DEFAULT_API_URL: &str = "https://api.twitch.tv/helix";
/// Default OAuth base URL.
pub const DEFAULT_AUTH_URL: &str = "https://id.twitch.tv/oauth2";
/// Default EventSub WebSocket URL.
pub const DEFAULT_EVENTSUB_URL: &str = "wss://eventsub.wss.twitch.tv/ws";

/// Endpoints and trust settings, from `TWITCH_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Chat.
    pub irc: Endpoint,
    /// Helix host and base path.
    pub api: Url,
    /// OAuth host and base path.
    pub auth: Url,
    /// EventSub WebSocket host and request target.
    pub eventsub: Url,
    /// The chat transport of users whose entry does not say (`TWITCH_CHAT_TRANSPORT`).
    pub chat_transport: Protocol,
    /// A PEM bundle trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
}

/// Why the bot cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The config file is unusable.
    Config(ConfigError),
    /// An environment variable is invalid: its name and what is wrong.
    Env(&'static str, String),
    /// A numbered user variable (`TWITCH_*_<n>`) is invalid: `NAME=value: what is wrong`.
    EnvUser(String),
    /// Every user stopped (none could be authorised).
    NoUserLeft,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Env(name, e) => write!(f, "environment variable {name}: {e}"),
            StartError::EnvUser(e) => write!(f, "environment variable {e}"),
            StartError::NoUserLeft => {
                f.write_str("no user is running any more (see the errors above)")
            }
        }
    }
}

impl std::error::Error for StartError {}

impl Endpoints {
    /// Reads `TWITCH_IRC_URL`, `TWITCH_API_URL`, `TWITCH_AUTH_URL`, `TWITCH_EVENTSUB_URL`,
    /// `TWITCH_CA_FILE` and `TWITCH_CHAT_TRANSPORT` through `var`, with Twitch's real
    /// endpoints and IRC as defaults.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Endpoints, StartError> {
        // each variable names the schemes it takes, so that a wrong one is told what fits
        let get = |name: &'static str, default: &str, schemes: [&str; 2], form: &str| {
            let value = var(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned());
            let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !scheme.is_some_and(|s| schemes.contains(&s.as_str())) {
                return Err(StartError::Env(name, format!("{value:?}: expected {form}")));
            }
            endpoint::parse_url(&value).map_err(|e| StartError::Env(name, e.to_string()))
        };
        let irc_form =
            "tls://host:port (or tcp://host:port for a local test server), without a path";
        let http_form = "https://host[:port]/path (or http:// for a local test server)";
        let Url {
            endpoint: irc,
            path,
        } = get("TWITCH_IRC_URL", DEFAULT_IRC_URL, ["tls", "tcp"], irc_form)?;
        if !path.is_empty() {
            return Err(StartError::Env(
                "TWITCH_IRC_URL",
                format!("expected {irc_form}"),
            ));
        }
        let eventsub_url = var("TWITCH_EVENTSUB_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_EVENTSUB_URL.to_owned());
        let eventsub = endpoint::parse_ws_url(&eventsub_url).map_err(|e| {
            StartError::Env(
                "TWITCH_EVENTSUB_URL",
                format!(
                    "{}; expected wss://host[:port]/path (or ws:// for a local test server)",
                    e
                ),
            )
        })?;
        let chat_transport = match var("TWITCH_CHAT_TRANSPORT").filter(|v| !v.trim().is_empty()) {
            None => Protocol::Irc,
            Some(value) => Protocol::parse(&value).ok_or_else(|| {
                StartError::Env(
                    "TWITCH_CHAT_TRANSPORT",
                    format!("{value:?}: expected irc or eventsub"),
                )
            })?,
        };
        Ok(Endpoints {
            eventsub,
            chat_transport,
            irc,
            api: get(
                "TWITCH_API_URL",
                DEFAULT_API_URL,
                ["https", "http"],
                http_form,
            )?,
            auth: get(
                "TWITCH_AUTH_URL",
                DEFAULT_AUTH_URL,
                ["https", "http"],
                http_form,
            )?,
            ca_file: var("TWITCH_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}

/// The services every user shares, over the real network and clock.
fn real_services(
    file: Arc<ConfigFile>,
    endpoints: Endpoints,
    auth_attempts: Option<u32>,
) -> Result<Arc<Services>, StartError> {
    let tls = transport::tls_config(endpoints.ca_file.as_deref())
        .map_err(|e| StartError::Env("TWITCH_CA_FILE", e))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let net: Arc<dyn Transport> = Arc::new(NetTransport::new(tls, clock.clone()));
    let http = Arc::new(HttpClient::new(
        net.clone(),
        clock.clone(),
        Duration::from_secs(15),
    ));
    let (api, auth) = (endpoints.api, endpoints.auth);
    Ok(Arc::new(Services {
        clock,
        transport: net,
        oauth: Arc::new(OAuth::new(http.clone(), auth.endpoint, auth.path)),
        prompter: Arc::from(device::prompter()),
        auth_attempts,
        helix: Helix::new(http, api.endpoint, api.path),
        irc: endpoints.irc,
        eventsub: endpoints.eventsub,
        default_transport: endpoints.chat_transport,
        broadcasters: Mutex::default(),
        config: file,
    }))
}

/// What the process asks of the running bot (from its signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGHUP: read the config now, and re-apply it even if the text is the same.
    Reload,
    /// SIGINT or SIGTERM: stop every user once no rotated token pair is left unsaved
    /// (bounded by [`user::STOP_GRACE`]), then return.
    Stop,
}

/// Why the config should be read again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reload {
    /// The watcher saw the file change: apply it if its text differs.
    Changed,
    /// SIGHUP: read it now, and re-apply even if the text is the same.
    Now,
}

/// The users the environment defines (`TWITCH_USERNAME_<n>` …), read through `var`.
pub type EnvUsers = Vec<serde_json::Map<String, serde_json::Value>>;

/// Reads the environment's users from the process environment.
pub fn env_users() -> Result<EnvUsers, StartError> {
    config::env_users(|k| std::env::var(k).ok()).map_err(StartError::EnvUser)
}

/// Writes the environment's users into the config file, creating it when needed. Done
/// before the first load, and never on reload.
fn apply_env(file: &ConfigFile, env: &EnvUsers) -> Result<(), StartError> {
    if file.apply_env(env).map_err(StartError::Config)? {
        log!(
            Info,
            None,
            None,
            "wrote {} user(s) from TWITCH_USERNAME_<n> environment variables into {}",
            env.len(),
            file.path().display()
        );
    }
    Ok(())
}

/// Loads the config (with the environment's users, see [`env_users`]), logs what it
/// skipped, and runs every valid user until [`Request::Stop`], applying edits of the
/// config file as they come (and at once on [`Request::Reload`]). Returns on a stop, on a
/// start-up error, or when every user has given up.
pub async fn run(
    config_path: PathBuf,
    endpoints: Endpoints,
    env: EnvUsers,
    requests: async_channel::Receiver<Request>,
) -> Result<(), StartError> {
    let file = Arc::new(ConfigFile::new(&config_path));
    let (text, leftovers) = read_at_start(&file, env).await?;
    let cfg = config::parse(&config_path, &text).map_err(StartError::Config)?;
    warn_skipped(&cfg);
    // Someone at a terminal gets a few device codes; an unattended bot keeps asking, slowly.
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
    warn_plain_text(&endpoints);
    warn_readable(&config_path);
    let services = real_services(file, endpoints, interactive.then_some(3))?;
    log!(
        Info,
        None,
        None,
        "{} user(s) from {}",
        cfg.users.len(),
        cfg.path.display()
    );
    let executor: smol::LocalExecutor<'static> = smol::LocalExecutor::new();
    let (changed_tx, changed_rx) = async_channel::unbounded();
    executor
        .spawn(watch::run(cfg.path.clone(), changed_tx))
        .detach();
    let mut supervisor = Supervisor::new(&executor, services, text);
    supervisor.leftovers = leftovers;
    executor
        .run(async {
            for user in cfg.users {
                supervisor.start(user, Counters::default());
            }
            supervisor.leftovers.clear();
            supervisor.run(requests, changed_rx).await
        })
        .await
}

/// The start-up reads, off the executor thread so that SIGTERM is heard even when the file
/// hangs (a stale network mount): leftover temp files of an interrupted save are collected
/// (their tokens may be the only copy of a rotated pair) and removed, the environment's
/// users are written in, and the file is read.
async fn read_at_start(
    file: &Arc<ConfigFile>,
    env: EnvUsers,
) -> Result<(String, Vec<serde_json::Value>), StartError> {
    let file = file.clone();
    smol::unblock(move || {
        let path = file.path();
        let leftovers = config::sweep_temp_files(path);
        if !leftovers.is_empty() {
            log!(Warn, None, None, "{}: found {} complete copy(ies) left by an interrupted save; their tokens are kept as a fallback", path.display(), leftovers.len());
        }
        apply_env(&file, &env)?;
        let text = config::read_text(path).map_err(StartError::Config)?;
        Ok((text, leftovers))
    })
    .await
}

/// Plain-text endpoints carry the tokens in the clear: allowed (tests, a local proxy), said.
fn warn_plain_text(endpoints: &Endpoints) {
    for (name, endpoint) in [
        ("TWITCH_IRC_URL", &endpoints.irc),
        ("TWITCH_API_URL", &endpoints.api.endpoint),
        ("TWITCH_AUTH_URL", &endpoints.auth.endpoint),
    ] {
        if !endpoint.tls {
            log!(Warn, None, None, "{name} is plain text ({endpoint}): tokens travel unencrypted; use it only on a trusted network");
        }
    }
    if !endpoints.eventsub.endpoint.tls {
        log!(Warn, None, None, "TWITCH_EVENTSUB_URL is plain text ({}): chat messages travel unencrypted; use it only on a trusted network", endpoints.eventsub.endpoint);
    }
}

/// A config others may read exposes the tokens in it.
fn warn_readable(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            log!(Warn, None, None, "{} is readable by every user of this machine and holds your tokens: chmod 600 it (the bot's next save removes that permission)", path.display());
        }
    }
}

fn warn_skipped(cfg: &config::Config) {
    for warning in &cfg.warnings {
        log!(
            Warn,
            None,
            None,
            "{}: skipping {warning}",
            cfg.path.display()
        );
    }
}

/// A user task that ended.
#[derive(Debug)]
struct Ended {
    /// The user's key (lowercase login).
    key: String,
    /// Which start of the user it was.
    generation: u64,
    /// Why it gave up (`None`: it was stopped).
    gave_up: Option<String>,
}

/// A running user, as the supervisor holds it.
struct Running {
    /// The settings it runs with (as last applied).
    config: UserConfig,
    control: async_channel::Sender<Control>,
    status: Arc<Mutex<Option<Report>>>,
    /// Which start this is, to tell a restarted user's end from its predecessor's.
    generation: u64,
    /// Set when the user gave up (no authorisation); its task has ended.
    gave_up: Option<String>,
    _task: smol::Task<()>,
}

/// Holds one task per user; starts, updates, restarts and stops them as the config
/// changes; writes the status file.
struct Supervisor<'a> {
    executor: &'a smol::LocalExecutor<'static>,
    services: Arc<Services>,
    users: Vec<(String, Running)>,
    generation: u64,
    ended: (async_channel::Sender<Ended>, async_channel::Receiver<Ended>),
    status_changed: (async_channel::Sender<()>, async_channel::Receiver<()>),
    /// The config text last applied (or found invalid).
    applied: String,
    missing: bool,
    status_warned: bool,
    /// Documents an interrupted save left behind, read at start-up (see [`read_at_start`]).
    leftovers: Vec<serde_json::Value>,
}

impl<'a> Supervisor<'a> {
    fn new(
        executor: &'a smol::LocalExecutor<'static>,
        services: Arc<Services>,
        text: String,
    ) -> Self {
        Supervisor {
            executor,
            services,
            users: Vec::new(),
            generation: 0,
            ended: async_channel::unbounded(),
            status_changed: async_channel::bounded(1),
            applied: text,
            missing: false,
            status_warned: false,
            leftovers: Vec::new(),
        }
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.users
            .iter()
            .position(|(key, _)| *key == name.to_ascii_lowercase())
    }

    fn start(&mut self, user: UserConfig, counters: Counters) {
        let spares =
            config::spare_refresh_tokens(&self.leftovers, &user.username, &user.refresh_token);
        let (control, control_rx) = async_channel::unbounded();
        let status = Arc::new(Mutex::new(None));
        let report = Reporter {
            slot: status.clone(),
            changed: self.status_changed.0.clone(),
        };
        self.generation += 1;
        let generation = self.generation;
        let key = user.username.to_ascii_lowercase();
        let ended = self.ended.0.clone();
        let run = user::run(
            self.services.clone(),
            user.clone(),
            spares,
            control_rx,
            report,
            counters,
        );
        let name = key.clone();
        let task = self.executor.spawn(async move {
            let result = run.await;
            let gave_up = result.err();
            let _ = ended
                .send(Ended {
                    key: name,
                    generation,
                    gave_up,
                })
                .await;
        });
        let running = Running {
            config: user,
            control,
            status,
            generation,
            gave_up: None,
            _task: task,
        };
        match self.find(&key) {
            Some(i) => self.users[i] = (key, running),
            None => self.users.push((key, running)),
        }
        let _ = self.status_changed.0.try_send(());
    }

    async fn run(
        &mut self,
        requests: async_channel::Receiver<Request>,
        changed: async_channel::Receiver<()>,
    ) -> Result<(), StartError> {
        enum Wake {
            Stop,
            Reload(Reload),
            Ended(Ended),
            StatusChanged,
            WriteStatus,
        }
        let clock = self.services.clock.clone();
        let mut next_write = clock.now();
        let mut dirty_since: Option<Instant> = None;
        loop {
            let ended = self.ended.1.clone();
            let status = self.status_changed.1.clone();
            // a burst of status changes settles into one write
            let write_at = dirty_since.map_or(next_write, |d| (d + STATUS_SETTLE).min(next_write));
            let wake = future::or(
                future::or(
                    async {
                        match requests.recv().await {
                            Ok(Request::Reload) => Wake::Reload(Reload::Now),
                            Ok(Request::Stop) => Wake::Stop,
                            Err(_) => future::pending().await,
                        }
                    },
                    async {
                        match changed.recv().await {
                            Ok(()) => Wake::Reload(Reload::Changed),
                            Err(_) => future::pending().await,
                        }
                    },
                ),
                future::or(
                    async {
                        match ended.recv().await {
                            Ok(ended) => Wake::Ended(ended),
                            Err(_) => future::pending().await,
                        }
                    },
                    future::or(
                        async {
                            let _ = status.recv().await;
                            Wake::StatusChanged
                        },
                        async {
                            clock.sleep_until(write_at).await;
                            Wake::WriteStatus
                        },
                    ),
                ),
            )
            .await;
            match wake {
                Wake::Stop => {
                    self.stop().await;
                    return Ok(());
                }
                Wake::Reload(why) => self.reload(why).await,
                Wake::Ended(ended) => {
                    if let Some(i) = self.find(&ended.key) {
                        let running = &mut self.users[i].1;
                        if running.generation == ended.generation {
                            running.gave_up =
                                Some(ended.gave_up.unwrap_or_else(|| "stopped".into()));
                        }
                    }
                    if !self.users.is_empty() && self.users.iter().all(|(_, r)| r.gave_up.is_some())
                    {
                        self.write_status().await;
                        return Err(StartError::NoUserLeft);
                    }
                }
                Wake::StatusChanged => {
                    dirty_since.get_or_insert(clock.now());
                }
                Wake::WriteStatus => {
                    dirty_since = None;
                    self.write_status().await;
                    next_write = clock.now() + status::WRITE_EVERY;
                }
            }
        }
    }

    /// Asks every running user to stop and waits until they have (each ends at once unless
    /// a token pair Twitch may already have rotated is still being saved).
    async fn stop(&mut self) {
        let mut running = 0;
        for (_, user) in &self.users {
            if user.gave_up.is_none() && user.control.try_send(Control::Stop).is_ok() {
                running += 1;
            }
        }
        let clock = self.services.clock.clone();
        let deadline = clock.now() + user::STOP_GRACE + Duration::from_millis(500);
        while running > 0 {
            match timeout_at(&*clock, deadline, self.ended.1.recv()).await {
                Some(Ok(ended)) => {
                    if self
                        .find(&ended.key)
                        .is_some_and(|i| self.users[i].1.generation == ended.generation)
                    {
                        running -= 1;
                    }
                }
                Some(Err(_)) | None => return,
            }
        }
    }

    /// Reads the config file again and applies what changed.
    async fn reload(&mut self, why: Reload) {
        let path = self.services.config.path().to_owned();
        let read = {
            let path = path.clone();
            smol::unblock(move || config::read_text(&path)).await
        };
        let text = match read {
            Ok(text) => text,
            Err(ConfigError::Missing(_)) => {
                if !self.missing {
                    log!(Warn, None, None, "{}: the config file is gone; running on the last good config until it is back", path.display());
                    self.missing = true;
                }
                return;
            }
            Err(e) => {
                log!(Error, None, None, "{e}; keeping the last good config");
                return;
            }
        };
        if std::mem::take(&mut self.missing) {
            log!(
                Info,
                None,
                None,
                "{}: the config file is back",
                path.display()
            );
        }
        if why == Reload::Changed && text == self.applied {
            return;
        }
        // The bot's own write: a token save, ccd/cce, named colors. It is still applied (an edit
        // the person made just before is in it, since saves re-read the file), quietly: what
        // the bot wrote matches what its users already run with, so nothing else happens.
        let own = self.services.config.written_by_us(text.as_bytes());
        if own {
            log!(
                Debug,
                None,
                None,
                "{}: changed by the bot itself; nothing to reload",
                path.display()
            );
        }
        self.applied = text.clone();
        let cfg = match config::parse(&path, &text) {
            Ok(cfg) => cfg,
            Err(ConfigError::NoValidUsers(p, problems)) => {
                log!(Error, None, None, "config not reloaded: {}: no valid user; the bot keeps running on the last good config", p.display());
                for problem in problems {
                    log!(Error, None, None, "{}: {problem}", p.display());
                }
                return;
            }
            Err(e) => {
                log!(Error, None, None, "config not reloaded: {e}; the bot keeps running on the last good config (fix the file and save it again)");
                return;
            }
        };
        if !own {
            log!(Info, None, None, "{}: config reloaded", path.display());
            warn_skipped(&cfg);
        }
        self.apply(cfg.users, own);
    }

    /// Starts added users, stops removed ones, restarts those whose credentials the person
    /// changed, and hands every other change to the running user; untouched users see nothing.
    fn apply(&mut self, wanted: Vec<UserConfig>, own: bool) {
        let keys: Vec<String> = wanted
            .iter()
            .map(|u| u.username.to_ascii_lowercase())
            .collect();
        let before = self.users.len();
        self.users.retain(|(key, running)| {
            let keep = keys.contains(key);
            if !keep {
                log!(
                    Info,
                    Some(&running.config.username),
                    None,
                    "removed from the config: stopped"
                );
            }
            keep
        });
        if self.users.len() != before {
            let _ = self.status_changed.0.try_send(());
        }
        for user in wanted {
            let Some(i) = self.find(&user.username) else {
                log!(Info, Some(&user.username), None, "added to the config");
                self.start(user, Counters::default());
                continue;
            };
            let running = &mut self.users[i].1;
            let restart = if running.gave_up.is_some() && running.config != user {
                Some("config changed: starting this user again")
            } else if credentials_changed(running, &user, own) {
                Some("credentials changed in the config: restarting this user")
            } else {
                None
            };
            if let Some(why) = restart {
                log!(Info, Some(&user.username), None, "{why}");
                let counters = counters_of(running);
                self.start(user, counters);
            } else if running.config != user {
                running.config = user.clone();
                let _ = running.control.try_send(Control::Update(user));
            }
        }
        // keep the config's order for the status file
        self.users
            .sort_by_key(|(key, _)| keys.iter().position(|k| k == key));
    }

    fn document(&self) -> status::Document {
        let clock = &*self.services.clock;
        let (now, wall) = (clock.now(), clock.wall());
        let wall_of = |at: Instant| wall.checked_sub(now.saturating_duration_since(at));
        let users = self
            .users
            .iter()
            .map(|(_, r)| {
                let report = r.status.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let tokens = report.as_ref().map(|r| r.tokens.clone());
                let core = report.map(|r| r.user);
                let transport = core.as_ref().map_or_else(
                    || {
                        r.config
                            .chat_transport
                            .unwrap_or(self.services.default_transport)
                    },
                    |s| s.transport,
                );
                let (state, enabled, channels, color, counters, down) = match core {
                    Some(s) => (
                        s.state.name(),
                        s.enabled,
                        s.joined,
                        s.color,
                        s.counters,
                        s.chat_down_since,
                    ),
                    None => (
                        "starting",
                        r.config.enabled,
                        Vec::new(),
                        None,
                        Counters::default(),
                        Some(now),
                    ),
                };
                let state = if r.gave_up.is_some() {
                    "stopped"
                } else if tokens.as_ref().is_some_and(|t| t.authorising) {
                    "awaiting_authorisation"
                } else {
                    state
                };
                status::UserStatus {
                    username: r.config.username.clone(),
                    state: state.into(),
                    enabled,
                    channels,
                    color,
                    changes: counters.changes,
                    messages: counters.messages,
                    last_change_at: status::stamp(counters.last_change_at.and_then(wall_of)),
                    last_error: r.gave_up.clone().or(counters.last_error),
                    token_expires_at: status::stamp(
                        tokens.and_then(|t| t.expires_at).or(r.config.token_expiry),
                    ),
                    chat_down_since: status::stamp(down.and_then(wall_of)),
                    transport: transport.name().into(),
                }
            })
            .collect();
        status::Document {
            written_at: crate::time::format_rfc3339(wall),
            pid: std::process::id(),
            config: self.services.config.path().display().to_string(),
            users,
        }
    }

    async fn write_status(&mut self) {
        let doc = self.document();
        let path = status::path_for(self.services.config.path());
        let result = smol::unblock(move || {
            let mut text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
            text.push('\n');
            config::write_atomic(&path, text.as_bytes())
        })
        .await;
        match result {
            Ok(()) => self.status_warned = false,
            Err(e) if !self.status_warned => {
                self.status_warned = true;
                log!(Warn, None, None, "cannot write the status file {} ({e}); --health-check and status will not see this bot", status::path_for(self.services.config.path()).display());
            }
            Err(_) => {}
        }
    }
}

/// Let a burst of status changes settle this long into one write.
const STATUS_SETTLE: Duration = Duration::from_millis(100);

fn counters_of(running: &Running) -> Counters {
    running
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|r| r.user.counters.clone())
        .unwrap_or_default()
}

/// The person changed what the user logs in with: the app, or a token that is neither the
/// one the user started with nor the one it holds now (its own refreshes are saved to the
/// file, so they look the same as what it holds). In a file the bot wrote itself, tokens
/// are the bot's (possibly one rotation behind what it holds), never a person's.
fn credentials_changed(running: &Running, user: &UserConfig, own: bool) -> bool {
    let old = &running.config;
    let tokens = (user.access_token.clone(), user.refresh_token.clone());
    let held = running
        .status
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|r| (r.tokens.access.clone(), r.tokens.refresh.clone()));
    user.client_id != old.client_id
        || user.client_secret != old.client_secret
        || (!own
            && Some(&tokens) != held.as_ref()
            && tokens != (old.access_token.clone(), old.refresh_token.clone()))
}

/// What `check` found: the text to print and whether the config can run as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// No problem at all.
    pub ok: bool,
    /// What would run, then every problem, one per line.
    pub text: String,
}

/// `check`: validates the config file and the environment's users together (without
/// writing anything) and the endpoint variables, listing every problem of every user.
pub fn check(path: &Path, var: impl Fn(&str) -> Option<String>) -> CheckReport {
    let mut problems = log::env_problems(&var);
    let default_transport = match Endpoints::from_env(&var) {
        Ok(endpoints) => endpoints.chat_transport,
        Err(e) => {
            problems.push(e.to_string());
            Protocol::Irc
        }
    };
    let env = config::env_users(&var).unwrap_or_else(|e| {
        problems.push(format!("environment variable {e}"));
        Vec::new()
    });
    let mut running = Vec::new();
    let root = match config::read_text(path) {
        Ok(text) => config::parse_json(path, &text).map(Some),
        Err(ConfigError::Missing(_)) if !env.is_empty() => Ok(None),
        Err(e) => Err(e),
    };
    match root {
        Err(e) => problems.push(e.to_string()),
        Ok(root) => {
            let mut root = root.unwrap_or_else(|| serde_json::json!({ "users": [] }));
            config::merge_env(&mut root, &env);
            match config::validate(path, &root) {
                Ok(cfg) => {
                    problems.extend(
                        cfg.warnings
                            .iter()
                            .map(|w| format!("{}: {w}", path.display())),
                    );
                    running = cfg
                        .users
                        .iter()
                        .map(|u| describe(u, default_transport))
                        .collect();
                }
                Err(ConfigError::NoValidUsers(_, warnings)) => {
                    problems.push(format!("{}: no valid user", path.display()));
                    problems.extend(warnings.iter().map(|w| format!("{}: {w}", path.display())));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let mut text = format!("config: {}", path.display());
    if !env.is_empty() {
        text.push_str(&format!(
            " (with {} user(s) from TWITCH_USERNAME_<n>)",
            env.len()
        ));
    }
    text.push('\n');
    if !running.is_empty() {
        text.push_str("would run:\n");
        for line in &running {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if problems.is_empty() {
        text.push_str("no problems found\n");
    } else {
        text.push_str(&format!("{} problem(s):\n", problems.len()));
        for p in &problems {
            text.push_str(&format!("  {p}\n"));
        }
    }
    CheckReport {
        ok: problems.is_empty(),
        text,
    }
}

fn describe(u: &UserConfig, default_transport: Protocol) -> String {
    let channels: Vec<String> = u.channels.iter().map(|c| format!("#{c}")).collect();
    format!(
        "{}: channels {}; chat over {}; {}; automatic changes {}; {}; {} client",
        u.username,
        channels.join(", "),
        u.chat_transport.unwrap_or(default_transport).display_name(),
        u.colors.describe(u.is_prime_or_turbo),
        if u.enabled { "on" } else { "off" },
        if u.access_token.is_empty() {
            "no token yet (device-code flow at start)"
        } else {
            "token present (validated at start)"
        },
        if u.client_secret.is_empty() {
            "public"
        } else {
            "confidential"
        }
    )
}

/// `setup`: makes sure every user has a valid token, running the device-code flow (for all
/// who need it at once) where needed. Returns each user's name with the outcome.
pub async fn setup(
    config_path: PathBuf,
    endpoints: Endpoints,
    env: EnvUsers,
) -> Result<Vec<(String, Result<(), String>)>, StartError> {
    const ATTEMPTS: u32 = 3;
    let file = Arc::new(ConfigFile::new(&config_path));
    let (text, leftovers) = read_at_start(&file, env).await?;
    let cfg = config::parse(&config_path, &text).map_err(StartError::Config)?;
    warn_skipped(&cfg);
    let services = real_services(file, endpoints, Some(ATTEMPTS))?;
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = cfg
        .users
        .iter()
        .map(|u| {
            let spares =
                config::spare_refresh_tokens(&leftovers, &u.username, &u.refresh_token);
            let (name, services, user) = (u.username.clone(), services.clone(), u.clone());
            executor.spawn(async move {
                let result = user::authorise(services, &user, spares, ATTEMPTS)
                    .await
                    .and_then(|tokens| match tokens.unsaved {
                        None => Ok(()),
                        Some(e) => Err(format!(
                            "authorised, but the tokens could not be saved ({e}); fix that and run setup again"
                        )),
                    });
                (name, result)
            })
        })
        .collect();
    Ok(executor
        .run(async {
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await);
            }
            results
        })
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(vars: &[(&str, &str)]) -> Result<Endpoints, String> {
        Endpoints::from_env(&|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_url_variable_says_which_schemes_it_takes() {
        assert!(endpoints(&[]).is_ok());
        assert_eq!(
            endpoints(&[("TWITCH_API_URL", "ftp://x")]).unwrap_err(),
            "environment variable TWITCH_API_URL: \"ftp://x\": expected https://host[:port]/path (or http:// for a local test server)"
        );
        assert_eq!(
            endpoints(&[("TWITCH_IRC_URL", "http://x")]).unwrap_err(),
            "environment variable TWITCH_IRC_URL: \"http://x\": expected tls://host:port (or tcp://host:port for a local test server), without a path"
        );
        assert!(endpoints(&[("TWITCH_AUTH_URL", "tls://x:1")])
            .unwrap_err()
            .contains("expected https://"));
        assert!(endpoints(&[("TWITCH_IRC_URL", "tls://x:1/path")])
            .unwrap_err()
            .contains("without a path"));
        assert!(endpoints(&[("TWITCH_IRC_URL", "tcp://127.0.0.1:6667")]).is_ok());
    }
}
