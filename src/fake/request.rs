//! The fake's HTTP requests: reading one from a connection, its query, form and headers,
//! and Twitch's JSON error answer. Shared by the HTTPS and the EventSub servers.

use smol::io::{AsyncBufReadExt, AsyncReadExt};

use crate::http::head;

pub(super) struct Request {
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
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

pub(super) async fn read_request<R: smol::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Option<Request> {
    // the head line by line, then read by the bot's own head parser
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        if reader.read_until(b'\n', &mut raw).await.ok()? == 0 {
            return None;
        }
        if head::end(&raw, before.saturating_sub(3)).is_some() {
            break;
        }
    }
    let head = head::parse(&raw).ok()?;
    let [method, target, _] = head.start;
    let (method, target) = (method.to_owned(), target.to_owned());
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
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
