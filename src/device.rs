//! The device-code flow for one user: get a code, show it to the person, poll until they
//! approve, decline, or the code expires.

use std::fmt;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use crate::clock::Clock;
use crate::log;
use crate::oauth::{AppCredentials, DeviceCode, OAuth, OAuthError, TokenSet};

/// Remind the person this often while a code is pending.
const REMIND_EVERY: Duration = Duration::from_secs(5 * 60);

/// Why one device-code attempt ended without tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The code expired before anyone approved it.
    Expired,
    /// The person declined.
    Denied,
    /// Twitch refused.
    Failed(String),
    /// Twitch could not be reached, or failed on its side (no network, DNS, a 5xx): not
    /// the person's doing, so it does not count toward the limit of codes.
    Unreachable(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Expired => f.write_str("the code expired before it was approved"),
            DeviceError::Denied => f.write_str("the authorisation was declined"),
            DeviceError::Failed(e) | DeviceError::Unreachable(e) => f.write_str(e),
        }
    }
}

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
        let text = terminal_prompt(username, code, left);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        LogPrompter.show(username, code, left);
    }
    fn remind(&self, username: &str, code: &DeviceCode, left: Duration) {
        LogPrompter.remind(username, code, left);
    }
}

/// The prompt block: a QR code of the URL, then who, where, which code and how long, last,
/// so that on a small terminal (80×24) the link and the code are what stays on the screen.
pub(crate) fn terminal_prompt(username: &str, code: &DeviceCode, left: Duration) -> String {
    let lines = [
        format!("Authorise twitch-colorchanger for Twitch account {username}"),
        String::new(),
        format!("  1. Open   {}", code.verification_uri),
        format!("  2. Check the code   {}", spaced(&code.user_code)),
        format!("  3. Click Authorize (logged in as {username})"),
        String::new(),
        format!(
            "The code expires in {} minutes. The QR code above opens the same link.",
            left.as_secs().div_ceil(60)
        ),
    ];
    let width = lines.iter().map(|l| l.chars().count()).max().unwrap_or(0) + 2;
    let mut out = String::from("\n");
    out.push_str(&qr(&code.verification_uri));
    out.push_str(&format!("╔{}╗\n", "═".repeat(width)));
    for line in &lines {
        out.push_str(&format!("║ {line:<w$} ║\n", w = width - 2));
    }
    out.push_str(&format!("╚{}╝\n", "═".repeat(width)));
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

/// One attempt: request a code, show it, poll every `interval` until tokens, refusal or expiry.
pub async fn run(
    oauth: &OAuth,
    clock: &dyn Clock,
    app: &AppCredentials,
    username: &str,
    prompter: &dyn Prompter,
) -> Result<TokenSet, DeviceError> {
    let code = oauth.device_code(&app.id).await.map_err(|e| match e {
        OAuthError::Http { .. } | OAuthError::Refused(500..=599, _) => {
            DeviceError::Unreachable(format!("cannot reach Twitch to start the device-code flow: {e}"))
        }
        e => DeviceError::Failed(format!("cannot start the device-code flow: {e}")),
    })?;
    let start = clock.now();
    let deadline = start + Duration::from_secs(code.expires_in);
    prompter.show(username, &code, Duration::from_secs(code.expires_in));
    let mut interval = Duration::from_secs(code.interval);
    let mut next_reminder = start + REMIND_EVERY;
    loop {
        let at = clock.now() + interval;
        clock.sleep_until(at).await;
        let now = clock.now();
        if now >= deadline {
            return Err(DeviceError::Expired);
        }
        match oauth.poll_device(app, &code.device_code).await {
            Ok(set) => return Ok(set),
            Err(OAuthError::Pending) => {}
            Err(OAuthError::SlowDown) => interval += Duration::from_secs(5),
            Err(OAuthError::Expired) => return Err(DeviceError::Expired),
            Err(OAuthError::Denied) => return Err(DeviceError::Denied),
            Err(e @ OAuthError::Http { .. }) => {
                log!(
                    Debug,
                    Some(username),
                    None,
                    "device-code poll failed ({e}); polling on"
                );
            }
            Err(e) => {
                return Err(DeviceError::Failed(format!(
                    "Twitch refused the device code: {e}"
                )))
            }
        }
        if now >= next_reminder {
            next_reminder = now + REMIND_EVERY;
            prompter.remind(username, &code, deadline.saturating_duration_since(now));
        }
    }
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

    #[test]
    fn the_prompt_names_user_url_code_and_time_and_hides_the_device_code() {
        let text = terminal_prompt("hueshift_bot", &code(), Duration::from_secs(1800));
        assert!(text.contains("Twitch account hueshift_bot"));
        assert!(text.contains("https://www.twitch.tv/activate?public=true&device-code=ABCDEFGH"));
        assert!(text.contains("A B C D E F G H"));
        assert!(text.contains("expires in 30 minutes"));
        assert!(!text.contains("ike3GM8Q"));
        let rows: Vec<&str> = text.lines().filter(|l| l.starts_with('║')).collect();
        let widths: Vec<usize> = rows.iter().map(|l| l.chars().count()).collect();
        assert!(widths.windows(2).all(|w| w[0] == w[1]), "box rows line up");
        assert!(widths[0] <= 80, "fits an 80-column terminal");
        // the link and the code come last, so an 80×24 terminal keeps them on screen
        let lines: Vec<&str> = text.lines().collect();
        let link = lines.iter().position(|l| l.contains("1. Open")).unwrap();
        assert!(lines.len() - link <= 8, "{text}");
        assert!(lines[1].starts_with('█'), "the QR code first");
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
