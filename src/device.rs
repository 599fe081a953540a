//! Showing a device code to the person: a log line, or on a terminal a box with a QR code.
//! When to show one, poll it and give up on it is the token core's
//! ([`crate::tokens`]); the requests are [`crate::oauth`]'s.

use std::io::{IsTerminal, Write};
use std::time::Duration;

pub use crate::answer::{DeviceCode, DeviceError};
use crate::log;

/// Shows the person what to do.
pub trait Prompter: Send + Sync {
    /// A new code for `username`, valid for `left`.
    fn show(&self, username: &str, code: &DeviceCode, left: Duration);
    /// The code is still pending.
    fn remind(&self, username: &str, code: &DeviceCode, left: Duration);
}

/// The prompter for this process: big and with a QR code on a terminal, plain log lines
/// (easy to grep: `ACTION REQUIRED`) otherwise.
pub fn prompter() -> Box<dyn Prompter> {
    if std::io::stdout().is_terminal() {
        Box::new(TerminalPrompter)
    } else {
        Box::new(LogPrompter)
    }
}

/// Plain log lines, for container logs and services.
pub struct LogPrompter;

impl Prompter for LogPrompter {
    fn show(&self, username: &str, code: &DeviceCode, left: Duration) {
        log!(Warn, Some(username), None, "ACTION REQUIRED: authorise twitch-colorchanger for {username}: open {} and enter code {} (valid {} minutes)", code.verification_uri, code.user_code, left.as_secs() / 60);
    }
    fn remind(&self, username: &str, code: &DeviceCode, left: Duration) {
        log!(
            Warn,
            Some(username),
            None,
            "ACTION REQUIRED: still waiting: open {} and enter code {} ({} minutes left)",
            code.verification_uri,
            code.user_code,
            left.as_secs() / 60
        );
    }
}

/// A boxed prompt with a QR code of the URL on stdout, written in one piece so that the
/// prompts of several users never interleave.
pub(crate) struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    fn show(&self, username: &str, code: &DeviceCode, left: Duration) {
        // a short log line first (the block holds the link and the code): with it, the block
        // and the shell's prompt fit an 80×24 terminal
        log!(Warn, Some(username), None, "{}", terminal_log_line(code));
        let text = terminal_prompt(username, code, left);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }
    fn remind(&self, username: &str, code: &DeviceCode, left: Duration) {
        LogPrompter.remind(username, code, left);
    }
}

/// The log line above the prompt block on a terminal: at most two rows of 80 columns with
/// the time, level and the longest login.
fn terminal_log_line(code: &DeviceCode) -> String {
    format!(
        "ACTION REQUIRED: code {}, link and QR code below",
        code.user_code
    )
}

/// The prompt block: the QR code of the link on the left with the steps beside it, and the
/// link in full below, all within 80 columns and [`PROMPT_ROWS`] rows.
pub(crate) fn terminal_prompt(username: &str, code: &DeviceCode, left: Duration) -> String {
    let steps = [
        "Authorise twitch-colorchanger".to_owned(),
        format!("for the Twitch account {username}"),
        String::new(),
        "1. Open the link below, or scan".into(),
        "   the QR code with your phone".into(),
        "2. Check that it shows the code".into(),
        format!("   {}", spaced(&code.user_code)),
        "3. Click Authorize, logged in".into(),
        format!("   as {username}"),
        String::new(),
        format!(
            "The code expires in {} minutes.",
            left.as_secs().div_ceil(60)
        ),
    ];
    let qr = qr(&code.verification_uri);
    let qr: Vec<&str> = qr.lines().collect();
    let qr_width = qr.first().map_or(0, |row| row.chars().count());
    let mut out = String::new();
    for i in 0..qr.len().max(steps.len()) {
        let row = qr.get(i).copied().unwrap_or_default();
        let pad = if row.is_empty() { qr_width } else { 0 };
        let step = steps.get(i).map_or("", String::as_str);
        let line = format!("{row}{:pad$}  {step}", "");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str(&format!("Link: {}\n", code.verification_uri));
    out
}

fn spaced(code: &str) -> String {
    code.chars()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A QR code drawn with half blocks, light modules as `█` (for dark terminals), with a quiet
/// zone; empty if the text does not fit a QR code.
pub(crate) fn qr(text: &str) -> String {
    let Ok(code) = qrcodegen::QrCode::encode_text(text, qrcodegen::QrCodeEcc::Low) else {
        return String::new();
    };
    let quiet = 2;
    let size = code.size();
    let light = |x: i32, y: i32| !code.get_module(x, y); // outside the code: light
    let mut out = String::new();
    let mut y = -quiet;
    while y < size + quiet {
        for x in -quiet..size + quiet {
            out.push(match (light(x, y), light(x, y + 1)) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn code() -> DeviceCode {
        DeviceCode {
            device_code: Secret::new("ike3GM8QIdYZs43KdrWPIO36LofILoCyFEzjlQ91"),
            user_code: "ABCDEFGH".into(),
            verification_uri: "https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH"
                .into(),
            expires_in: 1800,
            interval: 5,
        }
    }

    /// Rows the prompt block may take: with the log line above it (two rows at 80 columns)
    /// and the shell's prompt line, it fits an 80×24 terminal.
    const PROMPT_ROWS: usize = 20;

    #[test]
    fn the_prompt_names_user_url_code_and_time_and_hides_the_device_code() {
        let text = terminal_prompt("hueshift_bot", &code(), Duration::from_secs(1800));
        assert!(text.contains("Twitch account hueshift_bot"));
        assert!(text.contains("https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH"));
        assert!(text.contains("A B C D E F G H"));
        assert!(text.contains("expires in 30 minutes"));
        assert!(!text.contains("ike3GM8Q"));
        // all of it on an 80×24 terminal: the block's rows, and each within 80 columns
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() <= PROMPT_ROWS, "{} rows:\n{text}", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 80), "{text}");
        assert!(lines[0].starts_with('█'), "the QR code on the left");
        assert!(
            lines[0].ends_with("Authorise twitch-colorchanger"),
            "{text}"
        );
        // with the log line above it and a shell prompt: 24 rows, even for the longest login
        let longest = "a".repeat(25);
        let log = format!(
            "2026-12-04T10:00:00Z WARN  [{longest}] {}",
            terminal_log_line(&code())
        );
        let rows = log.chars().count().div_ceil(80) + lines.len() + 1;
        assert!(rows <= 24, "{rows} rows: {log}\n{text}");
    }

    #[test]
    fn draws_a_square_qr_code_with_quiet_zone() {
        let q = qr("https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH");
        let rows: Vec<&str> = q.lines().collect();
        let width = rows[0].chars().count();
        assert!(rows.iter().all(|r| r.chars().count() == width));
        assert_eq!(rows.len(), width.div_ceil(2));
        assert!(rows[0].chars().all(|c| c == '█'), "quiet zone on top");
    }
}
