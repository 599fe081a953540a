//! The Helix calls the bot makes: who am I (and who are these logins), what is my color, set
//! my color, and EventSub's subscribe and unsubscribe. What their errors mean is in
//! [`crate::answer`].

use std::cell::Cell;
use std::sync::Arc;
use std::time::Instant;

use http::header;
use serde::Deserialize;

use crate::answer::error_message;
pub use crate::answer::{ApiError, ErrorKind, RateLimit};
use crate::endpoint::Endpoint;
use crate::http::{encode_component, names, HttpClient, Sent};
use crate::metrics::Metrics;
use crate::secret::Secret;

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
            .uri(format!("{}{path}", self.base_path))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(names::CLIENT_ID, creds.client_id);
        if !body.is_empty() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(body)
            .map_err(|_| ApiError::BadBody("invalid characters in client id or token".into()))?;
        let started = self.http.now();
        let response = self.http.send(turn, &self.endpoint, req).await;
        self.metrics
            .observe_helix(self.http.now().saturating_duration_since(started));
        let response = response.map_err(|error| ApiError::Http {
            peer: self.url(),
            error,
        })?;
        let (response, Sent(written)) = response;
        sent.set(Some(written));
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
