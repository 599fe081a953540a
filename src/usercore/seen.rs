//! The user's own messages acted on lately, so that one message is one color change however
//! often Twitch shows it: shared chat shows a message sent in one channel in every channel of
//! the session (each copy naming the message it came from), and EventSub delivers at least
//! once.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};

/// How many message ids are kept: a count, not a time window, so that no clock is needed and
/// memory is fixed (2 KB at most). Copies arrive within seconds of each other, and Twitch
/// lets an account send at most 100 messages in 30 s (in channels it moderates; 20
/// elsewhere), so 256 ids span at least 77 s of the fastest chatting.
pub(crate) const KEPT: usize = 256;

/// A bounded set of message ids, oldest forgotten first. Ids are kept as 64-bit hashes (8
/// bytes instead of a 36-character UUID); two of 256 ids colliding has odds of about 2^-49.
#[derive(Debug, Default)]
pub(crate) struct SeenMessages {
    hashes: VecDeque<u64>,
}

impl SeenMessages {
    /// Remembers `id`; false if it was seen already.
    pub(crate) fn first_sighting(&mut self, id: &str) -> bool {
        let mut hasher = DefaultHasher::new();
        id.hash(&mut hasher);
        let hash = hasher.finish();
        if self.hashes.contains(&hash) {
            return false;
        }
        if self.hashes.len() == KEPT {
            self.hashes.pop_front();
        }
        self.hashes.push_back(hash);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_and_the_oldest_is_forgotten_beyond_the_bound() {
        let mut seen = SeenMessages::default();
        assert!(seen.first_sighting("a"));
        assert!(!seen.first_sighting("a"));
        for n in 1..KEPT {
            assert!(seen.first_sighting(&n.to_string()));
        }
        // full: "a" is still there, and the next id pushes it out
        assert!(!seen.first_sighting("a"));
        assert!(seen.first_sighting("new"));
        assert_eq!(seen.hashes.len(), KEPT);
        assert!(seen.first_sighting("a"), "the oldest id is forgotten");
        assert!(!seen.first_sighting("new"));
        assert_eq!(seen.hashes.len(), KEPT);
    }
}
