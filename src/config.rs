//! The config file: the Python bot's JSON format, validated with messages that name the
//! file, user and field, and rewritten atomically without losing fields we do not know.

use std::collections::VecDeque;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::chat::Protocol;
use crate::color;
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

/// A config file that loaded: the valid users and a warning for each skipped one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The users that passed validation, in file order.
    pub users: Vec<UserConfig>,
    /// One line per problem that made a user be skipped.
    pub warnings: Vec<String>,
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
                "{}: config file not found (give --config PATH or set TWITCH_CONF_FILE; README shows an example)",
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

/// Validates a parsed config document.
pub fn validate(path: &Path, root: &Value) -> Result<Config, ConfigError> {
    let users = root.get("users").and_then(Value::as_array).ok_or_else(|| {
        ConfigError::Shape(
            path.to_owned(),
            "expected an object with a \"users\" array".into(),
        )
    })?;
    let mut valid: Vec<UserConfig> = Vec::new();
    let mut warnings = Vec::new();
    for (index, entry) in users.iter().enumerate() {
        match parse_user(entry) {
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
    Ok(Config {
        path: path.to_owned(),
        users: valid,
        warnings,
    })
}

/// The file's text; a missing file is [`ConfigError::Missing`].
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
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

/// Every problem of one entry, so that `check` can list them all.
fn parse_user(entry: &Value) -> Result<UserConfig, Vec<String>> {
    let obj = entry
        .as_object()
        .ok_or(vec!["expected an object".to_owned()])?;
    let mut problems = Vec::new();
    let mut note = |r: Result<String, String>| {
        r.unwrap_or_else(|p| {
            problems.push(p);
            String::new()
        })
    };
    let username = note(required_str(obj, "username"));
    let access_token = note(optional_str(obj, "access_token"));
    let client_id = note(required_str(obj, "client_id"));
    let refresh_token = note(optional_str(obj, "refresh_token"));
    let client_secret = note(optional_str(obj, "client_secret"));
    if !username.is_empty()
        && (!(3..=25).contains(&username.len())
            || !username
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        problems.push(format!(
            "field \"username\": {username:?} is not a Twitch login (3-25 letters, digits or _)"
        ));
    }
    for (field, value) in [
        ("username", username.as_str()),
        ("access_token", access_token.as_str()),
        ("client_id", client_id.as_str()),
        ("refresh_token", refresh_token.as_str()),
        ("client_secret", client_secret.as_str()),
    ] {
        if is_placeholder(value) {
            // the value of a token field is not repeated: it might be a real secret after all
            let shown = if field == "username" || field == "client_id" {
                format!(" {value:?}")
            } else {
                String::new()
            };
            problems.push(format!(
                "field {field:?} still holds the example placeholder{shown}; put the real value in"
            ));
        }
    }
    for (field, value) in [("client_id", &client_id), ("client_secret", &client_secret)] {
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            problems.push(format!(
                "field {field:?} holds characters an app credential never has (a space or a line break?)"
            ));
        }
    }
    let mut channels: Vec<String> = Vec::new();
    match obj.get("channels") {
        None | Some(Value::Null) => problems.push("field \"channels\" is missing".into()),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Some(name) = item.as_str() else {
                    problems.push(format!("field \"channels\"[{i}] is not a string"));
                    continue;
                };
                let name = normalise_channel(name);
                if name.is_empty() {
                    continue;
                }
                if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    problems.push(format!(
                        "field \"channels\"[{i}]: {name:?} is not a channel login"
                    ));
                } else if !channels.contains(&name) {
                    channels.push(name);
                }
            }
            if channels.is_empty() && items.iter().all(|i| i.is_string()) {
                problems
                    .push("field \"channels\" is empty: name at least one channel to join".into());
            }
        }
        Some(_) => problems.push("field \"channels\" must be a list of channel names".into()),
    }
    let is_prime_or_turbo = optional_bool(obj, "is_prime_or_turbo", true).unwrap_or_else(|p| {
        problems.push(p);
        true
    });
    let enabled = optional_bool(obj, "enabled", true).unwrap_or_else(|p| {
        problems.push(p);
        true
    });
    let chat_transport = match obj.get("chat_transport") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) => Protocol::parse(name).or_else(|| {
            problems.push(format!(
                "field \"chat_transport\": {name:?} is not \"irc\" or \"eventsub\""
            ));
            None
        }),
        Some(_) => {
            problems.push("field \"chat_transport\" must be \"irc\" or \"eventsub\"".into());
            None
        }
    };
    let colors = color_settings(obj, is_prime_or_turbo, &mut problems);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(UserConfig {
        chat_transport,
        colors,
        username,
        access_token: Secret::new(access_token),
        refresh_token: Secret::new(refresh_token),
        client_id,
        client_secret: Secret::new(client_secret),
        channels,
        is_prime_or_turbo,
        enabled,
        // An unreadable expiry only means "validate to find out".
        token_expiry: obj
            .get("token_expiry")
            .and_then(Value::as_str)
            .and_then(crate::time::parse_rfc3339),
    })
}

/// The color mode fields, each checked; problems name the field.
fn color_settings(
    obj: &Map<String, Value>,
    prime_or_turbo: bool,
    problems: &mut Vec<String>,
) -> mode::Settings {
    let mut settings = mode::Settings::default();
    match obj.get("color_mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => match mode::Kind::parse(name) {
            Some(kind) => settings.kind = kind,
            None => problems.push(format!(
                "field \"color_mode\": {name:?} is not \"random\", \"rainbow\" or \"palette\""
            )),
        },
        Some(_) => problems
            .push("field \"color_mode\" must be \"random\", \"rainbow\" or \"palette\"".into()),
    }
    match obj.get("rainbow_step") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_u64().filter(|n| (1..=359).contains(n)) {
            Some(n) => settings.rainbow_step = n as u32,
            None => problems.push(format!(
                "field \"rainbow_step\": {v} is not a whole number of degrees from 1 to 359"
            )),
        },
    }
    match obj.get("palette_order") {
        None | Some(Value::Null) => {}
        Some(Value::String(o)) if o.eq_ignore_ascii_case("cycle") => {}
        Some(Value::String(o)) if o.eq_ignore_ascii_case("shuffle") => settings.shuffle = true,
        Some(v) => problems.push(format!(
            "field \"palette_order\": {v} is not \"cycle\" or \"shuffle\""
        )),
    }
    match obj.get("palette") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(color::parse_typed) {
                    Some(color::Typed::Hex(hex)) if !prime_or_turbo => problems.push(format!(
                        "field \"palette\"[{i}]: {hex} is a hex color, which needs Turbo or Prime (\"is_prime_or_turbo\" is false); use named colors"
                    )),
                    Some(color::Typed::Hex(hex)) => settings.palette.push(hex),
                    Some(color::Typed::Named(name)) => settings.palette.push(name.to_owned()),
                    None => problems.push(format!(
                        "field \"palette\"[{i}]: {item} is not a color (a name such as sea_green, or hex such as #a1b2c3)"
                    )),
                }
            }
        }
        Some(_) => problems.push("field \"palette\" must be a list of colors".into()),
    }
    if settings.kind == mode::Kind::Palette && !settings.has_palette() {
        problems.push(
            "field \"palette\": \"color_mode\": \"palette\" needs at least two different colors"
                .into(),
        );
    }
    settings
}

/// Lowercase, without a leading `#` or surrounding spaces.
pub fn normalise_channel(name: &str) -> String {
    name.trim().trim_start_matches('#').to_ascii_lowercase()
}

/// The client id shown in README's example config.
pub const EXAMPLE_CLIENT_ID: &str = "0123456789abcdefghijklmnopqrst";

fn is_placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v.starts_with("your_")
        || v.ends_with("_here")
        || v.contains("placeholder")
        || v == EXAMPLE_CLIENT_ID
}

fn required_str(obj: &Map<String, Value>, field: &str) -> Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::String(_)) => Err(format!("field {field:?} is empty")),
        None | Some(Value::Null) => Err(format!("field {field:?} is missing")),
        Some(_) => Err(format!("field {field:?} must be a string")),
    }
}

fn optional_str(obj: &Map<String, Value>, field: &str) -> Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(format!("field {field:?} must be a string")),
    }
}

fn optional_bool(obj: &Map<String, Value>, field: &str, default: bool) -> Result<bool, String> {
    match obj.get(field) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Ok(default),
        Some(_) => Err(format!("field {field:?} must be true or false")),
    }
}

/// The config file the bot writes to, shared by everything that writes it: its writes run
/// one at a time, and it remembers its last few texts so that a reload can tell the bot's
/// own writes from a person's edits.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    /// What this process last wrote, newest first; its lock keeps writes one at a time.
    written: Mutex<VecDeque<Vec<u8>>>,
    /// Called between a write's complete, fsynced temp file and its rename (see
    /// [`ConfigFile::before_rename`]).
    before_rename: Option<fn(&Path)>,
}

/// How many of its recent writes the file remembers.
const WRITES_KEPT: usize = 4;

impl ConfigFile {
    /// The file at `path` (it need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile {
        ConfigFile {
            path: path.into(),
            written: Mutex::new(VecDeque::new()),
            before_rename: None,
        }
    }

    /// Calls `hook` with the temp file's path once a write's temp file is complete and
    /// fsynced, right before it is renamed over the file: the window a crash-safety test
    /// kills the process in. The bot never sets it.
    pub fn before_rename(self, hook: fn(&Path)) -> ConfigFile {
        ConfigFile {
            before_rename: Some(hook),
            ..self
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Saves a user's new tokens: `access_token`, `refresh_token` and `token_expiry` (RFC
    /// 3339 UTC, as the Python bot writes it), changing nothing else in the file.
    pub fn save_tokens(
        &self,
        username: &str,
        access_token: &Secret,
        refresh_token: &Secret,
        expiry: Option<std::time::SystemTime>,
    ) -> Result<(), ConfigError> {
        self.update_user(username, |entry| {
            entry.insert("access_token".into(), access_token.expose().into());
            entry.insert("refresh_token".into(), refresh_token.expose().into());
            match expiry {
                Some(at) => entry.insert(
                    "token_expiry".into(),
                    crate::time::format_rfc3339(at).into(),
                ),
                None => entry.remove("token_expiry"),
            };
        })
    }

    /// Re-reads the file, lets `edit` change the entry of `username` (matched
    /// case-insensitively), and writes the result atomically. Other users and unknown fields
    /// are kept as they are.
    pub fn update_user(
        &self,
        username: &str,
        edit: impl FnOnce(&mut Map<String, Value>),
    ) -> Result<(), ConfigError> {
        // One read-modify-write at a time: users save from the blocking pool's threads.
        let written = lock(&self.written);
        let path = &self.path;
        let mut root = read_json(path).map_err(|e| match e {
            ConfigError::Missing(p) => ConfigError::Io(
                p,
                io::Error::new(io::ErrorKind::NotFound, "the config file is gone"),
            ),
            e => e,
        })?;
        let entry = root
            .get_mut("users")
            .and_then(Value::as_array_mut)
            .and_then(|users| {
                users.iter_mut().find(|u| {
                    u.get("username")
                        .and_then(Value::as_str)
                        .is_some_and(|n| n.trim().eq_ignore_ascii_case(username))
                })
            })
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ConfigError::UnknownUser(path.to_owned(), username.to_owned()))?;
        edit(entry);
        self.write(&root, written)
    }

    /// Writes the environment's users into the file (see [`merge_env`]), creating it (mode
    /// 0600) when there is none, so that rotated tokens survive a restart. Returns whether
    /// the file was written.
    pub fn apply_env(&self, env: &[Map<String, Value>]) -> Result<bool, ConfigError> {
        if env.is_empty() {
            return Ok(false);
        }
        let written = lock(&self.written);
        let path = &self.path;
        let (mut root, created) = match read_json(path) {
            Ok(root) => (root, false),
            Err(ConfigError::Missing(_)) => (serde_json::json!({ "users": [] }), true),
            Err(e) => return Err(e),
        };
        if !root.is_object() || !matches!(root.get("users"), None | Some(Value::Array(_))) {
            return Err(ConfigError::Shape(
                path.to_owned(),
                "expected an object with a \"users\" array".into(),
            ));
        }
        if !merge_env(&mut root, env) && !created {
            return Ok(false);
        }
        self.write(&root, written)?;
        Ok(true)
    }

    fn write(
        &self,
        root: &Value,
        mut written: MutexGuard<'_, VecDeque<Vec<u8>>>,
    ) -> Result<(), ConfigError> {
        let path = &self.path;
        let mut text = serde_json::to_string_pretty(root)
            .map_err(|e| ConfigError::Shape(path.to_owned(), e.to_string()))?;
        text.push('\n');
        write_atomic_with(path, text.as_bytes(), self.before_rename)
            .map_err(|e| ConfigError::Io(path.to_owned(), e))?;
        // a few recent writes, so a reload that reads one write while the next lands still knows it
        written.truncate(WRITES_KEPT - 1);
        written.push_front(text.into_bytes());
        Ok(())
    }

    /// True when `bytes` are exactly what this process recently wrote to the file.
    pub fn written_by_us(&self, bytes: &[u8]) -> bool {
        lock(&self.written).iter().any(|w| w == bytes)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The users given by `TWITCH_USERNAME_<n>`, `TWITCH_ACCESS_TOKEN_<n>`,
/// `TWITCH_REFRESH_TOKEN_<n>`, `TWITCH_CLIENT_ID_<n>`, `TWITCH_CLIENT_SECRET_<n>`,
/// `TWITCH_CHANNELS_<n>` (comma-separated, default the username),
/// `USE_RANDOM_COLORS_<n>` (default true) and `TWITCH_CHAT_TRANSPORT_<n>` (irc or
/// eventsub), for n = 1, 2, … until a username is missing; as config entries. An
/// unreadable value names its variable.
pub fn env_users(var: impl Fn(&str) -> Option<String>) -> Result<Vec<Map<String, Value>>, String> {
    let get = |name: String| {
        var(&name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mut users = Vec::new();
    for n in 1.. {
        let Some(username) = get(format!("TWITCH_USERNAME_{n}")) else {
            break;
        };
        let mut entry = Map::new();
        entry.insert("username".into(), username.clone().into());
        for (field, name) in [
            ("access_token", "TWITCH_ACCESS_TOKEN"),
            ("refresh_token", "TWITCH_REFRESH_TOKEN"),
            ("client_id", "TWITCH_CLIENT_ID"),
            ("client_secret", "TWITCH_CLIENT_SECRET"),
        ] {
            if let Some(value) = get(format!("{name}_{n}")) {
                entry.insert(field.into(), value.into());
            }
        }
        let channels: Vec<Value> = match get(format!("TWITCH_CHANNELS_{n}")) {
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(Value::from)
                .collect(),
            None => vec![username.into()],
        };
        entry.insert("channels".into(), channels.into());
        let name = format!("USE_RANDOM_COLORS_{n}");
        let random = match get(name.clone()).map(|v| v.to_ascii_lowercase()).as_deref() {
            None => true,
            Some("true" | "1" | "yes" | "on") => true,
            Some("false" | "0" | "no" | "off") => false,
            Some(other) => return Err(format!("{name}={other:?}: expected true or false")),
        };
        entry.insert("is_prime_or_turbo".into(), random.into());
        for (field, var) in [
            ("color_mode", "TWITCH_COLOR_MODE"),
            ("palette_order", "TWITCH_PALETTE_ORDER"),
        ] {
            if let Some(value) = get(format!("{var}_{n}")) {
                entry.insert(field.into(), value.into());
            }
        }
        let name = format!("TWITCH_RAINBOW_STEP_{n}");
        if let Some(value) = get(name.clone()) {
            let step: u64 = value
                .parse()
                .map_err(|_| format!("{name}={value:?}: expected degrees, 1 to 359"))?;
            entry.insert("rainbow_step".into(), step.into());
        }
        if let Some(list) = get(format!("TWITCH_PALETTE_{n}")) {
            let colors: Vec<Value> = list
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(Value::from)
                .collect();
            entry.insert("palette".into(), colors.into());
        }
        let name = format!("TWITCH_CHAT_TRANSPORT_{n}");
        if let Some(value) = get(name.clone()) {
            let transport = Protocol::parse(&value)
                .ok_or_else(|| format!("{name}={value:?}: expected irc or eventsub"))?;
            entry.insert("chat_transport".into(), transport.name().into());
        }
        users.push(entry);
    }
    Ok(users)
}

const TOKEN_FIELDS: [&str; 3] = ["access_token", "refresh_token", "token_expiry"];

/// Merges environment users into a config document: a user missing from it is added; for
/// a user in both, the document's tokens win (they are the newest) and the environment's
/// other fields win. Returns whether anything changed.
pub fn merge_env(root: &mut Value, env: &[Map<String, Value>]) -> bool {
    if !root.is_object() {
        return false;
    }
    let users = match root.get_mut("users") {
        Some(Value::Array(users)) => users,
        Some(_) => return false,
        None => {
            root["users"] = Value::Array(Vec::new());
            match root.get_mut("users") {
                Some(Value::Array(users)) => users,
                _ => return false,
            }
        }
    };
    let mut changed = false;
    for wanted in env {
        let name = wanted.get("username").and_then(Value::as_str).unwrap_or("");
        let existing = users.iter_mut().filter_map(Value::as_object_mut).find(|u| {
            u.get("username")
                .and_then(Value::as_str)
                .is_some_and(|n| n.trim().eq_ignore_ascii_case(name))
        });
        match existing {
            None => {
                users.push(Value::Object(wanted.clone()));
                changed = true;
            }
            Some(entry) => {
                for (key, value) in wanted {
                    let has_token = entry
                        .get(key)
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.trim().is_empty());
                    if TOKEN_FIELDS.contains(&key.as_str()) && has_token {
                        continue;
                    }
                    if key == "username" || entry.get(key) == Some(value) {
                        continue;
                    }
                    entry.insert(key.clone(), value.clone());
                    changed = true;
                }
            }
        }
    }
    changed
}

/// Writes `bytes` to `path` so that a crash at any moment leaves either the old or the new
/// file: a fresh temp file beside it, fsync, rename over it, fsync the directory.
/// - A symlink is written through: its target is replaced and the link kept.
/// - The temp file is created exclusively (`O_CREAT|O_EXCL`, so a planted file or symlink
///   makes it pick another random name) with mode 0600, then given the original file's
///   owner, group and mode (less any bits for others) before it takes its place.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, None)
}

fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    before_rename: Option<fn(&Path)>,
) -> io::Result<()> {
    let target = match fs::canonicalize(path) {
        Ok(target) => target,
        Err(e) if e.kind() == io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(e),
    };
    let dir = parent_dir(&target);
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "config path has no file name")
    })?;
    let original = fs::metadata(&target).ok();
    let (tmp, mut file) = create_temp(&dir, &name.to_string_lossy())?;
    let result = (|| {
        file.write_all(bytes)?;
        #[cfg(unix)]
        if let Some(meta) = &original {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            if meta.uid() != file.metadata()?.uid() || meta.gid() != file.metadata()?.gid() {
                std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()))?;
            }
            // tokens are never for everyone: others lose their bits
            file.set_permissions(fs::Permissions::from_mode(meta.mode() & 0o7770))?;
        }
        file.sync_all()?;
        drop(file);
        if let Some(hook) = before_rename {
            hook(&tmp);
        }
        fs::rename(&tmp, &target)?;
        #[cfg(unix)]
        fs::File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// The temp-file prefix for a file `name`: `.NAME.tmp.`.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp.")
}

/// Creates `.NAME.tmp.<pid>.<random>` in `dir`, exclusively, mode 0600.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    use nanorand::Rng;
    let mut rng = nanorand::WyRand::new();
    let mut last = None;
    for _ in 0..16 {
        let tmp = dir.join(format!(
            "{}{}.{:016x}",
            temp_prefix(name),
            std::process::id(),
            rng.generate::<u64>()
        ));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

/// The refresh tokens for `username` in `docs` (leftover temp files, newest first) that
/// differ from `current`, without repeats.
pub fn spare_refresh_tokens(docs: &[Value], username: &str, current: &Secret) -> Vec<Secret> {
    let mut spares: Vec<Secret> = Vec::new();
    for doc in docs {
        let Some(users) = doc.get("users").and_then(Value::as_array) else {
            continue;
        };
        for user in users {
            let name = user.get("username").and_then(Value::as_str).unwrap_or("");
            let refresh = user
                .get("refresh_token")
                .and_then(Value::as_str)
                .unwrap_or("");
            let refresh = Secret::new(refresh.trim());
            if name.trim().eq_ignore_ascii_case(username)
                && !refresh.is_empty()
                && refresh != *current
                && !spares.contains(&refresh)
            {
                spares.push(refresh);
            }
        }
    }
    spares
}

/// Removes the temp files an interrupted write of the config at `path` left behind
/// (`.NAME.tmp.*` beside its target), returning the complete JSON documents among them,
/// newest first: a process killed between writing one and renaming it may have left the
/// only copy of a rotated token pair there.
pub fn sweep_temp_files(path: &Path) -> Vec<Value> {
    let target = fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let prefix = temp_prefix(&name);
    let Ok(entries) = fs::read_dir(parent_dir(&target)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(&prefix) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_file() {
            if let Some(doc) = fs::read_to_string(entry.path())
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .filter(Value::is_object)
            {
                found.push((meta.modified().ok(), doc));
            }
        }
        let _ = fs::remove_file(entry.path());
    }
    found.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    found.into_iter().map(|(_, doc)| doc).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcc-config-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const GOOD: &str = r##"{
  "users": [
    {
      "username": "HueShift_Bot",
      "access_token": "abcdefghijklmnopqrstuvwxyz0123",
      "refresh_token": "r1",
      "client_id": "cid",
      "client_secret": "",
      "channels": ["#LumenWave", "lumenwave", " other "],
      "is_prime_or_turbo": true,
      "future_field": {"kept": [1, 2]}
    },
    {"username": "x", "access_token": "t", "client_id": "c", "channels": ["a"]},
    {"username": "second_user", "access_token": "your_token_here", "client_id": "c", "channels": ["a"]},
    {"username": "third_user", "access_token": "t", "client_id": "c", "channels": []}
  ],
  "top_level_unknown": true
}"##;

    #[test]
    fn loads_valid_users_and_explains_the_rest() {
        let dir = temp_dir("load");
        let path = dir.join("twitch_colorchanger.conf");
        fs::write(&path, GOOD).unwrap();
        let cfg = load(&path).unwrap();
        assert_eq!(cfg.users.len(), 1);
        let u = &cfg.users[0];
        assert_eq!(u.channels, ["lumenwave", "other"]);
        assert!(u.is_prime_or_turbo && u.enabled);
        assert_eq!(
            cfg.warnings,
            [
                "users[1] (x): field \"username\": \"x\" is not a Twitch login (3-25 letters, digits or _)",
                "users[2] (second_user): field \"access_token\" still holds the example placeholder; put the real value in",
                "users[3] (third_user): field \"channels\" is empty: name at least one channel to join",
            ]
        );
        assert!(!format!("{cfg:?}").contains("abcdefghijklmnop"));
    }

    #[test]
    fn color_modes_are_read_and_every_bad_field_is_named() {
        let user = |extra: Value, prime: bool| {
            let mut u = serde_json::json!({"username": "hueshift_bot", "client_id": "cid",
                "channels": ["a"], "is_prime_or_turbo": prime});
            u.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            validate(Path::new("c.conf"), &serde_json::json!({ "users": [u] }))
        };
        let cfg = user(
            serde_json::json!({"color_mode": "Palette", "palette": ["Sea_Green", "ABC", "#00ff00"],
                "palette_order": "shuffle", "rainbow_step": 45}),
            true,
        )
        .unwrap();
        let c = &cfg.users[0].colors;
        assert_eq!(c.kind, mode::Kind::Palette);
        assert_eq!(c.palette, ["sea_green", "#aabbcc", "#00ff00"]);
        assert!(c.shuffle);
        assert_eq!(c.rainbow_step, 45);
        assert_eq!(
            user(serde_json::json!({}), true).unwrap().users[0].colors,
            mode::Settings::default()
        );
        let Err(ConfigError::NoValidUsers(_, problems)) = user(
            serde_json::json!({"color_mode": "gradient", "rainbow_step": 0, "palette": ["red", "purple", "#abcdef"],
                "palette_order": "backwards"}),
            false,
        ) else {
            panic!("accepted")
        };
        assert_eq!(
            problems,
            [
                "users[0] (hueshift_bot): field \"color_mode\": \"gradient\" is not \"random\", \"rainbow\" or \"palette\"",
                "users[0] (hueshift_bot): field \"rainbow_step\": 0 is not a whole number of degrees from 1 to 359",
                "users[0] (hueshift_bot): field \"palette_order\": \"backwards\" is not \"cycle\" or \"shuffle\"",
                "users[0] (hueshift_bot): field \"palette\"[1]: \"purple\" is not a color (a name such as sea_green, or hex such as #a1b2c3)",
                "users[0] (hueshift_bot): field \"palette\"[2]: #abcdef is a hex color, which needs Turbo or Prime (\"is_prime_or_turbo\" is false); use named colors",
            ]
        );
        let Err(ConfigError::NoValidUsers(_, problems)) = user(
            serde_json::json!({"color_mode": "palette", "palette": ["red", "RED"]}),
            true,
        ) else {
            panic!("accepted")
        };
        assert!(
            problems[0].contains("needs at least two different colors"),
            "{problems:?}"
        );
    }

    #[test]
    fn color_modes_and_the_transport_come_from_the_environment_too() {
        let env = |k: &str| {
            [
                ("TWITCH_USERNAME_1", "env_user"),
                ("TWITCH_COLOR_MODE_1", "palette"),
                ("TWITCH_PALETTE_1", "red, blue ,green"),
                ("TWITCH_PALETTE_ORDER_1", "shuffle"),
                ("TWITCH_RAINBOW_STEP_1", "15"),
                ("TWITCH_CHAT_TRANSPORT_1", "EventSub"),
            ]
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| (*v).to_owned())
        };
        let users = env_users(env).unwrap();
        assert_eq!(users[0]["color_mode"], "palette");
        assert_eq!(
            users[0]["palette"],
            serde_json::json!(["red", "blue", "green"])
        );
        assert_eq!(users[0]["palette_order"], "shuffle");
        assert_eq!(users[0]["rainbow_step"], 15);
        assert_eq!(users[0]["chat_transport"], "eventsub");
        let bad = |var: &'static str, value: &'static str| {
            move |k: &str| match k {
                "TWITCH_USERNAME_1" => Some("env_user".to_owned()),
                k if k == var => Some(value.to_owned()),
                _ => None,
            }
        };
        assert_eq!(
            env_users(bad("TWITCH_RAINBOW_STEP_1", "lots")).unwrap_err(),
            "TWITCH_RAINBOW_STEP_1=\"lots\": expected degrees, 1 to 359"
        );
        assert_eq!(
            env_users(bad("TWITCH_CHAT_TRANSPORT_1", "pubsub")).unwrap_err(),
            "TWITCH_CHAT_TRANSPORT_1=\"pubsub\": expected irc or eventsub"
        );
    }

    #[test]
    fn a_user_with_only_client_credentials_is_valid_and_tokens_save_alone() {
        let dir = temp_dir("tokens");
        let path = dir.join("c.conf");
        fs::write(&path, r#"{"users":[{"username":"new_user","client_id":"cid","channels":["a"],"x":1},{"username":"other","client_id":"c2","channels":["b"]}]}"#).unwrap();
        let cfg = load(&path).unwrap();
        assert!(cfg.users[0].access_token.is_empty() && cfg.users[0].token_expiry.is_none());
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_781_653_392);
        ConfigFile::new(&path)
            .save_tokens(
                "NEW_USER",
                &Secret::new("acc"),
                &Secret::new("ref"),
                Some(at),
            )
            .unwrap();
        let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            after,
            serde_json::json!({"users":[{"username":"new_user","client_id":"cid","channels":["a"],"x":1,
                "access_token":"acc","refresh_token":"ref","token_expiry":"2026-06-16T23:43:12Z"},
                {"username":"other","client_id":"c2","channels":["b"]}]})
        );
        assert_eq!(load(&path).unwrap().users[0].token_expiry, Some(at));
    }

    #[test]
    fn malformed_json_names_file_line_and_column() {
        let dir = temp_dir("json");
        let path = dir.join("bad.conf");
        fs::write(
            &path,
            "{\n  \"users\": [\n    {\"username\": \"a\",}\n  ]\n}",
        )
        .unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!("{}:3:22: invalid JSON: trailing comma", path.display())
        );
    }

    #[test]
    fn no_valid_user_and_missing_file_are_errors() {
        let dir = temp_dir("none");
        let path = dir.join("c.conf");
        fs::write(&path, r#"{"users": [{"username": "ab"}]}"#).unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("no valid user") && err.contains("users[0] (ab)"),
            "{err}"
        );
        assert!(matches!(
            load(&dir.join("nope")),
            Err(ConfigError::Missing(_))
        ));
        fs::write(&path, "[1]").unwrap();
        assert!(load(&path)
            .unwrap_err()
            .to_string()
            .contains("\"users\" array"));
    }

    #[test]
    fn update_changes_one_field_and_keeps_everything_else() {
        let dir = temp_dir("update");
        let path = dir.join("c.conf");
        fs::write(&path, GOOD).unwrap();
        ConfigFile::new(&path)
            .update_user("hueshift_bot", |u| {
                u.insert("is_prime_or_turbo".into(), Value::Bool(false));
            })
            .unwrap();
        let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let mut want: Value = serde_json::from_str(GOOD).unwrap();
        want["users"][0]["is_prime_or_turbo"] = Value::Bool(false);
        assert_eq!(after, want);
        // key order survives too
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.find("\"username\"").unwrap() < text.find("\"future_field\"").unwrap());
        #[cfg(unix)]
        {
            // written 0644 by the test: owner and group keep their bits, others lose theirs
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o640
            );
        }
        assert!(
            fs::read_dir(&dir).unwrap().count() == 1,
            "temp file left behind"
        );
        assert!(matches!(
            ConfigFile::new(&path).update_user("nobody", |_| {}),
            Err(ConfigError::UnknownUser(..))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_config_is_written_through_to_its_target() {
        let dir = temp_dir("symlink");
        fs::create_dir_all(dir.join("real")).unwrap();
        fs::write(dir.join("real/c.conf"), GOOD).unwrap();
        std::os::unix::fs::symlink("real/c.conf", dir.join("c.conf")).unwrap();
        let link = dir.join("c.conf");
        ConfigFile::new(&link)
            .save_tokens(
                "hueshift_bot",
                &Secret::new("new_access"),
                &Secret::new("new_refresh"),
                None,
            )
            .unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link survives"
        );
        let target: Value =
            serde_json::from_str(&fs::read_to_string(dir.join("real/c.conf")).unwrap()).unwrap();
        assert_eq!(target["users"][0]["refresh_token"], "new_refresh");
        assert_eq!(
            fs::read_dir(dir.join("real")).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_or_stale_temp_file_cannot_catch_the_tokens() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("planted");
        let path = dir.join("c.conf");
        fs::write(&path, GOOD).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        // the old, predictable temp names: a symlink to a file of the attacker's, and a 0644 file
        let victim = dir.join("victim");
        std::os::unix::fs::symlink(
            &victim,
            dir.join(format!(".c.conf.tmp{}", std::process::id())),
        )
        .unwrap();
        let stale = dir.join(format!(".c.conf.tmp.{}.0", std::process::id()));
        fs::write(&stale, "x").unwrap();
        fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
        ConfigFile::new(&path)
            .save_tokens("hueshift_bot", &Secret::new("a2"), &Secret::new("r2"), None)
            .unwrap();
        assert!(!victim.exists(), "nothing written through a planted link");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            load(&path).unwrap().users[0].refresh_token,
            Secret::new("r2")
        );
    }

    #[cfg(unix)]
    #[test]
    fn owner_group_and_mode_are_kept() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = temp_dir("owner");
        let path = dir.join("c.conf");
        fs::write(&path, GOOD).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let root = fs::metadata(&path).unwrap().uid() == 0;
        if root {
            std::os::unix::fs::chown(&path, Some(65532), Some(65533)).unwrap();
        }
        ConfigFile::new(&path)
            .save_tokens("hueshift_bot", &Secret::new("a2"), &Secret::new("r2"), None)
            .unwrap();
        let meta = fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        if root {
            assert_eq!((meta.uid(), meta.gid()), (65532, 65533));
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_directory_is_refused_without_blocking_and_a_bom_is_fine() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("fifo.conf");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = load(&fifo).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: not a regular file (a FIFO): give the path of the JSON config file",
                fifo.display()
            )
        );
        let err = load(&dir).unwrap_err().to_string();
        assert!(err.contains("not a regular file (a directory)"), "{err}");
        let bom = dir.join("bom.conf");
        fs::write(&bom, format!("\u{feff}{GOOD}")).unwrap();
        assert_eq!(load(&bom).unwrap().users.len(), 1);
    }

    #[test]
    fn leftover_temp_files_are_read_and_removed() {
        let dir = temp_dir("leftover");
        let path = dir.join("c.conf");
        fs::write(&path, GOOD).unwrap();
        let complete = dir.join(".c.conf.tmp.99999.1234");
        fs::write(&complete, GOOD.replace("\"r1\"", "\"r_newer\"")).unwrap();
        let torn = dir.join(".c.conf.tmp.99999.5678");
        fs::write(&torn, &GOOD[..40]).unwrap();
        let other = dir.join(".other.tmp.1.2");
        fs::write(&other, "keep").unwrap();
        let found = sweep_temp_files(&path);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["users"][0]["refresh_token"], "r_newer");
        assert!(!complete.exists() && !torn.exists() && other.exists());
    }

    #[test]
    fn app_credentials_with_spaces_or_line_breaks_are_named() {
        let dir = temp_dir("creds");
        let path = dir.join("c.conf");
        fs::write(&path, r#"{"users":[{"username":"abc","client_id":"ab cd","client_secret":"x\r\ny","channels":["a"]}]}"#).unwrap();
        let Err(ConfigError::NoValidUsers(_, problems)) = load(&path) else {
            panic!("expected no valid user");
        };
        assert_eq!(
            problems,
            [
                "users[0] (abc): field \"client_id\" holds characters an app credential never has (a space or a line break?)",
                "users[0] (abc): field \"client_secret\" holds characters an app credential never has (a space or a line break?)",
            ]
        );
        assert!(
            !format!("{problems:?}").contains("x\r\ny"),
            "the secret is not repeated"
        );
    }

    #[test]
    fn path_comes_from_flag_then_env_then_default() {
        assert_eq!(
            resolve_path(Some("a".into()), Some("b".into())),
            PathBuf::from("a")
        );
        assert_eq!(resolve_path(None, Some("b".into())), PathBuf::from("b"));
        assert_eq!(
            resolve_path(None, Some(String::new())),
            PathBuf::from("twitch_colorchanger.conf")
        );
        assert_eq!(
            resolve_path(None, None),
            PathBuf::from("twitch_colorchanger.conf")
        );
    }
}
