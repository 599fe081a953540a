//! The driver's hands: what the cores and the chat session ask for becomes operations in
//! flight (Helix and OAuth calls, connections, config writes), and a new connection
//! becomes a chat session.

use super::*;

impl Driver {
    /// Starts what the chat session asked for.
    pub(super) fn order(&mut self, order: Order) {
        let services = self.services.clone();
        match order {
            Order::Dial { link, endpoint } => {
                log!(Debug, self.who(), None, "connecting to {endpoint}");
                self.ops.dial = Some(Box::pin(
                    async move { (link, open(&services, &endpoint).await) },
                ));
            }
            Order::Api(request) => {
                let token = self.tokens.access().clone();
                let client_id = self.app.id.clone();
                self.ops.chat_api = Some(Box::pin(async move {
                    chat_api(&services, &client_id, &token, request).await
                }));
            }
        }
    }

    pub(super) fn perform(&mut self, action: Action) {
        let services = self.services.clone();
        match action {
            Action::LookUpUser => {
                let token = self.tokens.access().clone();
                self.ops.lookup_token = token.clone();
                let client_id = self.app.id.clone();
                self.ops.lookup = Some(Box::pin(async move {
                    look_up(&services, &client_id, &token).await
                }));
            }
            Action::Connect => {
                // a session still live (a switch of transport) says goodbye first
                if let Some(conn) = &mut self.chat {
                    conn.session.leave();
                }
                self.end_chat();
                self.ops.chat_token = self.tokens.access().clone();
                let transport = self.core.transport();
                let endpoint = self.endpoint(transport).clone();
                log!(
                    Debug,
                    self.who(),
                    None,
                    "connecting to {endpoint} ({})",
                    transport.display_name()
                );
                self.ops.connect = Some(Box::pin(async move { open(&services, &endpoint).await }));
            }
            Action::Join(channel) => {
                if let Some(conn) = &mut self.chat {
                    conn.session.join(services.clock.now(), &channel);
                }
            }
            Action::Part(channel) => {
                if let Some(conn) = &mut self.chat {
                    conn.session.part(&channel);
                }
            }
            Action::SetColor(color) => {
                let token = self.tokens.access().clone();
                self.ops.put_token = token.clone();
                let user_id = self.core.user_id().unwrap_or_default().to_owned();
                let client_id = self.app.id.clone();
                let read_at = self.read_at;
                self.ops.put = Some(Box::pin(async move {
                    put_color(&services, &client_id, &token, &user_id, &color, read_at).await
                }));
            }
            Action::RefreshToken(purpose) => {
                let stale = match purpose {
                    Purpose::Lookup => self.ops.lookup_token.clone(),
                    Purpose::Chat => self.ops.chat_token.clone(),
                    Purpose::Color => self.ops.put_token.clone(),
                    Purpose::Subscription => self.tokens.access().clone(),
                };
                // chat does not say why it refused: ask Twitch about the token first
                let check = match purpose {
                    Purpose::Chat | Purpose::Subscription => Some(self.core.transport().scope()),
                    Purpose::Lookup | Purpose::Color => None,
                };
                let now = services.clock.now();
                self.tokens.handle_refused(now, purpose, &stale, check);
            }
            Action::Persist(field) => self.persists.push_back(field),
        }
    }

    pub(super) fn endpoint(&self, transport: chat::Protocol) -> &Endpoint {
        match transport {
            chat::Protocol::Irc => &self.services.irc,
            chat::Protocol::EventSub => &self.services.eventsub.endpoint,
        }
    }

    pub(super) fn connected(&mut self, now: Instant, result: io::Result<BoxStream>) {
        match result {
            Ok(stream) => {
                let session = match self.core.transport() {
                    chat::Protocol::Irc => ChatSession::irc(
                        now,
                        Login {
                            login: &self.username,
                            user_id: self.core.user_id(),
                            token: &self.ops.chat_token,
                            channels: self.core.channels(),
                        },
                    ),
                    chat::Protocol::EventSub => ChatSession::eventsub(
                        now,
                        &self.services.eventsub,
                        self.core.user_id().unwrap_or_default(),
                        self.core.channels(),
                        WyRand::new().generate::<u64>(),
                    ),
                };
                self.chat = Some(Conn {
                    session,
                    links: vec![Wire::new(0, stream)],
                });
            }
            // EMFILE, ENFILE: the others' connections go on, this one waits its turn
            Err(e) if crate::nofile::exhausted(&e) => self.core.handle_no_descriptors(
                now,
                &format!("cannot connect: the open-files limit is reached ({e})"),
            ),
            Err(e) => self.core.handle_disconnected(now, &e.to_string(), false),
        }
    }

    /// Config writes leave the executor thread and run one at a time, in order.
    pub(super) fn start_persist(&mut self) {
        if self.ops.persist.is_some() {
            return;
        }
        let Some(field) = crate::queue::pop(&mut self.persists) else {
            return;
        };
        let file = self.services.config.clone();
        let username = self.username.clone();
        let (key, value) = field_entry(field);
        let task = smol::unblock(move || {
            file.update_user(&username, |entry| {
                entry.insert(key.into(), value);
            })
        });
        self.ops.persist = Some(Box::pin(async move { (field, task.await) }));
    }

    pub(super) fn persisted(&self, field: Field, result: Result<(), ConfigError>) {
        let (key, value) = field_entry(field);
        let path = self.services.config.path().display();
        match (result, field) {
            (Ok(()), _) => log!(Info, self.who(), None, "saved \"{key}\": {value} to {path}"),
            (Err(e), Field::PrimeOrTurbo(_)) => log!(Error, self.who(), None, "could not save \"{key}\": {value} ({e}); the bot will try hex colors again after a restart"),
            (Err(e), Field::Enabled(_) | Field::ColorMode(_)) => log!(Error, self.who(), None, "could not save \"{key}\": {value} ({e}); the setting holds until the bot restarts"),
        }
    }
}

fn field_entry(field: Field) -> (&'static str, serde_json::Value) {
    match field {
        Field::Enabled(on) => ("enabled", on.into()),
        Field::PrimeOrTurbo(on) => ("is_prime_or_turbo", on.into()),
        Field::ColorMode(kind) => ("color_mode", kind.name().into()),
    }
}
