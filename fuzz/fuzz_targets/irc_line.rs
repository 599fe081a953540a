//! The IRC line parser: never panics, and what it parses encodes to a line that parses back
//! to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twitch_colorchanger::irc::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(msg) = Message::parse(line) {
        let encoded = msg.to_string();
        let again = Message::parse(&encoded)
            .unwrap_or_else(|e| panic!("{line:?} encoded as {encoded:?}, which does not parse: {e}"));
        assert_eq!(again, msg, "{line:?} → {encoded:?}");
    }
});
