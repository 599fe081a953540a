//! The fake's IRC server: login, JOIN/PART, PING, and lines pushed by the test.

use std::sync::Arc;

use smol::future;
use smol::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use smol::stream::StreamExt;

use super::{Cmd, Inner, IrcConn, ServerTls};

pub(super) async fn irc_conn(inner: Arc<Inner>, stream: ServerTls) {
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
    match msg.command() {
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
