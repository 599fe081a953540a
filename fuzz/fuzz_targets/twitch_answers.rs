//! Helix and OAuth calls answered with arbitrary bytes (status line, headers, JSON body, or
//! garbage), over the in-memory transport: every call returns, never panics, and no error
//! text is longer than a log line may be.
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use smol::io::{AsyncReadExt, AsyncWriteExt};
use twitch_colorchanger::clock::{Clock, VirtualClock};
use twitch_colorchanger::helix::{Credentials, Helix};
use twitch_colorchanger::http::HttpClient;
use twitch_colorchanger::oauth::{AppCredentials, OAuth};
use twitch_colorchanger::secret::Secret;
use twitch_colorchanger::endpoint::Endpoint;
use twitch_colorchanger::transport::{MemoryTransport, Transport};

fuzz_target!(|data: &[u8]| {
    let Some((&which, answer)) = data.split_first() else {
        return;
    };
    let clock: Arc<dyn Clock> = Arc::new(VirtualClock::new());
    let (transport, accepted) = MemoryTransport::new();
    let transport: Arc<dyn Transport> = Arc::new(transport);
    let http = Arc::new(HttpClient::new(transport, clock, Duration::from_secs(15)));
    let ep = Endpoint {
        tls: true,
        host: "api".into(),
        port: 443,
    };
    let helix = Helix::new(http.clone(), ep.clone(), "/helix".into());
    let oauth = OAuth::new(http, ep, "/oauth2".into());
    let token = Secret::new("tok");
    let creds = Credentials {
        token: &token,
        client_id: "cid",
    };
    let app = AppCredentials {
        id: "cid".into(),
        secret: Secret::default(),
    };
    let answer = answer.to_vec();
    let server = async {
        let Ok((_, mut conn)) = accepted.recv().await else {
            return;
        };
        // read the request head, answer with the fuzz bytes, close
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let _ = conn.write_all(&answer).await;
        let _ = conn.close().await;
    };
    let call = async {
        let error = match which % 6 {
            0 => helix.get_user(creds).await.err().map(|e| e.to_string()),
            1 => helix.get_color(creds, "1").await.err().map(|e| e.to_string()),
            2 => helix.put_color(creds, "1", "red", None).await.err().map(|e| e.to_string()),
            3 => oauth.refresh(&app, &token).await.err().map(|e| e.to_string()),
            4 => oauth.validate(&token).await.err().map(|e| e.to_string()),
            _ => oauth.device_code("cid").await.err().map(|e| e.to_string()),
        };
        if let Some(e) = error {
            assert!(!e.contains('\u{1b}'), "raw escape in {e:?}");
        }
    };
    smol::block_on(smol::future::zip(server, call));
});
