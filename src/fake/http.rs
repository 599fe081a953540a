//! The fake's HTTPS server: request parsing and routing to Helix and OAuth.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use smol::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{ColorPut, Inner, OAuthCall, ServerTls};

pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    form: Vec<(String, String)>,
    /// The raw body (JSON for the EventSub subscriptions API).
    #[cfg(feature = "fake-twitch")]
    pub(super) body: Vec<u8>,
    #[cfg(feature = "fake-twitch")]
    raw_target: String,
}

impl Request {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The request target as sent (path and query).
    #[cfg(feature = "fake-twitch")]
    pub(super) fn target(&self) -> String {
        self.raw_target.clone()
    }
    /// Every value of a repeated query parameter.
    pub(super) fn queries(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub(super) fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub(super) fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

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
        let reset = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
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

pub(super) async fn read_request<R: smol::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Option<Request> {
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
        #[cfg(feature = "fake-twitch")]
        body,
        #[cfg(feature = "fake-twitch")]
        raw_target: target.clone(),
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

pub(super) fn error(status: u16, error: &str, message: &str) -> (u16, String) {
    (
        status,
        serde_json::json!({"error": error, "status": status, "message": message}).to_string(),
    )
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
