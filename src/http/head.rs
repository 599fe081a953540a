//! The one HTTP/1.1 head parser, for the three places that read a head: the client's
//! responses ([`super::wire::ResponseParser`]), the listener's requests (`web::request`) and
//! the fake Twitch's requests. No I/O: bytes in, a start line and header lines out.

use std::fmt;

/// A head: its start line cut at its first two spaces (a status line's reason may hold more,
/// and may be missing: then the third is empty), and each header line as name and value,
/// trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head<'a> {
    pub(crate) start: [&'a str; 3],
    pub(crate) headers: Vec<(&'a str, &'a str)>,
}

/// Why a head cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HeadError {
    /// The head is not UTF-8.
    NotUtf8,
    /// The start line has fewer than two spaces-separated parts.
    StartLine(String),
    /// A header line without a colon.
    HeaderLine(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::NotUtf8 => f.write_str("head is not UTF-8"),
            HeadError::StartLine(line) => write!(f, "bad start line {line:?}"),
            HeadError::HeaderLine(line) => write!(f, "bad header line {line:?}"),
        }
    }
}

/// Where the head at the start of `buf` ends: just past its blank line (CRLF CRLF, or LF LF
/// from a bare-LF client such as nc). The search starts at `from`, so a caller that searched
/// before passes where it stopped, less 3 (the end may straddle the two reads).
pub(crate) fn end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    let mut at = from;
    while let Some(i) = buf[at..].iter().position(|&b| b == b'\n') {
        let lf = at + i;
        match buf.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if buf.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// Reads a head: the bytes up to and including its blank line (from [`end`]), or without it.
pub(crate) fn parse(head: &[u8]) -> Result<Head<'_>, HeadError> {
    let text = std::str::from_utf8(head).map_err(|_| HeadError::NotUtf8)?;
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .take_while(|l| !l.is_empty());
    let line = lines.next().unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return Err(HeadError::StartLine(crate::log::capped(line)));
    };
    let start = [a, b, parts.next().unwrap_or_default()];
    let headers = lines
        .map(|l| {
            l.split_once(':')
                .map(|(name, value)| (name.trim(), value.trim()))
                .ok_or_else(|| HeadError::HeaderLine(crate::log::capped(l)))
        })
        .collect::<Result<_, _>>()?;
    Ok(Head { start, headers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_head_is_split_into_its_start_line_and_headers() {
        let raw = b"HTTP/1.1 429 Too Many Requests\r\nRatelimit-Reset: 1781653392\r\nContent-Length:  0 \r\n\r\nbody";
        let end = end(raw, 0).unwrap();
        assert_eq!(&raw[end..], b"body");
        let head = parse(&raw[..end]).unwrap();
        assert_eq!(head.start, ["HTTP/1.1", "429", "Too Many Requests"]);
        assert_eq!(
            head.headers,
            [("Ratelimit-Reset", "1781653392"), ("Content-Length", "0")]
        );
    }

    #[test]
    fn a_bare_lf_head_and_a_missing_reason_are_read() {
        let raw = b"GET /status HTTP/1.0\nHost: x\n\n";
        assert_eq!(end(raw, 0), Some(raw.len()));
        let head = parse(raw).unwrap();
        assert_eq!(head.start, ["GET", "/status", "HTTP/1.0"]);
        assert_eq!(head.headers, [("Host", "x")]);
        assert_eq!(
            parse(b"HTTP/1.1 204\r\n\r\n").unwrap().start,
            ["HTTP/1.1", "204", ""]
        );
    }

    #[test]
    fn the_end_is_found_from_where_the_last_search_stopped() {
        let raw = b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
        for from in 0..raw.len() {
            // a caller passes where it stopped less 3: the end is still found
            assert_eq!(
                end(raw, from.saturating_sub(3)),
                Some(raw.len()),
                "from {from}"
            );
        }
        assert_eq!(end(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0), None);
        assert_eq!(end(b"", 0), None);
    }

    #[test]
    fn bad_heads_are_named() {
        assert_eq!(parse(b"\xff\r\n\r\n"), Err(HeadError::NotUtf8));
        assert_eq!(
            parse(b"garbage\r\n\r\n"),
            Err(HeadError::StartLine("garbage".into()))
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
            Err(HeadError::HeaderLine("no colon".into()))
        );
    }
}
