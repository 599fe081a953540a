//! The fake's OAuth: validation here; device codes, token refresh and rotation in
//! [`super::grant`] (tests only).

use super::request::Request;
use super::Inner;

pub(super) fn oauth(inner: &Inner, op: &str, req: &Request) -> (u16, String) {
    if op == "validate" {
        let token = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("OAuth "))
            .unwrap_or("");
        let state = inner.lock();
        return match state.user_by_token(token) {
            Some(u) => (
                200,
                serde_json::json!({"client_id": u.client_id,
                    "login": u.login, "scopes": u.scopes, "user_id": u.id, "expires_in": state.token_lifetime})
                .to_string(),
            ),
            None => (401, r#"{"status":401,"message":"invalid access token"}"#.into()),
        };
    }
    #[cfg(feature = "fake-twitch")]
    return super::grant::grant(inner, op, req);
    #[cfg(not(feature = "fake-twitch"))]
    (
        400,
        r#"{"status":400,"message":"the demo's look-alike grants no tokens"}"#.into(),
    )
}
