//! Process-wide measurements for `/metrics`: how long Helix requests take, and how fast the
//! bot reacts to a message. Per-user figures live in the user core's counters; this is what
//! no single user owns.

use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the Helix duration histogram's buckets.
pub const HELIX_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Upper bounds (seconds) of the reaction histogram's buckets: the work is tens of
/// microseconds, so the buckets are fine where it should land.
pub const REACTION_BUCKETS: [f64; 10] = [
    0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25,
];

/// Counters shared by every user's driver (behind a mutex rather than 64-bit atomics, which
/// 32-bit MIPS does not have).
#[derive(Debug, Default)]
pub struct Metrics {
    helix: Mutex<Counts<{ HELIX_BUCKETS.len() }>>,
    reaction: Mutex<Counts<{ REACTION_BUCKETS.len() }>>,
}

#[derive(Debug)]
struct Counts<const N: usize> {
    buckets: [u64; N],
    count: u64,
    sum_nanos: u64,
}

impl<const N: usize> Default for Counts<N> {
    fn default() -> Self {
        Counts {
            buckets: [0; N],
            count: 0,
            sum_nanos: 0,
        }
    }
}

impl<const N: usize> Counts<N> {
    fn observe(&mut self, bounds: &[f64; N], took: Duration) {
        let secs = took.as_secs_f64();
        if let Some(i) = bounds.iter().position(|&bound| secs <= bound) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos = self.sum_nanos.saturating_add(nanos);
    }

    fn read(&self, bounds: &'static [f64; N]) -> Histogram {
        let mut total = 0;
        let cumulative = self
            .buckets
            .iter()
            .map(|n| {
                total += n;
                total
            })
            .collect();
        Histogram {
            bounds,
            cumulative,
            count: self.count,
            sum: self.sum_nanos as f64 / 1e9,
        }
    }
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// The buckets' upper bounds, in seconds.
    pub bounds: &'static [f64],
    /// Observations at or under each bound (cumulative, as Prometheus counts them).
    pub cumulative: Vec<u64>,
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Metrics {
    /// One Helix request (answered or failed) took `took`.
    pub fn observe_helix(&self, took: Duration) {
        let mut c = self.helix.lock().unwrap_or_else(|p| p.into_inner());
        c.observe(&HELIX_BUCKETS, took);
    }

    /// A color request was written `took` after the chat message that asked for it was
    /// read.
    pub fn observe_reaction(&self, took: Duration) {
        let mut c = self.reaction.lock().unwrap_or_else(|p| p.into_inner());
        c.observe(&REACTION_BUCKETS, took);
    }

    /// The Helix durations so far.
    pub fn helix(&self) -> Histogram {
        let c = self.helix.lock().unwrap_or_else(|p| p.into_inner());
        c.read(&HELIX_BUCKETS)
    }

    /// The reaction times so far.
    pub fn reaction(&self) -> Histogram {
        let c = self.reaction.lock().unwrap_or_else(|p| p.into_inner());
        c.read(&REACTION_BUCKETS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_slow_requests_count_only_in_the_total() {
        let m = Metrics::default();
        for ms in [5, 30, 30, 700, 20_000] {
            m.observe_helix(Duration::from_millis(ms));
        }
        let h = m.helix();
        assert_eq!(h.cumulative, [1, 1, 3, 3, 3, 3, 4, 4, 4, 4]);
        assert_eq!(h.count, 5);
        assert!((h.sum - 20.765).abs() < 1e-9, "{}", h.sum);
    }

    #[test]
    fn reactions_have_their_own_microsecond_buckets() {
        let m = Metrics::default();
        for us in [40, 250, 300, 900] {
            m.observe_reaction(Duration::from_micros(us));
        }
        let r = m.reaction();
        assert_eq!(r.cumulative[..5], [1, 1, 3, 3, 4]);
        assert_eq!((r.count, m.helix().count), (4, 0));
        assert!((r.sum - 0.00149).abs() < 1e-12, "{}", r.sum);
    }
}
