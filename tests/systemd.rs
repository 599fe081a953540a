//! The fake Twitch for a bot that someone else runs: `scripts/verify-systemd.sh` starts the
//! packaged bot under systemd in a container, and this serves it many users.
//!
//! Set by the environment: `SYSTEMD_SHARE` (a directory both sides see: the config, the CA and
//! `env`, the unit's `Environment=` lines, are written there), `SYSTEMD_USERS` (1,000). Once
//! every user is in chat it prints `joined: <n> users in <s> s`, then serves on until the file
//! `done` appears there (or two minutes pass).
//!
//! Run: `cargo test --test systemd -- --ignored --nocapture`.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use twitch_colorchanger::fake::FakeTwitch;

#[test]
#[ignore = "serves a bot under systemd; run by scripts/verify-systemd.sh"]
fn serve_many_users_to_a_bot_under_systemd() {
    let share = PathBuf::from(std::env::var_os("SYSTEMD_SHARE").expect("SYSTEMD_SHARE is set"));
    let users: usize = setting("SYSTEMD_USERS", 1000);
    let dir = temp_dir("systemd-many");
    let fake = FakeTwitch::start(&dir).unwrap();
    let mut entries = Vec::new();
    for i in 0..users {
        let (login, token) = (format!("user_{i:04}"), format!("tok{i:027}"));
        fake.add_user(&login, &i.to_string(), &token, true);
        entries.push(
            json!({"username": login, "access_token": token, "client_id": "cid",
            "channels": [format!("chan_{i}")], "is_prime_or_turbo": true}),
        );
    }
    let seen_by_the_bot = "/srv/share/many";
    let write = |name: &str, text: String| {
        use std::os::unix::fs::PermissionsExt;
        let path = share.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    write("ca.pem", std::fs::read_to_string(fake.ca_file()).unwrap());
    write(
        "twitch_colorchanger.conf",
        json!({ "users": entries }).to_string(),
    );
    let started = Instant::now();
    // the file the script waits for comes last
    write(
        "env",
        [
            ("TWITCH_IRC_URL", fake.irc_url()),
            ("TWITCH_API_URL", fake.api_url()),
            ("TWITCH_AUTH_URL", fake.auth_url()),
            ("TWITCH_EVENTSUB_URL", fake.eventsub_url()),
            ("TWITCH_CA_FILE", format!("{seen_by_the_bot}/ca.pem")),
        ]
        .iter()
        .map(|(k, v)| format!("Environment={k}={v}\n"))
        .collect(),
    );
    assert!(
        fake.wait(Duration::from_secs(120), |s| (0..users).all(|i| s
            .joined(&format!("user_{i:04}"))
            .contains(&format!("chan_{i}")))),
        "not every user joined within two minutes"
    );
    println!(
        "joined: {users} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let done = share.join("done");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}
