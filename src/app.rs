//! Wiring for the binary: environment overrides, shared services, one task per user.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::{self, ConfigError};
use crate::helix::Helix;
use crate::http::HttpClient;
use crate::log;
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
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Env(name, e) => write!(f, "environment variable {name}: {e}"),
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

/// Loads the config, logs what it skipped, and runs every valid user until the process is
/// stopped. Returns only on a start-up error.
pub async fn run(config_path: PathBuf, endpoints: Endpoints) -> Result<(), StartError> {
    let cfg = config::load(&config_path).map_err(StartError::Config)?;
    for warning in &cfg.warnings {
        log!(
            Warn,
            None,
            None,
            "{}: skipping {warning}",
            cfg.path.display()
        );
    }
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
    let shared = Arc::new(Shared {
        clock,
        transport: net,
        helix: Helix::new(http, api_endpoint, api_path),
        irc: endpoints.irc,
        config_path: cfg.path.clone(),
    });
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
    Ok(())
}
