//! The device-code flow: when the person must authorise again, one code's life (shown,
//! polled every `interval` and 5 s slower after each `slow_down`, a reminder every five
//! minutes, expired on time), and what its outcome means (a new code at once at a terminal,
//! growing pauses unattended, a limit).

use std::time::{Duration, Instant};

use super::{
    Busy, Prompt, RenewError, Stage, Timer, TokenAction, TokenCore, TokenEvent, APP_REFUSED_RETRY,
};
use crate::answer::{DeviceCode, DeviceError, OAuthError, TokenSet};
use crate::log;

/// Remind the person this often while a code is pending.
pub(crate) const REMIND_EVERY: Duration = Duration::from_secs(5 * 60);
/// How much longer the pause between polls grows at each `slow_down` (RFC 8628 §3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);

/// The device code shown to the person.
#[derive(Debug)]
pub(super) struct Code {
    code: DeviceCode,
    interval: Duration,
    expires: Instant,
}

impl TokenCore {
    /// Sends the person to the device flow (or gives up, when codes are not allowed).
    pub(super) fn authorize(&mut self, why: String) {
        log!(
            Error,
            self.who(),
            None,
            "{why}: the user must authorise again; starting the device-code flow"
        );
        self.start_device_flow(why);
    }

    /// A user who never had tokens: the first authorisation, which is what a new user expects
    /// (told at INFO; the device code itself comes as the ACTION REQUIRED line).
    pub(super) fn authorize_first(&mut self) {
        log!(
            Info,
            self.who(),
            None,
            "no tokens yet: authorise this bot once; starting the device-code flow"
        );
        self.start_device_flow("no tokens yet".into());
    }

    fn start_device_flow(&mut self, why: String) {
        self.answer(Err(RenewError::Refused(why)));
        self.want = None;
        self.retry = None;
        self.timers.set(Timer::Retry, None);
        self.stage = Stage::Authorising(0);
        self.start(Busy::Device, TokenAction::Authorize);
    }

    /// The answer to [`TokenAction::Authorize`]: a code to show and poll, or why there is
    /// none.
    pub fn handle_code(&mut self, now: Instant, result: Result<DeviceCode, OAuthError>) {
        if self.busy != Some(Busy::Device) {
            return;
        }
        let code = match result {
            Ok(code) => code,
            Err(e) => return self.handle_device(now, Err(code_refused(e))),
        };
        self.busy = None;
        let left = Duration::from_secs(code.expires_in);
        let interval = Duration::from_secs(code.interval);
        self.events.push_back(TokenEvent::Prompt(Prompt {
            code: code.clone(),
            left,
            reminder: false,
        }));
        self.timers.set(Timer::Poll, Some(now + interval));
        self.timers.set(Timer::Remind, Some(now + REMIND_EVERY));
        self.code = Some(Code {
            code,
            interval,
            expires: now + left,
        });
    }

    /// A timer of the code shown: remind the person, poll, or let it expire.
    pub(super) fn code_timeout(&mut self, now: Instant) {
        let Some(code) = &self.code else {
            return;
        };
        if self.timers.is_due(Timer::Remind, now) {
            self.timers.set(Timer::Remind, Some(now + REMIND_EVERY));
            self.events.push_back(TokenEvent::Prompt(Prompt {
                code: code.code.clone(),
                left: code.expires.saturating_duration_since(now),
                reminder: true,
            }));
        }
        if self.timers.is_due(Timer::Poll, now) {
            self.timers.set(Timer::Poll, None);
            if now >= code.expires {
                return self.handle_device(now, Err(DeviceError::Expired));
            }
            let device_code = code.code.device_code.clone();
            self.start(Busy::Poll, TokenAction::PollCode(device_code));
        }
    }

    /// The answer to [`TokenAction::PollCode`].
    pub fn handle_polled(&mut self, now: Instant, result: Result<TokenSet, OAuthError>) {
        if self.busy != Some(Busy::Poll) {
            return;
        }
        self.busy = None;
        let Some(code) = &mut self.code else {
            return;
        };
        let end = match result {
            Ok(set) => Ok(set),
            Err(OAuthError::Pending) => return self.poll_again(now),
            Err(OAuthError::SlowDown) => {
                code.interval += SLOW_DOWN;
                return self.poll_again(now);
            }
            Err(e @ OAuthError::Http { .. }) => {
                log!(
                    Debug,
                    self.who(),
                    None,
                    "device-code poll failed ({e}); polling on"
                );
                return self.poll_again(now);
            }
            Err(OAuthError::Expired) => Err(DeviceError::Expired),
            Err(OAuthError::Denied) => Err(DeviceError::Denied),
            Err(e) => Err(DeviceError::Failed(format!(
                "Twitch refused the device code: {e}"
            ))),
        };
        self.handle_device(now, end);
    }

    fn poll_again(&mut self, now: Instant) {
        if let Some(code) = &self.code {
            self.timers.set(Timer::Poll, Some(now + code.interval));
        }
    }

    /// One device-code authorisation ended: tokens, or why not.
    pub fn handle_device(&mut self, now: Instant, result: Result<TokenSet, DeviceError>) {
        if self.busy != Some(Busy::Device) && self.code.is_none() {
            return;
        }
        self.busy = None;
        self.code = None;
        self.timers.set(Timer::Poll, None);
        self.timers.set(Timer::Remind, None);
        match result {
            Ok(set) => {
                self.retry_backoff.reset();
                let access = set.access_token.clone();
                self.start(Busy::ValidateNew(set), TokenAction::Validate(access));
            }
            Err(DeviceError::Unreachable(why)) => self.unreachable(now, why, false),
            Err(DeviceError::Clock(why)) => self.unreachable(now, why, true),
            Err(DeviceError::AppRefused(why)) => self.app_refused_code(now, why),
            Err(e) => self.code_failed(now, e.to_string()),
        }
    }

    /// Twitch could not be reached for a code: not a refusal, so it does not count toward
    /// the limit; tried again after a pause growing from about 2 s to 3 minutes, at a
    /// terminal too.
    /// `quiet`: the cause was said once already (a clock that looks wrong).
    fn unreachable(&mut self, now: Instant, why: String, quiet: bool) {
        let wait = self.retry_backoff.next_delay(0.75);
        let line = format!(
            "{why}; trying again in {:.0}s (waiting for the network or Twitch)",
            wait.as_secs_f64().ceil()
        );
        if quiet {
            log!(Debug, self.who(), None, "{line}");
        } else {
            log!(Warn, self.who(), None, "{line}");
        }
        self.timers.set(Timer::NextCode, Some(now + wait));
    }

    /// Twitch refuses the app when asked for a code (an unknown `client_id`): a new code
    /// cannot help, so none is asked for until the field changes. Someone at a terminal is
    /// told at once and the user ends (they fix the file and run it again); unattended, it is
    /// said once at ERROR and asked again hourly, and an edit of the field restarts the user.
    fn app_refused_code(&mut self, now: Instant, cause: String) {
        let why = format!(
            "{cause}: check \"client_id\" of this user in {} (your app's Client ID, at https://dev.twitch.tv/console/apps)",
            self.saved_to
        );
        if self.attempts.is_some() {
            self.stage = Stage::GaveUp;
            self.answer(Err(RenewError::Refused(why.clone())));
            self.events.push_back(TokenEvent::GaveUp(why));
            return;
        }
        let why = format!("{why}; no device code until it changes (trying again hourly and as soon as the file is edited)");
        if self.app_refused {
            log!(Debug, self.who(), None, "{why}");
        } else {
            log!(Error, self.who(), None, "{why}");
        }
        self.app_refused = true;
        self.timers
            .set(Timer::NextCode, Some(now + APP_REFUSED_RETRY));
    }

    pub(super) fn code_failed(&mut self, now: Instant, failure: String) {
        let Stage::Authorising(codes) = self.stage else {
            return;
        };
        self.retry_backoff.reset(); // Twitch answered
        let codes = codes + 1;
        self.stage = Stage::Authorising(codes);
        if self.attempts.is_some_and(|max| codes >= max) {
            let why = format!("authorisation failed {codes} times, last: {failure}");
            self.stage = Stage::GaveUp;
            self.answer(Err(RenewError::Refused(why.clone())));
            self.events.push_back(TokenEvent::GaveUp(why));
            return;
        }
        // Someone is at the terminal: a new code at once. Unattended: pause, growing, so
        // that Twitch is not asked for codes nobody reads.
        let wait = if self.attempts.is_some() {
            Duration::ZERO
        } else {
            self.code_pause.next_delay(1.0)
        };
        log!(
            Warn,
            self.who(),
            None,
            "authorisation not completed ({failure}); new code in {}s",
            wait.as_secs()
        );
        self.timers.set(Timer::NextCode, Some(now + wait));
    }
}

/// Why no device code could be had, by what Twitch's answer means.
fn code_refused(e: OAuthError) -> DeviceError {
    let unreachable = || format!("cannot reach Twitch to start the device-code flow: {e}");
    match e {
        ref e if e.is_clock() => DeviceError::Clock(unreachable()),
        OAuthError::Http { .. } | OAuthError::Unavailable(..) => {
            DeviceError::Unreachable(unreachable())
        }
        OAuthError::AppRefused(..) => DeviceError::AppRefused(format!(
            "Twitch refuses to start the device-code flow for this app ({e})"
        )),
        _ => DeviceError::Failed(format!("cannot start the device-code flow: {e}")),
    }
}
