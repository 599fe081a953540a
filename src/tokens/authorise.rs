//! The device-code flow: when the person must authorise again, and what a code's outcome
//! means (a new code at once at a terminal, growing pauses unattended, a limit).

use super::*;

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

    /// One device-code authorisation asked for with [`TokenAction::Authorize`] ended.
    pub fn handle_device(&mut self, now: Instant, result: Result<TokenSet, DeviceError>) {
        if self.busy != Some(Busy::Device) {
            return;
        }
        self.busy = None;
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
