//! Where to connect, and the URLs people and Twitch give for it: `tls://`, `tcp://`,
//! `https://`, `http://` (chat, Helix, OAuth) and `wss://`, `ws://` (EventSub). Pure parsing,
//! no I/O; the transports connect to what comes out.

use std::fmt;

/// Where to connect: host, port and whether to speak TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// Wrap the stream in TLS.
    pub tls: bool,
    /// A DNS name or an IP address (without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Endpoint {
    /// The host as it goes in a URL or a `Host` header: IPv6 addresses in brackets.
    pub(crate) fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `https://host:port{path}` (or `http://` without TLS), for messages.
    pub(crate) fn http_url(&self, path: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}{path}", self.url_host(), self.port)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "tls" } else { "tcp" };
        write!(f, "{scheme}://{}:{}", self.url_host(), self.port)
    }
}

/// A parsed URL: where to connect, and the path (Helix's and OAuth's base path) or the
/// request target (EventSub's path and query) to use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// The path or request target; `""` when a chat URL has none.
    pub path: String,
}

/// A URL the user gave that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid URL {:?}: {}", self.url, self.reason)
    }
}

impl std::error::Error for UrlError {}

fn bad(url: &str, reason: &'static str) -> UrlError {
    UrlError {
        url: url.to_owned(),
        reason,
    }
}

/// `scheme` (lowercased) and what follows `://`, or `expected` as the error.
fn split_scheme<'a>(url: &'a str, expected: &'static str) -> Result<(String, &'a str), UrlError> {
    let (scheme, rest) = url.split_once("://").ok_or(bad(url, expected))?;
    Ok((scheme.to_ascii_lowercase(), rest))
}

/// Splits `scheme://host[:port][/path]` into an endpoint and the path (`""` when absent).
/// `tls` and `https` mean TLS; `tcp` and `http` mean plain TCP.
pub fn parse_url(url: &str) -> Result<Url, UrlError> {
    let (scheme, rest) = split_scheme(url, "expected scheme://host:port")?;
    let (tls, default_port) = match scheme.as_str() {
        "tls" => (true, None),
        "tcp" => (false, None),
        "https" => (true, Some(443)),
        "http" => (false, Some(80)),
        _ => return Err(bad(url, "scheme must be tls, tcp, https or http")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(bad(url, "unclosed '[' in host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad(url, "missing host"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse()
            .map_err(|_| bad(url, "port is not a number 1-65535"))?,
        (None, Some(p)) => p,
        (None, None) => return Err(bad(url, "missing port")),
    };
    if port == 0 {
        return Err(bad(url, "port is not a number 1-65535"));
    }
    Ok(Url {
        endpoint: Endpoint {
            tls,
            host: host.to_owned(),
            port,
        },
        path: path.to_owned(),
    })
}

/// Splits a `wss://` or `ws://` URL into the endpoint to dial and the request target (path
/// and query, `/` when absent), kept exactly as given: EventSub's `reconnect_url` must be
/// used unmodified.
pub(crate) fn parse_ws_url(url: &str) -> Result<Url, UrlError> {
    let (scheme, rest) = split_scheme(url, "expected wss://host[:port]/path")?;
    let (tls, port) = match scheme.as_str() {
        "wss" => (true, 443),
        "ws" => (false, 80),
        _ => return Err(bad(url, "scheme must be wss or ws")),
    };
    let split = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(split);
    let target = target.split('#').next().unwrap_or("");
    let target = match target {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{t}"),
        t => t.to_owned(),
    };
    if target.bytes().any(|b| b <= b' ' || b == 0x7F) {
        return Err(bad(url, "spaces or control characters in the path"));
    }
    let scheme = if tls { "tls" } else { "tcp" };
    let has_port = match authority.rfind(']') {
        Some(i) => authority[i..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:{port}")
    };
    let Url { endpoint, .. } =
        parse_url(&format!("{scheme}://{authority}")).map_err(|e| bad(url, e.reason))?;
    Ok(Url {
        endpoint,
        path: target,
    })
}

/// The `Host` header for `endpoint`: the port only when it is not the scheme's default.
pub(crate) fn host_header(endpoint: &Endpoint) -> String {
    let default = if endpoint.tls { 443 } else { 80 };
    if endpoint.port == default {
        endpoint.url_host()
    } else {
        format!("{}:{}", endpoint.url_host(), endpoint.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_url(url: &str) -> Result<(Endpoint, String), UrlError> {
        super::parse_url(url).map(|u| (u.endpoint, u.path))
    }

    fn parse_ws_url(url: &str) -> Result<(Endpoint, String), UrlError> {
        super::parse_ws_url(url).map(|u| (u.endpoint, u.path))
    }

    #[test]
    fn parses_the_urls_users_give() {
        let (ep, path) = parse_url("tls://irc.chat.twitch.tv:6697").unwrap();
        assert_eq!(
            ep,
            Endpoint {
                tls: true,
                host: "irc.chat.twitch.tv".into(),
                port: 6697
            }
        );
        assert_eq!(path, "");
        let (ep, path) = parse_url("https://api.twitch.tv/helix/").unwrap();
        assert_eq!((ep.port, ep.tls, path.as_str()), (443, true, "/helix"));
        let (ep, _) = parse_url("tcp://[::1]:6667").unwrap();
        assert_eq!(ep.host, "::1");
        assert_eq!(ep.to_string(), "tcp://[::1]:6667");
        assert_eq!(ep.http_url("/oauth2"), "http://[::1]:6667/oauth2");
        let (ep, path) = parse_url("https://id.twitch.tv/oauth2").unwrap();
        assert_eq!(ep.http_url(&path), "https://id.twitch.tv:443/oauth2");
        assert!(parse_url("irc.chat.twitch.tv:6697").is_err());
        assert!(parse_url("tls://host").is_err());
        assert!(parse_url("ftp://host:1").is_err());
        assert!(parse_url("tls://host:99999").is_err());
    }

    #[test]
    fn splits_websocket_urls_keeping_the_target_as_given() {
        let (ep, target) = parse_ws_url("wss://eventsub.wss.twitch.tv/ws").unwrap();
        assert_eq!(
            (ep.tls, ep.host.as_str(), ep.port),
            (true, "eventsub.wss.twitch.tv", 443)
        );
        assert_eq!(target, "/ws");
        assert_eq!(host_header(&ep), "eventsub.wss.twitch.tv");
        let (ep, target) =
            parse_ws_url("wss://eventsub.wss.twitch.tv?challenge=a%2Fb&x=1").unwrap();
        assert_eq!((ep.port, target.as_str()), (443, "/?challenge=a%2Fb&x=1"));
        let (ep, target) =
            parse_ws_url("ws://127.0.0.1:8080/ws?keepalive_timeout_seconds=10").unwrap();
        assert_eq!((ep.tls, ep.port), (false, 8080));
        assert_eq!(target, "/ws?keepalive_timeout_seconds=10");
        assert_eq!(host_header(&ep), "127.0.0.1:8080");
        let (ep, _) = parse_ws_url("wss://[::1]/ws").unwrap();
        assert_eq!((ep.host.as_str(), ep.port), ("::1", 443));
        let (ep, _) = parse_ws_url("wss://[::1]:9000").unwrap();
        assert_eq!(ep.port, 9000);
        assert!(parse_ws_url("https://eventsub.wss.twitch.tv/ws").is_err());
        assert!(parse_ws_url("wss:///ws").is_err());
        assert!(parse_ws_url("wss://host/a b").is_err());
        assert!(parse_ws_url("wss://host:0/").is_err());
    }
}
