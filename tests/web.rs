//! The HTTP listener, end to end: the real binary with `http_listen` against the fake
//! Twitch. Every endpoint (the page with its swatches and a device code waiting, the status
//! document, the metrics, the probes) and every bound (a slow client, an oversized head, 20
//! connections at once, methods other than GET and HEAD).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use twitch_colorchanger::fake::FakeTwitch;

const CLIENT: &str = "fakeclientid0000000000000000000";
/// Messages each changing user sends.
const ROUNDS: usize = 8;

/// The address the bot says it serves on.
fn address(bot: &Bot) -> SocketAddr {
    assert!(
        bot.wait_log("status page on http://", 1),
        "{}",
        bot.output()
    );
    let out = bot.output();
    let at = out.find("status page on http://").unwrap() + "status page on http://".len();
    out[at..].split('/').next().unwrap().parse().unwrap()
}

/// Sends `request` as it is and returns the whole answer (the server closes).
fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let answer = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    split(&answer)
}

/// Status, head and body of an answer.
fn split(answer: &str) -> (u16, String, String) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Two users changing colors and a third waiting for its device code, served on an
/// ephemeral loopback port.
fn three_users(name: &str) -> (FakeTwitch, std::path::PathBuf, Bot) {
    let dir = temp_dir(name);
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_client(CLIENT, Some(SECRET));
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    fake.add_user("lumen_wave", "2", TOKEN_B, false);
    fake.add_user("new_user", "3", "", true);
    let config = dir.join("twitch_colorchanger.conf");
    let mut named = user_entry("lumen_wave", TOKEN_B, &["chan"], false);
    named["chat_transport"] = json!("eventsub");
    let doc = json!({
        "http_listen": "127.0.0.1:0",
        "users": [
            user_entry("hueshift_bot", TOKEN_A, &["chan"], true),
            named,
            {"username": "new_user", "client_id": CLIENT, "channels": ["chan"]},
        ]
    });
    std::fs::write(&config, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let bot = Bot::start(&fake, &config);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    assert!(
        fake.wait(WAIT, |s| s.reading("2").contains("chan")),
        "{}",
        bot.output()
    );
    (fake, config, bot)
}

fn metrics_check(text: &str) {
    let Ok(mut promtool) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    else {
        // .ci/run installs promtool; the exposition's unit test checks it strictly anyway
        eprintln!("promtool not found: /metrics checked by the unit test's parser only");
        return;
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every metric the shipped alert rules and dashboard query (deploy/prometheus/) is one the
/// bot serves: a renamed metric would otherwise leave an alert that can never fire.
fn shipped_queries_name_served_metrics(text: &str) {
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus");
    let mut named = 0;
    for file in ["alerts.yml", "dashboard.json"] {
        let shipped = std::fs::read_to_string(root.join(file)).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&shipped).expect("the dashboard is valid JSON");
        }
        for (at, _) in shipped.match_indices("twitch_colorchanger_") {
            let name: String = shipped[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                served.contains(&family),
                "{file} queries {name}, which /metrics does not serve"
            );
            named += 1;
        }
    }
    assert!(
        named > 10,
        "the shipped rules and dashboard query the bot's metrics"
    );
}

fn status_json(config: &Path) -> Value {
    let out = bot_command()
        .args(["status", "--json", "--config"])
        .arg(config)
        .env_remove("TWITCH_CONF_FILE")
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_endpoint_answers_with_what_the_bot_is_doing() {
    let (fake, config, bot) = three_users("web-endpoints");
    let addr = address(&bot);
    for n in 1..=ROUNDS {
        fake.privmsg("chan", "hueshift_bot", "1", "hello");
        fake.privmsg("chan", "lumen_wave", "2", "hi");
        assert!(fake.wait(WAIT, |s| s.changes("1").len() == n
            && s.changes("2").len() == n));
    }
    // the page: every user, the color in use and the last ones as swatches with their text
    assert!(
        eventually(|| get(addr, "/").2.matches("<li><span class=sw").count() == 2 * ROUNDS),
        "{}",
        get(addr, "/").2
    );
    let (status, head, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/html; charset=utf-8"),
        "{head}"
    );
    for user in ["hueshift_bot", "lumen_wave", "new_user"] {
        assert!(page.contains(&format!("<h2>{user}<span")), "{user}: {page}");
    }
    let last = &fake.state().changes("1")[ROUNDS - 1];
    assert!(page.contains(&format!("<b>{last}</b>")), "{page}");
    assert!(page.contains("EventSub · #chan"), "{page}");
    // the user waiting for a person: the link, the code and a QR code, on the page
    assert!(bot.wait_log("ACTION REQUIRED", 1), "{}", bot.output());
    let code = fake.state().devices.last().unwrap().user_code.clone();
    let (_, _, page) = get(addr, "/");
    assert!(page.contains(&format!("<code>{code}</code>")), "{page}");
    assert!(page.contains("<svg"), "{page}");
    if let Some(dir) = std::env::var_os("TCC_PAGE_OUT") {
        // scripts/screenshot.sh renders this page in a headless browser
        std::fs::write(Path::new(&dir).join("status-page.html"), &page).unwrap();
    }

    // the status document, as `status --json` prints it
    let (status, head, body) = get(addr, "/status.json");
    assert_eq!(status, 200);
    assert!(head.contains("Content-Type: application/json"), "{head}");
    let served: Value = serde_json::from_str(&body).unwrap();
    let printed = status_json(&config);
    assert_eq!(served["users"], printed["users"]);
    assert_eq!(
        served["users"][0]["recent_colors"]
            .as_array()
            .unwrap()
            .len(),
        ROUNDS
    );

    // metrics: the exact content type, valid text, the figures
    let (status, head, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    metrics_check(&text);
    for line in [
        "twitch_colorchanger_color_changes_total{user=\"hueshift_bot\"} 8",
        "twitch_colorchanger_own_messages_total{user=\"lumen_wave\"} 8",
        "twitch_colorchanger_chat_connected{user=\"lumen_wave\",transport=\"eventsub\"} 1",
        "twitch_colorchanger_chat_connected{user=\"new_user\",transport=\"irc\"} 0",
        "twitch_colorchanger_errors_total{user=\"hueshift_bot\",kind=\"color\"} 0",
        "twitch_colorchanger_awaiting_authorisation{user=\"new_user\"} 1",
        "twitch_colorchanger_awaiting_authorisation{user=\"hueshift_bot\"} 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
    let helix = text
        .lines()
        .find(|l| l.starts_with("twitch_colorchanger_helix_request_duration_seconds_count "))
        .unwrap();
    let count: u64 = helix.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2 * ROUNDS as u64, "{helix}");
    assert!(text.contains("twitch_colorchanger_build_info{version=\""));
    assert!(text.contains("\ntwitch_colorchanger_resident_memory_bytes "));
    shipped_queries_name_served_metrics(&text);

    // probes: alive; ready only once every user is in chat or legitimately waiting
    assert_eq!(get(addr, "/livez").0, 200);
    let (status, _, body) = get(addr, "/readyz");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("healthy: pid "), "{body}");
    // HEAD: the head without the body
    let answer = exchange(addr, b"HEAD /livez HTTP/1.1\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\r\n\r\n"),
        "{answer}"
    );
    assert_eq!(get(addr, "/nope").0, 404);
    assert_no_secrets(&page);
    assert_no_secrets(&text);
    let (exit, _, out) = bot.terminate();
    assert!(exit.success(), "{out}");
    assert_no_secrets(&out);
}

#[test]
fn a_user_without_chat_shows_as_reconnecting_while_the_process_stays_live() {
    let dir = temp_dir("web-readyz");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    let mut doc = json!({"users": [user_entry("hueshift_bot", TOKEN_A, &["chan"], true)]});
    doc["http_listen"] = json!("127.0.0.1:0");
    let config = dir.join("twitch_colorchanger.conf");
    std::fs::write(&config, doc.to_string()).unwrap();
    // the chat server refuses: the user stays without chat
    fake.update(|s| {
        s.irc_refused.insert("hueshift_bot".into());
    });
    let bot = Bot::start_with(&fake, &config, &[("TWITCH_IRC_URL", "tls://127.0.0.1:1")]);
    let addr = address(&bot);
    assert_eq!(get(addr, "/livez").0, 200);
    // /readyz fails only after 5 minutes without chat (the health rule's grace, unit-tested
    // in status); meanwhile the page says how chat stands
    let (status, _, page) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(
        eventually(|| get(addr, "/").2.contains("state bad\">reconnecting")),
        "{page}"
    );
    drop(bot);
}

#[test]
fn the_listener_is_bounded_and_answers_only_get_and_head() {
    let (_fake, _config, bot) = three_users("web-bounds");
    let addr = address(&bot);
    // other methods: 405 with Allow
    let (status, head, _) = split(&exchange(
        addr,
        b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ));
    assert_eq!(status, 405);
    assert!(head.contains("Allow: GET, HEAD"), "{head}");
    // an oversized head: 431, without waiting for the rest
    let mut big = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let (status, _, _) = split(&exchange(addr, &big));
    assert_eq!(status, 431);
    // garbage: 400
    assert_eq!(split(&exchange(addr, b"hello there\r\n\r\n")).0, 400);

    // a slow client that never finishes its head is answered 408 and closed in time, and
    // does not hold up the others
    let started = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    assert_eq!(get(addr, "/livez").0, 200);
    slow.set_read_timeout(Some(WAIT)).unwrap();
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "{took:?}"
    );

    // 20 connections at once, each holding its slot: a handful are served, the rest closed
    // at once, and the listener serves again as soon as they are gone
    let held: Vec<TcpStream> = (0..20).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut closed = 0;
    for mut stream in held {
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        if matches!(stream.read(&mut byte), Ok(0)) {
            closed += 1;
        }
    }
    assert!(
        (20 - 8..20).contains(&closed),
        "{closed} of 20 closed at once"
    );
    assert!(eventually(|| get(addr, "/livez").0 == 200));
    // and the bot itself carried on
    let (exit, _, out) = bot.terminate();
    assert!(exit.success(), "{out}");
}

#[test]
fn a_bad_listen_address_is_named_and_a_public_one_warned_about() {
    let dir = temp_dir("web-config");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    let config = write_config(
        &dir,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let out = bot_command()
        .args(["--config"])
        .arg(&config)
        .env("TWITCH_HTTP_LISTEN", "localhost")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "environment variable TWITCH_HTTP_LISTEN: \"localhost\" is not an address and port"
        ),
        "{text}"
    );
    edit_in_place(&config, |doc| doc["http_listen"] = json!(8080));
    let out = bot_command()
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"http_listen\": expected a string"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    edit_in_place(&config, |doc| doc["http_listen"] = json!("0.0.0.0:0"));
    let bot = Bot::start(&fake, &config);
    assert!(
        bot.wait_log("with no authentication", 1),
        "{}",
        bot.output()
    );
    let port = address(&bot).port();
    assert_eq!(
        get(SocketAddr::from(([127, 0, 0, 1], port)), "/livez").0,
        200
    );
}
