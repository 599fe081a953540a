//! The token rules on `t0 + Duration`: no I/O, no clock, every answer given by hand.

use super::*;
use crate::answer::DeviceError;
use crate::config::ConfigError;
use crate::oauth::OAuthError;

mod authorise;
mod renew;

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
    OAuthError::Unavailable(503, "Service Unavailable".into())
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
                TokenAction::Authorize | TokenAction::PollCode(_) => {
                    panic!("the device flow, after {now:?}")
                }
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
fn a_token_with_characters_no_token_has_is_not_used() {
    let mut core = core_for("tok\r\nPRIVMSG #x :hi", "ref1", None);
    assert_eq!(
        action(&mut core),
        Some(TokenAction::Refresh(secret("ref1")))
    );
    assert_eq!(core.access(), &Secret::default());
}
