//! Renewals: refusals, outages, failed saves, one renewal for many, spare tokens.

use super::*;

#[test]
fn a_failed_save_after_a_refresh_the_driver_asked_for_is_retried_on_time() {
    // defect: the retry was due in 5 s but the loop slept until the next hourly validation
    let t = Instant::now();
    let mut core = ready(t);
    let t1 = t + Duration::from_secs(60);
    core.handle_refused(t1, Purpose::Color, &secret("tok"), None);
    refresh_with(&mut core, t1, 2, disk("read-only file system"));
    assert_eq!(
        events(&mut core),
        [
            TokenEvent::Renewed,
            TokenEvent::Answer(Purpose::Color, Ok(()))
        ]
    );
    assert_eq!(
        core.status().unsaved.as_deref(),
        Some("/etc/tcc.conf: read-only file system")
    );
    // the retry is the next deadline, whoever started the refresh
    assert_eq!(core.poll_timeout(), Some(t1 + SAVE_RETRY_FIRST));
    core.handle_timeout(t1 + SAVE_RETRY_FIRST);
    let Some(TokenAction::Save(p)) = action(&mut core) else {
        panic!("the save is retried");
    };
    assert_eq!((p.access.expose(), p.refresh.expose()), ("tok2", "ref2"));
    core.handle_saved(t1 + SAVE_RETRY_FIRST, disk("still read-only"));
    let t2 = t1 + SAVE_RETRY_FIRST * 3;
    assert_eq!(core.poll_timeout(), Some(t2), "then twice as long");
    core.handle_timeout(t2);
    assert!(matches!(action(&mut core), Some(TokenAction::Save(_))));
    core.handle_saved(t2, Ok(()));
    assert_eq!(core.status().unsaved, None);
    assert_eq!(core.poll_timeout(), Some(t1 + VALIDATE_EVERY));
}

#[test]
fn a_refresh_during_a_failed_save_replaces_the_unsaved_pair() {
    let t = Instant::now();
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    refresh_with(&mut core, t, 2, disk("disk full"));
    events(&mut core);
    // before the save retry, a 401 refreshes the unsaved pair; the new one saves fine
    let t1 = t + Duration::from_secs(1);
    core.handle_refused(t1, Purpose::Lookup, &secret("tok2"), None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref2")))
    );
    core.handle_refreshed(t1, wall(), pair(3));
    assert!(matches!(action(&mut core), Some(TokenAction::Save(p)) if p.refresh == secret("ref3")));
    core.handle_saved(t1, Ok(()));
    assert_eq!(core.status().unsaved, None);
    assert_eq!(
        core.poll_timeout(),
        Some(t1 + VALIDATE_EVERY),
        "no save retry left"
    );
    // a save retry that comes due while a refresh runs waits for it
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    refresh_with(&mut core, t, 2, disk("disk full"));
    core.handle_refused(t, Purpose::Color, &secret("tok2"), None);
    assert!(matches!(action(&mut core), Some(TokenAction::Refresh(_))));
    assert_eq!(
        core.poll_timeout(),
        None,
        "nothing else while a refresh runs"
    );
    core.handle_timeout(t + SAVE_RETRY_FIRST);
    assert_eq!(core.poll_action(), None);
}

/// A ready core whose token a color change found refused at `t`: it asks to refresh.
fn refreshing_for_a_color(t: Instant) -> TokenCore {
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    core
}

#[test]
fn a_token_endpoint_that_is_down_is_retried_with_backoff_and_the_cause_named() {
    // defect: a 503 on a refresh the driver asked for was never retried
    let t = Instant::now();
    let mut core = refreshing_for_a_color(t);
    core.handle_refreshed(t, wall(), Err(unavailable()));
    let evs = events(&mut core);
    let [TokenEvent::Answer(Purpose::Color, Err(RenewError::Unavailable(why)))] = &evs[..] else {
        panic!("{evs:?}");
    };
    assert!(why.contains("HTTP 503: Service Unavailable"), "{why}");
    assert!(why.contains("trying again in 1.8s"), "{why}");
    let first = core.poll_timeout().unwrap();
    assert_eq!(first, t + RETRY_FIRST.mul_f64(0.875));
    // the retry fails too: the next one waits twice as long
    core.handle_timeout(first);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    core.handle_refreshed(
        first,
        wall(),
        Err(OAuthError::Http {
            peer: "id.twitch.tv".into(),
            error: crate::http::HttpError::Closed,
        }),
    );
    events(&mut core);
    let second = core.poll_timeout().unwrap();
    assert_eq!(second, first + RETRY_FIRST.mul_f64(2.0 * 0.875));
    // then it works: the next color change finds a valid token
    core.handle_timeout(second);
    refresh_with(&mut core, second, 2, Ok(()));
    assert_eq!(events(&mut core), [TokenEvent::Renewed]);
    assert_eq!(core.poll_timeout(), Some(second + VALIDATE_EVERY));
    // and the backoff starts over
    core.handle_refused(second, Purpose::Color, &secret("tok2"), None);
    action(&mut core);
    core.handle_refreshed(second, wall(), Err(unavailable()));
    assert_eq!(
        core.poll_timeout(),
        Some(second + RETRY_FIRST.mul_f64(0.875))
    );
    // capped
    let mut at = second;
    for _ in 0..20 {
        at = core.poll_timeout().unwrap();
        core.handle_timeout(at);
        action(&mut core);
        core.handle_refreshed(at, wall(), Err(unavailable()));
    }
    assert_eq!(core.poll_timeout(), Some(at + RETRY_MAX.mul_f64(0.875)));
}

#[test]
fn an_app_the_token_endpoint_refuses_is_said_once_and_tried_hourly_not_forever_soon() {
    // defect: a 403 "invalid client secret" was retried every 2 s to 3 min, forever, with
    // an ERROR each time, though only an edit of the config mends it
    let t = Instant::now();
    let mut core = refreshing_for_a_color(t);
    let refused = |status, message: &str| Err(OAuthError::AppRefused(status, message.into()));
    core.handle_refreshed(t, wall(), refused(403, "invalid client secret"));
    let evs = events(&mut core);
    let [TokenEvent::Answer(Purpose::Color, Err(RenewError::Unavailable(why)))] = &evs[..] else {
        panic!("not the device flow: the refresh token may be good: {evs:?}");
    };
    assert!(why.contains("HTTP 403: invalid client secret"), "{why}");
    assert!(
        why.contains("check \"client_id\" and \"client_secret\""),
        "{why}"
    );
    assert!(why.contains("/etc/tcc.conf"), "{why}");
    assert!(core.app_refused);
    // hourly, however often it is refused; a 400 "invalid client" (a wrong client id) is
    // the same
    let mut at = t;
    for (status, message) in [
        (403, "invalid client secret"),
        (403, "invalid client secret"),
        (400, "invalid client"),
    ] {
        assert_eq!(core.poll_timeout(), Some(at + APP_REFUSED_RETRY));
        at += APP_REFUSED_RETRY;
        core.handle_timeout(at);
        assert_eq!(
            action(&mut core),
            Some(TokenAction::Refresh(secret("ref1")))
        );
        core.handle_refreshed(at, wall(), refused(status, message));
        // the hourly validation is due too: the access token still works meanwhile
        if let Some(TokenAction::Validate(_)) = core.poll_action() {
            core.handle_validated(at, wall(), valid(7_200));
        }
        events(&mut core);
    }
    // once the app is taken again, the flag is down for the next time
    at += APP_REFUSED_RETRY;
    core.handle_timeout(at);
    refresh_with(&mut core, at, 2, Ok(()));
    assert!(!core.app_refused);
}

#[test]
fn a_refused_refresh_during_a_pending_retry_goes_to_the_device_flow() {
    let t = Instant::now();
    let mut core = ready(t);
    core.handle_timeout(t + VALIDATE_EVERY);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok")))
    );
    core.handle_validated(t + VALIDATE_EVERY, wall(), Err(unavailable()));
    let retry = core.poll_timeout().unwrap();
    assert!(retry < t + VALIDATE_EVERY + Duration::from_secs(5));
    // a 401 before the retry: refreshed at once, and Twitch refuses the refresh token
    let t1 = t + VALIDATE_EVERY + Duration::from_millis(100);
    core.handle_refused(t1, Purpose::Color, &secret("tok"), None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    core.handle_refreshed(
        t1,
        wall(),
        Err(OAuthError::InvalidToken("Invalid refresh token".into())),
    );
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::Answer(Purpose::Color, Err(RenewError::Refused(why)))] if why.contains("Invalid refresh token")),
        "{evs:?}"
    );
    assert!(core.status().authorising);
    // the pending retry is gone: the device flow decides what comes next
    core.handle_device(t1, Err(DeviceError::Expired));
    assert_eq!(core.poll_timeout(), Some(t1 + NEXT_CODE_FIRST));
    core.handle_timeout(retry);
    assert_eq!(core.poll_action(), None);
}

#[test]
fn one_renewal_at_a_time_answers_everyone_who_asked() {
    let t = Instant::now();
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    core.handle_refused(t, Purpose::Lookup, &secret("tok"), None);
    core.handle_refused(t, Purpose::Chat, &secret("tok"), Some("chat:read"));
    refresh_with(&mut core, t, 2, Ok(()));
    assert_eq!(
        events(&mut core),
        [
            TokenEvent::Renewed,
            TokenEvent::Answer(Purpose::Color, Ok(())),
            TokenEvent::Answer(Purpose::Lookup, Ok(())),
            TokenEvent::Answer(Purpose::Chat, Ok(())),
        ]
    );
    // a refusal of the token already replaced renews nothing
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    assert_eq!(core.poll_action(), None);
    assert_eq!(
        events(&mut core),
        [TokenEvent::Answer(Purpose::Color, Ok(()))]
    );
}

#[test]
fn a_refusal_without_a_reason_checks_the_token_before_rotating_it() {
    let t = Instant::now();
    // valid, with the scope: not rotated, and the answer says so
    let mut core = ready(t);
    core.handle_refused(
        t,
        Purpose::Subscription,
        &secret("tok"),
        Some("user:read:chat"),
    );
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok")))
    );
    core.handle_validated(t, wall(), valid(9000));
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::Answer(Purpose::Subscription, Err(RenewError::StillValid(why)))] if why.contains("valid")),
        "{evs:?}"
    );
    assert_eq!(core.poll_action(), None, "no refresh");
    // invalid: refreshed
    core.handle_refused(t, Purpose::Chat, &secret("tok"), Some("chat:read"));
    assert!(matches!(action(&mut core), Some(TokenAction::Validate(_))));
    core.handle_validated(t, wall(), Err(invalid()));
    refresh_with(&mut core, t, 2, Ok(()));
    assert_eq!(
        events(&mut core),
        [
            TokenEvent::Renewed,
            TokenEvent::Answer(Purpose::Chat, Ok(()))
        ]
    );
    // valid without the scope chat needs: the device flow asks for it
    core.handle_refused(t, Purpose::Chat, &secret("tok2"), Some("user:read:chat"));
    action(&mut core);
    core.handle_validated(
        t,
        wall(),
        valid_as("hueshift_bot", &["user:manage:chat_color"], 9000),
    );
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    let evs = events(&mut core);
    assert!(
        matches!(&evs[..], [TokenEvent::Answer(Purpose::Chat, Err(RenewError::Refused(why)))] if why.contains("lacks the user:read:chat scope")),
        "{evs:?}"
    );
    // a Helix 401 that comes during the check still gets its refresh
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Chat, &secret("tok"), Some("chat:read"));
    action(&mut core);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    core.handle_validated(t, wall(), valid(9000));
    assert!(matches!(
        &events(&mut core)[..],
        [TokenEvent::Answer(
            Purpose::Chat,
            Err(RenewError::StillValid(_))
        )]
    ));
    refresh_with(&mut core, t, 2, Ok(()));
    assert_eq!(
        events(&mut core),
        [
            TokenEvent::Renewed,
            TokenEvent::Answer(Purpose::Color, Ok(()))
        ]
    );
}

#[test]
fn spare_refresh_tokens_are_tried_once_each_before_the_device_flow() {
    let t = Instant::now();
    let spares = vec![secret("spare1"), secret("spare2")];
    let mut core = TokenCore::new(&user("tok", "ref1"), Path::new("c"), spares, None);
    action(&mut core);
    core.handle_validated(t, wall(), Err(invalid()));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    core.handle_refreshed(
        t,
        wall(),
        Err(OAuthError::InvalidToken("Invalid refresh token".into())),
    );
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("spare1")))
    );
    core.handle_refreshed(t, wall(), Err(unavailable()));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("spare2")))
    );
    core.handle_refreshed(t, wall(), pair(5));
    assert!(matches!(action(&mut core), Some(TokenAction::Save(p)) if p.refresh == secret("ref5")));
}
