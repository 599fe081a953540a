//! HTTP/1.1 on the wire, free of I/O: request bytes out, response bytes in.

use std::fmt;
use std::io::Write as _;

use http::header::{self, HeaderName};

use super::head;

/// The largest response (head and body) we accept.
pub const MAX_RESPONSE: usize = 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;

/// Why an HTTP exchange failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpError {
    /// The connection failed (connect, TLS, read or write): the kind of the I/O error (an
    /// end of stream without TLS close_notify is `UnexpectedEof`), and the cause as text.
    Io(std::io::ErrorKind, String),
    /// The peer closed the connection before a complete response.
    Closed,
    /// The response is not valid HTTP/1.1.
    Malformed(String),
    /// The response is larger than [`MAX_RESPONSE`].
    TooLarge,
    /// No complete response in time.
    Timeout,
    /// The server's certificate was refused for this machine's time: the clock looks wrong
    /// (said once at WARN; retries of it are quiet).
    Clock(crate::skew::Skew),
    /// No connection could be opened: the process is at its open-files limit (EMFILE) or the
    /// system at its own (ENFILE). Others' connections go on; this one waits its turn.
    Descriptors(String),
}

impl HttpError {
    /// A connection that failed with `e`, kept by kind and text.
    pub(crate) fn io(e: &std::io::Error) -> HttpError {
        HttpError::Io(e.kind(), e.to_string())
    }

    /// A connection that failed: the clock or a want of file descriptors when that is why,
    /// else the cause as text.
    pub(crate) fn connect(e: &std::io::Error) -> HttpError {
        match crate::skew::Skew::of(e) {
            Some(skew) => HttpError::Clock(skew),
            None if crate::nofile::exhausted(e) => HttpError::Descriptors(e.to_string()),
            None => HttpError::io(e),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Io(_, e) => write!(f, "connection failed: {e}"),
            HttpError::Closed => f.write_str("connection closed before a complete response"),
            HttpError::Malformed(e) => write!(f, "malformed HTTP response: {e}"),
            HttpError::TooLarge => write!(f, "response larger than {MAX_RESPONSE} bytes"),
            HttpError::Timeout => f.write_str("no response in time"),
            HttpError::Clock(skew) => write!(f, "connection failed: {skew}"),
            HttpError::Descriptors(e) => write!(
                f,
                "connection failed: {e}: the open-files limit is reached (see the warning at start)"
            ),
        }
    }
}

impl std::error::Error for HttpError {}

/// Header names the bot sends or reads that `http` has no constant for. Names are built at
/// compile time everywhere: parsing one at run time pulls in `http`'s table of every
/// standard header (11 KB of code in the release binary).
pub mod names {
    use http::header::HeaderName;

    /// Helix's `Client-Id`.
    pub const CLIENT_ID: HeaderName = HeaderName::from_static("client-id");
    /// Helix's `Ratelimit-Limit`: points in the bucket.
    pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
    /// Helix's `Ratelimit-Remaining`: points left.
    pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
    /// Helix's `Ratelimit-Reset`: Unix seconds when the bucket is full again.
    pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
}

/// The response headers a [`Parsed`] response keeps; the parser reads the framing ones and
/// drops every other header (nothing in the bot reads them).
const KEPT: [HeaderName; 10] = [
    header::CONNECTION,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::RETRY_AFTER,
    header::SEC_WEBSOCKET_ACCEPT,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    names::RATELIMIT_LIMIT,
    names::RATELIMIT_REMAINING,
    names::RATELIMIT_RESET,
];

/// Encodes a request for `host` (the `Host` header); the URI's path and query are sent as is.
pub fn encode_request(req: &http::Request<Vec<u8>>, host: &str) -> Vec<u8> {
    let target = req
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let headers: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 4)
        .sum();
    // sized once: growing the request as it was written cost four allocations a request
    let mut out = Vec::with_capacity(64 + target.len() + host.len() + headers + req.body().len());
    for part in [
        req.method().as_str(),
        " ",
        target,
        " HTTP/1.1\r\nHost: ",
        host,
        "\r\n",
    ] {
        out.extend_from_slice(part.as_bytes());
    }
    for (name, value) in req.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let body = req.body();
    if !body.is_empty() || matches!(*req.method(), http::Method::POST | http::Method::PUT) {
        let _ = write!(out, "Content-Length: {}\r\n", body.len());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A complete response and whether the connection may carry another request.
#[derive(Debug)]
pub struct Parsed {
    /// The response.
    pub response: http::Response<Vec<u8>>,
    /// False when the server closes (or asked to close) the connection.
    pub keep_alive: bool,
    /// After `101 Switching Protocols` (a WebSocket handshake): the bytes that followed the
    /// head in what was fed so far; they belong to the new protocol.
    pub(crate) upgraded: Option<Vec<u8>>,
}

/// Collects response bytes until a whole response is there. Each byte is looked at a bounded
/// number of times however the answer is split (the head's end is searched for from where the
/// last search stopped, a chunked body decoded chunk by chunk as it comes), so a slow answer
/// costs no more than a fast one.
#[derive(Debug, Default)]
pub struct ResponseParser {
    buf: Vec<u8>,
    head_request: bool,
    /// How much of `buf` was searched for the head's end without finding it.
    searched: usize,
    /// The head, once whole.
    head: Option<Head>,
    /// A chunked body as far as it is decoded.
    chunks: Chunks,
}

/// What the head said.
#[derive(Debug)]
struct Head {
    status: http::StatusCode,
    /// The headers the bot reads ([`KEPT`]).
    headers: http::HeaderMap,
    framing: Framing,
    close: bool,
    /// Where the body starts in the buffer.
    body_start: usize,
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    UntilClose,
}

/// A chunked body, decoded as its chunks arrive.
#[derive(Debug, Default)]
struct Chunks {
    /// Where the next chunk-size (or trailer) line starts, from the body's start.
    at: usize,
    body: Vec<u8>,
    /// The last chunk came: only trailer lines and the final empty line are left.
    trailers: bool,
}

/// The longest chunk-size or trailer line taken.
const MAX_CHUNK_LINE: usize = 4096;

impl Chunks {
    /// Decodes the chunks that arrived whole in `rest` (the body so far); true at the end.
    fn decode(&mut self, rest: &[u8]) -> Result<bool, HttpError> {
        loop {
            let tail = &rest[self.at..];
            let Some(line_end) = find(&tail[..tail.len().min(MAX_CHUNK_LINE + 2)], b"\r\n") else {
                if tail.len() > MAX_CHUNK_LINE {
                    return Err(HttpError::Malformed("chunk-size line too long".into()));
                }
                return Ok(false);
            };
            if self.trailers {
                // trailers, if any, end with an empty line
                if line_end == 0 {
                    return Ok(true);
                }
                self.at += line_end + 2;
                continue;
            }
            let size_line = std::str::from_utf8(&tail[..line_end])
                .map_err(|_| HttpError::Malformed("bad chunk size".into()))?;
            let size_hex = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| HttpError::Malformed(format!("bad chunk size {size_hex:?}")))?;
            if size > MAX_RESPONSE {
                return Err(HttpError::TooLarge);
            }
            let data = line_end + 2;
            if size == 0 {
                self.trailers = true;
                self.at += data;
                continue;
            }
            if tail.len() < data + size + 2 {
                return Ok(false);
            }
            if &tail[data + size..data + size + 2] != b"\r\n" {
                return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
            }
            self.body.extend_from_slice(&tail[data..data + size]);
            self.at += data + size + 2;
        }
    }
}

impl ResponseParser {
    /// A parser for the answer to a request; `head_request` for HEAD (no body follows).
    pub fn new(head_request: bool) -> ResponseParser {
        ResponseParser {
            head_request,
            ..ResponseParser::default()
        }
    }

    /// True when no byte has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Adds bytes; returns the response once complete (the parser is then spent).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<Parsed>, HttpError> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > MAX_RESPONSE {
            return Err(HttpError::TooLarge);
        }
        self.parse(false)
    }

    /// The peer closed the connection: completes a body delimited by close, or fails.
    pub fn finish(&mut self) -> Result<Parsed, HttpError> {
        match self.parse(true)? {
            Some(parsed) => Ok(parsed),
            None => Err(HttpError::Closed),
        }
    }

    fn parse(&mut self, eof: bool) -> Result<Option<Parsed>, HttpError> {
        if self.head.is_none() {
            // the end may straddle what was searched and what came since
            let Some(end) = head::end(&self.buf, self.searched.saturating_sub(3)) else {
                self.searched = self.buf.len();
                if self.buf.len() > MAX_HEAD {
                    return Err(HttpError::Malformed("header section too long".into()));
                }
                return Ok(None);
            };
            self.head = Some(self.read_head(end)?);
        }
        let head = self.head.as_ref().expect("read just above");
        let rest = &self.buf[head.body_start..];
        let (body, keep_alive, upgraded) = if head.status == http::StatusCode::SWITCHING_PROTOCOLS {
            (Vec::new(), false, Some(rest.to_vec()))
        } else {
            let (body, keep_alive) = match head.framing {
                Framing::Empty => (Vec::new(), !head.close),
                Framing::Length(n) => {
                    if rest.len() < n {
                        return Ok(None);
                    }
                    (rest[..n].to_vec(), !head.close)
                }
                Framing::Chunked => {
                    if !self.chunks.decode(rest)? {
                        return Ok(None);
                    }
                    (std::mem::take(&mut self.chunks.body), !head.close)
                }
                // a clean end only: over TLS the stream reports an end without close_notify
                // as an error (tls.rs), so a body cut short never gets here as complete
                Framing::UntilClose => {
                    if !eof {
                        return Ok(None);
                    }
                    (rest.to_vec(), false)
                }
            };
            (body, keep_alive, None)
        };
        // complete: the head is taken, not copied
        let head = self.head.take().expect("read just above");
        let mut response = http::Response::new(body);
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        Ok(Some(Parsed {
            response,
            keep_alive,
            upgraded,
        }))
    }

    /// Reads the head, whose blank line ends at `end`, where the body starts.
    fn read_head(&self, end: usize) -> Result<Head, HttpError> {
        let head =
            head::parse(&self.buf[..end]).map_err(|e| HttpError::Malformed(e.to_string()))?;
        let [version, status, _] = head.start;
        let bad_status =
            || HttpError::Malformed(format!("bad status line {:?}", head.start.join(" ")));
        let http11 = match version {
            "HTTP/1.1" => true,
            "HTTP/1.0" => false,
            _ => return Err(bad_status()),
        };
        let status = status
            .parse::<u16>()
            .ok()
            .and_then(|s| http::StatusCode::from_u16(s).ok())
            .ok_or_else(bad_status)?;

        let mut headers = http::HeaderMap::new();
        let mut length = None;
        let mut chunked = false;
        let mut close = !http11;
        for (name, value) in head.headers {
            let is = |wanted: &str| name.eq_ignore_ascii_case(wanted);
            match () {
                _ if is("content-length") => {
                    let n = value
                        .parse::<usize>()
                        .map_err(|_| HttpError::Malformed("bad Content-Length".into()))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(HttpError::Malformed("conflicting Content-Length".into()));
                    }
                    if n > MAX_RESPONSE {
                        return Err(HttpError::TooLarge);
                    }
                    length = Some(n);
                }
                _ if is("transfer-encoding") => {
                    chunked = value
                        .rsplit(',')
                        .next()
                        .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
                }
                _ if is("connection") => {
                    for token in value.split(',').map(str::trim) {
                        if token.eq_ignore_ascii_case("close") {
                            close = true;
                        } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                            close = false;
                        }
                    }
                }
                _ => {}
            }
            if let Some(kept) = KEPT.iter().find(|kept| is(kept.as_str())) {
                let value = http::HeaderValue::from_str(value)
                    .map_err(|_| HttpError::Malformed(format!("bad value of {}", kept.as_str())))?;
                headers.append(kept.clone(), value);
            }
        }
        let framing = if self.head_request
            || status.is_informational()
            || status == http::StatusCode::NO_CONTENT
            || status == http::StatusCode::NOT_MODIFIED
        {
            Framing::Empty
        } else if chunked {
            Framing::Chunked
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        Ok(Head {
            status,
            headers,
            framing,
            close,
            body_start: end,
        })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encodes a query or form value: everything but `A-Za-z0-9-._~`.
///
/// # Examples
/// ```
/// assert_eq!(twitch_colorchanger::http::encode_component("#9146FF"), "%239146FF");
/// ```
pub fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(bytes: &[u8]) -> Parsed {
        let mut p = ResponseParser::new(false);
        p.feed(bytes).unwrap().expect("complete")
    }

    #[test]
    fn encodes_a_put_with_query_and_headers() {
        let req = http::Request::put("/helix/chat/color?user_id=1&color=%239146FF")
            .header("Authorization", "Bearer x")
            .body(Vec::new())
            .unwrap();
        assert_eq!(
            String::from_utf8(encode_request(&req, "api.twitch.tv")).unwrap(),
            "PUT /helix/chat/color?user_id=1&color=%239146FF HTTP/1.1\r\nHost: api.twitch.tv\r\nauthorization: Bearer x\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn keeps_the_headers_the_bot_reads_and_drops_the_rest() {
        let p = parse_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nRatelimit-Limit: 800\r\nRatelimit-Reset: 17\r\nX-Trace: abc\r\nSet-Cookie: a=b\r\nContent-Type: application/json\r\n\r\n",
        );
        let headers = p.response.headers();
        assert_eq!(headers[names::RATELIMIT_LIMIT], "800");
        assert_eq!(headers[names::RATELIMIT_RESET], "17");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
        assert!(headers.get("x-trace").is_none());
        assert!(headers.get(header::SET_COOKIE).is_none());
        assert_eq!(headers.len(), 4, "{headers:?}");
    }

    #[test]
    fn parses_content_length_and_no_content() {
        let p = parse_all(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nRatelimit-Remaining: 799\r\n\r\nhello",
        );
        assert_eq!(p.response.status(), 200);
        assert_eq!(p.response.body(), b"hello");
        assert_eq!(p.response.headers()["ratelimit-remaining"], "799");
        assert!(p.keep_alive);
        let p = parse_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
        assert_eq!(p.response.status(), 204);
        assert!(!p.keep_alive);
    }

    #[test]
    fn parses_chunked_bodies_fed_one_byte_at_a_time() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\nX-Trailer: y\r\n\r\n";
        let mut p = ResponseParser::new(false);
        for (i, b) in raw.iter().enumerate() {
            let out = p.feed(&[*b]).unwrap();
            if i + 1 < raw.len() {
                assert!(out.is_none(), "complete too early at byte {i}");
            } else {
                let parsed = out.unwrap();
                assert_eq!(parsed.response.body(), b"{\"a\":1}");
                assert!(parsed.keep_alive);
            }
        }
    }

    #[test]
    fn every_split_of_an_answer_gives_what_the_whole_gives() {
        // (after a 101 the parser hands over what followed the head so far: the caller owns the
        // rest, so a 101 is not among these)
        let answers: [&[u8]; 3] = [
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nRatelimit-Limit: 800\r\n\r\n{\"a\":1}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{\"\r\n5\r\na\":1}\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ];
        let shown = |p: Parsed| {
            let (parts, body) = p.response.into_parts();
            format!(
                "{} {:?} {body:?} {} {:?}",
                parts.status, parts.headers, p.keep_alive, p.upgraded
            )
        };
        for raw in answers {
            let whole = shown(ResponseParser::new(false).feed(raw).unwrap().unwrap());
            // in two pieces, cut everywhere (the head's end straddles some cuts)
            for cut in 1..raw.len() {
                let mut p = ResponseParser::new(false);
                let first = p.feed(&raw[..cut]).unwrap();
                let parsed = match first {
                    Some(parsed) => parsed,
                    None => p
                        .feed(&raw[cut..])
                        .unwrap()
                        .expect("complete after the rest"),
                };
                assert_eq!(shown(parsed), whole, "cut at {cut}");
            }
            // a byte at a time
            let mut p = ResponseParser::new(false);
            let mut parsed = None;
            for b in raw {
                if let Some(done) = p.feed(&[*b]).unwrap() {
                    parsed = Some(done);
                    break;
                }
            }
            assert_eq!(shown(parsed.unwrap()), whole);
        }
    }

    #[test]
    fn a_chunk_size_line_without_end_is_refused() {
        let mut p = ResponseParser::new(false);
        p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let endless = vec![b'0'; MAX_CHUNK_LINE + 1];
        assert!(matches!(p.feed(&endless), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn body_until_close_completes_at_eof() {
        let mut p = ResponseParser::new(false);
        assert!(p.feed(b"HTTP/1.0 200 OK\r\n\r\npartial").unwrap().is_none());
        let parsed = p.finish().unwrap();
        assert_eq!(parsed.response.body(), b"partial");
        assert!(!parsed.keep_alive);
    }

    #[test]
    fn truncated_response_is_an_error_at_eof() {
        let mut p = ResponseParser::new(false);
        assert!(p
            .feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            .unwrap()
            .is_none());
        assert_eq!(p.finish().unwrap_err(), HttpError::Closed);
        assert_eq!(
            ResponseParser::new(false).finish().unwrap_err(),
            HttpError::Closed
        );
    }

    #[test]
    fn rejects_garbage_and_oversized_responses() {
        let mut p = ResponseParser::new(false);
        assert!(matches!(
            p.feed(b"SSH-2.0-OpenSSH\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
        let mut p = ResponseParser::new(false);
        let big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_RESPONSE + 1
        );
        assert_eq!(p.feed(big.as_bytes()).unwrap_err(), HttpError::TooLarge);
        let mut p = ResponseParser::new(false);
        assert!(matches!(
            p.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn a_101_hands_over_the_bytes_that_follow_its_head() {
        let mut p = ResponseParser::new(false);
        let head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut bytes = head.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
        let parsed = p.feed(&bytes).unwrap().unwrap();
        assert_eq!(parsed.response.status(), 101);
        assert!(!parsed.keep_alive);
        assert_eq!(
            parsed.upgraded.as_deref(),
            Some(&[0x81, 0x02, b'h', b'i'][..])
        );
        assert_eq!(
            parsed.response.headers()["sec-websocket-accept"],
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        // the head alone: nothing of the new protocol yet
        let mut p = ResponseParser::new(false);
        let parsed = p.feed(head.as_bytes()).unwrap().unwrap();
        assert_eq!(parsed.upgraded, Some(Vec::new()));
        // any other answer has no upgrade
        assert_eq!(
            parse_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").upgraded,
            None
        );
    }

    #[test]
    fn percent_encodes_components() {
        assert_eq!(encode_component("a b&c=d/e%"), "a%20b%26c%3Dd%2Fe%25");
        assert_eq!(encode_component("blue_violet"), "blue_violet");
    }
}
