//! The config: loading, validation messages, environment users, and atomic writes.

use super::*;
use crate::mode;
use crate::secret::Secret;

/// A fresh directory under `target/tmp` (never the system temp directory; the same path
/// every run, so nothing piles up).
fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/tmp/tcc-config-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

const GOOD: &str = r##"{
  "users": [
{
  "username": "HueShift_Bot",
  "access_token": "abcdefghijklmnopqrstuvwxyz0123",
  "refresh_token": "r1",
  "client_id": "cid",
  "client_secret": "",
  "channels": ["#LumenWave", "lumenwave", " other "],
  "is_prime_or_turbo": true,
  "future_field": {"kept": [1, 2]}
},
{"username": "x", "access_token": "t", "client_id": "c", "channels": ["a"]},
{"username": "second_user", "access_token": "your_token_here", "client_id": "c", "channels": ["a"]},
{"username": "third_user", "access_token": "t", "client_id": "c", "channels": []}
  ],
  "top_level_unknown": true
}"##;

#[test]
fn loads_valid_users_and_explains_the_rest() {
    let dir = temp_dir("load");
    let path = dir.join("twitch_colorchanger.conf");
    fs::write(&path, GOOD).unwrap();
    let cfg = load(&path).unwrap();
    assert_eq!(cfg.users.len(), 1);
    let u = &cfg.users[0];
    assert_eq!(u.channels, ["lumenwave", "other"]);
    assert!(u.is_prime_or_turbo && u.enabled);
    assert_eq!(
        cfg.warnings,
        [
            "users[1] (x): field \"username\": \"x\" is not a Twitch login (3-25 letters, digits or _)",
            "users[2] (second_user): field \"access_token\" still holds the example placeholder; put the real value in",
            "users[3] (third_user): field \"channels\" is empty: name at least one channel to join",
        ]
    );
    assert!(!format!("{cfg:?}").contains("abcdefghijklmnop"));
}

#[test]
fn color_modes_are_read_and_every_bad_field_is_named() {
    let user = |extra: Value, prime: bool| {
        let mut u = serde_json::json!({"username": "hueshift_bot", "client_id": "cid",
            "channels": ["a"], "is_prime_or_turbo": prime});
        u.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        validate(Path::new("c.conf"), &serde_json::json!({ "users": [u] }))
    };
    let cfg = user(
        serde_json::json!({"color_mode": "Palette", "palette": ["Sea_Green", "ABC", "#00ff00"],
            "palette_order": "shuffle", "rainbow_step": 45}),
        true,
    )
    .unwrap();
    let c = &cfg.users[0].colors;
    assert_eq!(c.kind, mode::Kind::Palette);
    assert_eq!(c.palette, ["sea_green", "#aabbcc", "#00ff00"]);
    assert!(c.shuffle);
    assert_eq!(c.rainbow_step, 45);
    assert_eq!(
        user(serde_json::json!({}), true).unwrap().users[0].colors,
        mode::Settings::default()
    );
    let Err(ConfigError::NoValidUsers(_, problems)) = user(
        serde_json::json!({"color_mode": "gradient", "rainbow_step": 0, "palette": ["red", "purple", "#abcdef"],
            "palette_order": "backwards"}),
        false,
    ) else {
        panic!("accepted")
    };
    assert_eq!(
        problems,
        [
            "users[0] (hueshift_bot): field \"color_mode\": \"gradient\" is not \"random\", \"rainbow\" or \"palette\"",
            "users[0] (hueshift_bot): field \"rainbow_step\": 0 is not a whole number of degrees from 1 to 359",
            "users[0] (hueshift_bot): field \"palette_order\": \"backwards\" is not \"cycle\" or \"shuffle\"",
            &format!("users[0] (hueshift_bot): field \"palette\"[1]: \"purple\" is not a color: use {}", crate::color::accepted()),
            "users[0] (hueshift_bot): field \"palette\"[2]: #abcdef is a hex color, which needs Turbo or Prime (\"is_prime_or_turbo\" is false); use named colors",
        ]
    );
    let Err(ConfigError::NoValidUsers(_, problems)) = user(
        serde_json::json!({"color_mode": "palette", "palette": ["red", "RED"]}),
        true,
    ) else {
        panic!("accepted")
    };
    assert!(
        problems[0].contains("needs at least two different colors"),
        "{problems:?}"
    );
}

#[test]
fn color_modes_and_the_transport_come_from_the_environment_too() {
    let env = |k: &str| {
        [
            ("TWITCH_USERNAME_1", "env_user"),
            ("TWITCH_COLOR_MODE_1", "palette"),
            ("TWITCH_PALETTE_1", "red, blue ,green"),
            ("TWITCH_PALETTE_ORDER_1", "shuffle"),
            ("TWITCH_RAINBOW_STEP_1", "15"),
            ("TWITCH_CHAT_TRANSPORT_1", "EventSub"),
        ]
        .iter()
        .find(|(key, _)| *key == k)
        .map(|(_, v)| (*v).to_owned())
    };
    let users = env_users(env).unwrap();
    assert_eq!(users[0]["color_mode"], "palette");
    assert_eq!(
        users[0]["palette"],
        serde_json::json!(["red", "blue", "green"])
    );
    assert_eq!(users[0]["palette_order"], "shuffle");
    assert_eq!(users[0]["rainbow_step"], 15);
    assert_eq!(users[0]["chat_transport"], "eventsub");
    let bad = |var: &'static str, value: &'static str| {
        move |k: &str| match k {
            "TWITCH_USERNAME_1" => Some("env_user".to_owned()),
            k if k == var => Some(value.to_owned()),
            _ => None,
        }
    };
    assert_eq!(
        env_users(bad("TWITCH_RAINBOW_STEP_1", "lots"))
            .unwrap_err()
            .to_string(),
        "TWITCH_RAINBOW_STEP_1=\"lots\": expected degrees, 1 to 359"
    );
    assert_eq!(
        env_users(bad("TWITCH_CHAT_TRANSPORT_1", "pubsub"))
            .unwrap_err()
            .to_string(),
        "TWITCH_CHAT_TRANSPORT_1=\"pubsub\": expected irc or eventsub"
    );
}

#[test]
fn a_user_with_only_client_credentials_is_valid_and_tokens_save_alone() {
    let dir = temp_dir("tokens");
    let path = dir.join("c.conf");
    fs::write(&path, r#"{"users":[{"username":"new_user","client_id":"cid","channels":["a"],"x":1},{"username":"other","client_id":"c2","channels":["b"]}]}"#).unwrap();
    let cfg = load(&path).unwrap();
    assert!(cfg.users[0].access_token.is_empty() && cfg.users[0].token_expiry.is_none());
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_781_653_392);
    ConfigFile::new(&path)
        .save_tokens(
            "NEW_USER",
            &Secret::new("acc"),
            &Secret::new("ref"),
            Some(at),
        )
        .unwrap();
    let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        after,
        serde_json::json!({"users":[{"username":"new_user","client_id":"cid","channels":["a"],"x":1,
            "access_token":"acc","refresh_token":"ref","token_expiry":"2026-06-16T23:43:12Z"},
            {"username":"other","client_id":"c2","channels":["b"]}]})
    );
    assert_eq!(load(&path).unwrap().users[0].token_expiry, Some(at));
}

#[test]
fn malformed_json_names_file_line_and_column() {
    let dir = temp_dir("json");
    let path = dir.join("bad.conf");
    fs::write(
        &path,
        "{\n  \"users\": [\n    {\"username\": \"a\",}\n  ]\n}",
    )
    .unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert_eq!(
        err,
        format!("{}:3:22: invalid JSON: trailing comma", path.display())
    );
}

#[test]
fn no_valid_user_and_missing_file_are_errors() {
    let dir = temp_dir("none");
    let path = dir.join("c.conf");
    fs::write(&path, r#"{"users": [{"username": "ab"}]}"#).unwrap();
    let err = load(&path).unwrap_err().to_string();
    assert!(
        err.contains("no valid user") && err.contains("users[0] (ab)"),
        "{err}"
    );
    assert!(matches!(
        load(&dir.join("nope")),
        Err(ConfigError::Missing(_))
    ));
    fs::write(&path, "[1]").unwrap();
    assert!(load(&path)
        .unwrap_err()
        .to_string()
        .contains("\"users\" array"));
}

#[test]
fn update_changes_one_field_and_keeps_everything_else() {
    let dir = temp_dir("update");
    let path = dir.join("c.conf");
    fs::write(&path, GOOD).unwrap();
    ConfigFile::new(&path)
        .update_user("hueshift_bot", |u| {
            u.insert("is_prime_or_turbo".into(), Value::Bool(false));
        })
        .unwrap();
    let after: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    let mut want: Value = serde_json::from_str(GOOD).unwrap();
    want["users"][0]["is_prime_or_turbo"] = Value::Bool(false);
    assert_eq!(after, want);
    // key order survives too
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.find("\"username\"").unwrap() < text.find("\"future_field\"").unwrap());
    #[cfg(unix)]
    {
        // written 0644 by the test: owner and group keep their bits, others lose theirs
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o640
        );
    }
    assert!(
        fs::read_dir(&dir).unwrap().count() == 1,
        "temp file left behind"
    );
    assert!(matches!(
        ConfigFile::new(&path).update_user("nobody", |_| {}),
        Err(ConfigError::UnknownUser(..))
    ));
}

#[cfg(unix)]
#[test]
fn a_symlinked_config_is_written_through_to_its_target() {
    let dir = temp_dir("symlink");
    fs::create_dir_all(dir.join("real")).unwrap();
    fs::write(dir.join("real/c.conf"), GOOD).unwrap();
    std::os::unix::fs::symlink("real/c.conf", dir.join("c.conf")).unwrap();
    let link = dir.join("c.conf");
    ConfigFile::new(&link)
        .save_tokens(
            "hueshift_bot",
            &Secret::new("new_access"),
            &Secret::new("new_refresh"),
            None,
        )
        .unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink(),
        "the link survives"
    );
    let target: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("real/c.conf")).unwrap()).unwrap();
    assert_eq!(target["users"][0]["refresh_token"], "new_refresh");
    assert_eq!(
        fs::read_dir(dir.join("real")).unwrap().count(),
        1,
        "no temp file left"
    );
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_or_stale_temp_file_cannot_catch_the_tokens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("planted");
    let path = dir.join("c.conf");
    fs::write(&path, GOOD).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    // the old, predictable temp names: a symlink to a file of the attacker's, and a 0644 file
    let victim = dir.join("victim");
    std::os::unix::fs::symlink(
        &victim,
        dir.join(format!(".c.conf.tmp{}", std::process::id())),
    )
    .unwrap();
    let stale = dir.join(format!(".c.conf.tmp.{}.0", std::process::id()));
    fs::write(&stale, "x").unwrap();
    fs::set_permissions(&stale, fs::Permissions::from_mode(0o644)).unwrap();
    ConfigFile::new(&path)
        .save_tokens("hueshift_bot", &Secret::new("a2"), &Secret::new("r2"), None)
        .unwrap();
    assert!(!victim.exists(), "nothing written through a planted link");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        load(&path).unwrap().users[0].refresh_token,
        Secret::new("r2")
    );
}

#[cfg(unix)]
#[test]
fn owner_group_and_mode_are_kept() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = temp_dir("owner");
    let path = dir.join("c.conf");
    fs::write(&path, GOOD).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let root = fs::metadata(&path).unwrap().uid() == 0;
    if root {
        std::os::unix::fs::chown(&path, Some(65532), Some(65533)).unwrap();
    }
    ConfigFile::new(&path)
        .save_tokens("hueshift_bot", &Secret::new("a2"), &Secret::new("r2"), None)
        .unwrap();
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    if root {
        assert_eq!((meta.uid(), meta.gid()), (65532, 65533));
    }
}

#[cfg(unix)]
#[test]
fn a_fifo_or_directory_is_refused_without_blocking_and_a_bom_is_fine() {
    let dir = temp_dir("fifo");
    let fifo = dir.join("fifo.conf");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let err = load(&fifo).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: not a regular file (a FIFO): give the path of the JSON config file",
            fifo.display()
        )
    );
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("not a regular file (a directory)"), "{err}");
    let bom = dir.join("bom.conf");
    fs::write(&bom, format!("\u{feff}{GOOD}")).unwrap();
    assert_eq!(load(&bom).unwrap().users.len(), 1);
}

#[test]
fn leftover_temp_files_are_read_and_removed() {
    let dir = temp_dir("leftover");
    let path = dir.join("c.conf");
    fs::write(&path, GOOD).unwrap();
    let complete = dir.join(".c.conf.tmp.99999.1234");
    fs::write(&complete, GOOD.replace("\"r1\"", "\"r_newer\"")).unwrap();
    let torn = dir.join(".c.conf.tmp.99999.5678");
    fs::write(&torn, &GOOD[..40]).unwrap();
    let other = dir.join(".other.tmp.1.2");
    fs::write(&other, "keep").unwrap();
    let found = sweep_temp_files(&path);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["users"][0]["refresh_token"], "r_newer");
    assert!(!complete.exists() && !torn.exists() && other.exists());
}

#[test]
fn app_credentials_with_spaces_or_line_breaks_are_named() {
    let dir = temp_dir("creds");
    let path = dir.join("c.conf");
    fs::write(&path, r#"{"users":[{"username":"abc","client_id":"ab cd","client_secret":"x\r\ny","channels":["a"]}]}"#).unwrap();
    let Err(ConfigError::NoValidUsers(_, problems)) = load(&path) else {
        panic!("expected no valid user");
    };
    assert_eq!(
        problems,
        [
            "users[0] (abc): field \"client_id\" holds characters an app credential never has (a space or a line break?)",
            "users[0] (abc): field \"client_secret\" holds characters an app credential never has (a space or a line break?)",
        ]
    );
    assert!(
        !format!("{problems:?}").contains("x\r\ny"),
        "the secret is not repeated"
    );
}

#[test]
fn path_comes_from_flag_then_env_then_default() {
    assert_eq!(
        resolve_path(Some("a".into()), Some("b".into())),
        PathBuf::from("a")
    );
    assert_eq!(resolve_path(None, Some("b".into())), PathBuf::from("b"));
    assert_eq!(
        resolve_path(None, Some(String::new())),
        PathBuf::from("twitch_colorchanger.conf")
    );
    assert_eq!(
        resolve_path(None, None),
        PathBuf::from("twitch_colorchanger.conf")
    );
}

#[test]
fn unknown_fields_are_named_with_the_nearest_known_one() {
    let root: Value = serde_json::from_str(
        r#"{"users": [{"username": "hueshift_bot", "client_id": "abcdefghij0123456789", "channels": ["a"],
            "colour_mode": "rainbow", "Enabled": false, "my_note": "mine",
            "access_token": "", "refresh_token": "", "token_expiry": null, "client_secret": "",
            "is_prime_or_turbo": true, "enabled": true}],
            "http_listn": "127.0.0.1:8080"}"#,
    )
    .unwrap();
    let cfg = validate(Path::new("c.conf"), &root).unwrap();
    assert_eq!(
        cfg.unknown,
        [
            r#"unknown field "http_listn" (did you mean "http_listen"?); kept in the file, not used"#,
            r#"users[0] (hueshift_bot): unknown field "colour_mode" (did you mean "color_mode"?); kept in the file, not used"#,
            r#"users[0] (hueshift_bot): unknown field "Enabled" (did you mean "enabled"?); kept in the file, not used"#,
            r#"users[0] (hueshift_bot): unknown field "my_note"; kept in the file, not used"#,
        ]
    );
    // every field the Python bot writes is known
    let python: Value = serde_json::from_str(
        r#"{"users": [{"username": "u_1", "client_id": "abcdefghij0123456789", "client_secret": "",
            "access_token": "", "refresh_token": "", "token_expiry": "2026-11-23T02:30:00Z",
            "channels": ["a"], "is_prime_or_turbo": true, "enabled": true}]}"#,
    )
    .unwrap();
    assert_eq!(
        validate(Path::new("c.conf"), &python).unwrap().unknown,
        Vec::<String>::new()
    );
}

#[test]
fn a_misspelt_required_field_is_named_beside_the_missing_one() {
    let path = Path::new("twitch_colorchanger.conf");
    let text = r#"{"users": [{"username": "hueshift_bot", "client_id": "cid", "chanels": ["a"]},
                            {"usernmae": "x", "clientid": "cid", "channels": ["a"]}]}"#;
    let Err(ConfigError::NoValidUsers(_, problems)) = parse(path, text) else {
        panic!("no user is valid");
    };
    assert_eq!(
        problems,
        [
            r#"users[0] (hueshift_bot): field "channels" is missing ("chanels" looks like a typo of it)"#,
            r#"users[1]: field "username" is missing ("usernmae" looks like a typo of it)"#,
            r#"users[1]: field "client_id" is missing ("clientid" looks like a typo of it)"#,
        ]
    );
    let Err(e) = parse(path, r#"{"user": []}"#) else {
        panic!("no users array");
    };
    assert_eq!(
        e.to_string(),
        r#"twitch_colorchanger.conf: expected an object with a "users" array ("user" looks like a typo of it)"#
    );
}

#[test]
fn a_channel_that_names_nothing_is_a_problem_not_dropped() {
    let path = Path::new("twitch_colorchanger.conf");
    let text = r##"{"users": [{"username": "hueshift_bot", "client_id": "cid", "channels": ["#", "ok", " "]}]}"##;
    let Err(ConfigError::NoValidUsers(_, problems)) = parse(path, text) else {
        panic!("the user is skipped");
    };
    assert_eq!(
        problems,
        [
            r##"users[0] (hueshift_bot): field "channels"[0]: "#" names no channel"##,
            r##"users[0] (hueshift_bot): field "channels"[2]: " " names no channel"##,
        ]
    );
}
