//! The `twitch-colorchanger` command: flags, subcommands, signals, exit codes.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use argh::FromArgs;
use async_signal::{Signal, Signals};
use smol::stream::StreamExt;

use twitch_colorchanger::app::{self, Endpoints, Request};
use twitch_colorchanger::gate::Gated;
use twitch_colorchanger::{config, log, status, user};

/// Changes your Twitch chat name color after every message you send.
#[derive(FromArgs)]
#[argh(
    note = "Config: -c PATH, else $TWITCH_CONF_FILE, else ./twitch_colorchanger.conf.\nStatus file: --status-file PATH, else $STATUS_FILE, else in RAM under\n$RUNTIME_DIRECTORY, $XDG_RUNTIME_DIR, /run or the temp dir.\nA command's options: twitch-colorchanger help <command>. All: the man page.",
    error_code(
        0,
        "stopped by SIGINT or SIGTERM; setup: all authorised; healthy; demo done"
    ),
    error_code(
        1,
        "setup: a user not authorised; unhealthy; status: no bot running; demo failed"
    ),
    error_code(2, "bad command line, config file or environment variable")
)]
struct Cli {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,

    /// print the version, git commit and target, and exit
    #[argh(switch, short = 'V')]
    version: bool,

    /// exit 0 if the bot running for this config is healthy, else 1
    #[argh(switch)]
    health_check: bool,

    /// the status file, for the bot, status and --health-check
    #[argh(option)]
    status_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Setup(Setup),
    Check(Check),
    Status(StatusCmd),
    Demo(Demo),
}

/// Authorise every user that needs it, save the tokens, and exit.
#[derive(FromArgs)]
#[argh(subcommand, name = "setup")]
struct Setup {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

/// Validate the config and environment, list every problem, show what would run.
#[derive(FromArgs)]
#[argh(subcommand, name = "check")]
struct Check {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

/// Show what the running bot is doing, user by user.
#[derive(FromArgs)]
#[argh(subcommand, name = "status")]
struct StatusCmd {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,

    /// print the status document as JSON
    #[argh(switch)]
    json: bool,
}

/// See it work without an account: a 15 s chat with a local Twitch look-alike.
#[derive(FromArgs)]
#[argh(subcommand, name = "demo")]
#[cfg_attr(not(feature = "demo"), allow(dead_code))]
struct Demo {
    /// milliseconds between two steps (default 900; 0 runs it at full speed)
    #[argh(option, default = "900")]
    pause: u64,

    /// show the bot's own log too (stderr)
    #[argh(switch, short = 'v')]
    verbose: bool,
}

/// How a run ended. [`Ending::exit_code`] is the one place that maps it to the exit codes
/// `--help` documents (the `error_code`s on [`Cli`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Stopped by SIGINT or SIGTERM; setup authorised every user; healthy; demo played through.
    Done,
    /// No user could be authorised (or setup was interrupted); unhealthy; no bot running; a
    /// demo step failed or was interrupted.
    NotDone,
    /// A bad command line, config file or environment variable.
    BadInput,
}

impl Ending {
    fn exit_code(self) -> ExitCode {
        ExitCode::from(match self {
            Ending::Done => 0,
            Ending::NotDone => 1,
            Ending::BadInput => 2,
        })
    }
}

/// Why a command could not do its work, with the cause.
#[derive(Debug)]
enum Error {
    /// The signal handlers could not be installed.
    Signals(std::io::Error),
    /// The event loop (epoll, eventfd) could not be set up.
    Reactor(std::io::Error),
    /// The bot or `setup` could not start, or every user gave up.
    Start(app::StartError),
    /// `status`: no status to show (no bot running, or an unreadable status file).
    NoStatus(String),
    /// `demo` failed.
    #[cfg_attr(not(feature = "demo"), allow(dead_code))]
    Demo(String),
    /// `demo` in a build without it.
    #[cfg_attr(feature = "demo", allow(dead_code))]
    NoDemo,
}

impl Error {
    fn ending(&self) -> Ending {
        match self {
            // a port in use may be free after a restart, and the other bot gone
            Error::Start(
                app::StartError::NoUserLeft
                | app::StartError::Listen(..)
                | app::StartError::InUse(..),
            ) => Ending::NotDone,
            Error::Start(_) | Error::NoDemo => Ending::BadInput,
            Error::Signals(_) | Error::Reactor(_) | Error::NoStatus(_) | Error::Demo(_) => {
                Ending::NotDone
            }
        }
    }

    /// Prints the error where its command prints: the bot's log, or stderr.
    fn report(&self) {
        match self {
            Error::Start(e) => twitch_colorchanger::log!(Error, None, None, "{e}"),
            Error::Signals(e) => eprintln!("error: cannot install signal handlers: {e}"),
            Error::Reactor(e) => eprintln!("error: cannot set up the event loop: {e}"),
            Error::NoStatus(why) => eprintln!("{why}"),
            Error::Demo(e) => eprintln!("demo failed: {e}"),
            Error::NoDemo => {
                eprintln!("this build has no demo (it was built without the demo feature)")
            }
        }
    }
}

/// The heap: TLSF (rlsf) in 64 KiB pools instead of the libc's malloc. With musl it takes a
/// quarter off the memory of many users, and a little CPU off each message
/// (docs/performance.md). Pools are kept, never given back: the bot's memory after start is
/// close to its peak anyway. `--features system-alloc` uses the libc's malloc, for heap profilers.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: rlsf::SmallGlobalTlsf = rlsf::SmallGlobalTlsf::new();

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // `-h` as most commands take it (argh knows only `--help` and `help`)
    let rest: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| if a == "-h" { "--help" } else { a.as_str() })
        .collect();
    let ending = match Cli::from_args(&["twitch-colorchanger"], &rest) {
        Ok(cli) => run(cli).unwrap_or_else(|e| {
            e.report();
            e.ending()
        }),
        Err(early) if early.status.is_ok() => {
            say(&format!("{}\n", fit_usage(&early.output)));
            Ending::Done
        }
        Err(early) => {
            eprintln!("{}\nTry --help.", early.output.trim_end());
            Ending::BadInput
        }
    };
    ending.exit_code()
}

fn run(cli: Cli) -> Result<Ending, Error> {
    // Signals first, so that a stop during start-up is clean too, and SIGHUP never kills.
    let signals = Signals::new([Signal::Int, Signal::Term, Signal::Hup]).map_err(Error::Signals)?;
    if cli.version {
        say(&format!(
            "twitch-colorchanger {} (commit {}, target {})\n",
            env!("CARGO_PKG_VERSION"),
            env!("TCC_GIT_COMMIT"),
            env!("TCC_TARGET")
        ));
        return Ok(Ending::Done);
    }
    if let Some(Command::Demo(demo)) = &cli.command {
        return run_demo(signals, demo);
    }
    let flag = match &cli.command {
        Some(Command::Setup(c)) => c.config.clone(),
        Some(Command::Check(c)) => c.config.clone(),
        Some(Command::Status(c)) => c.config.clone(),
        Some(Command::Demo(_)) | None => None,
    };
    let path = config::resolve_path(flag.or(cli.config), std::env::var("TWITCH_CONF_FILE").ok());
    let status_file = status::wanted(cli.status_file);
    if cli.health_check {
        return Ok(health_check(&path, status_file));
    }
    match cli.command {
        Some(Command::Status(c)) => return show_status(&path, status_file, c.json),
        Some(Command::Check(_)) => return Ok(check(&path)),
        _ => {}
    }
    log::init(log::Settings::from_env());
    for problem in log::env_problems(|k| std::env::var(k).ok()) {
        twitch_colorchanger::log!(Warn, None, None, "{problem}");
    }
    // the soft limit is the parent's choice (1,024 under systemd), the hard one the system's
    let (before, after) = twitch_colorchanger::nofile::raise();
    if after.soft != before.soft {
        twitch_colorchanger::log!(
            Debug,
            None,
            None,
            "open files: soft limit raised from {} to {}",
            before.soft,
            after.soft
        );
    }
    let endpoints = Endpoints::from_env(&|k| std::env::var(k).ok()).map_err(Error::Start)?;
    let env = app::env_users().map_err(Error::Start)?;
    // the first run at a terminal asks for what the config needs instead of failing
    if env.is_empty() && !path.exists() && at_a_terminal() {
        let written = app::first_run::create(&path).map_err(|e| {
            Error::Start(app::StartError::Config(config::ConfigError::Io(
                path.clone(),
                e,
            )))
        })?;
        if !written {
            eprintln!("no config written");
            return Ok(Ending::BadInput);
        }
    }
    if matches!(cli.command, Some(Command::Setup(_))) {
        return run_setup(signals, path, endpoints, env);
    }
    run_bot(signals, path, status_file, endpoints, env)
}

#[cfg(feature = "demo")]
fn run_demo(mut signals: Signals, demo: &Demo) -> Result<Ending, Error> {
    let options = twitch_colorchanger::demo::Options {
        pause: Duration::from_millis(demo.pause),
        verbose: demo.verbose,
    };
    let stop = async move { interrupted(&mut signals).await };
    twitch_colorchanger::demo::run(&options, stop).map_err(|e| Error::Demo(e.to_string()))?;
    Ok(Ending::Done)
}

#[cfg(not(feature = "demo"))]
fn run_demo(_signals: Signals, _demo: &Demo) -> Result<Ending, Error> {
    Err(Error::NoDemo)
}

/// Waits for SIGINT or SIGTERM (or the end of the signals); SIGHUP changes nothing here.
/// Polled only when a signal came (see [`Gated`]), however often the work it races wakes.
fn interrupted(signals: &mut Signals) -> Gated<impl std::future::Future<Output = ()> + '_> {
    Gated::new(async move { while let Some(Ok(Signal::Hup)) = signals.next().await {} })
}

/// How the bot's run ended: a signal, or the bot by itself.
enum Stopped {
    Signal(Option<Signal>),
    Bot(Result<(), app::StartError>),
}

fn run_bot(
    mut signals: Signals,
    path: PathBuf,
    status_file: Option<PathBuf>,
    endpoints: Endpoints,
    env: app::EnvUsers,
) -> Result<Ending, Error> {
    let (requests, requests_rx) = async_channel::unbounded();
    let sig = twitch_colorchanger::reactor::block_on(async {
        let mut bot = std::pin::pin!(app::run(path, status_file, endpoints, env, requests_rx));
        // the signals are polled only when one came (Gated), not at every wake of the bot
        let stop = smol::future::or(
            Gated::new(async {
                loop {
                    match signals.next().await {
                        Some(Ok(Signal::Hup)) => {
                            log::reopen();
                            twitch_colorchanger::log!(
                                Info,
                                None,
                                None,
                                "SIGHUP: reloading the config and reopening the log file"
                            );
                            let _ = requests.try_send(Request::Reload);
                        }
                        Some(Ok(sig)) => return Stopped::Signal(Some(sig)),
                        _ => return Stopped::Signal(None),
                    }
                }
            }),
            async { Stopped::Bot(bot.as_mut().await) },
        )
        .await;
        match stop {
            Stopped::Signal(sig) => {
                // Twitch may have rotated a pair already: the users stop once it is saved.
                // The supervisor bounds that wait; this bound only guards against a stuck
                // executor.
                let _ = requests.try_send(Request::Stop);
                smol::future::or(
                    async {
                        let _ = bot.as_mut().await;
                    },
                    async {
                        smol::Timer::after(user::STOP_GRACE + Duration::from_secs(1)).await;
                    },
                )
                .await;
                Ok(sig)
            }
            Stopped::Bot(Err(e)) => Err(Error::Start(e)),
            // the bot returns by itself only when it was asked to stop, or with an error
            Stopped::Bot(Ok(())) => Ok(None),
        }
    })
    .map_err(Error::Reactor)??;
    let name = match sig {
        Some(Signal::Int) => "SIGINT",
        _ => "SIGTERM",
    };
    twitch_colorchanger::log!(Info, None, None, "{name} received: shutting down");
    Ok(Ending::Done)
}

fn run_setup(
    mut signals: Signals,
    path: PathBuf,
    endpoints: Endpoints,
    env: app::EnvUsers,
) -> Result<Ending, Error> {
    let outcome = twitch_colorchanger::reactor::block_on(smol::future::or(
        async {
            interrupted(&mut signals).await;
            None
        },
        async { Some(app::setup(path, endpoints, env).await) },
    ))
    .map_err(Error::Reactor)?;
    let Some(results) = outcome else {
        twitch_colorchanger::log!(Info, None, None, "setup interrupted");
        return Ok(Ending::NotDone);
    };
    let mut failed = 0;
    for (user, result) in results.map_err(Error::Start)? {
        match result {
            Ok(()) => {
                twitch_colorchanger::log!(
                    Info,
                    Some(&user),
                    None,
                    "setup: authorised, tokens saved"
                )
            }
            Err(e) => {
                failed += 1;
                twitch_colorchanger::log!(Error, Some(&user), None, "setup failed: {e}");
            }
        }
    }
    Ok(if failed == 0 {
        Ending::Done
    } else {
        Ending::NotDone
    })
}

/// `--health-check`: one line, healthy or not with the reason.
fn health_check(config: &Path, status_file: Option<PathBuf>) -> Ending {
    let verdict = status::read_with(config, status_file)
        .map_err(|e| status::Unhealthy(e.to_string()))
        .and_then(|doc| status::health(&doc, SystemTime::now(), status::pid_alive(doc.pid)));
    match verdict {
        Ok(summary) => {
            say(&format!("{summary}\n"));
            Ending::Done
        }
        Err(why) => {
            say(&format!("unhealthy: {why}\n"));
            Ending::NotDone
        }
    }
}

/// `status [--json]`: the running bot's users, or why there is no running bot.
fn show_status(config: &Path, status_file: Option<PathBuf>, json: bool) -> Result<Ending, Error> {
    let doc = status::read_with(config, status_file).map_err(|e| Error::NoStatus(e.to_string()))?;
    if !status::pid_alive(doc.pid) {
        return Err(Error::NoStatus(format!(
            "no bot is running for {}: the last one (pid {}) wrote its status at {} and is gone",
            config.display(),
            doc.pid,
            doc.written_at
        )));
    }
    if json {
        let mut text = Vec::new();
        doc.write_pretty(&mut text)
            .map_err(|e| Error::NoStatus(e.to_string()))?;
        say(&String::from_utf8_lossy(&text));
    } else {
        say(&status::table(&doc, SystemTime::now()));
    }
    if let Err(why) = status::health(&doc, SystemTime::now(), true) {
        eprintln!("warning: {why}");
    }
    Ok(Ending::Done)
}

/// `check`: the config file and the environment together, every problem listed.
fn check(path: &Path) -> Ending {
    let report = twitch_colorchanger::app::check(path, |k| std::env::var(k).ok());
    say(&report.text);
    if report.ok {
        Ending::Done
    } else {
        Ending::BadInput
    }
}

/// argh writes the usage line whole; broken before a `[` so that it fits 80 columns, the
/// rest indented under the command's name.
fn fit_usage(help: &str) -> String {
    const WIDTH: usize = 80;
    let mut out = String::with_capacity(help.len());
    for line in help.split_inclusive('\n') {
        let Some(words) = line.strip_prefix("Usage: ").filter(|_| line.len() > WIDTH) else {
            out.push_str(line);
            continue;
        };
        let indent = "       ";
        let mut row = String::from("Usage:");
        for word in words.trim_end().split(" [") {
            let word = if row == "Usage:" {
                word.to_owned()
            } else {
                format!("[{word}")
            };
            if row.len() + 1 + word.len() > WIDTH && row.trim() != "Usage:" {
                out.push_str(&row);
                out.push('\n');
                row = format!("{indent}{word}");
            } else {
                row = format!("{row} {word}");
            }
        }
        out.push_str(&row);
        out.push_str(if line.ends_with('\n') { "\n" } else { "" });
    }
    out
}

/// Someone can answer questions: standard input and error are both a terminal.
fn at_a_terminal() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a panic.
fn say(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}
