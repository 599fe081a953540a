//! The token rules on `t0 + Duration`: no I/O, no clock, every answer given by hand.

use super::*;
use crate::config::ConfigError;
use crate::oauth::OAuthError;

const SCOPES: [&str; 3] = ["chat:read", "user:manage:chat_color", "user:read:chat"];

fn user(access: &str, refresh: &str) -> UserConfig {
    UserConfig {
        username: "hueshift_bot".into(),
        access_token: Secret::new(access),
        refresh_token: Secret::new(refresh),
        client_id: "cid".into(),
        client_secret: Secret::default(),
        channels: vec!["lumenwave".into()],
        is_prime_or_turbo: true,
        enabled: true,
        token_expiry: None,
        chat_transport: None,
        colors: Default::default(),
    }
}

fn core_for(access: &str, refresh: &str, attempts: Option<u32>) -> TokenCore {
    TokenCore::new(
        &user(access, refresh),
        Path::new("/etc/tcc.conf"),
        Vec::new(),
        attempts,
    )
}

fn valid(expires_in: u64) -> Result<Validation, OAuthError> {
    valid_as("hueshift_bot", &SCOPES, expires_in)
}

fn valid_as(login: &str, scopes: &[&str], expires_in: u64) -> Result<Validation, OAuthError> {
    Ok(Validation {
        client_id: "cid".into(),
        login: login.into(),
        user_id: "81234567".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_in,
    })
}

fn invalid() -> OAuthError {
    OAuthError::InvalidToken("invalid access token".into())
}

fn pair(n: u32) -> Result<TokenSet, OAuthError> {
    Ok(TokenSet {
        access_token: Secret::new(format!("tok{n}")),
        refresh_token: Secret::new(format!("ref{n}")),
        expires_in: Some(14_400),
        scopes: Vec::new(),
    })
}

fn unavailable() -> OAuthError {
    OAuthError::Refused(503, "Service Unavailable".into())
}

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn action(core: &mut TokenCore) -> Option<TokenAction> {
    let first = core.poll_action();
    assert_eq!(core.poll_action(), None, "one operation at a time");
    first
}

fn events(core: &mut TokenCore) -> Vec<TokenEvent> {
    std::iter::from_fn(|| core.poll_event()).collect()
}

/// A save that failed with `why`.
fn disk(why: &str) -> Result<(), ConfigError> {
    Err(ConfigError::Io(
        "/etc/tcc.conf".into(),
        std::io::Error::other(why.to_owned()),
    ))
}

fn secret(s: &str) -> Secret {
    Secret::new(s)
}

/// A core whose token `tok` (refresh `ref1`) was validated at `t` with 4 h left.
fn ready(t: Instant) -> TokenCore {
    let mut core = core_for("tok", "ref1", None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok")))
    );
    core.handle_validated(t, wall(), valid(14_400));
    assert_eq!(events(&mut core), [TokenEvent::Ready]);
    assert_eq!(core.poll_timeout(), Some(t + VALIDATE_EVERY));
    core
}

/// Answers a refresh with pair `n` and its save with `saved`.
fn refresh_with(core: &mut TokenCore, t: Instant, n: u32, saved: Result<(), ConfigError>) {
    assert!(matches!(action(core), Some(TokenAction::Refresh(_))));
    assert!(core.renewal_in_flight());
    core.handle_refreshed(t, wall(), pair(n));
    let Some(TokenAction::Save(p)) = action(core) else {
        panic!("a new pair is saved before it is used");
    };
    assert_eq!(p.access, secret(&format!("tok{n}")));
    assert_eq!(core.access(), &secret(if n == 2 { "tok" } else { "tok2" }));
    assert!(core.renewal_in_flight(), "a stop waits for the save");
    core.handle_saved(t, saved);
    assert!(!core.renewal_in_flight());
    assert_eq!(core.access(), &secret(&format!("tok{n}")));
}

#[test]
fn validates_hourly_and_refreshes_ten_minutes_before_expiry() {
    let t = Instant::now();
    let mut s = Schedule::default();
    assert_eq!((s.due(t), s.poll_timeout()), (None, None));
    s.validated(t, Duration::from_secs(4 * 3600));
    assert_eq!(s.poll_timeout(), Some(t + VALIDATE_EVERY));
    assert_eq!(s.due(t + VALIDATE_EVERY), Some(Due::Validate));
    s.validated(t + VALIDATE_EVERY * 3, Duration::from_secs(3600));
    assert_eq!(
        s.poll_timeout(),
        Some(t + VALIDATE_EVERY * 4 - REFRESH_AHEAD)
    );
    assert_eq!(s.take_due(t + VALIDATE_EVERY * 4), Some(Due::Refresh));
    // taken off the schedule until the next validation or renewal
    assert_eq!(s.due(t + VALIDATE_EVERY * 4), Some(Due::Validate));
    assert_eq!(s.take_due(t + VALIDATE_EVERY * 4), Some(Due::Validate));
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_short_lived_token_is_refreshed_soon_but_not_in_a_loop() {
    let t = Instant::now();
    let mut s = Schedule::default();
    s.renewed(t, Some(Duration::from_secs(5)));
    assert_eq!(s.poll_timeout(), Some(t + MIN_REFRESH_GAP));
    s.renewed(t, None);
    assert_eq!(s.poll_timeout(), Some(t + VALIDATE_EVERY));
}

#[test]
fn thirty_days_of_validations_and_refreshes_keep_the_token_valid() {
    // Twitch's side: the token in use and when it expires
    let t0 = Instant::now();
    let mut core = core_for("tok", "ref1", None);
    let mut expires = t0 + Duration::from_secs(14_400);
    let mut now = t0;
    let (mut validations, mut refreshes, mut n) = (0, 0, 1);
    let mut last_validation = t0;
    let end = t0 + Duration::from_secs(30 * 24 * 3600);
    while now < end {
        while let Some(a) = core.poll_action() {
            match a {
                TokenAction::Validate(token) => {
                    assert_eq!(
                        token,
                        secret(&format!(
                            "tok{}",
                            if n == 1 { String::new() } else { n.to_string() }
                        ))
                    );
                    assert!(now < expires, "a validation of an expired token");
                    validations += 1;
                    assert!(now.duration_since(last_validation) <= VALIDATE_EVERY);
                    last_validation = now;
                    let left = expires.duration_since(now).as_secs();
                    core.handle_validated(now, wall(), valid(left));
                }
                TokenAction::Refresh(_) => {
                    refreshes += 1;
                    n += 1;
                    expires = now + Duration::from_secs(14_400);
                    core.handle_refreshed(now, wall(), pair(n));
                }
                TokenAction::Save(_) => {
                    last_validation = now; // a renewal counts as a validation
                    core.handle_saved(now, Ok(()));
                }
                TokenAction::Authorize => panic!("the device flow, after {now:?}"),
            }
        }
        events(&mut core);
        let next = core.poll_timeout().expect("always something scheduled");
        assert!(next > now, "a deadline in the past would spin the driver");
        assert!(next < expires, "the token expires before anything is done");
        now = next;
        core.handle_timeout(now);
    }
    // 4-hour tokens: a refresh every 3 h 50 min, hourly validations in between
    assert_eq!(refreshes, 30 * 24 * 60 / 230);
    // three hourly validations per token life, plus the start's and the last life's
    assert!(
        (3 * refreshes + 1..=3 * refreshes + 4).contains(&validations),
        "{validations}"
    );
}

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

#[test]
fn a_token_endpoint_that_is_down_is_retried_with_backoff_and_the_cause_named() {
    // defect: a 503 on a refresh the driver asked for was never retried
    let t = Instant::now();
    let mut core = ready(t);
    core.handle_refused(t, Purpose::Color, &secret("tok"), None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
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
fn start_up_refreshes_a_missing_or_expired_token_and_retries_an_outage() {
    let t = Instant::now();
    // no access token: refresh, save, validate the new one, ready
    let mut core = core_for("", "ref1", None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    core.handle_refreshed(t, wall(), pair(2));
    assert!(matches!(action(&mut core), Some(TokenAction::Save(_))));
    core.handle_saved(t, Ok(()));
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok2")))
    );
    assert_eq!(events(&mut core), []);
    core.handle_validated(t, wall(), valid(14_400));
    assert_eq!(events(&mut core), [TokenEvent::Ready]);
    // Twitch down at start: retried with backoff, then ready
    let mut core = core_for("tok", "ref1", None);
    action(&mut core);
    core.handle_validated(t, wall(), Err(unavailable()));
    let at = core.poll_timeout().unwrap();
    assert!(at > t && at <= t + RETRY_FIRST);
    core.handle_timeout(at);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Validate(secret("tok")))
    );
    core.handle_validated(at, wall(), valid(14_400));
    assert_eq!(events(&mut core), [TokenEvent::Ready]);
    // no token at all: the device flow
    let mut core = core_for("", "", Some(3));
    assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    assert!(core.status().authorising);
    // a token of another account, or without the scope: the device flow
    for answer in [
        valid_as("someone_else", &SCOPES, 9000),
        valid_as("hueshift_bot", &["chat:read"], 9000),
    ] {
        let mut core = core_for("tok", "ref1", Some(3));
        action(&mut core);
        core.handle_validated(t, wall(), answer);
        assert_eq!(action(&mut core), Some(TokenAction::Authorize));
    }
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
fn a_token_with_characters_no_token_has_is_not_used() {
    let mut core = core_for("tok\r\nPRIVMSG #x :hi", "ref1", None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    assert_eq!(core.access(), &Secret::default());
}
