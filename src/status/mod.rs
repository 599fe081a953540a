//! The status file the running bot keeps in a runtime directory (see [`place`]), and what
//! `--health-check` and `status` read from it. Judging health is a plain function of
//! the document, the time and whether the process lives, so tests need no bot.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::time::{format_rfc3339, parse_rfc3339};
pub use crate::usercore::Errors;

pub mod latest;
pub mod place;

/// The bot rewrites the file at least this often.
pub(crate) const WRITE_EVERY: Duration = Duration::from_secs(30);
/// An older file means the bot is stuck or gone.
pub(crate) const FRESH: Duration = Duration::from_secs(90);
/// A user with valid tokens may be without chat this long before the bot counts as unhealthy.
pub(crate) const CHAT_GRACE: Duration = Duration::from_secs(5 * 60);

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// When it was written (RFC 3339 UTC).
    pub written_at: String,
    /// The bot's process id.
    pub pid: u32,
    /// The config file it runs.
    pub config: String,
    /// One entry per user, in config order.
    pub users: Vec<UserStatus>,
    /// This machine's clock looks wrong (servers' certificates refused for its time): what
    /// was seen, until a certificate checks out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<String>,
    /// The open-files limit is below what the users need: what to raise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofile: Option<String>,
}

impl Document {
    /// Writes the document as the status file holds it: pretty JSON and a newline. (One
    /// writer type for the file, the listener and `status --json`: each other type would
    /// compile the whole serialiser again, kilobytes of binary.)
    pub fn write_pretty(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        out.write_all(b"\n")
    }
}

/// One user's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// Login as configured.
    pub username: String,
    /// `starting`, `connecting`, `connected`, `disabled` (connected, automatic changes
    /// off), `reconnecting`, `idle` (nothing to read), `awaiting_authorisation` or `stopped`.
    pub state: String,
    /// Automatic changes on.
    pub enabled: bool,
    /// Channels joined.
    pub channels: Vec<String>,
    /// The color in use, as far as known.
    pub color: Option<String>,
    /// Successful color changes since the bot started.
    pub changes: u64,
    /// Own chat messages seen since the bot started.
    pub messages: u64,
    /// When the last change succeeded.
    pub last_change_at: Option<String>,
    /// The last thing that went wrong.
    pub last_error: Option<String>,
    /// When the access token expires.
    pub token_expires_at: Option<String>,
    /// Since when the user has had no chat connection (`null` while connected).
    pub chat_down_since: Option<String>,
    /// How chat is read: `irc` or `eventsub` (absent in files of older versions).
    #[serde(default)]
    pub transport: String,
    /// Errors since the bot started, by what failed.
    #[serde(default)]
    pub errors: Errors,
    /// Chat connections lost after they were up, since the bot started.
    #[serde(default)]
    pub reconnects: u64,
    /// The last colors set (at most 20), oldest first.
    #[serde(default)]
    pub recent_colors: Vec<RecentColor>,
}

/// A color set, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentColor {
    /// `#RRGGBB` or a named color.
    pub color: String,
    /// When (RFC 3339 UTC).
    pub at: String,
}

/// The status file's path given on the command line (`--status-file`), else in
/// [`place::STATUS_FILE_ENV`], else `None` (the runtime directories of [`place::dirs`]).
pub fn wanted(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        std::env::var_os(place::STATUS_FILE_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    })
}

/// Where the running bot for `config` keeps its status (see [`place::find`]).
pub fn locate(config: &Path, wanted: Option<PathBuf>) -> Result<PathBuf, StatusError> {
    place::find(config, wanted, &|k| std::env::var(k).ok())
        .map_err(|places| StatusError::NoBot(config.to_owned(), places))
}

/// Why there is no status to show.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusError {
    /// No status file: no bot runs for this config (the config, the places looked in).
    NoBot(PathBuf, Vec<PathBuf>),
    /// The status file cannot be read, or is not one: its path and why.
    Unreadable(PathBuf, String),
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::NoBot(config, places) => {
                write!(
                    f,
                    "no bot is running for {} (no status file in ",
                    config.display()
                )?;
                for (i, place) in places.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}{}", place.display())?;
                }
                f.write_str(
                    "; a bot started with --status-file or STATUS_FILE needs the same here)",
                )
            }
            StatusError::Unreadable(path, why) => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for StatusError {}

/// Why the bot is not healthy, one line for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy(pub String);

impl fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unhealthy {}

/// Reads the status file of the bot running for `config` (found as [`locate`] says, with
/// [`wanted`]`(None)`); the error says what a person should know.
pub fn read(config: &Path) -> Result<Document, StatusError> {
    read_with(config, wanted(None))
}

/// [`read`], with the status file's path given (`--status-file`) or not.
pub fn read_with(config: &Path, wanted: Option<PathBuf>) -> Result<Document, StatusError> {
    let path = locate(config, wanted)?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StatusError::NoBot(config.to_owned(), vec![path]))
        }
        Err(e) => return Err(StatusError::Unreadable(path, e.to_string())),
    };
    serde_json::from_str(&text)
        .map_err(|e| StatusError::Unreadable(path, format!("not a status file: {e}")))
}

/// Removes the status files in `dir` that bots which are gone left for configs which are gone
/// too: each config path ever run leaves one (a clean exit keeps it, saying `stopped`, so that
/// `status` can tell when that bot last ran), and test or moved configs would pile up. A file
/// whose config still exists, whose bot still runs, or whose config path is relative (its
/// directory unknown here) is kept, and so is `own`. Returns how many were removed.
pub fn sweep(dir: &Path, own: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for path in entries.filter_map(|e| Some(e.ok()?.path())) {
        if path == own || !path.to_string_lossy().ends_with(".status.json") {
            continue;
        }
        let Some(doc) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str::<Document>(&text).ok())
        else {
            continue;
        };
        let config = Path::new(&doc.config);
        if config.is_absolute()
            && !config.exists()
            && !pid_alive(doc.pid)
            && std::fs::remove_file(&path).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Whether process `pid` exists (always true where `/proc` is not mounted).
pub fn pid_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

fn age(at: &str, now: SystemTime) -> Option<Duration> {
    parse_rfc3339(at).map(|t| now.duration_since(t).unwrap_or_default())
}

/// Says whether the bot that wrote `doc` is healthy at `now`: its process lives, the file is
/// fresh, and every user that is not waiting for a person has had chat within the grace
/// time. `Ok` carries a one-line summary, `Err` the reason.
pub fn health(doc: &Document, now: SystemTime, alive: bool) -> Result<String, Unhealthy> {
    if !alive {
        return Err(Unhealthy(format!(
            "the bot (pid {}) is not running",
            doc.pid
        )));
    }
    match age(&doc.written_at, now) {
        Some(old) if old <= FRESH => {}
        Some(old) => {
            return Err(Unhealthy(format!(
                "the status file is {}s old (the bot writes it every {}s): the bot is stuck",
                old.as_secs(),
                WRITE_EVERY.as_secs()
            )))
        }
        None => {
            return Err(Unhealthy(format!(
                "unreadable written_at {:?}",
                doc.written_at
            )))
        }
    }
    for user in &doc.users {
        if matches!(user.state.as_str(), "awaiting_authorisation" | "stopped") {
            continue;
        }
        let Some(down) = user.chat_down_since.as_deref().and_then(|t| age(t, now)) else {
            continue;
        };
        if down > CHAT_GRACE {
            let why = user
                .last_error
                .as_deref()
                .map(|e| format!("; last error: {e}"))
                .unwrap_or_default();
            return Err(Unhealthy(format!(
                "{} has had no chat connection for {} ({}){why}",
                user.username,
                ago(down).trim_end_matches(" ago"),
                user.state
            )));
        }
    }
    Ok(format!("healthy: pid {}, {}", doc.pid, in_chat(&doc.users)))
}

/// "2 of 3 user(s) in chat", and how many wait for a person to authorise: the line
/// `--health-check` prints and systemd shows as the service's status.
pub fn in_chat(users: &[UserStatus]) -> String {
    let count = |states: &[&str]| {
        users
            .iter()
            .filter(|u| states.contains(&u.state.as_str()))
            .count()
    };
    let connected = count(&["connected", "disabled"]);
    let mut line = format!("{connected} of {} user(s) in chat", users.len());
    match count(&["awaiting_authorisation"]) {
        0 => {}
        n => line.push_str(&format!(", {n} awaiting authorisation")),
    }
    line
}

/// "12s ago", "3m ago", "2h ago", "4d ago".
pub fn ago(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// "in 3h", for times ahead.
fn until(d: Duration) -> String {
    format!("in {}", ago(d).trim_end_matches(" ago"))
}

/// The table `status` prints.
pub fn table(doc: &Document, now: SystemTime) -> String {
    let headers = [
        "USER",
        "STATE",
        "VIA",
        "CHANNELS",
        "COLOR",
        "CHANGES",
        "LAST",
        "TOKEN",
        "LAST ERROR",
    ];
    let mut rows: Vec<[String; 9]> = Vec::new();
    for u in &doc.users {
        let last = u
            .last_change_at
            .as_deref()
            .and_then(|t| age(t, now))
            .map(ago)
            .unwrap_or_else(|| "-".into());
        let token = match u.token_expires_at.as_deref().and_then(parse_rfc3339) {
            Some(at) => match at.duration_since(now) {
                Ok(left) => until(left),
                Err(_) => "expired".into(),
            },
            None => "-".into(),
        };
        let channels = if u.channels.is_empty() {
            "-".into()
        } else {
            u.channels
                .iter()
                .map(|c| format!("#{c}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        rows.push([
            u.username.clone(),
            u.state.clone(),
            if u.transport.is_empty() {
                "-".into()
            } else {
                u.transport.clone()
            },
            channels,
            u.color.clone().unwrap_or_else(|| "-".into()),
            u.changes.to_string(),
            last,
            token,
            u.last_error.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = headers.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    let written = age(&doc.written_at, now).map(ago).unwrap_or_default();
    let _ = writeln!(
        out,
        "pid {}, config {}, status written {written}",
        doc.pid, doc.config
    );
    for warning in [&doc.clock, &doc.nofile].into_iter().flatten() {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// RFC 3339 for an optional time.
pub(crate) fn stamp(at: Option<SystemTime>) -> Option<String> {
    at.map(format_rfc3339)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeping_removes_only_what_gone_bots_left_for_gone_configs() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/tcc-status-sweep");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("here.conf");
        std::fs::write(&config, "{}").unwrap();
        let gone_pid = u32::MAX; // no such process
        let doc = |config: &Path, pid: u32| {
            format!(
                r#"{{"written_at":"2026-12-07T10:00:00Z","pid":{pid},"config":{:?},"users":[]}}"#,
                config.display().to_string()
            )
        };
        let file = |name: &str, text: String| {
            std::fs::write(dir.join(name), text).unwrap();
            dir.join(name)
        };
        let gone = file(
            "gone.conf-1.status.json",
            doc(&dir.join("gone.conf"), gone_pid),
        );
        let kept = file("here.conf-2.status.json", doc(&config, gone_pid));
        let running = file(
            "other.conf-3.status.json",
            doc(&dir.join("other.conf"), std::process::id()),
        );
        let relative = file(
            "rel.conf-4.status.json",
            doc(Path::new("rel.conf"), gone_pid),
        );
        let own = file(
            "own.conf-5.status.json",
            doc(&dir.join("own.conf"), gone_pid),
        );
        let other = file("notes.txt", doc(&dir.join("gone.conf"), gone_pid));
        let garbage = file("x.conf-6.status.json", "not json".into());
        assert_eq!(sweep(&dir, &own), 1);
        assert!(
            !gone.exists(),
            "a gone bot's file for a config that is gone"
        );
        for path in [kept, running, relative, own, other, garbage] {
            assert!(path.exists(), "{} is kept", path.display());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn doc(now: SystemTime) -> Document {
        Document {
            clock: None,
            nofile: None,
            written_at: format_rfc3339(now - Duration::from_secs(10)),
            pid: 42,
            config: "/config/twitch_colorchanger.conf".into(),
            users: vec![UserStatus {
                errors: Errors::default(),
                reconnects: 0,
                recent_colors: Vec::new(),
                username: "hueshift_bot".into(),
                state: "connected".into(),
                enabled: true,
                channels: vec!["lumenwave".into()],
                color: Some("#1E90FF".into()),
                changes: 3,
                messages: 4,
                last_change_at: Some(format_rfc3339(now - Duration::from_secs(180))),
                last_error: None,
                token_expires_at: Some(format_rfc3339(now + Duration::from_secs(3 * 3600 + 5))),
                chat_down_since: None,
                transport: "irc".into(),
            }],
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn healthy_fresh_and_connected() {
        assert_eq!(
            health(&doc(now()), now(), true),
            Ok("healthy: pid 42, 1 of 1 user(s) in chat".into())
        );
    }

    #[test]
    fn the_summary_counts_users_in_chat_and_those_waiting_for_a_person() {
        let mut users = doc(now()).users;
        let user = users[0].clone();
        for (name, state) in [
            ("b", "disabled"),
            ("c", "awaiting_authorisation"),
            ("d", "reconnecting"),
        ] {
            users.push(UserStatus {
                username: name.into(),
                state: state.into(),
                ..user.clone()
            });
        }
        assert_eq!(
            in_chat(&users),
            "2 of 4 user(s) in chat, 1 awaiting authorisation"
        );
        assert_eq!(in_chat(&users[..1]), "1 of 1 user(s) in chat");
        assert_eq!(in_chat(&[]), "0 of 0 user(s) in chat");
    }

    #[test]
    fn gone_stale_or_without_chat_is_unhealthy() {
        let n = now();
        assert_eq!(
            health(&doc(n), n, false),
            Err(Unhealthy("the bot (pid 42) is not running".into()))
        );
        let mut stale = doc(n);
        stale.written_at = format_rfc3339(n - Duration::from_secs(91));
        assert!(health(&stale, n, true).unwrap_err().0.contains("91s old"));
        let mut lost = doc(n);
        lost.users[0].state = "reconnecting".into();
        lost.users[0].last_error = Some("chat: cannot connect".into());
        lost.users[0].chat_down_since = Some(format_rfc3339(n - Duration::from_secs(299)));
        assert!(health(&lost, n, true).is_ok());
        lost.users[0].chat_down_since = Some(format_rfc3339(n - Duration::from_secs(301)));
        assert_eq!(
            health(&lost, n, true),
            Err(Unhealthy("hueshift_bot has had no chat connection for 5m (reconnecting); last error: chat: cannot connect".into()))
        );
        // a user waiting for a person to authorise does not make the bot unhealthy
        lost.users[0].state = "awaiting_authorisation".into();
        assert!(health(&lost, n, true).is_ok());
    }

    #[test]
    fn the_table_says_it_in_words() {
        let text = table(&doc(now()), now());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "USER          STATE      VIA  CHANNELS    COLOR    CHANGES  LAST    TOKEN  LAST ERROR"
        );
        assert_eq!(
            lines[1],
            "hueshift_bot  connected  irc  #lumenwave  #1E90FF  3        3m ago  in 3h  -"
        );
        assert!(lines[2].starts_with(
            "pid 42, config /config/twitch_colorchanger.conf, status written 10s ago"
        ));
    }
}
