//! The fake's EventSub WebSocket server: upgrade, welcome, keepalives, notifications for
//! the subscriptions made through the fake Helix, `session_reconnect` with a reconnect URL
//! (subscriptions move at the new welcome), revocations and close codes. It checks the
//! client's side too: only Pong and Close may come in (anything else is closed with 4001).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use smol::future;
use smol::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use super::request::read_request;
use super::{FakeTwitch, Inner, ServerTls, Shown, State};
use crate::time::format_rfc3339;

/// One EventSub WebSocket connection.
#[derive(Debug, Clone, Default)]
pub struct EventSubConn {
    /// Its session id (`session<N>`).
    pub session_id: String,
    /// The request target of the upgrade (path and query).
    pub target: String,
    /// Still open.
    pub open: bool,
    /// The welcome went out.
    pub welcomed: bool,
    /// The session it replaces (a connection to a reconnect URL).
    pub reconnect_of: Option<String>,
    /// What the client sent, one entry per frame: `pong <payload>`, `close <code>`, or
    /// `text …` / `binary` (which the server answers with close 4001).
    pub received: Vec<String>,
}

/// One subscription made with `POST /helix/eventsub/subscriptions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: String,
    /// `condition.broadcaster_user_id`.
    pub broadcaster_id: String,
    /// `condition.user_id`: the reading user.
    pub user_id: String,
    /// The WebSocket session it delivers to (moved by a reconnect).
    pub session_id: String,
    /// `enabled`, `websocket_disconnected`, or a revocation status.
    pub status: String,
}

/// What a test makes a connection do.
pub(super) enum EsCmd {
    Text(String),
    Ping(Vec<u8>),
    Close(u16, String),
    Welcome,
}

fn now_stamp() -> String {
    format_rfc3339(SystemTime::now())
}

fn envelope(id: &str, kind: &str, extra: serde_json::Value, payload: serde_json::Value) -> String {
    let mut metadata = serde_json::json!({
        "message_id": id,
        "message_type": kind,
        "message_timestamp": now_stamp(),
    });
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::json!({ "metadata": metadata, "payload": payload }).to_string()
}

fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    crate::ws::encode_unmasked(0x80 | opcode, payload)
}

/// Reads one client frame (which must be masked): its opcode and unmasked payload.
async fn read_frame<R: smol::io::AsyncRead + Unpin>(r: &mut R) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    r.read_exact(&mut head).await.ok()?;
    if head[1] & 0x80 == 0 {
        return None; // an unmasked client frame: a protocol error
    }
    let len = match head[1] & 0x7F {
        126 => {
            let mut n = [0u8; 2];
            r.read_exact(&mut n).await.ok()?;
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            r.read_exact(&mut n).await.ok()?;
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return None;
    }
    let mut mask = [0u8; 4];
    r.read_exact(&mut mask).await.ok()?;
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await.ok()?;
    for (i, b) in payload.iter_mut().enumerate() {
        *b ^= mask[i % 4];
    }
    Some((head[0] & 0x0F, payload))
}

pub(super) async fn eventsub_conn(inner: Arc<Inner>, stream: ServerTls) {
    let (reader, mut writer) = smol::io::split(stream);
    let mut reader = BufReader::new(reader);
    let Some(req) = read_request(&mut reader).await else {
        return;
    };
    let key = req.header("sec-websocket-key").unwrap_or("").to_owned();
    let upgrade = req
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if req.method != "GET" || !upgrade || key.is_empty() {
        let _ = writer
            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    }
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        crate::ws::accept_for(&key)
    );
    if writer.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let (tx, rx) = async_channel::unbounded();
    let (id, session_id, hold) = inner.update(|s| {
        s.serial += 1;
        let session_id = format!("session{}", s.serial);
        s.eventsub.push(EventSubConn {
            session_id: session_id.clone(),
            target: req.target(),
            open: true,
            reconnect_of: req.query("reconnect").map(str::to_owned),
            ..EventSubConn::default()
        });
        let id = s.eventsub.len() - 1;
        s.es_senders.insert(id, tx.clone());
        (id, session_id, s.eventsub_hold_welcome)
    });
    if !hold {
        let _ = tx.try_send(EsCmd::Welcome);
    }

    let (frames_tx, frames_rx) = async_channel::unbounded();
    let read_loop = async move {
        while let Some(frame) = read_frame(&mut reader).await {
            if frames_tx.send(frame).await.is_err() {
                break;
            }
        }
        drop(frames_tx);
        future::pending::<()>().await;
    };
    let serve = async {
        enum Next {
            Frame(Option<(u8, Vec<u8>)>),
            Cmd(Option<EsCmd>),
            Keepalive,
        }
        loop {
            let (keepalive, silent, welcomed) = {
                let s = inner.lock();
                (
                    s.eventsub_keepalive,
                    s.eventsub_silent,
                    s.eventsub[id].welcomed,
                )
            };
            let next = future::or(
                async { Next::Frame(frames_rx.recv().await.ok()) },
                future::or(async { Next::Cmd(rx.recv().await.ok()) }, async {
                    if silent || !welcomed {
                        future::pending::<()>().await;
                    }
                    smol::Timer::after(Duration::from_secs(keepalive)).await;
                    Next::Keepalive
                }),
            )
            .await;
            let out = match next {
                Next::Keepalive => frame(
                    0x1,
                    envelope(
                        &message_id(),
                        "session_keepalive",
                        serde_json::json!({}),
                        serde_json::json!({}),
                    )
                    .as_bytes(),
                ),
                Next::Cmd(Some(EsCmd::Text(text))) => frame(0x1, text.as_bytes()),
                Next::Cmd(Some(EsCmd::Ping(payload))) => frame(0x9, &payload),
                Next::Cmd(Some(EsCmd::Welcome)) => {
                    let text = welcome(&inner, id, &session_id, keepalive);
                    frame(0x1, text.as_bytes())
                }
                Next::Cmd(Some(EsCmd::Close(code, reason))) => {
                    let mut payload = code.to_be_bytes().to_vec();
                    payload.extend_from_slice(reason.as_bytes());
                    let _ = writer.write_all(&frame(0x8, &payload)).await;
                    break;
                }
                Next::Cmd(None) | Next::Frame(None) => break,
                Next::Frame(Some((opcode, payload))) => {
                    let entry = match opcode {
                        0xA => format!("pong {}", String::from_utf8_lossy(&payload)),
                        0x8 => {
                            let code = payload
                                .get(..2)
                                .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                            format!("close {code}")
                        }
                        0x1 => format!("text {}", String::from_utf8_lossy(&payload)),
                        other => format!("opcode {other:#x}"),
                    };
                    inner.update(|s| s.eventsub[id].received.push(entry));
                    match opcode {
                        0xA | 0x9 => continue,
                        0x8 => {
                            let _ = writer.write_all(&frame(0x8, &payload)).await;
                            break;
                        }
                        _ => {
                            // EventSub closes a client that sends anything but Pong
                            let mut close = 4001u16.to_be_bytes().to_vec();
                            close.extend_from_slice(b"client sent inbound traffic");
                            let _ = writer.write_all(&frame(0x8, &close)).await;
                            break;
                        }
                    }
                }
            };
            if writer.write_all(&out).await.is_err() || writer.flush().await.is_err() {
                break;
            }
        }
        let _ = writer.flush().await;
        let _ = writer.close().await;
    };
    future::or(read_loop, serve).await;
    inner.update(|s| {
        s.eventsub[id].open = false;
        s.es_senders.remove(&id);
        let gone = s.eventsub[id].session_id.clone();
        for sub in &mut s.subscriptions {
            if sub.session_id == gone && sub.status == "enabled" {
                sub.status = "websocket_disconnected".into();
            }
        }
    });
}

fn message_id() -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("es-{n}")
}

/// The welcome of connection `id`; a reconnect's welcome moves the old session's
/// subscriptions here (the old socket still delivers until then).
fn welcome(inner: &Inner, id: usize, session_id: &str, keepalive: u64) -> String {
    inner.update(|s| {
        s.eventsub[id].welcomed = true;
        if let Some(old) = s.eventsub[id].reconnect_of.clone() {
            for sub in &mut s.subscriptions {
                if sub.session_id == old && sub.status == "enabled" {
                    sub.session_id = session_id.to_owned();
                }
            }
        }
    });
    envelope(
        &message_id(),
        "session_welcome",
        serde_json::json!({}),
        serde_json::json!({"session": {"id": session_id, "status": "connected",
            "connected_at": now_stamp(), "keepalive_timeout_seconds": keepalive,
            "reconnect_url": null}}),
    )
}

impl State {
    /// The enabled subscriptions on open connections, as `(session id, channel id)`.
    pub fn live_subscriptions(&self, user_id: &str) -> Vec<(String, String)> {
        self.subscriptions
            .iter()
            .filter(|s| s.user_id == user_id && s.status == "enabled")
            .filter(|s| {
                self.eventsub
                    .iter()
                    .any(|c| c.open && c.session_id == s.session_id)
            })
            .map(|s| (s.session_id.clone(), s.broadcaster_id.clone()))
            .collect()
    }

    /// The channel logins `user_id` reads through live EventSub subscriptions.
    pub fn reading(&self, user_id: &str) -> BTreeSet<String> {
        self.live_subscriptions(user_id)
            .into_iter()
            .filter_map(|(_, id)| {
                let account = self.users.iter().find(|u| u.id == id).map(|u| &u.login);
                let made_up = self
                    .channel_ids
                    .iter()
                    .find(|(_, v)| **v == id)
                    .map(|(k, _)| k);
                account.or(made_up).cloned()
            })
            .collect()
    }

    /// The EventSub connections still open, by index.
    pub fn open_eventsub(&self) -> Vec<usize> {
        (0..self.eventsub.len())
            .filter(|&i| self.eventsub[i].open)
            .collect()
    }
}

impl FakeTwitch {
    /// Delivers a `channel.chat.message` notification with this message id to every
    /// enabled subscription to `channel`; returns to how many.
    pub fn eventsub_chat(
        &self,
        channel: &str,
        login: &str,
        user_id: &str,
        text: &str,
        message_id: &str,
    ) -> usize {
        self.eventsub_message(&Shown {
            channel,
            source: None,
            login,
            user_id,
            text,
            id: message_id,
        })
    }

    /// [`Self::eventsub_chat`] for a message shown in shared chat when `source` is set.
    pub(super) fn eventsub_message(&self, m: &Shown<'_>) -> usize {
        let (channel, message_id) = (m.channel, m.id);
        let mut state = self.inner.lock();
        let Some(broadcaster) = state.channel_id(channel) else {
            return 0;
        };
        // null in the channel where the message was sent, and outside shared chat
        let (mut source_id, mut source_login, mut source_message) = (None, None, None);
        if let Some(s) = m.source.filter(|s| s.channel != channel) {
            source_id = state.channel_id(s.channel);
            source_login = Some(s.channel.to_owned());
            source_message = Some(s.id.to_owned());
        }
        let mut sent = 0;
        for sub in state
            .subscriptions
            .iter()
            .filter(|s| s.broadcaster_id == broadcaster && s.status == "enabled")
        {
            let event = serde_json::json!({
                "subscription": {"id": sub.id, "status": "enabled", "type": "channel.chat.message",
                    "version": "1", "condition": {"broadcaster_user_id": broadcaster, "user_id": sub.user_id},
                    "transport": {"method": "websocket", "session_id": sub.session_id},
                    "created_at": now_stamp(), "cost": 0},
                "event": {"broadcaster_user_id": broadcaster, "broadcaster_user_login": channel,
                    "broadcaster_user_name": channel, "chatter_user_id": m.user_id,
                    "chatter_user_login": m.login, "chatter_user_name": m.login,
                    "message_id": message_id,
                    "message": {"text": m.text, "fragments": [{"type": "text", "text": m.text,
                        "cheermote": null, "emote": null, "mention": null}]},
                    "message_type": "text", "badges": [], "cheer": null, "color": "#1E90FF",
                    "reply": null, "channel_points_custom_reward_id": null,
                    "source_broadcaster_user_id": source_id,
                    "source_broadcaster_user_login": source_login,
                    "source_broadcaster_user_name": source_login,
                    "source_message_id": source_message,
                    "source_badges": source_message.as_ref().map(|_| serde_json::json!([]))},
            });
            let extra = serde_json::json!({"subscription_type": "channel.chat.message", "subscription_version": "1"});
            let text = envelope(message_id, "notification", extra, event);
            sent += send_to_session(&state, &sub.session_id, EsCmd::Text(text));
        }
        sent
    }

    /// Sends `session_reconnect` to every welcomed connection, with a reconnect URL on
    /// this server; returns to how many.
    pub fn eventsub_reconnect(&self) -> usize {
        let state = self.inner.lock();
        let mut sent = 0;
        for (i, conn) in state.eventsub.iter().enumerate() {
            if !(conn.open && conn.welcomed) {
                continue;
            }
            let url = format!(
                "wss://127.0.0.1:{}/ws?reconnect={}",
                state.eventsub_port, conn.session_id
            );
            let text = envelope(
                &message_id(),
                "session_reconnect",
                serde_json::json!({}),
                serde_json::json!({"session": {"id": conn.session_id, "status": "reconnecting",
                    "connected_at": now_stamp(), "keepalive_timeout_seconds": null,
                    "reconnect_url": url}}),
            );
            if let Some(tx) = state.es_senders.get(&i) {
                sent += usize::from(tx.try_send(EsCmd::Text(text)).is_ok());
            }
        }
        sent
    }

    /// Sends the held welcomes (see [`super::State::eventsub_hold_welcome`]).
    pub fn release_welcomes(&self) -> usize {
        let state = self.inner.lock();
        let mut sent = 0;
        for (i, conn) in state.eventsub.iter().enumerate() {
            if conn.open && !conn.welcomed {
                if let Some(tx) = state.es_senders.get(&i) {
                    sent += usize::from(tx.try_send(EsCmd::Welcome).is_ok());
                }
            }
        }
        sent
    }

    /// Revokes every enabled subscription to `channel` with `status` (`user_removed`,
    /// `authorization_revoked`, `version_removed`); returns how many.
    pub fn eventsub_revoke(&self, channel: &str, status: &str) -> usize {
        let mut state = self.inner.lock();
        let Some(broadcaster) = state.channel_id(channel) else {
            return 0;
        };
        let mut sent = 0;
        let subs: Vec<Subscription> = state
            .subscriptions
            .iter_mut()
            .filter(|s| s.broadcaster_id == broadcaster && s.status == "enabled")
            .map(|s| {
                s.status = status.to_owned();
                s.clone()
            })
            .collect();
        for sub in subs {
            let text = envelope(
                &message_id(),
                "revocation",
                serde_json::json!({"subscription_type": "channel.chat.message", "subscription_version": "1"}),
                serde_json::json!({"subscription": {"id": sub.id, "status": status,
                    "type": "channel.chat.message", "version": "1",
                    "condition": {"broadcaster_user_id": sub.broadcaster_id, "user_id": sub.user_id},
                    "transport": {"method": "websocket", "session_id": sub.session_id},
                    "created_at": now_stamp(), "cost": 0}}),
            );
            sent += send_to_session(&state, &sub.session_id, EsCmd::Text(text));
        }
        drop(state);
        self.inner.changed.notify_all();
        sent
    }

    /// Closes every open EventSub connection with `code` and `reason`.
    pub fn eventsub_close(&self, code: u16, reason: &str) -> usize {
        let state = self.inner.lock();
        state
            .es_senders
            .values()
            .filter(|tx| tx.try_send(EsCmd::Close(code, reason.to_owned())).is_ok())
            .count()
    }

    /// Sends a WebSocket ping with `payload` on every open EventSub connection.
    pub fn eventsub_ping(&self, payload: &str) -> usize {
        let state = self.inner.lock();
        state
            .es_senders
            .values()
            .filter(|tx| {
                tx.try_send(EsCmd::Ping(payload.as_bytes().to_vec()))
                    .is_ok()
            })
            .count()
    }
}

fn send_to_session(state: &super::State, session_id: &str, cmd: EsCmd) -> usize {
    let conn = state
        .eventsub
        .iter()
        .position(|c| c.open && c.session_id == session_id);
    match conn.and_then(|i| state.es_senders.get(&i)) {
        Some(tx) => usize::from(tx.try_send(cmd).is_ok()),
        None => 0,
    }
}

/// The subscriptions API: create (202, 400, 403, 409, 429), delete, list.
pub(super) fn subscriptions(
    inner: &Inner,
    req: &super::request::Request,
    user: &super::FakeUser,
) -> (u16, String) {
    use super::request::error;
    let mut state = inner.lock();
    match req.method.as_str() {
        "POST" => {
            if let Some(answer) = state.subscribe_script.pop_front() {
                return answer;
            }
            let Ok(body) = serde_json::from_slice::<serde_json::Value>(&req.body) else {
                return error(400, "Bad Request", "malformed JSON body");
            };
            if !user.scopes.iter().any(|s| s == "user:read:chat") {
                return error(
                    403,
                    "Forbidden",
                    "subscription missing proper authorization",
                );
            }
            let broadcaster = body["condition"]["broadcaster_user_id"]
                .as_str()
                .unwrap_or("");
            let reader = body["condition"]["user_id"].as_str().unwrap_or("");
            let session_id = body["transport"]["session_id"].as_str().unwrap_or("");
            if body["type"] != "channel.chat.message"
                || body["version"] != "1"
                || broadcaster.is_empty()
            {
                return error(400, "Bad Request", "invalid type, version or condition");
            }
            if reader != user.id {
                return error(
                    403,
                    "Forbidden",
                    "condition.user_id must match the token's user",
                );
            }
            if body["transport"]["method"] != "websocket"
                || !state
                    .eventsub
                    .iter()
                    .any(|c| c.open && c.welcomed && c.session_id == session_id)
            {
                return error(
                    400,
                    "Bad Request",
                    "websocket transport session does not exist or has already disconnected",
                );
            }
            if state.subscriptions.iter().any(|s| {
                s.status == "enabled" && s.broadcaster_id == broadcaster && s.user_id == reader
            }) {
                return error(409, "Conflict", "subscription already exists");
            }
            let mut sessions: Vec<&str> = state
                .subscriptions
                .iter()
                .filter(|s| {
                    s.user_id == reader && s.status == "enabled" && s.session_id != session_id
                })
                .map(|s| s.session_id.as_str())
                .collect();
            sessions.sort_unstable();
            sessions.dedup();
            if sessions.len() >= 3 {
                return error(
                    429,
                    "Too Many Requests",
                    "number of websocket transports limit exceeded",
                );
            }
            state.serial += 1;
            let sub = Subscription {
                id: format!("sub-{:08}", state.serial),
                broadcaster_id: broadcaster.to_owned(),
                user_id: reader.to_owned(),
                session_id: session_id.to_owned(),
                status: "enabled".into(),
            };
            state.subscriptions.push(sub.clone());
            drop(state);
            inner.changed.notify_all();
            (
                202,
                serde_json::json!({"data": [sub_json(&sub)], "total": 1, "total_cost": 0, "max_total_cost": 10})
                    .to_string(),
            )
        }
        "DELETE" => {
            let id = req.query("id").unwrap_or("");
            let before = state.subscriptions.len();
            state
                .subscriptions
                .retain(|s| s.id != id || s.user_id != user.id);
            let found = state.subscriptions.len() < before;
            drop(state);
            inner.changed.notify_all();
            if found {
                (204, String::new())
            } else {
                error(404, "Not Found", "subscription not found")
            }
        }
        "GET" => {
            let filter = req.query("user_id");
            let data: Vec<_> = state
                .subscriptions
                .iter()
                .filter(|s| s.user_id == user.id)
                .filter(|s| filter.is_none_or(|f| f == s.broadcaster_id || f == s.user_id))
                .map(sub_json)
                .collect();
            (200, serde_json::json!({"data": data, "total": data.len(), "total_cost": 0, "max_total_cost": 10, "pagination": {}}).to_string())
        }
        _ => error(404, "Not Found", "no such endpoint in the fake"),
    }
}

fn sub_json(sub: &Subscription) -> serde_json::Value {
    serde_json::json!({"id": sub.id, "status": sub.status, "type": "channel.chat.message",
        "version": "1", "condition": {"broadcaster_user_id": sub.broadcaster_id, "user_id": sub.user_id},
        "created_at": now_stamp(), "transport": {"method": "websocket", "session_id": sub.session_id,
        "connected_at": now_stamp()}, "cost": 0})
}
