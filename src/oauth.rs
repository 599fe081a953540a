//! Twitch's OAuth endpoints (id.twitch.tv/oauth2): device-code grant, refresh, validate.

use std::sync::Arc;

use http::header;
use serde::Deserialize;

use crate::answer::ErrorKind;
pub use crate::answer::{DeviceCode, OAuthError, TokenSet, Validation, SCOPES};
use crate::endpoint::Endpoint;
use crate::http::{encode_component, HttpClient};
use crate::secret::Secret;

/// The credentials of the app a user's tokens belong to (`client_id`, `client_secret`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredentials {
    /// Client id.
    pub id: String,
    /// Client secret, empty for a public client.
    pub secret: Secret,
}

#[derive(Deserialize)]
struct DeviceBody {
    device_code: String,
    user_code: String,
    verification_uri: String,
    expires_in: u64,
    #[serde(default = "five")]
    interval: u64,
}

fn five() -> u64 {
    5
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    refresh_token: String,
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "scope_list")]
    scope: Vec<String>,
}

/// `scope` is documented as an array but one doc example shows a string.
fn scope_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scope {
        List(Vec<String>),
        One(String),
    }
    Ok(match Option::<Scope>::deserialize(d)? {
        Some(Scope::List(v)) => v,
        Some(Scope::One(s)) => s.split_whitespace().map(str::to_owned).collect(),
        None => Vec::new(),
    })
}

/// The OAuth service at a base URL (`https://id.twitch.tv/oauth2` unless overridden).
pub struct OAuth {
    http: Arc<HttpClient>,
    endpoint: Endpoint,
    base_path: String,
}

impl OAuth {
    /// OAuth at `endpoint` + `base_path`.
    pub fn new(http: Arc<HttpClient>, endpoint: Endpoint, base_path: String) -> OAuth {
        OAuth {
            http,
            endpoint,
            base_path,
        }
    }

    /// Starts the device-code flow.
    pub async fn device_code(&self, client_id: &str) -> Result<DeviceCode, OAuthError> {
        let form = form(&[("client_id", client_id), ("scopes", &SCOPES.join(" "))]);
        let (status, body) = self.post("/device", form).await?;
        if status != 200 {
            return Err(match ErrorKind::of_status(status) {
                // an unknown or malformed client id: only an edit of the config mends it
                ErrorKind::Invalid | ErrorKind::Forbidden => {
                    OAuthError::AppRefused(status, message(&body))
                }
                _ => refusal(status, &body),
            });
        }
        let b: DeviceBody = json(&body)?;
        Ok(DeviceCode {
            device_code: Secret::new(b.device_code),
            user_code: b.user_code,
            verification_uri: b.verification_uri,
            expires_in: b.expires_in,
            interval: b.interval.max(1),
        })
    }

    /// Polls once for the tokens of an approved device code.
    pub(crate) async fn poll_device(
        &self,
        app: &AppCredentials,
        device_code: &Secret,
    ) -> Result<TokenSet, OAuthError> {
        let scopes = SCOPES.join(" ");
        let mut fields = vec![
            ("client_id", app.id.as_str()),
            ("scopes", scopes.as_str()),
            ("device_code", device_code.expose()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ];
        if !app.secret.is_empty() {
            fields.push(("client_secret", app.secret.expose()));
        }
        let (status, body) = self.post("/token", form(&fields)).await?;
        if status == 200 {
            return token_set(&body);
        }
        let message = message(&body).to_ascii_lowercase();
        Err(if message.contains("authorization_pending") {
            OAuthError::Pending
        } else if message.contains("slow_down") {
            OAuthError::SlowDown
        } else if message.contains("invalid device code") || message.contains("expired") {
            OAuthError::Expired
        } else if message.contains("denied") {
            OAuthError::Denied
        } else {
            refusal(status, &body)
        })
    }

    /// Trades a refresh token for a new pair.
    pub async fn refresh(
        &self,
        app: &AppCredentials,
        refresh_token: &Secret,
    ) -> Result<TokenSet, OAuthError> {
        let mut fields = vec![
            ("client_id", app.id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ];
        if !app.secret.is_empty() {
            fields.push(("client_secret", app.secret.expose()));
        }
        let (status, body) = self.post("/token", form(&fields)).await?;
        if status == 200 {
            return token_set(&body);
        }
        let message = message(&body);
        match ErrorKind::of_status(status) {
            ErrorKind::Unauthorized => Err(OAuthError::InvalidToken(message)),
            ErrorKind::Invalid if message.eq_ignore_ascii_case("invalid refresh token") => {
                Err(OAuthError::InvalidToken(message))
            }
            ErrorKind::Invalid | ErrorKind::Forbidden => {
                Err(OAuthError::AppRefused(status, message))
            }
            _ => Err(refusal(status, &body)),
        }
    }

    /// Asks Twitch what it thinks of an access token.
    pub async fn validate(&self, access_token: &Secret) -> Result<Validation, OAuthError> {
        let token = access_token.expose();
        let token = token.strip_prefix("oauth:").unwrap_or(token);
        let (status, body) = self
            .send(|| {
                http::Request::get(format!("{}/validate", self.base_path))
                    .header(header::AUTHORIZATION, format!("OAuth {token}"))
                    .body(Vec::new())
                    .map_err(|_| {
                        OAuthError::BadBody(
                            "access token has characters not allowed in a header".into(),
                        )
                    })
            })
            .await?;
        match (status, ErrorKind::of_status(status)) {
            (200, _) => json(&body),
            (_, ErrorKind::Unauthorized) => Err(OAuthError::InvalidToken(message(&body))),
            _ => Err(refusal(status, &body)),
        }
    }

    async fn post(&self, path: &str, body: String) -> Result<(u16, Vec<u8>), OAuthError> {
        self.send(|| {
            http::Request::post(format!("{}{path}", self.base_path))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::ACCEPT, "application/json")
                .body(body.into_bytes())
                .map_err(|e| OAuthError::BadBody(e.to_string()))
        })
        .await
    }

    /// Waits for a turn of the HTTP client, then builds the request and sends it.
    async fn send(
        &self,
        build: impl FnOnce() -> Result<http::Request<Vec<u8>>, OAuthError>,
    ) -> Result<(u16, Vec<u8>), OAuthError> {
        let turn = self.http.turn().await;
        let req = build()?;
        let response = self
            .http
            .send(turn, &self.endpoint, req)
            .await
            .map(|(response, _)| response)
            .map_err(|error| OAuthError::Http {
                peer: self.endpoint.http_url(&self.base_path),
                error,
            })?;
        Ok((response.status().as_u16(), response.into_body()))
    }
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn json<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, OAuthError> {
    serde_json::from_slice(body).map_err(|e| OAuthError::BadBody(e.to_string()))
}

fn token_set(body: &[u8]) -> Result<TokenSet, OAuthError> {
    let b: TokenBody = json(body)?;
    if b.access_token.is_empty() || b.refresh_token.is_empty() {
        return Err(OAuthError::BadBody(
            "answer lacks access_token or refresh_token".into(),
        ));
    }
    Ok(TokenSet {
        access_token: Secret::new(b.access_token),
        refresh_token: Secret::new(b.refresh_token),
        expires_in: b.expires_in,
        scopes: b.scope,
    })
}

fn message(body: &[u8]) -> String {
    crate::answer::error_message(body)
}

/// An error status read by what it means ([`ErrorKind`], the one place statuses are
/// classified): Twitch's trouble (5xx) is not a refusal.
fn refusal(status: u16, body: &[u8]) -> OAuthError {
    match ErrorKind::of_status(status) {
        ErrorKind::Unavailable => OAuthError::Unavailable(status, message(body)),
        _ => OAuthError::Refused(status, message(body)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twitchs_trouble_is_not_a_refusal() {
        let body = br#"{"error":"Service Unavailable","status":503,"message":"upstream down"}"#;
        assert_eq!(
            refusal(503, body),
            OAuthError::Unavailable(503, "upstream down".into())
        );
        assert_eq!(
            refusal(400, br#"{"status":400,"message":"invalid client"}"#),
            OAuthError::Refused(400, "invalid client".into())
        );
    }

    #[test]
    fn parses_token_answers_with_array_or_string_scope() {
        let t = token_set(br#"{"access_token":"a","expires_in":14124,"refresh_token":"r","scope":["user:manage:chat_color"],"token_type":"bearer"}"#).unwrap();
        assert_eq!(t.expires_in, Some(14124));
        assert_eq!(t.scopes, ["user:manage:chat_color"]);
        let t = token_set(br#"{"access_token":"a","refresh_token":"r","scope":"chat:read user:manage:chat_color","token_type":"bearer"}"#).unwrap();
        assert_eq!(t.scopes, ["chat:read", "user:manage:chat_color"]);
        assert!(token_set(br#"{"access_token":"a"}"#).is_err());
        assert!(!format!("{t:?}").contains("\"a\""));
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(
            form(&[
                ("refresh_token", "a%b/c=d"),
                ("scopes", "chat:read user:manage:chat_color")
            ]),
            "refresh_token=a%25b%2Fc%3Dd&scopes=chat%3Aread%20user%3Amanage%3Achat_color"
        );
    }

    #[test]
    fn reads_twitch_error_messages() {
        assert_eq!(
            message(br#"{"status":400,"message":"authorization_pending"}"#),
            "authorization_pending"
        );
        assert_eq!(message(br#"{"error":"slow_down"}"#), "slow_down");
    }
}
