//! One user's color-changing decisions, free of I/O: own messages and PUT outcomes in,
//! color changes to make and events to log or persist out.

use std::collections::VecDeque;
use std::time::Duration;

use nanorand::Rng;

use crate::color;
use crate::mode::{Picker, Settings};

/// A color change to make: `PUT /chat/color` with `color`, after waiting `after` (set
/// after a 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The color to set.
    pub color: String,
    /// Wait this long before sending.
    pub after: Option<Duration>,
}

/// How a PUT ended, as the bot needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// 204: the color is set.
    Done,
    /// 400, with Twitch's message.
    Rejected(String),
    /// 429; how long until the bucket refills, if Twitch said.
    RateLimited(Option<Duration>),
    /// 401, with Twitch's message.
    Unauthorized(String),
    /// Anything else: network failure, 5xx, bad body.
    Failed(String),
}

/// What happened, for the log and the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BotEvent {
    /// The color changed.
    Changed {
        /// The color before, if known.
        old: Option<String>,
        /// The color now.
        new: String,
    },
    /// A hex color was refused but a named one worked: the user has no Turbo/Prime.
    /// Persist `is_prime_or_turbo: false`.
    PrimeLost,
    /// A hex color was refused and so was the named fallback; nothing was changed.
    FallbackFailed {
        /// Why the hex color was refused.
        hex_error: String,
        /// Why the named color was refused.
        named_error: String,
    },
    /// Twitch answered 429; the change waits until the bucket refills.
    RateLimited,
    /// The change failed and was given up.
    Failed(String),
    /// The token was refused (401).
    Unauthorized(String),
}

#[derive(Debug, Clone)]
struct InFlight {
    color: String,
    /// A named color tried after the hex one was refused, with the hex refusal.
    fallback_from: Option<String>,
    /// Already retried once after a 429.
    after_429: bool,
    /// Another own message came in meanwhile: change once more when done.
    pending: bool,
    /// Asked for by name (`ccc`): no named fallback if Twitch refuses it.
    explicit: bool,
}

/// One user's bot: which color is in use, whether hex colors work, what is in flight.
#[derive(Debug)]
pub(crate) struct ColorBot {
    prime_or_turbo: bool,
    picker: Picker,
    enabled: bool,
    current: Option<String>,
    in_flight: Option<InFlight>,
    /// A color asked for by name while another change was in flight.
    requested: Option<String>,
    events: VecDeque<BotEvent>,
}

impl ColorBot {
    /// A bot for a user, knowing the color in use (from Helix) if any.
    pub fn new(prime_or_turbo: bool, enabled: bool, current: Option<String>) -> ColorBot {
        ColorBot {
            prime_or_turbo,
            picker: Picker::new(Settings::default()),
            enabled,
            current,
            in_flight: None,
            requested: None,
            events: VecDeque::new(),
        }
    }

    /// The user sent a chat message. Returns the change to start now, if any: none while
    /// disabled, and none while one is in flight (that one is followed by one more).
    pub(crate) fn on_own_message(&mut self, rng: &mut impl Rng<8>) -> Option<Change> {
        if !self.enabled {
            return None;
        }
        if let Some(flight) = &mut self.in_flight {
            flight.pending = true;
            return None;
        }
        Some(self.start(rng))
    }

    /// The user asked for `color` (`ccc`): set it even while disabled. Returns the change to
    /// start now; while one is in flight, it follows that one.
    pub fn request(&mut self, color: String) -> Option<Change> {
        if self.in_flight.is_some() {
            self.requested = Some(color);
            return None;
        }
        Some(self.begin(color, true))
    }

    /// The color mode's settings in use.
    pub fn colors(&self) -> &Settings {
        self.picker.settings()
    }

    /// New color mode settings (the rainbow or palette starts over if they changed).
    pub(crate) fn set_colors(&mut self, settings: Settings) {
        self.picker.set(settings);
    }

    fn start(&mut self, rng: &mut impl Rng<8>) -> Change {
        let color = self
            .picker
            .next(rng, self.prime_or_turbo, self.current.as_deref());
        self.begin(color, false)
    }

    fn begin(&mut self, color: String, explicit: bool) -> Change {
        self.in_flight = Some(InFlight {
            color: color.clone(),
            fallback_from: None,
            after_429: false,
            pending: false,
            explicit,
        });
        Change { color, after: None }
    }

    /// The change in flight ended with `outcome`. Returns the next change to make, if any.
    pub(crate) fn on_outcome(&mut self, outcome: Outcome, rng: &mut impl Rng<8>) -> Option<Change> {
        let mut flight = self.in_flight.take()?;
        match outcome {
            Outcome::Done => {
                let old = self.current.replace(flight.color.clone());
                self.events.push_back(BotEvent::Changed {
                    old,
                    new: flight.color.clone(),
                });
                if flight.fallback_from.is_some() {
                    self.prime_or_turbo = false;
                    self.events.push_back(BotEvent::PrimeLost);
                }
            }
            Outcome::Rejected(message)
                if flight.fallback_from.is_none()
                    && !flight.explicit
                    && color::is_hex(&flight.color) =>
            {
                // the mode's next named color: the rainbow goes on, a palette keeps to its
                // named entries, random picks any
                let named = self.picker.next(rng, false, self.current.as_deref());
                self.in_flight = Some(InFlight {
                    color: named.clone(),
                    fallback_from: Some(message),
                    after_429: false,
                    pending: flight.pending,
                    explicit: false,
                });
                return Some(Change {
                    color: named,
                    after: None,
                });
            }
            Outcome::Rejected(message) => match flight.fallback_from.take() {
                Some(hex_error) => self.events.push_back(BotEvent::FallbackFailed {
                    hex_error,
                    named_error: message,
                }),
                None => self.events.push_back(BotEvent::Failed(format!(
                    "Twitch refused color {}: {message}",
                    flight.color
                ))),
            },
            Outcome::RateLimited(reset) if !flight.after_429 => {
                flight.after_429 = true;
                let change = Change {
                    color: flight.color.clone(),
                    after: reset,
                };
                self.in_flight = Some(flight);
                self.events.push_back(BotEvent::RateLimited);
                return Some(change);
            }
            Outcome::RateLimited(_) => self.events.push_back(BotEvent::Failed(
                "still rate limited after waiting for the bucket to refill".into(),
            )),
            Outcome::Unauthorized(message) => {
                self.events.push_back(BotEvent::Unauthorized(message));
                self.requested = None;
                return None; // a pending change would be refused the same way
            }
            Outcome::Failed(message) => self.events.push_back(BotEvent::Failed(message)),
        }
        if let Some(color) = self.requested.take() {
            return Some(self.begin(color, true));
        }
        if flight.pending && self.enabled {
            return Some(self.start(rng));
        }
        None
    }

    /// Turns automatic changes on or off.
    pub(crate) fn set_enabled(&mut self, enabled: bool) {
        self.enabled = enabled;
    }

    /// Whether automatic changes are on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Uses hex colors (`true`) or named ones from now on.
    pub(crate) fn set_prime_or_turbo(&mut self, prime_or_turbo: bool) {
        self.prime_or_turbo = prime_or_turbo;
    }

    /// True while a change is in flight (the tests' view of it).
    #[cfg(test)]
    pub(crate) fn is_busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The color in use, as far as the bot knows.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// Whether hex colors are used.
    pub(crate) fn prime_or_turbo(&self) -> bool {
        self.prime_or_turbo
    }

    /// The next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<BotEvent> {
        crate::queue::pop(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nanorand::WyRand;

    fn events(bot: &mut ColorBot) -> Vec<BotEvent> {
        std::iter::from_fn(|| bot.poll_event()).collect()
    }

    #[test]
    fn own_message_changes_to_a_different_color() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(true, true, Some("#123456".into()));
        let change = bot.on_own_message(&mut rng).unwrap();
        assert!(color::is_hex(&change.color) && change.color != "#123456");
        assert_eq!(change.after, None);
        assert_eq!(bot.on_outcome(Outcome::Done, &mut rng), None);
        assert_eq!(
            events(&mut bot),
            [BotEvent::Changed {
                old: Some("#123456".into()),
                new: change.color.clone()
            }]
        );
        assert_eq!(bot.current(), Some(change.color.as_str()));
    }

    #[test]
    fn messages_during_a_change_coalesce_into_one_more() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(false, true, None);
        let first = bot.on_own_message(&mut rng).unwrap();
        for _ in 0..5 {
            assert_eq!(bot.on_own_message(&mut rng), None);
        }
        let second = bot
            .on_outcome(Outcome::Done, &mut rng)
            .expect("one more change");
        assert!(!color::same(&first.color, &second.color));
        assert_eq!(bot.on_outcome(Outcome::Done, &mut rng), None);
        assert!(!bot.is_busy());
        assert_eq!(events(&mut bot).len(), 2);
    }

    #[test]
    fn rejected_hex_falls_back_to_named_and_drops_prime() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(true, true, None);
        bot.on_own_message(&mut rng).unwrap();
        let fallback = bot
            .on_outcome(Outcome::Rejected("whatever Twitch says".into()), &mut rng)
            .unwrap();
        assert!(color::NAMED.iter().any(|(n, _)| *n == fallback.color));
        assert_eq!(bot.on_outcome(Outcome::Done, &mut rng), None);
        let evs = events(&mut bot);
        assert_eq!(evs[1], BotEvent::PrimeLost);
        assert!(!bot.prime_or_turbo());
        let next = bot.on_own_message(&mut rng).unwrap();
        assert!(!color::is_hex(&next.color));
    }

    #[test]
    fn a_refused_rainbow_hex_falls_back_along_the_rainbow() {
        let mut rng = WyRand::new_seed(3);
        // a red that is not the named "red" (which the rainbow would go on from)
        let mut bot = ColorBot::new(true, true, Some("#FF0808".into()));
        let mut colors = bot.colors().clone();
        colors.kind = crate::mode::Kind::Rainbow;
        bot.set_colors(colors);
        let hex = bot.on_own_message(&mut rng).unwrap();
        assert_eq!(crate::mode::hue_of(&hex.color), Some(30));
        let fallback = bot
            .on_outcome(Outcome::Rejected("Turbo or Prime only".into()), &mut rng)
            .unwrap();
        // not a random named color: the one after the nearest to 30° (chocolate, 25°)
        assert_eq!(fallback.color, "golden_rod");
    }

    #[test]
    fn failed_fallback_changes_nothing() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(true, true, Some("#000001".into()));
        bot.on_own_message(&mut rng).unwrap();
        bot.on_outcome(Outcome::Rejected("a".into()), &mut rng)
            .unwrap();
        assert_eq!(
            bot.on_outcome(Outcome::Rejected("b".into()), &mut rng),
            None
        );
        assert_eq!(
            events(&mut bot),
            [BotEvent::FallbackFailed {
                hex_error: "a".into(),
                named_error: "b".into()
            }]
        );
        assert!(bot.prime_or_turbo());
        assert_eq!(bot.current(), Some("#000001"));
    }

    #[test]
    fn rate_limit_waits_for_reset_then_retries_once() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(false, true, None);
        let first = bot.on_own_message(&mut rng).unwrap();
        let reset = Duration::from_secs(7);
        let retry = bot
            .on_outcome(Outcome::RateLimited(Some(reset)), &mut rng)
            .unwrap();
        assert_eq!(
            retry,
            Change {
                color: first.color,
                after: Some(reset)
            }
        );
        assert_eq!(
            bot.on_outcome(Outcome::RateLimited(Some(reset)), &mut rng),
            None
        );
        let evs = events(&mut bot);
        assert_eq!(evs[0], BotEvent::RateLimited);
        assert!(matches!(evs[1], BotEvent::Failed(_)));
    }

    #[test]
    fn disabled_user_makes_no_changes() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(true, false, None);
        assert_eq!(bot.on_own_message(&mut rng), None);
        bot.set_enabled(true);
        assert!(bot.on_own_message(&mut rng).is_some());
    }

    #[test]
    fn a_requested_color_is_set_even_when_disabled_and_after_the_one_in_flight() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(true, false, None);
        let change = bot.request("#aabbcc".into()).unwrap();
        assert_eq!(change.color, "#aabbcc");
        // refused: no named fallback for a color the user chose
        assert_eq!(
            bot.on_outcome(Outcome::Rejected("no".into()), &mut rng),
            None
        );
        assert!(matches!(events(&mut bot)[..], [BotEvent::Failed(_)]));
        bot.set_enabled(true);
        bot.on_own_message(&mut rng).unwrap();
        assert_eq!(bot.request("red".into()), None);
        let next = bot.on_outcome(Outcome::Done, &mut rng).unwrap();
        assert_eq!(next.color, "red");
        assert_eq!(bot.on_outcome(Outcome::Done, &mut rng), None);
        assert_eq!(bot.current(), Some("red"));
    }

    #[test]
    fn unauthorized_drops_the_pending_change() {
        let mut rng = WyRand::new_seed(3);
        let mut bot = ColorBot::new(false, true, None);
        bot.on_own_message(&mut rng).unwrap();
        bot.on_own_message(&mut rng);
        assert_eq!(
            bot.on_outcome(
                Outcome::Unauthorized("Invalid OAuth token".into()),
                &mut rng
            ),
            None
        );
        assert_eq!(
            events(&mut bot),
            [BotEvent::Unauthorized("Invalid OAuth token".into())]
        );
        assert!(!bot.is_busy());
    }
}
