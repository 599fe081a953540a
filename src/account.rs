//! One account as one sans-IO state machine, in the shape of quinn-proto's `Connection`: its
//! tokens ([`TokenCore`]), its decisions ([`UserCore`]) and its chat session
//! ([`ChatSession`]). Answers and bytes go in with `now` (`handle_*`); work for the driver
//! comes out of [`Account::poll_work`], bytes to write of [`Account::poll_transmit`], one
//! deadline of [`Account::poll_timeout`].
//!
//! What passes between the cores is decided here, where it is tested on `t0 + Duration`:
//! which token a 401 found stale and whether chat's refusal needs a scope check, when the
//! user core may start, one config write at a time. The driver ([`crate::user`]) performs the work and reports how it ended.

use std::collections::VecDeque;
use std::io;
use std::time::{Instant, SystemTime};

use nanorand::{Rng, WyRand};

use crate::answer::ApiError;
use crate::chat::{self, ApiAnswer, ApiRequest, Link, Login, Order, Protocol, Transmit};
use crate::chat_session::ChatSession;
use crate::config::user::{ConfigError, UserConfig};
use crate::endpoint::{Endpoint, Url};
use crate::log;
use crate::secret::Secret;
use crate::tokens::{
    Prompt, Purpose, TokenAction, TokenAnswer, TokenCore, TokenEvent, TokenStatus,
};
use crate::usercore::{Action, Counters, Field, Identity, Status, UserCore};

/// What the driver should do for the account; each is reported back once.
#[derive(Debug)]
#[non_exhaustive]
pub enum Work {
    /// A token operation; answer with [`Done::Token`].
    Token(TokenAction),
    /// Find the token's owner and color with this token; answer with [`Done::LookUp`].
    LookUp(Secret),
    /// Open a chat connection for this protocol; report with [`Account::handle_connected`].
    Connect(Protocol),
    /// `PUT /chat/color`; answer with [`Done::Put`].
    SetColor {
        /// The token to use.
        token: Secret,
        /// The token owner's id.
        user_id: String,
        /// The color.
        color: String,
    },
    /// Write this field to the user's entry in the config file; answer with
    /// [`Done::Persisted`]. One at a time, in order.
    Persist(Field),
    /// Open connection `link` of the chat session; report with [`Account::handle_dialed`].
    Dial {
        /// The number the session gave it.
        link: Link,
        /// Where to connect.
        endpoint: Endpoint,
    },
    /// A Helix call of the chat session, with this token; answer with [`Done::Api`].
    Api {
        /// The token to use.
        token: Secret,
        /// The call.
        request: ApiRequest,
    },
    /// Show the person a device code (no answer).
    Prompt(Prompt),
    /// The chat session is over: write these last bytes (its goodbye) briefly and best
    /// effort, then close its connections. Its `Dial` and `Api` work in flight is void.
    EndChat(Vec<Transmit>),
}

/// How a piece of [`Work`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Done {
    /// [`Work::Token`].
    Token(TokenAnswer),
    /// [`Work::LookUp`].
    LookUp(Result<Identity, ApiError>),
    /// [`Work::SetColor`].
    Put(Result<(), ApiError>),
    /// [`Work::Persist`].
    Persisted(Field, Result<(), ConfigError>),
    /// [`Work::Api`].
    Api(ApiAnswer),
}

/// The token each call in flight used: a 401 renews the token only if it is still in use.
#[derive(Debug, Default)]
struct Used {
    lookup: Secret,
    put: Secret,
    chat: Secret,
}

/// One account: its tokens, its decisions and its chat session. No I/O, no clock of its own.
pub struct Account {
    username: String,
    tokens: TokenCore,
    core: UserCore,
    /// The token core has had a valid token: the user core's actions run from then on.
    started: bool,
    chat: Option<ChatSession>,
    used: Used,
    token_busy: bool,
    persisting: bool,
    persists: VecDeque<Field>,
    work: VecDeque<Work>,
    /// Why no token could be had: the account is over.
    gave_up: Option<String>,
    /// Something changed since [`Account::take_news`] was last asked.
    news: bool,
    rng: WyRand,
}

impl Account {
    /// The account of `user` (its `chat_transport` already set) with `tokens`, carrying
    /// `counters` over from an earlier run; `seed` for its random choices.
    pub fn new(
        now: Instant,
        user: &UserConfig,
        tokens: TokenCore,
        counters: Counters,
        seed: u64,
    ) -> Account {
        let mut account = Account {
            username: user.username.clone(),
            tokens,
            core: UserCore::new(now, user, counters, seed),
            started: false,
            chat: None,
            used: Used::default(),
            token_busy: false,
            persisting: false,
            persists: VecDeque::new(),
            work: VecDeque::new(),
            gave_up: None,
            news: true,
            rng: WyRand::new_seed(seed.rotate_left(32)),
        };
        account.settle(now);
        account
    }

    fn who(&self) -> Option<&str> {
        Some(&self.username)
    }

    /// The next piece of work for the driver.
    #[must_use]
    pub fn poll_work(&mut self) -> Option<Work> {
        crate::queue::pop(&mut self.work)
    }

    /// The next bytes to write on a connection of the live chat session.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.chat.as_mut()?.poll_transmit()
    }

    /// When [`Account::handle_timeout`] should next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tokens.poll_timeout(),
            self.started.then(|| self.core.poll_timeout()).flatten(),
            self.chat.as_ref().and_then(ChatSession::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Why the account gave up (no token could be had), once it has.
    pub fn gave_up(&self) -> Option<&str> {
        self.gave_up.as_deref()
    }

    /// Whether anything changed since the last call (the status is worth publishing).
    pub fn take_news(&mut self) -> bool {
        std::mem::take(&mut self.news)
    }

    /// True while a pair Twitch may already have rotated is between its request and its
    /// save: a stop now could lose it.
    pub fn renewal_in_flight(&self) -> bool {
        self.tokens.renewal_in_flight()
    }

    /// Where the user stands.
    pub fn status(&self) -> Status {
        self.core.status()
    }

    /// Where the tokens stand.
    pub fn token_status(&self) -> TokenStatus {
        self.tokens.status()
    }

    /// Handles every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tokens.handle_timeout(now);
        if self.started {
            self.core.handle_timeout(now);
        }
        if let Some(chat) = &mut self.chat {
            chat.handle_timeout(now);
        }
        self.settle(now);
    }

    /// The person edited the user's settings (same credentials; `chat_transport` set).
    pub fn handle_config(&mut self, now: Instant, user: &UserConfig) {
        self.core.handle_config(user);
        self.settle(now);
    }

    /// A piece of work ended; `wall` reads the rate-limit resets Twitch gives in Unix time.
    pub fn handle_done(&mut self, now: Instant, wall: SystemTime, done: Done) {
        match done {
            Done::Token(answer) => {
                self.token_busy = false;
                self.tokens.handle_answer(now, wall, answer);
            }
            Done::LookUp(result) => self.core.handle_lookup(now, result),
            Done::Put(result) => self.core.handle_put(now, wall, result),
            Done::Persisted(field, result) => {
                self.persisting = false;
                self.persisted(field, result);
            }
            Done::Api(answer) => {
                if let Some(chat) = &mut self.chat {
                    chat.handle_api(now, answer);
                }
            }
        }
        self.settle(now);
    }

    /// [`Work::Connect`] ended; `eventsub` is where an EventSub session's connection went.
    pub fn handle_connected(&mut self, now: Instant, result: io::Result<()>, eventsub: &Url) {
        match result {
            Ok(()) => {
                let core = &self.core;
                self.chat = Some(match core.transport() {
                    Protocol::Irc => ChatSession::irc(
                        now,
                        Login {
                            login: &self.username,
                            user_id: core.user_id(),
                            token: &self.used.chat,
                            channels: core.channels(),
                        },
                    ),
                    Protocol::EventSub => ChatSession::eventsub(
                        now,
                        eventsub,
                        core.user_id().unwrap_or_default(),
                        core.channels(),
                        self.rng.generate::<u64>(),
                    ),
                });
            }
            // EMFILE, ENFILE: the others' connections go on, this one waits its turn
            Err(e) if crate::nofile::exhausted(&e) => self.core.handle_no_descriptors(
                now,
                &format!("cannot connect: the open-files limit is reached ({e})"),
            ),
            Err(e) => self.core.handle_disconnected(now, &e.to_string(), false),
        }
        self.settle(now);
    }

    /// [`Work::Dial`] ended.
    pub fn handle_dialed(&mut self, now: Instant, link: Link, result: io::Result<()>) {
        if let Some(chat) = &mut self.chat {
            chat.handle_dialed(now, link, result);
        }
        self.settle(now);
    }

    /// Bytes read from connection `link` of the chat session.
    pub fn handle_input(&mut self, now: Instant, link: Link, bytes: &[u8]) {
        if let Some(chat) = &mut self.chat {
            chat.handle_input(now, link, bytes);
        }
        self.settle(now);
    }

    /// Connection `link` of the chat session ended (closed by the peer, a read or a write
    /// failed or timed out).
    pub fn handle_lost(&mut self, now: Instant, link: Link, why: &str) {
        if let Some(chat) = &mut self.chat {
            chat.handle_lost(now, link, why.to_owned());
        }
        self.settle(now);
    }

    /// Hands each core the others' events and turns their actions into work, until none
    /// has anything more.
    fn settle(&mut self, now: Instant) {
        loop {
            let mut busy = false;
            if !self.token_busy {
                if let Some(action) = self.tokens.poll_action() {
                    busy = true;
                    self.token_busy = true;
                    self.work.push_back(Work::Token(action));
                }
            }
            while let Some(event) = self.tokens.poll_event() {
                busy = true;
                match event {
                    TokenEvent::Ready => self.started = true,
                    TokenEvent::Renewed => self.core.handle_token_renewed(now),
                    TokenEvent::Answer(purpose, result) => {
                        self.core.handle_refreshed(now, purpose, result)
                    }
                    TokenEvent::Prompt(prompt) => self.work.push_back(Work::Prompt(prompt)),
                    TokenEvent::GaveUp(why) => {
                        self.gave_up = Some(why);
                        self.news = true;
                        return;
                    }
                }
            }
            while let Some(action) = self.started.then(|| self.core.poll_action()).flatten() {
                busy = true;
                self.perform(now, action);
            }
            while let Some(event) = self.chat.as_mut().and_then(ChatSession::poll_event) {
                busy = true;
                let closed = matches!(event, chat::Event::Closed(_));
                self.core.handle_chat(now, event);
                if closed {
                    self.end_chat();
                }
            }
            while let Some(order) = self.chat.as_mut().and_then(ChatSession::poll_order) {
                busy = true;
                self.work.push_back(match order {
                    Order::Dial { link, endpoint } => Work::Dial { link, endpoint },
                    Order::Api(request) => Work::Api {
                        token: self.tokens.access().clone(),
                        request,
                    },
                });
            }
            if !self.persisting {
                if let Some(field) = crate::queue::pop(&mut self.persists) {
                    busy = true;
                    self.persisting = true;
                    self.work.push_back(Work::Persist(field));
                }
            }
            if !busy {
                return;
            }
            self.news = true;
        }
    }

    fn perform(&mut self, now: Instant, action: Action) {
        match action {
            Action::LookUpUser => {
                self.used.lookup = self.tokens.access().clone();
                self.work.push_back(Work::LookUp(self.used.lookup.clone()));
            }
            Action::Connect => {
                // a session still live (a switch of transport) says goodbye first
                if let Some(chat) = &mut self.chat {
                    chat.leave();
                }
                self.end_chat();
                self.used.chat = self.tokens.access().clone();
                self.work.push_back(Work::Connect(self.core.transport()));
            }
            Action::Join(channel) => {
                if let Some(chat) = &mut self.chat {
                    chat.join(now, &channel);
                }
            }
            Action::Part(channel) => {
                if let Some(chat) = &mut self.chat {
                    chat.part(&channel);
                }
            }
            Action::SetColor(color) => {
                self.used.put = self.tokens.access().clone();
                self.work.push_back(Work::SetColor {
                    token: self.used.put.clone(),
                    user_id: self.core.user_id().unwrap_or_default().to_owned(),
                    color,
                });
            }
            Action::RefreshToken(purpose) => {
                let stale = match purpose {
                    Purpose::Lookup => &self.used.lookup,
                    Purpose::Chat => &self.used.chat,
                    Purpose::Color => &self.used.put,
                    Purpose::Subscription => self.tokens.access(),
                }
                .clone();
                // chat does not say why it refused: ask Twitch about the token first
                let check = match purpose {
                    Purpose::Chat | Purpose::Subscription => Some(self.core.transport().scope()),
                    Purpose::Lookup | Purpose::Color => None,
                };
                self.tokens.handle_refused(now, purpose, &stale, check);
            }
            Action::Persist(field) => self.persists.push_back(field),
        }
    }

    /// The chat session is over: what it still had queued goes out with its connections'
    /// end.
    fn end_chat(&mut self) {
        if let Some(mut chat) = self.chat.take() {
            let last = std::iter::from_fn(|| chat.poll_transmit()).collect();
            self.work.push_back(Work::EndChat(last));
        }
    }

    fn persisted(&self, field: Field, result: Result<(), ConfigError>) {
        let (key, value) = field.entry();
        let path = self.tokens.saved_to();
        match (result, field) {
            (Ok(()), _) => log!(Info, self.who(), None, "saved \"{key}\": {value} to {path}"),
            (Err(e), Field::PrimeOrTurbo(_)) => log!(Error, self.who(), None, "could not save \"{key}\": {value} ({e}); the bot will try hex colors again after a restart"),
            (Err(e), Field::Enabled(_) | Field::ColorMode(_)) => log!(Error, self.who(), None, "could not save \"{key}\": {value} ({e}); the setting holds until the bot restarts"),
        }
    }
}

#[cfg(test)]
mod tests;
