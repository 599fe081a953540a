//! Users from `TWITCH_*_<n>` environment variables, and their merge into the file.

use std::fmt;

use serde_json::{Map, Value};

use crate::chat::Protocol;

/// A `TWITCH_*_<n>` variable whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    /// The variable's name.
    pub variable: String,
    /// Its value.
    pub value: String,
    /// What a value must be.
    pub expected: &'static str,
}

impl EnvError {
    fn new(variable: &str, value: &str, expected: &'static str) -> EnvError {
        EnvError {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected,
        }
    }
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.variable, self.value, self.expected)
    }
}

impl std::error::Error for EnvError {}

/// The users given by `TWITCH_USERNAME_<n>`, `TWITCH_ACCESS_TOKEN_<n>`,
/// `TWITCH_REFRESH_TOKEN_<n>`, `TWITCH_CLIENT_ID_<n>`, `TWITCH_CLIENT_SECRET_<n>`,
/// `TWITCH_CHANNELS_<n>` (comma-separated, default the username),
/// `USE_RANDOM_COLORS_<n>` (default true) and `TWITCH_CHAT_TRANSPORT_<n>` (irc or
/// eventsub), for n = 1, 2, … until a username is missing; as config entries. An
/// unreadable value names its variable.
pub fn env_users(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Vec<Map<String, Value>>, EnvError> {
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
            Some(other) => return Err(EnvError::new(&name, other, "expected true or false")),
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
                .map_err(|_| EnvError::new(&name, &value, "expected degrees, 1 to 359"))?;
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
                .ok_or_else(|| EnvError::new(&name, &value, "expected irc or eventsub"))?;
            entry.insert("chat_transport".into(), transport.name().into());
        }
        users.push(entry);
    }
    Ok(users)
}

pub(super) const TOKEN_FIELDS: [&str; 3] = ["access_token", "refresh_token", "token_expiry"];

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
