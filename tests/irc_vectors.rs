//! The public ircdocs parser vectors (msg-split.json, CC0). A copy lives in tests/data so a
//! fresh clone can run it; when the team's ../shared/testdata is beside the repo, the copy
//! must match it.

use serde_json::Value;
use twitch_colorchanger::irc::Message;

#[test]
fn passes_every_msg_split_vector() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/irc-parser-tests/msg-split.json"
    );
    let text = std::fs::read_to_string(path).expect("the vendored test vectors are present");
    let shared = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/testdata/irc-parser-tests/msg-split.json"
    );
    if let Ok(upstream) = std::fs::read_to_string(shared) {
        assert_eq!(text, upstream, "tests/data copy differs from {shared}");
    }
    let doc: Value = serde_json::from_str(&text).unwrap();
    let tests = doc["tests"].as_array().unwrap();
    assert!(tests.len() > 30);
    for case in tests {
        let input = case["input"].as_str().unwrap();
        let atoms = &case["atoms"];
        let msg = Message::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        let mut want_tags: Vec<(String, String)> = atoms["tags"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let mut got_tags: Vec<(String, String)> = msg
            .tags()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        want_tags.sort();
        got_tags.sort();
        assert_eq!(got_tags, want_tags, "tags of {input:?}");
        assert_eq!(
            msg.source(),
            atoms["source"].as_str(),
            "source of {input:?}"
        );
        assert_eq!(
            msg.command(),
            atoms["verb"].as_str().unwrap(),
            "verb of {input:?}"
        );
        let want_params: Vec<&str> = atoms["params"]
            .as_array()
            .map(|a| a.iter().map(|p| p.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(
            msg.params().collect::<Vec<_>>(),
            want_params,
            "params of {input:?}"
        );
        // and what we encode parses back to the same message
        assert_eq!(
            Message::parse(&msg.to_string()).unwrap(),
            msg,
            "round trip of {input:?}"
        );
    }
}
