//! One user's settings as the bot runs them, and why a config cannot be used: the config's
//! vocabulary for the cores (no I/O: reading and writing the file is [`super::file`]'s).

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::chat::Protocol;
use crate::mode;
use crate::secret::Secret;

/// One account the bot runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserConfig {
    /// Twitch login, as written in the file.
    pub username: String,
    /// User access token; empty when the user still needs the device-code flow.
    pub access_token: Secret,
    /// Refresh token, may be empty.
    pub refresh_token: Secret,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret, empty for public clients.
    pub client_secret: Secret,
    /// Channel logins: lowercase, without `#`, no duplicates.
    pub channels: Vec<String>,
    /// Use random hex colors (Turbo/Prime) rather than named ones.
    pub is_prime_or_turbo: bool,
    /// Change colors automatically.
    pub enabled: bool,
    /// When the access token expires (`token_expiry`), if known.
    pub token_expiry: Option<std::time::SystemTime>,
    /// `chat_transport`: how chat is read; `None` when the file leaves it to the default
    /// (`TWITCH_CHAT_TRANSPORT`, else IRC).
    pub chat_transport: Option<Protocol>,
    /// `color_mode`, `rainbow_step`, `palette`, `palette_order`.
    pub colors: mode::Settings,
}

/// Why the config cannot be used at all.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file does not exist.
    Missing(PathBuf),
    /// The file cannot be read or written.
    Io(PathBuf, io::Error),
    /// The file is not JSON.
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// The JSON is not `{"users": [...]}`.
    Shape(PathBuf, String),
    /// No user passed validation; the problems found.
    NoValidUsers(PathBuf, Vec<String>),
    /// The user to update is not in the file any more.
    UnknownUser(PathBuf, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Missing(p) => write!(
                f,
                "{}: config file not found. To create it, run `twitch-colorchanger setup -c {}` in a terminal (it asks for your login, your app's client id and the channels), or copy the example in README's \"Quick start\"",
                p.display(),
                p.display()
            ),
            ConfigError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ConfigError::Json {
                path,
                line,
                column,
                message,
            } => write!(f, "{}:{line}:{column}: invalid JSON: {message}", path.display()),
            ConfigError::Shape(p, m) => write!(f, "{}: {m}", p.display()),
            ConfigError::NoValidUsers(p, problems) => {
                write!(f, "{}: no valid user in the config", p.display())?;
                for problem in problems {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
            ConfigError::UnknownUser(p, u) => {
                write!(f, "{}: user {u:?} is no longer in the config", p.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}
