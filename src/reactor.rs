//! The bot's own reactor, on the bot's one thread. [`block_on`] runs the bot's future (its
//! executor and every user's task) and the reactor on the calling thread, so nothing on a
//! message's path is handed to another thread: no futex, no wake-up of a reactor thread.
//!
//! - One epoll, edge-triggered: a socket's interest is registered once, never re-armed.
//! - Readiness is kept per socket and direction: a read that found nothing (`EAGAIN`) or
//!   took less than it asked for clears it, and the next poll waits for epoll without a
//!   system call (a short read on a stream socket empties it; any byte that comes later
//!   raises a new edge).
//! - Timers are a list whose earliest entry is epoll's timeout: no timerfd, nothing to
//!   re-arm. A few per user; a scan of a few thousand costs microseconds, and a list is a
//!   fraction of a sorted map's code.
//! - Other threads (the blocking pool's file writes; async-io's thread, which still serves
//!   the signals, the config watcher, the status listener and connection set-up) wake it
//!   through an eventfd, written only while the reactor sleeps.
//!
//! Off this thread, or outside [`block_on`], `sleep_until` falls back to async-io's timer
//! and `adopt` leaves a stream with async-io.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::{epoll, eventfd, EventfdFlags, Timespec};
use rustix::fd::OwnedFd;
use smol::io::{AsyncRead, AsyncWrite};

thread_local! {
    static CURRENT: RefCell<Option<Rc<Reactor>>> = const { RefCell::new(None) };
}

/// The key of the eventfd in epoll's data.
const WAKE_KEY: u64 = u64::MAX;

/// One direction of a socket: whether it may be ready, and who waits for it.
#[derive(Default)]
struct Side {
    ready: bool,
    /// The peer closed it, or it failed: ready for good (a read finds the end at once, a
    /// write the error), whatever a short read said. A short read followed by the end of
    /// the stream would otherwise wait for an edge that never comes.
    closed: bool,
    waker: Option<Waker>,
}

#[derive(Default)]
struct Slot {
    read: Side,
    write: Side,
}

struct Reactor {
    /// Which reactor this is: a socket or a timer of an earlier one is nothing to this one.
    id: usize,
    epoll: OwnedFd,
    wake: Arc<Wakeup>,
    slots: RefCell<Vec<Option<Slot>>>,
    free: RefCell<Vec<usize>>,
    timers: RefCell<Vec<(Instant, u64, Waker)>>,
    next_timer: Cell<u64>,
    events: RefCell<Vec<epoll::Event>>,
    due: RefCell<Vec<Waker>>,
}

/// How another thread (or this one) wakes the thread in [`block_on`].
struct Wakeup {
    fd: OwnedFd,
    /// Polled again before sleeping: a wake from this thread costs no system call.
    woken: AtomicBool,
    /// The thread sleeps in epoll: a wake must write the eventfd.
    sleeping: AtomicBool,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::SeqCst) && self.sleeping.load(Ordering::SeqCst) {
            let _ = rustix::io::write(&self.fd, &1u64.to_ne_bytes());
        }
    }
}

impl Reactor {
    fn new() -> io::Result<Reactor> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        let fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        let flags = epoll::EventFlags::IN | epoll::EventFlags::ET;
        epoll::add(&epoll, &fd, epoll::EventData::new_u64(WAKE_KEY), flags)?;
        // usize, not u64: 32-bit MIPS has no 64-bit atomics
        static REACTORS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        Ok(Reactor {
            id: REACTORS.fetch_add(1, Ordering::Relaxed),
            epoll,
            wake: Arc::new(Wakeup {
                fd,
                woken: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
            }),
            slots: RefCell::default(),
            free: RefCell::default(),
            timers: RefCell::default(),
            next_timer: Cell::new(0),
            events: RefCell::new(Vec::with_capacity(64)),
            due: RefCell::default(),
        })
    }

    fn register(&self, tcp: &TcpStream) -> io::Result<usize> {
        let key = match self.free.borrow_mut().pop() {
            Some(key) => key,
            None => {
                let mut slots = self.slots.borrow_mut();
                slots.push(None);
                slots.len() - 1
            }
        };
        use epoll::EventFlags as F;
        let flags = F::IN | F::OUT | F::RDHUP | F::ET;
        if let Err(e) = epoll::add(
            &self.epoll,
            tcp,
            epoll::EventData::new_u64(key as u64),
            flags,
        ) {
            self.free.borrow_mut().push(key);
            return Err(e.into());
        }
        // ready until a read or write says otherwise
        let side = || Side {
            ready: true,
            closed: false,
            waker: None,
        };
        self.slots.borrow_mut()[key] = Some(Slot {
            read: side(),
            write: side(),
        });
        Ok(key)
    }

    /// The socket is closed with its slot (closing the descriptor leaves epoll too).
    fn deregister(&self, key: usize) {
        if let Some(slot) = self.slots.borrow_mut().get_mut(key) {
            *slot = None;
            self.free.borrow_mut().push(key);
        }
    }

    /// Whether side `write` of `key` may be ready; if not, `waker` waits for it.
    fn ready(&self, key: usize, write: bool, waker: &Waker) -> bool {
        let mut slots = self.slots.borrow_mut();
        let Some(Some(slot)) = slots.get_mut(key) else {
            return true; // let the system call say what is wrong
        };
        let side = if write {
            &mut slot.write
        } else {
            &mut slot.read
        };
        if side.ready {
            return true;
        }
        if !side.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            side.waker = Some(waker.clone());
        }
        false
    }

    /// Side `write` of `key` has nothing more for now: `waker` waits for its next edge.
    fn clear(&self, key: usize, write: bool, waker: &Waker) {
        if let Some(Some(slot)) = self.slots.borrow_mut().get_mut(key) {
            let side = if write {
                &mut slot.write
            } else {
                &mut slot.read
            };
            if side.closed {
                return;
            }
            side.ready = false;
            if !side.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                side.waker = Some(waker.clone());
            }
        }
    }

    fn add_timer(&self, at: Instant, waker: Waker) -> u64 {
        let id = self.next_timer.get();
        self.next_timer.set(id + 1);
        self.timers.borrow_mut().push((at, id, waker));
        id
    }

    fn update_timer(&self, id: u64, waker: &Waker) {
        let mut timers = self.timers.borrow_mut();
        if let Some((_, _, w)) = timers.iter_mut().find(|t| t.1 == id) {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }

    fn remove_timer(&self, id: u64) {
        let mut timers = self.timers.borrow_mut();
        if let Some(i) = timers.iter().position(|t| t.1 == id) {
            timers.swap_remove(i);
        }
    }

    /// Waits for readiness, a timer or a wake from another thread (`sleep`; else only
    /// gathers what is ready), and wakes who waits.
    fn react(&self, sleep: bool) -> io::Result<()> {
        let timeout = if sleep {
            let next = self.timers.borrow().iter().map(|t| t.0).min();
            // whole milliseconds, rounded up: epoll_wait counts in them
            next.map(|at| {
                let d = at.saturating_duration_since(Instant::now());
                let ms = d.as_nanos().div_ceil(1_000_000) as u64;
                Duration::from_millis(ms)
            })
        } else {
            Some(Duration::ZERO)
        };
        let timeout = timeout.map(|d| Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        let mut events = self.events.borrow_mut();
        events.clear();
        self.wake.sleeping.store(sleep, Ordering::SeqCst);
        let waited = epoll::wait(&self.epoll, spare_capacity(&mut events), timeout.as_ref());
        // awake: what is woken from here on needs no eventfd
        self.wake.sleeping.store(false, Ordering::SeqCst);
        match waited {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let mut due = self.due.borrow_mut();
        {
            let mut slots = self.slots.borrow_mut();
            for event in events.iter() {
                let key = event.data.u64();
                if key == WAKE_KEY {
                    let mut count = [0u8; 8];
                    let _ = rustix::io::read(&self.wake.fd, &mut count);
                    continue;
                }
                let Some(Some(slot)) = slots.get_mut(key as usize) else {
                    continue;
                };
                use epoll::EventFlags as F;
                let flags = event.flags;
                let closed = flags.intersects(F::HUP | F::ERR);
                if flags.intersects(F::IN | F::RDHUP | F::PRI) || closed {
                    slot.read.ready = true;
                    slot.read.closed |= closed || flags.contains(F::RDHUP);
                    due.extend(slot.read.waker.take());
                }
                if flags.contains(F::OUT) || closed {
                    slot.write.ready = true;
                    slot.write.closed |= closed;
                    due.extend(slot.write.waker.take());
                }
            }
        }
        {
            let now = Instant::now();
            let mut timers = self.timers.borrow_mut();
            let mut i = 0;
            while i < timers.len() {
                if timers[i].0 <= now {
                    due.push(timers.swap_remove(i).2);
                } else {
                    i += 1;
                }
            }
        }
        drop(events);
        let wakers = std::mem::take(&mut *due);
        drop(due);
        for waker in &wakers {
            waker.wake_by_ref();
        }
        // keep the room for next time
        let mut due = self.due.borrow_mut();
        if due.is_empty() {
            *due = wakers;
            due.clear();
        }
        Ok(())
    }
}

/// `f` on this thread's reactor, if it runs one.
fn with<R>(f: impl FnOnce(&Reactor) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_deref().map(f))
}

/// `f` on this thread's reactor if it is reactor `id`.
fn with_id<R>(id: usize, f: impl FnOnce(&Reactor) -> R) -> Option<R> {
    CURRENT.with(|c| c.borrow().as_deref().filter(|r| r.id == id).map(f))
}

/// Runs `future` to its end on this thread, with the bot's reactor: its sockets and timers
/// wake it here.
pub fn block_on<T>(future: impl Future<Output = T>) -> io::Result<T> {
    let reactor = Rc::new(Reactor::new()?);
    let previous = CURRENT.with(|c| c.replace(Some(reactor.clone())));
    struct Restore(Option<Rc<Reactor>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    let wake = reactor.wake.clone();
    let waker = Waker::from(wake.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    // runs in a row without asking epoll: a task that keeps waking others never starves I/O
    let mut runs = 0;
    loop {
        wake.woken.store(false, Ordering::SeqCst);
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Ok(out);
        }
        if wake.woken.load(Ordering::SeqCst) && runs < 16 {
            runs += 1; // woken while it ran (one task woke another): run again
            continue;
        }
        runs = 0;
        // sleeps unless woken meanwhile; a wake after this check finds `sleeping` set
        reactor.wake.sleeping.store(true, Ordering::SeqCst);
        let sleep = !wake.woken.load(Ordering::SeqCst);
        reactor.react(sleep)?;
    }
}

/// Whether this thread runs [`block_on`].
pub fn running() -> bool {
    CURRENT.with(|c| c.borrow().is_some())
}

/// A future that completes at `deadline`: a timer of this thread's reactor, or async-io's
/// outside [`block_on`].
pub(crate) fn sleep_until(deadline: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if running() {
        Box::pin(Sleep {
            deadline,
            id: None,
            waker: None,
        })
    } else {
        Box::pin(async move {
            smol::Timer::at(deadline).await;
        })
    }
}

/// A timer of the reactor of the thread that polls it first.
struct Sleep {
    deadline: Instant,
    /// The reactor and the timer's number in it, once polled.
    id: Option<(usize, u64)>,
    /// The waker the timer holds: a poll by the same task (the driver polls its timer at
    /// every wake) then needs no search of the reactor's list.
    waker: Option<Waker>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline;
        if Instant::now() >= deadline {
            if let Some((reactor, id)) = self.id.take() {
                with_id(reactor, |r| r.remove_timer(id));
            }
            return Poll::Ready(());
        }
        if self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        match self.id {
            Some((reactor, id)) => {
                with_id(reactor, |r| r.update_timer(id, cx.waker()));
            }
            // outside block_on it never fires (see sleep_until)
            None => self.id = with(|r| (r.id, r.add_timer(deadline, cx.waker().clone()))),
        }
        if self.id.is_some() {
            self.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some((reactor, id)) = self.id {
            with_id(reactor, |r| r.remove_timer(id));
        }
    }
}

/// A TCP stream of this thread's reactor (used on that thread only).
pub(crate) struct Socket {
    tcp: TcpStream,
    /// The reactor and the socket's slot in it.
    reactor: usize,
    key: usize,
}

/// `tcp` (connected) on this thread's reactor, or `None` outside [`block_on`].
pub(crate) fn adopt(tcp: TcpStream) -> Option<io::Result<Socket>> {
    with(|r| {
        tcp.set_nonblocking(true)?;
        let key = r.register(&tcp)?;
        Ok(Socket {
            tcp,
            reactor: r.id,
            key,
        })
    })
}

impl Drop for Socket {
    fn drop(&mut self) {
        with_id(self.reactor, |r| r.deregister(self.key));
    }
}

impl Socket {
    fn poll_io<T>(
        &mut self,
        write: bool,
        cx: &mut Context<'_>,
        len: usize,
        mut io: impl FnMut(&mut TcpStream) -> io::Result<T>,
        done: impl Fn(&T) -> usize,
    ) -> Poll<io::Result<T>> {
        let (reactor, key) = (self.reactor, self.key);
        let ready = with_id(reactor, |r| r.ready(key, write, cx.waker()));
        match ready {
            None => {
                return Poll::Ready(Err(io::Error::other(
                    "a socket polled off its reactor's thread",
                )))
            }
            Some(false) => return Poll::Pending,
            Some(true) => {}
        }
        match io(&mut self.tcp) {
            Ok(n) => {
                // less than asked for: the socket is empty (or full) for now
                let moved = done(&n);
                if moved > 0 && moved < len {
                    with_id(reactor, |r| r.clear(key, write, cx.waker()));
                }
                Poll::Ready(Ok(n))
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                with_id(reactor, |r| r.clear(key, write, cx.waker()));
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.get_mut()
            .poll_io(false, cx, len, |tcp| tcp.read(buf), |n| *n)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let len = buf.len();
        self.get_mut()
            .poll_io(true, cx, len, |tcp| tcp.write(buf), |n| *n)
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.tcp.shutdown(std::net::Shutdown::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use std::net::TcpListener;

    /// A connected pair on loopback: the reactor's end and a plain blocking one.
    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (theirs, _) = listener.accept().unwrap();
        (ours, theirs)
    }

    #[test]
    fn reads_what_comes_in_pieces_and_the_end_of_the_stream() {
        let (ours, mut theirs) = pair();
        block_on(async move {
            let mut socket = adopt(ours).unwrap().unwrap();
            let writer = std::thread::spawn(move || {
                theirs.write_all(b"PING :tmi.twitch.tv\r\n").unwrap();
                theirs.write_all(&[b'x'; 100_000]).unwrap();
            });
            let mut line = [0u8; 21];
            socket.read_exact(&mut line).await.unwrap();
            assert_eq!(&line, b"PING :tmi.twitch.tv\r\n");
            let mut rest = Vec::new();
            socket.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest.len(), 100_000);
            writer.join().unwrap();
        })
        .unwrap();
    }

    #[test]
    fn the_end_of_the_stream_is_read_at_once_after_a_short_read() {
        let (ours, mut theirs) = pair();
        theirs.write_all(b"PING\r\n").unwrap();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        // the peer's close has reached our end (bounded wait on that event)
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&ours, PollFlags::RDHUP)];
        let bound = Timespec {
            tv_sec: 10,
            tv_nsec: 0,
        };
        assert_eq!(poll(&mut fds, Some(&bound)).unwrap(), 1);
        block_on(async move {
            let mut socket = adopt(ours).unwrap().unwrap();
            // the data's and the close's edges are taken before anything is read
            with(|r| r.react(false)).unwrap().unwrap();
            let mut buf = [0u8; 64];
            assert_eq!(socket.read(&mut buf).await.unwrap(), 6, "a short read");
            // no edge is left to come: the end must be there without one
            let end = smol::future::poll_once(socket.read(&mut buf)).await;
            assert!(matches!(end, Some(Ok(0))), "{end:?}");
        })
        .unwrap();
    }

    #[test]
    fn a_write_larger_than_the_socket_takes_goes_out_as_the_peer_reads() {
        let (ours, mut theirs) = pair();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got.len()
        });
        block_on(async move {
            let mut socket = adopt(ours).unwrap().unwrap();
            socket.write_all(&vec![7u8; 4 << 20]).await.unwrap();
            socket.close().await.unwrap();
        })
        .unwrap();
        assert_eq!(reader.join().unwrap(), 4 << 20);
    }

    #[test]
    fn timers_fire_in_order_and_not_before_their_time() {
        let order = block_on(async {
            let start = Instant::now();
            let late = sleep_until(start + Duration::from_millis(30));
            let early = sleep_until(start + Duration::from_millis(10));
            let first = smol::future::or(
                async {
                    late.await;
                    "late"
                },
                async {
                    early.await;
                    "early"
                },
            )
            .await;
            (first, start.elapsed())
        })
        .unwrap();
        assert_eq!(order.0, "early");
        assert!(order.1 >= Duration::from_millis(10), "{:?}", order.1);
    }

    #[test]
    fn another_thread_wakes_it_from_its_sleep() {
        let (tx, rx) = async_channel::bounded(1);
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20)); // so that the reactor sleeps first
            tx.send_blocking(42).unwrap();
        });
        let got = block_on(async { rx.recv().await.unwrap() }).unwrap();
        assert_eq!(got, 42);
        sender.join().unwrap();
    }

    #[test]
    fn off_the_reactor_a_stream_stays_with_async_io_and_a_timer_with_its_timer() {
        let (ours, _theirs) = pair();
        assert!(!running());
        assert!(adopt(ours).is_none());
        smol::block_on(sleep_until(Instant::now() + Duration::from_millis(1)));
    }
}
