//! `demo`: the real bot against the fake Twitch, both in this process, over TLS sockets on
//! 127.0.0.1. A short chat is played (your messages, someone else's, `ccc`, a reconnect,
//! `ccm rainbow`, a hex color refused when Turbo runs out) and each change Twitch receives is
//! shown as it happens. Everything is written in one temporary directory, removed at the end.
//!
//! The script runs on its own thread and watches the fake's state (what "Twitch" received);
//! the bot runs on the calling thread exactly as `twitch-colorchanger` runs it.

use std::fmt::Write as _;
use std::future::Future;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::app::{self, Endpoints};
use crate::color;
use crate::fake::{FakeTwitch, State};
use crate::log;
use crate::mode::hue_of;

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// The pause between two steps, for a person to read along.
    pub pause: Duration,
    /// Show the bot's own log (stderr).
    pub verbose: bool,
}

/// The demo account.
const LOGIN: &str = "demo_user";
const USER_ID: &str = "141981764";
const TOKEN: &str = "demoaccesstoken0000000000000a";
const REFRESH: &str = "demorefreshtoken000000000000000000000000000000b";
/// Someone else in the channel.
const VIEWER: (&str, &str) = ("a_viewer", "500100200");
/// The longest one step may take before the demo gives up (slow emulators included).
const STEP_LIMIT: Duration = Duration::from_secs(15);

/// Runs the demo until it ends (`Ok`, summary printed) or fails or `stop` fires (`Err` with
/// why). Prints to stdout; the bot's log goes to stderr (errors only, unless `verbose`).
pub fn run(options: &Options, stop: impl Future<Output = ()>) -> Result<(), String> {
    let started = Instant::now();
    let paint = Paint::detect();
    log::init(log::Settings {
        file: None,
        debug: false,
        quiet_below: if options.verbose {
            log::Level::Info
        } else {
            log::Level::Error
        },
        json: false,
        color: paint != Paint::Plain && std::io::stderr().is_terminal(),
        captured: false,
        reader: log::Reader::Plain,
    });
    let dir = TempDir::new()?;
    let fake = FakeTwitch::start(dir.path())
        .map_err(|e| format!("cannot start the Twitch look-alike: {e}"))?;
    fake.add_user(LOGIN, USER_ID, TOKEN, true);
    fake.set_refresh_token(LOGIN, REFRESH);
    let config = write_config(dir.path())?;
    let endpoints = Endpoints::from_env(&|name| match name {
        "TWITCH_IRC_URL" => Some(fake.irc_url()),
        "TWITCH_API_URL" => Some(fake.api_url()),
        "TWITCH_AUTH_URL" => Some(fake.auth_url()),
        "TWITCH_CA_FILE" => Some(fake.ca_file().display().to_string()),
        _ => None,
    })
    .map_err(|e| e.to_string())?;

    say(&format!(
        "{}\n  The real bot against a Twitch look-alike on 127.0.0.1: no account needed,\n  nothing leaves this machine, only a temporary directory is written.\n",
        paint.bold("twitch-colorchanger demo")
    ));
    say(&format!(
        "  {} Twitch look-alike, TLS with a certificate made just now:\n      chat     {}\n      API      {}",
        paint.dim("▸"),
        fake.irc_url(),
        fake.api_url()
    ));

    let cancelled = AtomicBool::new(false);
    let (done_tx, done_rx) = async_channel::bounded::<Result<Tally, String>>(1);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            let script = Script {
                fake: &fake,
                paint,
                options,
                config: &config,
                cancelled: &cancelled,
                tally: Tally::default(),
            };
            let _ = done_tx.try_send(script.play());
        });
        let (_reload_tx, reloads) = async_channel::unbounded();
        let outcome = crate::reactor::block_on(async {
            let bot = async {
                let status = Some(dir.path().join("status.json"));
                let end = app::run(config.clone(), status, endpoints, Vec::new(), reloads).await;
                Err(match end {
                    Ok(()) => "the bot stopped".to_owned(),
                    Err(e) => format!("the bot stopped: {e}"),
                })
            };
            let script = async {
                done_rx
                    .recv()
                    .await
                    .unwrap_or_else(|_| Err("the demo script stopped".into()))
            };
            let stopped = async {
                stop.await;
                Err("interrupted".to_owned())
            };
            smol::future::or(script, smol::future::or(bot, stopped)).await
        })
        .unwrap_or_else(|e| Err(format!("cannot set up the event loop: {e}")));
        cancelled.store(true, Ordering::Relaxed);
        log::mute();
        outcome
    });
    drop(fake);
    let removed = dir.remove();
    let tally = outcome?;
    removed?;
    say(&tally.summary(started.elapsed()));
    Ok(())
}

/// What the chat showed, for the summary.
#[derive(Debug, Default)]
struct Tally {
    own: usize,
    changes: usize,
    ignored: usize,
    reconnects: usize,
    refusals: usize,
}

impl Tally {
    fn summary(&self, took: Duration) -> String {
        format!(
            "\n  Done in {:.1} s over IRC: {} messages from {LOGIN}, {} color changes,\n  \
             {} message from someone else left alone, {} reconnect, {} refused hex color\n  \
             replaced by a named one. The temporary directory is removed.\n\n  \
             Next: run it for your account. `twitch-colorchanger` in a terminal asks for\n  \
             your login and your Twitch app's client id (README, \"Quick start\").",
            took.as_secs_f64(),
            self.own,
            self.changes,
            self.ignored,
            self.reconnects,
            self.refusals
        )
    }
}

struct Script<'a> {
    fake: &'a FakeTwitch,
    paint: Paint,
    options: &'a Options,
    config: &'a Path,
    cancelled: &'a AtomicBool,
    tally: Tally,
}

impl Script<'_> {
    fn play(mut self) -> Result<Tally, String> {
        let t0 = Instant::now();
        self.wait("the bot to join #demo_user", in_chat)?;
        self.note(&format!(
            "bot joined #demo_user over IRC in {} ms; Turbo/Prime: random hex colors\n",
            t0.elapsed().as_millis()
        ));
        self.pause()?;
        self.own("hello chat!")?;
        self.foreign("hi demo_user!")?;
        self.own("how is everyone today?")?;
        self.own("ccc hot_pink")?;
        self.reconnect()?;
        self.own("back already")?;
        self.own("ccm rainbow")?;
        self.own("look at my name")?;
        self.own("one hue further each time")?;
        self.fake.update(|s| {
            if let Some(u) = s.users.iter_mut().find(|u| u.login == LOGIN) {
                u.prime = false;
            }
        });
        say("");
        self.note(&format!(
            "{LOGIN}'s Turbo runs out: Twitch now refuses hex colors"
        ));
        self.pause()?;
        self.own("did my Turbo just end?")?;
        self.wait_config("\"is_prime_or_turbo\": false", |user| {
            user["is_prime_or_turbo"] == json!(false)
        })?;
        self.note("the bot saved \"is_prime_or_turbo\": false: named colors from now on");
        self.pause()?;
        self.own("named colors it is")?;
        Ok(self.tally)
    }

    /// One of demo_user's messages, and the change it makes (or, for `ccm`, the mode saved).
    fn own(&mut self, text: &str) -> Result<(), String> {
        let before = self.fake.state().puts.len();
        let expected = self.tally.changes + self.tally.refusals;
        if before != expected {
            return Err(format!(
                "Twitch received {before} color changes, {expected} expected: one was made for a message that was not {LOGIN}'s"
            ));
        }
        let current = self.fake.state().users[0].color.clone();
        let mut line = self.chat_line(LOGIN, current.as_deref(), text);
        self.send(LOGIN, USER_ID, text)?;
        self.tally.own += 1;
        if let Some(mode) = text.strip_prefix("ccm ") {
            self.wait_config(&format!("\"color_mode\": \"{mode}\""), |user| {
                user["color_mode"] == json!(mode)
            })?;
            self.say_line(&line, &format!("{mode} mode, saved in the config"));
            return self.pause();
        }
        self.wait(&format!("a color change for {text:?}"), |s| {
            s.puts[before..].iter().any(|p| p.status == 204)
        })?;
        let puts = self.fake.state().puts[before..].to_vec();
        let set = puts
            .iter()
            .find(|p| p.status == 204)
            .map(|p| p.color.as_str());
        let set = set.unwrap_or_default();
        self.tally.changes += 1;
        let mut result = format!("{}{set}", self.paint.swatch(set));
        if text.starts_with("ccc ") {
            result.push_str("  (asked for with ccc)");
        } else if let (Some(was), Some(now), true) = (
            current.as_deref().and_then(hue_of),
            hue_of(set),
            self.rainbow(),
        ) {
            let _ = write!(result, "  (hue {was}° → {now}°)");
        }
        for refused in puts.iter().filter(|p| p.status != 204) {
            self.tally.refusals += 1;
            let refusal = format!(
                "{}{} refused: Turbo/Prime only",
                self.paint.swatch(&refused.color),
                refused.color
            );
            self.say_line(&line, &refusal);
            line = " ".repeat(41);
        }
        self.say_line(&line, &result);
        self.pause()
    }

    /// Someone else's message: the bot leaves the color alone (checked at the next message).
    fn foreign(&mut self, text: &str) -> Result<(), String> {
        let line = self.chat_line(VIEWER.0, Some("#1E90FF"), text);
        self.send(VIEWER.0, VIEWER.1, text)?;
        self.tally.ignored += 1;
        self.say_line(&line, &self.paint.dim("not demo_user's: no change"));
        self.pause()
    }

    /// Twitch restarts its chat server (IRC RECONNECT), and the bot comes back.
    fn reconnect(&mut self) -> Result<(), String> {
        let t0 = Instant::now();
        let logins = self.fake.state().logins(LOGIN);
        say("");
        self.note("Twitch restarts its chat server (RECONNECT, connection closed)");
        self.fake.reconnect_all();
        self.wait("the bot to rejoin #demo_user", |s| {
            s.logins(LOGIN) > logins && in_chat(s)
        })?;
        self.tally.reconnects += 1;
        self.note(&format!(
            "bot back in chat after {} ms\n",
            t0.elapsed().as_millis()
        ));
        self.pause()
    }

    fn send(&self, login: &str, id: &str, text: &str) -> Result<(), String> {
        match self.fake.privmsg(LOGIN, login, id, text) {
            0 => Err(format!("no chat connection to deliver {text:?} to")),
            _ => Ok(()),
        }
    }

    fn rainbow(&self) -> bool {
        read_user(self.config).is_some_and(|u| u["color_mode"] == json!("rainbow"))
    }

    /// Waits for `done` (what the fake received), at most [`STEP_LIMIT`].
    fn wait(&self, what: &str, done: impl Fn(&State) -> bool) -> Result<(), String> {
        self.wait_dyn(what, &done)
    }

    fn wait_dyn(&self, what: &str, done: &dyn Fn(&State) -> bool) -> Result<(), String> {
        let cancelled = || self.cancelled.load(Ordering::Relaxed);
        if self.fake.wait(STEP_LIMIT, |s| cancelled() || done(s)) && !cancelled() {
            return Ok(());
        }
        Err(format!(
            "waited {} s for {what} in vain (`demo --verbose` shows the bot's log)",
            STEP_LIMIT.as_secs()
        ))
    }

    /// Waits for the bot to save something in the config file.
    fn wait_config(&self, what: &str, saved: impl Fn(&Value) -> bool) -> Result<(), String> {
        let what = format!("the bot to save {what} in the config");
        self.wait(&what, |_| read_user(self.config).is_some_and(|u| saved(&u)))
    }

    fn pause(&self) -> Result<(), String> {
        let until = Instant::now() + self.options.pause;
        while Instant::now() < until {
            if self.cancelled.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            std::thread::sleep((until - Instant::now()).min(Duration::from_millis(50)));
        }
        Ok(())
    }

    fn chat_line(&self, login: &str, color: Option<&str>, text: &str) -> String {
        let name = self.paint.name(login, color);
        let pad = 12usize.saturating_sub(login.len());
        let text_pad = 26usize.saturating_sub(text.chars().count());
        // 2 + 12 + 1 + 26 = 41 columns before the arrow
        format!("  {name}{} {text}{}", " ".repeat(pad), " ".repeat(text_pad))
    }

    fn say_line(&self, line: &str, result: &str) {
        say(&format!("{line} → {result}"));
    }

    fn note(&self, text: &str) {
        say(&format!("  {} {text}", self.paint.dim("▸")));
    }
}

/// The demo user is in its own channel.
fn in_chat(s: &State) -> bool {
    s.irc
        .iter()
        .any(|c| c.open && c.login.as_deref() == Some(LOGIN) && c.channels.contains(LOGIN))
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The demo user's entry in the config, as the bot last saved it.
fn read_user(config: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(config).ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    doc["users"].get(0).cloned()
}

fn write_config(dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join("twitch_colorchanger.conf");
    let doc = json!({ "users": [{
        "username": LOGIN,
        "client_id": "democlientid000000000000000000",
        "access_token": TOKEN,
        "refresh_token": REFRESH,
        "channels": [LOGIN],
        "is_prime_or_turbo": true,
    }]});
    let text = serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: cannot write the demo config: {e}", path.display()))?;
    Ok(path)
}

/// A directory of our own under the system's temporary directory (`TMPDIR`), removed with
/// everything in it on drop.
struct TempDir(Option<PathBuf>);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let base = std::env::temp_dir();
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let mut last = String::new();
        for _ in 0..8 {
            let suffix: u32 = nanorand::Rng::generate(&mut nanorand::tls_rng());
            let path = base.join(format!("twitch-colorchanger-demo-{suffix:08x}"));
            match builder.create(&path) {
                Ok(()) => return Ok(TempDir(Some(path))),
                Err(e) => last = format!("{}: {e}", path.display()),
            }
        }
        Err(format!(
            "cannot make a temporary directory (set TMPDIR to a writable directory): {last}"
        ))
    }

    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new("."))
    }

    /// Removes it, retrying for a moment: a save the stopped bot started on the blocking
    /// pool (its status file, say) may still be writing into it.
    fn remove(mut self) -> Result<(), String> {
        let Some(path) = self.0.take() else {
            return Ok(());
        };
        let mut tries = 0;
        loop {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(_) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(format!("cannot remove {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// How colors are drawn: not at all (NO_COLOR, a pipe, `TERM=dumb`), in the 256-color
/// palette, or exactly (`COLORTERM=truecolor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Paint {
    Plain,
    Palette,
    TrueColor,
}

impl Paint {
    fn detect() -> Paint {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Paint::choose(
            std::io::stdout().is_terminal(),
            &var("NO_COLOR"),
            &var("TERM"),
            &var("COLORTERM"),
        )
    }

    fn choose(terminal: bool, no_color: &str, term: &str, colorterm: &str) -> Paint {
        if !terminal || !no_color.is_empty() || term == "dumb" {
            Paint::Plain
        } else if matches!(colorterm, "truecolor" | "24bit") {
            Paint::TrueColor
        } else {
            Paint::Palette
        }
    }

    /// The escape that sets the foreground to `color` (hex or named), if drawing.
    fn fg(self, color: &str) -> Option<String> {
        let (r, g, b) = color::rgb(color)?;
        match self {
            Paint::Plain => None,
            Paint::TrueColor => Some(format!("\x1b[38;2;{r};{g};{b}m")),
            Paint::Palette => {
                let level = |v: u8| (u16::from(v) * 5 + 127) / 255;
                let index = 16 + 36 * level(r) + 6 * level(g) + level(b);
                Some(format!("\x1b[38;5;{index}m"))
            }
        }
    }

    /// A block of the color and a space, or nothing in plain text (the color's name or hex
    /// follows it).
    fn swatch(self, color: &str) -> String {
        self.fg(color)
            .map(|fg| format!("{fg}██\x1b[0m "))
            .unwrap_or_default()
    }

    /// A login in bold, in its chat color.
    fn name(self, login: &str, color: Option<&str>) -> String {
        match (self, color.and_then(|c| self.fg(c))) {
            (Paint::Plain, _) => login.to_owned(),
            (_, Some(fg)) => format!("\x1b[1m{fg}{login}\x1b[0m"),
            (_, None) => format!("\x1b[1m{login}\x1b[0m"),
        }
    }

    fn bold(self, text: &str) -> String {
        match self {
            Paint::Plain => text.to_owned(),
            _ => format!("\x1b[1m{text}\x1b[0m"),
        }
    }

    fn dim(self, text: &str) -> String {
        match self {
            Paint::Plain => text.to_owned(),
            _ => format!("\x1b[2m{text}\x1b[0m"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colors_are_drawn_only_on_terminals_that_want_them() {
        assert_eq!(Paint::choose(false, "", "xterm", "truecolor"), Paint::Plain);
        assert_eq!(Paint::choose(true, "1", "xterm", "truecolor"), Paint::Plain);
        assert_eq!(Paint::choose(true, "", "dumb", ""), Paint::Plain);
        assert_eq!(
            Paint::choose(true, "", "xterm-256color", ""),
            Paint::Palette
        );
        assert_eq!(Paint::choose(true, "", "xterm", "24bit"), Paint::TrueColor);
        assert_eq!(Paint::Plain.swatch("#FF0000"), "");
        assert_eq!(Paint::Plain.name("demo_user", Some("red")), "demo_user");
    }

    #[test]
    fn swatches_carry_the_color() {
        assert_eq!(
            Paint::TrueColor.swatch("hot_pink"),
            "\x1b[38;2;255;105;180m██\x1b[0m "
        );
        // the 6x6x6 cube: pure red is 196, pure blue 21, black 16
        assert_eq!(Paint::Palette.swatch("#FF0000"), "\x1b[38;5;196m██\x1b[0m ");
        assert_eq!(Paint::Palette.swatch("blue"), "\x1b[38;5;21m██\x1b[0m ");
        assert_eq!(Paint::Palette.swatch("#000000"), "\x1b[38;5;16m██\x1b[0m ");
        assert_eq!(Paint::TrueColor.swatch("not a color"), "");
    }
}
