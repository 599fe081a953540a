//! The driver's hands: the account's work becomes operations in flight (Helix and OAuth
//! calls, connections, config writes off the executor thread), and an ended chat session's
//! connections say their goodbye.

use std::future::Future;

use super::super::calls::{chat_api, look_up, open, put_color, token_op};
use super::{Driver, Op, Outcome, GOODBYE_TIMEOUT};
use crate::account::{Done, Work};
use crate::chat::{self, Transmit};
use crate::log;

impl Driver {
    fn start(&mut self, chat: bool, run: impl Future<Output = Outcome> + 'static) {
        self.ops.push(Op {
            chat,
            run: Box::pin(run),
        });
    }

    pub(super) fn perform(&mut self, work: Work) {
        let services = self.services.clone();
        let client_id = self.app.id.clone();
        match work {
            Work::Token(action) => {
                let answer = token_op(&services, &self.app, &self.username, action);
                self.start(
                    false,
                    async move { Outcome::Done(Done::Token(answer.await)) },
                );
            }
            Work::LookUp(token) => self.start(false, async move {
                Outcome::Done(Done::LookUp(look_up(&services, &client_id, &token).await))
            }),
            Work::Connect(transport) => {
                let endpoint = match transport {
                    chat::Protocol::Irc => services.irc.clone(),
                    chat::Protocol::EventSub => services.eventsub.endpoint.clone(),
                };
                log!(
                    Debug,
                    self.who(),
                    None,
                    "connecting to {endpoint} ({})",
                    transport.display_name()
                );
                self.start(false, async move {
                    Outcome::Connected(open(&services, &endpoint).await)
                });
            }
            Work::SetColor {
                token,
                user_id,
                color,
            } => {
                let read_at = self.read_at;
                self.start(false, async move {
                    let put = put_color(&services, &client_id, &token, &user_id, &color, read_at);
                    Outcome::Done(Done::Put(put.await))
                });
            }
            Work::Persist(field) => {
                let file = services.config.clone();
                let username = self.username.clone();
                let (key, value) = field.entry();
                let task = smol::unblock(move || {
                    file.update_user(&username, |entry| {
                        entry.insert(key.into(), value);
                    })
                });
                self.start(false, async move {
                    Outcome::Done(Done::Persisted(field, task.await))
                });
            }
            Work::Dial { link, endpoint } => {
                log!(Debug, self.who(), None, "connecting to {endpoint}");
                self.start(true, async move {
                    Outcome::Dialed(link, open(&services, &endpoint).await)
                });
            }
            Work::Api { token, request } => self.start(true, async move {
                Outcome::Done(Done::Api(
                    chat_api(&services, &client_id, &token, request).await,
                ))
            }),
            Work::Prompt(p) if p.reminder => {
                services.prompter.remind(&self.username, &p.code, p.left)
            }
            Work::Prompt(p) => services.prompter.show(&self.username, &p.code, p.left),
            Work::EndChat(last) => self.end_chat(last),
        }
    }

    /// The chat session is over: its connections and the work it asked for go with it, once
    /// what it still had queued (the Close frames of an EventSub session, say) is sent, briefly
    /// and best effort.
    fn end_chat(&mut self, last: Vec<Transmit>) {
        let by = self.now() + GOODBYE_TIMEOUT;
        for out in last {
            if let Some(wire) = self.links.iter_mut().find(|w| w.link == out.link) {
                if !out.bytes.is_empty() {
                    log!(Debug, Some(&self.username), None, "> {}", out.shown);
                    wire.queue(out.bytes, by);
                }
            }
        }
        self.ended
            .extend(self.links.drain(..).filter(|w| !w.out.is_empty()));
        self.ops.retain(|op| !op.chat);
    }
}
