//! One line per event on stderr, as text (colored on a TTY unless `NO_COLOR`) or JSON
//! (`LOG_FORMAT=json`), with the user and channel it concerns. `DEBUG=true` adds detail.
//! Under systemd's journal (`$JOURNAL_STREAM` names stderr) a line carries its syslog
//! priority (`<3>` …) instead of a timestamp; under OpenWrt's procd (`LOG_FORMAT=procd`)
//! it has no timestamp either, and warnings and errors go to stderr, the rest to stdout.
//! Callers pass no secrets: tokens live in [`crate::secret::Secret`], which prints redacted.

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::{Mutex, OnceLock};
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
    /// Its name in a text line, padded to one width.
    fn shown(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO ",
            Level::Warn => "WARN ",
            Level::Error => "ERROR",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
    /// Its syslog priority, as sd-daemon(3) prefixes it to a line for the journal.
    fn priority(self) -> &'static str {
        match self {
            Level::Debug => "<7>",
            Level::Info => "<6>",
            Level::Warn => "<4>",
            Level::Error => "<3>",
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

/// What is wrong with `DEBUG` and `LOG_FORMAT`, one line each (the bot then uses the
/// default, and says so).
pub fn env_problems(var: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(v) = var("DEBUG").filter(|v| !v.is_empty()) {
        if !matches!(
            v.to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on" | "0" | "false" | "no" | "off"
        ) {
            problems.push(format!(
                "environment variable DEBUG={v:?}: expected true or false (debug lines stay off)"
            ));
        }
    }
    if let Some(v) = var("LOG_FORMAT").filter(|v| !v.is_empty()) {
        if !matches!(
            v.to_ascii_lowercase().as_str(),
            "text" | "json" | "journal" | "procd"
        ) {
            problems.push(format!(
                "environment variable LOG_FORMAT={v:?}: expected text, json, journal or procd (using text)"
            ));
        }
    }
    problems
}

/// Output settings, read once from the environment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Also append JSON lines to this file (`LOG_FILE`).
    pub file: Option<std::path::PathBuf>,
    /// Print debug lines.
    pub debug: bool,
    /// Lines below this level are not printed (tests that make millions of events).
    pub quiet_below: Level,
    /// One JSON object per line.
    pub json: bool,
    /// ANSI colors.
    pub color: bool,
    /// Lines go through the test harness's capture (see [`Settings::captured`]).
    pub captured: bool,
    /// Who reads the lines, and so what they carry besides the message.
    pub reader: Reader,
}

/// Who reads the bot's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// A terminal, a file, `docker logs`: each line starts with its time.
    Plain,
    /// systemd's journal, which adds the time: each line starts with its priority (`<3>`).
    Journal,
    /// OpenWrt's procd, whose logread adds the time and takes stderr as errors: no time;
    /// warnings and errors on stderr, the rest on stdout.
    Procd,
}

impl Reader {
    /// Whether a line of `level` goes to stdout rather than stderr: procd files stdout as
    /// `daemon.info` and stderr as `daemon.err`.
    fn on_stdout(self, level: Level) -> bool {
        self == Reader::Procd && level < Level::Warn
    }
}

/// Whether `JOURNAL_STREAM` (`<device>:<inode>`, set by systemd) names the stream whose
/// `fstat` gave `dev` and `ino`: then that stream is the journal, not a redirection of it.
fn is_journal(journal_stream: &str, dev: u64, ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .is_some_and(|(d, i)| d.trim().parse() == Ok(dev) && i.trim().parse() == Ok(ino))
}

/// Whether stderr is the journal `JOURNAL_STREAM` names.
fn stderr_is_journal(journal_stream: Option<String>) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = journal_stream else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    File::from(fd)
        .metadata()
        .is_ok_and(|m| is_journal(&stream, m.dev(), m.ino()))
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

impl Settings {
    /// From `DEBUG`, `LOG_FORMAT` and `NO_COLOR`, with colors only when stderr is a terminal.
    pub fn from_env() -> Settings {
        let var = |k: &str| std::env::var(k).ok();
        let debug = var("DEBUG").is_some_and(|v| {
            matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
        });
        let format = var("LOG_FORMAT").unwrap_or_default().to_ascii_lowercase();
        let json = format == "json";
        let reader = match format.as_str() {
            "procd" => Reader::Procd,
            "journal" => Reader::Journal,
            _ if stderr_is_journal(var("JOURNAL_STREAM")) => Reader::Journal,
            _ => Reader::Plain,
        };
        let no_color = var("NO_COLOR").is_some_and(|v| !v.is_empty());
        Settings {
            file: var("LOG_FILE")
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            debug,
            quiet_below: Level::Debug,
            json,
            color: !json && !no_color && std::io::stderr().is_terminal(),
            captured: false,
            reader,
        }
    }

    /// For tests that run the bot's code in their own process: lines go through the test
    /// harness's output capture (shown only when a test fails), with debug lines.
    pub fn captured() -> Settings {
        Settings {
            file: None,
            debug: true,
            quiet_below: Level::Debug,
            json: false,
            color: false,
            captured: true,
            reader: Reader::Plain,
        }
    }
}

/// The open `LOG_FILE`, if any.
static FILE: Mutex<Option<File>> = Mutex::new(None);

/// Sets the output settings (the first call wins) and opens `LOG_FILE`.
pub fn init(settings: Settings) {
    let _ = SETTINGS.set(settings);
    reopen();
}

/// Opens `LOG_FILE` again (after logrotate moved it away: SIGHUP).
pub fn reopen() {
    let Some(path) = settings().file.clone() else {
        return;
    };
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let opened = options.open(&path);
    let mut file = FILE.lock().unwrap_or_else(|p| p.into_inner());
    match opened {
        Ok(f) => *file = Some(f),
        Err(e) => {
            *file = None;
            drop(file);
            write(
                Level::Error,
                None,
                None,
                format_args!("cannot open LOG_FILE {}: {e}", path.display()),
            );
        }
    }
}

fn settings() -> &'static Settings {
    // the crate's own unit tests: through the capture, so only a failing test shows them
    #[cfg(test)]
    return SETTINGS.get_or_init(Settings::captured);
    #[cfg(not(test))]
    SETTINGS.get_or_init(Settings::from_env)
}

/// When each user was last told a want of file descriptors (see [`seldom`]).
static SAID: Mutex<Vec<(String, std::time::Instant)>> = Mutex::new(Vec::new());

/// Whether `who` should be told of a want of file descriptors at `now`: once a minute, however
/// many of its paths (token renewals, chat) run into it. `false` means a debug line.
pub fn seldom(who: &str, now: std::time::Instant) -> bool {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    match said.iter_mut().find(|(user, _)| user == who) {
        Some((_, at)) if now.saturating_duration_since(*at) < EVERY => false,
        Some((_, at)) => {
            *at = now;
            true
        }
        None => {
            said.push((who.to_owned(), now));
            true
        }
    }
}

/// Set by [`mute`].
static MUTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Drops every later line: for `demo`, once its bot is stopped (a save the bot left on the
/// blocking pool may still fail when the demo removes its directory).
pub fn mute() {
    MUTED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Writes one line.
pub fn write(level: Level, user: Option<&str>, channel: Option<&str>, args: fmt::Arguments<'_>) {
    let s = settings();
    if (level == Level::Debug && !s.debug)
        || level < s.quiet_below
        || MUTED.load(std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let ts = rfc3339(SystemTime::now());
    if s.file.is_some() {
        if let Some(file) = FILE.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            let mut record = json(&ts, level, user, channel, &args);
            record.push('\n');
            let _ = file.write_all(record.as_bytes()); // one write: a line is never torn
        }
    }
    let mut line = line(s, &ts, level, user, channel, args);
    if s.captured {
        // through the test harness's capture: shown only for a test that fails
        eprintln!("{line}");
        return;
    }
    // the line and its end in one write (stderr has no buffer): one system call, and a line
    // another process writes meanwhile never lands in the middle of it
    line.push('\n');
    if s.reader.on_stdout(level) {
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
        return;
    }
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// One line as `s` wants it, without its newline.
fn line(
    s: &Settings,
    ts: &str,
    level: Level,
    user: Option<&str>,
    channel: Option<&str>,
    args: fmt::Arguments<'_>,
) -> String {
    let (before, ts) = match s.reader {
        Reader::Plain => ("", ts),
        Reader::Journal => (level.priority(), ""),
        Reader::Procd => ("", ""),
    };
    if s.json {
        return format!("{before}{}", json(ts, level, user, channel, &args));
    }
    let (paint, unpaint) = match s.color {
        true => (level.ansi(), "\x1b[0m"),
        false => ("", ""),
    };
    let space = if ts.is_empty() { "" } else { " " };
    let name = level.shown();
    // one allocation for most lines (`format!` grew its string three or four times)
    let mut line = String::with_capacity(160);
    let _ = write!(line, "{before}{ts}{space}{paint}{name}{unpaint}");
    let _ = match (user, channel) {
        (Some(u), Some(c)) => write!(line, " [{u} #{c}]"),
        (Some(u), None) => write!(line, " [{u}]"),
        (None, Some(c)) => write!(line, " [#{c}]"),
        (None, None) => Ok(()),
    };
    let _ = write!(line, " {args}");
    line
}

/// One line as a JSON object; `ts` is left out when empty (the reader stamps its own).
fn json(
    ts: &str,
    level: Level,
    user: Option<&str>,
    channel: Option<&str>,
    args: &fmt::Arguments<'_>,
) -> String {
    let mut obj = serde_json::Map::new();
    if !ts.is_empty() {
        obj.insert("ts".into(), ts.into());
    }
    obj.insert("level".into(), level.name().into());
    if let Some(u) = user {
        obj.insert("user".into(), u.into());
    }
    if let Some(c) = channel {
        obj.insert("channel".into(), c.into());
    }
    obj.insert("msg".into(), args.to_string().into());
    serde_json::Value::Object(obj).to_string()
}

/// Logs at a level: `log!(Info, user, channel, "format", args…)`; user and channel are
/// `Option<&str>`.
#[macro_export]
macro_rules! log {
    ($level:ident, $user:expr, $chan:expr, $($arg:tt)+) => {
        $crate::log::write($crate::log::Level::$level, $user, $chan, format_args!($($arg)+))
    };
}

/// The most of a server-supplied string that goes into one log line.
pub(crate) const MAX_SHOWN: usize = 300;

/// Text from the network or a person, fit for a log line: control characters escaped
/// (so it cannot forge lines or repaint a terminal) and at most [`MAX_SHOWN`] characters.
pub(crate) fn capped(text: &str) -> String {
    let mut out = String::new();
    let mut shown = 0;
    for c in text.chars() {
        let piece: String = if c.is_control() {
            c.escape_default().collect()
        } else {
            c.into()
        };
        shown += piece.chars().count();
        if shown > MAX_SHOWN {
            out.push('…');
            break;
        }
        out.push_str(&piece);
    }
    out
}

/// [`capped`], in double quotes.
pub(crate) fn quoted(text: &str) -> String {
    format!("\"{}\"", capped(text))
}

/// `2026-11-22T22:30:48Z` for a time (UTC, whole seconds).
pub use crate::time::format_rfc3339 as rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    fn for_reader(reader: Reader, json: bool) -> Settings {
        Settings {
            reader,
            json,
            ..Settings::captured()
        }
    }

    fn shown(s: &Settings, level: Level) -> String {
        let ts = "2026-12-07T14:08:40Z";
        line(s, ts, level, Some("ann"), Some("chan"), format_args!("hi"))
    }

    #[test]
    fn a_plain_line_starts_with_its_time() {
        let s = for_reader(Reader::Plain, false);
        assert_eq!(
            shown(&s, Level::Error),
            "2026-12-07T14:08:40Z ERROR [ann #chan] hi"
        );
        assert_eq!(
            shown(&s, Level::Info),
            "2026-12-07T14:08:40Z INFO  [ann #chan] hi"
        );
        let s = for_reader(Reader::Plain, true);
        assert_eq!(
            shown(&s, Level::Warn),
            r#"{"ts":"2026-12-07T14:08:40Z","level":"warn","user":"ann","channel":"chan","msg":"hi"}"#
        );
    }

    #[test]
    fn a_journal_line_starts_with_its_priority_and_has_no_time() {
        let s = for_reader(Reader::Journal, false);
        assert_eq!(shown(&s, Level::Error), "<3>ERROR [ann #chan] hi");
        assert_eq!(shown(&s, Level::Warn), "<4>WARN  [ann #chan] hi");
        assert_eq!(shown(&s, Level::Info), "<6>INFO  [ann #chan] hi");
        assert_eq!(shown(&s, Level::Debug), "<7>DEBUG [ann #chan] hi");
        let s = for_reader(Reader::Journal, true);
        assert_eq!(
            shown(&s, Level::Error),
            r#"<3>{"level":"error","user":"ann","channel":"chan","msg":"hi"}"#
        );
    }

    #[test]
    fn a_procd_line_has_neither_time_nor_priority() {
        let s = for_reader(Reader::Procd, false);
        assert_eq!(shown(&s, Level::Warn), "WARN  [ann #chan] hi");
    }

    #[test]
    fn under_procd_only_warnings_and_errors_go_to_stderr() {
        use Level::*;
        let out = |r: Reader| [Debug, Info, Warn, Error].map(|l| r.on_stdout(l));
        assert_eq!(out(Reader::Procd), [true, true, false, false]);
        assert_eq!(out(Reader::Plain), [false; 4]);
        assert_eq!(out(Reader::Journal), [false; 4]);
    }

    #[test]
    fn the_journal_is_known_by_the_device_and_inode_of_stderr() {
        assert!(is_journal("8:1234", 8, 1234));
        assert!(
            !is_journal("8:1234", 8, 1235),
            "stderr redirected elsewhere"
        );
        assert!(!is_journal("8:1234", 9, 1234));
        assert!(!is_journal("", 8, 1234));
        assert!(!is_journal("8", 8, 1234));
        assert!(!is_journal("x:y", 8, 1234));
        // the stderr of this test is no journal, whatever the variable says of another stream
        assert!(!stderr_is_journal(Some("1:1".into())));
        assert!(!stderr_is_journal(None));
    }

    #[test]
    fn log_format_takes_the_journal_and_procd_by_name() {
        let var = |v: &'static str| move |k: &str| (k == "LOG_FORMAT").then(|| v.to_owned());
        assert!(env_problems(var("journal")).is_empty());
        assert!(env_problems(var("procd")).is_empty());
        assert_eq!(
            env_problems(var("syslog")),
            ["environment variable LOG_FORMAT=\"syslog\": expected text, json, journal or procd (using text)"]
        );
    }

    #[test]
    fn a_want_of_descriptors_is_said_once_a_minute_per_user() {
        let t = std::time::Instant::now();
        let later = |s| t + std::time::Duration::from_secs(s);
        assert!(seldom("seldom_a", t));
        assert!(!seldom("seldom_a", later(1)), "not again within the minute");
        assert!(
            seldom("seldom_b", later(1)),
            "another user has its own minute"
        );
        assert!(!seldom("seldom_a", later(59)));
        assert!(seldom("seldom_a", later(60)));
    }
}
