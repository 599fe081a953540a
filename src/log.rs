//! One line per event on stderr, as text (colored on a TTY unless `NO_COLOR`) or JSON
//! (`LOG_FORMAT=json`), with the user and channel it concerns. `DEBUG=true` adds detail.
//! Callers pass no secrets: tokens live in [`crate::secret::Secret`], which prints redacted.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

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
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after H. Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_781_653_392)),
            "2026-06-16T23:43:12Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
