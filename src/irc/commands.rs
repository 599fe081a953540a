//! The IRC commands the session acts on, typed (twitch-irc-rs's `message/commands/`): read
//! from a parsed [`Message`] with `TryFrom`, a missing part an error that names it; and the
//! lines the bot sends, built as `Message`s so that they encode and parse back the same.

use std::fmt;

use super::Message;

/// A line the session acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command<'a> {
    /// `PING`: answer with a `PONG` carrying the same text.
    Ping {
        /// The text to send back (`tmi.twitch.tv` when there is none).
        text: &'a str,
    },
    /// `001`: logged in.
    Welcome,
    /// `RECONNECT`: the server is going away.
    Reconnect,
    /// `NOTICE`.
    Notice {
        /// The channel (login without `#`), or `None` for the whole connection (`*`).
        channel: Option<&'a str>,
        /// Twitch's `msg-id` tag.
        msg_id: Option<&'a str>,
        /// The human text.
        text: &'a str,
    },
    /// `JOIN` (`joined`) or `PART`: someone entered or left a channel.
    Membership {
        /// True for `JOIN`.
        joined: bool,
        /// The channel, login without `#`.
        channel: &'a str,
        /// Who: the source's nick.
        nick: &'a str,
    },
    /// `PRIVMSG`: a chat message.
    Privmsg {
        /// The channel, login without `#`.
        channel: &'a str,
        /// The sender's login (the source's nick).
        sender: &'a str,
        /// The sender's user id (`user-id` tag), when given.
        user_id: Option<&'a str>,
        /// The message's id (`id` tag), when given.
        id: Option<&'a str>,
        /// Shared chat: the id of the message in the channel where it was sent (`source-id`
        /// tag), on every copy and on the original alike.
        source_id: Option<&'a str>,
        /// The text.
        text: &'a str,
    },
    /// Any other command: nothing to do.
    Other,
}

/// A command the session acts on is missing a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandError {
    /// The command.
    pub command: &'static str,
    /// What it lacks.
    pub missing: &'static str,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} without {}", self.command, self.missing)
    }
}

impl std::error::Error for CommandError {}

impl<'a> TryFrom<&'a Message> for Command<'a> {
    type Error = CommandError;

    fn try_from(msg: &'a Message) -> Result<Command<'a>, CommandError> {
        let missing = |command, missing| CommandError { command, missing };
        let channel = |i: usize, command| {
            msg.param(i)
                .map(|c| c.trim_start_matches('#'))
                .ok_or(missing(command, "a channel"))
        };
        let membership = |joined, command| {
            Ok(Command::Membership {
                joined,
                channel: channel(0, command)?,
                nick: msg.source_nick().ok_or(missing(command, "a sender"))?,
            })
        };
        Ok(match msg.command() {
            "PING" => Command::Ping {
                text: msg.param(0).unwrap_or("tmi.twitch.tv"),
            },
            "001" => Command::Welcome,
            "RECONNECT" => Command::Reconnect,
            "NOTICE" => {
                let target = msg.param(0).unwrap_or("*");
                Command::Notice {
                    channel: (target != "*").then(|| target.trim_start_matches('#')),
                    msg_id: msg.tag("msg-id"),
                    text: msg.param(1).unwrap_or(""),
                }
            }
            "JOIN" => membership(true, "JOIN")?,
            "PART" => membership(false, "PART")?,
            "PRIVMSG" => Command::Privmsg {
                channel: channel(0, "PRIVMSG")?,
                sender: msg.source_nick().ok_or(missing("PRIVMSG", "a sender"))?,
                user_id: msg.tag("user-id"),
                id: msg.tag("id").filter(|id| !id.is_empty()),
                source_id: msg.tag("source-id").filter(|id| !id.is_empty()),
                text: msg.param(1).unwrap_or(""),
            },
            _ => Command::Other,
        })
    }
}

/// `CAP REQ :twitch.tv/tags twitch.tv/commands`: tags (user ids) and Twitch's commands.
pub(crate) fn cap_req() -> Message {
    Message::new("CAP", &["REQ", "twitch.tv/tags twitch.tv/commands"])
}

/// `PASS oauth:<token>` (the token without any `oauth:` prefix of its own).
pub fn pass(token: &str) -> Message {
    Message::new("PASS", &[&format!("oauth:{token}")])
}

/// `NICK <login>`.
pub fn nick(login: &str) -> Message {
    Message::new("NICK", &[login])
}

/// `JOIN #<channel>`.
pub fn join(channel: &str) -> Message {
    Message::new("JOIN", &[&format!("#{channel}")])
}

/// `PART #<channel>`.
pub fn part(channel: &str) -> Message {
    Message::new("PART", &[&format!("#{channel}")])
}

/// `PING :tmi.twitch.tv`: is the server still there?
pub fn ping() -> Message {
    Message::new("PING", &["tmi.twitch.tv"]).trailing()
}

/// `PONG :<text>`, the answer to a `PING`.
pub fn pong(text: &str) -> Message {
    Message::new("PONG", &[text]).trailing()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line` reads as `want`.
    fn reads(line: &str, want: Command<'static>) {
        let msg = Message::parse(line).unwrap();
        assert_eq!(Command::try_from(&msg), Ok(want), "{line}");
    }

    /// `line` is refused with `why`.
    fn refused(line: &str, why: &str) {
        let msg = Message::parse(line).unwrap();
        assert_eq!(
            Command::try_from(&msg).map_err(|e| e.to_string()),
            Err(why.to_owned())
        );
    }

    #[test]
    fn reads_the_commands_the_session_acts_on_from_real_lines() {
        reads(
            "PING :tmi.twitch.tv",
            Command::Ping {
                text: "tmi.twitch.tv",
            },
        );
        reads(
            ":tmi.twitch.tv 001 hueshift_bot :Welcome, GLHF!",
            Command::Welcome,
        );
        reads(":tmi.twitch.tv RECONNECT", Command::Reconnect);
        reads("@msg-id=msg_channel_suspended :tmi.twitch.tv NOTICE #lumenwave :This channel does not exist or has been suspended.", Command::Notice {
                channel: Some("lumenwave"),
                msg_id: Some("msg_channel_suspended"),
                text: "This channel does not exist or has been suspended.",
            });
        reads(
            ":tmi.twitch.tv NOTICE * :Login authentication failed",
            Command::Notice {
                channel: None,
                msg_id: None,
                text: "Login authentication failed",
            },
        );
        reads(
            ":hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv JOIN #lumenwave",
            Command::Membership {
                joined: true,
                channel: "lumenwave",
                nick: "hueshift_bot",
            },
        );
        reads("@badge-info=;color=#1E90FF;display-name=HueShift_Bot;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :typed this on the website", Command::Privmsg {
                channel: "lumenwave",
                sender: "hueshift_bot",
                user_id: Some("81234567"),
                id: None,
                source_id: None,
                text: "typed this on the website",
            });
        // a copy shown in another channel of a shared chat, and the original
        reads("@id=c2;room-id=2;source-id=o1;source-room-id=1;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #partner :hi", Command::Privmsg {
                channel: "partner",
                sender: "hueshift_bot",
                user_id: Some("81234567"),
                id: Some("c2"),
                source_id: Some("o1"),
                text: "hi",
            });
        reads("@id=o1;room-id=1;source-id=o1;source-room-id=1;user-id=81234567 :hueshift_bot!hueshift_bot@hueshift_bot.tmi.twitch.tv PRIVMSG #lumenwave :hi", Command::Privmsg {
                channel: "lumenwave",
                sender: "hueshift_bot",
                user_id: Some("81234567"),
                id: Some("o1"),
                source_id: Some("o1"),
                text: "hi",
            });
        reads(":tmi.twitch.tv CAP * ACK :twitch.tv/tags", Command::Other);
        refused("PRIVMSG #lumenwave :no sender", "PRIVMSG without a sender");
        refused(":a!a@a PART", "PART without a channel");
    }

    #[test]
    fn what_the_bot_sends_is_the_documented_line_and_parses_back_the_same() {
        for (msg, line) in [
            (cap_req(), "CAP REQ :twitch.tv/tags twitch.tv/commands"),
            (pass("tok"), "PASS oauth:tok"),
            (nick("hueshift_bot"), "NICK hueshift_bot"),
            (join("lumenwave"), "JOIN #lumenwave"),
            (part("lumenwave"), "PART #lumenwave"),
            (ping(), "PING :tmi.twitch.tv"),
            (pong("tmi.twitch.tv"), "PONG :tmi.twitch.tv"),
            (pong("a b"), "PONG :a b"),
        ] {
            assert_eq!(msg.to_string(), line);
            assert_eq!(Message::parse(line).unwrap(), msg, "{line}");
        }
    }
}
