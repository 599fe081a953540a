//! The `twitch-colorchanger` command: flags, signals, exit codes.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use smol::stream::StreamExt;

use twitch_colorchanger::app::{self, Endpoints};
use twitch_colorchanger::{config, log};

/// Changes your Twitch chat name color after every message you send.
#[derive(FromArgs)]
#[argh(
    note = "Config file: --config PATH, else $TWITCH_CONF_FILE, else ./twitch_colorchanger.conf",
    error_code(0, "stopped by SIGINT or SIGTERM; setup: every user authorised"),
    error_code(1, "no user could be authorised (the messages say why)"),
    error_code(2, "bad command line, config file or environment variable")
)]
struct Cli {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,

    /// print the version, git commit and target, and exit
    #[argh(switch, short = 'V')]
    version: bool,

    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Setup(Setup),
}

/// Authorise every user that needs it (device-code flow), save the tokens, and exit.
#[derive(FromArgs)]
#[argh(subcommand, name = "setup")]
struct Setup {
    /// path of the JSON config file
    #[argh(option, short = 'c')]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Signals first, so that a stop during start-up is clean too.
    let signals =
        match async_signal::Signals::new([async_signal::Signal::Int, async_signal::Signal::Term]) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot install signal handlers: {e}");
                return ExitCode::from(1);
            }
        };
    let args: Vec<String> = std::env::args().collect();
    let name = "twitch-colorchanger";
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    let cli = match Cli::from_args(&[name], &rest) {
        Ok(cli) => cli,
        Err(early) => {
            return match early.status {
                Ok(()) => {
                    println!("{}", early.output);
                    ExitCode::SUCCESS
                }
                Err(()) => {
                    eprintln!("{}", early.output);
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
    log::init(log::Settings::from_env());
    let setup = matches!(cli.command, Some(Command::Setup(_)));
    let flag = match cli.command {
        Some(Command::Setup(s)) => s.config.or(cli.config),
        None => cli.config,
    };
    let path = config::resolve_path(flag, std::env::var("TWITCH_CONF_FILE").ok());
    let endpoints = match Endpoints::from_env(|k| std::env::var(k).ok()) {
        Ok(e) => e,
        Err(e) => {
            twitch_colorchanger::log!(Error, None, None, "{e}");
            return ExitCode::from(2);
        }
    };
    let mut signals = signals;
    if setup {
        return run_setup(signals, path, endpoints);
    }
    let stopped = smol::block_on(smol::future::or(
        async {
            let sig = signals.next().await;
            Ok(sig.and_then(Result::ok))
        },
        async { app::run(path, endpoints).await.map(|()| None) },
    ));
    match stopped {
        Ok(sig) => {
            let name = match sig {
                Some(async_signal::Signal::Int) => "SIGINT",
                _ => "SIGTERM",
            };
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

fn run_setup(mut signals: async_signal::Signals, path: PathBuf, endpoints: Endpoints) -> ExitCode {
    let outcome = smol::block_on(smol::future::or(
        async {
            signals.next().await;
            None
        },
        async { Some(app::setup(path, endpoints).await) },
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
