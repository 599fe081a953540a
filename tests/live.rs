//! Live operation, end to end: the real binary against the fake Twitch while the config file
//! is edited under it, chat commands, environment users, the status file, `--health-check`,
//! `status`, `check`, SIGHUP and LOG_FILE.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use common::*;
use serde_json::{json, Value};
use twitch_colorchanger::color;
use twitch_colorchanger::fake::FakeTwitch;
use twitch_colorchanger::status::{Document, UserStatus};
use twitch_colorchanger::time::format_rfc3339;

const TOKEN_D: &str = "tokdddddddddddddddddddddddddddd4";

fn channels(doc: &mut Value, user: usize, list: &[&str]) {
    doc["users"][user]["channels"] = json!(list);
}

fn signal(bot: &Bot, name: &str) {
    assert!(Command::new("kill")
        .args([&format!("-{name}"), &bot.child.id().to_string()])
        .status()
        .unwrap()
        .success());
}

/// Runs the binary with `args` (no fake needed) and returns what it said.
fn cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    bot_command()
        .args(args)
        .envs(env.iter().copied())
        .env_remove("TWITCH_CONF_FILE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The fake Twitch knowing `alpha_user` (id 111, Prime), and the bot running for it in
/// `channels`, joined.
fn alpha(name: &str, channels: &[&str]) -> (FakeTwitch, PathBuf, Bot) {
    alpha_with(name, channels, &[])
}

/// [`alpha`], the bot started with the variables `env`.
fn alpha_with(name: &str, channels: &[&str], env: &[(&str, &str)]) -> (FakeTwitch, PathBuf, Bot) {
    let dir = temp_dir(name);
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("alpha_user", TOKEN_A, channels, true)],
    );
    let bot = Bot::start_with(&fake, &config, env);
    assert!(joined(&fake, "alpha_user", channels), "{}", bot.output());
    (fake, config, bot)
}

fn status_doc(config: &Path) -> Option<Document> {
    let text = std::fs::read_to_string(status_path(config)).ok()?;
    serde_json::from_str(&text).ok()
}

#[test]
fn added_and_removed_users_start_and_stop_without_touching_the_others() {
    let dir = temp_dir("live-add");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    fake.add_user("beta_user", "222", TOKEN_B, false);
    let config = write_config(
        &dir,
        vec![user_entry("alpha_user", TOKEN_A, &["a_chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "alpha_user", &["a_chan"]), "{}", bot.output());

    edit_in_place(&config, |doc| {
        doc["users"].as_array_mut().unwrap().push(user_entry(
            "beta_user",
            TOKEN_B,
            &["b_chan"],
            false,
        ))
    });
    assert!(joined(&fake, "beta_user", &["b_chan"]), "{}", bot.output());
    fake.privmsg("b_chan", "beta_user", "222", "hi");
    assert!(fake.wait(WAIT, |s| s.changes("222").len() == 1));

    edit_in_place(&config, |doc| {
        doc["users"].as_array_mut().unwrap().remove(0);
    });
    assert!(
        fake.wait(WAIT, |s| s.open_conns("alpha_user").is_empty()),
        "{}",
        bot.output()
    );
    let state = fake.state();
    assert_eq!(state.logins("alpha_user"), 1, "alpha was never reconnected");
    assert_eq!(
        state.logins("beta_user"),
        1,
        "beta was not touched by alpha's removal"
    );
    drop(state);
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert!(
        output.contains("[beta_user] added to the config"),
        "{output}"
    );
    assert!(
        output.contains("[alpha_user] removed from the config: stopped"),
        "{output}"
    );
    assert_no_secrets(&output);
}

#[test]
fn channel_edits_join_and_part_on_the_same_connection() {
    let (fake, config, bot) = alpha("live-channels", &["a_chan", "b_chan"]);
    let conn = fake.state().open_conns("alpha_user")[0];

    edit_in_place(&config, |doc| channels(doc, 0, &["b_chan", "#C_Chan"]));
    assert!(
        fake.wait(WAIT, |s| s.irc[conn].channels
            == ["b_chan", "c_chan"].map(String::from).into()),
        "{}",
        bot.output()
    );
    let state = fake.state();
    assert!(state.irc[conn].open);
    assert!(state.irc[conn].lines.contains(&"JOIN #c_chan".to_owned()));
    assert!(state.irc[conn].lines.contains(&"PART #a_chan".to_owned()));
    assert_eq!(state.logins("alpha_user"), 1);
    drop(state);
    assert!(
        bot.wait_log("[alpha_user #a_chan] left", 1),
        "{}",
        bot.output()
    );
    fake.privmsg("c_chan", "alpha_user", "111", "hi in the new channel");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
}

#[test]
fn an_invalid_edit_keeps_the_last_good_config_and_a_later_fix_applies() {
    let (fake, config, bot) = alpha("live-invalid", &["a_chan"]);

    std::fs::write(
        &config,
        "{\n  \"users\": [\n    {\"username\": \"alpha_user\",,\n",
    )
    .unwrap();
    let want = format!(
        "config not reloaded: {}:3:31: invalid JSON: key must be a string",
        config.display()
    );
    assert!(bot.wait_log(&want, 1), "{}", bot.output());
    // a bad user entry: named, and still nothing changes
    let mut broken = user_entry("alpha_user", TOKEN_A, &[], true);
    broken["is_prime_or_turbo"] = json!("yes");
    std::fs::write(&config, json!({ "users": [broken] }).to_string()).unwrap();
    assert!(
        bot.wait_log(
            "users[0] (alpha_user): field \"is_prime_or_turbo\" must be true or false",
            1
        ),
        "{}",
        bot.output()
    );
    assert!(bot
        .output()
        .contains("users[0] (alpha_user): field \"channels\" is empty"));

    fake.privmsg("a_chan", "alpha_user", "111", "still running");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
    assert_eq!(fake.state().logins("alpha_user"), 1);

    // fixed, with a new channel: applied
    std::fs::write(
        &config,
        json!({ "users": [user_entry("alpha_user", TOKEN_A, &["a_chan", "fixed"], true)] })
            .to_string(),
    )
    .unwrap();
    assert!(
        joined(&fake, "alpha_user", &["a_chan", "fixed"]),
        "{}",
        bot.output()
    );
    assert_eq!(fake.state().logins("alpha_user"), 1);
}

#[test]
fn saves_by_rename_delete_and_symlink_swap_are_all_seen() {
    let dir = temp_dir("live-editors");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    // Kubernetes ConfigMap layout: twitch.conf -> ..data/twitch.conf, ..data -> v1
    let doc = |chans: &[&str]| {
        serde_json::to_string_pretty(&json!({
            "users": [user_entry("alpha_user", TOKEN_A, chans, true)]
        }))
        .unwrap()
    };
    std::fs::create_dir_all(dir.join("v1")).unwrap();
    std::fs::write(dir.join("v1/twitch.conf"), doc(&["one"])).unwrap();
    std::os::unix::fs::symlink("v1", dir.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/twitch.conf", dir.join("twitch.conf")).unwrap();
    let config = dir.join("twitch.conf");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "alpha_user", &["one"]), "{}", bot.output());

    // in place, through the link
    edit_in_place(&config, |d| channels(d, 0, &["one", "two"]));
    assert!(joined(&fake, "alpha_user", &["two"]), "{}", bot.output());
    // by rename, beside the target
    edit_by_rename(&dir.join("v1/twitch.conf"), |d| {
        channels(d, 0, &["one", "two", "three"])
    });
    assert!(joined(&fake, "alpha_user", &["three"]), "{}", bot.output());
    // the ConfigMap is updated: a new directory, and ..data swapped to it atomically
    std::fs::create_dir_all(dir.join("v2")).unwrap();
    std::fs::write(dir.join("v2/twitch.conf"), doc(&["four"])).unwrap();
    std::os::unix::fs::symlink("v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("v1")).unwrap();
    assert!(
        fake.wait(WAIT, |s| s.joined("alpha_user")
            == ["four"].map(String::from).into()),
        "{}",
        bot.output()
    );
    // deleted: keeps running, says so once; back: applied
    std::fs::remove_file(dir.join("v2/twitch.conf")).unwrap();
    assert!(
        bot.wait_log("the config file is gone", 1),
        "{}",
        bot.output()
    );
    std::fs::write(dir.join("v2/twitch.conf"), doc(&["four", "five"])).unwrap();
    assert!(joined(&fake, "alpha_user", &["five"]), "{}", bot.output());
    assert!(bot.wait_log("the config file is back", 1));
    assert_eq!(bot.output().matches("the config file is gone").count(), 1);
    assert_eq!(fake.state().logins("alpha_user"), 1, "{}", bot.output());
}

#[test]
fn the_bots_own_writes_do_not_reload_and_edited_credentials_restart_only_that_user() {
    let dir = temp_dir("live-own");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("no_prime_user", "333", TOKEN_A, false);
    fake.add_user("other_user", "444", TOKEN_B, true);
    fake.set_refresh_token("no_prime_user", REFRESH);
    let config = write_config(
        &dir,
        vec![
            user_entry("no_prime_user", TOKEN_A, &["chan"], true),
            user_entry("other_user", TOKEN_B, &["chan"], true),
        ],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "no_prime_user", &["chan"]));
    assert!(joined(&fake, "other_user", &["chan"]));

    // the bot writes is_prime_or_turbo (hex refused) and, after a 401, a refreshed pair
    fake.privmsg("chan", "no_prime_user", "333", "hi");
    assert!(
        bot.wait_log("saved \"is_prime_or_turbo\": false", 1),
        "{}",
        bot.output()
    );
    assert!(
        bot.wait_log("changed by the bot itself; nothing to reload", 1),
        "{}",
        bot.output()
    );
    fake.expire_access_token("no_prime_user");
    fake.privmsg("chan", "no_prime_user", "333", "again");
    assert!(
        fake.wait(WAIT, |s| s.changes("333").len() == 2),
        "{}",
        bot.output()
    );
    assert!(
        bot.wait_log("changed by the bot itself; nothing to reload", 2),
        "{}",
        bot.output()
    );
    let output = bot.output();
    assert!(!output.contains("config reloaded"), "{output}");
    assert_eq!(fake.state().logins("no_prime_user"), 1);

    // the person pastes a new token for other_user: only that user restarts
    fake.update(|s| {
        let u = s
            .users
            .iter_mut()
            .find(|u| u.login == "other_user")
            .unwrap();
        u.token = "tokccccccccccccccccccccccccccc3".into();
    });
    edit_in_place(&config, |doc| {
        doc["users"][1]["access_token"] = json!("tokccccccccccccccccccccccccccc3")
    });
    assert!(
        fake.wait(WAIT, |s| s.logins("other_user") == 2
            && s.joined("other_user").contains("chan")),
        "{}",
        bot.output()
    );
    assert!(bot
        .output()
        .contains("[other_user] credentials changed in the config: restarting this user"));
    assert_eq!(fake.state().logins("no_prime_user"), 1);
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn enabled_toggled_in_the_file_applies_in_place() {
    let (fake, config, bot) = alpha("live-enabled", &["chan"]);
    edit_in_place(&config, |doc| doc["users"][0]["enabled"] = json!(false));
    assert!(
        bot.wait_log("automatic color changes disabled (config file)", 1),
        "{}",
        bot.output()
    );
    fake.privmsg("chan", "alpha_user", "111", "nothing happens");
    sync(&fake, "alpha_user", "disabled");
    edit_in_place(&config, |doc| doc["users"][0]["enabled"] = json!(true));
    assert!(bot.wait_log("automatic color changes enabled (config file)", 1));
    fake.privmsg("chan", "alpha_user", "111", "now it does");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
    assert_eq!(fake.state().puts.len(), 1, "no change while disabled");
    assert_eq!(fake.state().logins("alpha_user"), 1);
}

#[test]
fn color_modes_palette_and_rainbow_with_ccm_persisted() {
    let dir = temp_dir("live-modes");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("named_user", "555", TOKEN_A, false);
    let mut entry = user_entry("named_user", TOKEN_A, &["chan"], false);
    entry["color_mode"] = json!("palette");
    entry["palette"] = json!(["Red", "blue", "green"]);
    let config = write_config(&dir, vec![entry]);
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "named_user", &["chan"]));
    // the palette in order, one color per message
    for (n, text) in ["one", "two", "three", "four"].iter().enumerate() {
        fake.privmsg("chan", "named_user", "555", text);
        assert!(
            fake.wait(WAIT, |s| s.changes("555").len() == n + 1),
            "{}",
            bot.output()
        );
    }
    assert_eq!(fake.state().changes("555"), ["red", "blue", "green", "red"]);

    // ccm rainbow: saved, and the named colors follow in hue order from the one in use
    fake.privmsg("chan", "named_user", "555", "ccm Rainbow");
    assert!(
        bot.wait_log("saved \"color_mode\": \"rainbow\"", 1),
        "{}",
        bot.output()
    );
    assert_eq!(
        read_config(&config)["users"][0]["color_mode"],
        json!("rainbow")
    );
    let order = twitch_colorchanger::mode::named_by_hue();
    let mut at = order.iter().position(|n| *n == "red").unwrap();
    for n in 5..8 {
        fake.privmsg("chan", "named_user", "555", "rainbow message");
        assert!(
            fake.wait(WAIT, |s| s.changes("555").len() == n),
            "{}",
            bot.output()
        );
        at = (at + 1) % order.len();
        assert_eq!(fake.state().changes("555")[n - 1], order[at]);
    }
    // an edit back to random applies live
    edit_in_place(&config, |d| d["users"][0]["color_mode"] = json!("random"));
    assert!(
        bot.wait_log("colors now random named colors (config file)", 1),
        "{}",
        bot.output()
    );
}

#[test]
fn chat_commands_disable_enable_and_set_colors_and_persist() {
    let dir = temp_dir("live-commands");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("named_user", "555", TOKEN_A, false);
    let config = write_config(
        &dir,
        vec![user_entry("named_user", TOKEN_A, &["chan"], false)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "named_user", &["chan"]));

    // someone else's commands are nobody's business
    fake.privmsg("chan", "someone_else", "999", "ccd");
    fake.privmsg("chan", "someone_else", "999", "ccc red");
    sync(&fake, "named_user", "others");

    fake.privmsg("chan", "named_user", "555", " CCD ");
    assert!(
        bot.wait_log("saved \"enabled\": false", 1),
        "{}",
        bot.output()
    );
    assert_eq!(read_config(&config)["users"][0]["enabled"], json!(false));
    fake.privmsg(
        "chan",
        "named_user",
        "555",
        "an ordinary message while disabled",
    );
    // ccc works even while disabled, in any case
    fake.privmsg("chan", "named_user", "555", "ccc Sea_Green");
    assert!(
        fake.wait(WAIT, |s| s.changes("555") == ["sea_green"]),
        "{}",
        bot.output()
    );
    // hex without Turbo/Prime, unknown colors and bad arguments: logged, nothing sent
    for ignored in ["ccc #a1b2c3", "ccc purple", "ccc", "ccc red blue"] {
        fake.privmsg("chan", "named_user", "555", ignored);
    }
    sync(&fake, "named_user", "ignored");
    // the last of them logged, all of them are
    assert!(
        bot.wait_log("ccc takes exactly one color", 2),
        "{}",
        bot.output()
    );
    assert!(bot.output().contains("hex colors need Turbo or Prime"));
    assert!(bot
        .output()
        .contains("ccc: unknown color \"purple\": use one of the named colors blue, blue_violet,"));
    assert_eq!(fake.state().puts.len(), 1);

    fake.privmsg("chan", "named_user", "555", "cce");
    assert!(
        bot.wait_log("saved \"enabled\": true", 1),
        "{}",
        bot.output()
    );
    assert_eq!(read_config(&config)["users"][0]["enabled"], json!(true));
    // "cccombo" is an ordinary message: an automatic change; a command never also changes
    fake.privmsg("chan", "named_user", "555", "cccombo");
    assert!(fake.wait(WAIT, |s| s.changes("555").len() == 2));
    let changes = fake.state().changes("555");
    assert!(color::NAMED.iter().any(|(n, _)| *n == changes[1]));
    assert!(!color::same(&changes[0], &changes[1]));
    let doc = read_config(&config);
    assert_eq!(doc["users"][0]["custom_note"], "kept as is");
    assert_eq!(doc["unknown_top_level"], json!([1, 2, 3]));
    assert!(!bot.output().contains("config reloaded"));
}

#[test]
fn users_from_the_environment_create_the_file_and_merge_with_it() {
    let dir = temp_dir("live-env");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("env_user", "666", TOKEN_A, true);
    fake.add_user("file_user", "777", TOKEN_D, true);
    let config = dir.join("twitch_colorchanger.conf");
    let env = [
        ("TWITCH_USERNAME_1", "env_user"),
        ("TWITCH_ACCESS_TOKEN_1", TOKEN_A),
        ("TWITCH_REFRESH_TOKEN_1", REFRESH),
        ("TWITCH_CLIENT_ID_1", "fakeclientid0000000000000000000"),
        ("TWITCH_CHANNELS_1", "#env_chan, second"),
        ("USE_RANDOM_COLORS_1", "false"),
    ];
    // no file: created, mode 0600
    let bot = Bot::start_with(&fake, &config, &env);
    assert!(
        joined(&fake, "env_user", &["env_chan", "second"]),
        "{}",
        bot.output()
    );
    let (status, _, _) = bot.terminate();
    assert!(status.success());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc = read_config(&config);
    assert_eq!(doc["users"][0]["username"], "env_user");
    assert_eq!(doc["users"][0]["channels"], json!(["#env_chan", "second"]));
    assert_eq!(doc["users"][0]["is_prime_or_turbo"], json!(false));

    // the file holds newer tokens and another user; the environment changes the channels
    edit_in_place(&config, |doc| {
        doc["users"][0]["access_token"] = json!(TOKEN_B);
        doc["users"][0]["note"] = json!("mine");
        doc["users"].as_array_mut().unwrap().push(user_entry(
            "file_user",
            TOKEN_D,
            &["file_chan"],
            true,
        ));
    });
    fake.update(|s| s.users[0].token = TOKEN_B.into());
    let env2 = [
        ("TWITCH_USERNAME_1", "env_user"),
        ("TWITCH_ACCESS_TOKEN_1", TOKEN_A),
        ("TWITCH_CLIENT_ID_1", "fakeclientid0000000000000000000"),
        ("TWITCH_CHANNELS_1", "third"),
    ];
    let bot = Bot::start_with(&fake, &config, &env2);
    assert!(joined(&fake, "env_user", &["third"]), "{}", bot.output());
    assert!(joined(&fake, "file_user", &["file_chan"]));
    let doc = read_config(&config);
    assert_eq!(
        doc["users"][0]["access_token"], TOKEN_B,
        "the file's token wins"
    );
    assert_eq!(
        doc["users"][0]["channels"],
        json!(["third"]),
        "the environment's fields win"
    );
    assert_eq!(doc["users"][0]["is_prime_or_turbo"], json!(true));
    assert_eq!(doc["users"][0]["note"], "mine");
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn status_file_status_command_and_health_check_follow_the_bot() {
    let dir = temp_dir("live-status");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("alpha_user", TOKEN_A, &["a_chan"], true)],
    );
    let conf = config.to_str().unwrap();
    // no bot yet
    let out = cli(&["--health-check", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).starts_with("unhealthy: no bot is running for"),
        "{}",
        text(&out)
    );
    let out = cli(&["status", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("no bot is running for"),
        "{}",
        text(&out)
    );

    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "alpha_user", &["a_chan"]));
    fake.privmsg("a_chan", "alpha_user", "111", "hi");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
    assert!(
        eventually(|| status_doc(&config)
            .is_some_and(|d| d.users[0].state == "connected" && d.users[0].changes == 1)),
        "{}",
        bot.output()
    );
    let doc = status_doc(&config).unwrap();
    assert_eq!(doc.pid, bot.child.id());
    let user = &doc.users[0];
    assert_eq!(user.channels, ["a_chan"]);
    assert_eq!(
        user.color.as_deref(),
        Some(fake.state().changes("111")[0].as_str())
    );
    assert_eq!((user.messages, user.chat_down_since.as_deref()), (1, None));
    assert!(user.last_change_at.is_some() && user.token_expires_at.is_some());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(status_path(&config))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let out = cli(&["--health-check", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        text(&out),
        "healthy: pid ".to_owned() + &doc.pid.to_string() + ", 1 of 1 user(s) in chat\n"
    );
    let out = cli(&["status", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let table = text(&out);
    assert!(
        table.starts_with("USER        STATE      VIA  CHANNELS  COLOR"),
        "{table}"
    );
    assert!(
        table.contains("alpha_user  connected  irc  #a_chan"),
        "{table}"
    );
    let out = cli(&["status", "--json", "--config", conf], &[]);
    let json: Document = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json.users[0].username, "alpha_user");

    // counters survive a restart of the user (new credentials)
    fake.update(|s| s.users[0].token = TOKEN_B.into());
    edit_in_place(&config, |d| d["users"][0]["access_token"] = json!(TOKEN_B));
    assert!(
        fake.wait(WAIT, |s| s.logins("alpha_user") == 2
            && s.open_conns("alpha_user").len() == 1
            && s.joined("alpha_user").contains("a_chan")),
        "{}",
        bot.output()
    );
    fake.privmsg("a_chan", "alpha_user", "111", "after the restart");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 2));
    assert!(
        eventually(|| status_doc(&config).is_some_and(|d| d.users[0].changes == 2)),
        "{:?}",
        status_doc(&config)
    );

    // bot gone: its last word says every user stopped
    let pid = bot.child.id();
    let (status, _, _) = bot.terminate();
    assert!(status.success());
    assert_eq!(status_doc(&config).unwrap().users[0].state, "stopped");
    let out = cli(&["--health-check", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out),
        format!("unhealthy: the bot (pid {pid}) is not running\n")
    );
    let out = cli(&["status", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains(&format!("the last one (pid {pid})")),
        "{}",
        text(&out)
    );
}

#[test]
fn dash_h_is_help() {
    let out = cli(&["-h"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out).starts_with("Usage: twitch-colorchanger"),
        "{}",
        text(&out)
    );
    let out = cli(&["status", "-h"], &[]);
    assert!(
        text(&out).starts_with("Usage: twitch-colorchanger status"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_names_a_misspelled_field_and_the_one_meant() {
    let dir = temp_dir("live-typo");
    let mut entry = user_entry("alpha_user", TOKEN_A, &["a_chan"], true);
    entry["colour_mode"] = json!("rainbow");
    let config = write_config(&dir, vec![entry]);
    let out = cli(&["check", "--config", config.to_str().unwrap()], &[]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("users[0] (alpha_user): unknown field \"colour_mode\" (did you mean \"color_mode\"?); kept in the file, not used"),
        "{said}"
    );
}

#[test]
fn a_second_bot_on_the_same_config_is_refused_and_check_and_status_still_work() {
    let (fake, config, bot) = alpha("live-lock", &["a_chan"]);
    let conf = config.to_str().unwrap();
    let pid = bot.child.id();
    let second = |when: &str| {
        let mut cmd = bot_command();
        cmd.args(["--config", conf]);
        let mut other = Bot::spawn(&fake, cmd);
        let exit = wait_exit(&mut other.child, WAIT);
        assert_eq!(exit.code(), Some(1), "{when}: {}", other.output());
        other.wait_log("lock the account out", 1);
        let out = other.output();
        assert!(
            out.contains(&format!(
                "another twitch-colorchanger (pid {pid}) is running with {conf}"
            )),
            "{when}: {out}"
        );
    };
    assert!(eventually(|| status_doc(&config).is_some()));
    second("at once");
    // status and check do not take the lock
    assert_eq!(
        cli(&["status", "--config", conf], &[]).status.code(),
        Some(0)
    );
    assert_eq!(
        cli(&["check", "--config", conf], &[]).status.code(),
        Some(0)
    );
    // the bot's own save and a person's save by rename both make a new file: still held
    fake.privmsg("a_chan", "alpha_user", "111", "ccd");
    assert!(
        bot.wait_log("saved \"enabled\": false", 1),
        "{}",
        bot.output()
    );
    second("after the bot's own save");
    edit_by_rename(&config, |doc| doc["users"][0]["note"] = json!("edited"));
    assert!(bot.wait_log("config reloaded", 1), "{}", bot.output());
    second("after an edit by rename");
    assert!(
        !bot.output().contains("another process locked"),
        "{}",
        bot.output()
    );
    // once it is gone, the next one starts
    let (status, _, _) = bot.terminate();
    assert!(status.success());
    let next = Bot::start(&fake, &config);
    assert!(
        joined(&fake, "alpha_user", &["a_chan"]),
        "{}",
        next.output()
    );
}

#[test]
fn the_status_file_lives_in_the_runtime_directory_or_where_it_is_told() {
    let dir = temp_dir("live-status-place");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("alpha_user", TOKEN_A, &["a_chan"], true)],
    );
    let conf = config.to_str().unwrap();
    let healthy = |env: &[(&str, &str)], flag: &[&str]| {
        let mut args = flag.to_vec();
        args.extend(["--health-check", "--config", conf]);
        eventually(|| cli(&args, env).status.success())
    };

    // systemd's RuntimeDirectory=: the file is there, and nothing beside the config
    let runtime = dir.join("runtime");
    std::fs::create_dir(&runtime).unwrap();
    let rt = runtime.to_str().unwrap();
    let bot = Bot::start_with(&fake, &config, &[("RUNTIME_DIRECTORY", rt)]);
    assert!(joined(&fake, "alpha_user", &["a_chan"]));
    assert!(
        healthy(&[("RUNTIME_DIRECTORY", rt)], &[]),
        "{}",
        bot.output()
    );
    let in_runtime: Vec<_> = std::fs::read_dir(&runtime).unwrap().collect();
    assert_eq!(in_runtime.len(), 1);
    let name = in_runtime[0].as_ref().unwrap().file_name();
    let name = name.to_str().unwrap();
    assert!(
        name.starts_with("twitch_colorchanger.conf-") && name.ends_with(".status.json"),
        "{name}"
    );
    assert!(!dir.join("twitch_colorchanger.conf.status.json").exists());
    drop(bot);

    // --status-file on the bot, and the same flag or STATUS_FILE on the readers
    let told = dir.join("told.json");
    let told_s = told.to_str().unwrap();
    let mut cmd = bot_command();
    cmd.args(["--status-file", told_s, "--config", conf]);
    let bot = Bot::spawn(&fake, cmd);
    assert!(healthy(&[], &["--status-file", told_s]), "{}", bot.output());
    assert!(healthy(&[("STATUS_FILE", told_s)], &[]));
    let out = cli(&["--status-file", told_s, "status", "--config", conf], &[]);
    assert!(text(&out).contains("alpha_user"), "{}", text(&out));
    drop(bot);

    // nowhere to write it: the bot runs all the same and says so once
    let bot = Bot::start_with(
        &fake,
        &config,
        &[("STATUS_FILE", "/proc/no/such/status.json")],
    );
    assert!(joined(&fake, "alpha_user", &["a_chan"]));
    fake.privmsg("a_chan", "alpha_user", "111", "still changes");
    assert!(
        fake.wait(WAIT, |s| !s.changes("111").is_empty()),
        "{}",
        bot.output()
    );
    assert!(bot.wait_log("cannot write the status file /proc/no/such/status.json", 1));
    let (status, _, out) = bot.terminate();
    assert!(status.success());
    assert_eq!(
        out.matches("cannot write the status file").count(),
        1,
        "{out}"
    );
}

#[test]
fn health_check_reports_a_stale_file_and_a_user_without_chat() {
    let dir = temp_dir("live-health");
    let config = dir.join("twitch_colorchanger.conf");
    let conf = config.to_str().unwrap();
    let now = SystemTime::now();
    // a living process (this test) that wrote its status long ago, or lost chat long ago
    let mut doc = Document {
        clock: None,
        nofile: None,
        written_at: format_rfc3339(now - Duration::from_secs(120)),
        pid: std::process::id(),
        config: conf.into(),
        users: vec![UserStatus {
            errors: Default::default(),
            reconnects: 0,
            recent_colors: Vec::new(),
            username: "alpha_user".into(),
            state: "reconnecting".into(),
            enabled: true,
            channels: vec![],
            color: None,
            changes: 0,
            messages: 0,
            last_change_at: None,
            last_error: Some("chat: cannot connect to tls://127.0.0.1:1: refused".into()),
            token_expires_at: None,
            chat_down_since: Some(format_rfc3339(now - Duration::from_secs(400))),
            transport: "irc".into(),
        }],
    };
    let write = |doc: &Document| {
        std::fs::write(status_path(&config), serde_json::to_string(doc).unwrap()).unwrap()
    };
    write(&doc);
    let out = cli(&["--health-check", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1));
    // 120 s when written, and a little more under emulation on a loaded machine
    let age: Option<u64> = text(&out)
        .split("the status file is ")
        .nth(1)
        .and_then(|rest| rest.split("s old").next())
        .and_then(|n| n.parse().ok());
    assert!(matches!(age, Some(120..=180)), "{}", text(&out));
    doc.written_at = format_rfc3339(now);
    write(&doc);
    let out = cli(&["--health-check", "--config", conf], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out), "unhealthy: alpha_user has had no chat connection for 6m (reconnecting); last error: chat: cannot connect to tls://127.0.0.1:1: refused\n");
    // TWITCH_CONF_FILE is honoured too
    let out = bot_command()
        .arg("--health-check")
        .env("TWITCH_CONF_FILE", conf)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn sighup_reloads_at_once_and_reopens_the_log_file() {
    let dir = temp_dir("live-hup");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("alpha_user", TOKEN_A, &["a_chan"], true)],
    );
    let log_file = dir.join("bot.log");
    let mut bot = Bot::start_with(&fake, &config, &[("LOG_FILE", log_file.to_str().unwrap())]);
    assert!(joined(&fake, "alpha_user", &["a_chan"]));
    assert!(bot.wait_log("joined", 1));
    // logrotate moves the file away, then signals
    let rotated = dir.join("bot.log.1");
    std::fs::rename(&log_file, &rotated).unwrap();
    signal(&bot, "HUP");
    assert!(bot.wait_log("SIGHUP: reloading the config and reopening the log file", 1));
    assert!(bot.wait_log("config reloaded", 1), "{}", bot.output());
    assert!(
        bot.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the bot"
    );
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(old.contains("\"msg\":\"joined\""), "{old}");
    let new = std::fs::read_to_string(&log_file).unwrap();
    assert!(new.contains("SIGHUP: reloading"), "{new}");
    for line in old.lines().chain(new.lines()) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(v["ts"].is_string() && v["msg"].is_string());
    }
    // it still works after the signal
    fake.privmsg("a_chan", "alpha_user", "111", "hi");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
    assert_no_secrets(&std::fs::read_to_string(&log_file).unwrap());
}

#[test]
fn check_lists_every_problem_and_what_would_run() {
    let dir = temp_dir("live-check");
    let config = dir.join("c.conf");
    let conf = config.to_str().unwrap();
    std::fs::write(
        &config,
        json!({"users": [
            {"username": "good_user", "client_id": "abc123", "channels": ["#One", "two"]},
            {"username": "your_username_1", "client_id": "0123456789abcdefghijklmnopqrst", "channels": [], "enabled": "no"},
        ]})
        .to_string(),
    )
    .unwrap();
    let out = cli(
        &["check", "--config", conf],
        &[
            ("TWITCH_IRC_URL", "http://x"),
            ("LOG_FORMAT", "xml"),
            ("DEBUG", "maybe"),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let report = text(&out);
    for want in [
        "good_user: channels #one, #two; chat over IRC; random hex colors; automatic changes on; no token yet (device-code flow at start); public client",
        "users[1] (your_username_1): field \"username\" still holds the example placeholder \"your_username_1\"",
        "users[1] (your_username_1): field \"client_id\" still holds the example placeholder \"0123456789abcdefghijklmnopqrst\"",
        "users[1] (your_username_1): field \"channels\" is empty",
        "users[1] (your_username_1): field \"enabled\" must be true or false",
        "environment variable TWITCH_IRC_URL: \"http://x\": expected tls://host:port",
        "environment variable LOG_FORMAT=\"xml\": expected text, json, journal or procd (using text)",
        "environment variable DEBUG=\"maybe\": expected true or false",
        "7 problem(s):",
    ] {
        assert!(report.contains(want), "missing {want:?} in:\n{report}");
    }
    // the environment's users count too, and a clean config exits 0
    std::fs::write(
        &config,
        json!({"users": [{"username": "good_user", "client_id": "abc123", "channels": ["one"]}]})
            .to_string(),
    )
    .unwrap();
    let out = cli(
        &["check", "--config", conf],
        &[
            ("TWITCH_USERNAME_1", "env_user"),
            ("TWITCH_CLIENT_ID_1", "cid"),
            ("USE_RANDOM_COLORS_1", "false"),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report = text(&out);
    assert!(
        report.contains("env_user: channels #env_user; chat over IRC; random named colors"),
        "{report}"
    );
    assert!(report.contains("no problems found"), "{report}");
    assert_eq!(
        std::fs::read_to_string(&config)
            .unwrap()
            .matches("env_user")
            .count(),
        0,
        "check writes nothing"
    );
}

#[test]
fn an_edit_saved_just_before_the_bots_own_write_still_applies() {
    let (fake, config, bot) = alpha("live-merged", &["a_chan"]);
    // the person adds a channel; within the debounce the bot saves "enabled" (ccd), re-reading
    // the file first, so the file then holds both: it must not be dismissed as the bot's own
    edit_in_place(&config, |doc| channels(doc, 0, &["a_chan", "b_chan"]));
    fake.privmsg("a_chan", "alpha_user", "111", "ccd");
    assert!(joined(&fake, "alpha_user", &["b_chan"]), "{}", bot.output());
    assert!(bot.wait_log("saved \"enabled\": false", 1));
    let doc = read_config(&config);
    assert_eq!(doc["users"][0]["enabled"], json!(false));
    assert_eq!(doc["users"][0]["channels"], json!(["a_chan", "b_chan"]));
    assert_eq!(fake.state().logins("alpha_user"), 1);
}

/// What systemd would hear on `$NOTIFY_SOCKET`, each datagram as one string (bounded wait).
struct Systemd(std::os::unix::net::UnixDatagram);

impl Systemd {
    fn listen(path: &Path) -> Systemd {
        let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
        socket.set_read_timeout(Some(WAIT)).unwrap();
        Systemd(socket)
    }

    /// Reads datagrams until one is `want`; returns those before it.
    fn until(&self, want: &str) -> Vec<String> {
        let mut before = Vec::new();
        let mut buf = [0; 512];
        loop {
            let n = self
                .0
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want:?} after {before:?}: {e}"));
            let said = String::from_utf8_lossy(&buf[..n]).into_owned();
            if said == want {
                return before;
            }
            before.push(said);
        }
    }
}

#[test]
fn under_systemd_the_bot_says_ready_reloading_stopping_and_status_and_feeds_the_watchdog() {
    // the socket first, in a directory of its own: the bot tells systemd as it starts
    let socket = temp_dir("live-notify-socket").join("notify.sock");
    let systemd = Systemd::listen(&socket);
    let (_fake, _, bot) = alpha_with(
        "live-notify",
        &["a_chan"],
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
            ("LOG_FORMAT", "journal"),
        ],
    );
    // (datagrams wait in the socket: READY=1 came before the join `alpha_with` waited for)
    systemd.until("READY=1");
    let said = systemd.until("STATUS=1 of 1 user(s) in chat");
    assert!(
        said.iter()
            .all(|s| s == "WATCHDOG=1" || s.starts_with("STATUS=0 of 1")),
        "{said:?}"
    );
    // fed at half of WATCHDOG_USEC: a few more while nothing else happens
    for _ in 0..3 {
        systemd.until("WATCHDOG=1");
    }
    signal(&bot, "HUP");
    systemd.until("RELOADING=1");
    systemd.until("READY=1");
    assert!(bot.wait_log("config reloaded", 1), "{}", bot.output());
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    systemd.until("STOPPING=1\nSTATUS=stopping: saving tokens");
    // the journal stamps its own time: each line starts with its priority instead
    assert!(output.lines().count() > 3);
    for line in output.lines() {
        let priority = line.get(..3).unwrap_or(line);
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&priority) && !line[3..].starts_with("20"),
            "{line}"
        );
    }
    assert!(
        output.contains("<6>INFO  [alpha_user #a_chan] joined"),
        "{output}"
    );
}
