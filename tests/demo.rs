//! `demo`: the real bot against the built-in Twitch look-alike, as a newcomer runs it. It must
//! show every step of its chat, end by itself with exit 0, and leave nothing behind: the
//! temporary directory it used is gone, and nothing was written anywhere else.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{bot_command, temp_dir, wait_exit, WAIT};

/// `demo ARGS` with its own empty TMPDIR and working directory, and no Twitch variables.
fn demo(dir: &Path, args: &[&str]) -> Command {
    let (tmp, cwd) = (dir.join("tmp"), dir.join("cwd"));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let mut cmd = bot_command();
    cmd.arg("demo")
        .args(args)
        .current_dir(&cwd)
        .env("TMPDIR", &tmp)
        // a config of the person's own, or their account in the environment, plays no part
        .env("TWITCH_CONF_FILE", dir.join("mine.conf"))
        .env("TWITCH_USERNAME", "someone_real")
        .env("TWITCH_ACCESS_TOKEN", "realtokenrealtokenrealtoken123")
        .env("TWITCH_IRC_URL", "tls://192.0.2.1:6697")
        .env_remove("NO_COLOR");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("demo ended by itself within 60 s")
        .unwrap()
}

fn assert_left_nothing(dir: &Path) {
    for sub in ["tmp", "cwd"] {
        let left: Vec<_> = std::fs::read_dir(dir.join(sub))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(left.is_empty(), "{sub}: left behind {left:?}");
    }
    assert!(!dir.join("mine.conf").exists());
}

fn check_story(out: &str) {
    // every step of the chat, in order
    let steps = [
        "Twitch look-alike",
        "over IRC in",
        "hello chat!",
        "not demo_user's: no change",
        "how is everyone today?",
        "ccc hot_pink               → hot_pink  (asked for with ccc)",
        "bot back in chat after",
        "back already",
        "ccm rainbow                → rainbow mode, saved in the config",
        "look at my name",
        "Turbo runs out",
        "refused: Turbo/Prime only",
        "\"is_prime_or_turbo\": false",
        "named colors it is",
        "over IRC: 9 messages from demo_user, 8 color changes",
        "1 refused hex color",
    ];
    let mut rest = out;
    for step in steps {
        let at = rest
            .find(step)
            .unwrap_or_else(|| panic!("{step:?} missing or out of order in:\n{out}"));
        rest = &rest[at + step.len()..];
    }
    // the rainbow moves 30° a message while hex colors are allowed
    let hues: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("look at my name") || l.contains("one hue further"))
        .collect();
    assert_eq!(hues.len(), 2, "{out}");
    for line in hues {
        let (from, to) = line
            .split_once("(hue ")
            .and_then(|(_, h)| h.split_once("° → "))
            .map(|(a, b)| (a, b.trim_end_matches("°)")))
            .unwrap_or_else(|| panic!("no hue in {line:?}"));
        let (from, to): (u32, u32) = (from.parse().unwrap(), to.parse().unwrap());
        assert_eq!(to, (from + 30) % 360, "{line}");
    }
    // a pipe gets plain text, within 80 columns
    assert!(!out.contains('\x1b'), "escape codes on a pipe:\n{out}");
    for line in out.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line:?}");
    }
}

#[test]
fn demo_over_irc_shows_each_change_and_leaves_nothing() {
    let dir = temp_dir("demo-irc");
    let out = run(demo(&dir, &["--pause", "0"]).env("NO_COLOR", "1"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    check_story(&stdout);
    // the bot's log shows errors only, and there were none
    assert_eq!(stderr, "");
    assert!(!stdout.contains("someone_real") && !stdout.contains("192.0.2.1"));
    assert_left_nothing(&dir);
}

#[test]
fn verbose_demo_shows_the_bots_own_log_without_tokens() {
    let dir = temp_dir("demo-verbose");
    let out = run(&mut demo(&dir, &["--pause", "0", "--verbose"]));
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for seen in [
        "ccc: setting color hot_pink",
        "ccm rainbow: colors now",
        "Twitch refused a hex color but took a named one",
    ] {
        assert!(stderr.contains(seen), "{seen:?} not in:\n{stderr}");
    }
    assert!(!stderr.contains("demoaccesstoken") && !stderr.contains("demorefreshtoken"));
    assert_left_nothing(&dir);
}

#[test]
fn an_interrupted_demo_still_removes_its_directory() {
    let dir = temp_dir("demo-interrupted");
    let mut child = demo(&dir, &["--pause", "600000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait for the bot to be in chat (the long pause follows), then stop it
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("joined #demo_user") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(WAIT).expect("the bot joined");
    let temp: Vec<_> = std::fs::read_dir(dir.join("tmp")).unwrap().collect();
    assert_eq!(temp.len(), 1, "one temporary directory while it runs");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("demo failed: interrupted"), "{stderr}");
    assert_left_nothing(&dir);
}
