//! The device-code flow's decisions: at a terminal, unattended, and its limit.

use super::*;

#[test]
fn device_codes_at_a_terminal_come_at_once_and_give_up_after_the_limit() {
    let t = Instant::now();
    let mut core = core_for("", "", Some(2));
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    // approved by the wrong account: a new code at once
    core.handle_device(t, Ok(pair(2).unwrap()));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok2")))
    );
    core.handle_validated(t, wall(), valid_as("someone_else", &SCOPES, 9000));
    assert_eq!(core.poll_timeout(), Some(t));
    core.handle_timeout(t);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t, Err(DeviceError::Denied));
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::GaveUp(why)] if why.starts_with("authorisation failed 2 times")),
        "{evs:?}"
    );
    assert_eq!((core.poll_action(), core.poll_timeout()), (None, None));
}

#[test]
fn an_unreachable_twitch_is_waited_for_and_does_not_count_toward_the_limit() {
    let mut t = Instant::now();
    let mut core = core_for("", "", Some(2));
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    let offline = || {
        Err(DeviceError::Unreachable(
            "cannot reach Twitch to start the device-code flow: Temporary failure in name resolution"
                .into(),
        ))
    };
    // ten failures in a row at a terminal: no giving up, pauses growing to the cap
    let mut waits = Vec::new();
    for _ in 0..10 {
        core.handle_device(t, offline());
        assert_eq!(events(&mut core), [], "not given up");
        let at = core.poll_timeout().expect("a next try");
        waits.push(at - t);
        t = at;
        core.handle_timeout(t);
        assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    }
    assert!(
        waits[0] > Duration::ZERO && waits[0] <= RETRY_FIRST,
        "{waits:?}"
    );
    assert!(waits[3] > waits[0] && waits[9] <= RETRY_MAX, "{waits:?}");
    // once Twitch answers, declined codes count as before: the limit is 2
    core.handle_device(t, Err(DeviceError::Denied));
    assert_eq!(events(&mut core), []);
    assert_eq!(core.poll_timeout(), Some(t));
    core.handle_timeout(t);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t, offline());
    let retry_at = core.poll_timeout().unwrap();
    assert!(
        retry_at - t <= RETRY_FIRST,
        "the pause starts over after an answer"
    );
    core.handle_timeout(retry_at);
    action(&mut core);
    core.handle_device(retry_at, Err(DeviceError::Denied));
    assert!(
        matches!(&events(&mut core)[..], [TokenEvent::GaveUp(why)] if why.starts_with("authorisation failed 2 times"))
    );
}

#[test]
fn unattended_device_codes_pause_longer_each_time_and_renewals_wait_for_them() {
    let t = Instant::now();
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    action(&mut core);
    core.handle_refreshed(
        t,
        wall(),
        Err(OAuthError::InvalidToken("Invalid refresh token".into())),
    );
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    events(&mut core);
    // a renewal asked for while the person has not approved yet waits for the approval
    core.handle_refused(t, Purpose::Lookup, &secret("tok"), None);
    assert_eq!(events(&mut core), []);
    core.handle_device(t, Err(DeviceError::Expired));
    assert_eq!(core.poll_timeout(), Some(t + NEXT_CODE_FIRST));
    let t1 = t + NEXT_CODE_FIRST;
    core.handle_timeout(t1);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t1, Err(DeviceError::Expired));
    assert_eq!(core.poll_timeout(), Some(t1 + NEXT_CODE_FIRST * 2));
    let t2 = t1 + NEXT_CODE_FIRST * 2;
    core.handle_timeout(t2);
    action(&mut core);
    core.handle_device(t2, Ok(pair(7).unwrap()));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok7")))
    );
    core.handle_validated(t2, wall(), valid(14_400));
    assert!(matches!(action(&mut core), Some(TokenAction::Save(_))));
    assert!(core.renewal_in_flight());
    core.handle_saved(t2, Ok(()));
    assert_eq!(
        events(&mut core),
        [
            TokenEvent::Renewed,
            TokenEvent::Answer(Purpose::Lookup, Ok(()))
        ]
    );
    assert!(!core.status().authorising);
    assert_eq!(core.access(), &secret("tok7"));
    assert_eq!(core.poll_timeout(), Some(t2 + VALIDATE_EVERY));
}

#[test]
fn an_app_twitch_does_not_know_gets_no_new_codes_until_the_config_changes() {
    let t = Instant::now();
    let refused = || {
        Err(DeviceError::AppRefused(
            "Twitch refuses to start the device-code flow for this app (HTTP 400: invalid client)"
                .into(),
        ))
    };
    // unattended: no code every minute, but one try an hour; said once, naming the field
    let mut core = core_for("", "", None);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t, refused());
    assert_eq!(events(&mut core), [], "the user waits for an edit");
    assert_eq!(core.poll_timeout(), Some(t + APP_REFUSED_RETRY));
    assert_eq!(core.poll_action(), None);
    core.handle_timeout(t + APP_REFUSED_RETRY);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t + APP_REFUSED_RETRY, refused());
    assert_eq!(core.poll_timeout(), Some(t + 2 * APP_REFUSED_RETRY));

    // at a terminal: said at once and given up, not three codes asked for in a row
    let mut core = core_for("", "", Some(3));
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_device(t, refused());
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::GaveUp(why)]
            if why.contains("HTTP 400: invalid client") && why.contains("check \"client_id\" of this user in")),
        "{evs:?}"
    );
    assert_eq!((core.poll_action(), core.poll_timeout()), (None, None));
}

fn code(expires_in: u64) -> DeviceCode {
    DeviceCode {
        device_code: secret("dev1"),
        user_code: "ABCDEFGH".into(),
        verification_uri: "https://www.twitch.tv/activate?device-code=ABCDEFGH".into(),
        expires_in,
        interval: 5,
    }
}

fn prompts(core: &mut TokenCore) -> Vec<(Duration, bool)> {
    events(core)
        .into_iter()
        .map(|e| match e {
            TokenEvent::Prompt(p) => (p.left, p.reminder),
            other => panic!("expected a prompt, got {other:?}"),
        })
        .collect()
}

/// Runs the timers up to the next poll and returns when it came.
fn next_poll(core: &mut TokenCore) -> Instant {
    loop {
        let at = core.poll_timeout().expect("a poll is timed");
        core.handle_timeout(at);
        if let Some(a) = core.poll_action() {
            assert_eq!(a, TokenAction::PollCode(secret("dev1")));
            return at;
        }
    }
}

#[test]
fn a_device_code_is_shown_then_polled_every_interval_and_5s_slower_after_a_slow_down() {
    let t = Instant::now();
    let mut core = core_for("", "", Some(3));
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    core.handle_code(t, Ok(code(1800)));
    assert_eq!(prompts(&mut core), [(Duration::from_secs(1800), false)]);
    assert_eq!(
        core.poll_action(),
        None,
        "nothing asked before the interval"
    );
    let p1 = next_poll(&mut core);
    assert_eq!(p1, t + Duration::from_secs(5));
    core.handle_polled(p1, Err(OAuthError::Pending));
    let p2 = next_poll(&mut core);
    assert_eq!(p2 - p1, Duration::from_secs(5));
    core.handle_polled(p2, Err(OAuthError::SlowDown));
    let p3 = next_poll(&mut core);
    assert_eq!(p3 - p2, Duration::from_secs(10));
    core.handle_polled(p3, Err(OAuthError::SlowDown));
    let p4 = next_poll(&mut core);
    assert_eq!(p4 - p3, Duration::from_secs(15));
    // approved: the new pair is checked before it is used
    core.handle_polled(p4, pair(2));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok2")))
    );
}

#[test]
fn a_pending_code_is_recalled_every_five_minutes_with_the_time_left() {
    let t = Instant::now();
    let mut core = core_for("", "", None);
    let _ = action(&mut core);
    core.handle_code(t, Ok(code(1800)));
    prompts(&mut core);
    let mut reminders = Vec::new();
    let mut now = t;
    while now < t + Duration::from_secs(11 * 60) {
        now = next_poll(&mut core);
        reminders.extend(prompts(&mut core));
        core.handle_polled(now, Err(OAuthError::Pending));
    }
    assert_eq!(
        reminders,
        [
            (Duration::from_secs(25 * 60), true),
            (Duration::from_secs(20 * 60), true)
        ]
    );
}

#[test]
fn a_code_nobody_approves_expires_on_time_and_a_new_one_follows_at_a_terminal() {
    let t = Instant::now();
    let mut core = core_for("", "", Some(3));
    let _ = action(&mut core);
    core.handle_code(t, Ok(code(12)));
    prompts(&mut core);
    let p1 = next_poll(&mut core);
    core.handle_polled(p1, Err(OAuthError::Pending));
    let p2 = next_poll(&mut core);
    core.handle_polled(p2, Err(OAuthError::Pending));
    // the third poll would come at 15 s, after the code's 12 s: it expired, no poll
    let at = core.poll_timeout().unwrap();
    assert_eq!(at, t + Duration::from_secs(15));
    core.handle_timeout(at);
    assert_eq!(action(&mut core), None);
    core.handle_timeout(at);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
}

#[test]
fn a_poll_that_gets_no_answer_polls_on_and_a_refusal_ends_the_code() {
    let t = Instant::now();
    let mut core = core_for("", "", Some(1));
    let _ = action(&mut core);
    core.handle_code(t, Ok(code(1800)));
    prompts(&mut core);
    let p1 = next_poll(&mut core);
    let lost = OAuthError::Http {
        peer: "https://id.twitch.tv".into(),
        error: crate::http::wire::HttpError::Timeout,
    };
    core.handle_polled(p1, Err(lost));
    let p2 = next_poll(&mut core);
    assert_eq!(p2 - p1, Duration::from_secs(5));
    core.handle_polled(p2, Err(OAuthError::Denied));
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::GaveUp(why)] if why.contains("declined")),
        "{evs:?}"
    );
}

#[test]
fn no_code_from_a_twitch_that_is_down_is_waited_for_and_not_counted() {
    let t = Instant::now();
    let mut core = core_for("", "", Some(1));
    let _ = action(&mut core);
    core.handle_code(t, Err(unavailable()));
    assert!(events(&mut core).is_empty(), "not a refusal: no give-up");
    let at = core.poll_timeout().expect("asked again later");
    assert!(at > t);
    core.handle_timeout(at);
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
}
