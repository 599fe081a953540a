//! One read buffer per thread (and one for the TLS records under it), shared by every
//! connection the thread reads: a read hands its bytes on before the task yields, so no
//! connection needs a buffer of its own while it waits (16 KiB per chat connection and
//! 8 KiB per HTTP exchange before, most of a user's memory). Measured when it came
//! (5856a58, with the user's smaller future): 1,000 users 61 -> 27 MiB; the record buffer
//! (1adafc0): the CPU of 1,000 changes at once 130 -> 70-80 ms.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::LocalKey;

use smol::io::AsyncRead;

thread_local! {
    static PLAIN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    static CIPHER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer of each thread.
pub(crate) struct Buffer {
    key: &'static LocalKey<RefCell<Vec<u8>>>,
    size: usize,
}

/// For chat and HTTP bytes: one TLS record's plaintext.
pub(crate) static PLAINTEXT: Buffer = Buffer {
    key: &PLAIN,
    size: 16 * 1024,
};

/// For TLS records, read while a plaintext read is under way: one record at its largest
/// (16 KiB of data plus the record's header, padding and tag). A buffer made for each read
/// cost zeroing 18 KiB each time, a fifth of the bot's CPU.
pub(crate) static RECORDS: Buffer = Buffer {
    key: &CIPHER,
    size: 16 * 1024 + 2048 + 5,
};

impl Buffer {
    /// Polls a read of `stream` into this thread's buffer and hands the bytes read to `take`
    /// (an empty slice at the end of the stream) before returning what it made of them.
    /// `take` may change the bytes in place: TLS decrypts its records there.
    pub(crate) fn poll_read<S, T>(
        &self,
        stream: &mut S,
        cx: &mut Context<'_>,
        take: impl FnOnce(&mut [u8]) -> T,
    ) -> Poll<io::Result<T>>
    where
        S: AsyncRead + Unpin + ?Sized,
    {
        self.key.with(|cell| {
            // `take` never reads again, so the buffer is free; if it ever were not, a
            // buffer of this call's own does the same work
            let mut own = Vec::new();
            let mut shared = cell.try_borrow_mut().ok();
            let buf = shared.as_deref_mut().unwrap_or(&mut own);
            if buf.is_empty() {
                buf.resize(self.size, 0);
            }
            match Pin::new(stream).poll_read(cx, buf) {
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(take(&mut buf[..n]))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::Cursor;
    use std::task::Waker;

    #[test]
    fn hands_on_what_was_read_and_an_empty_slice_at_the_end() {
        let mut stream = Cursor::new(b"PING :tmi.twitch.tv\r\n".to_vec());
        let mut cx = Context::from_waker(Waker::noop());
        let got = PLAINTEXT.poll_read(&mut stream, &mut cx, |b| b.to_vec());
        assert!(matches!(got, Poll::Ready(Ok(ref b)) if b == b"PING :tmi.twitch.tv\r\n"));
        let end = PLAINTEXT.poll_read(&mut stream, &mut cx, |b| b.len());
        assert!(matches!(end, Poll::Ready(Ok(0))));
    }

    #[test]
    fn a_read_inside_another_gets_a_buffer_of_its_own() {
        let mut outer = Cursor::new(b"outer".to_vec());
        let mut inner = Cursor::new(b"inner".to_vec());
        let mut cx = Context::from_waker(Waker::noop());
        let got = PLAINTEXT.poll_read(&mut outer, &mut cx, |a| {
            let mut cx = Context::from_waker(Waker::noop());
            let b = PLAINTEXT.poll_read(&mut inner, &mut cx, |b| b.to_vec());
            (a.to_vec(), b)
        });
        let Poll::Ready(Ok((a, Poll::Ready(Ok(b))))) = got else {
            panic!("both reads complete");
        };
        assert_eq!((a, b), (b"outer".to_vec(), b"inner".to_vec()));
    }
}
