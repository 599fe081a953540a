//! Wiring for the binary: environment overrides, shared services, and the supervisor that
//! holds one task per user, applies config edits live and keeps the status file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigError, ConfigFile};
use crate::device;
use crate::helix::Helix;
use crate::http::HttpClient;
use crate::log;
use crate::notify::Notify;
use crate::oauth::OAuth;
use crate::status;
use crate::status::latest::{Latest, Recording};
use crate::transport::{self, NetTransport, Transport};
use crate::user::{self, Services};
use crate::usercore::Counters;
use crate::watch;
#[cfg(feature = "web")]
use crate::web;

mod check;
mod endpoints;
pub mod first_run;
mod supervisor;

pub use self::check::{check, CheckReport};
pub use self::endpoints::{
    Endpoints, DEFAULT_API_URL, DEFAULT_AUTH_URL, DEFAULT_EVENTSUB_URL, DEFAULT_IRC_URL,
};
use self::supervisor::Supervisor;

/// Why the bot cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The config file is unusable.
    Config(ConfigError),
    /// An environment variable is invalid: its name and what is wrong.
    Env(&'static str, String),
    /// A numbered user variable (`TWITCH_*_<n>`) is invalid.
    EnvUser(config::EnvError),
    /// Every user stopped (none could be authorised).
    NoUserLeft,
    /// The HTTP listener cannot listen on this address: why.
    Listen(std::net::SocketAddr, std::io::Error),
    /// Another process (another bot, `setup`) holds the config: the config, and the other
    /// bot's pid when its status says.
    InUse(PathBuf, Option<u32>),
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
            StartError::InUse(path, pid) => write!(
                f,
                "another twitch-colorchanger{} is running with {}: two bots on one config use up each other's single-use refresh tokens and lock the account out; stop that one first (`twitch-colorchanger status -c {}` shows it)",
                pid.map(|p| format!(" (pid {p})")).unwrap_or_default(),
                path.display(),
                path.display()
            ),
            StartError::Listen(addr, e) => write!(
                f,
                "cannot serve the status page on {addr} ({e}); change \"http_listen\" or {}",
                config::HTTP_LISTEN_ENV
            ),
        }
    }
}

impl std::error::Error for StartError {}

/// The services every user shares, over the real network and clock.
fn real_services(
    file: Arc<ConfigFile>,
    endpoints: Endpoints,
    auth_attempts: Option<u32>,
    page: Option<Arc<Latest>>,
) -> Result<Arc<Services>, StartError> {
    let tls = transport::tls_config(endpoints.ca_file.as_deref())
        .map_err(|e| StartError::Env("TWITCH_CA_FILE", e.to_string()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let net = NetTransport::new(tls, clock.clone());
    let clock_watch = net.clock_watch();
    let net: Arc<dyn Transport> = Arc::new(net);
    let http = Arc::new(HttpClient::new(
        net.clone(),
        clock.clone(),
        Duration::from_secs(15),
    ));
    let (api, auth) = (endpoints.api, endpoints.auth);
    let services = Arc::new(Services {
        clock: clock.clone(),
        transport: net,
        oauth: Arc::new(OAuth::new(http.clone(), auth.endpoint, auth.path)),
        prompter: match page {
            // device codes on the status page too
            Some(latest) => Arc::new(Recording {
                inner: device::prompter(),
                latest,
                clock: clock.clone(),
            }),
            None => Arc::from(device::prompter()),
        },
        auth_attempts,
        helix: Helix::new(http, api.endpoint, api.path),
        irc: endpoints.irc,
        eventsub: endpoints.eventsub,
        default_transport: endpoints.chat_transport,
        channels: Mutex::default(),
        config: file,
        clock_watch,
    });
    Ok(services)
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
/// config file as they come (and at once on [`Request::Reload`]). The status file goes to
/// `status_file` if given, else to a runtime directory ([`status::place`]). Returns on a
/// stop, on a start-up error, or when every user has given up.
pub async fn run(
    config_path: PathBuf,
    status_file: Option<PathBuf>,
    endpoints: Endpoints,
    env: EnvUsers,
    requests: async_channel::Receiver<Request>,
) -> Result<(), StartError> {
    let file = Arc::new(ConfigFile::new(&config_path));
    let (text, leftovers) = read_at_start(&file, env).await?;
    let status_path = choose_status_place(&config_path, status_file).await;
    let cfg = config::parse(&config_path, &text).map_err(StartError::Config)?;
    warn_skipped(&cfg);
    // Someone at a terminal gets a few device codes; an unattended bot keeps asking, slowly.
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
    warn_plain_text(&endpoints);
    let tokens = cfg
        .users
        .iter()
        .any(|u| !u.access_token.expose().is_empty() || !u.refresh_token.expose().is_empty());
    warn_readable(&config_path, tokens);
    let listen = match std::env::var(config::HTTP_LISTEN_ENV) {
        Ok(text) if !text.trim().is_empty() => Some(
            config::parse_listen(&text)
                .map_err(|e| StartError::Env(config::HTTP_LISTEN_ENV, e.to_string()))?,
        ),
        _ => cfg.http_listen,
    };
    if listen.is_some() && !cfg!(feature = "web") {
        log!(Warn, None, None, "http_listen is set, but this build has no HTTP listener (built without the web feature)");
    }
    let page = listen
        .filter(|_| cfg!(feature = "web"))
        .map(|_| Arc::new(Latest::default()));
    let default_transport = endpoints.chat_transport;
    let services = real_services(file, endpoints, interactive.then_some(3), page.clone())?;
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
    if let (Some(addr), Some(latest)) = (listen, &page) {
        serve_page(&executor, addr, latest.clone(), &services)?;
    }
    let notify = Rc::new(Notify::from_env());
    if let Some(every) = notify.watchdog_every() {
        executor
            .spawn(watchdog(notify.clone(), services.clock.clone(), every))
            .detach();
    }
    let mut supervisor = Supervisor::new(&executor, services, text);
    supervisor.notify = notify;
    supervisor.leftovers = leftovers;
    supervisor.page = page;
    supervisor.status_path = status_path;
    warn_nofile(&cfg, supervisor.nofile, default_transport, listen.is_some());
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

/// Tells systemd's watchdog every `every` that the bot's event loop still turns: a loop that
/// hangs stops telling, and systemd restarts the bot (`WatchdogSec=` in the unit).
async fn watchdog(notify: Rc<Notify>, clock: Arc<dyn Clock>, every: Duration) {
    loop {
        notify.send("WATCHDOG=1");
        clock.sleep_until(clock.now() + every).await;
    }
}

/// Starts the HTTP listener on `addr` (see [`web`]), on the bot's executor.
#[cfg(feature = "web")]
fn serve_page(
    executor: &smol::LocalExecutor<'static>,
    addr: std::net::SocketAddr,
    latest: Arc<Latest>,
    services: &Services,
) -> Result<(), StartError> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(async_net::TcpListener::try_from)
        .map_err(|e| StartError::Listen(addr, e))?;
    if !addr.ip().is_loopback() {
        log!(Warn, None, None, "the status page listens on {addr}, beyond this machine, with no authentication: anyone who reaches it sees the users, channels and device codes; prefer 127.0.0.1 behind a reverse proxy");
    }
    log!(
        Info,
        None,
        None,
        "status page on http://{}/ (and /status.json, /metrics, /livez, /readyz)",
        listener.local_addr().unwrap_or(addr)
    );
    let serve = web::serve(
        listener,
        latest,
        services.helix.metrics(),
        services.clock.clone(),
    );
    executor.spawn(serve).detach();
    Ok(())
}

#[cfg(not(feature = "web"))]
fn serve_page(
    _: &smol::LocalExecutor<'static>,
    _: std::net::SocketAddr,
    _: Arc<Latest>,
    _: &Services,
) -> Result<(), StartError> {
    Ok(())
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
        take_lock(&file)?;
        let leftovers = config::sweep_temp_files(path);
        if !leftovers.is_empty() {
            log!(Warn, None, None, "{}: found {} complete copy(ies) left by an interrupted save; their tokens are kept as a fallback", path.display(), leftovers.len());
        }
        apply_env(&file, &env)?;
        take_lock(&file)?; // the environment's users may have created it
        let text = config::read_text(path).map_err(StartError::Config)?;
        Ok((text, leftovers))
    })
    .await
}

/// Where the status file goes, said once; a bot without one still runs.
async fn choose_status_place(config: &Path, wanted: Option<PathBuf>) -> Option<PathBuf> {
    let config = config.to_owned();
    let given = wanted.is_some();
    let chosen = smol::unblock(move || {
        let path = status::place::choose(&config, wanted, &|k| std::env::var(k).ok())?;
        // in a place of the bot's own (not a path someone gave), clear what gone bots left
        let swept = match path.parent() {
            Some(dir) if !given => status::sweep(dir, &path),
            _ => 0,
        };
        Ok::<_, status::place::NoPlace>((path, swept))
    })
    .await;
    match chosen {
        Ok((path, swept)) => {
            log!(Debug, None, None, "status file: {}", path.display());
            if swept > 0 {
                log!(
                    Debug,
                    None,
                    None,
                    "removed {swept} status file(s) of bots and configs that are gone"
                );
            }
            Some(path)
        }
        Err(tried) => {
            log!(Warn, None, None, "no place for the status file ({tried}); the bot runs, but --health-check and status will not see it (set STATUS_FILE to a writable path)");
            None
        }
    }
}

/// Says once at start when the open-files limit is below what the users need ([`nofile`]);
/// `status` and the page say it for as long as it holds.
fn warn_nofile(
    cfg: &config::Config,
    limits: crate::nofile::Limits,
    default: crate::chat::Protocol,
    listener: bool,
) {
    let eventsub = cfg
        .users
        .iter()
        .filter(|u| u.chat_transport.unwrap_or(default) == crate::chat::Protocol::EventSub)
        .count();
    let need = crate::nofile::need(cfg.users.len() - eventsub, eventsub, listener);
    match crate::nofile::TooLow::check(limits, need) {
        Some(too_low) => log!(Warn, None, None, "{too_low}"),
        None => log!(
            Debug,
            None,
            None,
            "open files: {} allowed, about {need} needed",
            limits.soft
        ),
    }
}

/// Locks the config (see [`ConfigFile::lock`]); the error names the bot holding it.
fn take_lock(file: &ConfigFile) -> Result<(), StartError> {
    match file.lock() {
        Ok(true) => Ok(()),
        Ok(false) => {
            let pid = status::read(file.path())
                .ok()
                .map(|doc| doc.pid)
                .filter(|pid| status::pid_alive(*pid));
            Err(StartError::InUse(file.path().to_owned(), pid))
        }
        Err(e) => Err(StartError::Config(ConfigError::Io(
            file.path().to_owned(),
            e,
        ))),
    }
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

/// A config others may read exposes the tokens in it (or will, once the bot saves some).
fn warn_readable(path: &Path, tokens: bool) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o004 != 0 {
            let holds = if tokens {
                "holds your tokens"
            } else {
                "will hold your tokens once you authorise"
            };
            log!(Warn, None, None, "{} is readable by every user of this machine and {holds}: chmod 600 it (the bot's next save removes that permission)", path.display());
        }
    }
    #[cfg(not(unix))]
    let _ = (path, tokens);
}

fn warn_skipped(cfg: &config::Config) {
    for unknown in &cfg.unknown {
        log!(Warn, None, None, "{}: {unknown}", cfg.path.display());
    }
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

/// `setup`: makes sure every user has a valid token, running the device-code flow (for all
/// who need it at once) where needed. Returns each user's name with the outcome.
pub async fn setup(
    config_path: PathBuf,
    endpoints: Endpoints,
    env: EnvUsers,
) -> Result<Vec<(String, Result<(), user::UserError>)>, StartError> {
    const ATTEMPTS: u32 = 3;
    let file = Arc::new(ConfigFile::new(&config_path));
    let (text, leftovers) = read_at_start(&file, env).await?;
    let cfg = config::parse(&config_path, &text).map_err(StartError::Config)?;
    warn_skipped(&cfg);
    let services = real_services(file, endpoints, Some(ATTEMPTS), None)?;
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = cfg
        .users
        .iter()
        .map(|u| {
            let spares = config::spare_refresh_tokens(&leftovers, &u.username, &u.refresh_token);
            let (name, services, user) = (u.username.clone(), services.clone(), u.clone());
            executor.spawn(async move {
                let result = user::authorise(services, &user, spares, ATTEMPTS)
                    .await
                    .and_then(|tokens| match tokens.unsaved {
                        None => Ok(()),
                        Some(e) => Err(user::UserError::NotSaved(e)),
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
