//! What Twitch's answers mean, whichever endpoint gave them (Helix or OAuth): the
//! classification of an error status ([`ErrorKind`]), a failed Helix call ([`ApiError`]), the
//! rate-limit headers ([`RateLimit`]), the message of an error body, the tokens of a grant
//! ([`TokenSet`]), what `/validate` says ([`Validation`]), a failed OAuth call
//! ([`OAuthError`]) and a device-code attempt that ended without tokens ([`DeviceError`]).
//! No I/O: the cores match on these, the clients ([`crate::helix`], [`crate::oauth`],
//! [`crate::device`]) make them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

use crate::http::wire::{names, HttpError};
use crate::secret::Secret;

/// The `Ratelimit-*` headers of a Helix response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimit {
    /// `Ratelimit-Limit`: the bucket size.
    pub limit: Option<u32>,
    /// `Ratelimit-Remaining`: points left.
    pub(crate) remaining: Option<u32>,
    /// `Ratelimit-Reset`: Unix seconds when the bucket is full again.
    pub reset: Option<u64>,
}

impl RateLimit {
    /// Reads the headers; absent or unparsable ones are `None`.
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> RateLimit {
        let num = |name: http::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        RateLimit {
            limit: num(names::RATELIMIT_LIMIT).and_then(|v| u32::try_from(v).ok()),
            remaining: num(names::RATELIMIT_REMAINING).and_then(|v| u32::try_from(v).ok()),
            reset: num(names::RATELIMIT_RESET),
        }
    }

    /// When the bucket refills, as wall-clock time.
    pub(crate) fn reset_at(&self) -> Option<SystemTime> {
        self.reset.map(|s| UNIX_EPOCH + Duration::from_secs(s))
    }
}

/// What an HTTP error status from Twitch means to the bot, whichever endpoint answered (Helix
/// or OAuth): the one place statuses are classified; the cores match on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 401: the token (or the client id it goes with) was refused.
    Unauthorized,
    /// 403: the token lacks a scope, or the action is not allowed.
    Forbidden,
    /// 400: the request itself was refused (a hex color without Turbo, a bad subscription).
    Invalid,
    /// 409: it exists already.
    Conflict,
    /// 429 for the rate-limit bucket: wait until it refills (`Ratelimit-Reset`).
    RateLimited,
    /// 429 saying "number of websocket transports limit exceeded": Twitch allows 3 EventSub
    /// WebSocket connections per client id and user, and others hold them. Waiting for the
    /// bucket cannot help.
    TransportLimit,
    /// Any other status (5xx above all): Twitch trouble; trying later may work.
    Unavailable,
    /// No usable HTTP answer (network, TLS, timeout, a body that is not what Twitch documents).
    NoAnswer,
}

impl ErrorKind {
    /// What an answer with `status` and Twitch's `message` means: a 429 is the bucket unless
    /// the message names the WebSocket transport limit (some endpoints answer 429 for reasons
    /// of their own, and say which).
    pub(crate) fn of_answer(status: u16, message: &str) -> ErrorKind {
        match ErrorKind::of_status(status) {
            ErrorKind::RateLimited
                if message
                    .to_ascii_lowercase()
                    .contains("websocket transports limit") =>
            {
                ErrorKind::TransportLimit
            }
            kind => kind,
        }
    }

    /// What `status` means, where Twitch's message says nothing more (OAuth).
    pub(crate) fn of_status(status: u16) -> ErrorKind {
        match status {
            400 => ErrorKind::Invalid,
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            409 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Unavailable,
        }
    }
}

/// A failed Helix call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiError {
    /// The request did not get an HTTP answer from `peer` (scheme, host and port).
    Http {
        /// Who did not answer.
        peer: String,
        /// What went wrong.
        error: HttpError,
    },
    /// Twitch answered with an error status; `message` is from its JSON body when present.
    Status {
        /// The HTTP status.
        status: u16,
        /// Twitch's `message`, or the body's start.
        message: String,
        /// The rate-limit headers of that answer.
        rate: RateLimit,
    },
    /// A 2xx answer whose body is not what the API documents.
    BadBody(String),
}

impl ApiError {
    /// What the failure means to the bot.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ApiError::Status {
                status, message, ..
            } => ErrorKind::of_answer(*status, message),
            ApiError::Http { .. } | ApiError::BadBody(_) => ErrorKind::NoAnswer,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Http { peer, error } => write!(f, "{peer}: {error}"),
            ApiError::Status {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            ApiError::BadBody(e) => write!(f, "unexpected response body: {e}"),
        }
    }
}

impl std::error::Error for ApiError {}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
}

/// Twitch's `message` (or `error`) from an error body of Helix or OAuth, else the body's
/// start; escaped and capped for logs ([`crate::log::capped`]), since a server chooses it.
pub(crate) fn error_message(body: &[u8]) -> String {
    if let Ok(ErrorBody { message, error }) = serde_json::from_slice::<ErrorBody>(body) {
        if let Some(m) = message.or(error) {
            return crate::log::capped(&m);
        }
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(4 * crate::log::MAX_SHOWN)]);
    if text.trim().is_empty() {
        "(empty body)".into()
    } else {
        crate::log::capped(&text)
    }
}

/// The scopes the bot asks for: read chat, change the color, and read chat over EventSub.
pub const SCOPES: [&str; 3] = ["chat:read", "user:manage:chat_color", "user:read:chat"];
/// The scope without which the bot cannot work.
pub(crate) const REQUIRED_SCOPE: &str = "user:manage:chat_color";

/// Tokens from a grant or a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSet {
    /// The new access token.
    pub access_token: Secret,
    /// The new refresh token (the old one is now void).
    pub refresh_token: Secret,
    /// Seconds the access token lives, if Twitch said.
    pub expires_in: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// A started device-code authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    /// Polled with; not shown to the person.
    pub device_code: Secret,
    /// The code the person confirms.
    pub user_code: String,
    /// Where the person goes (already holds the code).
    pub verification_uri: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Seconds to wait between polls.
    pub interval: u64,
}

/// What `/validate` says of a token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Validation {
    /// The app it belongs to.
    pub client_id: String,
    /// The account's login.
    #[serde(default)]
    pub login: String,
    /// The account's id.
    #[serde(default)]
    pub user_id: String,
    /// Granted scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Seconds left.
    pub expires_in: u64,
}

/// A failed OAuth call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OAuthError {
    /// No HTTP answer from `peer`.
    Http {
        /// Who did not answer.
        peer: String,
        /// What went wrong.
        error: HttpError,
    },
    /// The person has not approved yet (keep polling).
    Pending,
    /// Polling too fast (wait longer).
    SlowDown,
    /// The device code expired or is unknown.
    Expired,
    /// The person declined.
    Denied,
    /// The token or refresh token is not valid (any more).
    InvalidToken(String),
    /// Twitch refuses the app rather than the refresh token or the person (a 400 or 403 other
    /// than "Invalid refresh token" from the token endpoint, or any 400 or 403 when asked for a
    /// device code: a wrong client id or secret), with status and message. Only an edit of the
    /// config mends it.
    AppRefused(u16, String),
    /// Twitch failed on its side (a 5xx), with status and message: not a refusal, so trying
    /// again later may work.
    Unavailable(u16, String),
    /// Any other refusal, with status and Twitch's message.
    Refused(u16, String),
    /// A 2xx answer that is not what Twitch documents.
    BadBody(String),
}

impl OAuthError {
    /// No connection could be opened for want of file descriptors: said at most once a
    /// minute per user, since the others' connections keep working and this one waits.
    pub fn is_descriptors(&self) -> bool {
        matches!(
            self,
            OAuthError::Http {
                error: HttpError::Descriptors(_),
                ..
            }
        )
    }

    /// Twitch could not be reached because this machine's clock looks wrong (its certificate
    /// refused for the time): said once where connections are made, so retries stay quiet.
    pub fn is_clock(&self) -> bool {
        matches!(
            self,
            OAuthError::Http {
                error: HttpError::Clock(_),
                ..
            }
        )
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OAuthError::Http { peer, error } => write!(f, "{peer}: {error}"),
            OAuthError::Pending => f.write_str("authorisation pending"),
            OAuthError::SlowDown => f.write_str("polling too fast"),
            OAuthError::Expired => f.write_str("the code expired"),
            OAuthError::Denied => f.write_str("authorisation was declined"),
            OAuthError::InvalidToken(m) => write!(f, "token refused: {m}"),
            OAuthError::AppRefused(status, m)
            | OAuthError::Unavailable(status, m)
            | OAuthError::Refused(status, m) => {
                write!(f, "HTTP {status}: {m}")
            }
            OAuthError::BadBody(m) => write!(f, "unexpected answer: {m}"),
        }
    }
}

impl std::error::Error for OAuthError {}

/// Why one device-code attempt ended without tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// The code expired before anyone approved it.
    Expired,
    /// The person declined.
    Denied,
    /// Twitch refused.
    Failed(String),
    /// Twitch refuses the app itself (an unknown `client_id`): no code can be had until the
    /// config changes.
    AppRefused(String),
    /// Twitch could not be reached, or failed on its side (no network, DNS, a 5xx): not
    /// the person's doing, so it does not count toward the limit of codes.
    Unreachable(String),
    /// Twitch could not be reached because this machine's clock looks wrong (said once where
    /// connections are made): waited for like [`DeviceError::Unreachable`], quietly.
    Clock(String),
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Expired => f.write_str("the code expired before it was approved"),
            DeviceError::Denied => f.write_str("the authorisation was declined"),
            DeviceError::Failed(e)
            | DeviceError::AppRefused(e)
            | DeviceError::Unreachable(e)
            | DeviceError::Clock(e) => f.write_str(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_in_one_place() {
        let status = |status| ApiError::Status {
            status,
            message: String::new(),
            rate: RateLimit::default(),
        };
        let kinds: Vec<ErrorKind> = [400, 401, 403, 409, 429, 500, 503, 418]
            .into_iter()
            .map(|s| status(s).kind())
            .collect();
        use ErrorKind::*;
        assert_eq!(
            kinds,
            [
                Invalid,
                Unauthorized,
                Forbidden,
                Conflict,
                RateLimited,
                Unavailable,
                Unavailable,
                Unavailable
            ]
        );
        assert_eq!(ApiError::BadBody("x".into()).kind(), NoAnswer);
    }

    #[test]
    fn reads_rate_limit_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("ratelimit-limit", "800".parse().unwrap());
        h.insert("ratelimit-remaining", "799".parse().unwrap());
        h.insert("ratelimit-reset", "1781653392".parse().unwrap());
        let r = RateLimit::from_headers(&h);
        assert_eq!(
            r,
            RateLimit {
                limit: Some(800),
                remaining: Some(799),
                reset: Some(1781653392)
            }
        );
        assert_eq!(
            r.reset_at(),
            Some(UNIX_EPOCH + Duration::from_secs(1781653392))
        );
        assert_eq!(
            RateLimit::from_headers(&http::HeaderMap::new()),
            RateLimit::default()
        );
    }

    #[test]
    fn extracts_twitch_error_messages() {
        assert_eq!(
            error_message(
                br#"{"error":"Unauthorized","status":401,"message":"Invalid OAuth token"}"#
            ),
            "Invalid OAuth token"
        );
        assert_eq!(
            error_message(br#"{"error":"Bad Request","status":400}"#),
            "Bad Request"
        );
        assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_message(b""), "(empty body)");
        // a server cannot forge log lines, repaint the terminal or flood the log
        let huge = format!(
            r#"{{"message":"\u001b[2Jfake\r\n2026-01-01T00:00:00Z INFO  forged{}"}}"#,
            "x".repeat(900 * 1024)
        );
        let shown = error_message(huge.as_bytes());
        assert!(shown.starts_with("\\u{1b}[2Jfake\\r\\n2026"), "{shown}");
        assert!(!shown.chars().any(char::is_control));
        assert!(shown.chars().count() <= crate::log::MAX_SHOWN + 1);
    }
}
