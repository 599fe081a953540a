//! The figures `scripts/measure.sh` prints: the real binary against the fake Twitch, some
//! users sending own messages, and what the bot cost. It asserts only that the run worked;
//! the figures are read by a person (targets in docs/performance.md).
//!
//! Set by the environment: `FIGURES_TRANSPORT` (irc, eventsub), `FIGURES_USERS` (20),
//! `FIGURES_ROUNDS` (10: each round every user sends one message and the bot changes every
//! color), `FIGURES_GAP_MS` (0: the pause after each round), `FIGURES_IDLE_SECS` (10: then
//! nobody chats, and the bot's idle CPU is read), `FIGURES_STRACE` (a file: the system calls
//! of the rounds, counted by `strace -f -c`, are written there), `FIGURES_PERF` (set: the
//! bot's CPU over the rounds is also read with `perf stat -e task-clock`, to the microsecond,
//! and printed as `task_clock_ms`), `FIGURES_LOG` (a file: the bot's log is written there at
//! the end).
//!
//! Run: `cargo test --release --test figures -- --ignored --nocapture`.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use twitch_colorchanger::fake::FakeTwitch;

/// CPU time of process `pid` (user + system) in ms, from `/proc/<pid>/stat` (10 ms ticks).
fn cpu_ms(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (fields[11] + fields[12]) * 10 // utime and stime, fields 14 and 15 of the line
}

/// A field of `/proc/<pid>/status` (`VmHWM:` and so on), its number only.
fn proc_status(pid: u32, name: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned()
}

/// Starts a tracer (`strace`, `perf`) on process `pid`; it writes its counts once detached.
fn attach(program: &str, args: &[&str], pid: u32) -> std::process::Child {
    let child = std::process::Command::new(program)
        .args(args)
        .args(["-p", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    // a tracer says nothing once attached; give it the time to attach to every thread
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// SIGINT: the tracer detaches and writes its counts.
fn detach(mut tracer: std::process::Child) {
    std::process::Command::new("kill")
        .args(["-INT", &tracer.id().to_string()])
        .status()
        .unwrap();
    tracer.wait().unwrap();
}

/// The bot's `/metrics` text.
fn metrics(port: u16) -> String {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: figures\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    text
}

/// The reaction histogram (`twitch_colorchanger_reaction_seconds`) from `/metrics`: the
/// bucket bounds (ms) with their cumulative counts, the count and the sum (ms).
fn reaction(text: &str) -> (Vec<(f64, u64)>, u64, f64) {
    let name = "twitch_colorchanger_reaction_seconds";
    let mut buckets = Vec::new();
    let (mut count, mut sum) = (0, 0.0);
    for line in text.lines() {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        if let Some(bound) = key
            .strip_prefix(name)
            .and_then(|k| k.strip_prefix("_bucket{le=\""))
            .and_then(|k| k.strip_suffix("\"}"))
            .and_then(|b| b.parse::<f64>().ok())
            .filter(|b| b.is_finite())
        {
            buckets.push((bound * 1000.0, value.parse().unwrap()));
        } else if key == format!("{name}_count") {
            count = value.parse().unwrap();
        } else if key == format!("{name}_sum") {
            sum = value.parse::<f64>().unwrap() * 1000.0;
        }
    }
    (buckets, count, sum)
}

/// The bound (ms) of the first bucket holding the fraction `q` of the observations.
fn quantile(buckets: &[(f64, u64)], count: u64, q: f64) -> String {
    let want = (count as f64 * q).ceil() as u64;
    buckets
        .iter()
        .find(|(_, n)| *n >= want)
        .map_or_else(|| ">250".to_owned(), |(bound, _)| format!("<={bound}"))
}

#[test]
#[ignore = "prints figures; run by scripts/measure.sh"]
fn figures() {
    let transport = std::env::var("FIGURES_TRANSPORT").unwrap_or_else(|_| "irc".into());
    let users: usize = setting("FIGURES_USERS", 20);
    let rounds: usize = setting("FIGURES_ROUNDS", 10);
    let gap = Duration::from_millis(setting("FIGURES_GAP_MS", 0));
    let idle = Duration::from_secs(setting("FIGURES_IDLE_SECS", 10));

    let dir = temp_dir(&format!("figures-{transport}"));
    let fake = FakeTwitch::start(&dir).unwrap();
    let mut entries = Vec::new();
    for i in 0..users {
        let login = format!("user_{i:04}");
        let token = format!("tok{i:027}");
        fake.add_user(&login, &i.to_string(), &token, i % 2 == 0);
        entries.push(
            json!({"username": login, "access_token": token, "client_id": "cid",
            "channels": [format!("chan_{i}"), "common"], "is_prime_or_turbo": i % 2 == 0,
            "chat_transport": transport}),
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("twitch_colorchanger.conf");
    let doc = json!({ "users": entries, "http_listen": format!("127.0.0.1:{port}") });
    std::fs::write(&config, doc.to_string()).unwrap();
    let started = Instant::now();
    let bot = Bot::start_with(&fake, &config, &[("DEBUG", "false")]);
    let pid = bot.child.id();
    assert!(
        fake.wait(WAIT * 4, |s| (0..users).all(|i| {
            let login = format!("user_{i:04}");
            s.joined(&login).contains("common") || s.reading(&i.to_string()).contains("common")
        })),
        "{}",
        bot.output()
    );
    let ready = started.elapsed();

    let strace = std::env::var_os("FIGURES_STRACE")
        .map(|out| attach("strace", &["-f", "-c", "-o", out.to_str().unwrap()], pid));
    let perf_out = dir.join("perf.csv");
    let perf = std::env::var_os("FIGURES_PERF").map(|_| {
        let out = perf_out.to_str().unwrap();
        attach(
            "perf",
            &["stat", "-e", "task-clock", "-x", ",", "-o", out],
            pid,
        )
    });
    let cpu_before = cpu_ms(pid);
    let mut round_times = Vec::new();
    for round in 1..=rounds {
        let sent = Instant::now();
        for i in 0..users {
            // in the user's own channel: a message in "common" reaches every user's connection
            fake.privmsg(
                &format!("chan_{i}"),
                &format!("user_{i:04}"),
                &i.to_string(),
                "hi",
            );
        }
        assert!(fake.wait(WAIT, |s| (0..users)
            .all(|i| s.changes(&i.to_string()).len() >= round)));
        round_times.push(sent.elapsed());
        std::thread::sleep(gap);
    }
    let cpu_changes = cpu_ms(pid) - cpu_before;
    let task_clock = perf.map(|perf| {
        detach(perf);
        // "1234.56,msec,task-clock,…"
        let text = std::fs::read_to_string(&perf_out).unwrap();
        text.lines()
            .find(|l| l.contains("task-clock"))
            .and_then(|l| l.split(',').next())
            .unwrap_or("?")
            .to_owned()
    });
    if let Some(strace) = strace {
        detach(strace);
    }
    round_times.sort();
    let changes = fake.state().puts.len();

    // then idle: what the bot costs while nobody chats (keepalives, timers)
    let idle_start = cpu_ms(pid);
    std::thread::sleep(idle);
    let cpu_idle = cpu_ms(pid) - idle_start;

    let (buckets, count, sum) = reaction(&metrics(port));
    let per_200 = cpu_changes as f64 * 200.0 / changes.max(1) as f64;
    println!(
        "figures: transport={transport} users={users} ready_s={:.2} color_changes={changes} \
         cpu_ms={cpu_changes} cpu_ms_per_200_changes={per_200:.0} idle_cpu_ms_in_{}s={cpu_idle} \
         round_ms_median={:.1} reaction_ms_p50={} reaction_ms_p99={} reaction_ms_mean={:.3} \
         reactions={count} VmHWM_kB={} VmRSS_kB={} threads={} task_clock_ms={}",
        ready.as_secs_f64(),
        idle.as_secs(),
        round_times[round_times.len() / 2].as_secs_f64() * 1000.0,
        quantile(&buckets, count, 0.5),
        quantile(&buckets, count, 0.99),
        sum / count.max(1) as f64,
        proc_status(pid, "VmHWM:"),
        proc_status(pid, "VmRSS:"),
        proc_status(pid, "Threads:"),
        task_clock.as_deref().unwrap_or("-"),
    );
    let (status, _, out) = bot.terminate();
    if let Some(path) = std::env::var_os("FIGURES_LOG") {
        // the bot's own log, for a person to read (an EMFILE line, say)
        std::fs::write(path, &out).unwrap();
    }
    assert!(status.success());
}
