//! An IRC chat session fed arbitrary server bytes in arbitrary pieces, with timers firing in
//! between: never panics, and never holds more than one line's worth of input.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::chat::Login;
use twitch_colorchanger::chat_session::ChatSession;
use twitch_colorchanger::secret::Secret;

fuzz_target!(|data: &[u8]| {
    let t = Instant::now();
    let token = Secret::new("oauth:tok");
    let channels = vec!["lumenwave".to_owned()];
    let mut s = ChatSession::irc(
        t,
        Login {
            login: "hueshift_bot",
            user_id: Some("81234567"),
            token: &token,
            channels: &channels,
        },
    );
    // the first byte of each piece says how long it is and whether time passes first
    let mut rest = data;
    let mut now = t;
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head & 0x3f).min(tail.len());
        let (piece, after) = tail.split_at(len);
        if head & 0x40 != 0 {
            now += Duration::from_secs(u64::from(head >> 6) * 30);
            s.handle_timeout(now);
        }
        s.handle_input(now, 0, piece);
        if head & 0x80 != 0 {
            s.join(now, "other");
            s.part("lumenwave");
        }
        while s.poll_event().is_some() {}
        while s.poll_transmit().is_some() {}
        let _ = s.poll_timeout();
        rest = after;
    }
});
