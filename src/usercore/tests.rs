//! The user core on `t0 + Duration`: chat events, Helix answers and commands in, actions out.

use super::*;
use crate::chat::{self, CloseReason};
use crate::color;
use crate::secret::Secret;
use crate::tokens::RenewError;

fn user(channels: &[&str], prime: bool) -> UserConfig {
    UserConfig {
        username: "HueShift_Bot".into(),
        access_token: Secret::new("t"),
        refresh_token: Secret::default(),
        client_id: "cid".into(),
        client_secret: Secret::default(),
        channels: channels.iter().map(|c| c.to_string()).collect(),
        is_prime_or_turbo: prime,
        enabled: true,
        token_expiry: None,
        chat_transport: None,
        colors: Default::default(),
    }
}

fn wall() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// An error status from Helix.
fn refusal(status: u16, message: &str) -> ApiError {
    ApiError::Status {
        status,
        message: message.into(),
        rate: Default::default(),
    }
}

/// A 429 whose bucket refills `secs` after [`wall`].
fn limited(secs: u64) -> ApiError {
    ApiError::Status {
        status: 429,
        message: "Too Many Requests".into(),
        rate: crate::answer::RateLimit {
            limit: Some(800),
            remaining: Some(0),
            reset: Some(1_800_000_000 + secs),
        },
    }
}

fn actions(core: &mut UserCore) -> Vec<Action> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn me() -> Identity {
    Identity {
        id: "81234567".into(),
        login: "hueshift_bot".into(),
        color: Ok(Some("#1E90FF".into())),
    }
}

/// A core that has looked itself up and is in chat.
fn ready(t: Instant, channels: &[&str], prime: bool) -> UserCore {
    let mut core = UserCore::new(t, &user(channels, prime), Counters::default(), 7);
    assert_eq!(actions(&mut core), [Action::LookUpUser]);
    core.handle_lookup(t, Ok(me()));
    assert_eq!(actions(&mut core), [Action::Connect]);
    assert_eq!(core.status().state, State::Connecting);
    core.handle_chat(t, chat::Event::Ready);
    for c in channels {
        core.handle_chat(t, chat::Event::Joined(c.to_string()));
    }
    core
}

fn say(core: &mut UserCore, t: Instant, text: &str) {
    core.handle_chat(
        t,
        chat::Event::OwnMessage {
            channel: "lumenwave".into(),
            text: text.into(),
            id: None,
            copy: false,
        },
    );
}

/// An own message with Twitch's id for it, shown in `channel` (a shared-chat copy if `copy`).
fn shown(core: &mut UserCore, t: Instant, channel: &str, text: &str, id: &str, copy: bool) {
    core.handle_chat(
        t,
        chat::Event::OwnMessage {
            channel: channel.into(),
            text: text.into(),
            id: Some(id.into()),
            copy,
        },
    );
}

fn set_color(action: &Action) -> &str {
    match action {
        Action::SetColor(c) => c,
        other => panic!("expected SetColor, got {other:?}"),
    }
}

#[test]
fn own_message_sets_a_new_color_and_counts() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], true);
    assert_eq!(core.status().state, State::Connected);
    say(&mut core, t, "hello");
    let acts = actions(&mut core);
    let color = set_color(&acts[0]).to_owned();
    assert!(color::is_hex(&color) && !color::same(&color, "#1E90FF"));
    core.handle_put(t + Duration::from_millis(5), wall(), Ok(()));
    let s = core.status();
    assert_eq!(s.color.as_deref(), Some(color.as_str()));
    assert_eq!((s.counters.changes, s.counters.messages), (1, 1), "{s:?}");
    assert_eq!(
        s.counters.last_change_at,
        Some(t + Duration::from_millis(5))
    );
    assert_eq!(s.joined, ["lumenwave"]);
}

#[test]
fn one_message_shown_in_several_channels_by_shared_chat_is_one_change() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave", "partner"], true);
    let change = |core: &mut UserCore| {
        let acts = actions(core);
        if !acts.is_empty() {
            core.handle_put(t, wall(), Ok(()));
        }
        acts.len()
    };
    // the original first, then its copy
    shown(&mut core, t, "lumenwave", "hi", "o1", false);
    shown(&mut core, t, "partner", "hi", "o1", true);
    assert_eq!(change(&mut core), 1);
    // the copy first (another connection may be faster), then the original
    shown(&mut core, t, "partner", "hey", "o2", true);
    assert_eq!(change(&mut core), 1);
    shown(&mut core, t, "lumenwave", "hey", "o2", false);
    assert_eq!(change(&mut core), 0);
    // only a copy: sent in a channel the bot does not read
    shown(&mut core, t, "partner", "yo", "o3", true);
    assert_eq!(change(&mut core), 1);
    // a command shown twice acts once
    shown(&mut core, t, "lumenwave", "ccd", "o4", false);
    shown(&mut core, t, "partner", "ccd", "o4", true);
    assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(false))]);
    shown(&mut core, t, "partner", "cce", "o5", true);
    shown(&mut core, t, "lumenwave", "cce", "o5", false);
    assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(true))]);
    // and a plain message after them still changes, once
    shown(&mut core, t, "lumenwave", "plain", "p6", false);
    assert_eq!(change(&mut core), 1);
    let s = core.status();
    assert_eq!((s.counters.changes, s.counters.messages), (4, 6), "{s:?}");
}

#[test]
fn a_401_refreshes_the_token_and_retries_once() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, "hi");
    let color = set_color(&actions(&mut core)[0]).to_owned();
    let refused = refusal(401, "Invalid OAuth token");
    core.handle_put(t, wall(), Err(refused.clone()));
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
    core.handle_refreshed(t, Purpose::Color, Ok(()));
    assert_eq!(actions(&mut core), [Action::SetColor(color)]);
    // refused again: given up, not refreshed in a loop
    core.handle_put(t, wall(), Err(refused.clone()));
    assert_eq!(actions(&mut core), []);
    assert!(core
        .status()
        .counters
        .last_error
        .unwrap()
        .contains("even with a freshly renewed token"));
    // a renewal Twitch refuses is said as such
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, "hi");
    actions(&mut core);
    core.handle_put(t, wall(), Err(refused));
    actions(&mut core);
    core.handle_refreshed(
        t,
        Purpose::Color,
        Err(RenewError::Refused("Invalid refresh token".into())),
    );
    assert_eq!(
        core.status().counters.last_error.unwrap(),
        "Twitch refused the access token: it could not be renewed (Invalid refresh token)"
    );
}

#[test]
fn a_token_refused_even_after_renewal_is_not_renewed_again_for_a_while() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    let refused = || refusal(401, "Missing scope: user:manage:chat_color");
    say(&mut core, t, "hi");
    actions(&mut core);
    core.handle_put(t, wall(), Err(refused()));
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
    core.handle_refreshed(t, Purpose::Color, Ok(()));
    actions(&mut core);
    core.handle_put(t, wall(), Err(refused()));
    let error = core.status().counters.last_error.unwrap();
    assert!(
        error.contains("Missing scope") && error.contains("even with a freshly renewed token"),
        "{error}"
    );
    assert!(!error.contains("could not be renewed"), "{error}");
    // the next message: no renewal, the same honest error
    let t1 = t + Duration::from_secs(60);
    say(&mut core, t1, "again");
    actions(&mut core);
    core.handle_put(t1, wall(), Err(refused()));
    assert_eq!(actions(&mut core), []);
    // ten minutes later a renewal is worth one more try
    let t2 = t + NO_RENEWAL_AFTER_USELESS;
    say(&mut core, t2, "later");
    actions(&mut core);
    core.handle_put(t2, wall(), Err(refused()));
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Color)]);
}

#[test]
fn an_unreachable_token_endpoint_is_not_called_a_refusal() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, "hi");
    actions(&mut core);
    core.handle_put(t, wall(), Err(refusal(401, "Invalid OAuth token")));
    actions(&mut core);
    core.handle_refreshed(
        t,
        Purpose::Color,
        Err(RenewError::Unavailable("HTTP 503: upstream down".into())),
    );
    let error = core.status().counters.last_error.unwrap();
    assert_eq!(
        error,
        "Twitch no longer takes the access token, and renewing it failed for now (HTTP 503: upstream down)"
    );
    // chat: an outage is not a refusal either, so the backoff is not pushed to its cap
    core.handle_chat(
        t,
        chat::Event::Closed(CloseReason::AuthFailed(
            "Login authentication failed".into(),
        )),
    );
    actions(&mut core);
    core.handle_refreshed(
        t,
        Purpose::Chat,
        Err(RenewError::Unavailable("timeout".into())),
    );
    assert!(core.poll_timeout().unwrap() - t <= Duration::from_secs(2));
}

#[test]
fn a_429_waits_for_the_bucket_on_the_clock() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, "hi");
    let color = set_color(&actions(&mut core)[0]).to_owned();
    core.handle_put(t, wall(), Err(limited(7)));
    assert_eq!(actions(&mut core), []);
    assert_eq!(core.poll_timeout(), Some(t + Duration::from_secs(7)));
    core.handle_timeout(t + Duration::from_secs(6));
    assert_eq!(actions(&mut core), []);
    core.handle_timeout(t + Duration::from_secs(7));
    assert_eq!(actions(&mut core), [Action::SetColor(color)]);
}

#[test]
fn a_429_without_a_reset_header_waits_a_second() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, "hi");
    actions(&mut core);
    core.handle_put(t, wall(), Err(refusal(429, "Too Many Requests")));
    assert_eq!(core.poll_timeout(), Some(t + Duration::from_secs(1)));
}

#[test]
fn chat_commands_switch_persist_and_set_colors() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], false);
    say(&mut core, t, " CCD ");
    assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(false))]);
    assert_eq!(core.status().state, State::Disabled);
    say(&mut core, t, "now nothing changes");
    assert_eq!(actions(&mut core), []);
    // ccc works while disabled; hex is refused without Turbo/Prime; junk is ignored
    say(&mut core, t, "ccc Sea_Green");
    assert_eq!(actions(&mut core), [Action::SetColor("sea_green".into())]);
    core.handle_put(t, wall(), Ok(()));
    for ignored in ["ccc #a1b2c3", "ccc", "ccc red blue", "ccc purple"] {
        say(&mut core, t, ignored);
        assert_eq!(actions(&mut core), [], "{ignored}");
    }
    say(&mut core, t, "cce");
    assert_eq!(actions(&mut core), [Action::Persist(Field::Enabled(true))]);
    say(&mut core, t, "cccombo");
    assert!(matches!(actions(&mut core)[..], [Action::SetColor(_)]));
    assert_eq!(core.status().counters.messages, 9);
}

#[test]
fn ccm_switches_the_color_mode_and_persists_it() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], true);
    say(&mut core, t, "ccm rainbow");
    assert_eq!(
        actions(&mut core),
        [Action::Persist(Field::ColorMode(mode::Kind::Rainbow))]
    );
    // the next own message moves the hue on by 30° from the color in use (#1E90FF, 210°)
    say(&mut core, t, "hello");
    let first = set_color(&actions(&mut core)[0]).to_owned();
    assert_eq!(mode::hue_of(&first), Some(240));
    core.handle_put(t, wall(), Ok(()));
    say(&mut core, t, "again");
    assert_eq!(mode::hue_of(set_color(&actions(&mut core)[0])), Some(270));
    // no palette in the config: ccm palette is refused; junk is ignored
    for ignored in ["ccm palette", "ccm gradient", "ccm"] {
        say(&mut core, t, ignored);
        assert_eq!(actions(&mut core), [], "{ignored}");
    }
    let mut edited = user(&["lumenwave"], true);
    edited.colors = mode::Settings {
        kind: mode::Kind::Palette,
        palette: vec!["red".into(), "blue".into()],
        ..mode::Settings::default()
    };
    core.handle_config(&edited);
    assert_eq!(core.bot.colors().kind, mode::Kind::Palette);
}

#[test]
fn prime_users_may_ask_for_hex() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], true);
    say(&mut core, t, "ccc abc");
    assert_eq!(actions(&mut core), [Action::SetColor("#aabbcc".into())]);
}

#[test]
fn a_refused_hex_color_persists_named_colors() {
    let t = Instant::now();
    let mut core = ready(t, &["lumenwave"], true);
    say(&mut core, t, "x");
    actions(&mut core);
    let rejected = refusal(400, "invalid color");
    core.handle_put(t, wall(), Err(rejected));
    let named = set_color(&actions(&mut core)[0]).to_owned();
    assert!(!color::is_hex(&named));
    core.handle_put(t, wall(), Ok(()));
    assert_eq!(
        actions(&mut core),
        [Action::Persist(Field::PrimeOrTurbo(false))]
    );
    assert!(!core.status().prime_or_turbo);
}

#[test]
fn lost_chat_reconnects_with_backoff_reset_after_a_healthy_connection() {
    let t = Instant::now();
    let mut core = ready(t, &["a"], true);
    core.handle_disconnected(t + Duration::from_secs(5), "read failed", false);
    assert_eq!(core.status().state, State::Reconnecting);
    assert_eq!(
        core.status().chat_down_since,
        Some(t + Duration::from_secs(5))
    );
    let first = core.poll_timeout().unwrap() - (t + Duration::from_secs(5));
    assert!(first <= Duration::from_secs(1), "{first:?}");
    let t1 = t + Duration::from_secs(6);
    core.handle_timeout(t1);
    assert_eq!(actions(&mut core), [Action::Connect]);
    // a connect failure: the next wait is longer
    core.handle_disconnected(t1, "cannot connect", false);
    let second = core.poll_timeout().unwrap() - t1;
    assert!(second >= Duration::from_secs(1), "{second:?}");
    core.handle_timeout(t1 + second);
    actions(&mut core);
    // a connection that stayed up 30 s resets the backoff
    let t2 = t1 + second;
    core.handle_chat(t2, chat::Event::Ready);
    assert_eq!(core.status().chat_down_since, None);
    let t3 = t2 + HEALTHY;
    core.handle_chat(t3, chat::Event::Closed(CloseReason::Reconnect));
    assert!(core.poll_timeout().unwrap() - t3 <= Duration::from_secs(1));
    assert_eq!(
        core.status().counters.last_error.as_deref(),
        Some("chat: cannot connect")
    );
}

#[test]
fn refused_chat_login_refreshes_then_reconnects() {
    let t = Instant::now();
    let mut core = ready(t, &["a"], true);
    core.handle_chat(
        t,
        chat::Event::Closed(CloseReason::AuthFailed(
            "Login authentication failed".into(),
        )),
    );
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Chat)]);
    assert_eq!(core.poll_timeout(), None);
    core.handle_refreshed(
        t,
        Purpose::Chat,
        Err(RenewError::StillValid(
            "valid, refused for another reason".into(),
        )),
    );
    // a failed refresh waits the longest backoff step before trying again
    assert!(core.poll_timeout().unwrap() - t >= Duration::from_secs(90));
}

#[test]
fn a_renewed_token_reconnects_at_once_whatever_the_backoff_was() {
    let t = Instant::now();
    let mut core = ready(t, &["a"], true);
    let refused = || {
        chat::Event::Closed(CloseReason::AuthFailed(
            "Login authentication failed".into(),
        ))
    };
    core.handle_chat(t, refused());
    actions(&mut core);
    core.handle_refreshed(
        t,
        Purpose::Chat,
        Err(RenewError::StillValid("valid".into())),
    );
    let at = core.poll_timeout().unwrap();
    assert!(at - t >= Duration::from_secs(90), "saturated");
    core.handle_timeout(at);
    assert_eq!(actions(&mut core), [Action::Connect]);
    // refused again; this time a new token comes (a refresh, or the device flow for a
    // missing scope): the bot tries it within the first backoff step, not minutes later
    core.handle_chat(at, refused());
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Chat)]);
    let renewed = at + Duration::from_secs(120);
    core.handle_refreshed(renewed, Purpose::Chat, Ok(()));
    assert!(core.poll_timeout().unwrap() - renewed <= Duration::from_secs(1));
}

#[test]
fn a_token_from_the_device_flow_ends_the_wait_for_chat() {
    let t = Instant::now();
    let mut core = ready(t, &["a"], true);
    // EventSub's 403 for a missing scope: the refresh is refused, the device flow starts
    // in the token keeper, and chat waits the longest step
    core.handle_chat(
        t,
        chat::Event::Closed(CloseReason::AuthFailed("lacks user:read:chat".into())),
    );
    actions(&mut core);
    core.handle_refreshed(
        t,
        Purpose::Chat,
        Err(RenewError::Refused("lacks the scope".into())),
    );
    assert!(core.poll_timeout().unwrap() - t >= Duration::from_secs(90));
    let approved = t + Duration::from_secs(40);
    core.handle_token_renewed(approved);
    assert_eq!(core.poll_timeout(), Some(approved));
    core.handle_timeout(approved);
    assert_eq!(actions(&mut core), [Action::Connect]);
    // a renewal while chat is fine changes nothing
    core.handle_chat(approved, chat::Event::Ready);
    core.handle_token_renewed(approved);
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn nothing_to_read_parks_chat_until_the_channels_change() {
    let t = Instant::now();
    let mut core = ready(t, &["typo"], true);
    core.handle_chat(t, chat::Event::Closed(CloseReason::NothingToRead));
    // no reconnect loop (Twitch would close a socket without subscriptions every time),
    // and not "down": the config names nothing readable, and says so
    assert_eq!(core.poll_timeout(), None);
    assert!(actions(&mut core).is_empty());
    let status = core.status();
    assert_eq!(status.state, State::Idle);
    assert_eq!(status.chat_down_since, None);
    assert!(status
        .counters
        .last_error
        .is_some_and(|e| e.contains("no such channel")));
    // a token renewal changes nothing; an edit that only removes does not either
    core.handle_token_renewed(t);
    assert_eq!(core.poll_timeout(), None);
    // a new channel: connect again
    core.handle_config(&user(&["typo", "lumenwave"], true));
    assert_eq!(actions(&mut core), [Action::Connect]);
    assert_eq!(core.status().state, State::Connecting);
}

#[test]
fn lookup_failures_retry_and_a_401_refreshes_once() {
    let t = Instant::now();
    let mut core = UserCore::new(t, &user(&["a"], true), Counters::default(), 1);
    actions(&mut core);
    assert_eq!(core.status().state, State::Starting);
    core.handle_lookup(t, Err(refusal(401, "Invalid OAuth token")));
    assert_eq!(actions(&mut core), [Action::RefreshToken(Purpose::Lookup)]);
    core.handle_refreshed(t, Purpose::Lookup, Ok(()));
    assert_eq!(actions(&mut core), [Action::LookUpUser]);
    core.handle_lookup(t, Err(refusal(503, "down")));
    let at = core.poll_timeout().unwrap();
    core.handle_timeout(at);
    assert_eq!(actions(&mut core), [Action::LookUpUser]);
    core.handle_lookup(at, Ok(me()));
    assert_eq!(actions(&mut core), [Action::Connect]);
}

#[test]
fn config_edits_join_and_part_on_the_live_session_and_apply_flags() {
    let t = Instant::now();
    let mut core = ready(t, &["a", "b"], true);
    let mut edited = user(&["b", "c"], false);
    edited.enabled = false;
    core.handle_config(&edited);
    assert_eq!(
        actions(&mut core),
        [Action::Join("c".into()), Action::Part("a".into())]
    );
    let s = core.status();
    assert!(!s.enabled && !s.prime_or_turbo);
    assert_eq!(core.channels(), ["b", "c"]);
    // the same config again changes nothing
    core.handle_config(&edited);
    assert_eq!(actions(&mut core), []);
    // while chat is down the list is only remembered for the next connection
    core.handle_disconnected(t, "gone", false);
    core.handle_config(&user(&["d"], false));
    assert_eq!(actions(&mut core), []);
    assert_eq!(core.channels(), ["d"]);
}

#[test]
fn a_transport_switch_reconnects_chat_only_and_waits_while_chat_is_down() {
    let t = Instant::now();
    let mut core = ready(t, &["a"], true);
    assert_eq!(core.status().transport, Protocol::Irc);
    let mut edited = user(&["a"], true);
    edited.chat_transport = Some(Protocol::EventSub);
    core.handle_config(&edited);
    // no lookup, no refresh: a new chat session of the other kind
    assert_eq!(actions(&mut core), [Action::Connect]);
    let s = core.status();
    assert_eq!(
        (s.transport, s.state),
        (Protocol::EventSub, State::Connecting)
    );
    assert!(s.joined.is_empty());
    assert_eq!(core.transport(), Protocol::EventSub);
    // while chat is down, the next connection simply uses the new one
    core.handle_disconnected(t, "gone", false);
    core.handle_config(&user(&["a"], true));
    assert_eq!(actions(&mut core), []);
    assert_eq!(core.transport(), Protocol::Irc);
}

#[test]
fn counters_carry_over() {
    let t = Instant::now();
    let carried = Counters {
        changes: 4,
        messages: 9,
        last_change_at: Some(t),
        last_error: None,
        errors: Errors {
            chat: 2,
            ..Errors::default()
        },
        reconnects: 2,
        recent: [("#123456".into(), t)].into(),
    };
    let core = UserCore::new(t, &user(&["a"], true), carried.clone(), 1);
    assert_eq!(core.status().counters, carried);
}
