//! One user's entry: every field read and checked, with a message that names the field.

use std::fmt;

use serde_json::{Map, Value};

use super::user::UserConfig;
use super::USER_FIELDS;
use crate::chat::Protocol;
use crate::secret::Secret;
use crate::{color, mode};

/// Every problem of one entry, so that `check` can list them all.
pub(super) fn parse_user(entry: &Value) -> Result<UserConfig, Vec<String>> {
    let obj = entry
        .as_object()
        .ok_or(vec!["expected an object".to_owned()])?;
    let mut problems = Vec::new();
    let mut note = |r: Result<String, FieldProblem>| {
        r.unwrap_or_else(|p| {
            problems.push(p.in_entry(obj));
            String::new()
        })
    };
    let username = note(required_str(obj, "username"));
    let access_token = note(optional_str(obj, "access_token"));
    let client_id = note(required_str(obj, "client_id"));
    let refresh_token = note(optional_str(obj, "refresh_token"));
    let client_secret = note(optional_str(obj, "client_secret"));
    if !username.is_empty() && !is_login(&username) {
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
        None | Some(Value::Null) => problems.push(wrong("channels", Wrong::Missing).in_entry(obj)),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let Some(name) = item.as_str() else {
                    problems.push(format!("field \"channels\"[{i}] is not a string"));
                    continue;
                };
                let login = normalise_channel(name);
                if login.is_empty() {
                    problems.push(format!(
                        "field \"channels\"[{i}]: {name:?} names no channel"
                    ));
                    continue;
                }
                let name = login;
                if !is_channel(&name) {
                    problems.push(format!(
                        "field \"channels\"[{i}]: {name:?} is not a channel login"
                    ));
                } else if !channels.contains(&name) {
                    channels.push(name);
                }
            }
            if items.is_empty() {
                problems
                    .push("field \"channels\" is empty: name at least one channel to join".into());
            }
        }
        Some(_) => problems.push("field \"channels\" must be a list of channel names".into()),
    }
    let is_prime_or_turbo = optional_bool(obj, "is_prime_or_turbo", true).unwrap_or_else(|p| {
        problems.push(p.to_string());
        true
    });
    let enabled = optional_bool(obj, "enabled", true).unwrap_or_else(|p| {
        problems.push(p.to_string());
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
pub(super) fn color_settings(
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
                        "field \"palette\"[{i}]: {item} is not a color: use {}", color::accepted()
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

/// A Twitch login: 3-25 letters, digits or `_`.
pub fn is_login(name: &str) -> bool {
    (3..=25).contains(&name.len()) && is_channel(name)
}

/// A channel's login as the bot keeps it (see [`normalise_channel`]): letters, digits or `_`.
pub fn is_channel(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Lowercase, without a leading `#` or surrounding spaces.
pub fn normalise_channel(name: &str) -> String {
    name.trim().trim_start_matches('#').to_ascii_lowercase()
}

/// The client id shown in README's example config.
pub const EXAMPLE_CLIENT_ID: &str = "0123456789abcdefghijklmnopqrst";

pub(super) fn is_placeholder(value: &str) -> bool {
    let v = value.to_ascii_lowercase();
    v.starts_with("your_")
        || v.ends_with("_here")
        || v.contains("placeholder")
        || v == EXAMPLE_CLIENT_ID
}

/// What is wrong with one field of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FieldProblem {
    field: &'static str,
    what: Wrong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wrong {
    Empty,
    Missing,
    NotAString,
    NotABool,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.what {
            Wrong::Empty => "is empty",
            Wrong::Missing => "is missing",
            Wrong::NotAString => "must be a string",
            Wrong::NotABool => "must be true or false",
        };
        write!(f, "field {:?} {what}", self.field)
    }
}

impl FieldProblem {
    /// The problem as said of the entry `obj`: a missing field names the key that looks like
    /// a typo of it (`"chanels"` for `"channels"`).
    fn in_entry(self, obj: &Map<String, Value>) -> String {
        match super::misspelt(obj, &USER_FIELDS, self.field) {
            Some(typo) if self.what == Wrong::Missing => {
                format!("{self} ({typo:?} looks like a typo of it)")
            }
            _ => self.to_string(),
        }
    }
}

fn wrong(field: &'static str, what: Wrong) -> FieldProblem {
    FieldProblem { field, what }
}

pub(super) fn required_str(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<String, FieldProblem> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
        Some(Value::String(_)) => Err(wrong(field, Wrong::Empty)),
        None | Some(Value::Null) => Err(wrong(field, Wrong::Missing)),
        Some(_) => Err(wrong(field, Wrong::NotAString)),
    }
}

pub(super) fn optional_str(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<String, FieldProblem> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.trim().to_owned()),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(wrong(field, Wrong::NotAString)),
    }
}

pub(super) fn optional_bool(
    obj: &Map<String, Value>,
    field: &'static str,
    default: bool,
) -> Result<bool, FieldProblem> {
    match obj.get(field) {
        Some(Value::Bool(b)) => Ok(*b),
        None | Some(Value::Null) => Ok(default),
        Some(_) => Err(wrong(field, Wrong::NotABool)),
    }
}
