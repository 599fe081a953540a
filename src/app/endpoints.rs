//! Where Twitch is: the endpoints and trust settings from `TWITCH_*` environment
//! variables, with Twitch's real endpoints as defaults.

use std::path::PathBuf;

use super::StartError;
use crate::chat::Protocol;
use crate::endpoint::{self, Endpoint, Url};

/// Default chat endpoint.
pub const DEFAULT_IRC_URL: &str = "tls://irc.chat.twitch.tv:6697";

/// Default Helix base URL.
pub const DEFAULT_API_URL: &str = "https://api.twitch.tv/helix";

/// Default OAuth base URL.
pub const DEFAULT_AUTH_URL: &str = "https://id.twitch.tv/oauth2";

/// Default EventSub WebSocket URL.
pub const DEFAULT_EVENTSUB_URL: &str = "wss://eventsub.wss.twitch.tv/ws";

/// Endpoints and trust settings, from `TWITCH_*` environment variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Chat.
    pub irc: Endpoint,
    /// Helix host and base path.
    pub api: Url,
    /// OAuth host and base path.
    pub auth: Url,
    /// EventSub WebSocket host and request target.
    pub eventsub: Url,
    /// The chat transport of users whose entry does not say (`TWITCH_CHAT_TRANSPORT`).
    pub chat_transport: Protocol,
    /// A PEM bundle trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
}

impl Endpoints {
    /// Reads `TWITCH_IRC_URL`, `TWITCH_API_URL`, `TWITCH_AUTH_URL`, `TWITCH_EVENTSUB_URL`,
    /// `TWITCH_CA_FILE` and `TWITCH_CHAT_TRANSPORT` through `var`, with Twitch's real
    /// endpoints and IRC as defaults.
    pub fn from_env(var: &dyn Fn(&str) -> Option<String>) -> Result<Endpoints, StartError> {
        // each variable names the schemes it takes, so that a wrong one is told what fits
        let get = |name: &'static str, default: &str, schemes: [&str; 2], form: &str| {
            let value = var(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned());
            let scheme = value.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !scheme.is_some_and(|s| schemes.contains(&s.as_str())) {
                return Err(StartError::Env(name, format!("{value:?}: expected {form}")));
            }
            endpoint::parse_url(&value).map_err(|e| StartError::Env(name, e.to_string()))
        };
        let irc_form =
            "tls://host:port (or tcp://host:port for a local test server), without a path";
        let http_form = "https://host[:port]/path (or http:// for a local test server)";
        let Url {
            endpoint: irc,
            path,
        } = get("TWITCH_IRC_URL", DEFAULT_IRC_URL, ["tls", "tcp"], irc_form)?;
        if !path.is_empty() {
            return Err(StartError::Env(
                "TWITCH_IRC_URL",
                format!("expected {irc_form}"),
            ));
        }
        let eventsub_url = var("TWITCH_EVENTSUB_URL")
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| DEFAULT_EVENTSUB_URL.to_owned());
        let eventsub = endpoint::parse_ws_url(&eventsub_url).map_err(|e| {
            StartError::Env(
                "TWITCH_EVENTSUB_URL",
                format!(
                    "{}; expected wss://host[:port]/path (or ws:// for a local test server)",
                    e
                ),
            )
        })?;
        let chat_transport = match var("TWITCH_CHAT_TRANSPORT").filter(|v| !v.trim().is_empty()) {
            None => Protocol::Irc,
            Some(value) => Protocol::parse(&value).ok_or_else(|| {
                StartError::Env(
                    "TWITCH_CHAT_TRANSPORT",
                    format!("{value:?}: expected irc or eventsub"),
                )
            })?,
        };
        Ok(Endpoints {
            eventsub,
            chat_transport,
            irc,
            api: get(
                "TWITCH_API_URL",
                DEFAULT_API_URL,
                ["https", "http"],
                http_form,
            )?,
            auth: get(
                "TWITCH_AUTH_URL",
                DEFAULT_AUTH_URL,
                ["https", "http"],
                http_form,
            )?,
            ca_file: var("TWITCH_CA_FILE")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(vars: &[(&str, &str)]) -> Result<Endpoints, String> {
        Endpoints::from_env(&|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn each_url_variable_says_which_schemes_it_takes() {
        assert!(endpoints(&[]).is_ok());
        assert_eq!(
            endpoints(&[("TWITCH_API_URL", "ftp://x")]).unwrap_err(),
            "environment variable TWITCH_API_URL: \"ftp://x\": expected https://host[:port]/path (or http:// for a local test server)"
        );
        assert_eq!(
            endpoints(&[("TWITCH_IRC_URL", "http://x")]).unwrap_err(),
            "environment variable TWITCH_IRC_URL: \"http://x\": expected tls://host:port (or tcp://host:port for a local test server), without a path"
        );
        assert!(endpoints(&[("TWITCH_AUTH_URL", "tls://x:1")])
            .unwrap_err()
            .contains("expected https://"));
        assert!(endpoints(&[("TWITCH_IRC_URL", "tls://x:1/path")])
            .unwrap_err()
            .contains("without a path"));
        assert!(endpoints(&[("TWITCH_IRC_URL", "tcp://127.0.0.1:6667")]).is_ok());
    }
}
