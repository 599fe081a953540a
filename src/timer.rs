//! Timers as data (quinn-proto's `connection/timer.rs`): a small table of deadlines indexed
//! by a core's own timer kinds; the next deadline is the earliest. No task per timer.

use std::time::Instant;

/// `N` optional deadlines, indexed by `usize` (a core's `enum Timer { … } as usize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers<const N: usize>([Option<Instant>; N]);

impl<const N: usize> Default for Timers<N> {
    fn default() -> Self {
        Timers([None; N])
    }
}

impl<const N: usize> Timers<N> {
    /// Arms (`Some`) or stops (`None`) timer `i`.
    pub fn set(&mut self, i: usize, at: Option<Instant>) {
        self.0[i] = at;
    }

    /// When timer `i` is armed for, if it is.
    pub fn get(&self, i: usize) -> Option<Instant> {
        self.0[i]
    }

    /// True when timer `i` is armed for `now` or earlier.
    pub fn is_due(&self, i: usize, now: Instant) -> bool {
        self.0[i].is_some_and(|t| t <= now)
    }

    /// Stops every timer.
    pub fn clear(&mut self) {
        self.0 = [None; N];
    }

    /// The earliest armed deadline.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let t = Instant::now();
        let mut timers = Timers::<3>::default();
        assert_eq!(timers.next(), None);
        timers.set(0, Some(t + Duration::from_secs(5)));
        timers.set(2, Some(t + Duration::from_secs(2)));
        assert_eq!(timers.next(), Some(t + Duration::from_secs(2)));
        assert!(!timers.is_due(2, t + Duration::from_secs(1)));
        assert!(timers.is_due(2, t + Duration::from_secs(2)));
        timers.set(2, None);
        assert_eq!(timers.next(), Some(t + Duration::from_secs(5)));
        timers.clear();
        assert_eq!(timers.next(), None);
    }
}
