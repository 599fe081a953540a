//! The optional HTTP listener (`http_listen` / `TWITCH_HTTP_LISTEN`, off by default): a
//! status page, `/status.json`, Prometheus `/metrics`, and `/livez` / `/readyz` probes.
//! Bounded: [`MAX_CONNECTIONS`] at once (more are closed at once), [`MAX_HEAD`] bytes of
//! request head, [`READ_TIMEOUT`] to send it, GET and HEAD only, one request per
//! connection. No authentication: keep it on loopback or behind a reverse proxy.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use async_net::{TcpListener, TcpStream};
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::clock::{timeout_at, Clock};
use crate::log;
use crate::metrics::Metrics;
use crate::status;
use crate::status::latest::Latest;

mod page;
mod prometheus;
mod request;

pub use request::{parse as parse_request, Method, Request, RequestError, Response, MAX_HEAD};

/// Connections served at once; more are closed as they come.
pub const MAX_CONNECTIONS: usize = 8;
/// From accepting a connection to a complete request head.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// For the answer to be taken.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    latest: Arc<Latest>,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
) {
    let connections = smol::LocalExecutor::new();
    let open = Rc::new(Cell::new(0usize));
    connections
        .run(async {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // out of file descriptors, say: wait instead of spinning
                        log!(Warn, None, None, "HTTP listener: cannot accept ({e})");
                        clock
                            .sleep_until(clock.now() + Duration::from_millis(500))
                            .await;
                        continue;
                    }
                };
                if open.get() >= MAX_CONNECTIONS {
                    log!(
                        Debug,
                        None,
                        None,
                        "HTTP listener: {peer} closed at once ({MAX_CONNECTIONS} connections open)"
                    );
                    drop(stream);
                    continue;
                }
                open.set(open.get() + 1);
                let open = open.clone();
                let (latest, metrics, clock) = (latest.clone(), metrics.clone(), clock.clone());
                connections
                    .spawn(async move {
                        handle(stream, &latest, &metrics, &*clock).await;
                        open.set(open.get() - 1);
                    })
                    .detach();
            }
        })
        .await
}

async fn handle(mut stream: TcpStream, latest: &Latest, metrics: &Metrics, clock: &dyn Clock) {
    let deadline = clock.now() + READ_TIMEOUT;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    let parsed = loop {
        match timeout_at(clock, deadline, stream.read(&mut chunk)).await {
            Some(Ok(0)) | Some(Err(_)) => return,
            Some(Ok(n)) => {
                buf.extend_from_slice(&chunk[..n]);
                match request::parse(&buf) {
                    Ok(Some(req)) => break Ok(req),
                    Ok(None) => continue,
                    Err(e) => break Err(Some(e)),
                }
            }
            None => break Err(None),
        }
    };
    let (response, head_only) = match parsed {
        Ok(req) => (
            answer(&req, latest, metrics, clock),
            req.method == Method::Head,
        ),
        Err(Some(RequestError::TooLarge)) => (Response::text(431, "request head too large"), false),
        Err(Some(e)) => (Response::text(400, &e.to_string()), false),
        Err(None) => (Response::text(408, "no complete request in time"), false),
    };
    let (head, body) = response.encode(head_only);
    let deadline = clock.now() + WRITE_TIMEOUT;
    let _ = timeout_at(clock, deadline, async {
        stream.write_all(&head).await?;
        stream.write_all(body).await?;
        stream.flush().await
    })
    .await;
}

/// The answer to a parsed request.
pub fn answer(req: &Request, latest: &Latest, metrics: &Metrics, clock: &dyn Clock) -> Response {
    if req.method == Method::Other {
        let mut r = Response::text(405, "only GET and HEAD");
        r.headers.push("Allow: GET, HEAD".into());
        return r;
    }
    let now = clock.wall();
    let doc = latest.doc();
    match req.path.as_str() {
        "/" => Response::new(
            200,
            "text/html; charset=utf-8",
            page::render(doc.as_deref(), &latest.prompts(), now),
        ),
        "/status.json" => match doc {
            Some(doc) => Response::new(200, "application/json", status_json(&doc)),
            None => Response::text(503, "starting"),
        },
        "/metrics" => Response::new(
            200,
            prometheus::CONTENT_TYPE,
            prometheus::render(&prometheus::Sample {
                doc: doc.as_deref(),
                helix: metrics.helix(),
                reaction: metrics.reaction(),
                resident_bytes: prometheus::resident_bytes(),
                now,
            }),
        ),
        "/livez" => Response::text(200, "ok"),
        "/readyz" => match doc.map(|d| status::health(&d, now, true)) {
            Some(Ok(summary)) => Response::text(200, &summary),
            Some(Err(why)) => Response::text(503, &why.0),
            None => Response::text(503, "starting"),
        },
        _ => Response::text(
            404,
            "not found; try /, /status.json, /metrics, /livez or /readyz",
        ),
    }
}

/// The document as `/status.json` shows it, in a buffer of its exact size: a thousand
/// users' document is a megabyte, and a buffer that grows by doubling holds half as much
/// again while it moves.
fn status_json(doc: &status::Document) -> Vec<u8> {
    let mut counted = Counted(0);
    let _ = doc.write_pretty(&mut counted);
    let mut text = Vec::with_capacity(counted.0);
    let _ = doc.write_pretty(&mut text);
    text
}

/// Counts what is written to it, bytes or text: the first of the two passes that render a
/// large body into a buffer of its exact size.
struct Counted(usize);

impl std::fmt::Write for Counted {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

impl std::io::Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_json_is_the_pretty_document_in_a_buffer_of_its_exact_size() {
        let doc = status::Document {
            clock: None,
            nofile: None,
            written_at: "2026-12-05T12:00:00Z".into(),
            pid: 7,
            config: "/config/twitch_colorchanger.conf".into(),
            users: Vec::new(),
        };
        let text = status_json(&doc);
        assert_eq!(text.capacity(), text.len());
        let expected = serde_json::to_string_pretty(&doc).unwrap() + "\n";
        assert_eq!(String::from_utf8(text).unwrap(), expected);
    }
}
