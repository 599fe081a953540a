//! One IRC line as data: IRCv3 tags, source, verb and parameters, parsed and encoded.

use std::fmt;

/// A parsed IRC message.
///
/// # Examples
/// ```
/// use twitch_colorchanger::irc::Message;
/// let line = "@color=#1E90FF;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi there";
/// let msg = Message::parse(line).unwrap();
/// assert_eq!(msg.command, "PRIVMSG");
/// assert_eq!(msg.tag("user-id"), Some("81234567"));
/// assert_eq!(msg.params, ["#lumenwave", "hi there"]);
/// assert_eq!(msg.source_nick(), Some("hueshift_bot"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Tags in the order first seen; a repeated key keeps its last value. Values are unescaped.
    pub tags: Vec<(String, String)>,
    /// The prefix without its leading `:`.
    pub source: Option<String>,
    /// The verb or numeric, as sent.
    pub command: String,
    /// Middle parameters followed by the trailing one, if any.
    pub params: Vec<String>,
    /// The last parameter is written after a `:`, as it was read (Twitch writes
    /// `PING :tmi.twitch.tv`); it is written so anyway when it must be (empty, holding a
    /// space, or starting with `:`).
    pub(crate) trailing: bool,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The line holds no command.
    MissingCommand,
    /// The line has tags or a source but nothing after them.
    Truncated,
    /// The command is not a word or a numeric (letters and digits only).
    BadCommand,
    /// A CR, LF or NUL inside the line: not one IRC message.
    BadCharacter,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::MissingCommand => f.write_str("IRC line has no command"),
            ParseError::Truncated => f.write_str("IRC line ends after its tags or source"),
            ParseError::BadCommand => f.write_str("IRC command is not letters or digits"),
            ParseError::BadCharacter => f.write_str("IRC line holds a CR, LF or NUL"),
        }
    }
}

impl std::error::Error for ParseError {}

impl Message {
    /// A message with a command and parameters, no tags and no source; the last parameter
    /// is trailing only where it must be.
    pub fn new(command: &str, params: &[&str]) -> Message {
        Message {
            tags: Vec::new(),
            source: None,
            command: command.to_owned(),
            params: params.iter().map(|p| (*p).to_owned()).collect(),
            trailing: params.last().is_some_and(|p| must_trail(p)),
        }
    }

    /// The same message with its last parameter written after a `:`.
    pub(crate) fn trailing(self) -> Message {
        Message {
            trailing: !self.params.is_empty(),
            ..self
        }
    }

    /// Parses one line; a trailing CR/LF is ignored.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let mut rest = line.trim_end_matches(['\r', '\n']);
        if rest.contains(['\r', '\n', '\0']) {
            return Err(ParseError::BadCharacter);
        }
        let mut msg = Message::default();

        if let Some(after) = rest.strip_prefix('@') {
            let (tags, tail) = after.split_once(' ').ok_or(ParseError::Truncated)?;
            for item in tags.split(';').filter(|t| !t.is_empty()) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                if key.is_empty() {
                    continue; // "=x": no key, nothing to keep (found by fuzzing)
                }
                let value = unescape_tag(value);
                match msg.tags.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => msg.tags.push((key.to_owned(), value)),
                }
            }
            rest = tail;
        }
        rest = rest.trim_start_matches(' ');

        if let Some(after) = rest.strip_prefix(':') {
            let (source, tail) = after.split_once(' ').ok_or(ParseError::Truncated)?;
            msg.source = Some(source.to_owned());
            rest = tail.trim_start_matches(' ');
        }

        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if command.is_empty() {
            return Err(ParseError::MissingCommand);
        }
        // (found by fuzzing: " @x" parsed with the command "@x", which encodes as tags)
        if !command.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ParseError::BadCommand);
        }
        msg.command = command.to_owned();

        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                msg.params.push(trailing.to_owned());
                msg.trailing = true;
                break;
            }
            let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            msg.params.push(param.to_owned());
            rest = tail;
        }
        Ok(msg)
    }

    /// The value of a tag, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The nick part of a `nick!user@host` source.
    pub fn source_nick(&self) -> Option<&str> {
        let source = self.source.as_deref()?;
        Some(source.split(['!', '@']).next().unwrap_or(source))
    }

    /// The parameter at `index`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(String::as_str)
    }
}

/// Encodes the message as one line without CRLF. The last parameter is sent as trailing
/// (`:`) when the message says so, or when it is empty, holds a space or starts with `:`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.tags.is_empty() {
            f.write_str("@")?;
            for (i, (key, value)) in self.tags.iter().enumerate() {
                if i > 0 {
                    f.write_str(";")?;
                }
                f.write_str(key)?;
                if !value.is_empty() {
                    write!(f, "={}", escape_tag(value))?;
                }
            }
            f.write_str(" ")?;
        }
        if let Some(source) = &self.source {
            write!(f, ":{source} ")?;
        }
        f.write_str(&self.command)?;
        for (i, param) in self.params.iter().enumerate() {
            let last = i + 1 == self.params.len();
            if last && (self.trailing || must_trail(param)) {
                write!(f, " :{param}")?;
            } else {
                write!(f, " {param}")?;
            }
        }
        Ok(())
    }
}

/// A last parameter that can only be written after a `:`.
fn must_trail(param: &str) -> bool {
    param.is_empty() || param.contains(' ') || param.starts_with(':')
}

fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn escape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parses_a_real_privmsg() {
        let line = "@badge-info=;badges=;client-nonce=6f1e;color=#1E90FF;display-name=HueShift_Bot;user-id=81234567;user-type= :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :typed this on the website\r\n";
        assert_eq!(
            Message::parse(line).unwrap(),
            Message {
                tags: owned(&[
                    ("badge-info", ""),
                    ("badges", ""),
                    ("client-nonce", "6f1e"),
                    ("color", "#1E90FF"),
                    ("display-name", "HueShift_Bot"),
                    ("user-id", "81234567"),
                    ("user-type", ""),
                ]),
                source: Some("hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv".into()),
                command: "PRIVMSG".into(),
                params: vec!["#lumenwave".into(), "typed this on the website".into()],
                trailing: true,
            }
        );
    }

    #[test]
    fn parses_ping_and_notice() {
        let ping = Message::parse("PING :tmi.twitch.tv").unwrap();
        assert_eq!(ping, Message::new("PING", &["tmi.twitch.tv"]).trailing());
        assert_eq!(ping.to_string(), "PING :tmi.twitch.tv", "kept as read");
        let notice =
            Message::parse(":tmi.twitch.tv NOTICE * :Login authentication failed").unwrap();
        assert_eq!(notice.param(1), Some("Login authentication failed"));
        assert_eq!(notice.source_nick(), Some("tmi.twitch.tv"));
    }

    #[test]
    fn rejects_lines_without_a_command() {
        assert_eq!(Message::parse(""), Err(ParseError::MissingCommand));
        assert_eq!(Message::parse("@a=b"), Err(ParseError::Truncated));
        assert_eq!(Message::parse(":src"), Err(ParseError::Truncated));
        assert_eq!(
            Message::parse("@a=b :src "),
            Err(ParseError::MissingCommand)
        );
    }

    #[test]
    fn rejects_commands_that_are_not_words_found_by_fuzzing() {
        // fuzz/fuzz_targets/irc_line.rs: " @\0" parsed with command "@\0", encoded as "@\0",
        // which is a line of tags: the round trip broke
        assert_eq!(Message::parse(" @x"), Err(ParseError::BadCommand));
        assert_eq!(Message::parse(" @\0"), Err(ParseError::BadCharacter));
        // "@<<b<<;= b" kept a tag with no key, which encodes as nothing
        assert_eq!(
            Message::parse("@<<b<<;= b").unwrap().tags,
            owned(&[("<<b<<", "")])
        );
        assert_eq!(Message::parse(" :x"), Err(ParseError::Truncated));
        assert_eq!(Message::parse("PRIV#MSG a"), Err(ParseError::BadCommand));
        assert!(Message::parse(" PING :x").is_ok());
        // "2b b b\n " parsed with a last parameter "b\n", which encodes as a line end
        assert_eq!(Message::parse("2b b b\n "), Err(ParseError::BadCharacter));
        assert_eq!(Message::parse("PING :a\rb"), Err(ParseError::BadCharacter));
    }

    #[test]
    fn encodes_what_the_bot_sends() {
        let cap = Message::new("CAP", &["REQ", "twitch.tv/tags twitch.tv/commands"]);
        assert_eq!(
            cap.to_string(),
            "CAP REQ :twitch.tv/tags twitch.tv/commands"
        );
        assert_eq!(Message::new("JOIN", &["#a,#b"]).to_string(), "JOIN #a,#b");
        assert_eq!(
            Message::new("PONG", &[":tmi.twitch.tv"]).to_string(),
            "PONG ::tmi.twitch.tv"
        );
        assert_eq!(Message::new("PONG", &[""]).to_string(), "PONG :");
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let msg = Message {
            tags: owned(&[("a", "semi;colon space\\back\r\n"), ("flag", "")]),
            source: Some("nick!user@host".into()),
            command: "PRIVMSG".into(),
            params: vec!["#chan".into(), ":starts with colon".into()],
            trailing: true,
        };
        assert_eq!(Message::parse(&msg.to_string()).unwrap(), msg);
    }
}
