//! The config file: the Python bot's JSON format, validated with messages that name the
//! file, user and field, and rewritten atomically without losing fields we do not know.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

mod env;
mod file;
mod schema;
pub(crate) mod user;

pub use self::env::{env_users, merge_env, EnvError};
pub use self::file::{spare_refresh_tokens, sweep_temp_files, write_atomic, ConfigFile};
pub use self::schema::{is_channel, is_login, normalise_channel, EXAMPLE_CLIENT_ID};
pub use self::user::{ConfigError, UserConfig};

/// A config file that loaded: the valid users and a warning for each skipped one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The users that passed validation, in file order.
    pub users: Vec<UserConfig>,
    /// One line per problem that made a user be skipped.
    pub(crate) warnings: Vec<String>,
    /// `"http_listen"`: where the status page and metrics are served (off when absent).
    pub http_listen: Option<std::net::SocketAddr>,
    /// One line per field the bot does not know (a typo, or a note of the person's): kept
    /// in the file, not used.
    pub unknown: Vec<String>,
}

/// The fields of a user entry (all of them the Python bot's, plus this bot's own).
pub const USER_FIELDS: [&str; 14] = [
    "username",
    "client_id",
    "client_secret",
    "access_token",
    "refresh_token",
    "token_expiry",
    "channels",
    "is_prime_or_turbo",
    "enabled",
    "color_mode",
    "rainbow_step",
    "palette",
    "palette_order",
    "chat_transport",
];

/// The fields of the top level.
pub const TOP_FIELDS: [&str; 2] = ["users", "http_listen"];

/// Says what is wrong with each unknown field of `obj`, naming the nearest known one when
/// it looks like a typo of it.
fn unknown_fields(obj: &Map<String, Value>, known: &[&str], at: &str) -> Vec<String> {
    obj.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            let nearest = known
                .iter()
                .map(|n| (distance(k, n), n))
                .min()
                .filter(|(d, n)| close(*d, n));
            match nearest {
                Some((_, n)) => format!(
                    "{at}unknown field {k:?} (did you mean {n:?}?); kept in the file, not used"
                ),
                None => format!("{at}unknown field {k:?}; kept in the file, not used"),
            }
        })
        .collect()
}

/// Whether a name `d` edits away from the field `name` is taken for a typo of it.
fn close(d: usize, name: &str) -> bool {
    d <= 2.max(name.len() / 4)
}

/// A key of `obj` that is no field of `known` but looks like a typo of `field`: said beside
/// "field is missing", since a misspelt required field is one.
fn misspelt<'a>(obj: &'a Map<String, Value>, known: &[&str], field: &str) -> Option<&'a str> {
    obj.keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| (distance(k, field), k.as_str()))
        .filter(|(d, _)| close(*d, field))
        .min()
        .map(|(_, k)| k)
}

/// Edit distance (Levenshtein) between two short names, ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    let b: Vec<u8> = b.into_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// The config path: `--config`, else `TWITCH_CONF_FILE`, else `./twitch_colorchanger.conf`.
pub fn resolve_path(flag: Option<PathBuf>, env: Option<String>) -> PathBuf {
    flag.or_else(|| env.filter(|e| !e.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("twitch_colorchanger.conf"))
}

/// Reads and validates the config file. Invalid users are skipped with a warning; no valid
/// user at all is an error.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    parse(path, &text)
}

/// Validates the text of a config file read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
    validate(path, &parse_json(path, text)?)
}

/// The environment variable naming where the HTTP listener listens (it wins over the
/// config's `"http_listen"`).
pub const HTTP_LISTEN_ENV: &str = "TWITCH_HTTP_LISTEN";

/// Reads a listen address (`127.0.0.1:8080`, `[::1]:8080`, `0.0.0.0:8080`); the error says
/// what is expected.
pub fn parse_listen(text: &str) -> Result<std::net::SocketAddr, BadListen> {
    text.trim().parse().map_err(|_| BadListen(text.to_owned()))
}

/// A listen address that is not an address and port; holds the text given.
#[derive(Debug, Clone, PartialEq)]
pub struct BadListen(pub String);

impl fmt::Display for BadListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not an address and port like 127.0.0.1:8080 or [::1]:8080",
            self.0
        )
    }
}

/// Validates a parsed config document.
pub fn validate(path: &Path, root: &Value) -> Result<Config, ConfigError> {
    let users = root.get("users").and_then(Value::as_array).ok_or_else(|| {
        let typo = root
            .as_object()
            .and_then(|top| misspelt(top, &TOP_FIELDS, "users"))
            .map(|k| format!(" ({k:?} looks like a typo of it)"))
            .unwrap_or_default();
        ConfigError::Shape(
            path.to_owned(),
            format!("expected an object with a \"users\" array{typo}"),
        )
    })?;
    let mut valid: Vec<UserConfig> = Vec::new();
    let mut warnings = Vec::new();
    let mut unknown = root
        .as_object()
        .map(|top| unknown_fields(top, &TOP_FIELDS, ""))
        .unwrap_or_default();
    for (index, entry) in users.iter().enumerate() {
        if let Some(obj) = entry.as_object() {
            let who = obj
                .get("username")
                .and_then(Value::as_str)
                .map(|u| format!(" ({u})"))
                .unwrap_or_default();
            unknown.extend(unknown_fields(
                obj,
                &USER_FIELDS,
                &format!("users[{index}]{who}: "),
            ));
        }
        match schema::parse_user(entry) {
            Ok(user)
                if valid
                    .iter()
                    .any(|u| u.username.eq_ignore_ascii_case(&user.username)) =>
            {
                warnings.push(format!(
                    "users[{index}] ({}): duplicate username, skipped",
                    user.username
                ));
            }
            Ok(user) => valid.push(user),
            Err(problems) => {
                let who = entry
                    .get("username")
                    .and_then(Value::as_str)
                    .map(|u| format!(" ({u})"))
                    .unwrap_or_default();
                for problem in problems {
                    warnings.push(format!("users[{index}]{who}: {problem}"));
                }
            }
        }
    }
    if valid.is_empty() {
        return Err(ConfigError::NoValidUsers(path.to_owned(), warnings));
    }
    let http_listen =
        match root.get("http_listen") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(parse_listen(s).map_err(|e| {
                ConfigError::Shape(path.to_owned(), format!("\"http_listen\": {e}"))
            })?),
            Some(_) => {
                return Err(ConfigError::Shape(
                    path.to_owned(),
                    "\"http_listen\": expected a string like \"127.0.0.1:8080\"".into(),
                ))
            }
        };
    Ok(Config {
        path: path.to_owned(),
        users: valid,
        warnings,
        http_listen,
        unknown,
    })
}

/// The file's text; a missing file is [`ConfigError::Missing`].
pub(crate) fn read_text(path: &Path) -> Result<String, ConfigError> {
    let io_error = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => ConfigError::Missing(path.to_owned()),
        _ => ConfigError::Io(path.to_owned(), e),
    };
    // A FIFO would block `open` until someone writes to it: look before opening.
    let kind = fs::metadata(path).map_err(io_error)?.file_type();
    if !kind.is_file() {
        return Err(ConfigError::Io(
            path.to_owned(),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "not a regular file ({}): give the path of the JSON config file",
                    kind_name(kind)
                ),
            ),
        ));
    }
    fs::read_to_string(path).map_err(io_error)
}

fn kind_name(kind: fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a file"
    }
}

fn read_json(path: &Path) -> Result<Value, ConfigError> {
    parse_json(path, &read_text(path)?)
}

/// Parses the text of a config file as JSON, errors pointing at `file:line:column`.
pub fn parse_json(path: &Path, text: &str) -> Result<Value, ConfigError> {
    // Windows editors like to start UTF-8 files with a byte-order mark.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    serde_json::from_str(text).map_err(|e| ConfigError::Json {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        message: strip_position(&e.to_string()),
    })
}

/// serde_json appends " at line L column C"; we print the position first instead.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests;
