//! The WebSocket frame decoder fed arbitrary server bytes: never panics, and the messages
//! (or the error) are the same however the bytes are split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::ws::{Decoder, Message, WsError};

fn run(data: &[u8], piece: usize) -> (Vec<Message>, Option<WsError>) {
    let mut d = Decoder::new();
    let mut got = Vec::new();
    for chunk in data.chunks(piece.max(1)) {
        let result = d.feed(chunk);
        got.extend(std::iter::from_fn(|| d.poll_message()));
        if let Err(e) = result {
            return (got, Some(e));
        }
    }
    (got, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let whole = run(data, data.len());
    assert_eq!(whole, run(data, usize::from(split % 16) + 1));
    assert_eq!(whole, run(data, 1));
});
