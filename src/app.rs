//! Wiring for the binary: environment overrides, shared services, one task per user.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigError};
use crate::device;
use crate::helix::Helix;
use crate::http::HttpClient;
use crate::log;
use crate::oauth::OAuth;
use crate::tokens::TokenKeeper;
use crate::transport::{self, Endpoint, NetTransport, Transport};
use crate::user::{self, Shared};

/// Default chat endpoint.
pub const DEFAULT_IRC_URL: &str = "tls://irc.chat.twitch.tv:6697";
/// Default Helix base URL.
pub const DEFAULT_API_URL: &str = "https://api.twitch.tv/helix";
/// Default OAuth base URL.
pub const DEFAULT_AUTH_URL: &str = "https://id.twitch.tv/oauth2";

/// Endpoints and trust settings, from `TWITCH_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Chat.
    pub irc: Endpoint,
    /// Helix host and base path.
    pub api: (Endpoint, String),
    /// OAuth host and base path.
    pub auth: (Endpoint, String),
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
    /// Every user stopped (none could be authorised).
    NoUserLeft,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Env(name, e) => write!(f, "environment variable {name}: {e}"),
            StartError::NoUserLeft => {
                f.write_str("no user is running any more (see the errors above)")
            }
        }
    }
}

impl std::error::Error for StartError {}

impl Endpoints {
    /// Reads `TWITCH_IRC_URL`, `TWITCH_API_URL`, `TWITCH_AUTH_URL` and `TWITCH_CA_FILE`
    /// through `var`, with Twitch's real endpoints as defaults.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Endpoints, StartError> {
        let get = |name: &'static str, default: &str| {
            let value = var(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned());
            transport::parse_url(&value).map_err(|e| StartError::Env(name, e.to_string()))
        };
        let (irc, path) = get("TWITCH_IRC_URL", DEFAULT_IRC_URL)?;
        if !path.is_empty() {
            return Err(StartError::Env(
                "TWITCH_IRC_URL",
                "expected tls://host:port or tcp://host:port, without a path".into(),
            ));
        }
        Ok(Endpoints {
            irc,
            api: get("TWITCH_API_URL", DEFAULT_API_URL)?,
            auth: get("TWITCH_AUTH_URL", DEFAULT_AUTH_URL)?,
            ca_file: var("TWITCH_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}

fn load(config_path: &std::path::Path) -> Result<config::Config, StartError> {
    let cfg = config::load(config_path).map_err(StartError::Config)?;
    for warning in &cfg.warnings {
        log!(
            Warn,
            None,
            None,
            "{}: skipping {warning}",
            cfg.path.display()
        );
    }
    Ok(cfg)
}

/// The services every user shares, over the real network and clock.
fn services(
    cfg: &config::Config,
    endpoints: Endpoints,
    auth_attempts: Option<u32>,
) -> Result<Arc<Shared>, StartError> {
    let tls = transport::tls_config(endpoints.ca_file.as_deref())
        .map_err(|e| StartError::Env("TWITCH_CA_FILE", e))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let net: Arc<dyn Transport> = Arc::new(NetTransport::new(tls, clock.clone()));
    let http = Arc::new(HttpClient::new(
        net.clone(),
        clock.clone(),
        Duration::from_secs(15),
    ));
    let (api_endpoint, api_path) = endpoints.api;
    let (auth_endpoint, auth_path) = endpoints.auth;
    Ok(Arc::new(Shared {
        clock,
        transport: net,
        oauth: Arc::new(OAuth::new(http.clone(), auth_endpoint, auth_path)),
        prompter: Arc::from(device::prompter()),
        auth_attempts,
        helix: Helix::new(http, api_endpoint, api_path),
        irc: endpoints.irc,
        config_path: cfg.path.clone(),
    }))
}

/// Loads the config, logs what it skipped, and runs every valid user until the process is
/// stopped. Returns only on a start-up error, or when every user has given up.
pub async fn run(config_path: PathBuf, endpoints: Endpoints) -> Result<(), StartError> {
    let cfg = load(&config_path)?;
    // Someone at a terminal gets a few device codes; an unattended bot keeps asking, slowly.
    let interactive = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let shared = services(&cfg, endpoints, interactive.then_some(3))?;
    log!(
        Info,
        None,
        None,
        "{} user(s) from {}",
        cfg.users.len(),
        cfg.path.display()
    );
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = cfg
        .users
        .into_iter()
        .map(|u| executor.spawn(user::run(shared.clone(), u)))
        .collect();
    executor
        .run(async {
            for task in tasks {
                task.await;
            }
        })
        .await;
    Err(StartError::NoUserLeft)
}

/// `setup`: makes sure every user has a valid token, running the device-code flow (for all
/// who need it at once) where needed. Returns each user's name with the outcome.
pub async fn setup(
    config_path: PathBuf,
    endpoints: Endpoints,
) -> Result<Vec<(String, Result<(), String>)>, StartError> {
    const ATTEMPTS: u32 = 3;
    let cfg = load(&config_path)?;
    let shared = services(&cfg, endpoints, Some(ATTEMPTS))?;
    let executor = smol::LocalExecutor::new();
    let tasks: Vec<_> = cfg
        .users
        .iter()
        .map(|u| {
            let keeper = TokenKeeper::new(
                u,
                cfg.path.clone(),
                shared.oauth.clone(),
                shared.clock.clone(),
                shared.prompter.clone(),
            );
            let name = u.username.clone();
            executor.spawn(async move { (name, keeper.ready(Some(ATTEMPTS)).await) })
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
