//! `check`: the config file and the environment's users validated together, without
//! writing anything, every problem of every user listed.

use std::path::Path;

use super::endpoints::Endpoints;
use crate::chat::Protocol;
use crate::config::{ConfigError, UserConfig};
use crate::{config, log};

/// What `check` found: the text to print and whether the config can run as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// No problem at all.
    pub ok: bool,
    /// What would run, then every problem, one per line.
    pub text: String,
}

/// `check`: validates the config file and the environment's users together (without
/// writing anything) and the endpoint variables, listing every problem of every user.
pub fn check(path: &Path, var: impl Fn(&str) -> Option<String>) -> CheckReport {
    let mut problems = log::env_problems(&var);
    let mut notes: Vec<String> = Vec::new();
    let default_transport = match Endpoints::from_env(&var) {
        Ok(endpoints) => endpoints.chat_transport,
        Err(e) => {
            problems.push(e.to_string());
            Protocol::Irc
        }
    };
    let env = config::env_users(&var).unwrap_or_else(|e| {
        problems.push(format!("environment variable {e}"));
        Vec::new()
    });
    let mut running = Vec::new();
    let root = match config::read_text(path) {
        Ok(text) => config::parse_json(path, &text).map(Some),
        Err(ConfigError::Missing(_)) if !env.is_empty() => Ok(None),
        Err(e) => Err(e),
    };
    match root {
        Err(e) => problems.push(e.to_string()),
        Ok(root) => {
            let mut root = root.unwrap_or_else(|| serde_json::json!({ "users": [] }));
            config::merge_env(&mut root, &env);
            match config::validate(path, &root) {
                Ok(cfg) => {
                    notes.extend(
                        cfg.unknown
                            .iter()
                            .map(|w| format!("{}: {w}", path.display())),
                    );
                    problems.extend(
                        cfg.warnings
                            .iter()
                            .map(|w| format!("{}: {w}", path.display())),
                    );
                    running = cfg
                        .users
                        .iter()
                        .map(|u| describe(u, default_transport))
                        .collect();
                }
                Err(ConfigError::NoValidUsers(_, warnings)) => {
                    problems.push(format!("{}: no valid user", path.display()));
                    problems.extend(warnings.iter().map(|w| format!("{}: {w}", path.display())));
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    let mut text = format!("config: {}", path.display());
    if !env.is_empty() {
        text.push_str(&format!(
            " (with {} user(s) from TWITCH_USERNAME_<n>)",
            env.len()
        ));
    }
    text.push('\n');
    if !running.is_empty() {
        text.push_str("would run:\n");
        for line in &running {
            text.push_str(&format!("  {line}\n"));
        }
    }
    if !notes.is_empty() {
        text.push_str(&format!("{} warning(s):\n", notes.len()));
        for n in &notes {
            text.push_str(&format!("  {n}\n"));
        }
    }
    if problems.is_empty() {
        text.push_str("no problems found\n");
    } else {
        text.push_str(&format!("{} problem(s):\n", problems.len()));
        for p in &problems {
            text.push_str(&format!("  {p}\n"));
        }
    }
    CheckReport {
        ok: problems.is_empty(),
        text,
    }
}

fn describe(u: &UserConfig, default_transport: Protocol) -> String {
    let channels: Vec<String> = u.channels.iter().map(|c| format!("#{c}")).collect();
    format!(
        "{}: channels {}; chat over {}; {}; automatic changes {}; {}; {} client",
        u.username,
        channels.join(", "),
        u.chat_transport.unwrap_or(default_transport).display_name(),
        u.colors.describe(u.is_prime_or_turbo),
        if u.enabled { "on" } else { "off" },
        if u.access_token.is_empty() {
            "no token yet (device-code flow at start)"
        } else {
            "token present (validated at start)"
        },
        if u.client_secret.is_empty() {
            "public"
        } else {
            "confidential"
        }
    )
}
