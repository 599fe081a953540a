//! The status listener's request parser fed arbitrary bytes as they might arrive: never
//! panics, a head once complete reads the same whatever follows it, nothing over the head
//! limit is taken, and the answer to whatever it read can always be built.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::clock::SystemClock;
use twitch_colorchanger::metrics::Metrics;
use twitch_colorchanger::status::latest::Latest;
use twitch_colorchanger::web::{self, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    let mut first = None;
    // where a head can end (after a line feed), and the whole input
    let ends = (1..=data.len())
        .filter(|&end| data[end - 1] == b'\n')
        .chain([data.len()]);
    for end in ends {
        let result = web::parse_request(&data[..end]);
        if let Ok(Some(req)) = &result {
            let first = first.get_or_insert_with(|| req.clone());
            assert_eq!(first, req, "a complete head read differently later");
        }
        if end > MAX_HEAD + 4 && first.is_none() {
            assert!(result.is_err(), "over the limit without an answer");
        }
    }
    if let Some(req) = first {
        let answer = web::answer(&req, &Latest::default(), &Metrics::default(), &SystemClock);
        let head_only = req.method == web::Method::Head;
        let (head, body) = answer.encode(head_only);
        assert!(head.starts_with(b"HTTP/1.1 ") && head.ends_with(b"\r\n\r\n"));
        assert!(!head_only || body.is_empty(), "a HEAD answer with a body");
    }
});
