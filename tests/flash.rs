//! The config's disk (a router's flash, a Pi's SD card) is written only when tokens or
//! settings change: from start to stop, through 1,000 color changes, a reload and idle time,
//! nothing under the config's directory is created, written, renamed or removed, while the
//! status file stays up to date in its runtime directory.
//!
//! `scripts/flash-writes.sh` runs the same test on the release binary with 10 idle minutes
//! and `strace -f -c` attached to the bot, and prints the system call counts.

mod common;

use std::io::ErrorKind;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use inotify::{Inotify, WatchMask};
use twitch_colorchanger::fake::FakeTwitch;

const CHANGES: usize = 1000;

/// Every event under the watched directory so far, as `name: mask`.
fn events(inotify: &mut Inotify) -> Vec<String> {
    let mut buffer = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match inotify.read_events(&mut buffer) {
            Ok(events) => {
                let before = seen.len();
                seen.extend(events.map(|e| format!("{:?}: {:?}", e.name, e.mask)));
                if seen.len() == before {
                    return seen;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return seen,
            Err(e) => panic!("inotify: {e}"),
        }
    }
}

/// `strace -f -c` attached to the bot when `TCC_STRACE` is set (by the script).
fn attach_strace(pid: u32, out: &std::path::Path) -> Option<Child> {
    std::env::var_os("TCC_STRACE")?;
    let child = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::null())
        .spawn()
        .expect("strace runs");
    // strace says nothing when it is attached; the bot's threads are traced from the next
    // system call on, and the first color change is seconds away
    std::thread::sleep(Duration::from_millis(500));
    Some(child)
}

#[test]
fn the_config_disk_is_not_written_while_tokens_and_settings_are_unchanged() {
    let idle: u64 = std::env::var("TCC_FLASH_IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let dir = temp_dir("flash");
    let fake = FakeTwitch::start(&dir).unwrap();
    fake.add_user("hueshift_bot", "1", TOKEN_A, true);
    let etc = dir.join("etc");
    std::fs::create_dir(&etc).unwrap();
    let config = write_config(
        &etc,
        vec![user_entry("hueshift_bot", TOKEN_A, &["chan"], true)],
    );
    let mut inotify = Inotify::init().unwrap();
    inotify
        .watches()
        .add(
            &etc,
            WatchMask::MODIFY
                | WatchMask::CLOSE_WRITE
                | WatchMask::CREATE
                | WatchMask::DELETE
                | WatchMask::MOVED_FROM
                | WatchMask::MOVED_TO
                | WatchMask::ATTRIB,
        )
        .unwrap();

    let bot = Bot::start_with(&fake, &config, &[("DEBUG", "false")]);
    assert!(joined(&fake, "hueshift_bot", &["chan"]), "{}", bot.output());
    let trace = dir.join("strace.txt");
    let strace = attach_strace(bot.child.id(), &trace);
    for n in 1..=CHANGES {
        fake.privmsg("chan", "hueshift_bot", "1", "hello");
        assert!(
            fake.wait(WAIT, |s| s.changes("1").len() >= n),
            "change {n}: {}",
            bot.output()
        );
    }
    // a reload reads the config and changes nothing
    Command::new("kill")
        .args(["-HUP", &bot.child.id().to_string()])
        .status()
        .unwrap();
    assert!(bot.wait_log("SIGHUP: reloading", 1), "{}", bot.output());
    std::thread::sleep(Duration::from_secs(idle));
    // the status file, elsewhere, has caught up with every change
    assert!(
        eventually(|| read_status(&config).is_ok_and(|d| d.users[0].changes == CHANGES as u64)),
        "{}",
        bot.output()
    );
    let status_file = status_path(&config);
    assert!(!status_file.starts_with(&etc), "{}", status_file.display());
    if let Some(mut strace) = strace {
        Command::new("kill")
            .args(["-INT", &strace.id().to_string()])
            .status()
            .unwrap();
        strace.wait().unwrap();
        let summary = std::fs::read_to_string(&trace).unwrap();
        let count = |call: &str| {
            summary
                .lines()
                .find(|l| l.split_whitespace().last() == Some(call))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
                .unwrap_or_else(|| "0".into())
        };
        println!(
            "flash: {CHANGES} color changes, a reload, {idle}s idle: fsync={} fdatasync={} rename={} renameat={} renameat2={} openat={} write={} (whole process, strace -f -c)",
            count("fsync"),
            count("fdatasync"),
            count("rename"),
            count("renameat"),
            count("renameat2"),
            count("openat"),
            count("write"),
        );
    }
    let (exit, _, out) = bot.terminate();
    assert!(exit.success(), "{out}");
    let seen = events(&mut inotify);
    println!(
        "flash: events under the config's directory from start to stop: {}",
        seen.len()
    );
    assert!(
        seen.is_empty(),
        "the bot wrote beside its config: {seen:?}\n{out}"
    );
    assert_eq!(
        std::fs::read_dir(&etc).unwrap().count(),
        1,
        "only the config is there"
    );
}
