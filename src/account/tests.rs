//! The account on `t0 + Duration`: the flows that cross the token core, the user core and
//! the chat session, with every answer given by hand.

use std::path::Path;
use std::time::Duration;

use super::*;
use crate::answer::{OAuthError, RateLimit, TokenSet, Validation};
use crate::usercore::State;

const SCOPES: [&str; 3] = ["chat:read", "user:manage:chat_color", "user:read:chat"];

fn user() -> UserConfig {
    UserConfig {
        username: "hueshift_bot".into(),
        access_token: Secret::new("tok0"),
        refresh_token: Secret::new("ref0"),
        client_id: "cid".into(),
        client_secret: Secret::default(),
        channels: vec!["lumenwave".into()],
        is_prime_or_turbo: true,
        enabled: true,
        token_expiry: None,
        chat_transport: Some(Protocol::Irc),
        colors: Default::default(),
    }
}

fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn valid(scopes: &[&str]) -> Done {
    Done::Token(TokenAnswer::Validated(Ok(Validation {
        client_id: "cid".into(),
        login: "hueshift_bot".into(),
        user_id: "81234567".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expires_in: 14_400,
    })))
}

fn pair(n: u32) -> Done {
    Done::Token(TokenAnswer::Refreshed(Ok(TokenSet {
        access_token: Secret::new(format!("tok{n}")),
        refresh_token: Secret::new(format!("ref{n}")),
        expires_in: Some(14_400),
        scopes: Vec::new(),
    })))
}

fn unauthorized() -> ApiError {
    ApiError::Status {
        status: 401,
        message: "Invalid OAuth token".into(),
        rate: RateLimit::default(),
    }
}

fn me() -> Identity {
    Identity {
        id: "81234567".into(),
        login: "hueshift_bot".into(),
        color: Ok(Some("#1E90FF".into())),
    }
}

/// The one piece of work the account asks for next (and that it asks for nothing else).
fn work(account: &mut Account) -> Work {
    let first = account.poll_work().expect("some work");
    if let Some(more) = account.poll_work() {
        panic!("one piece of work expected, also got {more:?}");
    }
    first
}

fn no_work(account: &mut Account) {
    if let Some(work) = account.poll_work() {
        panic!("no work expected, got {work:?}");
    }
}

/// Chat refuses the login: the session ends, and the token is checked (chat says no reason).
fn refused_by_chat(account: &mut Account, t: Instant) {
    account.handle_input(
        t,
        0,
        b":tmi.twitch.tv NOTICE * :Login authentication failed\r\n",
    );
    assert!(matches!(account.poll_work(), Some(Work::EndChat(_))));
    assert_eq!(
        token_action(work(account)),
        TokenAction::Validate(Secret::new("tok0"))
    );
}

fn token_action(work: Work) -> TokenAction {
    match work {
        Work::Token(action) => action,
        other => panic!("expected a token action, got {other:?}"),
    }
}

fn lines(account: &mut Account) -> Vec<String> {
    std::iter::from_fn(|| account.poll_transmit())
        .map(|t| String::from_utf8(t.bytes).unwrap())
        .collect()
}

/// An account that validated its token, looked itself up and is in chat over IRC.
fn in_chat(t: Instant) -> Account {
    let tokens = TokenCore::new(&user(), Path::new("/etc/tcc.conf"), Vec::new(), Some(1));
    let mut account = Account::new(t, &user(), tokens, Counters::default(), 7);
    assert_eq!(
        token_action(work(&mut account)),
        TokenAction::Validate(Secret::new("tok0"))
    );
    account.handle_done(t, wall(), valid(&SCOPES));
    assert!(matches!(work(&mut account), Work::LookUp(token) if token.expose() == "tok0"));
    account.handle_done(t, wall(), Done::LookUp(Ok(me())));
    assert!(matches!(work(&mut account), Work::Connect(Protocol::Irc)));
    account.handle_connected(
        t,
        Ok(()),
        &crate::endpoint::parse_url("https://127.0.0.1:1/ws").unwrap(),
    );
    let login = lines(&mut account);
    assert!(
        login.iter().any(|l| l == "PASS oauth:tok0\r\n"),
        "{login:?}"
    );
    account.handle_input(t, 0, b":tmi.twitch.tv 001 hueshift_bot :Welcome\r\n");
    assert_eq!(lines(&mut account), ["JOIN #lumenwave\r\n"]);
    account.handle_input(
        t,
        0,
        b":hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv JOIN #lumenwave\r\n",
    );
    assert_eq!(account.status().state, State::Connected);
    no_work(&mut account);
    account
}

fn say(account: &mut Account, t: Instant, id: &str) {
    let line = format!("@id={id};user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi\r\n");
    account.handle_input(t, 0, line.as_bytes());
}

fn set_color(work: Work) -> (String, String) {
    match work {
        Work::SetColor { token, color, .. } => (token.expose().to_owned(), color),
        other => panic!("expected SetColor, got {other:?}"),
    }
}

#[test]
fn an_own_message_sets_a_color_with_the_token_in_use() {
    let t = Instant::now();
    let mut account = in_chat(t);
    say(&mut account, t, "m1");
    let (token, color) = set_color(work(&mut account));
    assert_eq!(token, "tok0");
    assert!(color.starts_with('#'), "{color}");
    account.handle_done(t, wall(), Done::Put(Ok(())));
    assert_eq!(account.status().counters.changes, 1);
}

#[test]
fn a_401_on_a_color_change_renews_the_token_saves_it_and_retries_with_the_new_one() {
    let t = Instant::now();
    let mut account = in_chat(t);
    say(&mut account, t, "m1");
    let (_, color) = set_color(work(&mut account));
    let t1 = t + Duration::from_millis(80);
    account.handle_done(t1, wall(), Done::Put(Err(unauthorized())));
    assert_eq!(
        token_action(work(&mut account)),
        TokenAction::Refresh(Secret::new("ref0"))
    );
    account.handle_done(t1, wall(), pair(1));
    // the new pair is saved before it is used
    match token_action(work(&mut account)) {
        TokenAction::Save(p) => assert_eq!(p.refresh, Secret::new("ref1")),
        other => panic!("expected Save, got {other:?}"),
    }
    assert!(account.renewal_in_flight(), "a stop now waits for the save");
    account.handle_done(t1, wall(), Done::Token(TokenAnswer::Saved(Ok(()))));
    let (token, again) = set_color(work(&mut account));
    assert_eq!((token.as_str(), again), ("tok1", color));
    account.handle_done(t1, wall(), Done::Put(Ok(())));
    assert_eq!(account.status().counters.changes, 1);
    assert!(!account.renewal_in_flight());
}

#[test]
fn a_401_for_a_token_already_replaced_retries_with_the_new_one_without_a_refresh() {
    let t = Instant::now();
    let mut account = in_chat(t);
    say(&mut account, t, "m1");
    let (old, _) = set_color(work(&mut account));
    assert_eq!(old, "tok0");
    // chat was refused meanwhile and the token renewed (a refresh Twitch answered)
    refused_by_chat(&mut account, t);
    account.handle_done(
        t,
        wall(),
        Done::Token(TokenAnswer::Validated(Err(OAuthError::InvalidToken(
            "invalid access token".into(),
        )))),
    );
    assert_eq!(
        token_action(work(&mut account)),
        TokenAction::Refresh(Secret::new("ref0"))
    );
    account.handle_done(t, wall(), pair(1));
    let _save = token_action(work(&mut account));
    account.handle_done(t, wall(), Done::Token(TokenAnswer::Saved(Ok(()))));
    while account.poll_work().is_some() {}
    // now the PUT made with tok0 comes back 401: tok0 is stale, no second refresh
    account.handle_done(t, wall(), Done::Put(Err(unauthorized())));
    let (token, _) = set_color(work(&mut account));
    assert_eq!(token, "tok1");
}

/// Chat refuses a token that lacks its scope: checked, not refreshed; no refresh mends that,
/// so the person authorises again.
fn sent_to_the_device_flow(account: &mut Account, t: Instant) {
    refused_by_chat(account, t);
    account.handle_done(t, wall(), valid(&["user:manage:chat_color"]));
    assert_eq!(token_action(work(account)), TokenAction::Authorize);
}

#[test]
fn chat_that_refuses_a_token_lacking_its_scope_has_it_checked_not_refreshed() {
    let t = Instant::now();
    let mut account = in_chat(t);
    sent_to_the_device_flow(&mut account, t);
}

#[test]
fn a_401_on_the_lookup_renews_the_token_and_looks_up_again() {
    let t = Instant::now();
    let tokens = TokenCore::new(&user(), Path::new("/etc/tcc.conf"), Vec::new(), Some(1));
    let mut account = Account::new(t, &user(), tokens, Counters::default(), 7);
    let _validate = work(&mut account);
    account.handle_done(t, wall(), valid(&SCOPES));
    let _lookup = work(&mut account);
    account.handle_done(t, wall(), Done::LookUp(Err(unauthorized())));
    assert_eq!(
        token_action(work(&mut account)),
        TokenAction::Refresh(Secret::new("ref0"))
    );
    account.handle_done(t, wall(), pair(1));
    let _save = work(&mut account);
    account.handle_done(t, wall(), Done::Token(TokenAnswer::Saved(Ok(()))));
    assert!(matches!(work(&mut account), Work::LookUp(token) if token.expose() == "tok1"));
}

#[test]
fn a_429_waits_until_the_bucket_refills_by_twitchs_reset_time() {
    let t = Instant::now();
    let mut account = in_chat(t);
    say(&mut account, t, "m1");
    let _ = set_color(work(&mut account));
    let reset = wall() + Duration::from_secs(7);
    let limited = ApiError::Status {
        status: 429,
        message: "Too Many Requests".into(),
        rate: RateLimit {
            limit: Some(800),
            remaining: Some(0),
            reset: Some(
                reset
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            ),
        },
    };
    account.handle_done(t, wall(), Done::Put(Err(limited)));
    no_work(&mut account);
    let due = account.poll_timeout().expect("a retry is timed");
    assert!(due >= t + Duration::from_secs(7), "{:?}", due - t);
}

#[test]
fn field_writes_go_one_at_a_time_in_order() {
    let t = Instant::now();
    let mut account = in_chat(t);
    let command = |text: &str| {
        format!("@id={text};user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :{text}\r\n")
    };
    account.handle_input(t, 0, command("ccd").as_bytes());
    assert!(matches!(
        work(&mut account),
        Work::Persist(Field::Enabled(false))
    ));
    account.handle_input(t, 0, command("cce").as_bytes());
    no_work(&mut account);
    account.handle_done(t, wall(), Done::Persisted(Field::Enabled(false), Ok(())));
    assert!(matches!(
        work(&mut account),
        Work::Persist(Field::Enabled(true))
    ));
}

#[test]
fn a_chat_session_that_closes_ends_with_its_goodbye_and_a_reconnect_follows() {
    let t = Instant::now();
    let mut account = in_chat(t);
    account.handle_lost(t, 0, "server closed the connection");
    assert!(matches!(work(&mut account), Work::EndChat(_)));
    assert_eq!(account.status().state, State::Reconnecting);
    let at = account.poll_timeout().expect("a reconnect is timed");
    account.handle_timeout(at);
    assert!(matches!(work(&mut account), Work::Connect(Protocol::Irc)));
}

#[test]
fn no_token_within_the_allowed_codes_ends_the_account() {
    let t = Instant::now();
    let mut account = in_chat(t);
    sent_to_the_device_flow(&mut account, t);
    let code = crate::answer::DeviceCode {
        device_code: Secret::new("dev1"),
        user_code: "ABCDEFGH".into(),
        verification_uri: "https://www.twitch.tv/activate?device-code=ABCDEFGH".into(),
        expires_in: 1800,
        interval: 5,
    };
    account.handle_done(t, wall(), Done::Token(TokenAnswer::Code(Ok(code))));
    assert!(matches!(work(&mut account), Work::Prompt(p) if !p.reminder));
    let at = account.poll_timeout().unwrap();
    account.handle_timeout(at);
    assert_eq!(
        token_action(work(&mut account)),
        TokenAction::PollCode(Secret::new("dev1"))
    );
    let declined = Err(OAuthError::Denied);
    account.handle_done(at, wall(), Done::Token(TokenAnswer::Polled(declined)));
    assert!(account.gave_up().is_some());
}
