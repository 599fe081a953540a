//! A fake Twitch on 127.0.0.1 for the tests and `demo`: IRC over TLS, EventSub over
//! WebSocket (TLS), and HTTPS Helix (with the EventSub subscriptions API) and OAuth, with a
//! certificate made at start-up. It records what it receives and can deliver chat messages,
//! PING, RECONNECT, `session_reconnect`, revocations, close codes and dropped connections on
//! demand.
//!
//! The `demo` feature (in release binaries) builds only what `demo` plays against: IRC, Helix
//! users and chat color, token validation. The `fake-twitch` feature (the tests) adds
//! EventSub, the OAuth device flow and refresh, scripted delays and the request log.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_net::{TcpListener, TcpStream};
use futures_rustls::TlsAcceptor;
use smol::future;

#[cfg(feature = "fake-twitch")]
mod eventsub;
#[cfg(feature = "fake-twitch")]
mod grant;
mod helix;
mod http;
mod irc;
mod oauth;
mod request;
pub(crate) mod tls;

#[cfg(feature = "fake-twitch")]
use self::eventsub::{eventsub_conn, EsCmd};
#[cfg(feature = "fake-twitch")]
pub use self::eventsub::{EventSubConn, Subscription};
use self::http::http_conn;
use self::irc::irc_conn;
use self::tls::tls_server;

/// An account the fake knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    /// Lowercase login.
    pub login: String,
    /// User id.
    pub id: String,
    /// The access token it accepts.
    pub token: String,
    /// Whether hex colors are allowed.
    pub prime: bool,
    /// Current color as `#RRGGBB`, if set.
    pub color: Option<String>,
    /// The refresh token it accepts.
    pub refresh: String,
    /// Scopes its tokens carry.
    pub scopes: Vec<String>,
    /// The access token has expired (refused everywhere until refreshed).
    pub expired: bool,
    /// The app its tokens were last issued to.
    pub client_id: String,
}

/// A registered app; `secret` makes it confidential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeClient {
    /// Client id.
    pub id: String,
    /// Client secret, for confidential clients.
    pub secret: Option<String>,
}

/// A device code handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeDevice {
    /// The secret polling code.
    pub device_code: String,
    /// The code the person sees.
    pub user_code: String,
    /// Who asked.
    pub client_id: String,
    /// The login that approved it.
    pub approved: Option<String>,
    /// Declined by the person.
    pub denied: bool,
    /// Used up or expired.
    pub spent: bool,
}

/// One OAuth request as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthCall {
    /// `/oauth2/device`, `/oauth2/token` or `/oauth2/validate`.
    pub path: String,
    /// `grant_type` of token requests.
    pub grant_type: Option<String>,
    /// `client_id` sent.
    pub client_id: Option<String>,
    /// Whether a `client_secret` was sent.
    pub sent_secret: bool,
    /// The status answered.
    pub status: u16,
}

/// One `PUT /helix/chat/color` as received, with the status it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColorPut {
    /// The `user_id` query value.
    pub user_id: String,
    /// The `color` query value, percent-decoded.
    pub color: String,
    /// The status answered.
    pub status: u16,
}

/// One IRC client connection.
#[derive(Debug, Clone, Default)]
pub struct IrcConn {
    /// The login given with NICK, once authenticated.
    pub login: Option<String>,
    /// Channels joined, without `#`.
    pub channels: BTreeSet<String>,
    /// Every line received, in order (PASS lines included, as sent).
    pub lines: Vec<String>,
    /// Still open.
    pub open: bool,
}

/// Everything the fake has seen and knows; read it with [`FakeTwitch::state`].
#[derive(Debug, Default)]
pub struct State {
    /// Known accounts.
    pub users: Vec<FakeUser>,
    /// IRC connections ever accepted, by id (in order of arrival).
    pub irc: Vec<IrcConn>,
    /// Color changes received.
    pub puts: Vec<ColorPut>,
    /// Every Helix request line received (`METHOD /path?query`).
    #[cfg(feature = "fake-twitch")]
    pub requests: Vec<String>,
    /// Answers for the next color PUTs instead of the normal handling: (status, body).
    pub put_script: VecDeque<(u16, String)>,
    /// Registered apps; while empty, any client id is accepted as a public client.
    pub clients: Vec<FakeClient>,
    /// Device codes handed out.
    pub devices: Vec<FakeDevice>,
    /// OAuth requests received.
    pub oauth: Vec<OAuthCall>,
    /// Every (access, refresh) pair issued, in order.
    pub issued: Vec<(String, String)>,
    /// `expires_in` of new access tokens (default 14400).
    pub token_lifetime: u64,
    /// Accept any refresh token ever issued to the user, not only the latest (rotation off).
    pub lenient_refresh: bool,
    /// Answer `/oauth2/token` requests this much later (the pair is rotated at once).
    #[cfg(feature = "fake-twitch")]
    pub token_delay: Duration,
    /// Answers for the next refresh-token requests instead of the normal handling (an
    /// outage: 503, say); the pair is not rotated.
    #[cfg(feature = "fake-twitch")]
    pub token_script: VecDeque<(u16, String)>,
    /// Logins whose chat login fails whatever the token (a suspended account, say).
    pub irc_refused: BTreeSet<String>,
    /// EventSub WebSocket connections ever accepted, in order.
    #[cfg(feature = "fake-twitch")]
    pub eventsub: Vec<EventSubConn>,
    /// EventSub subscriptions ever created (deleted ones are removed).
    #[cfg(feature = "fake-twitch")]
    pub subscriptions: Vec<Subscription>,
    /// `keepalive_timeout_seconds` in welcomes (default 10); keepalives go out this often.
    #[cfg(feature = "fake-twitch")]
    pub eventsub_keepalive: u64,
    /// Send no keepalives (a connection that died silently).
    #[cfg(feature = "fake-twitch")]
    pub eventsub_silent: bool,
    /// New EventSub connections get their welcome only on [`FakeTwitch::release_welcomes`].
    #[cfg(feature = "fake-twitch")]
    pub eventsub_hold_welcome: bool,
    /// Answers for the next subscription requests instead of the normal handling.
    #[cfg(feature = "fake-twitch")]
    pub subscribe_script: VecDeque<(u16, String)>,
    /// Seconds until the rate-limit bucket refills, sent as `Ratelimit-Reset` with every 429
    /// (which also says `Ratelimit-Remaining: 0`, as Twitch's bucket does).
    pub bucket_refill_secs: u64,
    /// Channel logins `GET /helix/users?login=` does not know.
    pub unknown_channels: BTreeSet<String>,
    /// The channels (logins) of a shared chat session: a message sent in one of them is
    /// shown in all of them (see [`FakeTwitch::shared_message`]).
    pub shared_chat: Vec<String>,
    serial: u64,
    #[cfg(feature = "fake-twitch")]
    refresh_owner: HashMap<String, String>,
    senders: HashMap<usize, async_channel::Sender<Cmd>>,
    #[cfg(feature = "fake-twitch")]
    es_senders: HashMap<usize, async_channel::Sender<EsCmd>>,
    channel_ids: HashMap<String, String>,
    #[cfg(feature = "fake-twitch")]
    eventsub_port: u16,
}

/// A chat message as shown in one channel.
#[derive(Clone, Copy)]
pub(crate) struct Shown<'a> {
    pub(crate) channel: &'a str,
    /// Set in a shared chat session.
    pub(crate) source: Option<&'a Source<'a>>,
    pub(crate) login: &'a str,
    pub(crate) user_id: &'a str,
    pub(crate) text: &'a str,
    /// The message's id in this channel.
    pub(crate) id: &'a str,
}

/// Where a message shown in shared chat was sent: the channel (login) and the message's id
/// there.
pub(crate) struct Source<'a> {
    pub(crate) channel: &'a str,
    pub(crate) id: &'a str,
}

impl State {
    /// Channels the user has joined on any open connection.
    pub fn joined(&self, login: &str) -> BTreeSet<String> {
        self.irc
            .iter()
            .filter(|c| c.open && c.login.as_deref() == Some(login))
            .flat_map(|c| c.channels.iter().cloned())
            .collect()
    }

    /// How many connections this login has authenticated on, ever.
    pub fn logins(&self, login: &str) -> usize {
        self.irc
            .iter()
            .filter(|c| c.login.as_deref() == Some(login))
            .count()
    }

    /// The open connections logged in as `login`, by id.
    pub fn open_conns(&self, login: &str) -> Vec<usize> {
        (0..self.irc.len())
            .filter(|&i| self.irc[i].open && self.irc[i].login.as_deref() == Some(login))
            .collect()
    }

    /// Successful color changes of a user id.
    pub fn changes(&self, user_id: &str) -> Vec<String> {
        self.puts
            .iter()
            .filter(|p| p.user_id == user_id && p.status == 204)
            .map(|p| p.color.clone())
            .collect()
    }

    /// The user id of a channel login: an account's, else a stable made-up one (`None` for
    /// [`State::unknown_channels`]).
    pub fn channel_id(&mut self, login: &str) -> Option<String> {
        if self.unknown_channels.contains(login) {
            return None;
        }
        if let Some(u) = self.users.iter().find(|u| u.login == login) {
            return Some(u.id.clone());
        }
        let next = 70_000_000 + self.channel_ids.len();
        Some(
            self.channel_ids
                .entry(login.to_owned())
                .or_insert_with(|| next.to_string())
                .clone(),
        )
    }

    fn newest_pending_device(&mut self) -> Option<&mut FakeDevice> {
        self.devices
            .iter_mut()
            .rev()
            .find(|d| d.approved.is_none() && !d.denied && !d.spent)
    }

    fn user_by_token(&self, token: &str) -> Option<&FakeUser> {
        self.users
            .iter()
            .find(|u| !token.is_empty() && u.token == token && !u.expired)
    }
}

enum Cmd {
    Line(String),
    Close,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.notify_all();
        out
    }
}

/// A running fake Twitch. Dropping it stops the servers.
pub struct FakeTwitch {
    inner: Arc<Inner>,
    irc_port: u16,
    api_port: u16,
    #[cfg(feature = "fake-twitch")]
    eventsub_port: u16,
    ca_file: PathBuf,
    /// New handshakes present the certificate's twin that is not valid yet.
    #[cfg(feature = "fake-twitch")]
    not_valid_yet: Arc<std::sync::atomic::AtomicBool>,
    stop: Option<async_channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeTwitch {
    /// Starts the servers on free loopback ports and writes the CA to `dir/fake-ca.pem`.
    pub fn start(dir: &Path) -> std::io::Result<FakeTwitch> {
        FakeTwitch::start_as(dir, &["127.0.0.1", "localhost"])
    }

    /// The same, with a server certificate for `names` only (a wrong name, for tests).
    pub fn start_as(dir: &Path, names: &[&str]) -> std::io::Result<FakeTwitch> {
        let server = tls_server(names, rustls::DEFAULT_VERSIONS).map_err(std::io::Error::other)?;
        #[cfg(feature = "fake-twitch")]
        let not_valid_yet = server.not_valid_yet.clone();
        let acceptor = server.acceptor;
        let ca_file = dir.join("fake-ca.pem");
        std::fs::write(&ca_file, server.pem)?;
        let listen =
            || TcpListener::try_from(std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?);
        let listeners = Listeners {
            irc: listen()?,
            api: listen()?,
            #[cfg(feature = "fake-twitch")]
            eventsub: listen()?,
        };
        let irc_port = listeners.irc.local_addr()?.port();
        let api_port = listeners.api.local_addr()?.port();
        #[cfg(feature = "fake-twitch")]
        let eventsub_port = listeners.eventsub.local_addr()?.port();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                token_lifetime: 14_400,
                #[cfg(feature = "fake-twitch")]
                eventsub_keepalive: 10,
                #[cfg(feature = "fake-twitch")]
                eventsub_port,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let server_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("fake-twitch".into())
            .spawn(move || {
                let ex = smol::LocalExecutor::new();
                let serve = serve_all(&ex, server_inner, acceptor, listeners);
                smol::block_on(ex.run(future::or(serve, async {
                    let _ = stop_rx.recv().await;
                })));
            })?;
        Ok(FakeTwitch {
            inner,
            irc_port,
            api_port,
            #[cfg(feature = "fake-twitch")]
            eventsub_port,
            ca_file,
            #[cfg(feature = "fake-twitch")]
            not_valid_yet,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// From now on, handshakes present a twin of the certificate that is valid only from
    /// 2049 (as a machine whose clock is behind sees every certificate); `false` goes back.
    /// The twin has the same name and key, so the client's trust in the first covers it.
    #[cfg(feature = "fake-twitch")]
    pub fn certificate_not_valid_yet(&self, on: bool) {
        self.not_valid_yet
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// `tls://127.0.0.1:PORT` for `TWITCH_IRC_URL`.
    pub fn irc_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.irc_port)
    }

    /// `https://127.0.0.1:PORT/helix` for `TWITCH_API_URL`.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}/helix", self.api_port)
    }

    /// `wss://127.0.0.1:PORT/ws` for `TWITCH_EVENTSUB_URL`.
    #[cfg(feature = "fake-twitch")]
    pub fn eventsub_url(&self) -> String {
        format!("wss://127.0.0.1:{}/ws", self.eventsub_port)
    }

    /// `https://127.0.0.1:PORT/oauth2` for `TWITCH_AUTH_URL`.
    pub fn auth_url(&self) -> String {
        format!("https://127.0.0.1:{}/oauth2", self.api_port)
    }

    /// The PEM file of the CA that signed the servers' certificate, for `TWITCH_CA_FILE`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Adds an account whose access token is `token` (empty: none yet).
    pub fn add_user(&self, login: &str, id: &str, token: &str, prime: bool) {
        self.inner.update(|s| {
            s.users.push(FakeUser {
                login: login.to_ascii_lowercase(),
                id: id.to_owned(),
                token: token.to_owned(),
                prime,
                color: None,
                refresh: String::new(),
                scopes: crate::oauth::SCOPES
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
                expired: false,
                client_id: String::new(),
            })
        });
    }

    /// Registers an app; with a secret it is confidential.
    pub fn add_client(&self, id: &str, secret: Option<&str>) {
        self.inner.update(|s| {
            s.clients.push(FakeClient {
                id: id.to_owned(),
                secret: secret.map(str::to_owned),
            })
        });
    }

    /// Sets the refresh token the user's next refresh must present.
    pub fn set_refresh_token(&self, login: &str, refresh: &str) {
        self.inner.update(|s| {
            if let Some(u) = s.users.iter_mut().find(|u| u.login == login) {
                u.refresh = refresh.to_owned();
            }
        });
    }

    /// Makes the user's access token expire now.
    pub fn expire_access_token(&self, login: &str) {
        self.inner.update(|s| {
            if let Some(u) = s.users.iter_mut().find(|u| u.login == login) {
                u.expired = true;
            }
        });
    }

    /// Approves the newest pending device code as `login`; false if none is pending.
    pub fn approve_device(&self, login: &str) -> bool {
        self.inner.update(|s| {
            s.newest_pending_device()
                .map(|d| d.approved = Some(login.to_owned()))
                .is_some()
        })
    }

    /// Declines the newest pending device code; false if none is pending.
    pub fn deny_device(&self) -> bool {
        self.inner
            .update(|s| s.newest_pending_device().map(|d| d.denied = true).is_some())
    }

    /// Locks and returns the state, to read what happened.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// Changes the state (for scripting answers).
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        self.inner.update(f)
    }

    /// Waits until `done` holds, at most `timeout`; returns whether it does. Wakes on every
    /// change of state, and at least every 50 ms for conditions outside it (files).
    pub fn wait(&self, timeout: Duration, done: impl Fn(&State) -> bool) -> bool {
        self.wait_for(timeout, &done)
    }

    fn wait_for(&self, timeout: Duration, done: &dyn Fn(&State) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.lock();
        loop {
            if done(&state) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Delivers a chat message from `login` to every IRC connection that joined `channel`
    /// and every EventSub subscription to it, and if `channel` is in [`State::shared_chat`],
    /// shows it in the session's other channels too; returns to how many.
    pub fn privmsg(&self, channel: &str, login: &str, user_id: &str, text: &str) -> usize {
        let session = self.inner.lock().shared_chat.clone();
        if session.iter().any(|c| c == channel) {
            let mut shown = vec![channel];
            shown.extend(session.iter().map(String::as_str).filter(|c| *c != channel));
            return self.shared_message(channel, &shown, login, user_id, text);
        }
        let id = self.message_id();
        self.show(&Shown {
            channel,
            source: None,
            login,
            user_id,
            text,
            id: &id,
        })
    }

    /// One message `login` sent in `sent_in`, shown in each channel of `shown_in` in that
    /// order the way shared chat shows it: in `sent_in` (if listed) as the original, elsewhere
    /// as a copy with an id of its own that names the original's id and channel (IRC
    /// `source-id`/`source-room-id`, EventSub `source_message_id`/`source_broadcaster_*`).
    /// Returns to how many connections it went.
    pub fn shared_message(
        &self,
        sent_in: &str,
        shown_in: &[&str],
        login: &str,
        user_id: &str,
        text: &str,
    ) -> usize {
        let original = self.message_id();
        let source = Source {
            channel: sent_in,
            id: &original,
        };
        let mut sent = 0;
        for channel in shown_in {
            let id = if *channel == sent_in {
                original.clone()
            } else {
                self.message_id()
            };
            sent += self.show(&Shown {
                channel,
                source: Some(&source),
                login,
                user_id,
                text,
                id: &id,
            });
        }
        sent
    }

    fn message_id(&self) -> String {
        self.inner.update(|s| {
            s.serial += 1;
            format!("9b2f4c1e-7a3d-4e8b-b1c2-{:012}", s.serial)
        })
    }

    fn show(&self, m: &Shown<'_>) -> usize {
        let Shown {
            channel,
            source,
            login,
            user_id,
            text,
            id,
        } = *m;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() * 1000 + u64::from(d.subsec_millis()));
        let room = |login| {
            self.inner
                .update(|s| s.channel_id(login))
                .unwrap_or_default()
        };
        let shared = source.map_or(String::new(), |s| {
            format!(
                "source-badge-info=;source-badges=;source-id={};source-room-id={};",
                s.id,
                room(s.channel)
            )
        });
        let line = format!(
            "@badge-info=;badges=;color=#1E90FF;display-name={login};emotes=;first-msg=0;flags=;id={id};mod=0;returning-chatter=0;room-id={};{shared}subscriber=0;tmi-sent-ts={ts};turbo=0;user-id={user_id};user-type= :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}",
            room(channel)
        );
        let irc = self.send_where(|c| c.channels.contains(channel), Cmd::Line, &line);
        #[cfg(feature = "fake-twitch")]
        let irc = irc + self.eventsub_message(m);
        irc
    }

    /// Sends a raw line to every open, logged-in connection.
    pub fn broadcast(&self, line: &str) -> usize {
        self.send_where(|c| c.login.is_some(), Cmd::Line, line)
    }

    /// Sends `:tmi.twitch.tv RECONNECT` to every connection, then closes them.
    pub fn reconnect_all(&self) -> usize {
        let n = self.broadcast(":tmi.twitch.tv RECONNECT");
        self.drop_all();
        n
    }

    /// Closes every IRC connection without a word.
    pub fn drop_all(&self) -> usize {
        self.send_where(|_| true, |_| Cmd::Close, "")
    }

    fn send_where(
        &self,
        filter: impl Fn(&IrcConn) -> bool,
        cmd: impl Fn(String) -> Cmd,
        line: &str,
    ) -> usize {
        let state = self.inner.lock();
        let mut sent = 0;
        for (id, conn) in state.irc.iter().enumerate() {
            if conn.open && filter(conn) {
                if let Some(tx) = state.senders.get(&id) {
                    if tx.try_send(cmd(line.to_owned())).is_ok() {
                        sent += 1;
                    }
                }
            }
        }
        sent
    }
}

impl Drop for FakeTwitch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The servers' sockets, bound before the fake's thread starts.
struct Listeners {
    irc: TcpListener,
    api: TcpListener,
    #[cfg(feature = "fake-twitch")]
    eventsub: TcpListener,
}

async fn serve_all(
    ex: &smol::LocalExecutor<'_>,
    inner: Arc<Inner>,
    acceptor: TlsAcceptor,
    listeners: Listeners,
) {
    let irc = accept_loop(ex, &listeners.irc, &inner, &acceptor, |i, t| {
        Box::pin(irc_conn(i, t))
    });
    let api = accept_loop(ex, &listeners.api, &inner, &acceptor, |i, t| {
        Box::pin(http_conn(i, t))
    });
    #[cfg(feature = "fake-twitch")]
    let api = future::or(
        api,
        accept_loop(ex, &listeners.eventsub, &inner, &acceptor, |i, t| {
            Box::pin(eventsub_conn(i, t))
        }),
    );
    future::or(irc, api).await
}

/// A connection's task: one task type for all three servers (less code in the binary that
/// carries `demo`).
type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>;

type ServerTls = futures_rustls::server::TlsStream<TcpStream>;

/// Accepts TLS connections on `listener` for ever, each served by `serve` on its own task.
async fn accept_loop(
    ex: &smol::LocalExecutor<'_>,
    listener: &TcpListener,
    inner: &Arc<Inner>,
    acceptor: &TlsAcceptor,
    serve: fn(Arc<Inner>, ServerTls) -> Serving,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (inner, acceptor) = (inner.clone(), acceptor.clone());
        ex.spawn(async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                serve(inner, tls).await;
            }
        })
        .detach();
    }
}
