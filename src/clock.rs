//! The `Clock` seam: the real time for the binary, a virtual one that tests advance by hand.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

/// A boxed future that sleeps.
pub(crate) type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the drivers get the time from. Protocol cores never call it: they take `now`.
pub trait Clock: Send + Sync + 'static {
    /// The monotonic now.
    fn now(&self) -> Instant;
    /// The wall-clock now, for Unix timestamps such as `Ratelimit-Reset`.
    fn wall(&self) -> SystemTime;
    /// A future that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Sleep;
}

/// The operating system's clock, with smol timers.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        crate::reactor::sleep_until(deadline)
    }
}

/// Runs `fut` until `deadline`; `None` if the deadline came first.
pub(crate) async fn timeout_at<T>(
    clock: &dyn Clock,
    deadline: Instant,
    fut: impl Future<Output = T>,
) -> Option<T> {
    let sleep = clock.sleep_until(deadline);
    smol::future::or(async { Some(fut.await) }, async {
        sleep.await;
        None
    })
    .await
}

/// A clock that moves only when a test calls [`VirtualClock::advance`].
#[derive(Clone)]
pub struct VirtualClock {
    inner: Arc<Mutex<VirtualInner>>,
}

struct VirtualInner {
    start: Instant,
    wall_start: SystemTime,
    elapsed: Duration,
    next_id: u64,
    sleepers: Vec<(u64, Instant, Waker)>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl VirtualClock {
    /// A clock standing at the real now, moving only when advanced.
    pub fn new() -> VirtualClock {
        VirtualClock {
            inner: Arc::new(Mutex::new(VirtualInner {
                start: Instant::now(),
                wall_start: SystemTime::now(),
                elapsed: Duration::ZERO,
                next_id: 0,
                sleepers: Vec::new(),
            })),
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    pub fn advance(&self, by: Duration) {
        let wakers = {
            let mut inner = lock(&self.inner);
            inner.elapsed += by;
            let now = inner.start + inner.elapsed;
            let (due, waiting) = std::mem::take(&mut inner.sleepers)
                .into_iter()
                .partition(|(_, at, _)| *at <= now);
            inner.sleepers = waiting;
            due
        };
        for (_, _, waker) in wakers {
            waker.wake();
        }
    }

    /// How many sleeps were made (each would be a timer of the reactor in the binary).
    pub fn sleeps_made(&self) -> u64 {
        lock(&self.inner).next_id
    }

    /// The earliest deadline anyone sleeps until, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        lock(&self.inner)
            .sleepers
            .iter()
            .map(|(_, at, _)| *at)
            .min()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        let inner = lock(&self.inner);
        inner.start + inner.elapsed
    }
    fn wall(&self) -> SystemTime {
        let inner = lock(&self.inner);
        inner.wall_start + inner.elapsed
    }
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let id = {
            let mut inner = lock(&self.inner);
            inner.next_id += 1;
            inner.next_id
        };
        Box::pin(VirtualSleep {
            clock: self.clone(),
            deadline,
            id,
        })
    }
}

struct VirtualSleep {
    clock: VirtualClock,
    deadline: Instant,
    id: u64,
}

impl Drop for VirtualSleep {
    fn drop(&mut self) {
        let id = self.id;
        lock(&self.clock.inner)
            .sleepers
            .retain(|(i, _, _)| *i != id);
    }
}

impl Future for VirtualSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = lock(&self.clock.inner);
        if inner.start + inner.elapsed >= self.deadline {
            return Poll::Ready(());
        }
        let id = self.id;
        inner.sleepers.retain(|(i, _, _)| *i != id);
        inner.sleepers.push((id, self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_sleep_wakes_only_when_advanced_past_its_deadline() {
        let clock = VirtualClock::new();
        let deadline = clock.now() + Duration::from_secs(10);
        let mut sleep = clock.sleep_until(deadline);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        clock.advance(Duration::from_secs(9));
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert_eq!(clock.next_deadline(), Some(deadline));
        clock.advance(Duration::from_secs(1));
        assert!(sleep.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn a_dropped_sleep_is_forgotten() {
        let clock = VirtualClock::new();
        let mut sleep = clock.sleep_until(clock.now() + Duration::from_secs(1));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        assert!(clock.next_deadline().is_some());
        drop(sleep);
        assert_eq!(clock.next_deadline(), None);
    }
}
