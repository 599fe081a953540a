//! Timers as data (quinn-proto's `connection/timer.rs`): a small table of deadlines indexed
//! by a core's own timer kinds; the next deadline is the earliest. No task per timer.

use std::marker::PhantomData;
use std::time::Instant;

/// A core's timer kinds: a small `enum` whose variants number `0..N`.
pub trait Kind: Copy {
    /// The variant's slot in the table.
    fn index(self) -> usize;
}

/// One optional deadline for each of a core's `N` timer kinds `K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timers<K, const N: usize> {
    at: [Option<Instant>; N],
    kind: PhantomData<K>,
}

impl<K, const N: usize> Default for Timers<K, N> {
    fn default() -> Self {
        Timers {
            at: [None; N],
            kind: PhantomData,
        }
    }
}

impl<K: Kind, const N: usize> Timers<K, N> {
    /// Arms (`Some`) or stops (`None`) timer `kind`.
    pub fn set(&mut self, kind: K, at: Option<Instant>) {
        self.at[kind.index()] = at;
    }

    /// When timer `kind` is armed for, if it is.
    pub fn get(&self, kind: K) -> Option<Instant> {
        self.at[kind.index()]
    }

    /// True when timer `kind` is armed for `now` or earlier.
    pub(crate) fn is_due(&self, kind: K, now: Instant) -> bool {
        self.at[kind.index()].is_some_and(|t| t <= now)
    }

    /// Stops every timer.
    pub fn clear(&mut self) {
        self.at = [None; N];
    }

    /// The earliest armed deadline.
    #[must_use]
    pub fn next(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

/// Declares a core's timer kinds and their table, so that the table's size is the number of
/// kinds (a new kind cannot outgrow it):
/// `timers! { enum Timer { Retry, Save } table Table }` makes the `enum`, its [`Kind`], and
/// `type Table = Timers<Timer, 2>`.
macro_rules! timers {
    (enum $kind:ident { $($(#[$doc:meta])* $variant:ident),+ $(,)? } table $table:ident) => {
        #[derive(Debug, Clone, Copy)]
        enum $kind {
            $($(#[$doc])* $variant),+
        }
        impl $crate::timer::Kind for $kind {
            fn index(self) -> usize {
                self as usize
            }
        }
        type $table = $crate::timer::Timers<$kind, { [$(stringify!($variant)),+].len() }>;
    };
}
pub(crate) use timers;

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    timers! { enum T { A, B, C } table Table }

    #[test]
    fn the_next_deadline_is_the_earliest_armed_one() {
        let t = Instant::now();
        let mut timers = Table::default();
        assert_eq!(timers.next(), None);
        timers.set(T::A, Some(t + Duration::from_secs(5)));
        timers.set(T::C, Some(t + Duration::from_secs(2)));
        assert_eq!(timers.next(), Some(t + Duration::from_secs(2)));
        assert!(!timers.is_due(T::C, t + Duration::from_secs(1)));
        assert!(timers.is_due(T::C, t + Duration::from_secs(2)));
        assert_eq!(timers.get(T::B), None);
        timers.set(T::C, None);
        assert_eq!(timers.next(), Some(t + Duration::from_secs(5)));
        timers.clear();
        assert_eq!(timers.next(), None);
    }
}
