//! The per-user driver on virtual time and in-memory connections: no sockets, no real waiting.

use std::sync::Arc;
use std::time::Duration;

use smol::io::{AsyncReadExt, AsyncWriteExt};
use twitch_colorchanger::clock::{Clock, VirtualClock};
use twitch_colorchanger::config::UserConfig;
use twitch_colorchanger::device::LogPrompter;
use twitch_colorchanger::helix::Helix;
use twitch_colorchanger::http::HttpClient;
use twitch_colorchanger::irc::{IDLE_BEFORE_PING, PONG_TIMEOUT};
use twitch_colorchanger::oauth::OAuth;
use twitch_colorchanger::secret::Secret;
use twitch_colorchanger::transport::{Duplex, Endpoint, MemoryTransport, Transport};
use twitch_colorchanger::user::{self, Shared};

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

#[test]
fn silent_server_is_pinged_dropped_and_reconnected_with_backoff() {
    let clock = VirtualClock::new();
    let (transport, accepted) = MemoryTransport::new();
    let transport: Arc<dyn Transport> = Arc::new(transport);
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let http = Arc::new(HttpClient::new(
        transport.clone(),
        dyn_clock.clone(),
        Duration::from_secs(15),
    ));
    let shared = Arc::new(Shared {
        clock: dyn_clock,
        transport,
        oauth: Arc::new(OAuth::new(http.clone(), endpoint("auth"), "/oauth2".into())),
        prompter: Arc::new(LogPrompter),
        auth_attempts: Some(1),
        helix: Helix::new(http, endpoint("api"), "/helix".into()),
        irc: endpoint("irc"),
        eventsub: (endpoint("eventsub"), "/ws".into()),
        default_transport: Default::default(),
        broadcasters: Default::default(),
        config_path: "/nonexistent/never-written.conf".into(),
    });
    let user = UserConfig {
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
    };
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let _bot = ex.spawn(user::run_alone(shared, user));

        // OAuth: the token is validated before anything else
        let (ep, mut auth) = accepted.recv().await.unwrap();
        assert_eq!(ep, endpoint("auth"));
        let req = read_http_request(&mut auth).await;
        assert!(req.starts_with("GET /oauth2/validate HTTP/1.1"), "{req}");
        assert!(req.contains("authorization: OAuth tok\n"), "{req}");
        respond(&mut auth, "200 OK", r#"{"client_id":"cid","login":"hueshift_bot","scopes":["chat:read","user:manage:chat_color"],"user_id":"81234567","expires_in":14000}"#).await;

        // Helix: who am I, and my color
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
        assert_eq!(advance_to_next_sleep(&clock).await, IDLE_BEFORE_PING);
        assert_eq!(read_line(&mut irc).await.unwrap(), "PING :tmi.twitch.tv");
        assert_eq!(advance_to_next_sleep(&clock).await, PONG_TIMEOUT);
        assert_eq!(
            read_line(&mut irc).await,
            None,
            "the dead connection is closed"
        );

        // first reconnect after 0.5-1 s (backoff with jitter), then a fresh login
        let wait = advance_to_next_sleep(&clock).await;
        assert!(
            wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let (ep, mut irc) = accepted.recv().await.unwrap();
        assert_eq!(ep, endpoint("irc"));
        assert!(read_line(&mut irc).await.unwrap().starts_with("CAP REQ"));

        // this time it never says welcome: failed after 10 s, next try waits longer (1-2 s)
        for _ in 0..2 {
            read_line(&mut irc).await.unwrap();
        }
        assert_eq!(advance_to_next_sleep(&clock).await, Duration::from_secs(10));
        assert_eq!(read_line(&mut irc).await, None);
        let wait = advance_to_next_sleep(&clock).await;
        assert!(
            wait >= Duration::from_secs(1) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        assert!(accepted.recv().await.is_ok());
    }));
}

/// Lets the other tasks run until `done` holds (bounded); whether it does.
async fn settles(done: impl Fn() -> bool) -> bool {
    // bounded by time, not by a count of yields: a file write on the blocking pool can take
    // a while when the machine is busy running every other suite too
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        smol::future::yield_now().await;
    }
    done()
}

/// Serves one HTTP request on `conn` with `body`; returns the request head.
async fn serve_one(conn: &mut Duplex, status: &str, body: &str) -> String {
    let req = read_http_request(conn).await;
    respond(conn, status, body).await;
    req
}

/// A token keeper for `hueshift_bot` (token `tok`, refresh `ref1`) on a virtual clock and
/// in-memory connections, with its config file. `lose_config` deletes the file's directory
/// before the keeper ever writes.
fn keeper_fixture(
    name: &str,
    lose_config: bool,
) -> (
    VirtualClock,
    async_channel::Receiver<(Endpoint, Duplex)>,
    twitch_colorchanger::tokens::TokenKeeper,
    std::path::PathBuf,
) {
    let dir = std::env::temp_dir().join(format!("tcc-driver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("c.conf");
    std::fs::write(&config, r#"{"users":[{"username":"hueshift_bot","access_token":"tok","refresh_token":"ref1","client_id":"cid","channels":["a"]}]}"#).unwrap();
    let user = twitch_colorchanger::config::load(&config)
        .unwrap()
        .users
        .remove(0);
    if lose_config {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let clock = VirtualClock::new();
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let (transport, accepted) = MemoryTransport::new();
    let http = Arc::new(HttpClient::new(
        Arc::new(transport),
        dyn_clock.clone(),
        Duration::from_secs(15),
    ));
    let oauth = Arc::new(OAuth::new(http, endpoint("auth"), "/oauth2".into()));
    let keeper = twitch_colorchanger::tokens::TokenKeeper::new(
        &user,
        config.clone(),
        oauth,
        dyn_clock,
        Arc::new(LogPrompter),
    );
    (clock, accepted, keeper, config)
}

const NEW_PAIR: &str = r#"{"access_token":"tok2","refresh_token":"ref2","expires_in":14400,"scope":[],"token_type":"bearer"}"#;

#[test]
fn tokens_are_validated_hourly_and_refreshed_before_expiry_on_virtual_time() {
    use twitch_colorchanger::tokens::{REFRESH_AHEAD, VALIDATE_EVERY};
    let (clock, accepted, keeper, config) = keeper_fixture("schedule", false);
    let valid = |expires_in: u64| {
        format!(
            r#"{{"client_id":"cid","login":"hueshift_bot","scopes":["user:manage:chat_color"],"user_id":"1","expires_in":{expires_in}}}"#
        )
    };

    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let keeper = &keeper;
        let _maintain = ex.spawn(async move {
            keeper.ready(Some(1)).await.unwrap();
            keeper.maintain(Some(1)).await;
        });
        let (_, mut auth) = accepted.recv().await.unwrap();
        // at start: validate; the token has 2 h 5 min left
        let req = serve_one(&mut auth, "200 OK", &valid(7500)).await;
        assert!(req.starts_with("GET /oauth2/validate"), "{req}");

        // an hour later: validate again (nothing else happened in between)
        assert_eq!(advance_to_next_sleep(&clock).await, VALIDATE_EVERY);
        let req = serve_one(&mut auth, "200 OK", &valid(3900)).await;
        assert!(req.starts_with("GET /oauth2/validate"), "{req}");

        // 3900 s left: refresh 10 minutes before the end, before the next hourly validation
        assert_eq!(advance_to_next_sleep(&clock).await, Duration::from_secs(3900) - REFRESH_AHEAD);
        let req = serve_one(&mut auth, "200 OK", r#"{"access_token":"tok2","refresh_token":"ref2","expires_in":14400,"scope":["user:manage:chat_color"],"token_type":"bearer"}"#).await;
        assert!(req.starts_with("POST /oauth2/token"), "{req}");
        assert!(settles(|| keeper.access().expose() == "tok2").await);

        // saved before use, with the expiry; the next check is the hourly validation
        let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(saved["users"][0]["access_token"], "tok2");
        assert_eq!(saved["users"][0]["refresh_token"], "ref2");
        assert!(saved["users"][0]["token_expiry"].as_str().unwrap().ends_with('Z'));
        assert_eq!(advance_to_next_sleep(&clock).await, VALIDATE_EVERY);
        let req = serve_one(&mut auth, "200 OK", &valid(10800)).await;
        assert!(req.contains("authorization: OAuth tok2\n"), "{req}");
    }));
}

#[test]
fn concurrent_refreshes_of_one_user_make_one_request() {
    let (_clock, accepted, keeper, _) = keeper_fixture("single", false);
    let stale = keeper.access();
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let first = ex.spawn(keeper.refresh(&stale));
        let second = ex.spawn(keeper.refresh(&stale));
        let (_, mut auth) = accepted.recv().await.unwrap();
        let req = serve_one(&mut auth, "200 OK", NEW_PAIR).await;
        assert!(req.starts_with("POST /oauth2/token"));
        // only one answer was ever written: a second request would leave its caller waiting
        assert_eq!(first.await.unwrap().expose(), "tok2");
        assert_eq!(second.await.unwrap().expose(), "tok2");
        assert!(accepted.is_empty());
    }));
}

#[test]
fn a_failed_save_keeps_the_new_tokens_in_memory() {
    let (_clock, accepted, keeper, _) = keeper_fixture("nosave", true); // the config cannot be written
    let stale = keeper.access();
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let refresh = ex.spawn(keeper.refresh(&stale));
        let (_, mut auth) = accepted.recv().await.unwrap();
        serve_one(&mut auth, "200 OK", NEW_PAIR).await;
        assert_eq!(refresh.await.unwrap().expose(), "tok2");
        assert_eq!(keeper.access().expose(), "tok2");
    }));
}

#[test]
fn a_failed_save_is_retried_with_backoff_until_it_works() {
    use twitch_colorchanger::tokens::SAVE_RETRY_FIRST;
    let (clock, accepted, keeper, config) = keeper_fixture("resave", true); // the directory is gone
    let stale = keeper.access();
    let ex = smol::LocalExecutor::new();
    smol::block_on(ex.run(async {
        let keeper = &keeper;
        let _task = ex.spawn(async move {
            keeper.refresh(&stale).await.unwrap();
            keeper.maintain(Some(1)).await;
        });
        let (_, mut auth) = accepted.recv().await.unwrap();
        serve_one(&mut auth, "200 OK", NEW_PAIR).await;
        assert!(settles(|| keeper.unsaved().is_some()).await);
        // still not writable at the first retry: the next one waits twice as long
        assert_eq!(advance_to_next_sleep(&clock).await, SAVE_RETRY_FIRST);
        assert_eq!(advance_to_next_sleep(&clock).await, SAVE_RETRY_FIRST * 2);
        // that retry has failed once the keeper sleeps again
        assert!(settles(|| clock.next_deadline().is_some()).await);
        // the disk is back
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, r#"{"users":[{"username":"hueshift_bot","access_token":"tok","refresh_token":"ref1","client_id":"cid","channels":["a"]}]}"#).unwrap();
        assert_eq!(advance_to_next_sleep(&clock).await, SAVE_RETRY_FIRST * 4);
        assert!(settles(|| keeper.unsaved().is_none()).await);
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
        assert_eq!(saved["users"][0]["refresh_token"], "ref2");
        assert_eq!(keeper.access().expose(), "tok2");
    }));
}
