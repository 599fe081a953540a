//! Process-wide measurements for `/metrics`: how long Helix requests take. Per-user figures
//! live in the user core's counters; this is what no single user owns.

use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds (seconds) of the Helix duration histogram's buckets.
pub const HELIX_BUCKETS: [f64; 10] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Counters shared by every user's driver (behind a mutex rather than 64-bit atomics, which
/// 32-bit MIPS does not have).
#[derive(Debug, Default)]
pub struct Metrics {
    helix: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    buckets: [u64; HELIX_BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

/// A histogram read at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Observations at or under each bound of [`HELIX_BUCKETS`] (cumulative, as Prometheus
    /// counts them).
    pub cumulative: [u64; HELIX_BUCKETS.len()],
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Metrics {
    /// One Helix request (answered or failed) took `took`.
    pub fn observe_helix(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let mut c = self.helix.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = HELIX_BUCKETS.iter().position(|&bound| secs <= bound) {
            c.buckets[i] += 1;
        }
        c.count += 1;
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        c.sum_micros = c.sum_micros.saturating_add(micros);
    }

    /// The Helix durations so far.
    pub fn helix(&self) -> Histogram {
        let c = self.helix.lock().unwrap_or_else(|p| p.into_inner());
        let mut cumulative = [0; HELIX_BUCKETS.len()];
        let mut total = 0;
        for (i, bucket) in c.buckets.iter().enumerate() {
            total += bucket;
            cumulative[i] = total;
        }
        Histogram {
            cumulative,
            count: c.count,
            sum: c.sum_micros as f64 / 1e6,
        }
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
}
