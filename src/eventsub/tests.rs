//! The EventSub session on `t0 + Duration`: frames in, frames, events and Helix calls out.

use super::*;
use crate::chat::{ApiAnswer, ApiFailure, ApiRequest};

const ME: &str = "81234567";

fn endpoint() -> Endpoint {
    Endpoint {
        tls: true,
        host: "eventsub.example".into(),
        port: 443,
    }
}

fn url() -> Url {
    Url {
        endpoint: endpoint(),
        path: "/ws".into(),
    }
}

fn text_frame(text: &str) -> Vec<u8> {
    ws::encode_unmasked(0x81, text.as_bytes())
}

fn transmits(s: &mut Session) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn orders(s: &mut Session) -> Vec<Order> {
    std::iter::from_fn(|| s.poll_order()).collect()
}

/// The server's side of the upgrade: a 101 that accepts the key in the request.
fn accept(request: &Transmit) -> Vec<u8> {
    let text = String::from_utf8(request.bytes.clone()).unwrap();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        ws::accept_for(key)
    )
    .into_bytes()
}

fn welcome(id: &str, keepalive: u64) -> Vec<u8> {
    text_frame(&format!(
        r#"{{"metadata":{{"message_id":"w-{id}","message_type":"session_welcome","message_timestamp":"2026-11-26T10:00:00.1Z"}},"payload":{{"session":{{"id":"{id}","status":"connected","connected_at":"2026-11-26T10:00:00.1Z","keepalive_timeout_seconds":{keepalive},"reconnect_url":null}}}}}}"#
    ))
}

fn chat(mid: &str, channel: &str, chatter: &str, text: &str) -> Vec<u8> {
    shared_chat(mid, channel, chatter, text, None)
}

/// A `channel.chat.message` notification; in shared chat, `source` is the channel the
/// message was sent in and its id there.
fn shared_chat(
    mid: &str,
    channel: &str,
    chatter: &str,
    text: &str,
    source: Option<(&str, &str)>,
) -> Vec<u8> {
    let source = match source {
        Some((login, id)) => format!(
            r#""source_broadcaster_user_id":"556","source_broadcaster_user_login":"{login}","source_broadcaster_user_name":"{login}","source_message_id":"{id}","source_badges":[]"#
        ),
        None => r#""source_broadcaster_user_id":null,"source_broadcaster_user_login":null,"source_broadcaster_user_name":null,"source_message_id":null,"source_badges":null"#.into(),
    };
    text_frame(&format!(
        r#"{{"metadata":{{"message_id":"{mid}","message_type":"notification","message_timestamp":"2026-11-26T10:00:01.1Z","subscription_type":"channel.chat.message","subscription_version":"1"}},"payload":{{"subscription":{{"id":"sub","status":"enabled","type":"channel.chat.message","version":"1","condition":{{"broadcaster_user_id":"555","user_id":"{ME}"}},"transport":{{"method":"websocket","session_id":"S1"}},"created_at":"2026-11-26T10:00:00Z","cost":0}},"event":{{"broadcaster_user_id":"555","broadcaster_user_login":"{channel}","broadcaster_user_name":"{channel}","chatter_user_id":"{chatter}","chatter_user_login":"x","chatter_user_name":"x","message_id":"m-{mid}","message":{{"text":"{text}","fragments":[]}},"message_type":"text","badges":[],"cheer":null,"color":"","reply":null,"channel_points_custom_reward_id":null,{source}}}}}}}"#
    ))
}

fn control(kind: &str, payload: &str) -> Vec<u8> {
    text_frame(&format!(
        r#"{{"metadata":{{"message_id":"c-{kind}","message_type":"{kind}","message_timestamp":"2026-11-26T10:00:02.1Z"}},"payload":{payload}}}"#
    ))
}

/// A session welcomed as S1 whose channels are subscribed.
fn subscribed(t: Instant, channels: &[&str]) -> Session {
    let chans: Vec<String> = channels.iter().map(|c| c.to_string()).collect();
    let mut s = Session::new(t, &url(), ME, &chans, 7);
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    assert!(out[0].shown.starts_with("GET /ws"));
    let mut bytes = accept(&out[0]);
    bytes.extend(welcome("S1", 10));
    s.handle_input(t, 0, &bytes);
    assert_eq!(events(&mut s), [Event::Ready]);
    assert_eq!(
        orders(&mut s),
        [Order::Api(ApiRequest::Resolve(chans.clone()))]
    );
    let ids: Vec<(String, String)> = chans
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), format!("55{i}")))
        .collect();
    s.handle_api(t, ApiAnswer::Resolved(Ok(ids)));
    for (i, c) in chans.iter().enumerate() {
        assert_eq!(
            orders(&mut s),
            [Order::Api(ApiRequest::Subscribe {
                broadcaster_id: format!("55{i}"),
                user_id: ME.into(),
                session_id: "S1".into()
            })]
        );
        s.handle_api(t, ApiAnswer::Subscribed(Ok(format!("sub{i}"))));
        assert_eq!(events(&mut s), [Event::Joined(c.clone())]);
    }
    assert!(orders(&mut s).is_empty());
    s
}

fn failure(status: u16, message: &str) -> ApiFailure {
    ApiFailure {
        status: Some(status),
        message: message.into(),
        refill_in: None,
    }
}

#[test]
fn welcomes_subscribes_and_reports_only_own_messages_once() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &chat("a", "lumenwave", "999", "someone else"));
    assert!(events(&mut s).is_empty());
    s.handle_input(t, 0, &chat("b", "lumenwave", ME, "hello"));
    let own = Event::OwnMessage {
        channel: "lumenwave".into(),
        text: "hello".into(),
        id: Some("m-b".into()),
        copy: false,
    };
    assert_eq!(events(&mut s), std::slice::from_ref(&own));
    // redelivered (at least once): the same message id, which the user core acts on once
    s.handle_input(t, 0, &chat("b", "lumenwave", ME, "hello"));
    assert_eq!(events(&mut s), [own]);
    // a channel no longer read is ignored even if Twitch still delivers it
    s.handle_input(t, 0, &chat("c", "elsewhere", ME, "hi"));
    assert!(events(&mut s).is_empty());
    // the client only ever wrote the upgrade request
    assert!(transmits(&mut s).is_empty());
}

#[test]
fn a_shared_chat_copy_names_the_message_it_came_from() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave", "partner"]);
    // shown in partner, sent in lumenwave (whose original is m-o1)
    s.handle_input(
        t,
        0,
        &shared_chat("c", "partner", ME, "hi", Some(("lumenwave", "m-o1"))),
    );
    s.handle_input(t, 0, &chat("o1", "lumenwave", ME, "hi"));
    assert_eq!(
        events(&mut s),
        [
            Event::OwnMessage {
                channel: "partner".into(),
                text: "hi".into(),
                id: Some("m-o1".into()),
                copy: true,
            },
            Event::OwnMessage {
                channel: "lumenwave".into(),
                text: "hi".into(),
                id: Some("m-o1".into()),
                copy: false,
            }
        ]
    );
}

#[test]
fn silence_past_the_keepalive_window_closes_and_keepalives_prevent_it() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    let limit = silence_limit(Duration::from_secs(10));
    assert_eq!(s.poll_timeout(), Some(t + limit));
    let t1 = t + Duration::from_secs(9);
    s.handle_input(t1, 0, &control("session_keepalive", "{}"));
    assert_eq!(s.poll_timeout(), Some(t1 + limit));
    s.handle_timeout(t + limit);
    assert!(events(&mut s).is_empty());
    s.handle_timeout(t1 + limit);
    assert_eq!(events(&mut s), [Event::Closed(CloseReason::Timeout)]);
}

#[test]
fn leaving_says_close_1000_and_nothing_more() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    s.leave();
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    assert!(out[0].then_close && out[0].link == 0 && out[0].shown == "close 1000");
    // a masked Close frame carrying 1000
    let mask = &out[0].bytes[2..6];
    assert_eq!(out[0].bytes[..2], [0x88, 0x82]);
    assert_eq!(
        [out[0].bytes[6] ^ mask[0], out[0].bytes[7] ^ mask[1]],
        1000u16.to_be_bytes()
    );
    assert!(events(&mut s).is_empty() && s.poll_timeout().is_none());
    s.handle_input(t, 0, &control("session_keepalive", "{}"));
    s.leave();
    assert!(transmits(&mut s).is_empty() && events(&mut s).is_empty());
}

#[test]
fn no_welcome_in_time_is_a_login_timeout() {
    let t = Instant::now();
    let mut s = Session::new(t, &url(), ME, &[], 1);
    s.handle_timeout(t + WELCOME_TIMEOUT);
    assert_eq!(events(&mut s), [Event::Closed(CloseReason::LoginTimeout)]);
}

#[test]
fn answers_pings_with_masked_pongs() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &[0x89, 0x02, b'h', b'i']);
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].link, out[0].bytes[0], out[0].bytes[1]),
        (0, 0x8A, 0x82)
    );
    let mask = &out[0].bytes[2..6];
    assert_eq!(
        [out[0].bytes[6] ^ mask[0], out[0].bytes[7] ^ mask[1]],
        *b"hi"
    );
    assert!(events(&mut s).is_empty());
}

#[test]
fn session_reconnect_keeps_the_old_socket_until_the_new_welcome() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(
        t,
        0,
        &control(
            "session_reconnect",
            r#"{"session":{"id":"S1","status":"reconnecting","keepalive_timeout_seconds":null,"reconnect_url":"wss://eventsub.example?reconnect=abc"}}"#,
        ),
    );
    let dial = orders(&mut s);
    let [Order::Dial { link, endpoint }] = &dial[..] else {
        panic!("{dial:?}")
    };
    assert_eq!((*link, endpoint.host.as_str()), (1, "eventsub.example"));
    s.handle_dialed(t, 1, Ok(()));
    let out = transmits(&mut s);
    assert_eq!(out[0].link, 1);
    assert!(
        out[0].shown.starts_with("GET /?reconnect=abc"),
        "{}",
        out[0].shown
    );
    s.handle_input(t, 1, &accept(&out[0]));
    // the old socket still delivers until the new one is welcomed
    s.handle_input(t, 0, &chat("d", "lumenwave", ME, "during"));
    assert_eq!(events(&mut s).len(), 1);
    s.handle_input(t, 1, &welcome("S2", 10));
    let out = transmits(&mut s);
    assert_eq!(out.len(), 1);
    assert!(out[0].then_close && out[0].link == 0);
    assert_eq!(out[0].bytes[0], 0x88);
    // subscriptions carried over: nothing is subscribed again, no second Ready
    assert!(orders(&mut s).is_empty());
    assert!(events(&mut s).is_empty());
    s.handle_input(t, 1, &chat("e", "lumenwave", ME, "after"));
    assert_eq!(events(&mut s).len(), 1);
    // a channel added later is subscribed on the new session
    s.join("newchan");
    assert_eq!(
        orders(&mut s),
        [Order::Api(ApiRequest::Resolve(vec!["newchan".into()]))]
    );
    s.handle_api(
        t,
        ApiAnswer::Resolved(Ok(vec![("newchan".into(), "777".into())])),
    );
    assert_eq!(
        orders(&mut s),
        [Order::Api(ApiRequest::Subscribe {
            broadcaster_id: "777".into(),
            user_id: ME.into(),
            session_id: "S2".into()
        })]
    );
}

#[test]
fn a_failed_reconnect_ends_the_session_and_a_plain_text_one_is_refused() {
    let t = Instant::now();
    let mut s = subscribed(t, &["lumenwave"]);
    let reconnect = |url: &str| {
        control(
            "session_reconnect",
            &format!(
                r#"{{"session":{{"id":"S1","status":"reconnecting","reconnect_url":"{url}"}}}}"#
            ),
        )
    };
    s.handle_input(t, 0, &reconnect("wss://eventsub.example/x"));
    orders(&mut s);
    s.handle_dialed(t, 1, Err(std::io::Error::other("refused")));
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("reconnect URL"))
    );

    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &reconnect("ws://evil.example/x"));
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("without TLS"))
    );
}

#[test]
fn close_codes_say_what_they_mean() {
    let t = Instant::now();
    for (code, words) in [
        (4000, "internal server error"),
        (4001, "inbound traffic"),
        (4002, "ping-pong"),
        (4003, "connection unused"),
        (4004, "grace time"),
        (4005, "network timeout"),
        (4006, "network error"),
        (4007, "invalid reconnect"),
    ] {
        let mut s = subscribed(t, &["lumenwave"]);
        let mut frame = vec![0x88, 2 + 3];
        frame.extend_from_slice(&u16::to_be_bytes(code));
        frame.extend_from_slice(b"bye");
        s.handle_input(t, 0, &frame);
        let evs = events(&mut s);
        let [Event::Closed(CloseReason::Lost(why))] = &evs[..] else {
            panic!("{code}: {evs:?}")
        };
        assert!(
            why.contains(&code.to_string()) && why.contains(words),
            "{why}"
        );
        // the close is answered, and the socket dropped
        let out = transmits(&mut s);
        assert!(out.len() == 1 && out[0].then_close && out[0].bytes[0] == 0x88);
    }
}

#[test]
fn revocations_resubscribe_drop_the_channel_or_renew_the_token() {
    let t = Instant::now();
    let revoke = |status: &str| {
        control(
            "revocation",
            &format!(
                r#"{{"subscription":{{"id":"sub0","status":"{status}","type":"channel.chat.message","version":"1","condition":{{"broadcaster_user_id":"550","user_id":"{ME}"}}}}}}"#
            ),
        )
    };
    let mut s = subscribed(t, &["lumenwave", "other"]);
    s.handle_input(t, 0, &revoke("user_removed"));
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Notice { msg_id: Some(id), .. }, Event::Left(c)] if id == "user_removed" && c == "lumenwave")
    );
    assert!(orders(&mut s).is_empty());
    // the last readable channel gone: Twitch would close the idle socket (4003), so the
    // session ends itself, with a Close frame
    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &revoke("user_removed"));
    assert_eq!(
        events(&mut s)[2..],
        [Event::Closed(CloseReason::NothingToRead)]
    );
    assert!(s.poll_transmit().is_some_and(|t| t.then_close));

    // authorization_revoked: the session and the other channel stay; the token is to be
    // checked; the channel is subscribed again once after a delay, and dropped if Twitch
    // revokes it again
    let mut s = subscribed(t, &["lumenwave", "other"]);
    s.handle_input(t, 0, &revoke("authorization_revoked"));
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Notice { .. }, Event::SubscriptionRevoked { channel, again_in }] if channel == "lumenwave" && *again_in == RESUBSCRIBE_AFTER),
        "{evs:?}"
    );
    assert!(orders(&mut s).is_empty() && transmits(&mut s).is_empty());
    assert_eq!(s.poll_timeout(), Some(t + RESUBSCRIBE_AFTER));
    s.handle_timeout(t + RESUBSCRIBE_AFTER);
    assert!(matches!(
        &orders(&mut s)[..],
        [Order::Api(ApiRequest::Subscribe { broadcaster_id, .. })] if broadcaster_id == "550"
    ));
    s.handle_api(t, ApiAnswer::Subscribed(Ok("sub9".into())));
    assert_eq!(events(&mut s), [Event::Joined("lumenwave".into())]);
    let later = t + RESUBSCRIBE_AFTER + Duration::from_secs(60);
    s.handle_input(later, 0, &revoke("authorization_revoked"));
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Notice { .. }, Event::Unreadable { channel, why }] if channel == "lumenwave" && why.contains("twice")),
        "{evs:?}"
    );
    assert!(orders(&mut s).is_empty() && transmits(&mut s).is_empty());
    s.handle_timeout(later + RESUBSCRIBE_AFTER);
    assert!(orders(&mut s).is_empty(), "a dropped channel stays dropped");
    // a revocation long after the first one is a first one again
    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &revoke("authorization_revoked"));
    s.handle_timeout(t + RESUBSCRIBE_AFTER);
    s.handle_api(t, ApiAnswer::Subscribed(Ok("sub9".into())));
    events(&mut s);
    orders(&mut s);
    s.handle_input(
        t + REVOKED_AGAIN_WITHIN * 2,
        0,
        &revoke("authorization_revoked"),
    );
    assert!(matches!(
        &events(&mut s)[..],
        [Event::Notice { .. }, Event::SubscriptionRevoked { .. }]
    ));

    let mut s = subscribed(t, &["lumenwave"]);
    s.handle_input(t, 0, &revoke("moderator_removed"));
    events(&mut s);
    assert!(matches!(
        &orders(&mut s)[..],
        [Order::Api(ApiRequest::Subscribe { .. })]
    ));
}

#[test]
fn subscription_answers_409_401_403_429() {
    let t = Instant::now();
    let start = || {
        let mut s = Session::new(t, &url(), ME, &["lumenwave".into()], 3);
        let out = transmits(&mut s);
        let mut bytes = accept(&out[0]);
        bytes.extend(welcome("S1", 10));
        s.handle_input(t, 0, &bytes);
        orders(&mut s);
        s.handle_api(
            t,
            ApiAnswer::Resolved(Ok(vec![("lumenwave".into(), "5".into())])),
        );
        orders(&mut s);
        events(&mut s);
        s
    };
    let mut s = start();
    s.handle_api(
        t,
        ApiAnswer::Subscribed(Err(failure(409, "subscription already exists"))),
    );
    assert_eq!(events(&mut s), [Event::Joined("lumenwave".into())]);
    // unsubscribing without the id asks for it to be looked up
    s.part("lumenwave");
    assert_eq!(events(&mut s), [Event::Left("lumenwave".into())]);
    assert_eq!(
        orders(&mut s),
        [Order::Api(ApiRequest::Unsubscribe {
            broadcaster_id: "5".into(),
            session_id: "S1".into(),
            id: None
        })]
    );

    let mut s = start();
    s.handle_api(
        t,
        ApiAnswer::Subscribed(Err(failure(401, "Invalid OAuth token"))),
    );
    assert_eq!(
        events(&mut s),
        [Event::Closed(CloseReason::AuthFailed(
            "Invalid OAuth token".into()
        ))]
    );

    let mut s = start();
    s.handle_api(
        t,
        ApiAnswer::Subscribed(Err(failure(
            403,
            "subscription missing proper authorization",
        ))),
    );
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::AuthFailed(why))] if why.contains("user:read:chat"))
    );

    let mut s = start();
    s.handle_api(
        t,
        ApiAnswer::Subscribed(Err(failure(
            429,
            "number of websocket transports limit exceeded",
        ))),
    );
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("3 EventSub WebSocket connections"))
    );
}

/// A session for `channels` past its welcome, its first lookup asked for and not answered.
fn welcomed(t: Instant, channels: &[&str]) -> Session {
    let names: Vec<String> = channels.iter().map(|c| (*c).to_owned()).collect();
    let mut s = Session::new(t, &url(), ME, &names, 3);
    let out = transmits(&mut s);
    let mut bytes = accept(&out[0]);
    bytes.extend(welcome("S1", 10));
    s.handle_input(t, 0, &bytes);
    orders(&mut s);
    s
}

/// Helix's 429 for an empty rate-limit bucket, full again in `secs`.
fn bucket_empty(secs: u64) -> ApiFailure {
    ApiFailure {
        status: Some(429),
        message: "Too Many Requests".into(),
        refill_in: Some(Duration::from_secs(secs)),
    }
}

#[test]
fn a_429_of_the_bucket_waits_for_its_reset_and_subscribes_that_channel_again() {
    let t = Instant::now();
    let mut s = welcomed(t, &["lumenwave", "second"]);
    s.handle_api(
        t,
        ApiAnswer::Resolved(Ok(vec![
            ("lumenwave".into(), "5".into()),
            ("second".into(), "6".into()),
        ])),
    );
    let subscribe = |id: &str| {
        Order::Api(ApiRequest::Subscribe {
            broadcaster_id: id.into(),
            user_id: ME.into(),
            session_id: "S1".into(),
        })
    };
    let first = orders(&mut s);
    assert_eq!(first.len(), 1);
    let (held, other) = if first[0] == subscribe("5") {
        ("lumenwave", "6")
    } else {
        ("second", "5")
    };
    events(&mut s);
    // the bucket is empty for 4 s: not the transport limit, and no reason to drop the session
    s.handle_api(t, ApiAnswer::Subscribed(Err(bucket_empty(4))));
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Notice { channel: Some(c), msg_id: Some(id), text }]
            if c == held && id == "rate_limited" && text.contains("subscribing again in 4s")),
        "{evs:?}"
    );
    // the other channel goes on at once; the held one waits for the reset, on this session
    assert_eq!(orders(&mut s), [subscribe(other)]);
    s.handle_api(t, ApiAnswer::Subscribed(Ok("sub-b".into())));
    events(&mut s);
    assert_eq!(
        s.poll_timeout(),
        Some(t + Duration::from_secs(4)),
        "the reset is the next deadline"
    );
    s.handle_timeout(t + Duration::from_secs(3));
    assert_eq!(orders(&mut s), [], "not before the reset");
    s.handle_timeout(t + Duration::from_secs(4));
    let again = orders(&mut s);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], subscribe(other));
    s.handle_api(
        t + Duration::from_secs(4),
        ApiAnswer::Subscribed(Ok("sub-a".into())),
    );
    assert_eq!(events(&mut s), [Event::Joined(held.into())]);

    // a reset far ahead (or none) holds the channel a minute at most, and the lookup waits too
    let mut s = welcomed(t, &["lumenwave"]);
    events(&mut s);
    s.handle_api(t, ApiAnswer::Resolved(Err(bucket_empty(3600))));
    assert!(
        matches!(&events(&mut s)[..], [Event::Notice { msg_id: Some(id), .. }] if id == "rate_limited")
    );
    s.handle_timeout(t + Duration::from_secs(60));
    assert_eq!(
        orders(&mut s),
        [Order::Api(ApiRequest::Resolve(vec!["lumenwave".into()]))]
    );
}

#[test]
fn unknown_channels_and_more_than_300_are_refused_with_a_notice() {
    let t = Instant::now();
    let names: Vec<String> = (0..301).map(|i| format!("c{i:03}")).collect();
    let mut s = Session::new(t, &url(), ME, &names, 3);
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Notice { channel: Some(c), msg_id: Some(id), .. }] if c == "c300" && id == "too_many_channels")
    );
    let out = transmits(&mut s);
    let mut bytes = accept(&out[0]);
    bytes.extend(welcome("S1", 10));
    s.handle_input(t, 0, &bytes);
    events(&mut s);
    let first = orders(&mut s);
    let [Order::Api(ApiRequest::Resolve(batch))] = &first[..] else {
        panic!()
    };
    assert_eq!(batch.len(), 100);
    // none of them exists: each gets a notice, and the next batch is asked for
    s.handle_api(t, ApiAnswer::Resolved(Ok(vec![])));
    let evs = events(&mut s);
    assert_eq!(evs.len(), 100);
    assert!(matches!(&evs[0], Event::Notice { msg_id: Some(id), .. } if id == "no_such_channel"));
    assert!(matches!(&orders(&mut s)[..], [Order::Api(ApiRequest::Resolve(b))] if b.len() == 100));
}

#[test]
fn a_wrong_accept_or_a_refused_upgrade_ends_the_session() {
    let t = Instant::now();
    let mut s = Session::new(t, &url(), ME, &[], 1);
    transmits(&mut s);
    s.handle_input(
        t,
        0,
        b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: nope\r\n\r\n",
    );
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("Sec-WebSocket-Accept"))
    );

    let mut s = Session::new(t, &url(), ME, &[], 1);
    transmits(&mut s);
    s.handle_input(
        t,
        0,
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 2\r\n\r\nno",
    );
    assert!(
        matches!(&events(&mut s)[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("HTTP 429"))
    );
}

#[test]
fn a_message_missing_a_field_is_named_not_read_as_empty() {
    let t = Instant::now();
    // a chat message without its chatter: dropped, the field named, the session goes on
    let mut s = subscribed(t, &["lumenwave"]);
    let no_chatter = text_frame(
        r#"{"metadata":{"message_id":"m1","message_type":"notification","subscription_type":"channel.chat.message"},"payload":{"event":{"broadcaster_user_login":"lumenwave","message_id":"x1","message":{"text":"hi"}}}}"#,
    );
    s.handle_input(t, 0, &no_chatter);
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Dropped(why)] if why.contains("missing field `payload.event.chatter_user_id`")),
        "{evs:?}"
    );
    s.handle_input(t, 0, &chat("m2", "lumenwave", ME, "still here"));
    assert!(matches!(&events(&mut s)[..], [Event::OwnMessage { .. }]));
    // a message without metadata: dropped, named
    s.handle_input(t, 0, &text_frame(r#"{"payload":{}}"#));
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Dropped(why)] if why.contains("missing field `metadata`")),
        "{evs:?}"
    );
    // a reconnect without its URL ends the session, saying which field is missing
    s.handle_input(
        t,
        0,
        &control("session_reconnect", r#"{"session":{"id":"S1"}}"#),
    );
    let evs = events(&mut s);
    assert!(
        matches!(&evs[..], [Event::Closed(CloseReason::Lost(why))] if why.contains("missing field `payload.session.reconnect_url`")),
        "{evs:?}"
    );
    // a welcome whose session id is empty is refused, as one without it
    let mut s = Session::new(t, &url(), ME, &["a".to_owned()], 7);
    let out = transmits(&mut s);
    let mut bytes = accept(&out[0]);
    bytes.extend(welcome("", 10));
    s.handle_input(t, 0, &bytes);
    assert!(matches!(
        &events(&mut s)[..],
        [Event::Closed(CloseReason::Lost(why))] if why.contains("without a session id")
    ));
}
