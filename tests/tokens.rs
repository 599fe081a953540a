//! Unattended tokens, end to end: the real binary against the fake Twitch's OAuth endpoints.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use twitch_colorchanger::fake::FakeTwitch;

const CLIENT: &str = "fakeclientid0000000000000000000";

fn config_user(path: &Path, index: usize) -> Value {
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["users"][index].clone()
}

/// Waits for a device code to be handed out, checks the person was told about it, approves it.
fn approve_when_asked(fake: &FakeTwitch, bot: &Bot, login: &str) {
    approve_as(fake, bot, login, login)
}

/// The same, approving as `approver` (logged in to Twitch as that account).
fn approve_as(fake: &FakeTwitch, bot: &Bot, login: &str, approver: &str) {
    assert!(
        fake.wait(WAIT, |s| s
            .devices
            .iter()
            .any(|d| d.approved.is_none() && !d.spent)),
        "{}",
        bot.output()
    );
    let user_code = fake.state().devices.last().unwrap().user_code.clone();
    assert!(
        bot.wait_log(&format!("ACTION REQUIRED: authorise twitch-colorchanger for {login}: open https://www.twitch.tv/activate?public=true&device-code={user_code} and enter code {user_code} (valid 30 minutes)"), 1),
        "{}",
        bot.output()
    );
    assert!(fake.approve_device(approver));
}

fn no_device_codes_in(fake: &FakeTwitch, output: &str) {
    for device in &fake.state().devices {
        assert!(
            !output.contains(&device.device_code),
            "device code leaked:\n{output}"
        );
    }
    for (access, refresh) in &fake.state().issued {
        assert!(
            !output.contains(access) && !output.contains(refresh),
            "token leaked:\n{output}"
        );
    }
}

#[test]
fn first_start_with_only_a_client_id_authorises_saves_and_changes_colors() {
    let dir = temp_dir("firststart");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, None);
    fake.add_user("new_user", "55", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [{"username": "new_user", "client_id": CLIENT, "channels": ["chan"], "own_note": 1}]}).to_string(),
    )
    .unwrap();
    let bot = Bot::start(&fake, &config);
    approve_when_asked(&fake, &bot, "new_user");
    assert!(joined(&fake, "new_user", &["chan"]), "{}", bot.output());
    // the first authorisation is what a new user expects, not an error, and not "again"
    let first = bot.output();
    assert!(
        first.contains("no tokens yet: authorise this bot once; starting the device-code flow"),
        "{first}"
    );
    assert!(
        !first.contains(" ERROR ") && !first.contains("authorise again"),
        "{first}"
    );
    // a file others may read is warned about for what it will hold, not what it holds
    assert!(
        bot.output().contains(
            "readable by every user of this machine and will hold your tokens once you authorise"
        ),
        "{}",
        bot.output()
    );

    // the pair Twitch issued is in the file, with its expiry, next to what was there
    let (access, refresh) = fake.state().issued.last().cloned().unwrap();
    let saved = config_user(&config, 0);
    assert_eq!(
        (
            saved["access_token"].as_str(),
            saved["refresh_token"].as_str()
        ),
        (Some(access.as_str()), Some(refresh.as_str()))
    );
    let expiry =
        twitch_colorchanger::time::parse_rfc3339(saved["token_expiry"].as_str().unwrap()).unwrap();
    let left = expiry.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(14_000) && left <= Duration::from_secs(14_400),
        "{left:?}"
    );
    assert_eq!(saved["own_note"], 1);

    fake.privmsg("chan", "new_user", "55", "first message");
    assert!(
        fake.wait(WAIT, |s| s.changes("55").len() == 1),
        "{}",
        bot.output()
    );
    // a public client never sends a secret; the device request asked for the bot's scopes
    assert!(fake.state().oauth.iter().all(|c| !c.sent_secret));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    no_device_codes_in(&fake, &output);
}

#[test]
fn expired_access_token_is_refreshed_saved_and_the_change_retried() {
    let dir = temp_dir("expired");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, Some(SECRET)); // confidential: refreshing needs the secret
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]));

    fake.expire_access_token("hueshift_bot");
    fake.privmsg("chan", "hueshift_bot", "81234567", "hi");
    assert!(
        fake.wait(WAIT, |s| s.changes("81234567").len() == 1),
        "{}",
        bot.output()
    );
    let puts = fake.state().puts.clone();
    assert_eq!(
        (puts[0].status, puts[1].status),
        (401, 204),
        "401, refresh, retried once"
    );
    assert_eq!(puts[0].color, puts[1].color);

    let state = fake.state();
    let refreshes: Vec<_> = state
        .oauth
        .iter()
        .filter(|c| c.grant_type.as_deref() == Some("refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 1, "one refresh");
    assert!(
        refreshes[0].sent_secret && refreshes[0].status == 200,
        "confidential client sends its secret"
    );
    let (access, refresh) = state.issued.last().cloned().unwrap();
    drop(state);
    let saved = config_user(&config, 0);
    assert_eq!(
        (
            saved["access_token"].as_str(),
            saved["refresh_token"].as_str()
        ),
        (Some(access.as_str()), Some(refresh.as_str()))
    );
    assert_eq!(
        saved["client_secret"], SECRET,
        "the rest of the entry is unchanged"
    );

    // the IRC connection uses the new token at its next connect
    fake.drop_all();
    assert!(
        fake.wait(WAIT, |s| s.logins("hueshift_bot") == 2),
        "{}",
        bot.output()
    );
    let pass = format!("PASS oauth:{access}");
    assert!(fake.state().irc.last().unwrap().lines.contains(&pass));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert!(output.contains("access token refreshed"), "{output}");
    assert_no_secrets(&output);
    no_device_codes_in(&fake, &output);
}

#[test]
fn a_refused_refresh_token_falls_back_to_the_device_flow() {
    let dir = temp_dir("badrefresh");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, None);
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, false);
    fake.set_refresh_token("hueshift_bot", "a-refresh-token-twitch-has-rotated-away");
    fake.expire_access_token("hueshift_bot");
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], false)],
    );
    let bot = Bot::start(&fake, &config);
    approve_when_asked(&fake, &bot, "hueshift_bot");
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    fake.privmsg("chan", "hueshift_bot", "81234567", "back");
    assert!(fake.wait(WAIT, |s| s.changes("81234567").len() == 1));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert!(
        output.contains("Twitch refused the refresh token (Invalid refresh token)"),
        "{output}"
    );
    assert_no_secrets(&output);
    no_device_codes_in(&fake, &output);
}

#[test]
fn a_token_of_another_account_or_without_the_scope_is_a_clear_error() {
    let dir = temp_dir("wrongtoken");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("someone_else", "9", TOKEN_A, true);
    fake.add_user("scopeless", "8", TOKEN_B, true);
    fake.update(|s| s.users[1].scopes = vec!["chat:read".into()]);
    fake.add_user("alice_user", "7", "", true);
    let config = write_config(
        &dir,
        vec![
            user_entry("alice_user", TOKEN_A, &["chan"], true),
            user_entry("scopeless", TOKEN_B, &["chan"], true),
        ],
    );
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log(
            "[alice_user] the access token belongs to \"someone_else\", not to \"alice_user\"",
            1
        ),
        "{}",
        bot.output()
    );
    assert!(bot.wait_log("[scopeless] the access token lacks the user:manage:chat_color scope (it has: chat:read)", 1), "{}", bot.output());
    // both are sent to the device flow rather than started with a token that cannot work
    assert!(bot.wait_log("ACTION REQUIRED", 2));
    assert_eq!(fake.state().logins("someone_else"), 0);
    drop(bot);
}

#[test]
fn setup_authorises_users_that_need_it_and_exits() {
    let dir = temp_dir("setup");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, None);
    fake.add_user("first_user", "1", "", true);
    fake.add_user("second_user", "2", TOKEN_B, true); // already fine: left alone
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [
            {"username": "first_user", "client_id": CLIENT, "channels": ["a"]},
            {"username": "second_user", "client_id": CLIENT, "access_token": TOKEN_B, "channels": ["b"]}
        ]})
        .to_string(),
    )
    .unwrap();
    let mut cmd = bot_command();
    cmd.args(["setup", "--config"]).arg(&config);
    let bot = Bot::spawn(&fake, cmd);
    approve_when_asked(&fake, &bot, "first_user");
    let mut bot = bot;
    let status = wait_exit(&mut bot.child, WAIT);
    assert_eq!(status.code(), Some(0), "{}", bot.output());
    let (access, _) = fake.state().issued.last().cloned().unwrap();
    assert_eq!(config_user(&config, 0)["access_token"], access.as_str());
    assert_eq!(config_user(&config, 1)["access_token"], TOKEN_B);
    assert_eq!(
        fake.state().devices.len(),
        1,
        "no code for the user that was fine"
    );
    assert!(bot.wait_log("[first_user] setup: authorised, tokens saved", 1));
    no_device_codes_in(&fake, &bot.output());
}

#[test]
fn setup_gives_up_after_three_declined_codes_and_says_so() {
    let dir = temp_dir("setupdeny");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("shy_user", "1", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [{"username": "shy_user", "client_id": CLIENT, "channels": ["a"]}]})
            .to_string(),
    )
    .unwrap();
    let mut cmd = bot_command();
    cmd.args(["setup", "--config"]).arg(&config);
    let mut bot = Bot::spawn(&fake, cmd);
    for round in 1..=3 {
        assert!(
            fake.wait(WAIT, |s| s.devices.len() == round
                && !s.devices[round - 1].denied),
            "{}",
            bot.output()
        );
        assert!(fake.deny_device());
    }
    let status = wait_exit(&mut bot.child, WAIT);
    assert_eq!(status.code(), Some(1), "{}", bot.output());
    assert!(bot.wait_log("[shy_user] setup failed: authorisation failed 3 times, last: the authorisation was declined", 1), "{}", bot.output());
}

/// A config naming `client_id` for `login`, who has no tokens yet, with the fake knowing only
/// `CLIENT`.
fn unknown_client(name: &str, login: &str) -> (FakeTwitch, std::path::PathBuf) {
    let dir = temp_dir(name);
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, None);
    fake.add_user(login, "1", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    let user = json!({"username": login, "client_id": "notmyappsid0000000000000000000", "channels": ["a"]});
    std::fs::write(&config, json!({ "users": [user] }).to_string()).unwrap();
    (fake, config)
}

#[test]
fn an_unknown_client_id_is_named_once_and_an_edit_of_it_starts_the_device_flow() {
    let (fake, config) = unknown_client("unknownclient", "new_user");
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("Twitch refuses to start the device-code flow", 1),
        "{}",
        bot.output()
    );
    let output = bot.output();
    let said: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("[new_user] Twitch refuses to start the device-code flow"))
        .collect();
    assert_eq!(said.len(), 1, "{output}");
    assert!(
        said[0].contains(" ERROR ")
            && said[0].contains("(HTTP 400: invalid client)")
            && said[0].contains(&format!(
                "check \"client_id\" of this user in {}",
                config.display()
            ))
            && said[0].contains("no device code until it changes"),
        "{}",
        said[0]
    );
    assert!(!output.contains("new code in"), "{output}");
    // the right client id, saved: the device flow starts at once, and the user gets in
    edit_in_place(&config, |doc| doc["users"][0]["client_id"] = json!(CLIENT));
    approve_when_asked(&fake, &bot, "new_user");
    assert!(joined(&fake, "new_user", &["a"]), "{}", bot.output());
    let asked = |id: &str| {
        let s = fake.state();
        let n = s
            .oauth
            .iter()
            .filter(|c| c.path.ends_with("/device") && c.client_id.as_deref() == Some(id))
            .count();
        n
    };
    assert_eq!(
        asked("notmyappsid0000000000000000000"),
        1,
        "one try an hour, not one a minute"
    );
    assert_eq!(asked(CLIENT), 1);
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
}

#[test]
fn setup_with_an_unknown_client_id_says_so_at_once_and_exits_1() {
    let (fake, config) = unknown_client("setupclient", "new_user");
    let mut cmd = bot_command();
    cmd.args(["setup", "--config"]).arg(&config);
    let mut bot = Bot::spawn(&fake, cmd);
    let status = wait_exit(&mut bot.child, WAIT);
    assert_eq!(status.code(), Some(1), "{}", bot.output());
    let output = bot.output();
    assert!(
        output.contains("[new_user] setup failed: Twitch refuses to start the device-code flow for this app (HTTP 400: invalid client): check \"client_id\""),
        "{output}"
    );
    assert!(
        !output.contains("new code in"),
        "no codes asked for in a row: {output}"
    );
    assert_eq!(
        fake.state()
            .oauth
            .iter()
            .filter(|c| c.path.ends_with("/device"))
            .count(),
        1
    );
}

#[test]
fn approving_with_the_wrong_account_is_refused_and_asked_again() {
    let dir = temp_dir("wrongaccount");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("right_user", "1", "", true);
    fake.add_user("wrong_user", "2", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [{"username": "right_user", "client_id": CLIENT, "channels": ["a"]}]})
            .to_string(),
    )
    .unwrap();
    let bot = Bot::start(&fake, &config);
    approve_as(&fake, &bot, "right_user", "wrong_user");
    assert!(
        bot.wait_log(
            "Twitch account \"wrong_user\" approved the code, but this entry is for \"right_user\"",
            1
        ),
        "{}",
        bot.output()
    );
    assert!(
        config_user(&config, 0).get("access_token").is_none(),
        "the wrong account's token is not saved"
    );
    drop(bot);
}

/// This test binary, running only [`refresh_loop_child`] on `config` against `fake`.
fn refresh_child(fake: &FakeTwitch, config: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "refresh_loop_child",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TCC_CHILD_CONFIG", config)
    .env("TWITCH_AUTH_URL", fake.auth_url())
    .env("TWITCH_CA_FILE", fake.ca_file())
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd
}

/// The child side of the SIGKILL test: refreshes and saves in a loop, for ever.
#[test]
#[ignore = "child process of refresh_survives_sigkill_at_any_moment"]
fn refresh_loop_child() {
    use std::sync::Arc;
    use twitch_colorchanger::{clock, config, endpoint, http, oauth, tokens, transport};
    let Ok(path) = std::env::var("TCC_CHILD_CONFIG") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let leftovers = config::sweep_temp_files(&path); // as the bot does at start-up
    let cfg = config::load(&path).unwrap();
    let auth = endpoint::parse_url(&std::env::var("TWITCH_AUTH_URL").unwrap()).unwrap();
    let ca = std::env::var("TWITCH_CA_FILE").unwrap();
    let clock: Arc<dyn clock::Clock> = Arc::new(clock::SystemClock);
    let tls = transport::tls_config(Some(Path::new(&ca))).unwrap();
    let net: Arc<dyn transport::Transport> =
        Arc::new(transport::NetTransport::new(tls, clock.clone()));
    let client = Arc::new(http::HttpClient::new(
        net,
        clock.clone(),
        Duration::from_secs(10),
    ));
    let oauth = Arc::new(oauth::OAuth::new(client, auth.endpoint, auth.path));
    // the token rules themselves, driven here by hand: refresh, save, refresh, … for ever
    use tokens::{Purpose, TokenAction, TokenCore, TokenEvent};
    let user = &cfg.users[0];
    let spares = config::spare_refresh_tokens(&leftovers, &user.username, &user.refresh_token);
    let mut core = TokenCore::new(user, &path, spares, Some(1));
    // with TCC_PAUSE_BEFORE_RENAME=MARKER, each save writes MARKER and waits in the window
    // between the complete, fsynced temp file and the rename, for the parent to kill it there
    let file = config::ConfigFile::new(&path).before_rename(|_| {
        if let Some(marker) = std::env::var_os("TCC_PAUSE_BEFORE_RENAME") {
            let _ = std::fs::write(marker, b"paused");
            std::thread::sleep(Duration::from_secs(30));
        }
    });
    let app = oauth::AppCredentials {
        id: user.client_id.clone(),
        secret: user.client_secret.clone(),
    };
    smol::block_on(async {
        loop {
            let (now, wall) = (clock.now(), clock.wall());
            while let Some(event) = core.poll_event() {
                assert!(!matches!(event, TokenEvent::GaveUp(_)), "{event:?}");
            }
            match core.poll_action() {
                Some(TokenAction::Validate(token)) => {
                    let answer = oauth.validate(&token).await;
                    core.handle_validated(now, wall, answer);
                }
                Some(TokenAction::Refresh(refresh)) => {
                    let answer = oauth.refresh(&app, &refresh).await;
                    core.handle_refreshed(now, wall, answer);
                }
                Some(TokenAction::Save(pair)) => {
                    let saved = file.save_tokens(
                        &user.username,
                        &pair.access,
                        &pair.refresh,
                        pair.expires_at,
                    );
                    core.handle_saved(now, saved);
                }
                Some(other) => panic!("the fake accepts every refresh, yet: {other:?}"),
                None => {
                    let stale = core.access().clone();
                    core.handle_refused(now, Purpose::Color, &stale, None);
                }
            }
        }
    });
}

#[test]
fn a_kill_between_save_and_rename_never_locks_the_user_out() {
    // strict rotation: each refresh token works once, as Twitch's do
    let (fake, dir, config) = hueshift("sigkill-window");
    let marker = dir.join("paused");
    let kills = 8;
    for kill in 0..=kills {
        let _ = std::fs::remove_file(&marker);
        let issued_before = fake.state().issued.len();
        let mut cmd = refresh_child(&fake, &config);
        if kill < kills {
            // Twitch has rotated, the new pair is fsynced in the temp file, the rename is next
            cmd.env("TCC_PAUSE_BEFORE_RENAME", &marker);
        }
        let mut child = cmd.spawn().unwrap();
        if kill < kills {
            assert!(
                fake.wait(WAIT, |s| s.issued.len() > issued_before && marker.exists()),
                "kill {kill}: the child could not refresh: the user is locked out"
            );
            child.kill().unwrap();
            child.wait().unwrap();
            // the config still holds the pair Twitch has just revoked
            assert_ne!(
                config_user(&config, 0)["refresh_token"],
                fake.state().issued.last().unwrap().1.as_str()
            );
        } else {
            assert!(
                fake.wait(WAIT, |s| s.issued.len() >= issued_before + 3),
                "the last child could not refresh: the user is locked out"
            );
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
    let pair = (
        config_user(&config, 0)["access_token"]
            .as_str()
            .unwrap()
            .to_owned(),
        config_user(&config, 0)["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let state = fake.state();
    assert!(
        state.issued.contains(&pair),
        "the file holds a pair Twitch issued: {pair:?}"
    );
    let refused = state
        .oauth
        .iter()
        .filter(|c| c.grant_type.as_deref() == Some("refresh_token") && c.status != 200)
        .count();
    assert_eq!(
        refused, kills,
        "exactly one refused (revoked) token per kill, each recovered"
    );
}

#[test]
fn refresh_survives_sigkill_at_any_moment() {
    let dir = temp_dir("sigkill");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.update(|s| s.lenient_refresh = true); // a pair lost to a kill must not stop the next child
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let kills = 40;
    let mut seen_new = 0;
    for _ in 0..kills {
        let mut child = refresh_child(&fake, &config).spawn().unwrap();
        // let it refresh a few times, then kill it somewhere in the middle of whatever it does
        let issued_before = fake.state().issued.len();
        assert!(
            fake.wait(WAIT, |s| s.issued.len() >= issued_before + 3),
            "the child makes progress"
        );
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let pause = Instant::now() + Duration::from_micros(seed % 20_000);
        while Instant::now() < pause {
            std::hint::spin_loop();
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let text = std::fs::read_to_string(&config).unwrap();
        let doc: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("config unreadable after a kill ({e}):\n{text}"));
        let user = &doc["users"][0];
        let pair = (
            user["access_token"].as_str().unwrap().to_owned(),
            user["refresh_token"].as_str().unwrap().to_owned(),
        );
        let state = fake.state();
        let known =
            pair == (TOKEN_A.to_owned(), REFRESH.to_owned()) || state.issued.contains(&pair);
        assert!(
            known,
            "after a kill the file holds a pair Twitch never issued together: {pair:?}"
        );
        if pair.0 != TOKEN_A {
            seen_new += 1;
        }
        assert_eq!(user["username"], "hueshift_bot");
        assert_eq!(user["client_secret"], SECRET);
    }
    assert!(
        seen_new > kills / 2,
        "the children saved new pairs ({seen_new} of {kills})"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    // a kill between writing and renaming may leave a temp file; it never replaces the config
    assert!(leftovers.len() <= kills, "{leftovers:?}");
}

#[test]
fn a_pair_left_in_a_temp_file_by_an_interrupted_save_is_recovered() {
    // A process was killed after Twitch rotated the pair and the new config was written to
    // its temp file, but before the rename: the file holds the revoked refresh token.
    let dir = temp_dir("leftover");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    let newer = "refreshnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn7";
    fake.set_refresh_token("hueshift_bot", newer);
    fake.expire_access_token("hueshift_bot");
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let mut left = config_user(&config, 0);
    left["refresh_token"] = json!(newer);
    let temp = dir.join(".twitch_colorchanger.conf.tmp.4242.00000000deadbeef");
    std::fs::write(&temp, json!({ "users": [left] }).to_string()).unwrap();
    let torn = dir.join(".twitch_colorchanger.conf.tmp.4242.00000000feedface");
    std::fs::write(&torn, "{\"users\": [{\"username\": \"hue").unwrap();

    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    assert!(fake.state().devices.is_empty(), "no device flow needed");
    let saved = config_user(&config, 0);
    assert!(
        fake.state()
            .issued
            .iter()
            .any(|(_, r)| saved["refresh_token"] == *r),
        "the newly issued pair is saved: {saved}"
    );
    assert!(!temp.exists() && !torn.exists(), "leftovers removed");
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert!(output.contains("interrupted save"), "{output}");
    no_device_codes_in(&fake, &output);
    assert!(!output.contains(newer));
}

#[test]
fn setup_that_cannot_save_says_so_and_exits_1() {
    let dir = temp_dir("setupnosave");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, None);
    fake.add_user("first_user", "1", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [{"username": "first_user", "client_id": CLIENT, "channels": ["a"]}]})
            .to_string(),
    )
    .unwrap();
    let mut cmd = bot_command();
    cmd.args(["setup", "--config"]).arg(&config);
    let bot = Bot::spawn(&fake, cmd);
    // while the person approves, the file goes away (a wrong mount, a cleanup script)
    assert!(
        fake.wait(WAIT, |s| !s.devices.is_empty()),
        "{}",
        bot.output()
    );
    std::fs::remove_file(&config).unwrap();
    approve_when_asked(&fake, &bot, "first_user");
    let mut bot = bot;
    let status = wait_exit(&mut bot.child, WAIT);
    assert_eq!(status.code(), Some(1), "{}", bot.output());
    let output = bot.output();
    assert!(
        output.contains("[first_user] authorised, but the tokens could not be saved to"),
        "{output}"
    );
    assert!(
        output.contains("[first_user] setup failed: authorised, but the tokens could not be saved"),
        "{output}"
    );
    assert!(!output.contains("tokens saved to"), "{output}");
    assert!(
        !output.contains("setup: authorised, tokens saved"),
        "{output}"
    );
    no_device_codes_in(&fake, &output);
}

#[test]
fn sigterm_during_a_refresh_waits_for_the_answer_and_saves_it() {
    let (fake, _, config) = hueshift("termrefresh");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    // Twitch rotates the pair at once but its answer is slow to arrive
    fake.update(|s| s.token_delay = Duration::from_millis(700));
    fake.expire_access_token("hueshift_bot");
    fake.privmsg("chan", "hueshift_bot", "1", "hi");
    assert!(
        fake.wait(WAIT, |s| s
            .oauth
            .iter()
            .any(|c| c.grant_type.as_deref() == Some("refresh_token"))),
        "{}",
        bot.output()
    );
    let (status, took, output) = bot.terminate();
    assert!(status.success(), "{output}");
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    let (_, refresh) = fake.state().issued.last().cloned().unwrap();
    assert_eq!(
        config_user(&config, 0)["refresh_token"],
        refresh.as_str(),
        "the rotated pair is saved:\n{output}"
    );
    assert!(
        output.contains("waiting (at most 2s) for a token refresh to be saved"),
        "{output}"
    );
}

#[test]
fn a_refused_chat_login_with_a_valid_token_does_not_rotate_it() {
    let dir = temp_dir("chatrefused");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    fake.update(|s| s.irc_refused.insert("hueshift_bot".into()));
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log(
            "chat login refused: Twitch says the access token is valid",
            1
        ),
        "{}",
        bot.output()
    );
    let state = fake.state();
    let refreshes = state
        .oauth
        .iter()
        .filter(|c| c.grant_type.as_deref() == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 0, "a valid token is not rotated");
    let validations = state
        .oauth
        .iter()
        .filter(|c| c.path.ends_with("/validate"))
        .count();
    assert_eq!(validations, 2, "validated at start and after the refusal");
    drop(state);
    assert_eq!(config_user(&config, 0)["refresh_token"], REFRESH);
    // the wait before the next try is the longest step, not a quick loop
    assert!(bot.wait_log("reconnecting to chat in ", 1));
    let output = bot.output();
    let wait: f64 = output
        .split("reconnecting to chat in ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|n| n.parse().ok())
        .expect("a reconnect delay");
    assert!(wait >= 90.0, "{output}");
}

#[test]
fn an_access_token_with_a_line_break_is_not_used_and_the_refresh_token_is() {
    let dir = temp_dir("crlf");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    let mut entry = user_entry(
        "hueshift_bot",
        "tok\r\nPRIVMSG #chan :injected",
        &["chan"],
        true,
    );
    entry["refresh_token"] = json!(REFRESH);
    let config = write_config(&dir, vec![entry]);
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    let output = bot.output();
    assert!(
        output.contains("field \"access_token\" in the config holds characters no token has"),
        "{output}"
    );
    assert!(
        fake.state().devices.is_empty(),
        "the refresh token was enough"
    );
    assert!(!fake
        .state()
        .irc
        .iter()
        .any(|c| c.lines.iter().any(|l| l.contains("injected"))));
    let (access, refresh) = fake.state().issued.last().cloned().unwrap();
    assert_eq!(config_user(&config, 0)["access_token"], access.as_str());
    assert_eq!(config_user(&config, 0)["refresh_token"], refresh.as_str());
}

#[test]
fn no_token_secret_or_device_code_appears_in_any_output_over_the_whole_lifecycle() {
    let dir = temp_dir("secrets");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, Some(SECRET)); // confidential: the secret is sent on every refresh
    fake.add_user("new_user", "55", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(
        &config,
        json!({"users": [{"username": "new_user", "client_id": CLIENT, "client_secret": SECRET, "channels": ["chan"]}]})
            .to_string(),
    )
    .unwrap();
    let json_debug = [("LOG_FORMAT", "json"), ("DEBUG", "true")];
    let mut outputs = Vec::new();

    // setup: the device flow
    let mut cmd = bot_command();
    cmd.args(["setup", "--config"])
        .arg(&config)
        .envs(json_debug);
    let mut setup = Bot::spawn(&fake, cmd);
    approve_when_asked(&fake, &setup, "new_user");
    assert_eq!(
        wait_exit(&mut setup.child, WAIT).code(),
        Some(0),
        "{}",
        setup.output()
    );
    assert!(setup.wait_log("setup: authorised, tokens saved", 1));
    outputs.push(setup.output());

    // the bot: a refresh after a 401, then a refused refresh and the device flow again
    let bot = Bot::start_with(&fake, &config, &json_debug);
    assert!(joined(&fake, "new_user", &["chan"]), "{}", bot.output());
    fake.expire_access_token("new_user");
    fake.privmsg("chan", "new_user", "55", "one");
    assert!(
        fake.wait(WAIT, |s| s.changes("55").len() == 1),
        "{}",
        bot.output()
    );
    fake.expire_access_token("new_user");
    fake.set_refresh_token(
        "new_user",
        "refreshnobodyhasnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn0",
    );
    fake.privmsg("chan", "new_user", "55", "two");
    approve_when_asked(&fake, &bot, "new_user");
    fake.privmsg("chan", "new_user", "55", "three");
    assert!(
        fake.wait(WAIT, |s| s.changes("55").len() >= 2),
        "{}",
        bot.output()
    );
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    outputs.push(output);
    outputs.push(std::fs::read_to_string(status_path(&config)).unwrap());

    assert!(
        fake.state().issued.len() >= 3,
        "setup, refresh and the second device flow issued pairs"
    );
    for output in &outputs {
        assert_no_secrets(output);
        no_device_codes_in(&fake, output);
        for line in output
            .lines()
            .filter(|l| l.starts_with('{') && l.contains("\"level\""))
        {
            serde_json::from_str::<Value>(line).unwrap();
        }
    }
}

#[test]
fn a_failed_save_of_a_refresh_after_a_401_is_retried_once_the_disk_is_back() {
    // the config in a directory of its own, which is gone while the new pair is saved (an
    // unmounted card, a read-only remount) and back a moment later
    let dir = temp_dir("resave");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.set_refresh_token("hueshift_bot", REFRESH);
    let home = dir.join("conf");
    std::fs::create_dir_all(&home).unwrap();
    let config = write_config(
        &home,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    let away = dir.join("conf-away");
    std::fs::rename(&home, &away).unwrap();
    fake.expire_access_token("hueshift_bot");
    fake.privmsg("chan", "hueshift_bot", "1", "hi");
    assert!(
        bot.wait_log("could not save the new tokens", 1),
        "{}",
        bot.output()
    );
    assert!(
        fake.wait(WAIT, |s| s.changes("1").len() == 1),
        "{}",
        bot.output()
    );
    std::fs::rename(&away, &home).unwrap();
    // the retry comes 5 s after the failure, not at the next hourly validation
    let (_, refresh) = fake.state().issued.last().cloned().unwrap();
    assert!(
        eventually(|| config_user(&config, 0)["refresh_token"] == refresh.as_str()),
        "{}",
        bot.output()
    );
    assert!(
        bot.wait_log("the tokens are saved to", 1),
        "{}",
        bot.output()
    );
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
    assert_no_secrets(&output);
}

#[test]
fn a_token_endpoint_refusing_the_app_is_said_once_and_keeps_the_refresh_token() {
    let (fake, _, config) = hueshift("app-refused");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    let refresh_before = config_user(&config, 0)["refresh_token"].clone();
    fake.update(|s| {
        s.token_script.push_back((
            403,
            r#"{"status":403,"message":"invalid client secret"}"#.into(),
        ))
    });
    fake.expire_access_token("hueshift_bot");
    fake.privmsg("chan", "hueshift_bot", "1", "one");
    assert!(bot.wait_log("color not changed", 1), "{}", bot.output());
    let output = bot.output();
    let said: Vec<&str> = output
        .lines()
        .filter(|l| l.contains("[hueshift_bot] Twitch refuses to renew tokens for this app"))
        .collect();
    assert_eq!(said.len(), 1, "{output}");
    assert!(
        said[0].contains("ERROR")
            && said[0].contains("HTTP 403: invalid client secret")
            && said[0].contains("\"client_id\" and \"client_secret\"")
            && said[0].contains("trying again hourly"),
        "{}",
        said[0]
    );
    // no device flow for a wrong secret, and the refresh token is kept
    assert!(!output.contains("ACTION REQUIRED"), "{output}");
    assert!(!output.contains("must authorise again"), "{output}");
    assert_eq!(config_user(&config, 0)["refresh_token"], refresh_before);
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
    assert_no_secrets(&output);
}

#[test]
fn a_token_endpoint_outage_during_a_refresh_is_retried_and_the_next_change_works() {
    let (fake, _, config) = hueshift("outage");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    fake.update(|s| {
        s.token_script.push_back((
            503,
            r#"{"error":"Service Unavailable","status":503,"message":"upstream down"}"#.into(),
        ))
    });
    fake.expire_access_token("hueshift_bot");
    fake.privmsg("chan", "hueshift_bot", "1", "one");
    assert!(bot.wait_log("color not changed", 1), "{}", bot.output());
    // the renewal is retried within seconds, with no new message to start it
    let renewed = |s: &twitch_colorchanger::fake::State| {
        s.oauth
            .iter()
            .filter(|c| c.grant_type.as_deref() == Some("refresh_token") && c.status == 200)
            .count()
            == 1
    };
    assert!(fake.wait(WAIT, renewed), "{}", bot.output());
    assert!(bot.wait_log("new tokens saved to", 1), "{}", bot.output());
    let output = bot.output();
    let failed = output
        .lines()
        .find(|l| l.contains("color not changed"))
        .unwrap();
    assert!(
        failed.contains("HTTP 503: upstream down") && failed.contains("trying again in"),
        "the real cause, not a refusal: {failed}"
    );
    assert!(!failed.contains("was refused"), "{failed}");
    // the next message finds a valid token: one PUT, which works
    let before = fake.state().puts.len();
    fake.privmsg("chan", "hueshift_bot", "1", "two");
    assert!(
        fake.wait(WAIT, |s| s.changes("1").len() == 1),
        "{}",
        bot.output()
    );
    let statuses: Vec<u16> = fake.state().puts[before..]
        .iter()
        .map(|p| p.status)
        .collect();
    assert_eq!(statuses, [204]);
    let (_, refresh) = fake.state().issued.last().cloned().unwrap();
    assert_eq!(config_user(&config, 0)["refresh_token"], refresh.as_str());
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
    assert_no_secrets(&output);
}
