//! What the driver performs for the cores, as futures: OAuth calls, config writes off the
//! executor thread, the device-code flow's requests, Helix calls, and connections; each with
//! an error that names its peer.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::Services;
use crate::chat::{ApiAnswer, ApiFailure, ApiRequest};
use crate::endpoint::Endpoint;
use crate::helix::{ApiError, Credentials};
use crate::oauth::AppCredentials;
use crate::secret::Secret;
use crate::tokens::{TokenAction, TokenAnswer};
use crate::transport::BoxStream;
use crate::usercore::Identity;

/// Performs a token action: an OAuth call, a config write (off the executor thread: the
/// write waits for the disk), or the device-code flow's requests. Each kind is boxed alone: a
/// validation does not take the device flow's room.
pub(super) fn token_op(
    services: &Arc<Services>,
    app: &AppCredentials,
    username: &str,
    action: TokenAction,
) -> Pin<Box<dyn Future<Output = TokenAnswer>>> {
    let services = services.clone();
    let (app, username) = (app.clone(), username.to_owned());
    match action {
        TokenAction::Validate(token) => {
            Box::pin(async move { TokenAnswer::Validated(services.oauth.validate(&token).await) })
        }
        TokenAction::Refresh(refresh) => {
            Box::pin(
                async move { TokenAnswer::Refreshed(services.oauth.refresh(&app, &refresh).await) },
            )
        }
        TokenAction::Save(pair) => {
            let file = services.config.clone();
            Box::pin(async move {
                let saved = smol::unblock(move || {
                    file.save_tokens(&username, &pair.access, &pair.refresh, pair.expires_at)
                })
                .await;
                TokenAnswer::Saved(saved)
            })
        }
        TokenAction::Authorize => {
            Box::pin(async move { TokenAnswer::Code(services.oauth.device_code(&app.id).await) })
        }
        TokenAction::PollCode(code) => {
            Box::pin(
                async move { TokenAnswer::Polled(services.oauth.poll_device(&app, &code).await) },
            )
        }
    }
}

/// Opens a connection to `endpoint`, with an error that names it.
/// Errors read for what they mean (no file descriptors, a clock that looks wrong) keep their
/// cause as it is, for the driver to read back.
pub(super) async fn open(services: &Services, endpoint: &Endpoint) -> io::Result<BoxStream> {
    services.transport.connect(endpoint).await.map_err(|e| {
        if crate::nofile::exhausted(&e) || crate::skew::Skew::of(&e).is_some() {
            return e;
        }
        io::Error::new(e.kind(), format!("cannot connect to {endpoint}: {e}"))
    })
}

pub(super) async fn look_up(
    services: &Services,
    client_id: &str,
    token: &Secret,
) -> Result<Identity, ApiError> {
    let creds = Credentials { token, client_id };
    let me = services.helix.get_user(creds).await?;
    let color = services.helix.get_color(creds, &me.id).await;
    Ok(Identity {
        id: me.id,
        login: me.login,
        color,
    })
}

pub(super) async fn put_color(
    services: &Services,
    client_id: &str,
    token: &Secret,
    user_id: &str,
    color: &str,
    read_at: Option<Instant>,
) -> Result<(), ApiError> {
    let creds = Credentials { token, client_id };
    let helix = &services.helix;
    helix
        .put_color(creds, user_id, color, read_at)
        .await
        .map(drop)
}

/// Performs a Helix call of an EventSub chat session; channel ids come from the process's
/// [`Directory`] when known there.
pub(super) async fn chat_api(
    services: &Services,
    client_id: &str,
    token: &Secret,
    request: ApiRequest,
) -> ApiAnswer {
    let creds = Credentials { token, client_id };
    let fail = |e: ApiError| match e {
        ApiError::Status {
            status,
            message,
            rate,
        } => ApiFailure {
            status: Some(status),
            message,
            refill_in: rate
                .reset_at()
                .map(|at| at.duration_since(services.clock.wall()).unwrap_or_default()),
        },
        e => ApiFailure {
            status: None,
            message: e.to_string(),
            refill_in: None,
        },
    };
    match request {
        ApiRequest::Resolve(logins) => {
            let directory = || services.channels.lock().unwrap_or_else(|p| p.into_inner());
            let (mut found, missing) = directory().known(services.clock.now(), logins);
            if !missing.is_empty() {
                match services.helix.get_users_by_login(creds, &missing).await {
                    Ok(users) => {
                        let mut directory = directory();
                        for user in users {
                            directory.learn(services.clock.now(), &user.login, &user.id);
                            found.push((user.login, user.id));
                        }
                    }
                    Err(e) => return ApiAnswer::Resolved(Err(fail(e))),
                }
            }
            ApiAnswer::Resolved(Ok(found))
        }
        ApiRequest::Subscribe {
            broadcaster_id,
            user_id,
            session_id,
        } => ApiAnswer::Subscribed(
            services
                .helix
                .subscribe_chat(creds, &broadcaster_id, &user_id, &session_id)
                .await
                .map_err(fail),
        ),
        ApiRequest::Unsubscribe {
            broadcaster_id,
            session_id,
            id,
        } => ApiAnswer::Unsubscribed(
            services
                .helix
                .unsubscribe_chat(creds, &broadcaster_id, &session_id, id.as_deref())
                .await
                .map_err(fail),
        ),
    }
}
