//! TLS over a byte stream with rustls's unbuffered API: the connection keeps no buffer
//! between reads. rustls's buffered connection holds a 4 KiB (and more) receive buffer for
//! as long as it lives, a fifth of a chat user's memory; here ciphertext is read into the
//! thread's record buffer (`readbuf`), only the bytes that came are copied out, and only a
//! partial record, a flight of the handshake, or plaintext the reader had no room for
//! outlives the read (each rare and small after the handshake). Records are decrypted in
//! place.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use rustls::ClientConfig;
use smol::io::{AsyncRead, AsyncWrite};

use crate::readbuf;

mod provider;

pub use provider::provider;

/// A TLS client stream over `S`.
pub(crate) struct TlsStream<S> {
    io: S,
    conn: UnbufferedClientConnection,
    /// Ciphertext read but not yet a whole record (or a handshake flight in progress).
    incoming: Vec<u8>,
    /// Ciphertext made but not yet written to the socket.
    outgoing: Vec<u8>,
    /// Plaintext decrypted that the reader had no room for.
    plaintext: Vec<u8>,
    /// Where in `plaintext` the reader is.
    taken: usize,
    /// The peer closed cleanly (close_notify).
    eof: bool,
    /// The socket ended without close_notify: every read from then on is `UnexpectedEof`.
    cut: bool,
    /// close_notify was queued.
    closing: bool,
}

/// Connects TLS over `io` to `name`; resolves once the handshake is done.
pub(crate) async fn connect<S>(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    io: S,
) -> io::Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = TlsStream::new(config, name, io)?;
    std::future::poll_fn(|cx| stream.poll_handshake(cx)).await?;
    Ok(stream)
}

/// rustls's error kept whole inside the `io::Error` (its text the same), so that what it means
/// can be read back: a certificate refused for the machine's time (`skew::Skew::of`).
fn invalid<E: std::error::Error + Send + Sync + 'static>(e: E) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// What processing the records at hand came to.
enum Progress {
    /// The handshake needs more bytes from the peer.
    Blocked,
    /// Application data may be sent; everything whole has been read.
    Open,
    /// The peer closed the connection cleanly.
    Closed,
}

/// What processing a run of records came to.
struct Records {
    progress: Progress,
    /// How many bytes of the records were used up; the rest is a partial record (or flight).
    used: usize,
    /// How many plaintext bytes went into `out`.
    written: usize,
}

/// Processes the records in `bytes`, decrypting in place: handshake messages answered (into
/// `outgoing`), application data copied into `out` as far as it fits and appended to
/// `plaintext` past that (so `out` comes first: it is empty unless `plaintext` is).
fn records(
    conn: &mut UnbufferedClientConnection,
    bytes: &mut [u8],
    out: &mut [u8],
    plaintext: &mut Vec<u8>,
    outgoing: &mut Vec<u8>,
) -> io::Result<Records> {
    debug_assert!(out.is_empty() || plaintext.is_empty(), "plaintext in order");
    let mut used = 0;
    let mut written = 0;
    let progress = loop {
        let status = conn.process_tls_records(&mut bytes[used..]);
        let discard = status.discard;
        let progress = match status.state.map_err(invalid)? {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let payload = record.map_err(invalid)?.payload;
                    let fits = payload.len().min(out.len() - written);
                    out[written..written + fits].copy_from_slice(&payload[..fits]);
                    written += fits;
                    plaintext.extend_from_slice(&payload[fits..]);
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                // asked with no room first, to learn the size
                if let Err(e) = encode.encode(&mut []) {
                    let EncodeError::InsufficientSize(InsufficientSizeError { required_size }) = e
                    else {
                        return Err(invalid(e));
                    };
                    let at = outgoing.len();
                    outgoing.resize(at + required_size, 0);
                    encode.encode(&mut outgoing[at..]).map_err(invalid)?;
                }
                None
            }
            // `outgoing` is written before anything else happens on the socket
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::BlockedHandshake => Some(Progress::Blocked),
            ConnectionState::WriteTraffic(_) => Some(Progress::Open),
            ConnectionState::PeerClosed | ConnectionState::Closed => Some(Progress::Closed),
            _ => Some(Progress::Open),
        };
        used += discard;
        if let Some(progress) = progress {
            break progress;
        }
    };
    Ok(Records {
        progress,
        used,
        written,
    })
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream<S> {
    /// A connection to `name` over `io`, its handshake not begun.
    fn new(config: Arc<ClientConfig>, name: ServerName<'static>, io: S) -> io::Result<Self> {
        Ok(TlsStream {
            io,
            conn: UnbufferedClientConnection::new(config, name).map_err(invalid)?,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plaintext: Vec::new(),
            taken: 0,
            eof: false,
            cut: false,
            closing: false,
        })
    }

    /// Processes the records in `incoming`: handshake messages answered (into `outgoing`),
    /// application data appended to `plaintext`. What is left of `incoming` is a partial
    /// record, or a partial handshake flight.
    fn process(&mut self) -> io::Result<Progress> {
        let Records { progress, used, .. } = records(
            &mut self.conn,
            &mut self.incoming,
            &mut [],
            &mut self.plaintext,
            &mut self.outgoing,
        )?;
        self.incoming.drain(..used);
        if self.incoming.is_empty() {
            self.incoming = Vec::new();
        } else {
            self.incoming.shrink_to_fit();
        }
        if matches!(progress, Progress::Closed) {
            self.eof = true;
        }
        Ok(progress)
    }

    /// Reads once from the socket and processes what came (`None` at the socket's end).
    /// With no partial record before it, the read is decrypted where it landed, in the
    /// thread's record buffer, and its plaintext goes straight into `out` as far as it fits:
    /// only a partial record and the plaintext `out` has no room for are kept. (Copying each
    /// read into `incoming` and each record's plaintext into `plaintext` first cost two
    /// allocations and two copies a read, 2026-12-07.)
    fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<Option<Records>>> {
        let TlsStream {
            io,
            conn,
            incoming,
            outgoing,
            plaintext,
            eof,
            ..
        } = self;
        let read = readbuf::RECORDS.poll_read(io, cx, |bytes| {
            if bytes.is_empty() {
                return Ok(None);
            }
            let done = if incoming.is_empty() {
                let done = records(conn, bytes, out, plaintext, outgoing)?;
                incoming.extend_from_slice(&bytes[done.used..]);
                done
            } else {
                incoming.extend_from_slice(bytes);
                let done = records(conn, incoming, out, plaintext, outgoing)?;
                incoming.drain(..done.used);
                if incoming.is_empty() {
                    *incoming = Vec::new();
                }
                done
            };
            if matches!(done.progress, Progress::Closed) {
                *eof = true;
            }
            Ok(Some(done))
        });
        read.map(|r| r.and_then(|r| r))
    }

    /// Writes `outgoing` to the socket until it is empty.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.outgoing))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.outgoing.drain(..n);
        }
        self.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut progress = self.process()?;
        loop {
            ready!(self.poll_send(cx))?;
            progress = match progress {
                Progress::Open => return Poll::Ready(Ok(())),
                Progress::Blocked => match ready!(self.poll_fill(cx, &mut []))? {
                    Some(done) => done.progress,
                    None => Progress::Closed,
                },
                Progress::Closed => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the peer closed during the TLS handshake",
                    )))
                }
            };
        }
    }

    /// Hands on as much of `plaintext` as fits in `buf`.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.plaintext.len() - self.taken);
        buf[..n].copy_from_slice(&self.plaintext[self.taken..self.taken + n]);
        self.taken += n;
        if self.taken == self.plaintext.len() {
            self.plaintext = Vec::new();
            self.taken = 0;
        }
        n
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if this.taken < this.plaintext.len() {
                return Poll::Ready(Ok(this.take_plaintext(buf)));
            }
            if this.eof {
                return Poll::Ready(Ok(0));
            }
            let done = match this.cut {
                true => None,
                false => ready!(this.poll_fill(cx, buf))?,
            };
            let Some(done) = done else {
                // the socket ended without close_notify: as rustls's own reader has it, an
                // unexpected end, not a clean one. The reader decides by its framing: an
                // HTTP answer or chat line already complete stands, a body that runs until
                // the close does not (an attacker can cut a TCP stream, not forge close_notify)
                this.cut = true;
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer ended the TLS connection without close_notify",
                )));
            };
            // answers to what came (a key update, an alert) go out now if the socket takes
            // them, else with the next write or flush; a socket that failed is an error
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            if done.written > 0 {
                return Poll::Ready(Ok(done.written));
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        // anything rustls still has to send (a key update's answer) goes first; a partial
        // record in `incoming` stays as it is
        this.process()?;
        ready!(this.poll_send(cx))?;
        let status = this.conn.process_tls_records(&mut []);
        let ConnectionState::WriteTraffic(mut traffic) = status.state.map_err(invalid)? else {
            return Poll::Ready(Err(io::Error::other(
                "the TLS connection cannot send data now",
            )));
        };
        let n = match traffic.encrypt(buf, &mut []) {
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                required_size
            }
            Ok(_) => 0,
            Err(e) => return Poll::Ready(Err(invalid(e))),
        };
        this.outgoing.resize(n, 0);
        let n = traffic.encrypt(buf, &mut this.outgoing).map_err(invalid)?;
        this.outgoing.truncate(n);
        // sent now if the socket takes it, else by the next write or flush; a socket that
        // failed is an error now, not at the next flush
        if let Poll::Ready(Err(e)) = this.poll_send(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            let status = this.conn.process_tls_records(&mut []);
            if let Ok(ConnectionState::WriteTraffic(mut traffic)) = status.state {
                let mut alert = vec![0; 64];
                if let Ok(n) = traffic.queue_close_notify(&mut alert) {
                    alert.truncate(n);
                    this.outgoing.extend_from_slice(&alert);
                }
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.io).poll_close(cx)
    }
}

#[cfg(all(test, feature = "demo"))]
mod tests {
    use super::*;
    use crate::transport::{duplex, Duplex};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    use smol::io::{AsyncReadExt, AsyncWriteExt};

    /// A client config trusting only `pem`.
    fn client_config(pem: &str) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
            .unwrap();
        let provider = super::provider();
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// A TLS server speaking `versions` on one end of a pipe running `serve`, and a client
    /// connected over the other end with `trust` (else the server's certificate) as its root.
    fn pair<F, Fut>(
        versions: &[&'static rustls::SupportedProtocolVersion],
        trust: Option<&str>,
        serve: F,
    ) -> (io::Result<TlsStream<Duplex>>, smol::Task<()>)
    where
        F: FnOnce(futures_rustls::server::TlsStream<Duplex>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let (acceptor, pem) =
            crate::fake::tls::tls_acceptor_for(&["irc.example"], versions).unwrap();
        let (client_end, server_end) = duplex(64 * 1024);
        let server = smol::spawn(async move {
            if let Ok(tls) = acceptor.accept(server_end).await {
                serve(tls).await;
            }
        });
        let name = ServerName::try_from("irc.example").unwrap();
        let config = client_config(trust.unwrap_or(&pem));
        let client = smol::block_on(connect(config, name, client_end));
        (client, server)
    }

    #[test]
    fn data_both_ways_and_nothing_kept_between_reads() {
        smol::block_on(async {
            // 40,000 bytes: three records, read through a buffer of 1,000
            let big: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
            let sent = big.clone();
            let (client, server) =
                pair(rustls::DEFAULT_VERSIONS, None, move |mut tls| async move {
                    let mut line = [0u8; 6];
                    tls.read_exact(&mut line).await.unwrap();
                    assert_eq!(&line, b"PING\r\n");
                    tls.write_all(&sent).await.unwrap();
                    tls.flush().await.unwrap();
                    tls.close().await.unwrap();
                });
            let mut client = client.unwrap();
            client.write_all(b"PING\r\n").await.unwrap();
            client.flush().await.unwrap();
            assert_eq!(client.outgoing.capacity(), 0, "written, then let go");
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                let n = client.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if client.plaintext.is_empty() {
                    // whole records handed on: no plaintext held (nor its memory)
                    assert_eq!(client.plaintext.capacity(), 0);
                }
            }
            assert_eq!(got, big, "every byte, in order, then the end");
            assert!(client.eof);
            assert_eq!(client.incoming.capacity(), 0);
            server.await;
        });
    }

    #[test]
    fn an_end_without_close_notify_is_unexpected_after_what_came() {
        smol::block_on(async {
            let (client, server) = pair(rustls::DEFAULT_VERSIONS, None, |mut tls| async move {
                tls.write_all(b"PING :tmi.twitch.tv\r\n").await.unwrap();
                tls.flush().await.unwrap();
                // dropped: the stream ends, no close_notify
            });
            let mut client = client.unwrap();
            server.await;
            let mut line = [0u8; 21];
            client.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"PING :tmi.twitch.tv\r\n", "what came is read first");
            for _ in 0..2 {
                let e = client.read(&mut line).await.unwrap_err();
                assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
            }
        });
    }

    #[test]
    fn a_write_to_a_peer_that_is_gone_fails_at_once() {
        smol::block_on(async {
            let (client, server) = pair(rustls::DEFAULT_VERSIONS, None, |_| async {});
            let mut client = client.unwrap();
            server.await; // the server's end is gone
            let e = client.write(b"PRIVMSG #chan :hello\r\n").await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::WriteZero, "{e}");
        });
    }

    #[test]
    fn a_tls_1_2_server_is_spoken_to_as_well() {
        smol::block_on(async {
            let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
            let (client, server) = pair(tls12, None, |mut tls| async move {
                let mut line = [0u8; 6];
                tls.read_exact(&mut line).await.unwrap();
                tls.write_all(b"PONG\r\n").await.unwrap();
                tls.flush().await.unwrap();
            });
            let mut client = client.unwrap();
            assert_eq!(
                client.conn.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_2)
            );
            client.write_all(b"PING\r\n").await.unwrap();
            client.flush().await.unwrap();
            let mut line = [0u8; 6];
            client.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"PONG\r\n");
            server.await;
        });
    }

    #[test]
    fn a_server_the_client_does_not_trust_is_an_error() {
        // another certificate for the same name, as a stranger's server would have
        let (_, stranger) = crate::fake::tls::tls_acceptor(&["irc.example"]).unwrap();
        let (client, server) = pair(rustls::DEFAULT_VERSIONS, Some(&stranger), |_| async {});
        let Err(e) = client else {
            panic!("a certificate from another root was taken");
        };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("certificate"), "{e}");
        smol::block_on(server);
    }

    /// A peer that has sent `sent` and then nothing more, and takes whatever is written.
    /// Unlike the pipe (piper yields at random, once in about a hundred polls), one poll of it
    /// always reads what is there: a test that polls once can rely on it.
    struct Stalled {
        sent: Vec<u8>,
    }

    impl AsyncRead for Stalled {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            if self.sent.is_empty() {
                return Poll::Pending;
            }
            let n = buf.len().min(self.sent.len());
            buf[..n].copy_from_slice(&self.sent[..n]);
            self.sent.drain(..n);
            Poll::Ready(Ok(n))
        }
    }

    impl AsyncWrite for Stalled {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_handshake_waiting_for_the_rest_of_a_flight_holds_only_what_came() {
        // the first bytes of a server's handshake record, and then nothing for a while
        let peer = Stalled {
            sent: vec![0x16, 0x03, 0x03, 0x00, 0x40, 0x02],
        };
        let (_, pem) = crate::fake::tls::tls_acceptor(&["irc.example"]).unwrap();
        let name = ServerName::try_from("irc.example").unwrap();
        let mut stream = TlsStream::new(client_config(&pem), name, peer).unwrap();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(stream.poll_handshake(&mut cx).is_pending());
        assert_eq!(stream.incoming, [0x16, 0x03, 0x03, 0x00, 0x40, 0x02]);
        assert!(
            stream.incoming.capacity() < 64,
            "a read's room is not kept while waiting: {}",
            stream.incoming.capacity()
        );
    }

    #[test]
    fn a_peer_that_hangs_up_during_the_handshake_is_an_end_not_a_hang() {
        let (client_end, server_end) = duplex(1024);
        drop(server_end);
        let (_, pem) = crate::fake::tls::tls_acceptor(&["irc.example"]).unwrap();
        let name = ServerName::try_from("irc.example").unwrap();
        let result = smol::block_on(connect(client_config(&pem), name, client_end));
        assert!(result.is_err());
    }
}
