//! Shared chat, end to end on both transports: one message the user sends is one color
//! change however many channels of a shared session show it and in whichever order the
//! copies come; a command shown twice acts once; the log and the status count one message.

mod common;

use std::path::Path;

use common::*;
use serde_json::json;
use twitch_colorchanger::fake::FakeTwitch;

const ME: &str = "hueshift_bot";

/// The fake with `chan` and `partner` in one shared chat session, and a started bot reading
/// both over `transport`.
fn shared_session(name: &str, transport: &str) -> (FakeTwitch, std::path::PathBuf, Bot) {
    let (fake, _dir, config) = hueshift(name);
    edit_in_place(&config, |doc| {
        doc["users"][0]["channels"] = json!(["chan", "partner"]);
        doc["users"][0]["chat_transport"] = json!(transport);
    });
    fake.update(|s| s.shared_chat = vec!["chan".into(), "partner".into()]);
    let bot = Bot::start(&fake, &config);
    let ready = if transport == "irc" {
        joined(&fake, ME, &["chan", "partner"])
    } else {
        fake.wait(WAIT, |s| s.reading("1").len() == 2)
    };
    assert!(ready, "{}", bot.output());
    (fake, config, bot)
}

/// Everything sent so far has been handled: a PING (IRC) or a WebSocket ping (EventSub)
/// the bot answers in order.
fn settle(fake: &FakeTwitch, transport: &str, tag: &str) {
    if transport == "irc" {
        sync(fake, ME, tag);
        return;
    }
    assert!(fake.eventsub_ping(tag) > 0, "no EventSub connection");
    let pong = format!("pong {tag}");
    assert!(fake.wait(WAIT, |s| s
        .eventsub
        .iter()
        .any(|c| c.received.contains(&pong))));
}

fn changes(fake: &FakeTwitch) -> usize {
    fake.state().changes("1").len()
}

fn messages_in_status(config: &Path) -> u64 {
    read_status(config).unwrap().users[0].messages
}

fn one_message_is_one_change(transport: &str) {
    let (fake, config, bot) = shared_session(&format!("shared-{transport}"), transport);
    // Each step: everything sent is handled (in order), the change it started is done, and
    // the own messages handled so far number `seen` (a skipped copy is not one).
    let step = |n: usize, seen: usize, tag: &str| {
        settle(&fake, transport, tag);
        assert!(fake.wait(WAIT, |s| s.changes("1").len() >= n), "{tag}");
        assert_eq!(changes(&fake), n, "after {tag}: {}", bot.output());
        // the log is read from the bot's stderr by a thread of its own, so it may lag what
        // the wire already shows: wait for the lines (bounded), then count them exactly
        assert!(
            bot.wait_log("own message seen\n", seen),
            "after {tag}: {}",
            bot.output()
        );
        let out = bot.output();
        assert_eq!(
            out.matches("own message seen\n").count(),
            seen,
            "after {tag}: {out}"
        );
    };

    // sent in chan: shown there first, then in partner
    assert_eq!(fake.privmsg("chan", ME, "1", "origin first"), 2);
    step(1, 1, "origin-first");
    // shown in partner first (another channel's copy can be faster), then the original
    assert_eq!(
        fake.shared_message("chan", &["partner", "chan"], ME, "1", "copy first"),
        2
    );
    step(2, 2, "copy-first");
    // sent in a partner's channel the bot does not read: only copies reach it
    fake.update(|s| s.shared_chat.push("elsewhere".into()));
    assert_eq!(
        fake.shared_message("elsewhere", &["chan", "partner"], ME, "1", "copy only"),
        2
    );
    step(3, 3, "copy-only");
    // a command shown in both channels acts once
    assert_eq!(fake.privmsg("partner", ME, "1", "ccd"), 2);
    settle(&fake, transport, "ccd");
    assert_eq!(fake.privmsg("chan", ME, "1", "cce"), 2);
    step(3, 5, "cce");
    assert!(
        bot.wait_log("cce: automatic color changes enabled", 1),
        "{}",
        bot.output()
    );
    let out = bot.output();
    assert_eq!(
        out.matches("ccd: automatic color changes disabled").count(),
        1,
        "{out}"
    );
    assert_eq!(
        out.matches("cce: automatic color changes enabled").count(),
        1,
        "{out}"
    );
    // and a plain message after them still changes once
    assert_eq!(fake.privmsg("partner", ME, "1", "plain"), 2);
    step(4, 6, "plain");

    // the log says which copies were skipped and where they were shown
    assert!(
        bot.wait_log("acted on once already, skipped", 6),
        "{}",
        bot.output()
    );
    let skipped = bot
        .output()
        .matches("acted on once already, skipped")
        .count();
    assert_eq!(skipped, 6, "{}", bot.output());
    assert!(
        bot.output()
            .contains("[hueshift_bot #partner] own message shown again here by shared chat"),
        "{}",
        bot.output()
    );
    // the status counts one message for each sent: 3 plain, 2 commands, 1 plain
    assert!(
        eventually(|| messages_in_status(&config) == 6),
        "{}",
        bot.output()
    );
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
    assert_no_secrets(&out);
    assert_eq!(changes(&fake), 4, "{out}");
}

#[test]
fn shared_chat_over_irc_changes_once_per_message() {
    one_message_is_one_change("irc");
}

#[test]
fn shared_chat_over_eventsub_changes_once_per_message() {
    one_message_is_one_change("eventsub");
}
