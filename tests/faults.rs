//! The fault suite: one test per way the network, Twitch or the disk can misbehave, each with
//! the outcome it must have. HTTP faults run over the in-memory transport on a virtual clock;
//! chat and config faults run the real binary against the fake Twitch or a closed port.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use twitch_colorchanger::clock::{Clock, VirtualClock};
use twitch_colorchanger::endpoint::Endpoint;
use twitch_colorchanger::fake::FakeTwitch;
use twitch_colorchanger::helix::{ApiError, Credentials, Helix, User};
use twitch_colorchanger::http::{HttpClient, HttpError, MAX_RESPONSE};
use twitch_colorchanger::secret::Secret;
use twitch_colorchanger::transport::{Duplex, MemoryTransport};

async fn read_head(conn: &mut Duplex) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
}

/// `GET /helix/users` answered by `serve` (given the connection and the clock), on virtual time.
fn helix_get_user<F, Fut>(serve: F) -> Result<User, ApiError>
where
    F: FnOnce(Duplex, VirtualClock) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let clock = VirtualClock::new();
    let (transport, accepted) = MemoryTransport::new();
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let http = Arc::new(HttpClient::new(
        Arc::new(transport),
        dyn_clock,
        Duration::from_secs(15),
    ));
    let helix = Helix::new(
        http,
        Endpoint {
            tls: true,
            host: "api.twitch.tv".into(),
            port: 443,
        },
        "/helix".into(),
    );
    let token = Secret::new("tok");
    smol::block_on(async {
        let server = async {
            let (_, mut conn) = accepted.recv().await.unwrap();
            read_head(&mut conn).await;
            serve(conn, clock.clone()).await;
        };
        let call = helix.get_user(Credentials {
            token: &token,
            client_id: "cid",
        });
        smol::future::zip(server, call).await.1
    })
}

fn http_error(result: Result<User, ApiError>) -> HttpError {
    match result {
        Err(ApiError::Http { peer, error }) => {
            assert_eq!(
                peer, "https://api.twitch.tv:443/helix",
                "the error names the peer"
            );
            error
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[test]
fn a_5xx_is_reported_with_twitchs_message() {
    let result = helix_get_user(|mut conn, _| async move {
        let body = r#"{"error":"Service Unavailable","status":503,"message":"upstream down"}"#;
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(answer.as_bytes()).await.unwrap();
    });
    match result {
        Err(ApiError::Status {
            status: 503,
            message,
            ..
        }) => assert_eq!(message, "upstream down"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_reset_in_the_middle_of_the_head_is_a_closed_connection() {
    let result = helix_get_user(|mut conn, _| async move {
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Le")
            .await
            .unwrap();
    });
    assert_eq!(http_error(result), HttpError::Closed);
}

#[test]
fn a_truncated_chunked_body_is_a_closed_connection() {
    let result = helix_get_user(|mut conn, _| async move {
        conn.write_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1e\r\n{\"data\":[{\"id\"",
        )
        .await
        .unwrap();
    });
    assert_eq!(http_error(result), HttpError::Closed);
}

#[test]
fn a_content_length_longer_than_the_body_is_a_closed_connection() {
    let result = helix_get_user(|mut conn, _| async move {
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":[]}")
            .await
            .unwrap();
    });
    assert_eq!(http_error(result), HttpError::Closed);
}

#[test]
fn a_ten_mib_body_is_refused_without_reading_it_all() {
    let result = helix_get_user(|mut conn, _| async move {
        let _ = conn
            .write_all(
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", 10 << 20).as_bytes(),
            )
            .await;
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < 10 << 20 {
            if conn.write_all(&chunk).await.is_err() {
                break; // the client gave up and closed
            }
            sent += chunk.len();
        }
        // the announced length alone is over the limit: refused before any of the body
        assert!(sent <= MAX_RESPONSE, "the client read {sent} bytes");
    });
    assert_eq!(http_error(result), HttpError::TooLarge);
}

#[test]
fn a_chunked_body_growing_past_1_mib_is_refused_midway() {
    let result = helix_get_user(|mut conn, _| async move {
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .await;
        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
        let mut sent = 0;
        while sent < 10 << 20 {
            if conn.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
            sent += 0x10000;
        }
        assert!(sent < 2 * MAX_RESPONSE, "the client read {sent} bytes");
    });
    assert_eq!(http_error(result), HttpError::TooLarge);
}

#[test]
fn a_one_byte_per_second_trickle_times_out_on_the_deadline() {
    let result = helix_get_user(|mut conn, clock| async move {
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".iter() {
            if conn.write_all(&[*byte]).await.is_err() {
                return;
            }
            for _ in 0..100 {
                smol::future::yield_now().await;
            }
            clock.advance(Duration::from_secs(1));
        }
    });
    assert_eq!(http_error(result), HttpError::Timeout);
}

#[test]
fn garbage_instead_of_http_is_malformed() {
    let result = helix_get_user(|mut conn, _| async move {
        conn.write_all(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
            .await
            .unwrap();
    });
    assert!(matches!(http_error(result), HttpError::Malformed(_)));
}

#[test]
fn a_refused_chat_connection_is_retried_with_growing_pauses() {
    let (fake, _, config) = hueshift("fault-refused");
    // a port nobody listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    // plain tcp:// only when asked for, and said
    let irc = format!("tcp://127.0.0.1:{port}");
    let bot = Bot::start_with(&fake, &config, &[("TWITCH_IRC_URL", &irc)]);
    assert!(bot.wait_log("cannot connect to", 3), "{}", bot.output());
    assert!(bot.output().contains(&format!(
        "TWITCH_IRC_URL is plain text ({irc}): tokens travel unencrypted"
    )));
    let delays = reconnect_delays(&bot.output());
    assert!(delays.len() >= 3, "{delays:?}");
    assert!(
        delays[1] >= 1.0 && delays[2] >= 2.0,
        "backoff grows: {delays:?}"
    );
    assert_no_secrets(&bot.output());
}

/// The "reconnecting in N.Ns" figures, in order.
fn reconnect_delays(output: &str) -> Vec<f64> {
    output
        .split("reconnecting in ")
        .skip(1)
        .filter_map(|rest| rest.split('s').next()?.parse().ok())
        .collect()
}

#[test]
fn a_reconnect_storm_is_met_with_backoff() {
    let (fake, _, config) = hueshift("fault-storm");
    let bot = Bot::start(&fake, &config);
    for n in 1..=3 {
        assert!(
            fake.wait(WAIT, |s| s.logins("hueshift_bot") == n
                && !s.open_conns("hueshift_bot").is_empty()),
            "{}",
            bot.output()
        );
        fake.reconnect_all();
    }
    assert!(
        fake.wait(WAIT, |s| s.logins("hueshift_bot") == 4),
        "{}",
        bot.output()
    );
    let delays = reconnect_delays(&bot.output());
    assert_eq!(delays.len(), 3, "{delays:?}");
    assert!(
        delays[1] >= 1.0 && delays[2] >= 2.0,
        "backoff grows: {delays:?}"
    );
}

#[test]
fn an_unknown_certificate_authority_is_refused_and_nothing_is_sent_in_clear() {
    let (fake, _, config) = hueshift("fault-ca");
    // trust another fake's CA only: the chat server's certificate is unknown
    let other_dir = temp_dir("fault-ca-other");
    let other = FakeTwitch::start(&other_dir).unwrap();
    let api_ca = other.ca_file().to_str().unwrap().to_owned();
    let bot = Bot::start_with(&fake, &config, &[("TWITCH_CA_FILE", &api_ca)]);
    assert!(
        bot.wait_log("invalid peer certificate", 1),
        "{}",
        bot.output()
    );
    assert!(
        fake.state().irc.iter().all(|c| c.lines.is_empty()),
        "nothing in clear"
    );
    assert!(fake.state().requests.is_empty(), "no Helix request either");
    assert_no_secrets(&bot.output());
}

#[test]
fn a_certificate_for_another_name_is_refused_and_nothing_is_sent_in_clear() {
    let dir = temp_dir("fault-name");
    let fake = FakeTwitch::start_as(&dir, &["irc.example.org"]).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("invalid peer certificate", 1),
        "{}",
        bot.output()
    );
    assert!(
        bot.output().contains("not valid for name"),
        "{}",
        bot.output()
    );
    assert!(fake.state().irc.iter().all(|c| c.lines.is_empty()));
    assert!(fake.state().oauth.is_empty(), "the token never left");
}

#[test]
fn a_clock_behind_is_said_once_shown_in_status_and_the_bot_connects_once_it_checks_out() {
    let (fake, _, config) = hueshift("clock-behind");
    // every certificate looks "not valid yet" to a machine whose clock is behind
    fake.certificate_not_valid_yet(true);
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("this machine's clock looks behind", 1),
        "{}",
        bot.output()
    );
    // said at WARN, with the machine's time and the certificate's validity as UTC dates
    let output = bot.output();
    let said: Vec<&str> = output
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("clock looks behind"))
        .collect();
    assert_eq!(said.len(), 1, "{output}");
    assert!(
        said[0].contains(" WARN ")
            && said[0].contains("valid only from 2049-12-31T00:00:00Z")
            && said[0].contains("connects as soon as the certificate checks out"),
        "{}",
        said[0]
    );
    // status and the status document say it too
    assert!(
        eventually(|| read_status(&config).is_ok_and(|d| d.clock.is_some())),
        "{}",
        bot.output()
    );
    let out = bot_command()
        .arg("--status-file")
        .arg(status_path(&config))
        .args(["status", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("warning: this machine's clock looks behind"),
        "{table}"
    );
    // the time is right again (NTP caught up): the next try connects
    fake.certificate_not_valid_yet(false);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    assert!(
        bot.wait_log(
            "certificate checks out: this machine's clock is right now",
            1
        ),
        "{}",
        bot.output()
    );
    assert!(
        eventually(|| read_status(&config).is_ok_and(|d| d.clock.is_none())),
        "{}",
        bot.output()
    );
    // retried quietly: one warning, no error line per try
    let output = bot.output();
    let warned = output
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && l.contains("clock looks behind"));
    assert_eq!(warned.count(), 1, "{output}");
    assert!(
        output.contains("DEBUG [hueshift_bot] cannot validate the access token"),
        "the retries are debug lines: {output}"
    );
    assert!(!output.contains(" ERROR "), "{output}");
    let (status, _, output) = bot.terminate();
    assert!(status.success(), "{output}");
}

#[test]
fn a_1_mib_line_and_10000_foreign_messages_change_nothing() {
    let (fake, _, config) = hueshift("fault-lines");
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]));
    fake.broadcast(&format!("PRIVMSG #chan :{}", "x".repeat(1 << 20)));
    for i in 0..10_000 {
        fake.privmsg("chan", "someone_else", "999", &format!("message {i}"));
    }
    sync(&fake, "hueshift_bot", "after-the-flood");
    assert!(
        fake.state().puts.is_empty(),
        "no Helix call for anyone else's message"
    );
    assert_eq!(
        fake.state().logins("hueshift_bot"),
        1,
        "the connection lives"
    );
    fake.privmsg("chan", "hueshift_bot", "1", "mine");
    assert!(
        fake.wait(WAIT, |s| s.changes("1").len() == 1),
        "{}",
        bot.output()
    );
    assert!(
        bot.wait_log("line longer than 8192 bytes", 1),
        "{}",
        bot.output()
    );
}

#[test]
fn empty_null_wrong_type_and_directory_configs_exit_2_naming_the_file() {
    let dir = temp_dir("fault-configs");
    for (name, text, want) in [
        ("empty.conf", "", "invalid JSON: EOF while parsing a value"),
        (
            "null.conf",
            "null",
            "expected an object with a \"users\" array",
        ),
        (
            "number.conf",
            "{\"users\": 5}",
            "expected an object with a \"users\" array",
        ),
        (
            "list.conf",
            "[]",
            "expected an object with a \"users\" array",
        ),
        (
            "string-user.conf",
            "{\"users\": [\"me\"]}",
            "users[0]: expected an object",
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let out = bot_command()
            .arg("--config")
            .arg(&path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(&path.display().to_string()), "{name}: {err}");
        assert!(err.contains(want), "{name}: {err}");
    }
    let out = bot_command()
        .arg("--config")
        .arg(&dir)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a regular file (a directory)"), "{err}");
}
