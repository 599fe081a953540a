//! Chat over EventSub, end to end: the real binary against the fake Twitch's EventSub
//! WebSocket server and subscriptions API. Own messages change the color and others' do
//! not; `session_reconnect` loses nothing; silence, close codes and revocations reconnect
//! and subscribe again; a missing scope is named; the transport switches live, per user.

mod common;

use std::path::Path;

use common::*;
use serde_json::{json, Value};
use twitch_colorchanger::fake::FakeTwitch;

/// The fake knowing `hueshift_bot` (id 1), its config switched to EventSub.
fn eventsub_user(name: &str) -> (FakeTwitch, std::path::PathBuf) {
    let (fake, _dir, config) = hueshift(name);
    edit_in_place(&config, |doc| {
        doc["users"][0]["chat_transport"] = json!("eventsub")
    });
    (fake, config)
}

/// Waits until user `user_id` reads exactly `channels` through live subscriptions.
fn subscribed(fake: &FakeTwitch, user_id: &str, channels: &[&str]) -> bool {
    fake.wait(WAIT, |s| {
        let reading = s.reading(user_id);
        reading.len() == channels.len() && channels.iter().all(|c| reading.contains(*c))
    })
}

/// A WebSocket ping the bot must answer. It handles frames in order, so once the pong is
/// back every notification sent before the ping has been handled.
fn es_sync(fake: &FakeTwitch, tag: &str) {
    assert!(
        fake.eventsub_ping(tag) > 0,
        "no EventSub connection to ping"
    );
    let pong = format!("pong {tag}");
    assert!(
        fake.wait(WAIT, |s| s
            .eventsub
            .iter()
            .any(|c| c.received.contains(&pong))),
        "no pong for {tag}"
    );
}

fn changes(fake: &FakeTwitch) -> usize {
    fake.state().changes("1").len()
}

fn wait_changes(fake: &FakeTwitch, n: usize) -> bool {
    fake.wait(WAIT, |s| s.changes("1").len() >= n)
}

/// Everything the bot wrote on EventSub sockets was a Pong or a Close.
fn only_pongs_and_closes(fake: &FakeTwitch) {
    let state = fake.state();
    for conn in &state.eventsub {
        for frame in &conn.received {
            assert!(
                frame.starts_with("pong ") || frame.starts_with("close "),
                "the bot sent {frame:?} on EventSub"
            );
        }
    }
}

#[test]
fn own_messages_change_the_color_and_others_do_not() {
    let (fake, config) = eventsub_user("es-own");
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    fake.privmsg("chan", "someone", "999", "hello from someone else");
    es_sync(&fake, "after-foreign");
    assert_eq!(changes(&fake), 0);
    fake.privmsg("chan", "hueshift_bot", "1", "my own message");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
    // the subscription is the documented one
    let state = fake.state();
    let sub = &state.subscriptions[0];
    assert_eq!(
        (sub.user_id.as_str(), sub.status.as_str()),
        ("1", "enabled")
    );
    assert!(state
        .requests
        .iter()
        .any(|r| r.starts_with("GET /helix/users?login=chan")));
    drop(state);
    only_pongs_and_closes(&fake);
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
    assert!(out.contains("chat over EventSub"), "{out}");
    assert_no_secrets(&out);
}

#[test]
fn a_redelivered_message_changes_the_color_once() {
    let (fake, config) = eventsub_user("es-dup");
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    let id = "4f1c2d3e-0000-4000-8000-000000000001";
    assert_eq!(
        fake.eventsub_chat("chan", "hueshift_bot", "1", "once", id),
        1
    );
    assert_eq!(
        fake.eventsub_chat("chan", "hueshift_bot", "1", "once", id),
        1
    );
    es_sync(&fake, "after-dup");
    assert!(wait_changes(&fake, 1));
    assert!(
        bot.wait_log("acted on once already, skipped", 1),
        "{}",
        bot.output()
    );
    // another message still works, and the duplicate did not count as one
    fake.privmsg("chan", "hueshift_bot", "1", "twice");
    assert!(wait_changes(&fake, 2));
    es_sync(&fake, "end");
    assert_eq!(changes(&fake), 2);
}

#[test]
fn session_reconnect_switches_sockets_without_losing_a_message() {
    let (fake, config) = eventsub_user("es-reconnect");
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    let subs_before = fake.state().subscriptions.len();
    fake.update(|s| s.eventsub_hold_welcome = true);
    assert_eq!(fake.eventsub_reconnect(), 1);
    // the new socket is open but not welcomed yet: a message now goes to the old one
    assert!(fake.wait(WAIT, |s| s.open_eventsub().len() == 2));
    assert!(fake.state().eventsub[1]
        .target
        .contains("reconnect=session"));
    assert_eq!(
        fake.privmsg("chan", "hueshift_bot", "1", "during the switch"),
        1
    );
    assert!(wait_changes(&fake, 1), "{}", bot.output());
    fake.update(|s| s.eventsub_hold_welcome = false);
    assert_eq!(fake.release_welcomes(), 1);
    // the bot closes the old socket once the new one is welcomed
    assert!(
        fake.wait(WAIT, |s| s.open_eventsub() == [1]
            && s.eventsub[0].received.iter().any(|f| f == "close 1000")),
        "{}",
        bot.output()
    );
    assert_eq!(
        fake.privmsg("chan", "hueshift_bot", "1", "after the switch"),
        1
    );
    assert!(wait_changes(&fake, 2), "{}", bot.output());
    // nothing was subscribed again: the subscription moved with the session
    let state = fake.state();
    assert_eq!(state.subscriptions.len(), subs_before);
    assert_eq!(
        state.subscriptions[0].session_id,
        state.eventsub[1].session_id
    );
    drop(state);
    only_pongs_and_closes(&fake);
}

#[test]
fn silence_past_the_keepalive_reconnects_and_subscribes_again() {
    let (fake, config) = eventsub_user("es-keepalive");
    fake.update(|s| s.eventsub_keepalive = 1);
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    // the socket stays up while keepalives arrive, then goes quiet
    fake.update(|s| s.eventsub_silent = true);
    assert!(
        bot.wait_log("the connection went silent", 1),
        "{}",
        bot.output()
    );
    // the bot said goodbye on the silent socket before leaving it
    assert!(
        fake.wait(WAIT, |s| s.eventsub[0]
            .received
            .iter()
            .any(|r| r == "close 1000")),
        "{:?}",
        fake.state().eventsub[0].received
    );
    fake.update(|s| s.eventsub_silent = false);
    assert!(
        fake.wait(WAIT, |s| {
            let live = s.live_subscriptions("1");
            live.len() == 1 && live[0].0 != s.eventsub[0].session_id
        }),
        "{}",
        bot.output()
    );
    fake.privmsg("chan", "hueshift_bot", "1", "back");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
}

#[test]
fn close_codes_reconnect_and_are_named() {
    let (fake, config) = eventsub_user("es-close");
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    assert_eq!(fake.eventsub_close(4000, "internal error"), 1);
    assert!(
        bot.wait_log("4000 internal server error", 1),
        "{}",
        bot.output()
    );
    assert!(fake.wait(WAIT, |s| s.eventsub.len() == 2
        && s.live_subscriptions("1").len() == 1));
    fake.privmsg("chan", "hueshift_bot", "1", "still here");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
}

#[test]
fn revocations_drop_the_channel_or_renew_the_token_and_subscribe_again() {
    let (fake, config) = eventsub_user("es-revoke");
    edit_in_place(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "other"])
    });
    let bot = Bot::start(&fake, &config);
    assert!(
        subscribed(&fake, "1", &["chan", "other"]),
        "{}",
        bot.output()
    );
    // the channel's account is gone: that channel is no longer read, the other one is
    assert_eq!(fake.eventsub_revoke("other", "user_removed"), 1);
    assert!(bot.wait_log("user_removed", 1), "{}", bot.output());
    assert!(bot.wait_log("left the channel", 1), "{}", bot.output());
    fake.privmsg("chan", "hueshift_bot", "1", "chan still works");
    assert!(wait_changes(&fake, 1));

    // the user withdrew the app's authorisation: the token is refreshed and the channel
    // subscribed again, on the same session
    fake.expire_access_token("hueshift_bot");
    assert_eq!(fake.eventsub_revoke("chan", "authorization_revoked"), 1);
    assert!(bot.wait_log("authorization_revoked", 1), "{}", bot.output());
    assert!(
        fake.wait(WAIT, |s| s.oauth.iter().any(|c| c.grant_type.as_deref()
            == Some("refresh_token")
            && c.status == 200)),
        "{}",
        bot.output()
    );
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    assert_eq!(fake.state().eventsub.len(), 1, "no new session");
    fake.privmsg("chan", "hueshift_bot", "1", "renewed");
    assert!(wait_changes(&fake, 2), "{}", bot.output());
}

#[test]
fn a_revoked_subscription_with_a_valid_token_costs_only_its_channel() {
    let (fake, config) = eventsub_user("es-revoke-valid");
    edit_in_place(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "other"])
    });
    let bot = Bot::start(&fake, &config);
    assert!(
        subscribed(&fake, "1", &["chan", "other"]),
        "{}",
        bot.output()
    );
    // Twitch revokes one subscription, yet /validate calls the token valid
    assert_eq!(fake.eventsub_revoke("chan", "authorization_revoked"), 1);
    assert!(
        bot.wait_log(
            "Twitch says the token is valid: subscribing to the channel again once",
            1
        ),
        "{}",
        bot.output()
    );
    // the other channel goes on changing colors meanwhile, on the same session
    fake.privmsg("other", "hueshift_bot", "1", "other still works");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
    assert!(
        !bot.output().contains("reconnecting to chat"),
        "{}",
        bot.output()
    );
    // subscribed again once, after a delay, on the same session
    assert!(
        subscribed(&fake, "1", &["chan", "other"]),
        "{}",
        bot.output()
    );
    let state = fake.state();
    assert_eq!(state.eventsub.len(), 1, "no new session");
    let refreshes = state
        .oauth
        .iter()
        .filter(|c| c.grant_type.as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 0, "a valid token is not rotated");
    drop(state);
    fake.privmsg("chan", "hueshift_bot", "1", "chan is back");
    assert!(wait_changes(&fake, 2), "{}", bot.output());

    // revoked again: that channel is dropped, named in the status; the other one goes on
    assert_eq!(fake.eventsub_revoke("chan", "authorization_revoked"), 1);
    assert!(bot.wait_log("twice within an hour", 1), "{}", bot.output());
    assert!(subscribed(&fake, "1", &["other"]), "{}", bot.output());
    fake.privmsg("other", "hueshift_bot", "1", "other goes on");
    assert!(wait_changes(&fake, 3), "{}", bot.output());
    assert!(
        eventually(|| {
            let doc = status_json(&config);
            let user = &doc["users"][0];
            user["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("#chan") && e.contains("twice"))
                && user["channels"] == json!(["other"])
                && user["state"] == "connected"
        }),
        "{}",
        serde_json::to_string_pretty(&status_json(&config)).unwrap()
    );
    assert_eq!(fake.state().eventsub.len(), 1, "still the same session");
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
}

#[test]
fn a_token_without_user_read_chat_is_named_and_starts_the_device_flow() {
    // and once the person approves (with the scope this time), the bot reads chat
    let (fake, config) = eventsub_user("es-scope");
    fake.update(|s| s.users[0].scopes.retain(|x| x != "user:read:chat"));
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("lacks the user:read:chat scope", 1),
        "{}",
        bot.output()
    );
    assert!(
        fake.wait(WAIT, |s| !s.devices.is_empty()),
        "no device code was asked for:\n{}",
        bot.output()
    );
    assert_eq!(changes(&fake), 0);
    fake.update(|s| {
        s.users[0].scopes = twitch_colorchanger::oauth::SCOPES
            .iter()
            .map(|x| (*x).to_owned())
            .collect()
    });
    assert!(fake.approve_device("hueshift_bot"));
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    fake.privmsg("chan", "hueshift_bot", "1", "now with the scope");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
    assert_no_secrets(&bot.output());
}

#[test]
fn no_readable_channel_idles_instead_of_reconnecting_until_the_config_names_one() {
    let (fake, config) = eventsub_user("es-nothing");
    fake.update(|s| {
        s.unknown_channels.insert("chan".into());
    });
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("none of the channels can be read over EventSub", 1),
        "{}",
        bot.output()
    );
    // the socket is closed properly (Twitch would close it with 4003 anyway), and the
    // status says why the user is idle, without counting it as chat down
    assert!(fake.wait(WAIT, |s| s.eventsub[0]
        .received
        .iter()
        .any(|r| r == "close 1000")));
    let status_file = status_path(&config);
    assert!(
        eventually(|| std::fs::read_to_string(&status_file).is_ok_and(|t| {
            let doc: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            doc["users"][0]["state"] == "idle" && doc["users"][0]["chat_down_since"].is_null()
        })),
        "{:?}",
        std::fs::read_to_string(&status_file)
    );
    // a channel that exists: connected again, reading it
    edit_by_rename(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "hueshift_bot"])
    });
    assert!(
        subscribed(&fake, "1", &["hueshift_bot"]),
        "{}",
        bot.output()
    );
    assert_eq!(
        fake.state().eventsub.len(),
        2,
        "one connection per config: no loop"
    );
    fake.privmsg("hueshift_bot", "hueshift_bot", "1", "found one");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
}

#[test]
fn more_than_three_sockets_is_refused_with_a_clear_message() {
    let (fake, config) = eventsub_user("es-429");
    fake.update(|s| {
        s.subscribe_script.push_back((
            429,
            json!({"error": "Too Many Requests", "status": 429,
                "message": "number of websocket transports limit exceeded"})
            .to_string(),
        ))
    });
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("Twitch allows 3 EventSub WebSocket connections", 1),
        "{}",
        bot.output()
    );
}

#[test]
fn a_429_of_the_rate_limit_bucket_waits_for_the_reset_and_keeps_the_session() {
    let (fake, config) = eventsub_user("es-bucket");
    edit_in_place(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "other"])
    });
    fake.update(|s| {
        s.bucket_refill_secs = 2;
        s.subscribe_script.push_back((
            429,
            json!({"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"})
                .to_string(),
        ))
    });
    let bot = Bot::start(&fake, &config);
    assert!(
        subscribed(&fake, "1", &["chan", "other"]),
        "{}",
        bot.output()
    );
    let output = bot.output();
    assert!(
        output.contains("Twitch's rate limit (HTTP 429: Too Many Requests): subscribing again in"),
        "{output}"
    );
    assert!(
        !output.contains("3 EventSub WebSocket connections"),
        "{output}"
    );
    // both channels on the one session the bot opened: nothing closed, nothing started over
    let state = fake.state();
    assert_eq!(state.eventsub.len(), 1, "one connection");
    drop(state);
    fake.privmsg("chan", "hueshift_bot", "1", "after the wait");
    assert!(wait_changes(&fake, 1), "{}", bot.output());
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
}

#[test]
fn channel_edits_subscribe_and_unsubscribe_live() {
    let (fake, config) = eventsub_user("es-channels");
    let bot = Bot::start(&fake, &config);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    edit_by_rename(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "other"])
    });
    assert!(
        subscribed(&fake, "1", &["chan", "other"]),
        "{}",
        bot.output()
    );
    edit_by_rename(&config, |doc| {
        doc["users"][0]["channels"] = json!(["other"])
    });
    assert!(
        fake.wait(WAIT, |s| s.live_subscriptions("1").len() == 1
            && s.requests.iter().any(
                |r| r.starts_with("DELETE /helix/eventsub/subscriptions?id=sub-")
            )),
        "{}",
        bot.output()
    );
    // one session throughout
    assert_eq!(fake.state().eventsub.len(), 1);
    fake.privmsg("chan", "hueshift_bot", "1", "not read any more");
    fake.privmsg("other", "hueshift_bot", "1", "read");
    assert!(wait_changes(&fake, 1));
    es_sync(&fake, "end");
    assert_eq!(changes(&fake), 1);
}

fn state_of(config: &Path, user: &str) -> Option<(String, String)> {
    let doc = read_status(config).ok()?;
    let u = doc.users.into_iter().find(|u| u.username == user)?;
    Some((u.state, u.transport))
}

#[test]
fn switching_the_transport_live_restarts_only_the_chat_side() {
    let (fake, _dir, config) = hueshift("es-switch");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    assert!(eventually(
        || state_of(&config, "hueshift_bot") == Some(("connected".into(), "irc".into()))
    ));
    let lookups = |f: &FakeTwitch| {
        f.state()
            .requests
            .iter()
            .filter(|r| r.starts_with("GET /helix/users?"))
            .count()
    };
    let before = lookups(&fake);

    edit_by_rename(&config, |doc| {
        doc["users"][0]["chat_transport"] = json!("EventSub")
    });
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    assert!(fake.wait(WAIT, |s| s.open_conns("hueshift_bot").is_empty()));
    assert!(eventually(
        || state_of(&config, "hueshift_bot") == Some(("connected".into(), "eventsub".into()))
    ));
    fake.privmsg("chan", "hueshift_bot", "1", "over eventsub");
    assert!(wait_changes(&fake, 1), "{}", bot.output());

    edit_by_rename(&config, |doc| {
        doc["users"][0]["chat_transport"] = json!("irc")
    });
    assert!(fake.wait(WAIT, |s| s.open_conns("hueshift_bot").len() == 1
        && s.open_eventsub().is_empty()));
    // the EventSub socket was closed properly, not just dropped
    assert!(
        fake.wait(WAIT, |s| s
            .eventsub
            .iter()
            .all(|c| c.received.iter().any(|r| r == "close 1000"))),
        "{:?}",
        fake.state().eventsub
    );
    assert!(joined(&fake, "hueshift_bot", &["chan"]));
    fake.privmsg("chan", "hueshift_bot", "1", "over irc");
    assert!(wait_changes(&fake, 2), "{}", bot.output());
    // the user was not restarted: no new lookup of its own id, no token refresh
    let state = fake.state();
    let own_lookups = state
        .requests
        .iter()
        .filter(|r| r.starts_with("GET /helix/users?") && !r.contains("login="))
        .count();
    drop(state);
    assert_eq!(own_lookups, before);
    assert!(fake.state().oauth.iter().all(|c| c.path != "/oauth2/token"));
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
    assert!(
        out.contains("chat over EventSub now (config file)"),
        "{out}"
    );
}

#[test]
fn one_process_runs_a_user_on_each_transport() {
    let (fake, dir, _) = hueshift("es-both");
    fake.add_user("other_bot", "2", TOKEN_B, true);
    let mut irc_user = user_entry("other_bot", TOKEN_B, &["chan"], true);
    irc_user["chat_transport"] = json!("irc");
    let config = write_config(
        &dir,
        vec![
            user_entry("hueshift_bot", TOKEN_A, &["chan"], true),
            irc_user,
        ],
    );
    // hueshift_bot has no chat_transport: the environment's default applies
    let bot = Bot::start_with(&fake, &config, &[("TWITCH_CHAT_TRANSPORT", "eventsub")]);
    assert!(subscribed(&fake, "1", &["chan"]), "{}", bot.output());
    assert!(joined(&fake, "other_bot", &["chan"]), "{}", bot.output());
    fake.privmsg("chan", "hueshift_bot", "1", "eventsub user");
    fake.privmsg("chan", "other_bot", "2", "irc user");
    assert!(wait_changes(&fake, 1));
    assert!(fake.wait(WAIT, |s| s.changes("2").len() == 1));
    assert!(eventually(|| {
        read_status(&config).is_ok_and(|d| {
            let t: Vec<&str> = d.users.iter().map(|u| u.transport.as_str()).collect();
            t == ["eventsub", "irc"]
        })
    }));
    let out = status_command(&config);
    assert!(
        out.contains("VIA") && out.contains("eventsub") && out.contains("irc"),
        "{out}"
    );
    let json_out = status_json(&config);
    assert_eq!(json_out["users"][0]["transport"], "eventsub");
}

fn status_command(config: &Path) -> String {
    let out = bot_command()
        .args(["status", "--config"])
        .arg(config)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_json(config: &Path) -> Value {
    let out = bot_command()
        .args(["status", "--json", "--config"])
        .arg(config)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bad_transport_settings_are_named() {
    let (fake, config) = eventsub_user("es-bad");
    edit_in_place(&config, |doc| {
        doc["users"][0]["chat_transport"] = json!("pubsub")
    });
    let out = bot_command()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(r#"field "chat_transport": "pubsub" is not "irc" or "eventsub""#),
        "{text}"
    );
    edit_in_place(&config, |doc| {
        doc["users"][0]["chat_transport"] = json!("irc")
    });
    let mut bot = Bot::start_with(&fake, &config, &[("TWITCH_CHAT_TRANSPORT", "websocket")]);
    let status = wait_exit(&mut bot.child, WAIT);
    assert!(!status.success());
    assert!(
        bot.wait_log(
            r#"TWITCH_CHAT_TRANSPORT: "websocket": expected irc or eventsub"#,
            1
        ),
        "{}",
        bot.output()
    );
    let mut bot = Bot::start_with(&fake, &config, &[("TWITCH_EVENTSUB_URL", "https://x/ws")]);
    assert!(!wait_exit(&mut bot.child, WAIT).success());
    assert!(bot.wait_log("TWITCH_EVENTSUB_URL", 1), "{}", bot.output());
}
