//! The harness shared by the end-to-end suites: the bot as a child process against the fake
//! Twitch, and small helpers. By default the binary is the one cargo built;
//! `scripts/verify-release.sh` sets `TCC_BIN=path` and `TCC_RUNNER="qemu-aarch64-static"` (any
//! command line that runs the binary) to run the same tests against a release binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use twitch_colorchanger::fake::FakeTwitch;

pub const WAIT: Duration = Duration::from_secs(15);
pub const TOKEN_A: &str = "tokaaaaaaaaaaaaaaaaaaaaaaaaaaa1";
pub const TOKEN_B: &str = "tokbbbbbbbbbbbbbbbbbbbbbbbbbbb2";
pub const REFRESH: &str = "refreshrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr9";
pub const SECRET: &str = "secretssssssssssssssssssssssss";

/// A fresh directory for one test, under cargo's `target/tmp` (never the system temp
/// directory): the same path every run, emptied at the test's start, so nothing piles up.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("tcc-e2e-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn user_entry(login: &str, token: &str, channels: &[&str], prime: bool) -> Value {
    json!({
        "username": login,
        "access_token": token,
        "refresh_token": REFRESH,
        "client_id": "fakeclientid0000000000000000000",
        "client_secret": SECRET,
        "channels": channels,
        "is_prime_or_turbo": prime,
        "enabled": true,
        "custom_note": "kept as is"
    })
}

pub fn write_config(dir: &Path, users: Vec<Value>) -> PathBuf {
    let path = dir.join("twitch_colorchanger.conf");
    let doc = json!({ "users": users, "unknown_top_level": [1, 2, 3] });
    std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    path
}

/// The runtime directory every bot of this test binary is given (`RUNTIME_DIRECTORY`), so
/// their status files stay out of the machine's own places and no run reads a file an
/// earlier run left for the same config path: emptied when this process first asks for it.
pub fn runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tcc-e2e-run-{}", env!("CARGO_CRATE_NAME")));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}

/// The bot's command: the binary cargo built, or `TCC_BIN` run through `TCC_RUNNER`, with
/// [`runtime_dir`] as its runtime directory (a test may set another).
pub fn bot_command() -> Command {
    let mut cmd = match std::env::var_os("TCC_BIN").filter(|b| !b.is_empty()) {
        None => Command::new(env!("CARGO_BIN_EXE_twitch-colorchanger")),
        Some(bin) => {
            let runner = std::env::var("TCC_RUNNER").unwrap_or_default();
            let mut words = runner.split_whitespace();
            match words.next() {
                Some(program) => {
                    let mut cmd = Command::new(program);
                    cmd.args(words).arg(bin);
                    cmd
                }
                None => Command::new(bin),
            }
        }
    };
    cmd.env("RUNTIME_DIRECTORY", runtime_dir());
    cmd
}

/// The bot as a child process, its stderr collected line by line.
pub struct Bot {
    pub child: Child,
    log: Arc<(Mutex<String>, Condvar)>,
}

impl Bot {
    pub fn start(fake: &FakeTwitch, config: &Path) -> Bot {
        Bot::start_with(fake, config, &[])
    }

    pub fn start_with(fake: &FakeTwitch, config: &Path, env: &[(&str, &str)]) -> Bot {
        let mut cmd = bot_command();
        cmd.arg("--config").arg(config).envs(env.iter().copied());
        Bot::spawn(fake, cmd)
    }

    /// Runs `cmd` (from [`bot_command`], with its arguments) pointed at the fake.
    /// Variables the test set on `cmd` win over these defaults.
    pub fn spawn(fake: &FakeTwitch, mut cmd: Command) -> Bot {
        let defaults = [
            ("TWITCH_IRC_URL", fake.irc_url()),
            ("TWITCH_API_URL", fake.api_url()),
            ("TWITCH_AUTH_URL", fake.auth_url()),
            ("TWITCH_EVENTSUB_URL", fake.eventsub_url()),
            ("TWITCH_CA_FILE", fake.ca_file().display().to_string()),
            ("DEBUG", "true".into()),
            ("NO_COLOR", "1".into()),
        ];
        for (key, value) in defaults {
            if !cmd.get_envs().any(|(k, _)| k == key) {
                cmd.env(key, value);
            }
        }
        let mut child = cmd
            .env_remove("TWITCH_CONF_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let log = Arc::new((Mutex::new(String::new()), Condvar::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (text, cv) = &*sink;
                let mut text = text.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
                cv.notify_all();
            }
        });
        Bot { child, log }
    }

    pub fn output(&self) -> String {
        self.log.0.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` at least `times` times.
    pub fn wait_log(&self, needle: &str, times: usize) -> bool {
        let deadline = Instant::now() + WAIT;
        let (text, cv) = &*self.log;
        let mut text = text.lock().unwrap();
        while text.matches(needle).count() < times {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = cv.wait_timeout(text, left).unwrap().0;
        }
        true
    }

    /// Sends SIGTERM and returns the exit status and how long the exit took.
    pub fn terminate(mut self) -> (ExitStatus, Duration, String) {
        let start = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = wait_exit(&mut self.child, Duration::from_secs(5));
        let elapsed = start.elapsed();
        // let the reader thread drain what is left
        self.wait_log("shutting down", 1);
        (status, elapsed, self.output())
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the bot did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn assert_no_secrets(output: &str) {
    for secret in [TOKEN_A, TOKEN_B, REFRESH, SECRET] {
        assert!(
            !output.contains(secret),
            "a secret leaked into the output:\n{output}"
        );
    }
}

pub fn joined(fake: &FakeTwitch, login: &str, channels: &[&str]) -> bool {
    fake.wait(WAIT, |s| {
        let j = s.joined(login);
        channels.iter().all(|c| j.contains(*c))
    })
}

/// A PING the bot must answer; since it handles lines in order, once the PONG is back every
/// line sent before the PING has been acted on.
pub fn sync(fake: &FakeTwitch, login: &str, tag: &str) {
    fake.broadcast(&format!("PING :{tag}"));
    let pong = format!("PONG :{tag}");
    assert!(fake
        .wait(WAIT, |s| s.irc.iter().any(|c| c.login.as_deref()
            == Some(login)
            && c.lines.contains(&pong))));
}

/// The fake Twitch knowing `hueshift_bot` (id 1, Prime, access token [`TOKEN_A`], refresh
/// token [`REFRESH`]), and a config for it in `chan`.
pub fn hueshift(name: &str) -> (FakeTwitch, PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    (fake, dir, config)
}

pub fn read_config(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Rewrites the file in place (truncate and write), as many editors do.
pub fn edit_in_place(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut doc = read_config(path);
    edit(&mut doc);
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// Saves by writing a temporary file and renaming it over the config (vim, VS Code, sed -i).
pub fn edit_by_rename(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut doc = read_config(path);
    edit(&mut doc);
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Where a bot from [`bot_command`] keeps the status for `config`.
pub fn status_path(config: &Path) -> PathBuf {
    let env = |key: &str| match key {
        "RUNTIME_DIRECTORY" => Some(runtime_dir().display().to_string()),
        _ => std::env::var(key).ok(),
    };
    twitch_colorchanger::status::place::choose(config, None, &env).unwrap()
}

/// The status document a bot from [`bot_command`] keeps for `config`.
pub fn read_status(
    config: &Path,
) -> Result<twitch_colorchanger::status::Document, twitch_colorchanger::status::StatusError> {
    twitch_colorchanger::status::read_with(config, Some(status_path(config)))
}

/// Polls `done` until it holds (bounded by [`WAIT`]).
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    done()
}

/// A number from the environment variable `name`, else `default`.
pub fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
