//! The async HTTP/1.1 client: one request at a time per connection, idle connections pooled
//! per endpoint and shared by all users.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use smol::future;
use smol::io::AsyncWriteExt;
use smol::lock::{Semaphore, SemaphoreGuard};

use super::wire::{encode_request, HttpError, ResponseParser};
use crate::clock::Clock;
use crate::endpoint::Endpoint;
use crate::readbuf;
use crate::transport::{BoxStream, Transport};

/// Exchanges in flight at once, all endpoints together; the others wait their turn. A
/// thousand users starting at once would otherwise hold a thousand TLS connections and
/// their buffers together (most of the peak memory). 16 made a 1,000-user start four times
/// slower against the fake; 64 costs no more memory than 16 and starts as fast as no cap.
const MAX_EXCHANGES: usize = 64;

/// Idle connections kept per endpoint for the next exchange.
const MAX_IDLE_PER_ENDPOINT: usize = MAX_EXCHANGES;

/// An exchange under way, boxed (see [`HttpClient::send`]).
pub type Exchange<'a> = Pin<Box<dyn Future<Output = Result<Answer, HttpError>> + 'a>>;

/// A response, and when its request had been written (for the reaction time). Beside the
/// response, not in its extensions: the `http` crate's type map cost 2 KB of binary.
pub type Answer = (http::Response<Vec<u8>>, Sent);

/// One of the 64 turns (`MAX_EXCHANGES`), held until the exchange ends.
pub struct Turn<'a> {
    _held: SemaphoreGuard<'a>,
}

/// When a request had been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent(pub Instant);

/// Sends requests with keep-alive reuse, a deadline for the whole exchange, and one retry
/// on a fresh connection when a pooled one turns out to have been closed by the server.
pub struct HttpClient {
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    idle: Mutex<HashMap<Endpoint, Vec<BoxStream>>>,
    timeout: Duration,
    exchanges: Semaphore,
}

impl HttpClient {
    /// A client whose exchanges (connect included) each take at most `timeout`.
    pub fn new(
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        timeout: Duration,
    ) -> HttpClient {
        HttpClient {
            transport,
            clock,
            idle: Mutex::new(HashMap::new()),
            timeout,
            exchanges: Semaphore::new(MAX_EXCHANGES),
        }
    }

    /// The client's clock's now (the one its deadlines run on).
    pub(crate) fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Waits for a turn to exchange: at most 64 are held at once, all
    /// endpoints together. Build the request once it has come: a thousand color changes
    /// waiting for a turn then hold about 200 bytes each instead of a built request and a
    /// 1.4 KB future (3b43eb2: 1,000 users' peak memory 20.1 -> 19.0 MiB on IRC, 25.0 ->
    /// 23.4 on EventSub).
    pub async fn turn(&self) -> Turn<'_> {
        Turn {
            _held: self.exchanges.acquire().await,
        }
    }

    /// Sends `req` (its URI holds path and query only) to `endpoint` in `turn`. The
    /// exchange's state (a kilobyte) is boxed here, once the turn has come: a thousand
    /// color changes waiting for their turn hold neither a request nor that state.
    pub fn send<'a>(
        &'a self,
        turn: Turn<'a>,
        endpoint: &'a Endpoint,
        req: http::Request<Vec<u8>>,
    ) -> Exchange<'a> {
        let bytes = encode_request(&req, &host_header(endpoint));
        let head = req.method() == http::Method::HEAD;
        drop(req);
        Box::pin(async move {
            let _turn = turn;
            // one deadline for the whole exchange
            let deadline = self.clock.now() + self.timeout;
            let exchange = self.send_now(endpoint, &bytes, head);
            let answer = crate::clock::timeout_at(&*self.clock, deadline, exchange).await;
            answer.unwrap_or(Err(HttpError::Timeout))
        })
    }

    async fn send_now(
        &self,
        endpoint: &Endpoint,
        bytes: &[u8],
        head: bool,
    ) -> Result<Answer, HttpError> {
        if let Some(conn) = self.take_idle(endpoint) {
            match self.exchange(conn, bytes, head).await {
                Ok((response, conn)) => {
                    self.put_idle(endpoint, conn);
                    return Ok(response);
                }
                // The server had closed the idle connection: try once on a fresh one.
                Err((_, false)) => {}
                Err((e, true)) => return Err(e),
            }
        }
        let conn = self
            .transport
            .connect(endpoint)
            .await
            .map_err(|e| HttpError::connect(&e))?;
        let (response, conn) = self.exchange(conn, bytes, head).await.map_err(|(e, _)| e)?;
        self.put_idle(endpoint, conn);
        Ok(response)
    }

    /// One request/response on `conn`. The error carries whether any response byte arrived.
    async fn exchange(
        &self,
        mut conn: BoxStream,
        request: &[u8],
        head: bool,
    ) -> Result<(Answer, Option<BoxStream>), (HttpError, bool)> {
        let io = |e: std::io::Error| (HttpError::io(&e), false);
        conn.write_all(request).await.map_err(io)?;
        conn.flush().await.map_err(io)?;
        let sent = Sent(self.clock.now());

        let mut parser = ResponseParser::new(head);
        loop {
            // the bytes go to the parser straight from the thread's read buffer (`None`:
            // the end of the stream)
            let got_bytes = !parser.is_empty();
            let fed = future::poll_fn(|cx| {
                readbuf::PLAINTEXT.poll_read(&mut conn, cx, |bytes| {
                    (!bytes.is_empty()).then(|| parser.feed(bytes))
                })
            })
            .await
            .map_err(|e| (HttpError::io(&e), got_bytes))?;
            let Some(fed) = fed else {
                let parsed = parser.finish().map_err(|e| (e, got_bytes))?;
                return Ok(((parsed.response, sent), None));
            };
            if let Some(parsed) = fed.map_err(|e| (e, true))? {
                let keep = parsed.keep_alive.then_some(conn);
                return Ok(((parsed.response, sent), keep));
            }
        }
    }

    fn take_idle(&self, endpoint: &Endpoint) -> Option<BoxStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.get_mut(endpoint).and_then(Vec::pop)
    }

    fn put_idle(&self, endpoint: &Endpoint, conn: Option<BoxStream>) {
        let Some(conn) = conn else { return };
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(endpoint.clone()).or_default();
        if list.len() < MAX_IDLE_PER_ENDPOINT {
            list.push(conn);
        }
    }
}

fn host_header(endpoint: &Endpoint) -> String {
    let host = endpoint.url_host();
    let default_port = if endpoint.tls { 443 } else { 80 };
    if endpoint.port == default_port {
        host
    } else {
        format!("{host}:{}", endpoint.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use crate::transport::{Duplex, MemoryTransport};
    use smol::io::AsyncReadExt;

    fn endpoint() -> Endpoint {
        Endpoint {
            tls: true,
            host: "api.example".into(),
            port: 443,
        }
    }

    /// A client with a 5 s timeout on `clock`, over memory, and the server ends it dials.
    fn client(clock: &VirtualClock) -> (HttpClient, async_channel::Receiver<(Endpoint, Duplex)>) {
        let (transport, accepted) = MemoryTransport::new();
        let client = HttpClient::new(
            Arc::new(transport),
            Arc::new(clock.clone()),
            Duration::from_secs(5),
        );
        (client, accepted)
    }

    fn get() -> http::Request<Vec<u8>> {
        http::Request::get("/helix/users").body(Vec::new()).unwrap()
    }

    /// A turn, then the request.
    async fn send(
        client: &HttpClient,
        endpoint: &Endpoint,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let turn = client.turn().await;
        client
            .send(turn, endpoint, req)
            .await
            .map(|(response, _)| response)
    }

    async fn read_request(conn: &mut Duplex) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\n") {
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before a full request");
            got.extend_from_slice(&buf[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[test]
    fn reuses_a_kept_alive_connection() {
        smol::block_on(async {
            let (client, accepted) = client(&VirtualClock::new());
            let server = async {
                let (_, mut conn) = accepted.recv().await.unwrap();
                for _ in 0..2 {
                    let req = read_request(&mut conn).await;
                    assert!(req.starts_with("GET /helix/users HTTP/1.1\r\nHost: api.example\r\n"));
                    conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await
                        .unwrap();
                }
                conn
            };
            let requests = async {
                let a = send(&client, &endpoint(), get()).await.unwrap();
                let b = send(&client, &endpoint(), get()).await.unwrap();
                (a, b)
            };
            let (_conn, (a, b)) = smol::future::zip(server, requests).await;
            assert_eq!(
                (a.body().as_slice(), b.body().as_slice()),
                (&b"ok"[..], &b"ok"[..])
            );
            assert!(
                accepted.is_empty(),
                "second request opened a new connection"
            );
        });
    }

    #[test]
    fn retries_once_on_a_fresh_connection_after_the_server_closed_the_idle_one() {
        smol::block_on(async {
            let (client, accepted) = client(&VirtualClock::new());
            let first = async {
                let (_, mut conn) = accepted.recv().await.unwrap();
                read_request(&mut conn).await;
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
                    .await
                    .unwrap();
                conn // kept until the client is done, then dropped below
            };
            let (conn, r1) = smol::future::zip(first, send(&client, &endpoint(), get())).await;
            assert_eq!(r1.unwrap().body(), b"1");
            drop(conn); // the server closes the idle connection

            let second = async {
                let (_, mut conn) = accepted.recv().await.unwrap();
                read_request(&mut conn).await;
                conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
                    .await
                    .unwrap();
                conn
            };
            let (_conn, r2) = smol::future::zip(second, send(&client, &endpoint(), get())).await;
            assert_eq!(r2.unwrap().body(), b"2");
        });
    }

    #[test]
    fn a_silent_server_times_out_on_the_virtual_clock() {
        smol::block_on(async {
            let clock = VirtualClock::new();
            let (client, accepted) = client(&clock);
            let server = async {
                let (_, mut conn) = accepted.recv().await.unwrap();
                read_request(&mut conn).await;
                // answer nothing; move time past the deadline instead
                clock.advance(Duration::from_secs(5));
                conn
            };
            let (_conn, result) =
                smol::future::zip(server, send(&client, &endpoint(), get())).await;
            assert_eq!(result.unwrap_err(), HttpError::Timeout);
        });
    }

    #[test]
    fn at_most_max_exchanges_are_in_flight_and_the_next_starts_when_one_ends() {
        let (client, accepted) = client(&VirtualClock::new());
        let ep = endpoint();
        let ex = smol::LocalExecutor::new();
        let sends: Vec<_> = (0..MAX_EXCHANGES + 4)
            .map(|_| ex.spawn(send(&client, &ep, get())))
            .collect();
        smol::block_on(async {
            ex.run(async {
                let mut conns = Vec::new();
                while conns.len() < MAX_EXCHANGES {
                    let (_, mut conn) = accepted.recv().await.unwrap();
                    read_request(&mut conn).await;
                    conns.push(conn);
                }
                for _ in 0..100 {
                    smol::future::yield_now().await;
                }
                assert!(accepted.is_empty(), "one exchange too many started");
                // one answered: its connection takes the next request
                conns[0]
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await
                    .unwrap();
                read_request(&mut conns[0]).await;
                assert!(accepted.is_empty());
            })
            .await;
        });
        drop(sends);
    }

    #[test]
    fn host_header_names_non_default_ports() {
        let mut ep = endpoint();
        assert_eq!(host_header(&ep), "api.example");
        ep.port = 8443;
        assert_eq!(host_header(&ep), "api.example:8443");
        ep.host = "::1".into();
        assert_eq!(host_header(&ep), "[::1]:8443");
    }

    /// A close-delimited answer (no length, no chunks) over real TCP and TLS from the fake's
    /// TLS server, which then ends the connection cleanly (close_notify) or just drops it.
    #[cfg(feature = "demo")]
    fn close_delimited(clean: bool) -> Result<http::Response<Vec<u8>>, HttpError> {
        use smol::io::AsyncWriteExt;
        let (acceptor, pem) = crate::fake::tls::tls_acceptor(&["127.0.0.1"]).unwrap();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tmp/tcc-http-cut");
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join(format!("ca-{clean}.pem"));
        std::fs::write(&ca, pem).unwrap();
        let tls = crate::transport::tls_config(Some(&ca)).unwrap();
        let client = HttpClient::new(
            Arc::new(crate::transport::NetTransport::new(
                tls,
                Arc::new(crate::clock::SystemClock),
            )),
            Arc::new(crate::clock::SystemClock),
            Duration::from_secs(10),
        );
        smol::block_on(async {
            let listener = async_net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = listener.local_addr().unwrap().port();
            let server = smol::spawn(async move {
                let (tcp, _) = listener.accept().await.unwrap();
                let mut tls = acceptor.accept(tcp).await.unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap() == 1 {
                    head.push(byte[0]);
                }
                tls.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"data\":[]}")
                    .await
                    .unwrap();
                tls.flush().await.unwrap();
                if clean {
                    tls.close().await.unwrap(); // close_notify, then the end
                }
                // else dropped: the TCP stream ends with no close_notify
            });
            let endpoint = Endpoint {
                tls: true,
                host: "127.0.0.1".into(),
                port,
            };
            let answer = send(&client, &endpoint, get()).await;
            server.await;
            answer
        })
    }

    #[test]
    #[cfg(feature = "demo")]
    fn a_body_until_the_close_stands_only_with_close_notify() {
        let answer = close_delimited(true).expect("a clean end completes the body");
        assert_eq!(answer.body(), b"{\"data\":[]}");
        // cut without close_notify: anyone on the path can end a TCP stream, so the body may
        // be cut short, and is not taken
        match close_delimited(false) {
            Err(HttpError::Io(kind, why)) => {
                assert_eq!(kind, std::io::ErrorKind::UnexpectedEof);
                assert!(why.contains("without close_notify"), "{why}");
            }
            other => panic!("a cut body was taken: {other:?}"),
        }
    }
}
