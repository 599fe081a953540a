//! The fake's OAuth grants (tests only): device codes, and token refresh with rotation.

use super::request::Request;
use super::{FakeDevice, Inner, State};

/// `POST /oauth2/device` and `POST /oauth2/token` (device code and refresh grants).
pub(super) fn grant(inner: &Inner, op: &str, req: &Request) -> (u16, String) {
    let bad = |message: &str| {
        (
            400,
            serde_json::json!({"status": 400, "message": message}).to_string(),
        )
    };
    let client_id = req.field("client_id").unwrap_or("").to_owned();
    let mut state = inner.lock();
    let client = state.clients.iter().find(|c| c.id == client_id).cloned();
    if client.is_none() && !state.clients.is_empty() {
        return bad("invalid client");
    }
    let wants_secret = client.as_ref().and_then(|c| c.secret.clone());
    if op == "token" && req.field("grant_type") == Some("refresh_token") {
        if let Some(scripted) = state.token_script.pop_front() {
            return scripted;
        }
    }
    let result = match (op, req.field("grant_type")) {
        ("device", _) => {
            state.serial += 1;
            let n = state.serial;
            let user_code = format!("{:08}", n * 7919 % 100_000_000)
                .chars()
                .map(|c| (b'A' + c.to_digit(10).unwrap_or(0) as u8) as char)
                .collect::<String>();
            state.devices.push(FakeDevice {
                device_code: format!("devicecode{n:030}"),
                user_code: user_code.clone(),
                client_id,
                approved: None,
                denied: false,
                spent: false,
            });
            (
                200,
                serde_json::json!({"device_code": format!("devicecode{n:030}"), "expires_in": 1800, "interval": 1,
                    "user_code": user_code, "verification_uri": format!("https://www.twitch.tv/activate?public=true&device-code={user_code}")})
                .to_string(),
            )
        }
        ("token", Some("urn:ietf:params:oauth:grant-type:device_code")) => {
            let code = req.field("device_code").unwrap_or("");
            match state
                .devices
                .iter()
                .position(|d| d.device_code == code && !d.spent)
            {
                None => bad("invalid device code"),
                Some(i) if state.devices[i].denied => {
                    state.devices[i].spent = true;
                    bad("access_denied")
                }
                Some(i) => match state.devices[i].approved.clone() {
                    None => bad("authorization_pending"),
                    Some(login) => {
                        state.devices[i].spent = true;
                        match state.users.iter().position(|u| u.login == login) {
                            Some(u) => token_answer(&mut state, u, &client_id),
                            None => bad("no such user in the fake"),
                        }
                    }
                },
            }
        }
        ("token", Some("refresh_token")) => {
            if wants_secret.is_some() && req.field("client_secret") != wants_secret.as_deref() {
                return (
                    403,
                    r#"{"status":403,"message":"invalid client secret"}"#.into(),
                );
            }
            let given = req.field("refresh_token").unwrap_or("");
            let issued_to = state
                .refresh_owner
                .get(given)
                .filter(|_| state.lenient_refresh);
            let owner = state.users.iter().position(|u| {
                !given.is_empty() && (u.refresh == given || issued_to == Some(&u.login))
            });
            match owner {
                Some(u) => token_answer(&mut state, u, &client_id),
                None => (
                    400,
                    r#"{"error":"Bad Request","status":400,"message":"Invalid refresh token"}"#
                        .into(),
                ),
            }
        }
        _ => bad("unsupported"),
    };
    drop(state);
    inner.changed.notify_all();
    result
}

fn token_answer(state: &mut State, user: usize, client_id: &str) -> (u16, String) {
    let (access, refresh) = state.issue(user, client_id);
    let scopes = state.users[user].scopes.clone();
    (
        200,
        serde_json::json!({"access_token": access, "expires_in": state.token_lifetime,
            "refresh_token": refresh, "scope": scopes, "token_type": "bearer"})
        .to_string(),
    )
}

impl State {
    /// Issues a new pair to the user at `index` for `client_id`: the old access and refresh
    /// tokens stop working.
    fn issue(&mut self, index: usize, client_id: &str) -> (String, String) {
        self.serial += 1;
        let access = format!("access{:024}", self.serial);
        let refresh = format!("refresh{:043}", self.serial);
        let user = &mut self.users[index];
        user.token = access.clone();
        user.refresh = refresh.clone();
        user.expired = false;
        user.client_id = client_id.to_owned();
        self.refresh_owner
            .insert(refresh.clone(), user.login.clone());
        self.issued.push((access.clone(), refresh.clone()));
        (access, refresh)
    }
}
