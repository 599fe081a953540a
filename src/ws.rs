//! The WebSocket client side of RFC 6455, free of I/O, for EventSub: the opening handshake
//! (request and `Sec-WebSocket-Accept` check), masked client frames, and a decoder of server
//! frames that reassembles fragmented messages, enforces the control-frame rules and caps
//! the message size. Bytes in, messages out; the driver moves the bytes.

use std::collections::VecDeque;
use std::fmt;

/// A message larger than this (after reassembly) closes the connection (EventSub's are small).
pub const MAX_MESSAGE: usize = 1 << 20;

/// The GUID RFC 6455 appends to the key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A complete message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message (UTF-8 checked).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping: answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// The server closes, with its status code and reason when given.
    Close(Option<(u16, String)>),
}

/// Why the server's bytes are not a WebSocket stream we accept.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WsError {
    /// Reserved bits set (no extension was negotiated).
    ReservedBits,
    /// An opcode RFC 6455 does not define.
    BadOpcode(u8),
    /// A server frame was masked.
    MaskedByServer,
    /// A control frame was fragmented or longer than 125 bytes.
    BadControlFrame,
    /// A continuation frame with no message to continue, or a new message inside one.
    BadFragmentation,
    /// A message over [`MAX_MESSAGE`].
    TooLarge,
    /// A text message that is not UTF-8.
    NotUtf8,
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::ReservedBits => f.write_str("WebSocket frame with reserved bits set"),
            WsError::BadOpcode(op) => write!(f, "WebSocket frame with unknown opcode {op:#x}"),
            WsError::MaskedByServer => f.write_str("masked WebSocket frame from the server"),
            WsError::BadControlFrame => {
                f.write_str("fragmented or over-long WebSocket control frame")
            }
            WsError::BadFragmentation => f.write_str("WebSocket fragments out of order"),
            WsError::TooLarge => write!(f, "WebSocket message over {MAX_MESSAGE} bytes"),
            WsError::NotUtf8 => f.write_str("WebSocket text message that is not UTF-8"),
        }
    }
}

impl std::error::Error for WsError {}

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Opcode {
    /// Continues a fragmented message.
    Continuation = 0x0,
    /// Text.
    Text = 0x1,
    /// Binary.
    Binary = 0x2,
    /// Close.
    Close = 0x8,
    /// Ping.
    Ping = 0x9,
    /// Pong.
    Pong = 0xA,
}

/// The opening handshake request for `path` on `host` (as in the `Host` header), with the
/// client's random 16-byte `key`.
pub(crate) fn handshake_request(host: &str, path: &str, key: &[u8; 16]) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\nUser-Agent: twitch-colorchanger\r\n\r\n",
        base64(key)
    )
}

/// The `Sec-WebSocket-Accept` value the server must answer to `key`.
pub(crate) fn accept_value(key: &[u8; 16]) -> String {
    accept_for(&base64(key))
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key` header as sent (base64).
pub fn accept_for(key_header: &str) -> String {
    let mut input = key_header.as_bytes().to_vec();
    input.extend_from_slice(GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64(digest.as_ref())
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(TABLE[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One client frame (FIN set), masked with `mask` as RFC 6455 requires of clients.
pub(crate) fn encode_frame(opcode: Opcode, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = head(0x80 | opcode as u8, 0x80, payload.len());
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A frame as a server sends it (unmasked), with `first` as its first byte (FIN, reserved
/// bits, opcode): for the fake Twitch and tests.
pub fn encode_unmasked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = head(first, 0, payload.len());
    frame.extend_from_slice(payload);
    frame
}

/// The first byte, then the mask bit and the payload length in its three forms.
fn head(first: u8, mask_bit: u8, len: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(len + 14);
    frame.push(first);
    match len {
        n @ 0..=125 => frame.push(mask_bit | n as u8),
        n @ 126..=0xFFFF => {
            frame.push(mask_bit | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(mask_bit | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame
}

/// A close frame with `code` and `reason` (cut to fit a control frame).
pub(crate) fn encode_close(code: u16, reason: &str, mask: [u8; 4]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(Opcode::Close, &payload, mask)
}

/// Decodes the server's frames into messages.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// The opcode and bytes of a fragmented message being reassembled.
    partial: Option<(Opcode, Vec<u8>)>,
    messages: VecDeque<Message>,
    failed: Option<WsError>,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds bytes read from the connection; complete messages come out of
    /// [`Decoder::poll_message`]. After an error, input is ignored and the error stays.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), WsError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.buf.extend_from_slice(bytes);
        loop {
            match self.frame() {
                Ok(true) => {}
                Ok(false) => return Ok(()),
                Err(e) => {
                    self.failed = Some(e.clone());
                    self.buf = Vec::new();
                    return Err(e);
                }
            }
        }
    }

    /// The next complete message.
    #[must_use]
    pub fn poll_message(&mut self) -> Option<Message> {
        crate::queue::pop(&mut self.messages)
    }

    /// Takes one frame off the buffer if it is complete; false if more bytes are needed.
    fn frame(&mut self) -> Result<bool, WsError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(false);
        }
        let fin = b[0] & 0x80 != 0;
        if b[0] & 0x70 != 0 {
            return Err(WsError::ReservedBits);
        }
        let opcode = match b[0] & 0x0F {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => return Err(WsError::BadOpcode(other)),
        };
        if b[1] & 0x80 != 0 {
            return Err(WsError::MaskedByServer);
        }
        let (len, head) = match b[1] & 0x7F {
            126 if b.len() < 4 => return Ok(false),
            126 => (u64::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() < 10 => return Ok(false),
            127 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            n => (u64::from(n), 2),
        };
        let control = matches!(opcode, Opcode::Close | Opcode::Ping | Opcode::Pong);
        if control && (!fin || len > 125) {
            return Err(WsError::BadControlFrame);
        }
        let already = self.partial.as_ref().map_or(0, |(_, p)| p.len());
        if len > (MAX_MESSAGE - already) as u64 {
            return Err(WsError::TooLarge);
        }
        let len = len as usize;
        if b.len() < head + len {
            return Ok(false);
        }
        let payload: Vec<u8> = self.buf[head..head + len].to_vec();
        self.buf.drain(..head + len);
        match opcode {
            Opcode::Ping => self.messages.push_back(Message::Ping(payload)),
            Opcode::Pong => self.messages.push_back(Message::Pong(payload)),
            Opcode::Close => self
                .messages
                .push_back(Message::Close(close_payload(&payload))),
            Opcode::Continuation => {
                let Some((first, mut data)) = self.partial.take() else {
                    return Err(WsError::BadFragmentation);
                };
                data.extend_from_slice(&payload);
                if fin {
                    self.messages.push_back(message(first, data)?);
                } else {
                    self.partial = Some((first, data));
                }
            }
            Opcode::Text | Opcode::Binary => {
                if self.partial.is_some() {
                    return Err(WsError::BadFragmentation);
                }
                if fin {
                    self.messages.push_back(message(opcode, payload)?);
                } else {
                    self.partial = Some((opcode, payload));
                }
            }
        }
        Ok(true)
    }
}

fn message(opcode: Opcode, data: Vec<u8>) -> Result<Message, WsError> {
    match opcode {
        Opcode::Text => String::from_utf8(data)
            .map(Message::Text)
            .map_err(|_| WsError::NotUtf8),
        _ => Ok(Message::Binary(data)),
    }
}

fn close_payload(payload: &[u8]) -> Option<(u16, String)> {
    let (code, reason) = payload.split_first_chunk::<2>()?;
    Some((
        u16::from_be_bytes(*code),
        String::from_utf8_lossy(reason).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        encode_unmasked(first, payload)
    }

    fn messages(d: &mut Decoder) -> Vec<Message> {
        std::iter::from_fn(|| d.poll_message()).collect()
    }

    #[test]
    fn the_accept_value_is_the_one_in_rfc_6455() {
        // RFC 6455 section 1.3: key "dGhlIHNhbXBsZSBub25jZQ==" ("the sample nonce")
        let key = *b"the sample nonce";
        assert_eq!(base64(&key), "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(accept_value(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let req = handshake_request("eventsub.wss.twitch.tv", "/ws", &key);
        assert!(req.starts_with("GET /ws HTTP/1.1\r\nHost: eventsub.wss.twitch.tv\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"));
        assert!(req.ends_with("\r\n\r\n"));
    }

    #[test]
    fn base64_pads_like_the_rfc_4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
    }

    #[test]
    fn client_frames_are_masked_with_the_right_lengths() {
        // RFC 6455 section 5.7: a masked "Hello"
        let frame = encode_frame(Opcode::Text, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            frame,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let mid = encode_frame(Opcode::Binary, &[0; 256], [1, 2, 3, 4]);
        assert_eq!(&mid[..4], [0x82, 0x80 | 126, 0x01, 0x00]);
        let big = encode_frame(Opcode::Binary, &vec![0; 70_000], [1, 2, 3, 4]);
        assert_eq!(&big[..2], [0x82, 0x80 | 127]);
        assert_eq!(big.len(), 2 + 8 + 4 + 70_000);
        let close = encode_close(1000, "bye", [0; 4]);
        assert_eq!(
            close,
            [0x88, 0x85, 0, 0, 0, 0, 0x03, 0xe8, b'b', b'y', b'e']
        );
    }

    #[test]
    fn decodes_split_frames_fragments_and_control_frames() {
        let mut d = Decoder::new();
        let mut bytes = server_frame(0x01, b"{\"metadata\":");
        bytes.extend(server_frame(0x89, b"ping!")); // a ping between fragments
        bytes.extend(server_frame(0x80, b"{}}"));
        bytes.extend(server_frame(0x81, &[b'x'; 300]));
        bytes.extend(server_frame(0x88, &[0x0f, 0xa4, b'b', b'y', b'e']));
        for piece in bytes.chunks(3) {
            d.feed(piece).unwrap();
        }
        assert_eq!(
            messages(&mut d),
            [
                Message::Ping(b"ping!".to_vec()),
                Message::Text("{\"metadata\":{}}".into()),
                Message::Text("x".repeat(300)),
                Message::Close(Some((4004, "bye".into()))),
            ]
        );
    }

    #[test]
    fn refuses_what_a_server_must_not_send() {
        let cases: [(Vec<u8>, WsError); 7] = [
            (server_frame(0xC1, b"x"), WsError::ReservedBits),
            (server_frame(0x83, b"x"), WsError::BadOpcode(3)),
            (vec![0x81, 0x81, 1, 2, 3, 4, 5], WsError::MaskedByServer),
            (server_frame(0x09, b"x"), WsError::BadControlFrame),
            (server_frame(0x89, &[0; 126]), WsError::BadControlFrame),
            (server_frame(0x80, b"x"), WsError::BadFragmentation),
            (server_frame(0x81, &[0xff, 0xfe]), WsError::NotUtf8),
        ];
        for (bytes, want) in cases {
            let mut d = Decoder::new();
            assert_eq!(d.feed(&bytes), Err(want.clone()), "{bytes:02x?}");
            assert_eq!(d.feed(b"more"), Err(want), "errors stick");
        }
        // a length over the cap is refused from the header, before the payload arrives
        let mut d = Decoder::new();
        let mut head = vec![0x82, 127];
        head.extend_from_slice(&(MAX_MESSAGE as u64 + 1).to_be_bytes());
        assert_eq!(d.feed(&head), Err(WsError::TooLarge));
        let mut d = Decoder::new();
        d.feed(&server_frame(0x02, &vec![0; MAX_MESSAGE - 10]))
            .unwrap();
        assert_eq!(
            d.feed(&server_frame(0x80, &[0; 11])),
            Err(WsError::TooLarge)
        );
    }
}
