//! The driver's loop: one select over the supervisor's orders, the operations in flight, the
//! chat connections and the one timer; then each core is handed what happened, and their
//! actions become operations, writes and connections.

mod actions;

use super::calls::{chat_api, look_up, open, put_color};
use super::*;
use crate::readbuf;

const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a session that ended may take to send its last frames (a WebSocket Close).
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(1);

/// The operations in flight, at most one of each kind, with the token each one used.
#[derive(Default)]
struct Ops {
    lookup: Op<Result<Identity, Failure>>,
    lookup_token: Secret,
    put: Op<PutResult>,
    put_token: Secret,
    connect: Op<io::Result<BoxStream>>,
    chat_token: Secret,
    /// What the token core asked for.
    token: Op<TokenAnswer>,
    persist: Op<(Field, Result<(), ConfigError>)>,
    /// A further connection the chat session asked for.
    dial: Op<(Link, io::Result<BoxStream>)>,
    /// A Helix call the chat session asked for (EventSub subscriptions).
    chat_api: Op<ApiAnswer>,
}

/// A live chat session and its connections (two only during an EventSub reconnect).
struct Conn {
    session: ChatSession,
    links: Vec<Wire>,
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
    Lookup(Result<Identity, Failure>),
    Put(PutResult),
    Connected(io::Result<BoxStream>),
    Token(TokenAnswer),
    Persisted(Field, Result<(), ConfigError>),
    Dialed(Link, io::Result<BoxStream>),
    Api(ApiAnswer),
    /// Chat bytes read at that moment, already handed to the session.
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
    tokens: TokenCore,
    /// The token core has had a valid token: the user core's actions run from then on.
    started: bool,
    core: UserCore,
    chat: Option<Conn>,
    /// Sessions that just ended, until their last frames are sent.
    ended: Vec<Conn>,
    ops: Ops,
    persists: VecDeque<Field>,
    /// Orders from the supervisor, reports to it.
    mailbox: Arc<Mailbox>,
    /// The one timer, armed for the earliest deadline of the cores, and that deadline.
    timer: Option<(Instant, Sleep)>,
    /// Stopping: end by then at the latest.
    stop_by: Option<Instant>,
    /// When the chat input being handled was read (a color it asks for is timed from then).
    read_at: Option<Instant>,
}

impl Driver {
    pub(super) fn new(
        services: Arc<Services>,
        username: String,
        app: AppCredentials,
        tokens: TokenCore,
        core: UserCore,
        mailbox: Arc<Mailbox>,
    ) -> Driver {
        Driver {
            services,
            username,
            app,
            tokens,
            started: false,
            core,
            chat: None,
            ended: Vec::new(),
            ops: Ops::default(),
            persists: VecDeque::new(),
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

    /// The earliest deadline of the cores, of a write and of a stop.
    fn deadline(&self) -> Option<Instant> {
        let writes = self.chat.iter().chain(&self.ended).flat_map(|c| &c.links);
        [
            self.tokens.poll_timeout(),
            self.started.then(|| self.core.poll_timeout()).flatten(),
            self.chat.as_ref().and_then(|c| c.session.poll_timeout()),
            writes.filter_map(|w| w.by).min(),
            self.stop_by,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Arms the timer for the earliest deadline, made again only when that comes sooner
    /// than the one armed: a deadline that moved later (the chat idle timer, pushed back by
    /// every message) lets the armed timer fire early once, the cores find nothing due, and
    /// it is armed again then. A new timer wakes the reactor; this keeps it off the message
    /// path.
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
            user: self.core.status(),
            tokens: self.tokens.status(),
        });
    }

    /// Runs the user until it stops or gives up. (`&mut self`, not `self`: the future
    /// would hold the driver twice.)
    pub(super) async fn drive(&mut self) -> Result<(), UserError> {
        // Chat input the core never saw (other people's messages, PINGs) changes no status:
        // only then is the status snapshot (a few allocations) skipped.
        let mut chat_input_only = false;
        loop {
            let core_busy = self.settle()?;
            if self.stop_by.is_some() && !self.tokens.renewal_in_flight() {
                return Ok(());
            }
            if self.transmit() {
                continue; // a connection was closed: the session has news
            }
            self.start_persist();
            if core_busy || !chat_input_only {
                self.publish();
            }
            self.arm_timer();

            let clock = &*self.services.clock;
            let ops = &mut self.ops;
            let chat = &mut self.chat;
            let ended = &mut self.ended;
            let timer = &mut self.timer;
            let mailbox = &*self.mailbox;
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
                if let Some(r) = poll_op(&mut ops.token, cx) {
                    return Poll::Ready(Wake::Token(r));
                }
                if let Some(r) = poll_op(&mut ops.lookup, cx) {
                    return Poll::Ready(Wake::Lookup(r));
                }
                if let Some(r) = poll_op(&mut ops.put, cx) {
                    return Poll::Ready(Wake::Put(r));
                }
                if let Some(r) = poll_op(&mut ops.connect, cx) {
                    return Poll::Ready(Wake::Connected(r));
                }
                if let Some((f, r)) = poll_op(&mut ops.persist, cx) {
                    return Poll::Ready(Wake::Persisted(f, r));
                }
                if let Some((l, r)) = poll_op(&mut ops.dial, cx) {
                    return Poll::Ready(Wake::Dialed(l, r));
                }
                if let Some(answer) = poll_op(&mut ops.chat_api, cx) {
                    return Poll::Ready(Wake::Api(answer));
                }
                // what ended sessions still send (their Close frames), best effort
                for conn in ended.iter_mut() {
                    conn.links.retain_mut(|w| w.poll_send(cx).is_pending());
                }
                ended.retain(|conn| !conn.links.is_empty());
                if let Some(conn) = chat.as_mut() {
                    for wire in &mut conn.links {
                        match wire.poll_send(cx) {
                            Poll::Ready(Ok(())) if wire.close => {
                                return Poll::Ready(Wake::Sent(wire.link))
                            }
                            Poll::Ready(Err(e)) => {
                                return Poll::Ready(Wake::WriteFailed(wire.link, e))
                            }
                            Poll::Ready(Ok(())) | Poll::Pending => {}
                        }
                    }
                    let session = &mut conn.session;
                    for Wire { link, stream, .. } in &mut conn.links {
                        // the bytes go to the session straight from the thread's buffer
                        let read = readbuf::PLAINTEXT.poll_read(stream, cx, |bytes| {
                            let now = clock.now();
                            if !bytes.is_empty() {
                                session.handle_input(now, *link, bytes);
                            }
                            (!bytes.is_empty()).then_some(now)
                        });
                        match read {
                            Poll::Ready(Ok(Some(at))) => return Poll::Ready(Wake::Input(at)),
                            Poll::Ready(Ok(None)) => {
                                return Poll::Ready(Wake::Closed(*link, Ok(())))
                            }
                            Poll::Ready(Err(e)) => return Poll::Ready(Wake::Closed(*link, Err(e))),
                            Poll::Pending => {}
                        }
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
                    self.core.handle_config(&user);
                }
                Wake::Control(Control::Stop) => {
                    if self.tokens.renewal_in_flight() {
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
                Wake::Lookup(result) => {
                    self.ops.lookup = None;
                    self.core.handle_lookup(now, result);
                }
                Wake::Put(result) => {
                    self.ops.put = None;
                    self.core.handle_put(now, result);
                }
                Wake::Connected(result) => {
                    self.ops.connect = None;
                    self.connected(now, result);
                }
                Wake::Token(answer) => {
                    self.ops.token = None;
                    let wall = self.services.clock.wall();
                    feed_tokens(&mut self.tokens, now, wall, answer);
                }
                Wake::Persisted(field, result) => {
                    self.ops.persist = None;
                    self.persisted(field, result);
                }
                Wake::Dialed(link, result) => {
                    self.ops.dial = None;
                    if let Some(conn) = &mut self.chat {
                        let result = result.map(|stream| conn.links.push(Wire::new(link, stream)));
                        conn.session.handle_dialed(now, link, result);
                    }
                }
                Wake::Api(answer) => {
                    self.ops.chat_api = None;
                    if let Some(conn) = &mut self.chat {
                        conn.session.handle_api(now, answer);
                    }
                }
                Wake::Input(_) => {}
                Wake::Closed(link, Ok(())) => self.lost(now, link, "server closed the connection"),
                // A peer that closes without TLS close_notify is still just a closed connection.
                Wake::Closed(link, Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.lost(now, link, "server closed the connection")
                }
                Wake::Closed(link, Err(e)) => self.lost(now, link, &format!("read failed: {e}")),
                Wake::WriteFailed(link, e) => self.lost(now, link, &format!("write failed: {e}")),
                Wake::Sent(link) => {
                    if let Some(conn) = &mut self.chat {
                        conn.links.retain(|w| w.link != link);
                    }
                }
                Wake::Timer => {
                    if self.stop_by.is_some_and(|by| by <= now) {
                        return Ok(());
                    }
                    // a peer that has not taken the bytes in time: that connection is lost
                    let late = |w: &Wire| w.by.is_some_and(|by| by <= now);
                    self.ended.retain_mut(|c| {
                        c.links.retain(|w| !late(w));
                        !c.links.is_empty()
                    });
                    let stuck: Vec<Link> = self
                        .chat
                        .iter()
                        .flat_map(|c| &c.links)
                        .filter(|w| late(w))
                        .map(|w| w.link)
                        .collect();
                    for link in stuck {
                        self.lost(now, link, "write timed out");
                    }
                    self.tokens.handle_timeout(now);
                    if self.started {
                        self.core.handle_timeout(now);
                    }
                    if let Some(conn) = &mut self.chat {
                        conn.session.handle_timeout(now);
                    }
                }
            }
        }
    }

    /// Connection `link` of the chat session ended.
    fn lost(&mut self, now: Instant, link: Link, why: &str) {
        if let Some(conn) = &mut self.chat {
            conn.links.retain(|w| w.link != link);
            conn.session.handle_lost(now, link, why.to_owned());
        }
    }

    /// The chat session is over: its connections and the work it asked for go with it, once
    /// what it still had queued (the Close frames of an EventSub session, say) is sent, briefly
    /// and best effort.
    fn end_chat(&mut self) {
        if let Some(mut conn) = self.chat.take() {
            let by = self.now() + GOODBYE_TIMEOUT;
            while let Some(out) = conn.session.poll_transmit() {
                if let Some(wire) = conn.links.iter_mut().find(|w| w.link == out.link) {
                    if !out.bytes.is_empty() {
                        log!(Debug, Some(&self.username), None, "> {}", out.shown);
                        wire.queue(out.bytes, by);
                    }
                }
            }
            conn.links.retain(|w| !w.out.is_empty());
            if !conn.links.is_empty() {
                self.ended.push(conn);
            }
        }
        self.ops.dial = None;
        self.ops.chat_api = None;
    }

    /// Performs the cores' actions and hands each the other's events and the chat
    /// session's, until none has anything more. Returns whether there was anything, or why
    /// the user gives up.
    fn settle(&mut self) -> Result<bool, UserError> {
        let mut any = false;
        loop {
            let mut busy = false;
            let now = self.services.clock.now();
            if self.ops.token.is_none() {
                if let Some(action) = self.tokens.poll_action() {
                    busy = true;
                    self.ops.token =
                        Some(token_op(&self.services, &self.app, &self.username, action));
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
                    TokenEvent::GaveUp(why) => {
                        self.publish();
                        return Err(UserError::NotAuthorised(why));
                    }
                }
            }
            while let Some(action) = self.started.then(|| self.core.poll_action()).flatten() {
                busy = true;
                self.perform(action);
            }
            let mut orders = Vec::new();
            if let Some(conn) = &mut self.chat {
                while let Some(event) = conn.session.poll_event() {
                    busy = true;
                    let closed = matches!(event, chat::Event::Closed(_));
                    self.core.handle_chat(now, event);
                    if closed {
                        self.end_chat();
                        break;
                    }
                }
            }
            if let Some(conn) = &mut self.chat {
                orders.extend(std::iter::from_fn(|| conn.session.poll_order()));
            }
            for order in orders {
                busy = true;
                self.order(order);
            }
            if !busy {
                return Ok(any);
            }
            any = true;
        }
    }

    /// Queues what the chat session has to send on its connections, and closes those it is
    /// done with once their bytes are out. Returns true when a connection was closed at once
    /// (nothing was queued on it: the session has news).
    fn transmit(&mut self) -> bool {
        let Some(conn) = &mut self.chat else {
            return false;
        };
        let by = self.services.clock.now() + WRITE_TIMEOUT;
        let mut news = false;
        while let Some(out) = conn.session.poll_transmit() {
            let Some(i) = conn.links.iter().position(|w| w.link == out.link) else {
                continue;
            };
            let wire = &mut conn.links[i];
            if !out.bytes.is_empty() {
                log!(Debug, Some(&self.username), None, "> {}", out.shown);
                wire.queue(out.bytes, by);
            }
            if out.then_close {
                if wire.out.is_empty() {
                    conn.links.remove(i);
                    news = true;
                } else {
                    wire.close = true;
                }
            }
        }
        news
    }
}
