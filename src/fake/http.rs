//! The fake's HTTPS server: the connection loop, and routing to Helix and OAuth.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use smol::io::{AsyncWriteExt, BufReader};

use super::request::{read_request, Request};
use super::{ColorPut, Inner, OAuthCall, ServerTls};

pub(super) async fn http_conn(inner: Arc<Inner>, stream: ServerTls) {
    let (reader, mut writer) = smol::io::split(stream);
    let mut reader = BufReader::new(reader);
    loop {
        let Some(req) = read_request(&mut reader).await else {
            return;
        };
        #[cfg(feature = "fake-twitch")]
        inner.update(|s| {
            let q: Vec<String> = req.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.requests
                .push(format!("{} {}?{}", req.method, req.path, q.join("&")))
        });
        let (status, body) = route(&inner, &req);
        // the answer is decided (a refresh has rotated the pair); it may take a while to arrive
        #[cfg(feature = "fake-twitch")]
        {
            let delay = inner.lock().token_delay;
            if req.path.ends_with("/token") && !delay.is_zero() {
                smol::Timer::after(delay).await;
            }
        }
        let (remaining, refill) = match status {
            429 => (0, inner.lock().bucket_refill_secs),
            _ => (799, 0),
        };
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + refill)
            .unwrap_or(0);
        let reason = match status {
            200 => "OK",
            202 => "Accepted",
            204 => "No Content",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            409 => "Conflict",
            429 => "Too Many Requests",
            _ => "Error",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nRatelimit-Limit: 800\r\nRatelimit-Remaining: {remaining}\r\nRatelimit-Reset: {reset}\r\nContent-Length: {}\r\n\r\n",
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

fn route(inner: &Inner, req: &Request) -> (u16, String) {
    if let Some(op) = req.path.strip_prefix("/oauth2/") {
        let (status, body) = super::oauth::oauth(inner, op, req);
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
    let (status, body) = super::helix::helix(inner, req);
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
