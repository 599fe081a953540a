//! The config loader on arbitrary text: never panics; whatever it accepts it can merge
//! environment users into and validate again.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.conf");
    let _ = config::parse(path, text);
    if let Ok(mut doc) = config::parse_json(path, text) {
        let env = config::env_users(|k| match k {
            "TWITCH_USERNAME_1" => Some("fuzz_user".into()),
            "TWITCH_CLIENT_ID_1" => Some("cid".into()),
            "TWITCH_CHANNELS_1" => Some("a, b".into()),
            _ => None,
        })
        .unwrap();
        config::merge_env(&mut doc, &env);
        let _ = config::validate(path, &doc);
    }
});
