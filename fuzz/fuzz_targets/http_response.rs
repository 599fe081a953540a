//! The HTTP/1.1 response parser fed arbitrary bytes in arbitrary chunks: never panics, and
//! gives the same answer however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::http::ResponseParser;

fn run(data: &[u8], split: &dyn Fn(usize) -> usize) -> String {
    let mut parser = ResponseParser::new(false);
    let mut at = 0;
    let mut i = 0;
    while at < data.len() {
        let n = split(i).clamp(1, data.len() - at);
        match parser.feed(&data[at..at + n]) {
            // after a 101 the new protocol's bytes depend on the split; the response does not
            Ok(Some(parsed)) => return format!("{:?} {}", parsed.response, parsed.keep_alive),
            Ok(None) => {}
            Err(e) => return format!("error {e:?}"),
        }
        at += n;
        i += 1;
    }
    match parser.finish() {
        Ok(parsed) => format!("{:?} {}", parsed.response, parsed.keep_alive),
        Err(e) => format!("error {e:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, data)) = data.split_first() else {
        return;
    };
    let whole = run(data, &|_| usize::MAX);
    let pieces = run(data, &|i| 1 + (usize::from(seed) * (i + 7)) % 13);
    let bytes = run(data, &|_| 1);
    // the error texts may say where they stopped; the outcome must not depend on the split
    let kind = |s: &str| s.starts_with("error");
    assert_eq!(kind(&whole), kind(&pieces), "{whole} / {pieces}");
    assert_eq!(kind(&whole), kind(&bytes), "{whole} / {bytes}");
    if !kind(&whole) {
        assert_eq!(whole, pieces);
        assert_eq!(whole, bytes);
    }
});
