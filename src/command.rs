//! Chat commands a user types in their own messages, as the Python bot understood them:
//! `ccd` (disable), `cce` (enable), `ccc <color>` (set that color now); and ours, `ccm
//! <mode>` (random, rainbow or palette).

use crate::color::{self, Typed};
use crate::mode::Kind;

/// A recognised command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `ccd`: stop automatic changes.
    Disable,
    /// `cce`: resume automatic changes.
    Enable,
    /// `ccc <color>`: set this color now.
    SetColor(Typed),
    /// `ccm <mode>`: pick colors this way from now on.
    SetMode(Kind),
    /// Looked like a command but cannot be done; the reason, for the log.
    Invalid(String),
}

/// The command in a chat message, if it is one. `ccd` and `cce` must be the whole message
/// (any case, surrounding spaces ignored); `ccc` must be the first word, with one color after
/// it. Anything else (including "cccombo") is an ordinary message.
pub fn parse(text: &str) -> Option<Command> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("ccd") {
        return Some(Command::Disable);
    }
    if text.eq_ignore_ascii_case("cce") {
        return Some(Command::Enable);
    }
    let mut words = text.split_whitespace();
    let word = words.next()?;
    if word.eq_ignore_ascii_case("ccm") {
        let args: Vec<&str> = words.collect();
        return Some(match args[..] {
            [name] => match Kind::parse(name) {
                Some(kind) => Command::SetMode(kind),
                None => Command::Invalid(format!(
                    "ccm: unknown mode {} (random, rainbow or palette)",
                    crate::log::quoted(name)
                )),
            },
            _ => Command::Invalid("ccm takes one mode: random, rainbow or palette".into()),
        });
    }
    if !word.eq_ignore_ascii_case("ccc") {
        return None;
    }
    let args: Vec<&str> = words.collect();
    let [arg] = args[..] else {
        return Some(Command::Invalid(format!(
            "ccc takes exactly one color (a name such as sea_green, or hex such as #a1b2c3), got {}",
            args.len()
        )));
    };
    Some(match color::parse_typed(arg) {
        Some(typed) => Command::SetColor(typed),
        None => Command::Invalid(format!(
            "ccc: unknown color {}: use {}",
            crate::log::quoted(arg),
            color::accepted()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_python_bots_commands() {
        assert_eq!(parse("ccd"), Some(Command::Disable));
        assert_eq!(parse("  CCE "), Some(Command::Enable));
        assert_eq!(
            parse("ccc Sea_Green"),
            Some(Command::SetColor(Typed::Named("sea_green")))
        );
        assert_eq!(
            parse("CCC abc"),
            Some(Command::SetColor(Typed::Hex("#aabbcc".into())))
        );
        assert!(matches!(parse("ccc"), Some(Command::Invalid(_))));
        assert!(matches!(parse("ccc red blue"), Some(Command::Invalid(_))));
        assert!(matches!(parse("ccc purple"), Some(Command::Invalid(_))));
    }

    #[test]
    fn reads_the_mode_command() {
        assert_eq!(parse("ccm rainbow"), Some(Command::SetMode(Kind::Rainbow)));
        assert_eq!(parse(" CCM Palette"), Some(Command::SetMode(Kind::Palette)));
        assert_eq!(parse("ccm random"), Some(Command::SetMode(Kind::Random)));
        assert!(matches!(parse("ccm"), Some(Command::Invalid(_))));
        assert!(matches!(parse("ccm gradient"), Some(Command::Invalid(_))));
        assert_eq!(parse("ccmx rainbow"), None);
    }

    #[test]
    fn ordinary_messages_are_not_commands() {
        for text in [
            "cccombo",
            "ccd please",
            "hello ccd",
            "cc",
            "",
            "ccdd",
            "ccc\u{0}",
        ] {
            assert_eq!(parse(text), None, "{text:?}");
        }
    }
}
