//! The three Helix calls the bot makes: who am I, what is my color, set my color.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header;
use serde::Deserialize;

use crate::endpoint::Endpoint;
use crate::http::{encode_component, names, HttpClient, HttpError, Sent};
use crate::metrics::Metrics;
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

/// A user token and the client id it was issued to.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The user access token (an `oauth:` prefix is tolerated).
    pub token: &'a Secret,
    /// The app's client id.
    pub client_id: &'a str,
}

/// The token owner, from `GET /users`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// User id.
    pub id: String,
    /// Lowercase login.
    pub login: String,
}

#[derive(Deserialize)]
struct Data<T> {
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Subscription {
    id: String,
}

#[derive(Deserialize)]
struct ColorEntry {
    color: String,
}

#[derive(Deserialize)]
struct ErrorBody {
    message: Option<String>,
    error: Option<String>,
}

/// Helix at a base URL (`https://api.twitch.tv/helix` unless overridden).
pub struct Helix {
    http: Arc<HttpClient>,
    endpoint: Endpoint,
    base_path: String,
    metrics: Arc<Metrics>,
}

impl Helix {
    /// Helix at `endpoint` + `base_path` (e.g. `/helix`).
    pub fn new(http: Arc<HttpClient>, endpoint: Endpoint, base_path: String) -> Helix {
        Helix {
            http,
            endpoint,
            base_path,
            metrics: Arc::default(),
        }
    }

    /// How long its requests have taken.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The base URL, for messages.
    pub fn url(&self) -> String {
        self.endpoint.http_url(&self.base_path)
    }

    /// The token's own user.
    pub async fn get_user(&self, creds: Credentials<'_>) -> Result<User, ApiError> {
        let (body, _) = self.call(http::Method::GET, "/users", creds).await?;
        let mut data: Data<User> = parse_json(&body)?;
        data.data
            .pop()
            .ok_or_else(|| ApiError::BadBody("GET /users returned no user".into()))
    }

    /// The user's chat color, `None` when never set.
    pub async fn get_color(
        &self,
        creds: Credentials<'_>,
        user_id: &str,
    ) -> Result<Option<String>, ApiError> {
        let path = format!("/chat/color?user_id={}", encode_component(user_id));
        let (body, _) = self.call(http::Method::GET, &path, creds).await?;
        let data: Data<ColorEntry> = parse_json(&body)?;
        Ok(data
            .data
            .into_iter()
            .next()
            .map(|c| c.color)
            .filter(|c| !c.is_empty()))
    }

    /// Sets the user's chat color (a named color or `#RRGGBB`). For a chat message read at
    /// `read_at`, the time from then to the request written goes into the reaction
    /// histogram of [`Helix::metrics`].
    pub async fn put_color(
        &self,
        creds: Credentials<'_>,
        user_id: &str,
        color: &str,
        read_at: Option<Instant>,
    ) -> Result<RateLimit, ApiError> {
        let path = format!(
            "/chat/color?user_id={}&color={}",
            encode_component(user_id),
            encode_component(color)
        );
        let sent = Cell::new(None);
        let result = self
            .call_noting(http::Method::PUT, &path, creds, Vec::new(), &sent)
            .await;
        if let (Some(read), Some(sent)) = (read_at, sent.get()) {
            self.metrics
                .observe_reaction(sent.saturating_duration_since(read));
        }
        result.map(|(_, rate)| rate)
    }

    /// The users with these logins (up to 100); logins with no account are left out.
    pub(crate) async fn get_users_by_login(
        &self,
        creds: Credentials<'_>,
        logins: &[String],
    ) -> Result<Vec<User>, ApiError> {
        let query: Vec<String> = logins
            .iter()
            .map(|l| format!("login={}", encode_component(l)))
            .collect();
        let path = format!("/users?{}", query.join("&"));
        let (body, _) = self.call(http::Method::GET, &path, creds).await?;
        let data: Data<User> = parse_json(&body)?;
        Ok(data.data)
    }

    /// Subscribes the WebSocket session to `channel.chat.message` v1 for the channel
    /// `broadcaster_id` as read by `user_id`; returns the subscription id.
    pub(crate) async fn subscribe_chat(
        &self,
        creds: Credentials<'_>,
        broadcaster_id: &str,
        user_id: &str,
        session_id: &str,
    ) -> Result<String, ApiError> {
        let body = serde_json::json!({
            "type": "channel.chat.message",
            "version": "1",
            "condition": {"broadcaster_user_id": broadcaster_id, "user_id": user_id},
            "transport": {"method": "websocket", "session_id": session_id},
        });
        let (body, _) = self
            .call_with(
                http::Method::POST,
                "/eventsub/subscriptions",
                creds,
                body.to_string().into_bytes(),
            )
            .await?;
        let data: Data<Subscription> = parse_json(&body)?;
        data.data
            .into_iter()
            .next()
            .map(|s| s.id)
            .ok_or_else(|| ApiError::BadBody("no subscription in the answer".into()))
    }

    /// Deletes the `channel.chat.message` subscription for `broadcaster_id` on the
    /// WebSocket session `session_id`: `id` when known, else found by listing them.
    pub(crate) async fn unsubscribe_chat(
        &self,
        creds: Credentials<'_>,
        broadcaster_id: &str,
        session_id: &str,
        id: Option<&str>,
    ) -> Result<(), ApiError> {
        let ids = match id {
            Some(id) => vec![id.to_owned()],
            None => {
                let path = format!(
                    "/eventsub/subscriptions?type=channel.chat.message&user_id={}",
                    encode_component(broadcaster_id)
                );
                let (body, _) = self.call(http::Method::GET, &path, creds).await?;
                let data: Data<serde_json::Value> = parse_json(&body)?;
                data.data
                    .iter()
                    .filter(|s| {
                        s["condition"]["broadcaster_user_id"] == broadcaster_id
                            && s["transport"]["session_id"] == session_id
                    })
                    .filter_map(|s| s["id"].as_str().map(str::to_owned))
                    .collect()
            }
        };
        for id in ids {
            let path = format!("/eventsub/subscriptions?id={}", encode_component(&id));
            self.call(http::Method::DELETE, &path, creds).await?;
        }
        Ok(())
    }

    async fn call(
        &self,
        method: http::Method,
        path: &str,
        creds: Credentials<'_>,
    ) -> Result<(Vec<u8>, RateLimit), ApiError> {
        self.call_with(method, path, creds, Vec::new()).await
    }

    /// A call with a JSON `body` (none when empty).
    async fn call_with(
        &self,
        method: http::Method,
        path: &str,
        creds: Credentials<'_>,
        body: Vec<u8>,
    ) -> Result<(Vec<u8>, RateLimit), ApiError> {
        self.call_noting(method, path, creds, body, &Cell::new(None))
            .await
    }

    /// [`Helix::call_with`], noting in `sent` when the request had been written.
    async fn call_noting(
        &self,
        method: http::Method,
        path: &str,
        creds: Credentials<'_>,
        body: Vec<u8>,
        sent: &Cell<Option<Instant>>,
    ) -> Result<(Vec<u8>, RateLimit), ApiError> {
        // the request is built once the turn has come: a thousand calls waiting for it hold
        // no request
        let turn = self.http.turn().await;
        let token = creds.token.expose();
        let token = token.strip_prefix("oauth:").unwrap_or(token);
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base_path, path))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(names::CLIENT_ID, creds.client_id);
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(body)
            .map_err(|_| ApiError::BadBody("invalid characters in client id or token".into()))?;
        let started = std::time::Instant::now();
        let response = self.http.send(turn, &self.endpoint, req).await;
        self.metrics.observe_helix(started.elapsed());
        let response = response.map_err(|error| ApiError::Http {
            peer: self.url(),
            error,
        })?;
        sent.set(response.extensions().get::<Sent>().map(|s| s.0));
        let rate = RateLimit::from_headers(response.headers());
        let status = response.status();
        let body = response.into_body();
        if status.is_success() {
            return Ok((body, rate));
        }
        Err(ApiError::Status {
            status: status.as_u16(),
            message: error_message(&body),
            rate,
        })
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadBody(e.to_string()))
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
