//! One IRC line as data: IRCv3 tags, source, verb and parameters, parsed and encoded.

use std::fmt;

/// A parsed IRC message.
///
/// Its parts live in one string, tag values unescaped, and are read through methods: a
/// Twitch `PRIVMSG` has 15 to 20 tags, and a string per key and per value were 33 of the
/// 167 allocations a color change made (2026-12-07); now a message takes three.
///
/// # Examples
/// ```
/// use twitch_colorchanger::irc::Message;
/// let line = "@color=#1E90FF;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi there";
/// let msg = Message::parse(line).unwrap();
/// assert_eq!(msg.command(), "PRIVMSG");
/// assert_eq!(msg.tag("user-id"), Some("81234567"));
/// assert_eq!(msg.params().collect::<Vec<_>>(), ["#lumenwave", "hi there"]);
/// assert_eq!(msg.source_nick(), Some("hueshift_bot"));
/// ```
#[derive(Clone)]
pub struct Message {
    /// The parts, one after another: tag keys and unescaped values, source, command, params.
    text: String,
    /// Tags in the order first seen; a repeated key keeps its last value.
    tags: Vec<(Span, Span)>,
    /// The prefix without its leading `:`.
    source: Option<Span>,
    /// The verb or numeric, as sent.
    command: Span,
    /// Middle parameters followed by the trailing one, if any.
    params: Vec<Span>,
    /// The last parameter is written after a `:`, as it was read (Twitch writes
    /// `PING :tmi.twitch.tv`); it is written so anyway when it must be (empty, holding a
    /// space, or starting with `:`).
    trailing: bool,
}

/// Where a part lies in [`Message::text`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
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
    fn empty(capacity: usize) -> Message {
        Message {
            text: String::with_capacity(capacity),
            tags: Vec::new(),
            source: None,
            command: Span { start: 0, end: 0 },
            params: Vec::new(),
            trailing: false,
        }
    }

    /// Appends `part` to the text; where it lies.
    fn push(&mut self, part: &str) -> Span {
        let start = self.text.len();
        self.text.push_str(part);
        Span {
            start,
            end: self.text.len(),
        }
    }

    fn get(&self, span: Span) -> &str {
        &self.text[span.start..span.end]
    }

    /// A message with a command and parameters, no tags and no source; the last parameter
    /// is trailing only where it must be.
    pub fn new(command: &str, params: &[&str]) -> Message {
        let mut msg = Message::empty(command.len() + params.iter().map(|p| p.len()).sum::<usize>());
        msg.command = msg.push(command);
        msg.params = params.iter().map(|p| msg.push(p)).collect();
        msg.trailing = params.last().is_some_and(|p| must_trail(p));
        msg
    }

    /// The same message with its last parameter written after a `:`.
    pub(crate) fn trailing(self) -> Message {
        Message {
            trailing: !self.params.is_empty(),
            ..self
        }
    }

    /// The same message with the tag `key` set to `value` (unescaped).
    pub fn with_tag(mut self, key: &str, value: &str) -> Message {
        let key = self.push(key);
        let value = self.push(value);
        self.set_tag(key, value);
        self
    }

    /// The same message with a source (`nick!user@host`, without the `:`).
    pub fn with_source(mut self, source: &str) -> Message {
        self.source = Some(self.push(source));
        self
    }

    /// Keeps a tag: a repeated key keeps its first place and takes the new value.
    fn set_tag(&mut self, key: Span, value: Span) {
        let name = self.get(key);
        match self.tags.iter().position(|(k, _)| self.get(*k) == name) {
            Some(i) => self.tags[i].1 = value,
            None => self.tags.push((key, value)),
        }
    }

    /// Parses one line; a trailing CR/LF is ignored.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        let mut rest = line.trim_end_matches(['\r', '\n']);
        if rest.contains(['\r', '\n', '\0']) {
            return Err(ParseError::BadCharacter);
        }
        let mut msg = Message::empty(rest.len());

        if let Some(after) = rest.strip_prefix('@') {
            let (tags, tail) = after.split_once(' ').ok_or(ParseError::Truncated)?;
            msg.tags
                .reserve(tags.bytes().filter(|b| *b == b';').count() + 1);
            for item in tags.split(';').filter(|t| !t.is_empty()) {
                let (key, value) = item.split_once('=').unwrap_or((item, ""));
                if key.is_empty() {
                    continue; // "=x": no key, nothing to keep (found by fuzzing)
                }
                let key = msg.push(key);
                let start = msg.text.len();
                unescape_tag(value, &mut msg.text);
                let value = Span {
                    start,
                    end: msg.text.len(),
                };
                msg.set_tag(key, value);
            }
            rest = tail;
        }
        rest = rest.trim_start_matches(' ');

        if let Some(after) = rest.strip_prefix(':') {
            let (source, tail) = after.split_once(' ').ok_or(ParseError::Truncated)?;
            msg.source = Some(msg.push(source));
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
        msg.command = msg.push(command);

        loop {
            rest = rest.trim_start_matches(' ');
            if rest.is_empty() {
                break;
            }
            if let Some(trailing) = rest.strip_prefix(':') {
                let param = msg.push(trailing);
                msg.params.push(param);
                msg.trailing = true;
                break;
            }
            let (param, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            let param = msg.push(param);
            msg.params.push(param);
            rest = tail;
        }
        Ok(msg)
    }

    /// The value of a tag, if present.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| self.get(*k) == key)
            .map(|(_, v)| self.get(*v))
    }

    /// The tags, keys and unescaped values, in the order first seen.
    pub fn tags(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.tags.iter().map(|(k, v)| (self.get(*k), self.get(*v)))
    }

    /// The prefix without its leading `:`, if any.
    pub fn source(&self) -> Option<&str> {
        self.source.map(|s| self.get(s))
    }

    /// The verb or numeric, as sent.
    pub fn command(&self) -> &str {
        self.get(self.command)
    }

    /// The middle parameters followed by the trailing one, if any.
    pub fn params(&self) -> impl ExactSizeIterator<Item = &str> {
        self.params.iter().map(|p| self.get(*p))
    }

    /// The nick part of a `nick!user@host` source.
    pub fn source_nick(&self) -> Option<&str> {
        let source = self.source()?;
        Some(source.split(['!', '@']).next().unwrap_or(source))
    }

    /// The parameter at `index`, if present.
    pub fn param(&self, index: usize) -> Option<&str> {
        self.params.get(index).map(|p| self.get(*p))
    }
}

/// Two messages are equal when they read the same, wherever their parts lie.
impl PartialEq for Message {
    fn eq(&self, other: &Message) -> bool {
        self.tags().eq(other.tags())
            && self.source() == other.source()
            && self.command() == other.command()
            && self.params().eq(other.params())
            && self.trailing == other.trailing
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("tags", &self.tags().collect::<Vec<_>>())
            .field("source", &self.source())
            .field("command", &self.command())
            .field("params", &self.params().collect::<Vec<_>>())
            .field("trailing", &self.trailing)
            .finish()
    }
}

/// Encodes the message as one line without CRLF. The last parameter is sent as trailing
/// (`:`) when the message says so, or when it is empty, holds a space or starts with `:`.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.tags.is_empty() {
            f.write_str("@")?;
            for (i, (key, value)) in self.tags().enumerate() {
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
        if let Some(source) = self.source() {
            write!(f, ":{source} ")?;
        }
        f.write_str(self.command())?;
        for (i, param) in self.params().enumerate() {
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

/// Appends `value` to `out`, its escapes undone.
fn unescape_tag(value: &str, out: &mut String) {
    if !value.contains('\\') {
        out.push_str(value);
        return;
    }
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

    /// `msg` with `tags` set, in order.
    fn tagged(msg: Message, tags: &[(&str, &str)]) -> Message {
        tags.iter().fold(msg, |m, (k, v)| m.with_tag(k, v))
    }

    #[test]
    fn parses_a_real_privmsg() {
        let line = "@badge-info=;badges=;client-nonce=6f1e;color=#1E90FF;display-name=HueShift_Bot;user-id=81234567;user-type= :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :typed this on the website\r\n";
        let want = Message::new("PRIVMSG", &["#lumenwave", "typed this on the website"])
            .with_source("hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv");
        let want = tagged(
            want,
            &[
                ("badge-info", ""),
                ("badges", ""),
                ("client-nonce", "6f1e"),
                ("color", "#1E90FF"),
                ("display-name", "HueShift_Bot"),
                ("user-id", "81234567"),
                ("user-type", ""),
            ],
        );
        let got = Message::parse(line).unwrap();
        assert_eq!(got, want);
        assert_eq!(got.source(), want.source());
        assert_eq!(got.tag("client-nonce"), Some("6f1e"));
        assert_eq!(got.tag("badges"), Some(""));
        assert_eq!(got.tag("absent"), None);
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
            Message::parse("@<<b<<;= b")
                .unwrap()
                .tags()
                .collect::<Vec<_>>(),
            [("<<b<<", "")]
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
        let msg =
            Message::new("PRIVMSG", &["#chan", ":starts with colon"]).with_source("nick!user@host");
        let msg = tagged(msg, &[("a", "semi;colon space\\back\r\n"), ("flag", "")]);
        assert_eq!(Message::parse(&msg.to_string()).unwrap(), msg);
        assert_eq!(
            Message::parse(&msg.to_string()).unwrap().tag("a"),
            Some("semi;colon space\\back\r\n")
        );
    }

    #[test]
    fn a_repeated_tag_keeps_its_first_place_and_its_last_value() {
        let msg = Message::parse("@a=1;b=2;a=3 PING").unwrap();
        assert_eq!(msg.tags().collect::<Vec<_>>(), [("a", "3"), ("b", "2")]);
        assert_eq!(msg.tag("a"), Some("3"));
        assert_eq!(msg.to_string(), "@a=3;b=2 PING");
    }
}
