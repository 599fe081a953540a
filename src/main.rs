//! The `twitch-colorchanger` command: flags, subcommands, signals, exit codes.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use argh::FromArgs;
use async_signal::{Signal, Signals};
use smol::stream::StreamExt;

use twitch_colorchanger::app::{self, Endpoints, Request};
use twitch_colorchanger::{config, log, status, user};

/// Changes your Twitch chat name color after every message you send.
#[derive(FromArgs)]
#[argh(
    note = "Config file: --config PATH, else $TWITCH_CONF_FILE, else ./twitch_colorchanger.conf",
    error_code(
        0,
        "stopped by SIGINT or SIGTERM; setup: every user authorised; healthy; demo: played through"
    ),
    error_code(
        1,
        "no user could be authorised; --health-check: unhealthy; status: no bot running; demo: a step failed or interrupted"
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

    /// exit 0 if the bot running for this config is healthy, else 1 with the reason
    #[argh(switch)]
    health_check: bool,

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

/// Authorise every user that needs it (device-code flow), save the tokens, and exit.
#[derive(FromArgs)]
#[argh(subcommand, name = "setup")]
struct Setup {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

/// Validate the config file and environment, list every problem, and show what would run.
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

/// See the bot work, without a Twitch account: a short chat with a Twitch look-alike on
/// 127.0.0.1, each color change shown (takes about 15 s; writes only a temporary directory).
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

fn main() -> ExitCode {
    // Signals first, so that a stop during start-up is clean too, and SIGHUP never kills.
    let signals = match Signals::new([Signal::Int, Signal::Term, Signal::Hup]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let args: Vec<String> = std::env::args().collect();
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&["twitch-colorchanger"], &rest) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}\nTry --help.", early.output.trim_end());
                    ExitCode::from(2)
                }
            };
        }
    };
    if cli.version {
        println!(
            "twitch-colorchanger {} (commit {}, target {})",
            env!("CARGO_PKG_VERSION"),
            env!("TCC_GIT_COMMIT"),
            env!("TCC_TARGET")
        );
        return ExitCode::SUCCESS;
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
    if cli.health_check {
        return health_check(&path);
    }
    match cli.command {
        Some(Command::Status(c)) => return show_status(&path, c.json),
        Some(Command::Check(_)) => return check(&path),
        _ => {}
    }
    log::init(log::Settings::from_env());
    for problem in log::env_problems(|k| std::env::var(k).ok()) {
        twitch_colorchanger::log!(Warn, None, None, "{problem}");
    }
    let endpoints = match Endpoints::from_env(&|k| std::env::var(k).ok()) {
        Ok(e) => e,
        Err(e) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            return ExitCode::from(2);
        }
    };
    let env = match app::env_users() {
        Ok(env) => env,
        Err(e) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            return ExitCode::from(2);
        }
    };
    if matches!(cli.command, Some(Command::Setup(_))) {
        return run_setup(signals, path, endpoints, env);
    }
    run_bot(signals, path, endpoints, env)
}

#[cfg(feature = "demo")]
fn run_demo(mut signals: Signals, demo: &Demo) -> ExitCode {
    let options = twitch_colorchanger::demo::Options {
        pause: Duration::from_millis(demo.pause),
        verbose: demo.verbose,
    };
    let stop = async move { interrupted(&mut signals).await };
    match twitch_colorchanger::demo::run(&options, stop) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "demo"))]
fn run_demo(_signals: Signals, _demo: &Demo) -> ExitCode {
    eprintln!("this build has no demo (it was built without the demo feature)");
    ExitCode::from(2)
}

/// Waits for SIGINT or SIGTERM (or the end of the signals); SIGHUP changes nothing here.
async fn interrupted(signals: &mut Signals) {
    while let Some(Ok(Signal::Hup)) = signals.next().await {}
}

/// How the bot's run ended: a signal, or the bot by itself.
enum Stopped {
    Signal(Option<Signal>),
    Bot(Result<(), app::StartError>),
}

fn run_bot(
    mut signals: Signals,
    path: PathBuf,
    endpoints: Endpoints,
    env: app::EnvUsers,
) -> ExitCode {
    let (requests, requests_rx) = async_channel::unbounded();
    let stopped = smol::block_on(async {
        let mut bot = std::pin::pin!(app::run(path, endpoints, env, requests_rx));
        let stop = smol::future::or(
            async {
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
            },
            async { Stopped::Bot(bot.as_mut().await) },
        )
        .await;
        if let Stopped::Signal(sig) = stop {
            // Twitch may have rotated a pair already: the users stop once it is saved. The
            // supervisor bounds that wait; this bound only guards against a stuck executor.
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
            return Ok(sig);
        }
        match stop {
            Stopped::Bot(Err(e)) => Err(e),
            // the bot returns by itself only when it was asked to stop, or with an error
            Stopped::Bot(Ok(())) | Stopped::Signal(_) => Ok(None),
        }
    });
    match stopped {
        Ok(sig) => {
            let name = signal_name(sig);
            twitch_colorchanger::log!(Info, None, None, "{name} received: shutting down");
            ExitCode::SUCCESS
        }
        Err(e @ app::StartError::NoUserLeft) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            ExitCode::from(1)
        }
        Err(e) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            ExitCode::from(2)
        }
    }
}

fn signal_name(sig: Option<Signal>) -> &'static str {
    match sig {
        Some(Signal::Int) => "SIGINT",
        _ => "SIGTERM",
    }
}

fn run_setup(
    mut signals: Signals,
    path: PathBuf,
    endpoints: Endpoints,
    env: app::EnvUsers,
) -> ExitCode {
    let outcome = smol::block_on(smol::future::or(
        async {
            interrupted(&mut signals).await;
            None
        },
        async { Some(app::setup(path, endpoints, env).await) },
    ));
    match outcome {
        None => {
            twitch_colorchanger::log!(Info, None, None, "setup interrupted");
            ExitCode::from(1)
        }
        Some(Err(e)) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            ExitCode::from(2)
        }
        Some(Ok(results)) => {
            let mut failed = 0;
            for (user, result) in results {
                match result {
                    Ok(()) => twitch_colorchanger::log!(
                        Info,
                        Some(&user),
                        None,
                        "setup: authorised, tokens saved"
                    ),
                    Err(e) => {
                        failed += 1;
                        twitch_colorchanger::log!(Error, Some(&user), None, "setup failed: {e}");
                    }
                }
            }
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `--health-check`: one line, exit 0 when healthy, 1 with the reason otherwise.
fn health_check(config: &Path) -> ExitCode {
    let verdict = status::read(config)
        .and_then(|doc| status::health(&doc, SystemTime::now(), status::pid_alive(doc.pid)));
    match verdict {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            println!("unhealthy: {why}");
            ExitCode::from(1)
        }
    }
}

/// `status [--json]`: the running bot's users, or why there is no running bot.
fn show_status(config: &Path, json: bool) -> ExitCode {
    let doc = match status::read(config) {
        Ok(doc) => doc,
        Err(why) => {
            eprintln!("{why}");
            return ExitCode::from(1);
        }
    };
    if !status::pid_alive(doc.pid) {
        eprintln!(
            "no bot is running for {}: the last one (pid {}) wrote its status at {} and is gone",
            config.display(),
            doc.pid,
            doc.written_at
        );
        return ExitCode::from(1);
    }
    if json {
        match serde_json::to_string_pretty(&doc) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", status::table(&doc, SystemTime::now()));
    }
    if let Err(why) = status::health(&doc, SystemTime::now(), true) {
        eprintln!("warning: {why}");
    }
    ExitCode::SUCCESS
}

/// `check`: the config file and the environment together, every problem listed.
fn check(path: &Path) -> ExitCode {
    let report = twitch_colorchanger::app::check(path, |k| std::env::var(k).ok());
    print!("{}", report.text);
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
