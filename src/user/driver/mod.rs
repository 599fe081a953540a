//! The driver's loop: one select over the supervisor's orders, the operations in flight, the
//! chat connections and the one timer; the account is handed what happened, and its work
//! becomes operations, writes and connections.

mod work;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smol::future;

use super::{Control, Mailbox, Report, Services, UserError, STOP_GRACE};
use crate::account::{Account, Done};
use crate::chat::Link;
use crate::clock::Sleep;
use crate::log;
use crate::oauth::AppCredentials;
use crate::readbuf;
use crate::transport::BoxStream;

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session that ended may take to send its last frames (a WebSocket Close).
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// An operation in flight and what it yields.
struct Op {
    /// Asked for by the chat session: void when the session ends.
    chat: bool,
    run: Pin<Box<dyn Future<Output = Outcome>>>,
}

enum Outcome {
    Done(Done),
    Connected(io::Result<BoxStream>),
    Dialed(Link, io::Result<BoxStream>),
}

/// One connection of a chat session and the bytes still to be written to it. Writes are
/// polled beside the reads and the timer, never awaited: a peer that stops reading holds up
/// only its own connection, until its write deadline.
struct Wire {
    link: Link,
    stream: BoxStream,
    /// Queued bytes, and how many of them are written.
    out: Vec<u8>,
    sent: usize,
    /// Written by then, or the connection is given up.
    by: Option<Instant>,
    /// Close the connection once `out` is written (a WebSocket close frame).
    close: bool,
}

impl Wire {
    fn new(link: Link, stream: BoxStream) -> Wire {
        Wire {
            link,
            stream,
            out: Vec::new(),
            sent: 0,
            by: None,
            close: false,
        }
    }

    /// Queues `bytes`, to be written by `by` (the deadline of the oldest queued bytes holds).
    fn queue(&mut self, bytes: Vec<u8>, by: Instant) {
        if self.out.is_empty() {
            self.by = Some(by);
            self.out = bytes;
        } else {
            self.out.extend_from_slice(&bytes);
        }
    }

    /// Writes and flushes what is queued: `Ready(Ok)` once nothing is left.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        use smol::io::AsyncWrite;
        if self.out.is_empty() {
            return Poll::Ready(Ok(()));
        }
        while self.sent < self.out.len() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out[self.sent..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                // not `clear`: an idle connection holds no buffer (1,000 users: 0.5 MiB)
                self.out = Vec::new();
                self.sent = 0;
                self.by = None;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

enum Wake {
    Control(Control),
    Outcome(Outcome),
    /// Chat bytes read at that moment, already handed to the account.
    Input(Instant),
    /// A chat connection ended (`Ok`: at the server's close) or failed.
    Closed(Link, io::Result<()>),
    /// Writing to a chat connection failed.
    WriteFailed(Link, io::Error),
    /// A chat connection the session asked to close once written is written.
    Sent(Link),
    Timer,
}

pub(super) struct Driver {
    services: Arc<Services>,
    username: String,
    app: AppCredentials,
    account: Account,
    /// The live chat session's connections (two only during an EventSub reconnect).
    links: Vec<Wire>,
    /// Connections of sessions that ended, until their last frames are sent.
    ended: Vec<Wire>,
    ops: Vec<Op>,
    /// Orders from the supervisor, reports to it.
    mailbox: Arc<Mailbox>,
    /// The one timer, armed for the earliest deadline of the account, and that deadline.
    timer: Option<(Instant, Sleep)>,
    /// Stopping: end by then at the latest.
    stop_by: Option<Instant>,
    /// When the chat input being handled was read (a color it asks for is timed from then).
    read_at: Option<Instant>,
}

impl Driver {
    pub(super) fn new(
        services: Arc<Services>,
        app: AppCredentials,
        account: Account,
        mailbox: Arc<Mailbox>,
        username: String,
    ) -> Driver {
        Driver {
            services,
            username,
            app,
            account,
            links: Vec::new(),
            ended: Vec::new(),
            ops: Vec::new(),
            mailbox,
            timer: None,
            stop_by: None,
            read_at: None,
        }
    }

    pub(super) fn who(&self) -> Option<&str> {
        Some(&self.username)
    }

    fn now(&self) -> Instant {
        self.services.clock.now()
    }

    /// The earliest deadline of the account, of a write and of a stop.
    fn deadline(&self) -> Option<Instant> {
        let writes = self
            .links
            .iter()
            .chain(&self.ended)
            .filter_map(|w| w.by)
            .min();
        [self.account.poll_timeout(), writes, self.stop_by]
            .into_iter()
            .flatten()
            .min()
    }

    /// Arms the timer for the earliest deadline, made again only when that comes sooner
    /// than the one armed: a deadline that moved later (the chat idle timer, pushed back by
    /// every message) lets the armed timer fire early once, the account finds nothing due,
    /// and it is armed again then. A new timer is an allocation and an entry in the
    /// reactor's list (on async-io it also woke the reactor's thread); this keeps it off the
    /// message path.
    fn arm_timer(&mut self) {
        let Some(deadline) = self.deadline() else {
            return;
        };
        if self.timer.as_ref().is_none_or(|(at, _)| deadline < *at) {
            self.timer = Some((deadline, self.services.clock.sleep_until(deadline)));
        }
    }

    fn publish(&self) {
        self.mailbox.publish(Report {
            user: self.account.status(),
            tokens: self.account.token_status(),
        });
    }

    /// Runs the user until it stops or gives up. (`&mut self`, not `self`: the future
    /// would hold the driver twice.)
    pub(super) async fn drive(&mut self) -> Result<(), UserError> {
        // Chat input the account made nothing of (other people's messages, PINGs) changes
        // no status: only then is the status snapshot (a few allocations) skipped.
        let mut chat_input_only = false;
        loop {
            while let Some(work) = self.account.poll_work() {
                self.perform(work);
            }
            if let Some(why) = self.account.gave_up() {
                self.publish();
                return Err(UserError::NotAuthorised(why.to_owned()));
            }
            if self.stop_by.is_some() && !self.account.renewal_in_flight() {
                return Ok(());
            }
            if self.transmit() {
                continue; // a connection was closed: the session has news
            }
            if self.account.take_news() || !chat_input_only {
                self.publish();
            }
            self.arm_timer();

            let clock = &*self.services.clock;
            let Driver {
                account,
                ops,
                links,
                ended,
                timer,
                mailbox,
                ..
            } = self;
            // one hand-written select over every source: nested `future::or`s cost ~40 KB.
            // The timer comes first, so a busy socket can never starve it.
            let wake = future::poll_fn(|cx| {
                if let Some((_, sleep)) = timer {
                    if sleep.as_mut().poll(cx).is_ready() {
                        *timer = None;
                        return Poll::Ready(Wake::Timer);
                    }
                }
                if let Poll::Ready(order) = mailbox.poll_order(cx) {
                    return Poll::Ready(Wake::Control(order));
                }
                for i in 0..ops.len() {
                    if let Poll::Ready(outcome) = ops[i].run.as_mut().poll(cx) {
                        ops.swap_remove(i);
                        return Poll::Ready(Wake::Outcome(outcome));
                    }
                }
                // what ended sessions still send (their Close frames), best effort
                ended.retain_mut(|w| w.poll_send(cx).is_pending());
                for wire in links.iter_mut() {
                    match wire.poll_send(cx) {
                        Poll::Ready(Ok(())) if wire.close => {
                            return Poll::Ready(Wake::Sent(wire.link))
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Wake::WriteFailed(wire.link, e)),
                        Poll::Ready(Ok(())) | Poll::Pending => {}
                    }
                }
                for Wire { link, stream, .. } in links.iter_mut() {
                    // the bytes go to the account straight from the thread's buffer
                    let read = readbuf::PLAINTEXT.poll_read(stream, cx, |bytes| {
                        let now = clock.now();
                        if !bytes.is_empty() {
                            account.handle_input(now, *link, bytes);
                        }
                        (!bytes.is_empty()).then_some(now)
                    });
                    match read {
                        Poll::Ready(Ok(Some(at))) => return Poll::Ready(Wake::Input(at)),
                        Poll::Ready(Ok(None)) => return Poll::Ready(Wake::Closed(*link, Ok(()))),
                        Poll::Ready(Err(e)) => return Poll::Ready(Wake::Closed(*link, Err(e))),
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            })
            .await;

            let now = self.now();
            self.read_at = match wake {
                Wake::Input(at) => Some(at),
                _ => None,
            };
            chat_input_only = self.read_at.is_some();
            match wake {
                Wake::Control(Control::Update(mut user)) => {
                    user.chat_transport
                        .get_or_insert(self.services.default_transport);
                    self.account.handle_config(now, &user);
                }
                Wake::Control(Control::Stop) => {
                    if self.account.renewal_in_flight() {
                        log!(
                            Info,
                            self.who(),
                            None,
                            "stopping: waiting (at most {}s) for a token refresh to be saved",
                            STOP_GRACE.as_secs()
                        );
                    }
                    self.stop_by = Some(now + STOP_GRACE);
                }
                Wake::Outcome(Outcome::Done(done)) => {
                    let wall = self.services.clock.wall();
                    self.account.handle_done(now, wall, done);
                }
                Wake::Outcome(Outcome::Connected(result)) => {
                    let result = result.map(|stream| self.links = vec![Wire::new(0, stream)]);
                    let eventsub = &self.services.eventsub;
                    self.account.handle_connected(now, result, eventsub);
                }
                Wake::Outcome(Outcome::Dialed(link, result)) => {
                    let result = result.map(|stream| self.links.push(Wire::new(link, stream)));
                    self.account.handle_dialed(now, link, result);
                }
                Wake::Input(_) => {}
                Wake::Closed(link, Ok(())) => self.lost(now, link, "server closed the connection"),
                // A peer that closes without TLS close_notify is still just a closed connection.
                Wake::Closed(link, Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.lost(now, link, "server closed the connection")
                }
                Wake::Closed(link, Err(e)) => self.lost(now, link, &format!("read failed: {e}")),
                Wake::WriteFailed(link, e) => self.lost(now, link, &format!("write failed: {e}")),
                Wake::Sent(link) => self.links.retain(|w| w.link != link),
                Wake::Timer => {
                    if self.stop_by.is_some_and(|by| by <= now) {
                        return Ok(());
                    }
                    // a peer that has not taken the bytes in time: that connection is lost
                    let late = |w: &Wire| w.by.is_some_and(|by| by <= now);
                    self.ended.retain(|w| !late(w));
                    let stuck: Vec<Link> = self
                        .links
                        .iter()
                        .filter(|w| late(w))
                        .map(|w| w.link)
                        .collect();
                    for link in stuck {
                        self.lost(now, link, "write timed out");
                    }
                    self.account.handle_timeout(now);
                }
            }
        }
    }

    /// Connection `link` of the chat session ended.
    fn lost(&mut self, now: Instant, link: Link, why: &str) {
        self.links.retain(|w| w.link != link);
        self.account.handle_lost(now, link, why);
    }

    /// Queues what the chat session has to send on its connections, and closes those it is
    /// done with once their bytes are out. Returns true when a connection was closed at once
    /// (nothing was queued on it: the session has news).
    fn transmit(&mut self) -> bool {
        let by = self.now() + WRITE_TIMEOUT;
        let mut news = false;
        while let Some(out) = self.account.poll_transmit() {
            let Some(i) = self.links.iter().position(|w| w.link == out.link) else {
                continue;
            };
            let wire = &mut self.links[i];
            if !out.bytes.is_empty() {
                log!(Debug, Some(&self.username), None, "> {}", out.shown);
                wire.queue(out.bytes, by);
            }
            if out.then_close {
                if wire.out.is_empty() {
                    self.links.remove(i);
                    news = true;
                } else {
                    wire.close = true;
                }
            }
        }
        news
    }
}
