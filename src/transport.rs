//! The `Transport` seam: open a byte stream to an endpoint, over TCP (+TLS) or in memory.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use smol::io::{AsyncRead, AsyncWrite};

use crate::clock::{timeout_at, Clock};
use crate::endpoint::Endpoint;
use crate::log;
use crate::skew::{Skew, Watch};

/// A bidirectional byte stream.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A boxed byte stream as the drivers use it.
pub(crate) type BoxStream = Box<dyn Stream>;

/// A boxed future returning a connected stream.
pub(crate) type ConnectFuture<'a> =
    Pin<Box<dyn Future<Output = io::Result<BoxStream>> + Send + 'a>>;

/// Opens byte streams. The real one dials TCP and wraps TLS; tests use [`MemoryTransport`].
pub trait Transport: Send + Sync + 'static {
    /// Connects to `endpoint`, including the TLS handshake when it asks for TLS.
    fn connect<'a>(&'a self, endpoint: &'a Endpoint) -> ConnectFuture<'a>;
}

/// Why the TLS client settings could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsError {
    /// The extra CA bundle is unusable: its path and what is wrong with it.
    CaBundle(std::path::PathBuf, String),
    /// rustls refused the settings.
    Setup(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::CaBundle(path, problem) => write!(f, "{}: {problem}", path.display()),
            TlsError::Setup(e) => write!(f, "TLS setup: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The TLS client settings: the built-in web PKI roots plus, optionally, a PEM bundle.
pub fn tls_config(
    extra_ca_file: Option<&std::path::Path>,
) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra_ca_file {
        let bad = |problem: String| TlsError::CaBundle(path.to_owned(), problem);
        // read whole as text (PEM is ASCII), as the config is: the reader over a file cost
        // 0.3 KB more in the binary, a second way of reading a whole file 0.6 KB
        let pem = std::fs::read_to_string(path)
            .map_err(|e| bad(format!("cannot read CA bundle: {e}")))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| bad(format!("invalid PEM: {e}")))?;
        if certs.is_empty() {
            return Err(bad("no certificate in CA bundle".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("unusable CA certificate: {e}")))?;
        }
    }
    let provider = crate::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// TCP through async-net, TLS through rustls (its unbuffered API, in `tls.rs`), with connect
/// and handshake timeouts.
pub struct NetTransport {
    tls: Arc<rustls::ClientConfig>,
    clock: Arc<dyn Clock>,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    /// Certificates refused for this machine's time, said once and shown until one checks out.
    skew: Arc<Watch>,
}

impl NetTransport {
    /// A transport using `tls` for TLS endpoints.
    pub fn new(tls: rustls::ClientConfig, clock: Arc<dyn Clock>) -> NetTransport {
        NetTransport {
            tls: Arc::new(tls),
            clock,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            skew: Arc::default(),
        }
    }

    /// What the handshakes found out about this machine's clock (for `status` and the page).
    pub fn clock_watch(&self) -> Arc<Watch> {
        self.skew.clone()
    }

    async fn dial(&self, endpoint: &Endpoint) -> io::Result<BoxStream> {
        let deadline = self.clock.now() + self.connect_timeout;
        let tcp = timeout_at(
            &*self.clock,
            deadline,
            async_net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .ok_or_else(|| timed_out("TCP connect"))??;
        tcp.set_nodelay(true)?;
        let tcp = on_this_thread(tcp)?;
        if !endpoint.tls {
            return Ok(tcp);
        }
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "invalid TLS server name"))?;
        let deadline = self.clock.now() + self.handshake_timeout;
        let handshake = crate::tls::connect(self.tls.clone(), name, tcp);
        let tls = match timeout_at(&*self.clock, deadline, handshake).await {
            None => return Err(timed_out("TLS handshake")),
            Some(Ok(tls)) => tls,
            Some(Err(e)) => return Err(self.handshake_failed(endpoint, e)),
        };
        if self.skew.checked_out() {
            log!(
                Info,
                None,
                None,
                "{endpoint}'s certificate checks out: this machine's clock is right now"
            );
        }
        Ok(Box::new(tls))
    }

    /// A certificate refused for this machine's time is said once at WARN, with the times in
    /// UTC, and returned as a short error the retries can log quietly; any other error as is.
    fn handshake_failed(&self, endpoint: &Endpoint, e: io::Error) -> io::Error {
        let Some(skew) = Skew::of(&e) else {
            return e;
        };
        if self.skew.failed(skew) {
            log!(
                Warn,
                None,
                None,
                "{skew} ({endpoint}). A device without a real-time clock starts in the past until NTP sets it: check its time (date -u) and its time sync; the bot connects as soon as the certificate checks out, retrying meanwhile"
            );
        }
        skew.into_error()
    }
}

/// `tcp` on the reactor of this thread when it runs the bot's ([`crate::reactor`]): its
/// reads and writes then wake no other thread. Elsewhere (tests, the fake) it stays with
/// async-io.
fn on_this_thread(tcp: async_net::TcpStream) -> io::Result<BoxStream> {
    if !crate::reactor::running() {
        return Ok(Box::new(tcp));
    }
    let shared: Arc<smol::Async<std::net::TcpStream>> = tcp.into();
    let tcp = Arc::try_unwrap(shared)
        .map_err(|_| io::Error::other("the connection is shared"))?
        .into_inner()?;
    match crate::reactor::adopt(tcp) {
        Some(socket) => Ok(Box::new(socket?)),
        None => Err(io::Error::other("no reactor on this thread")),
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

impl Transport for NetTransport {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint) -> ConnectFuture<'a> {
        Box::pin(self.dial(endpoint))
    }
}

/// One end of an in-memory duplex pipe.
pub struct Duplex {
    reader: piper::Reader,
    writer: piper::Writer,
}

/// Two connected in-memory stream ends.
pub(crate) fn duplex(capacity: usize) -> (Duplex, Duplex) {
    let (r1, w1) = piper::pipe(capacity);
    let (r2, w2) = piper::pipe(capacity);
    (
        Duplex {
            reader: r1,
            writer: w2,
        },
        Duplex {
            reader: r2,
            writer: w1,
        },
    )
}

impl AsyncRead for Duplex {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl AsyncWrite for Duplex {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }
    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_close(cx)
    }
}

/// A transport whose connections are in-memory pipes; the test gets the server ends.
pub struct MemoryTransport {
    accepted: async_channel::Sender<(Endpoint, Duplex)>,
    capacity: usize,
}

impl MemoryTransport {
    /// The transport and the receiver of the server end of each connection it opens.
    pub fn new() -> (MemoryTransport, async_channel::Receiver<(Endpoint, Duplex)>) {
        MemoryTransport::with_capacity(64 * 1024)
    }

    /// As [`MemoryTransport::new`], with pipes that hold `capacity` bytes each way: a peer
    /// that stops reading stalls the bot's writes once that much is unread.
    pub fn with_capacity(
        capacity: usize,
    ) -> (MemoryTransport, async_channel::Receiver<(Endpoint, Duplex)>) {
        let (tx, rx) = async_channel::unbounded();
        let transport = MemoryTransport {
            accepted: tx,
            capacity,
        };
        (transport, rx)
    }
}

impl Transport for MemoryTransport {
    fn connect<'a>(&'a self, endpoint: &'a Endpoint) -> ConnectFuture<'a> {
        Box::pin(async move {
            let (client, server) = duplex(self.capacity);
            self.accepted
                .send((endpoint.clone(), server))
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::ConnectionRefused, "no listener"))?;
            Ok(Box::new(client) as BoxStream)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::tls_config;

    #[test]
    fn a_ca_bundle_that_cannot_be_used_is_named_with_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("tcc-ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = |name: &str, text: Option<&str>| {
            let path = dir.join(name);
            if let Some(text) = text {
                std::fs::write(&path, text).unwrap();
            }
            let shown = path.display().to_string();
            let e = tls_config(Some(&path)).unwrap_err().to_string();
            e.strip_prefix(&format!("{shown}: "))
                .unwrap_or(&e)
                .to_owned()
        };
        let missing = error("missing.pem", None);
        assert!(missing.starts_with("cannot read CA bundle: "), "{missing}");
        let none = error("none.pem", Some("not a certificate\n"));
        assert_eq!(none, "no certificate in CA bundle");
        let bad = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let bad = error("bad.pem", Some(bad));
        assert!(bad.starts_with("invalid PEM: "), "{bad}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
