//! One timer for the deadlines of every HTTP exchange in flight.
//!
//! Each async-io timer made writes the reactor's eventfd and wakes its thread, and an
//! exchange is over in about a millisecond while its deadline is seconds away. One timer per
//! exchange was about 2.5 of the 23 system calls of a color change (strace -c over 200). So
//! an exchange registers its deadline here, and one task ([`Deadlines::watch`]) sleeps until
//! the earliest. Its timer is made again only when it fired or a sooner deadline came: about
//! one timer per timeout period while exchanges come and go, none while idle. Where no
//! watcher runs (a client in a unit test, or after the watcher ended), each exchange falls
//! back to a timer of its own.
//!
//! Measured again (2026-12-07, 96cc168, one IRC user, 1,000 messages 20 ms apart, twice
//! each): 19.0-21.1 system calls per color change with the watcher, 21.4-21.9 with a timer
//! per exchange (0.5 more `write`s, and as many more `read`s, `epoll_pwait`s and
//! `timerfd_settime`s); CPU 299-313 against 314-319 ms (task-clock); 0.8 KB of binary. It
//! stays while async-io's reactor is what it is: a reactor of the bot's own thread, which the
//! message-path issue calls for, makes a timer cost no notifier write, and this file with it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::clock::{Clock, Sleep};

/// The deadlines of the exchanges in flight, and the watcher's state.
#[derive(Default)]
pub(crate) struct Deadlines {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Exchanges waiting: deadline, id, waker (at most the client's exchanges in flight, so a
    /// list; a BTreeMap cost 10 KB of binary).
    waiting: Vec<(Instant, u64, Waker)>,
    /// A watcher runs (see [`Deadlines::watch`]).
    watching: bool,
    /// When the watcher's timer fires, if it has one.
    armed: Option<Instant>,
    /// The watcher's waker, and whether an exchange asked it to look again.
    watcher: Option<Waker>,
    kicked: bool,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Deadlines {
    /// Completes when `clock` reaches `deadline`.
    pub(crate) fn expiry<'a>(&'a self, clock: &'a dyn Clock, deadline: Instant) -> Expiry<'a> {
        Expiry {
            deadlines: self,
            clock,
            deadline,
            id: None,
            own: None,
        }
    }

    /// Wakes each exchange whose deadline came, for as long as it runs: spawn it beside the
    /// client for the client's lifetime.
    pub(crate) async fn watch(&self, clock: &dyn Clock) {
        let _watching = Watching::start(self);
        let mut timer: Option<(Instant, Sleep)> = None;
        loop {
            {
                let mut state = lock(&self.state);
                let now = clock.now();
                // waking only schedules a task: nothing comes back here while the lock is held
                state.waiting.retain(|(at, _, waker)| {
                    let due = *at <= now;
                    if due {
                        waker.wake_by_ref();
                    }
                    !due
                });
                let earliest = state.waiting.iter().map(|(at, _, _)| *at).min();
                if let Some(at) = earliest {
                    // a timer firing before the earliest deadline is fine (it looks again);
                    // one firing after it is not
                    if timer.as_ref().is_none_or(|(armed, _)| *armed > at) {
                        timer = Some((at, clock.sleep_until(at)));
                    }
                }
                state.armed = timer.as_ref().map(|(at, _)| *at);
            }
            std::future::poll_fn(|cx| {
                let mut state = lock(&self.state);
                if std::mem::take(&mut state.kicked) {
                    return Poll::Ready(());
                }
                if let Some((_, sleep)) = timer.as_mut() {
                    if sleep.as_mut().poll(cx).is_ready() {
                        timer = None;
                        return Poll::Ready(());
                    }
                }
                state.watcher = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
    }
}

/// Marks the watcher running while it lives; when it ends, the exchanges waiting on it are
/// woken to fall back to timers of their own.
struct Watching<'a>(&'a Deadlines);

impl<'a> Watching<'a> {
    fn start(deadlines: &'a Deadlines) -> Watching<'a> {
        lock(&deadlines.state).watching = true;
        Watching(deadlines)
    }
}

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut state = lock(&self.0.state);
            state.watching = false;
            state.armed = None;
            state.watcher = None;
            std::mem::take(&mut state.waiting)
        };
        for (_, _, waker) in waiting {
            waker.wake();
        }
    }
}

/// Completes at its deadline: woken by the watcher, or by a timer of its own when none runs.
pub(crate) struct Expiry<'a> {
    deadlines: &'a Deadlines,
    clock: &'a dyn Clock,
    deadline: Instant,
    id: Option<u64>,
    own: Option<Sleep>,
}

impl Future for Expiry<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.clock.now() >= this.deadline {
            return Poll::Ready(());
        }
        let watcher = {
            let mut state = lock(&this.deadlines.state);
            if !state.watching {
                None
            } else {
                let id = *this.id.get_or_insert_with(|| {
                    state.next_id += 1;
                    state.next_id
                });
                match state.waiting.iter_mut().find(|(_, i, _)| *i == id) {
                    Some(entry) => entry.2.clone_from(cx.waker()),
                    None => state.waiting.push((this.deadline, id, cx.waker().clone())),
                }
                if state.armed.is_none_or(|at| at > this.deadline) {
                    state.kicked = true;
                    Some(state.watcher.take())
                } else {
                    Some(None)
                }
            }
        };
        match watcher {
            Some(to_wake) => {
                if let Some(waker) = to_wake {
                    waker.wake();
                }
                Poll::Pending
            }
            None => {
                let (clock, deadline) = (this.clock, this.deadline);
                let own = this.own.get_or_insert_with(|| clock.sleep_until(deadline));
                own.as_mut().poll(cx)
            }
        }
    }
}

impl Drop for Expiry<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(&self.deadlines.state)
                .waiting
                .retain(|(_, i, _)| *i != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::VirtualClock;
    use std::time::Duration;

    /// Polls `fut` once with a waker that does nothing.
    fn poll_once<F: Future>(fut: Pin<&mut F>) -> Poll<F::Output> {
        fut.poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn exchanges_coming_and_going_share_one_timer_and_each_expires_at_its_own_deadline() {
        let clock = VirtualClock::new();
        let deadlines = Deadlines::default();
        let expired = std::cell::RefCell::new(Vec::new());
        let ex = smol::LocalExecutor::new();
        let _watcher = ex.spawn(deadlines.watch(&clock));
        while ex.try_tick() {} // the watcher runs before any exchange, as in the bot
        let t0 = clock.now();

        // ten exchanges, 50 ms apart, each over before the next: one timer for them all
        for _ in 0..10 {
            {
                let mut expiry =
                    std::pin::pin!(deadlines.expiry(&clock, clock.now() + Duration::from_secs(10)));
                assert!(poll_once(expiry.as_mut()).is_pending());
                while ex.try_tick() {}
            } // the exchange is over
            clock.advance(Duration::from_millis(50));
            while ex.try_tick() {}
        }
        assert_eq!(clock.sleeps_made(), 1, "one timer for ten exchanges");

        // two in flight at once: each ends at its own deadline, not the other's
        let a_deadline = clock.now() + Duration::from_secs(10);
        let b_deadline = a_deadline + Duration::from_secs(1);
        let spawn = |name: &'static str, deadline| {
            let expiry = deadlines.expiry(&clock, deadline);
            let expired = &expired;
            ex.spawn(async move {
                expiry.await;
                expired.borrow_mut().push(name);
            })
        };
        let (a, b) = (spawn("a", a_deadline), spawn("b", b_deadline));
        while ex.try_tick() {}
        while clock.now() < a_deadline {
            let next = clock.next_deadline().expect("a timer is armed");
            clock.advance(next.max(clock.now()) - clock.now() + Duration::from_millis(1));
            while ex.try_tick() {}
        }
        assert_eq!(*expired.borrow(), ["a"], "at {:?}", clock.now() - t0);
        clock.advance(b_deadline - clock.now());
        while ex.try_tick() {}
        assert_eq!(*expired.borrow(), ["a", "b"]);
        assert!(a.is_finished() && b.is_finished());
    }

    #[test]
    fn without_a_watcher_an_exchange_keeps_a_timer_of_its_own() {
        let clock = VirtualClock::new();
        let deadlines = Deadlines::default();
        let mut expiry =
            std::pin::pin!(deadlines.expiry(&clock, clock.now() + Duration::from_secs(5)));
        assert!(poll_once(expiry.as_mut()).is_pending());
        assert_eq!(clock.sleeps_made(), 1);
        clock.advance(Duration::from_secs(5));
        assert!(poll_once(expiry.as_mut()).is_ready());
    }

    #[test]
    fn when_the_watcher_ends_the_waiting_exchanges_fall_back_to_their_own_timers() {
        let clock = VirtualClock::new();
        let deadlines = Deadlines::default();
        let ex = smol::LocalExecutor::new();
        let watcher = ex.spawn(deadlines.watch(&clock));
        let deadline = clock.now() + Duration::from_secs(5);
        let done = ex.spawn(deadlines.expiry(&clock, deadline));
        while ex.try_tick() {}
        drop(watcher); // cancelled: the executor is going away, say
        while ex.try_tick() {}
        clock.advance(Duration::from_secs(5));
        while ex.try_tick() {}
        assert!(done.is_finished());
    }
}
