//! End-to-end: the real binary against the fake Twitch on 127.0.0.1 (TLS IRC + HTTPS Helix).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use twitch_colorchanger::color;
use twitch_colorchanger::fake::FakeTwitch;

#[test]
fn own_message_changes_color_and_others_do_not() {
    let dir = temp_dir("own");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, true);
    fake.update(|s| s.users[0].color = Some("#1E90FF".into()));
    let config = write_config(
        &dir,
        vec![user_entry(
            "HueShift_Bot",
            TOKEN_A,
            &["#LumenWave", "second"],
            true,
        )],
    );
    let bot = Bot::start(&fake, &config);
    assert!(
        joined(&fake, "hueshift_bot", &["lumenwave", "second"]),
        "{}",
        bot.output()
    );

    // someone else talks: nothing happens
    fake.privmsg("lumenwave", "someone_else", "999", "hello");
    sync(&fake, "hueshift_bot", "after-other");
    assert!(!fake.wait(Duration::from_millis(300), |s| !s.puts.is_empty()));

    // our user talks (e.g. on the web site): one PUT with a new valid hex color
    fake.privmsg(
        "lumenwave",
        "hueshift_bot",
        "81234567",
        "hi from the website",
    );
    assert!(
        fake.wait(WAIT, |s| s.changes("81234567").len() == 1),
        "{}",
        bot.output()
    );
    let first = fake.state().puts[0].color.clone();
    assert!(
        color::is_hex(&first) && !color::same(&first, "#1E90FF"),
        "{first}"
    );

    // in the other channel too, and never the same color twice in a row
    fake.privmsg("second", "hueshift_bot", "81234567", "again");
    assert!(fake.wait(WAIT, |s| s.changes("81234567").len() == 2));
    let changes = fake.state().changes("81234567");
    assert!(!color::same(&changes[0], &changes[1]));
    assert!(bot.wait_log("color changed", 2));

    let (status, took, output) = bot.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?} to stop");
    assert!(
        output.contains("[HueShift_Bot #lumenwave] joined"),
        "{output}"
    );
    assert!(output.contains("color changed #1E90FF → "), "{output}");
    // the test's config is 0644: said once, at start
    assert_eq!(
        output
            .matches("is readable by every user of this machine")
            .count(),
        1
    );
    assert!(!output.contains("plain text"), "all endpoints are TLS here");
    assert_no_secrets(&output);
}

#[test]
fn two_users_run_independently() {
    let dir = temp_dir("two");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("alpha_user", "111", TOKEN_A, true);
    fake.add_user("beta_user", "222", TOKEN_B, false);
    let config = write_config(
        &dir,
        vec![
            user_entry("alpha_user", TOKEN_A, &["shared_chan"], true),
            user_entry("beta_user", TOKEN_B, &["shared_chan", "beta_home"], false),
        ],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "alpha_user", &["shared_chan"]));
    assert!(joined(&fake, "beta_user", &["shared_chan", "beta_home"]));

    // beta speaks where both are: only beta's color changes, to a named color
    fake.privmsg("shared_chan", "beta_user", "222", "hi");
    assert!(
        fake.wait(WAIT, |s| s.changes("222").len() == 1),
        "{}",
        bot.output()
    );
    let beta = fake.state().changes("222")[0].clone();
    assert!(color::NAMED.iter().any(|(n, _)| *n == beta), "{beta}");
    sync(&fake, "alpha_user", "a1");
    assert!(fake.state().changes("111").is_empty());

    // alpha speaks: alpha's changes, to a hex color
    fake.privmsg("shared_chan", "alpha_user", "111", "yo");
    assert!(fake.wait(WAIT, |s| s.changes("111").len() == 1));
    assert!(color::is_hex(&fake.state().changes("111")[0]));
    assert_eq!(fake.state().changes("222").len(), 1);
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn reconnects_after_a_drop_and_after_reconnect_and_answers_ping() {
    let dir = temp_dir("reconnect");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, false);
    let config = write_config(
        &dir,
        vec![user_entry(
            "hueshift_bot",
            TOKEN_A,
            &["a_chan", "b_chan"],
            false,
        )],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["a_chan", "b_chan"]));

    // PING → PONG with the same text
    sync(&fake, "hueshift_bot", "tmi.twitch.tv");

    // connection dropped without a word: reconnect and rejoin
    assert_eq!(fake.drop_all(), 1);
    assert!(
        fake.wait(WAIT, |s| s.logins("hueshift_bot") == 2),
        "{}",
        bot.output()
    );
    assert!(joined(&fake, "hueshift_bot", &["a_chan", "b_chan"]));

    // RECONNECT: reconnect and rejoin again
    assert_eq!(fake.reconnect_all(), 1);
    assert!(
        fake.wait(WAIT, |s| s.logins("hueshift_bot") == 3),
        "{}",
        bot.output()
    );
    assert!(joined(&fake, "hueshift_bot", &["a_chan", "b_chan"]));

    // and it still works
    fake.privmsg("b_chan", "hueshift_bot", "81234567", "still here");
    assert!(
        fake.wait(WAIT, |s| s.changes("81234567").len() == 1),
        "{}",
        bot.output()
    );
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert!(output.contains("server asked to reconnect"), "{output}");
    assert_no_secrets(&output);
}

#[test]
fn rejected_hex_switches_to_named_colors_and_saves_it() {
    let dir = temp_dir("fallback");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("no_prime_user", "333", TOKEN_A, false); // the fake refuses hex for this user
    let config = write_config(
        &dir,
        vec![
            user_entry("no_prime_user", TOKEN_A, &["chan"], true),
            user_entry("other_user", TOKEN_B, &["chan"], true),
        ],
    );
    let before: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "no_prime_user", &["chan"]));

    fake.privmsg("chan", "no_prime_user", "333", "hi");
    assert!(
        fake.wait(WAIT, |s| s.changes("333").len() == 1),
        "{}",
        bot.output()
    );
    let puts = fake.state().puts.clone();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert!(color::is_hex(&puts[0].color) && puts[0].status == 400);
    assert!(color::NAMED.iter().any(|(n, _)| *n == puts[1].color) && puts[1].status == 204);

    // the config now says so, and nothing else in it changed
    assert!(
        bot.wait_log("saved \"is_prime_or_turbo\": false", 1),
        "{}",
        bot.output()
    );
    let after: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    let mut want = before.clone();
    want["users"][0]["is_prime_or_turbo"] = Value::Bool(false);
    assert_eq!(after, want);

    // from now on named colors straight away
    fake.privmsg("chan", "no_prime_user", "333", "again");
    assert!(fake.wait(WAIT, |s| s.changes("333").len() == 2));
    let puts = fake.state().puts.clone();
    assert_eq!(puts.len(), 3);
    assert!(!color::is_hex(&puts[2].color));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn rate_limited_change_is_retried_once() {
    let dir = temp_dir("ratelimit");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]));
    fake.update(|s| {
        s.put_script.push_back((
            429,
            r#"{"error":"Too Many Requests","status":429,"message":"Too Many Requests"}"#.into(),
        ))
    });
    fake.privmsg("chan", "hueshift_bot", "81234567", "hi");
    assert!(
        fake.wait(WAIT, |s| s.changes("81234567").len() == 1),
        "{}",
        bot.output()
    );
    let puts = fake.state().puts.clone();
    assert_eq!((puts[0].status, puts[1].status), (429, 204));
    assert_eq!(puts[0].color, puts[1].color);
    drop(bot);
}

#[test]
fn a_refused_token_leads_to_the_device_flow_without_holding_up_others() {
    let dir = temp_dir("badtoken");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("bad_user", "2", "", true); // its config token and refresh token are unknown
    fake.add_user("good_user", "1", TOKEN_B, true);
    let config = write_config(
        &dir,
        vec![
            user_entry("bad_user", TOKEN_A, &["chan"], true),
            user_entry("good_user", TOKEN_B, &["chan"], true),
        ],
    );
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "good_user", &["chan"]));
    assert!(
        bot.wait_log("[bad_user] ACTION REQUIRED: authorise twitch-colorchanger for bad_user: open https://www.twitch.tv/activate", 1),
        "{}",
        bot.output()
    );
    assert!(bot
        .output()
        .contains("Twitch refused the refresh token (Invalid refresh token)"));
    fake.privmsg("chan", "good_user", "1", "hi");
    assert!(fake.wait(WAIT, |s| s.changes("1").len() == 1));
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn malformed_config_exits_2_with_file_line_and_column() {
    let dir = temp_dir("malformed");
    let path = dir.join("broken.conf");
    std::fs::write(
        &path,
        "{\n  \"users\": [\n    {\"username\": \"a\" \"x\"}\n  ]\n}\n",
    )
    .unwrap();
    let out = bot_command()
        .arg("--config")
        .arg(&path)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:22: invalid JSON: expected `,` or `}}`",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let dir = temp_dir("jsonlog");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "81234567", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start_with(&fake, &config, &[("LOG_FORMAT", "json")]);
    assert!(bot.wait_log("\"msg\":\"joined\"", 1), "{}", bot.output());
    let (status, _, text) = bot.terminate();
    assert!(status.success());
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    let joined_line = lines
        .iter()
        .find(|l| l["msg"] == "joined")
        .expect("a joined line");
    assert_eq!(joined_line["level"], "info");
    assert_eq!(joined_line["user"], "hueshift_bot");
    assert_eq!(joined_line["channel"], "chan");
    assert!(joined_line["ts"].as_str().unwrap().ends_with('Z'));
    assert!(!text.contains('\x1b'), "no color codes in JSON logs");
    assert_no_secrets(&text);
}

#[test]
fn missing_config_and_no_valid_user_exit_2() {
    let dir = temp_dir("missing");
    let run = |path: &Path| {
        bot_command()
            .env("TWITCH_CONF_FILE", path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let out = run(&dir.join("nope.conf"));
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("nope.conf: config file not found"), "{said}");
    // not a terminal: nothing is asked, and the message says how to create the file
    assert!(
        said.contains("To create it, run `twitch-colorchanger setup -c ")
            && said.contains("README's \"Quick start\""),
        "{said}"
    );
    assert!(!dir.join("nope.conf").exists());

    let path = write_config(
        &dir,
        vec![user_entry("ok_name", "your_token_here", &["c"], true)],
    );
    let out = run(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no valid user"), "{stderr}");
    assert!(
        stderr.contains(
            "users[0] (ok_name): field \"access_token\" still holds the example placeholder"
        ),
        "{stderr}"
    );
}

#[test]
fn sigterm_during_startup_exits_0_quickly() {
    let dir = temp_dir("startup");
    // nothing listens here: the bot is stuck retrying its first request
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["c"], true)],
    );
    let mut child = bot_command()
        .arg("--config")
        .arg(&config)
        .env("TWITCH_API_URL", "https://127.0.0.1:9/helix")
        .env("TWITCH_IRC_URL", "tls://127.0.0.1:9")
        .env("TWITCH_AUTH_URL", "https://127.0.0.1:9/oauth2")
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    stderr.read_line(&mut first).unwrap(); // it is running
    let start = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn version_names_commit_and_target() {
    let out = bot_command().arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!("twitch-colorchanger {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&want), "{text}");
    assert!(
        text.contains(", target ") && text.contains("-linux-"),
        "{text}"
    );
}

/// The container image's file tree, run as the image runs it: an empty root holding only
/// the binary, the license, `/config` (owned by the image's user) and `/etc/resolv.conf`;
/// no libc, no CA store, no `/tmp`; numeric non-root user. Needs root (chroot).
/// Run by `scripts/verify-release.sh` with `TCC_BIN` = a static x86_64 binary.
#[test]
#[ignore = "needs root and a static binary; run by scripts/verify-release.sh"]
fn scratch_root_smoke() {
    let bin = std::env::var("TCC_BIN").expect("TCC_BIN names a static binary");
    let dir = temp_dir("scratch");
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("config")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::copy(&bin, root.join("twitch-colorchanger")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/LICENSE"),
        root.join("LICENSE"),
    )
    .unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n").unwrap();

    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("scratch_user", "77", TOKEN_A, false); // hex refused: the bot must write /config
    std::fs::copy(fake.ca_file(), root.join("config/ca.pem")).unwrap();
    let config = write_config(
        &root.join("config"),
        vec![user_entry("scratch_user", TOKEN_A, &["chan"], true)],
    );
    let status = Command::new("chown")
        .args(["-R", "65532:65532"])
        .arg(root.join("config"))
        .status()
        .unwrap();
    assert!(status.success());
    let entries: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");

    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chroot is installed");
    let mut child = Command::new(chroot)
        .arg("--userspec=65532:65532")
        .arg(&root)
        .arg("/twitch-colorchanger")
        .env_clear()
        .env("TWITCH_CONF_FILE", "/config/twitch_colorchanger.conf")
        .env("TWITCH_CA_FILE", "/config/ca.pem")
        .env("TWITCH_IRC_URL", fake.irc_url())
        .env("TWITCH_API_URL", fake.api_url())
        .env("TWITCH_AUTH_URL", fake.auth_url())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let ok = joined(&fake, "scratch_user", &["chan"]);
    if ok {
        fake.privmsg("chan", "scratch_user", "77", "hi from a scratch container");
    }
    let changed = ok && fake.wait(WAIT, |s| s.changes("77").len() == 1);
    let saved = changed
        && fake.wait(WAIT, |_| {
            std::fs::read_to_string(&config)
                .is_ok_and(|t| t.contains("\"is_prime_or_turbo\": false"))
        });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    let mut output = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut output).unwrap();
    assert!(
        ok && changed && saved,
        "joined {ok}, changed {changed}, saved {saved}:\n{output}"
    );
    assert!(status.success(), "{status:?}\n{output}");
    assert_no_secrets(&output);
}

#[test]
fn a_fifo_config_is_refused_at_once_with_a_clear_message() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("twitch_colorchanger.conf");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = bot_command()
        .arg("--config")
        .arg(&fifo)
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(5));
    assert_eq!(status.code(), Some(2));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        err.contains(&format!(
            "{}: not a regular file (a FIFO): give the path of the JSON config file",
            fifo.display()
        )),
        "{err}"
    );
}

#[test]
fn server_text_reaches_the_log_escaped_and_capped() {
    let (fake, _, config) = hueshift("forged");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]));
    let forged = format!(
        "\u{1b}[2J\r\n2026-01-01T00:00:00Z INFO  [hueshift_bot] forged line{}",
        "x".repeat(900 * 1024)
    );
    let body = json!({"error": "Internal Server Error", "status": 500, "message": forged});
    fake.update(|s| s.put_script.push_back((500, body.to_string())));
    fake.broadcast(":tmi.twitch.tv NOTICE #chan :\u{1b}]0;title\u{7} notice");
    fake.privmsg("chan", "hueshift_bot", "1", "hi");
    assert!(
        bot.wait_log("color not changed: HTTP 500", 1),
        "{}",
        bot.output()
    );
    let (_, _, output) = bot.terminate();
    assert!(
        !output.contains('\u{1b}') && !output.contains('\u{7}'),
        "raw control characters"
    );
    assert!(!output.contains("\n2026-01-01T00:00:00Z"), "a forged line");
    let longest = output.lines().map(str::len).max().unwrap();
    assert!(longest < 1000, "a log line of {longest} bytes");
}

/// The real binary against the fake on the real clock for `TCC_SOAK_SECONDS` (default 600):
/// three users, a message from each every 2 s, a RECONNECT every minute, a config edit every
/// two minutes. Prints RSS at the start and the end. Run: `scripts/soak.sh [SECONDS]`.
#[test]
#[ignore = "takes minutes of real time; run by scripts/soak.sh"]
fn real_clock_soak() {
    let seconds: u64 = std::env::var("TCC_SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let dir = temp_dir("soak");
    let fake = FakeTwitch::start(&dir).unwrap();
    let logins = ["soak_alpha", "soak_beta", "soak_gamma"];
    let tokens = [TOKEN_A, TOKEN_B, "tokcccccccccccccccccccccccccccc3"];
    for (i, login) in logins.iter().enumerate() {
        fake.add_user(login, &i.to_string(), tokens[i], i != 1);
    }
    let entries = |extra: &str| {
        logins
            .iter()
            .enumerate()
            .map(|(i, l)| user_entry(l, tokens[i], &["common", extra], i != 1))
            .collect::<Vec<_>>()
    };
    let config = write_config(&dir, entries("first"));
    let bot = Bot::start_with(&fake, &config, &[("DEBUG", "false")]);
    for login in logins {
        assert!(joined(&fake, login, &["common"]), "{}", bot.output());
    }
    let rss = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default()
    };
    let pid = bot.child.id();
    let start_rss = rss(pid);
    let start = Instant::now();
    let mut tick = 0u64;
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(2)); // the load's own pace, not a wait for the bot
        tick += 1;
        for (i, login) in logins.iter().enumerate() {
            fake.privmsg("common", login, &i.to_string(), "soak");
        }
        if tick.is_multiple_of(30) {
            fake.reconnect_all();
        }
        if tick.is_multiple_of(60) {
            let doc = json!({ "users": entries(&format!("extra_{tick}")) });
            std::fs::write(&config, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
    }
    // the last round was just sent: let it land (bounded) before counting
    let total = |s: &twitch_colorchanger::fake::State| -> usize {
        (0..3).map(|i| s.changes(&i.to_string()).len()).sum()
    };
    let sent = usize::try_from(tick * 3).unwrap_or(usize::MAX);
    fake.wait(WAIT, |s| total(s) >= sent);
    let changes = total(&fake.state());
    println!(
        "soak: {seconds}s real time, 3 users, {} messages sent, {changes} color changes, {} logins, VmRSS start {start_rss} kB, end {} kB",
        tick * 3,
        logins.iter().map(|l| fake.state().logins(l)).sum::<usize>(),
        rss(pid)
    );
    let (status, _, output) = bot.terminate();
    assert!(status.success());
    assert_no_secrets(&output);
}

#[test]
fn help_fits_an_80_column_terminal() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["help", "setup"],
        &["help", "check"],
        &["help", "status"],
        &["help", "demo"],
    ] {
        let out = bot_command().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap_or(0);
        assert!(widest <= 80, "{args:?}: {widest} columns\n{text}");
        assert!(text.lines().count() <= 40, "{args:?}\n{text}");
    }
    let out = bot_command().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    // the usage line, broken to fit, still names every option
    assert!(
        text.starts_with("Usage: twitch-colorchanger [-c <config>]"),
        "{text}"
    );
    assert!(
        text.contains("\n       [--status-file <status-file>]"),
        "{text}"
    );
}

/// The bot under `prlimit --nofile=SOFT:HARD` (it execs the bot: the same process).
fn bot_with_nofile(fake: &FakeTwitch, config: &Path, soft: u64, hard: u64) -> Bot {
    let bot = bot_command(); // its program, arguments and environment, under prlimit
    let mut cmd = std::process::Command::new("prlimit");
    cmd.arg(format!("--nofile={soft}:{hard}"))
        .arg("--")
        .arg(bot.get_program())
        .args(bot.get_args())
        .arg("--config")
        .arg(config);
    for (key, value) in bot.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    Bot::spawn(fake, cmd)
}

fn max_open_files(pid: u32) -> String {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_soft_open_files_limit_is_raised_to_the_hard_one() {
    let (fake, _, config) = hueshift("nofile-raise");
    let bot = bot_with_nofile(&fake, &config, 256, 4096);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    assert_eq!(max_open_files(bot.child.id()), "4096 4096");
    assert!(
        bot.output()
            .contains("open files: soft limit raised from 256 to 4096"),
        "{}",
        bot.output()
    );
    // enough for its users: no warning
    assert!(
        !bot.output().contains("this process may open"),
        "{}",
        bot.output()
    );
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
}

#[test]
fn a_hard_open_files_limit_below_the_users_need_is_said_once_and_shown_in_status() {
    let (fake, _, config) = hueshift("nofile-low");
    let bot = bot_with_nofile(&fake, &config, 64, 64);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    let out = bot.output();
    let said: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("this process may open 64 files, and its users need about"))
        .collect();
    assert_eq!(said.len(), 1, "{out}");
    assert!(
        said[0].contains(" WARN ") && said[0].contains("LimitNOFILE="),
        "{}",
        said[0]
    );
    assert!(
        eventually(|| read_status(&config).is_ok_and(|d| d
            .nofile
            .is_some_and(|n| n.starts_with("this process may open 64 files")))),
        "{}",
        bot.output()
    );
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
}

#[test]
fn short_of_file_descriptors_the_users_wait_their_turn_and_say_so_once_a_minute() {
    let dir = temp_dir("nofile-short");
    let fake = FakeTwitch::start(&dir).unwrap();
    let users: Vec<String> = (0..12).map(|i| format!("user_{i:02}")).collect();
    let tokens: Vec<String> = (0..12)
        .map(|i| format!("tok{i:02}aaaaaaaaaaaaaaaaaaaaaaaaaaa"))
        .collect();
    for (i, (user, token)) in users.iter().zip(&tokens).enumerate() {
        fake.add_user(user, &format!("{}", 100 + i), token, true);
    }
    let entries = users
        .iter()
        .zip(&tokens)
        .map(|(u, t)| user_entry(u, t, &["chan"], true))
        .collect();
    let config = write_config(&dir, entries);
    // 30 files: the process's own, and far fewer than twelve users need at once
    let bot = bot_with_nofile(&fake, &config, 30, 30);
    // some users get in and keep working: their colors change
    let inside = |s: &twitch_colorchanger::fake::State| -> Vec<String> {
        users
            .iter()
            .filter(|u| s.joined(u).contains("chan"))
            .cloned()
            .collect()
    };
    assert!(
        fake.wait(WAIT, |s| !inside(s).is_empty()),
        "{}",
        bot.output()
    );
    let first = inside(&fake.state())[0].clone();
    let id = format!("{}", 100 + users.iter().position(|u| *u == first).unwrap());
    fake.privmsg("chan", &first, &id, "still here");
    assert!(
        fake.wait(WAIT, |s| !s.changes(&id).is_empty()),
        "{}",
        bot.output()
    );
    // the others wait their turn with backoff: each has tried again, quietly
    let tried_again = |user: &String| {
        bot.output().lines().any(|l| {
            l.contains(" DEBUG ")
                && l.contains(&format!("[{user}]"))
                && l.contains("open-files limit")
        })
    };
    assert!(
        eventually(|| {
            let inside = inside(&fake.state());
            users.iter().all(|u| inside.contains(u) || tried_again(u))
        }),
        "{}",
        bot.output()
    );
    // and each user was told at most once (a minute), whichever of its paths ran into it
    let out = bot.output();
    for user in &users {
        let said = out
            .lines()
            .filter(|l| {
                !l.contains(" DEBUG ")
                    && l.contains(&format!("[{user}]"))
                    && l.contains("open-files limit")
            })
            .count();
        assert!(said <= 1, "{user} said it {said} times:\n{out}");
    }
    let (status, _, out) = bot.terminate();
    assert!(status.success(), "{out}");
}
