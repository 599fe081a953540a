//! An EventSub chat session, after a good WebSocket upgrade, fed arbitrary server messages
//! (as text frames, or as raw frame bytes) in arbitrary pieces, with Helix answers, dial
//! results, timers, joins and parts in between: never panics, and writes nothing but the
//! upgrade, Pong and Close frames.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::chat::{ApiAnswer, ApiFailure, ApiRequest, Order, Transmit};
use twitch_colorchanger::eventsub::Session;
use twitch_colorchanger::endpoint::{Endpoint, Url};
use twitch_colorchanger::ws;

fn check(out: &Transmit) {
    if out.bytes.is_empty() || out.bytes.starts_with(b"GET ") {
        return;
    }
    let opcode = out.bytes[0] & 0x0F;
    assert!(opcode == 0x8 || opcode == 0xA, "the client sent opcode {opcode:#x}");
    assert!(out.bytes[1] & 0x80 != 0, "an unmasked client frame");
}

fuzz_target!(|data: &[u8]| {
    let t = Instant::now();
    let endpoint = Endpoint {
        tls: true,
        host: "eventsub.example".into(),
        port: 443,
    };
    let channels = vec!["lumenwave".to_owned(), "other".to_owned()];
    let mut s = Session::new(t, &Url { endpoint, path: "/ws".into() }, "81234567", &channels, 1);
    let request = s.poll_transmit().expect("the upgrade request");
    let text = String::from_utf8(request.bytes).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let accept = format!(
        "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        ws::accept_for(key)
    );
    s.handle_input(t, 0, accept.as_bytes());
    let mut now = t;
    let mut rest = data;
    // the first byte of each piece: its length, whether it is a text frame or raw bytes,
    // which link it arrives on, and what else happens first
    while let Some((&head, tail)) = rest.split_first() {
        let len = usize::from(head & 0x1f) * 32;
        let (piece, after) = tail.split_at(len.min(tail.len()));
        let link = u32::from(head >> 7);
        if head & 0x20 != 0 {
            now += Duration::from_secs(u64::from(head & 0x0f) * 3);
            s.handle_timeout(now);
        }
        let bytes = if head & 0x40 != 0 {
            ws::encode_unmasked(0x81, piece)
        } else {
            piece.to_vec()
        };
        s.handle_input(now, link, &bytes);
        // the driver answers each Helix call in kind, well or not as the piece's head says
        // (bounded: an answer may lead to the next call)
        for _ in 0..8 {
            let Some(order) = s.poll_order() else { break };
            let fail = || ApiFailure {
                status: [None, Some(400), Some(401), Some(409), Some(429), Some(500)]
                    [usize::from(head) % 6],
                message: "x".into(),
                refill_in: Some(Duration::from_secs(u64::from(head >> 4))),
            };
            let ok = head & 0x08 == 0;
            match order {
                Order::Dial { link, .. } if ok => s.handle_dialed(now, link, Ok(())),
                Order::Dial { link, .. } => s.handle_dialed(now, link, Err(std::io::Error::other("refused"))),
                Order::Api(request) => {
                    let answer = match request {
                        ApiRequest::Resolve(logins) if ok => ApiAnswer::Resolved(Ok(logins
                            .into_iter()
                            .filter(|l| l != "other")
                            .map(|l| (l, "1".into()))
                            .collect())),
                        ApiRequest::Resolve(_) => ApiAnswer::Resolved(Err(fail())),
                        ApiRequest::Subscribe { .. } if ok => ApiAnswer::Subscribed(Ok("sub".into())),
                        ApiRequest::Subscribe { .. } => ApiAnswer::Subscribed(Err(fail())),
                        ApiRequest::Unsubscribe { .. } if ok => ApiAnswer::Unsubscribed(Ok(())),
                        ApiRequest::Unsubscribe { .. } => ApiAnswer::Unsubscribed(Err(fail())),
                    };
                    s.handle_api(now, answer);
                }
            }
        }
        if head & 0x10 != 0 {
            s.join("third");
            s.part("other");
        }
        while let Some(out) = s.poll_transmit() {
            check(&out);
        }
        while s.poll_event().is_some() {}
        let _ = s.poll_timeout();
        rest = after;
    }
});
