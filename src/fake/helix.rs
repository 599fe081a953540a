//! The fake's Helix: users, chat color.

use super::request::{error, Request};
use super::Inner;
use crate::color;

pub(super) fn helix(inner: &Inner, req: &Request) -> (u16, String) {
    let bearer = req
        .header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .unwrap_or("");
    if req.header("client-id").is_none_or(str::is_empty) {
        return error(401, "Unauthorized", "Client-Id header is missing");
    }
    let Some(user) = inner.lock().user_by_token(bearer).cloned() else {
        return error(401, "Unauthorized", "Invalid OAuth token");
    };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/helix/users") if req.query("login").is_some() => {
            let mut state = inner.lock();
            let data: Vec<_> = req
                .queries("login")
                .into_iter()
                .filter_map(|login| {
                    let login = login.to_ascii_lowercase();
                    state.channel_id(&login).map(|id| user_json(&id, &login))
                })
                .collect();
            (200, serde_json::json!({ "data": data }).to_string())
        }
        #[cfg(feature = "fake-twitch")]
        (_, "/helix/eventsub/subscriptions") => super::eventsub::subscriptions(inner, req, &user),
        ("GET", "/helix/users") => (
            200,
            serde_json::json!({ "data": [user_json(&user.id, &user.login)] }).to_string(),
        ),
        ("GET", "/helix/chat/color") => {
            let id = req.query("user_id").unwrap_or("");
            let state = inner.lock();
            let data: Vec<_> = state
                .users
                .iter()
                .filter(|u| u.id == id)
                .map(|u| serde_json::json!({"user_id": u.id, "user_login": u.login, "user_name": u.login, "color": u.color.clone().unwrap_or_default()}))
                .collect();
            (200, serde_json::json!({ "data": data }).to_string())
        }
        ("PUT", "/helix/chat/color") => {
            let user_id = req.query("user_id").unwrap_or("").to_owned();
            let color = req.query("color").unwrap_or("").to_owned();
            let scripted = inner.update(|s| s.put_script.pop_front());
            let (status, body) = match scripted {
                Some(answer) => answer,
                None if user_id != user.id => error(
                    401,
                    "Unauthorized",
                    "The ID in user_id must match the user ID found in the request's OAuth token.",
                ),
                None => {
                    let named = color::NAMED
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(&color));
                    match named {
                        Some((_, hex)) => set_color(inner, &user.id, hex),
                        None if color::is_hex(&color) && user.prime => {
                            set_color(inner, &user.id, &color.to_ascii_uppercase())
                        }
                        None if color::is_hex(&color) => error(
                            400,
                            "Bad Request",
                            "Hex color code is only available to Turbo or Prime users",
                        ),
                        None => error(400, "Bad Request", "invalid color"),
                    }
                }
            };
            (status, body)
        }
        _ => error(404, "Not Found", "no such endpoint in the fake"),
    }
}

/// A user as `GET /helix/users` describes it.
fn user_json(id: &str, login: &str) -> serde_json::Value {
    serde_json::json!({"id": id, "login": login, "display_name": login, "type": "",
        "broadcaster_type": "", "description": "", "profile_image_url": "",
        "offline_image_url": "", "view_count": 0, "created_at": "2016-12-14T20:32:28Z"})
}

fn set_color(inner: &Inner, user_id: &str, hex: &str) -> (u16, String) {
    inner.update(|s| {
        if let Some(u) = s.users.iter_mut().find(|u| u.id == user_id) {
            u.color = Some(hex.to_owned());
        }
    });
    (204, String::new())
}
