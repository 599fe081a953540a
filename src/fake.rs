//! A fake Twitch on 127.0.0.1 for tests (and later a `demo`): IRC over TLS and HTTPS Helix,
//! with a CA made at start-up. It records what it receives and can deliver chat messages,
//! PING, RECONNECT and dropped connections on demand. Built only with the `fake-twitch` feature.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_net::{TcpListener, TcpStream};
use futures_rustls::TlsAcceptor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use smol::future;
use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use smol::stream::StreamExt;

use crate::color;

/// A test hook in the config writer (only in builds with the `fake-twitch` feature): with
/// `TCC_PAUSE_BEFORE_RENAME=PATH` set, a save writes PATH and waits after its temp file is
/// complete and before the rename, so that a test can kill the process in exactly that window.
pub fn pause_before_rename() {
    if let Some(marker) = std::env::var_os("TCC_PAUSE_BEFORE_RENAME") {
        let _ = std::fs::write(marker, b"paused");
        std::thread::sleep(Duration::from_secs(30));
    }
}

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
    pub token_delay: Duration,
    /// Logins whose chat login fails whatever the token (a suspended account, say).
    pub irc_refused: BTreeSet<String>,
    serial: u64,
    refresh_owner: HashMap<String, String>,
    senders: HashMap<usize, async_channel::Sender<Cmd>>,
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

    /// Issues a new pair to the user at `index` for `client_id`: the old access and refresh
    /// tokens stop working.
    fn issue(&mut self, index: usize, client_id: &str) -> (String, String) {
        self.serial += 1;
        let access = format!("access{:024}", self.serial);
        let refresh = format!("refresh{:043}", self.serial);
        let user = &mut self.users[index];
        user.token = access.clone();
        user.refresh = refresh.clone();
        user.expired = false;
        user.client_id = client_id.to_owned();
        self.refresh_owner
            .insert(refresh.clone(), user.login.clone());
        self.issued.push((access.clone(), refresh.clone()));
        (access, refresh)
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
    ca_file: PathBuf,
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
        let (acceptor, ca_pem) = tls_acceptor(names).map_err(std::io::Error::other)?;
        let ca_file = dir.join("fake-ca.pem");
        std::fs::write(&ca_file, ca_pem)?;
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                token_lifetime: 14_400,
                ..State::default()
            }),
            changed: Condvar::new(),
        });
        let irc = smol::block_on(TcpListener::bind("127.0.0.1:0"))?;
        let api = smol::block_on(TcpListener::bind("127.0.0.1:0"))?;
        let irc_port = irc.local_addr()?.port();
        let api_port = api.local_addr()?.port();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
        let server_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name("fake-twitch".into())
            .spawn(move || {
                let ex = smol::LocalExecutor::new();
                let serve = serve_all(&ex, server_inner, acceptor, irc, api);
                smol::block_on(ex.run(future::or(serve, async {
                    let _ = stop_rx.recv().await;
                })));
            })?;
        Ok(FakeTwitch {
            inner,
            irc_port,
            api_port,
            ca_file,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `tls://127.0.0.1:PORT` for `TWITCH_IRC_URL`.
    pub fn irc_url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.irc_port)
    }

    /// `https://127.0.0.1:PORT/helix` for `TWITCH_API_URL`.
    pub fn api_url(&self) -> String {
        format!("https://127.0.0.1:{}/helix", self.api_port)
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

    /// Delivers a chat message from `login` to every connection that joined `channel`.
    pub fn privmsg(&self, channel: &str, login: &str, user_id: &str, text: &str) -> usize {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let line = format!(
            "@badge-info=;badges=;color=#1E90FF;display-name={login};emotes=;first-msg=0;flags=;id=9b2f4c1e-7a3d-4e8b-b1c2-{ts:012};mod=0;returning-chatter=0;room-id=55500123;subscriber=0;tmi-sent-ts={ts};turbo=0;user-id={user_id};user-type= :{login}!{login}@{login}.tmi.twitch.tv PRIVMSG #{channel} :{text}"
        );
        self.send_where(|c| c.channels.contains(channel), Cmd::Line, &line)
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

fn tls_acceptor(names: &[&str]) -> Result<(TlsAcceptor, String), String> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let err = |e: rcgen::Error| e.to_string();
    let ca_key = KeyPair::generate().map_err(err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "twitch-colorchanger fake Twitch CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(err)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let key = KeyPair::generate().map_err(err)?;
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let mut params = CertificateParams::new(names).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fake twitch");
    let cert = params.signed_by(&key, &issuer).map_err(err)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| e.to_string())?;
    Ok((TlsAcceptor::from(Arc::new(config)), ca_cert.pem()))
}

async fn serve_all(
    ex: &smol::LocalExecutor<'_>,
    inner: Arc<Inner>,
    acceptor: TlsAcceptor,
    irc: TcpListener,
    api: TcpListener,
) {
    future::or(
        accept_loop(ex, &irc, &inner, &acceptor, irc_conn),
        accept_loop(ex, &api, &inner, &acceptor, http_conn),
    )
    .await
}

type ServerTls = futures_rustls::server::TlsStream<TcpStream>;

/// Accepts TLS connections on `listener` for ever, each served by `serve` on its own task.
async fn accept_loop<F, Fut>(
    ex: &smol::LocalExecutor<'_>,
    listener: &TcpListener,
    inner: &Arc<Inner>,
    acceptor: &TlsAcceptor,
    serve: F,
) where
    F: Fn(Arc<Inner>, ServerTls) -> Fut + Copy + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
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

async fn irc_conn(inner: Arc<Inner>, stream: ServerTls) {
    let (tx, rx) = async_channel::unbounded();
    let id = inner.update(|s| {
        s.irc.push(IrcConn {
            open: true,
            ..IrcConn::default()
        });
        let id = s.irc.len() - 1;
        s.senders.insert(id, tx);
        id
    });
    let (reader, mut writer) = smol::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let mut pass = String::new();
    enum Next {
        Line(Option<std::io::Result<String>>),
        Cmd(Option<Cmd>),
    }
    loop {
        let next = future::or(async { Next::Line(lines.next().await) }, async {
            Next::Cmd(rx.recv().await.ok())
        })
        .await;
        let out: Vec<String> = match next {
            Next::Line(Some(Ok(line))) => {
                let line = line.trim_end_matches('\r').to_owned();
                inner.update(|s| s.irc[id].lines.push(line.clone()));
                irc_reply(&inner, id, &line, &mut pass)
            }
            Next::Cmd(Some(Cmd::Line(line))) => vec![line],
            Next::Line(_) | Next::Cmd(_) => break,
        };
        let mut close = false;
        for line in out {
            if line.is_empty() {
                close = true;
                continue;
            }
            if writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .is_err()
            {
                close = true;
            }
        }
        let _ = writer.flush().await;
        if close {
            break;
        }
    }
    let _ = writer.close().await;
    inner.update(|s| {
        s.irc[id].open = false;
        s.senders.remove(&id);
    });
}

/// The lines to answer `line` with; an empty string means "then close".
fn irc_reply(inner: &Inner, id: usize, line: &str, pass: &mut String) -> Vec<String> {
    let Ok(msg) = crate::irc::Message::parse(line) else {
        return vec![];
    };
    match msg.command.as_str() {
        "CAP" => vec![format!(
            ":tmi.twitch.tv CAP * ACK :{}",
            msg.param(1).unwrap_or("")
        )],
        "PASS" => {
            *pass = msg.param(0).unwrap_or("").to_owned();
            vec![]
        }
        "NICK" => {
            let nick = msg.param(0).unwrap_or("").to_owned();
            let token = pass.strip_prefix("oauth:").unwrap_or("");
            let user = inner.lock().user_by_token(token).cloned();
            let refused = inner.lock().irc_refused.contains(&nick);
            match user {
                Some(u) if u.login == nick && !refused => {
                    inner.update(|s| s.irc[id].login = Some(nick.clone()));
                    let color = u.color.unwrap_or_default();
                    vec![
                        format!(":tmi.twitch.tv 001 {nick} :Welcome, GLHF!"),
                        format!(":tmi.twitch.tv 002 {nick} :Your host is tmi.twitch.tv"),
                        format!(":tmi.twitch.tv 376 {nick} :>"),
                        format!("@badge-info=;badges=;color={color};display-name={nick};emote-sets=0;user-id={};user-type= :tmi.twitch.tv GLOBALUSERSTATE", u.id),
                    ]
                }
                _ => vec![
                    ":tmi.twitch.tv NOTICE * :Login authentication failed".into(),
                    String::new(),
                ],
            }
        }
        "JOIN" => {
            let nick = inner.lock().irc[id].login.clone().unwrap_or_default();
            let mut out = vec![];
            for chan in msg.param(0).unwrap_or("").split(',') {
                let chan = chan.trim_start_matches('#').to_owned();
                inner.update(|s| s.irc[id].channels.insert(chan.clone()));
                out.push(format!(":{nick}!{nick}@{nick}.tmi.twitch.tv JOIN #{chan}"));
                out.push(format!(
                    ":{nick}.tmi.twitch.tv 353 {nick} = #{chan} :{nick}"
                ));
                out.push(format!(
                    ":{nick}.tmi.twitch.tv 366 {nick} #{chan} :End of /NAMES list"
                ));
                out.push(format!("@emote-only=0;followers-only=-1;r9k=0;room-id=55500123;slow=0;subs-only=0 :tmi.twitch.tv ROOMSTATE #{chan}"));
            }
            out
        }
        "PART" => {
            let nick = inner.lock().irc[id].login.clone().unwrap_or_default();
            let mut out = vec![];
            for chan in msg.param(0).unwrap_or("").split(',') {
                let chan = chan.trim_start_matches('#').to_owned();
                if inner.update(|s| s.irc[id].channels.remove(&chan)) {
                    out.push(format!(":{nick}!{nick}@{nick}.tmi.twitch.tv PART #{chan}"));
                }
            }
            out
        }
        "PING" => vec![format!(
            ":tmi.twitch.tv PONG tmi.twitch.tv :{}",
            msg.param(0).unwrap_or("")
        )],
        _ => vec![],
    }
}

struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    form: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

async fn http_conn(inner: Arc<Inner>, stream: ServerTls) {
    let (reader, mut writer) = smol::io::split(stream);
    let mut reader = BufReader::new(reader);
    loop {
        let Some(req) = read_request(&mut reader).await else {
            return;
        };
        inner.update(|s| {
            let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.requests
                .push(format!("{} {}?{}", req.method, req.path, q.join("&")))
        });
        let (status, body) = route(&inner, &req);
        // the answer is decided (a refresh has rotated the pair); it may take a while to arrive
        let delay = inner.lock().token_delay;
        if req.path.ends_with("/token") && !delay.is_zero() {
            smol::Timer::after(delay).await;
        }
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reason = match status {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nRatelimit-Limit: 800\r\nRatelimit-Remaining: 799\r\nRatelimit-Reset: {reset}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).await.is_err()
            || writer.write_all(body.as_bytes()).await.is_err()
            || writer.flush().await.is_err()
        {
            return;
        }
    }
}

async fn read_request<R: smol::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await.ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Some(Request {
        method,
        path: path.to_owned(),
        query: pairs(query),
        headers,
        form: pairs(&String::from_utf8_lossy(&body)),
    })
}

fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn error(status: u16, error: &str, message: &str) -> (u16, String) {
    (
        status,
        serde_json::json!({"error": error, "status": status, "message": message}).to_string(),
    )
}

fn route(inner: &Inner, req: &Request) -> (u16, String) {
    if let Some(op) = req.path.strip_prefix("/oauth2/") {
        let (status, body) = oauth(inner, op, req);
        inner.update(|s| {
            s.oauth.push(OAuthCall {
                path: req.path.clone(),
                grant_type: req.field("grant_type").map(str::to_owned),
                client_id: req.field("client_id").map(str::to_owned),
                sent_secret: req.field("client_secret").is_some(),
                status,
            })
        });
        return (status, body);
    }
    let (status, body) = helix(inner, req);
    if req.method == "PUT" && req.path == "/helix/chat/color" {
        inner.update(|s| {
            s.puts.push(ColorPut {
                user_id: req.query("user_id").unwrap_or("").to_owned(),
                color: req.query("color").unwrap_or("").to_owned(),
                status,
            })
        });
    }
    (status, body)
}

fn helix(inner: &Inner, req: &Request) -> (u16, String) {
    let bearer = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if req.header("client-id").is_none_or(str::is_empty) {
        return error(401, "Unauthorized", "Client-Id header is missing");
    }
    let Some(user) = inner.lock().user_by_token(bearer).cloned() else {
        return error(401, "Unauthorized", "Invalid OAuth token");
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/helix/users") => (
            200,
            serde_json::json!({"data": [{"id": user.id, "login": user.login, "display_name": user.login,
                "type": "", "broadcaster_type": "", "description": "", "profile_image_url": "",
                "offline_image_url": "", "view_count": 0, "created_at": "2016-12-14T20:32:28Z"}]})
            .to_string(),
        ),
        ("GET", "/helix/chat/color") => {
            let id = req.query("user_id").unwrap_or("");
            let state = inner.lock();
            let data: Vec<_> = state
                .users
                .iter()
                .filter(|u| u.id == id)
                .map(|u| serde_json::json!({"user_id": u.id, "user_login": u.login, "user_name": u.login, "color": u.color.clone().unwrap_or_default()}))
                .collect();
            (200, serde_json::json!({ "data": data }).to_string())
        }
        ("PUT", "/helix/chat/color") => {
            let user_id = req.query("user_id").unwrap_or("").to_owned();
            let color = req.query("color").unwrap_or("").to_owned();
            let scripted = inner.update(|s| s.put_script.pop_front());
            let (status, body) = match scripted {
                Some(answer) => answer,
                None if user_id != user.id => error(401, "Unauthorized", "The ID in user_id must match the user ID found in the request's OAuth token."),
                None => {
                    let named = color::NAMED.iter().find(|(n, _)| n.eq_ignore_ascii_case(&color));
                    match named {
                        Some((_, hex)) => set_color(inner, &user.id, hex),
                        None if color::is_hex(&color) && user.prime => set_color(inner, &user.id, &color.to_ascii_uppercase()),
                        None if color::is_hex(&color) => error(400, "Bad Request", "Hex color code is only available to Turbo or Prime users"),
                        None => error(400, "Bad Request", "invalid color"),
                    }
                }
            };
            (status, body)
        }
        _ => error(404, "Not Found", "no such endpoint in the fake"),
    }
}

fn oauth(inner: &Inner, op: &str, req: &Request) -> (u16, String) {
    let bad = |message: &str| {
        (
            400,
            serde_json::json!({"status": 400, "message": message}).to_string(),
        )
    };
    if op == "validate" {
        let token = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("OAuth "))
            .unwrap_or("");
        let state = inner.lock();
        return match state.user_by_token(token) {
            Some(u) => (
                200,
                serde_json::json!({"client_id": u.client_id,
                    "login": u.login, "scopes": u.scopes, "user_id": u.id, "expires_in": state.token_lifetime})
                .to_string(),
            ),
            None => (401, r#"{"status":401,"message":"invalid access token"}"#.into()),
        };
    }
    let client_id = req.field("client_id").unwrap_or("").to_owned();
    let mut state = inner.lock();
    let client = state.clients.iter().find(|c| c.id == client_id).cloned();
    if client.is_none() && !state.clients.is_empty() {
        return bad("invalid client");
    }
    let wants_secret = client.as_ref().and_then(|c| c.secret.clone());
    let result = match (op, req.field("grant_type")) {
        ("device", _) => {
            state.serial += 1;
            let n = state.serial;
            let user_code = format!("{:08}", n * 7919 % 100_000_000)
                .chars()
                .map(|c| (b'A' + c.to_digit(10).unwrap_or(0) as u8) as char)
                .collect::<String>();
            state.devices.push(FakeDevice {
                device_code: format!("devicecode{n:030}"),
                user_code: user_code.clone(),
                client_id,
                approved: None,
                denied: false,
                spent: false,
            });
            (
                200,
                serde_json::json!({"device_code": format!("devicecode{n:030}"), "expires_in": 1800, "interval": 1,
                    "user_code": user_code, "verification_uri": format!("https://www.twitch.tv/activate?public=true&device-code={user_code}")})
                .to_string(),
            )
        }
        ("token", Some("urn:ietf:params:oauth:grant-type:device_code")) => {
            let code = req.field("device_code").unwrap_or("");
            match state
                .devices
                .iter()
                .position(|d| d.device_code == code && !d.spent)
            {
                None => bad("invalid device code"),
                Some(i) if state.devices[i].denied => {
                    state.devices[i].spent = true;
                    bad("access_denied")
                }
                Some(i) => match state.devices[i].approved.clone() {
                    None => bad("authorization_pending"),
                    Some(login) => {
                        state.devices[i].spent = true;
                        match state.users.iter().position(|u| u.login == login) {
                            Some(u) => token_answer(&mut state, u, &client_id),
                            None => bad("no such user in the fake"),
                        }
                    }
                },
            }
        }
        ("token", Some("refresh_token")) => {
            if wants_secret.is_some() && req.field("client_secret") != wants_secret.as_deref() {
                return (
                    403,
                    r#"{"status":403,"message":"invalid client secret"}"#.into(),
                );
            }
            let given = req.field("refresh_token").unwrap_or("");
            let issued_to = state
                .refresh_owner
                .get(given)
                .filter(|_| state.lenient_refresh);
            let owner = state.users.iter().position(|u| {
                !given.is_empty() && (u.refresh == given || issued_to == Some(&u.login))
            });
            match owner {
                Some(u) => token_answer(&mut state, u, &client_id),
                None => (
                    400,
                    r#"{"error":"Bad Request","status":400,"message":"Invalid refresh token"}"#
                        .into(),
                ),
            }
        }
        _ => bad("unsupported"),
    };
    drop(state);
    inner.changed.notify_all();
    result
}

fn token_answer(state: &mut State, user: usize, client_id: &str) -> (u16, String) {
    let (access, refresh) = state.issue(user, client_id);
    let scopes = state.users[user].scopes.clone();
    (
        200,
        serde_json::json!({"access_token": access, "expires_in": state.token_lifetime,
            "refresh_token": refresh, "scope": scopes, "token_type": "bearer"})
        .to_string(),
    )
}

fn set_color(inner: &Inner, user_id: &str, hex: &str) -> (u16, String) {
    inner.update(|s| {
        if let Some(u) = s.users.iter_mut().find(|u| u.id == user_id) {
            u.color = Some(hex.to_owned());
        }
    });
    (204, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_escapes() {
        assert_eq!(percent_decode("%239146FF"), "#9146FF");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("blue_violet"), "blue_violet");
        assert_eq!(percent_decode("%aé"), "%aé");
    }
}
