//! The first run at a terminal: no config yet, so the bot asks for the three things only a
//! person knows (the login, the app's client id, the channels), writes the file, and goes
//! on to the device-code flow. Elsewhere (a service, a container) a missing config stays an
//! error that says how to create one.

use std::io::{self, BufRead, Write};
use std::path::Path;

use serde_json::{json, Value};

use crate::config;

/// Asks on `out` and reads the answers from `input`; each answer is checked as the config
/// loader would check it, and asked again until it passes. `None` when the input ended (Ctrl-D)
/// before every question was answered.
pub fn ask(
    path: &Path,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> io::Result<Option<Value>> {
    writeln!(
        out,
        "There is no config at {} yet: three questions make one.\n\
         (Ctrl-C stops; `twitch-colorchanger demo` shows the bot without an account.)\n",
        path.display()
    )?;
    let Some(username) = question(
        input,
        out,
        "Your Twitch login, the account whose color changes: ",
        None,
        |a| {
            if config::is_login(a) {
                Ok(a.to_ascii_lowercase())
            } else {
                Err("a Twitch login has 3-25 letters, digits or _".into())
            }
        },
    )?
    else {
        return Ok(None);
    };
    writeln!(
        out,
        "\nYour Twitch app's client id. No app yet? At https://dev.twitch.tv/console/apps\n\
         \"Register Your Application\": any name, OAuth Redirect URL http://localhost,\n\
         Client Type \"Public\"; then copy its Client ID."
    )?;
    let Some(client_id) = question(input, out, "Client ID: ", None, |a| {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Err("a client id is letters and digits, like 0123456789abcdefghijklmnopqrst".into())
        } else if a == config::EXAMPLE_CLIENT_ID {
            Err("that is README's example; copy your own app's Client ID".into())
        } else {
            Ok(a.to_owned())
        }
    })?
    else {
        return Ok(None);
    };
    let Some(channels) = question(
        input,
        out,
        &format!("\nChannels to join, separated by commas [{username}]: "),
        Some(&username),
        channels,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(json!({
        "users": [{"username": username, "client_id": client_id, "channels": channels}]
    })))
}

/// The channels of a comma-separated answer, each a channel login.
fn channels(answer: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    for part in answer.split([',', ' ']).filter(|p| !p.trim().is_empty()) {
        let name = config::normalise_channel(part);
        if !config::is_channel(&name) {
            return Err(format!("{part:?} is not a channel login"));
        }
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        return Err("name at least one channel".into());
    }
    Ok(names)
}

/// One question, asked until `check` takes the answer (or `default` for an empty one).
fn question<T>(
    input: &mut impl BufRead,
    out: &mut impl Write,
    prompt: &str,
    default: Option<&str>,
    check: impl Fn(&str) -> Result<T, String>,
) -> io::Result<Option<T>> {
    loop {
        write!(out, "{prompt}")?;
        out.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            writeln!(out)?;
            return Ok(None);
        }
        let answer = match line.trim() {
            "" => default.unwrap_or(""),
            given => given,
        };
        match check(answer) {
            Ok(value) => return Ok(Some(value)),
            Err(why) => writeln!(out, "  {why}; try again.")?,
        }
    }
}

/// Asks at the terminal and writes the new config to `path` (mode 0600). `Ok(false)` when
/// the person ended the input instead of answering.
pub fn create(path: &Path) -> io::Result<bool> {
    let mut err = io::stderr().lock();
    let Some(doc) = ask(path, &mut io::stdin().lock(), &mut err)? else {
        return Ok(false);
    };
    let mut text = serde_json::to_vec_pretty(&doc).map_err(io::Error::other)?;
    text.push(b'\n');
    config::write_atomic(path, &text)?;
    writeln!(
        err,
        "\nWrote {}.\nNext, authorise the bot for your account: a link and a code follow.\n\
         README's \"Config file reference\" says what else the file can hold.\n",
        path.display()
    )?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(text: &str) -> (Option<Value>, String) {
        let mut out = Vec::new();
        let doc = ask(
            Path::new("twitch_colorchanger.conf"),
            &mut text.as_bytes(),
            &mut out,
        )
        .unwrap();
        (doc, String::from_utf8(out).unwrap())
    }

    #[test]
    fn three_answers_make_a_config_the_loader_takes() {
        let (doc, _) =
            answers("Hueshift_Bot\nabcdefghij0123456789abcdefghij\n#lumenwave, second\n");
        let doc = doc.unwrap();
        assert_eq!(
            doc,
            json!({"users": [{"username": "hueshift_bot", "client_id": "abcdefghij0123456789abcdefghij",
                             "channels": ["lumenwave", "second"]}]})
        );
        let cfg = config::validate(Path::new("x.conf"), &doc).unwrap();
        assert_eq!(cfg.users[0].channels, ["lumenwave", "second"]);
    }

    #[test]
    fn no_channels_given_means_the_users_own() {
        let (doc, _) = answers("hueshift_bot\nabcdefghij0123456789abcdefghij\n\n");
        assert_eq!(
            doc.unwrap()["users"][0]["channels"],
            json!(["hueshift_bot"])
        );
    }

    #[test]
    fn a_wrong_answer_is_asked_again_with_the_reason() {
        let (doc, out) = answers(
            "me\nhueshift_bot\n0123456789abcdefghijklmnopqrst\nmy id\nabc123\nbad!name\n#\nok_channel\n",
        );
        assert!(
            out.contains("a Twitch login has 3-25 letters, digits or _; try again."),
            "{out}"
        );
        assert!(out.contains("that is README's example"), "{out}");
        assert!(out.contains("a client id is letters and digits"), "{out}");
        assert!(
            out.contains("\"bad!name\" is not a channel login; try again."),
            "{out}"
        );
        assert!(
            out.contains("\"#\" is not a channel login; try again."),
            "{out}"
        );
        let doc = doc.unwrap();
        assert_eq!(doc["users"][0]["client_id"], "abc123");
        assert_eq!(doc["users"][0]["channels"], json!(["ok_channel"]));
    }

    #[test]
    fn input_that_ends_writes_nothing() {
        assert_eq!(answers("hueshift_bot\n").0, None);
        assert_eq!(answers("").0, None);
    }
}
