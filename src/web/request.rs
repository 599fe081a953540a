//! The listener's HTTP/1.1 on the wire, free of I/O: a request head in, a response out.
//! Only what a status page needs: GET and HEAD, no body, one request per connection.

use std::fmt;

/// The largest request head taken (request line and headers); a browser's is about 1 KB.
pub const MAX_HEAD: usize = 8 * 1024;

/// A request's method, as far as the listener cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`: the same answer without its body.
    Head,
    /// Anything else: answered 405.
    Other,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The target's path, without its query.
    pub path: String,
}

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestError {
    /// Longer than [`MAX_HEAD`] (answered 431).
    TooLarge,
    /// Not an HTTP/1.x request head (answered 400).
    Malformed(&'static str),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::TooLarge => write!(f, "request head over {MAX_HEAD} bytes"),
            RequestError::Malformed(why) => write!(f, "malformed request: {why}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Reads a request head from the bytes received so far: `Ok(None)` until the blank line
/// that ends it has arrived (CRLF CRLF, or LF LF from a bare-LF client: nc, telnet).
pub fn parse(bytes: &[u8]) -> Result<Option<Request>, RequestError> {
    match crate::http::head::end(bytes, 0) {
        Some(end) if end <= MAX_HEAD => read_head(&bytes[..end]).map(Some),
        Some(_) => Err(RequestError::TooLarge),
        None if bytes.len() > MAX_HEAD => Err(RequestError::TooLarge),
        None => Ok(None),
    }
}

fn read_head(head: &[u8]) -> Result<Request, RequestError> {
    use crate::http::head::{self, HeadError};
    let head = head::parse(head).map_err(|e| match e {
        HeadError::NotUtf8 => RequestError::Malformed("not UTF-8"),
        HeadError::StartLine(_) => RequestError::Malformed("bad request line"),
        HeadError::HeaderLine(_) => RequestError::Malformed("bad header line"),
    })?;
    let [method, target, version] = head.start;
    if version.contains(' ') {
        return Err(RequestError::Malformed("bad request line"));
    }
    if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
        return Err(RequestError::Malformed("not HTTP/1.x"));
    }
    if !target.starts_with('/') {
        return Err(RequestError::Malformed("target is not a path"));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        m if !m.is_empty() && m.bytes().all(|b| b.is_ascii_uppercase()) => Method::Other,
        _ => return Err(RequestError::Malformed("bad method")),
    };
    let path = target.split(['?', '#']).next().unwrap_or("/").to_owned();
    Ok(Request { method, path })
}

/// An answer: status, content type, extra headers and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// More headers, as `Name: value` lines without CRLF.
    pub headers: Vec<String>,
    /// The body (left out for HEAD).
    pub body: Vec<u8>,
}

impl Response {
    /// A response with a body of this type.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// One line of plain text (errors, probes).
    pub fn text(status: u16, line: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", format!("{line}\n"))
    }

    /// The bytes to send: the head, then the body (empty for `head_only`, a HEAD request,
    /// whose head keeps the length). Apart, so a large body is never copied. Every answer
    /// closes the connection.
    pub fn encode(&self, head_only: bool) -> (Vec<u8>, &[u8]) {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        for header in &self.headers {
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        (out, if head_only { &[] } else { &self.body })
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_method_and_path_once_the_head_is_complete() {
        assert_eq!(parse(b"GET /metrics HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(
            parse(b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok(Some(Request {
                method: Method::Get,
                path: "/metrics".into()
            }))
        );
        assert_eq!(
            parse(b"HEAD / HTTP/1.0\n\n").unwrap().unwrap().method,
            Method::Head
        );
        assert_eq!(
            parse(b"DELETE / HTTP/1.1\r\n\r\n").unwrap().unwrap().method,
            Method::Other
        );
    }

    #[test]
    fn refuses_what_is_not_a_small_http_request() {
        for bad in [
            &b"GET / HTTP/2\r\n\r\n"[..],
            b"GET http://x/ HTTP/1.1\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"get / HTTP/1.1\r\n\r\n",
            b"\xff / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(RequestError::Malformed(_))),
                "{bad:?}"
            );
        }
        let mut big = b"GET / HTTP/1.1\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert_eq!(parse(&big), Err(RequestError::TooLarge));
        big.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse(&big), Err(RequestError::TooLarge));
    }

    #[test]
    fn a_head_answer_keeps_the_length_and_drops_the_body() {
        let r = Response::text(200, "ok");
        let whole = |(head, body): (Vec<u8>, &[u8])| String::from_utf8([&head, body].concat());
        let get = whole(r.encode(false)).unwrap();
        let head = whole(r.encode(true)).unwrap();
        assert!(get.starts_with("HTTP/1.1 200 OK\r\n") && get.ends_with("\r\n\r\nok\n"));
        assert!(head.contains("Content-Length: 3\r\n") && head.ends_with("\r\n\r\n"));
    }
}
