//! Config edits applied to a running user core: channels, transport, colors, flags.

use super::{hashed, or_none, Action, Chat, UserCore};
use crate::config::user::UserConfig;
use crate::log;

impl UserCore {
    /// The person edited this user's settings (channels, `enabled`, `is_prime_or_turbo`):
    /// applied in place, joining and leaving channels on the live session.
    pub(crate) fn handle_config(&mut self, user: &UserConfig) {
        let added: Vec<String> = user
            .channels
            .iter()
            .filter(|c| !self.channels.contains(c))
            .cloned()
            .collect();
        let removed: Vec<String> = self
            .channels
            .iter()
            .filter(|c| !user.channels.contains(c))
            .cloned()
            .collect();
        if !added.is_empty() || !removed.is_empty() {
            log!(
                Info,
                self.who(),
                None,
                "channels now {} (joining {}, leaving {})",
                hashed(&user.channels),
                or_none(&added),
                or_none(&removed)
            );
            self.channels = user.channels.clone();
            if matches!(self.chat, Chat::Connecting | Chat::Ready(_)) {
                self.actions.extend(added.into_iter().map(Action::Join));
                self.actions.extend(removed.into_iter().map(Action::Part));
            } else if self.chat == Chat::Parked && !added.is_empty() {
                self.connect();
            }
        }
        let transport = user.chat_transport.unwrap_or_default();
        if transport != self.transport {
            self.transport = transport;
            let live = matches!(self.chat, Chat::Connecting | Chat::Ready(_));
            let when = if live {
                "now"
            } else {
                "from the next connection"
            };
            log!(
                Info,
                self.who(),
                None,
                "chat over {} {when} (config file)",
                transport.display_name()
            );
            if live || self.chat == Chat::Parked {
                // only the chat side restarts: the old session goes when the driver connects
                self.joined.clear();
                self.connect();
            }
        }
        if user.colors != *self.bot.colors() {
            self.bot.set_colors(user.colors.clone());
            let what = user.colors.describe(user.is_prime_or_turbo);
            log!(Info, self.who(), None, "colors now {what} (config file)");
        }
        if user.enabled != self.bot.enabled() {
            self.bot.set_enabled(user.enabled);
            let what = if user.enabled { "enabled" } else { "disabled" };
            log!(
                Info,
                self.who(),
                None,
                "automatic color changes {what} (config file)"
            );
        }
        if user.is_prime_or_turbo != self.bot.prime_or_turbo() {
            self.bot.set_prime_or_turbo(user.is_prime_or_turbo);
            let what = if user.is_prime_or_turbo {
                "random hex colors"
            } else {
                "named colors"
            };
            log!(Info, self.who(), None, "using {what} (config file)");
        }
    }
}
