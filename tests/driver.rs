//! The per-user driver on virtual time and in-memory connections: no sockets, no real waiting.

use std::sync::Arc;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use twitch_colorchanger::clock::{Clock, VirtualClock};
use twitch_colorchanger::config::{ConfigFile, UserConfig};
use twitch_colorchanger::device::LogPrompter;
use twitch_colorchanger::endpoint::{Endpoint, Url};
use twitch_colorchanger::helix::Helix;
use twitch_colorchanger::http::HttpClient;
use twitch_colorchanger::irc::{IDLE_BEFORE_PING, PONG_TIMEOUT};
use twitch_colorchanger::oauth::OAuth;
use twitch_colorchanger::secret::Secret;
use twitch_colorchanger::transport::{Duplex, MemoryTransport, Transport};
use twitch_colorchanger::user::{self, Mailbox, Services};
use twitch_colorchanger::usercore::Counters;

fn endpoint(host: &str) -> Endpoint {
    Endpoint {
        tls: true,
        host: host.into(),
        port: 443,
    }
}

/// Reads one CRLF-terminated line, or `None` at EOF.
async fn read_line(conn: &mut Duplex) -> Option<String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        if conn.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        line.push(byte[0]);
    }
    Some(String::from_utf8(line).unwrap().trim_end().to_owned())
}

async fn read_http_request(conn: &mut Duplex) -> String {
    let mut head = String::new();
    loop {
        let line = read_line(conn).await.expect("a request");
        if line.is_empty() {
            return head;
        }
        head.push_str(&line);
        head.push('\n');
    }
}

async fn respond(conn: &mut Duplex, status: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(msg.as_bytes()).await.unwrap();
}

/// Lets the bot run until it sleeps on the clock, then moves time to that deadline.
/// Returns how far it moved.
async fn advance_to_next_sleep(clock: &VirtualClock) -> Duration {
    for _ in 0..10_000 {
        smol::future::yield_now().await;
        if let Some(at) = clock.next_deadline() {
            let by = at.saturating_duration_since(clock.now());
            clock.advance(by);
            return by;
        }
    }
    panic!("the bot never went to sleep");
}

/// Moves the clock from sleep to sleep until `io` is done; returns how long that took on the
/// clock and what `io` gave. (The bot may wake before a deadline that moved later, find
/// nothing due and sleep again: only the time until something happens is asserted.)
async fn advance_until<T>(
    clock: &VirtualClock,
    io: impl std::future::Future<Output = T>,
) -> (Duration, T) {
    let start = clock.now();
    let mut io = std::pin::pin!(io);
    loop {
        for _ in 0..100 {
            if let Some(done) = smol::future::poll_once(io.as_mut()).await {
                return (clock.now() - start, done);
            }
            smol::future::yield_now().await;
        }
        advance_to_next_sleep(clock).await;
    }
}

/// The services of a user on `clock` and `transport`, every server in memory.
fn services(clock: &VirtualClock, transport: Arc<dyn Transport>) -> Arc<Services> {
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let http = Arc::new(HttpClient::new(
        transport.clone(),
        dyn_clock.clone(),
        Duration::from_secs(15),
    ));
    Arc::new(Services {
        clock: dyn_clock,
        transport,
        oauth: Arc::new(OAuth::new(http.clone(), endpoint("auth"), "/oauth2".into())),
        prompter: Arc::new(LogPrompter),
        auth_attempts: Some(1),
        helix: Helix::new(http, endpoint("api"), "/helix".into()),
        irc: endpoint("irc"),
        eventsub: Url {
            endpoint: endpoint("eventsub"),
            path: "/ws".into(),
        },
        default_transport: Default::default(),
        channels: Default::default(),
        config: Arc::new(ConfigFile::new("/nonexistent/never-written.conf")),
        clock_watch: Arc::default(),
    })
}

fn hueshift() -> UserConfig {
    UserConfig {
        username: "hueshift_bot".into(),
        access_token: Secret::new("tok"),
        refresh_token: Secret::default(),
        client_id: "cid".into(),
        client_secret: Secret::default(),
        channels: vec!["lumenwave".into()],
        is_prime_or_turbo: true,
        enabled: true,
        token_expiry: None,
        chat_transport: None,
        colors: Default::default(),
    }
}

/// Answers the token validation and the two Helix lookups a user makes before chat.
async fn answer_start(accepted: &async_channel::Receiver<(Endpoint, Duplex)>) {
    let (ep, mut auth) = accepted.recv().await.unwrap();
    assert_eq!(ep, endpoint("auth"));
    let req = read_http_request(&mut auth).await;
    assert!(req.starts_with("GET /oauth2/validate HTTP/1.1"), "{req}");
    assert!(req.contains("authorization: OAuth tok\n"), "{req}");
    respond(&mut auth, "200 OK", r#"{"client_id":"cid","login":"hueshift_bot","scopes":["chat:read","user:manage:chat_color"],"user_id":"81234567","expires_in":14000}"#).await;
    let (ep, mut api) = accepted.recv().await.unwrap();
    assert_eq!(ep, endpoint("api"));
    assert!(read_http_request(&mut api)
        .await
        .starts_with("GET /helix/users HTTP/1.1"));
    respond(
        &mut api,
        "200 OK",
        r#"{"data":[{"id":"81234567","login":"hueshift_bot"}]}"#,
    )
    .await;
    let req = read_http_request(&mut api).await;
    assert!(
        req.starts_with("GET /helix/chat/color?user_id=81234567 HTTP/1.1"),
        "{req}"
    );
    respond(&mut api, "200 OK", r##"{"data":[{"color":"#1E90FF"}]}"##).await;
}

#[test]
fn a_chat_server_that_stops_reading_holds_up_neither_a_stop_nor_the_user() {
    twitch_colorchanger::log::init(twitch_colorchanger::log::Settings::captured());
    let clock = VirtualClock::new();
    // pipes of 16 bytes: the login lines stall at once when the server does not read them
    let (transport, accepted) = MemoryTransport::with_capacity(16);
    let services = services(&clock, Arc::new(transport));
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        // with no stop: the stuck connection is given up after the write timeout, and the
        // user connects again
        let bot = ex.spawn(user::run_alone(services.clone(), hueshift()));
        answer_start(&accepted).await;
        let (ep, _unread) = accepted.recv().await.unwrap();
        assert_eq!(ep, endpoint("irc"));
        let (waited, next) = advance_until(&clock, accepted.recv()).await;
        assert!(
            waited >= Duration::from_secs(10) && waited <= Duration::from_secs(12),
            "given up after the 10 s write timeout and a backoff of up to 1 s: {waited:?}"
        );
        assert_eq!(next.unwrap().0, endpoint("irc"));
        drop(bot);

        // a stop while a write is stuck: the user ends at once, not when the write gives up
        let mailbox = Mailbox::new(async_channel::bounded(1).0);
        let bot = ex.spawn(user::run(
            services,
            hueshift(),
            Vec::new(),
            mailbox.clone(),
            Counters::default(),
        ));
        answer_start(&accepted).await;
        let (_, _unread) = accepted.recv().await.unwrap();
        for _ in 0..100 {
            smol::future::yield_now().await;
        }
        mailbox.stop();
        let (waited, ended) = advance_until(&clock, bot).await;
        assert!(ended.is_ok());
        assert_eq!(
            waited,
            Duration::ZERO,
            "the stop waited for the stuck write"
        );
    }));
}

#[test]
fn silent_server_is_pinged_dropped_and_reconnected_with_backoff() {
    twitch_colorchanger::log::init(twitch_colorchanger::log::Settings::captured());
    let clock = VirtualClock::new();
    let (transport, accepted) = MemoryTransport::new();
    let services = services(&clock, Arc::new(transport));
    let user = hueshift();
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let _bot = ex.spawn(user::run_alone(services, user));

        // the token validated, then Helix: who am I, and my color
        answer_start(&accepted).await;

        // IRC: log in and join
        let (ep, mut irc) = accepted.recv().await.unwrap();
        assert_eq!(ep, endpoint("irc"));
        for want in ["CAP REQ", "PASS oauth:tok", "NICK hueshift_bot"] {
            assert!(read_line(&mut irc).await.unwrap().starts_with(want));
        }
        irc.write_all(b":tmi.twitch.tv 001 hueshift_bot :Welcome, GLHF!\r\n")
            .await
            .unwrap();
        assert_eq!(read_line(&mut irc).await.unwrap(), "JOIN #lumenwave");

        // the server goes silent: after a minute we ping, after ten more seconds we give up
        let (idle, ping) = advance_until(&clock, read_line(&mut irc)).await;
        assert_eq!(
            (idle, ping.unwrap()),
            (IDLE_BEFORE_PING, "PING :tmi.twitch.tv".into())
        );
        let (waited, line) = advance_until(&clock, read_line(&mut irc)).await;
        assert_eq!(
            (waited, line),
            (PONG_TIMEOUT, None),
            "the dead connection is closed"
        );

        // first reconnect after 0.5-1 s (backoff with jitter), then a fresh login
        let (wait, next) = advance_until(&clock, accepted.recv()).await;
        assert!(
            wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let (ep, mut irc) = next.unwrap();
        assert_eq!(ep, endpoint("irc"));
        assert!(read_line(&mut irc).await.unwrap().starts_with("CAP REQ"));

        // this time it never says welcome: failed after 10 s, next try waits longer (1-2 s)
        for _ in 0..2 {
            read_line(&mut irc).await.unwrap();
        }
        let (waited, line) = advance_until(&clock, read_line(&mut irc)).await;
        assert_eq!((waited, line), (Duration::from_secs(10), None));
        let (wait, next) = advance_until(&clock, accepted.recv()).await;
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(next.is_ok());
    }));
}
