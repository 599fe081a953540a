//! One line per event on stderr, as text (colored on a TTY unless `NO_COLOR`) or JSON
//! (`LOG_FORMAT=json`), with the user and channel it concerns. `DEBUG=true` adds detail.
//! Callers pass no secrets: tokens live in [`crate::secret::Secret`], which prints redacted.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::SystemTime;

/// How severe a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Protocol detail, shown with `DEBUG=true`.
    Debug,
    /// Normal operation.
    Info,
    /// Something is off but the bot copes.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
    fn ansi(self) -> &'static str {
        match self {
            Level::Debug => "\x1b[2m",
            Level::Info => "\x1b[32m",
            Level::Warn => "\x1b[33m",
            Level::Error => "\x1b[31m",
        }
    }
}

/// Output settings, read once from the environment.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Print debug lines.
    pub debug: bool,
    /// One JSON object per line.
    pub json: bool,
    /// ANSI colors.
    pub color: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

impl Settings {
    /// From `DEBUG`, `LOG_FORMAT` and `NO_COLOR`, with colors only when stderr is a terminal.
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok();
        let debug = var("DEBUG")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        let json = var("LOG_FORMAT").is_some_and(|v| v.eq_ignore_ascii_case("json"));
        let no_color = var("NO_COLOR").is_some_and(|v| !v.is_empty());
        Settings {
            debug,
            json,
            color: !json && !no_color && std::io::stderr().is_terminal(),
        }
    }
}

/// Sets the output settings (the first call wins).
pub fn init(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

fn settings() -> Settings {
    *SETTINGS.get_or_init(Settings::from_env)
}

/// True when debug lines are printed.
pub fn debug_enabled() -> bool {
    settings().debug
}

/// Writes one line.
pub fn write(level: Level, user: Option<&str>, channel: Option<&str>, args: fmt::Arguments<'_>) {
    let s = settings();
    if level == Level::Debug && !s.debug {
        return;
    }
    let ts = rfc3339(SystemTime::now());
    let line = if s.json {
        let mut obj = serde_json::Map::new();
        obj.insert("ts".into(), ts.into());
        obj.insert("level".into(), level.name().into());
        if let Some(u) = user {
            obj.insert("user".into(), u.into());
        }
        if let Some(c) = channel {
            obj.insert("channel".into(), c.into());
        }
        obj.insert("msg".into(), args.to_string().into());
        serde_json::Value::Object(obj).to_string()
    } else {
        let mut out = String::new();
        let who = match (user, channel) {
            (Some(u), Some(c)) => format!(" [{u} #{c}]"),
            (Some(u), None) => format!(" [{u}]"),
            (None, Some(c)) => format!(" [#{c}]"),
            (None, None) => String::new(),
        };
        if s.color {
            out.push_str(&format!(
                "{ts} {}{:<5}\x1b[0m{who} {args}",
                level.ansi(),
                level.name().to_uppercase()
            ));
        } else {
            out.push_str(&format!(
                "{ts} {:<5}{who} {args}",
                level.name().to_uppercase()
            ));
        }
        out
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// Logs at a level: `log!(Info, user, channel, "format", args…)`; user and channel are
/// `Option<&str>`.
#[macro_export]
macro_rules! log {
    ($level:ident, $user:expr, $chan:expr, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, $user, $chan, format_args!($($arg)+))
    };
}

/// `2026-11-22T22:30:48Z` for a time (UTC, whole seconds).
pub use crate::time::format_rfc3339 as rfc3339;
