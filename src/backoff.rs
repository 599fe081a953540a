//! Exponential backoff with jitter for reconnects, as plain data.

use std::time::Duration;

/// Delays of 1 s, 2 s, 4 s … up to `max`, each scaled by a random factor in [0.5, 1.0].
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// From `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay; `jitter` in [0, 1) picks where in [0.5, 1.0] of the step it falls.
    pub(crate) fn next_delay(&mut self, jitter: f64) -> Duration {
        let step = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
    }

    /// Jumps straight to the longest delay (for failures that retrying soon cannot fix).
    pub(crate) fn saturate(&mut self) {
        self.attempt = 20;
    }

    /// Back to the shortest delay, after a healthy connection.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(180))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let full: Vec<u64> = (0..10).map(|_| b.next_delay(1.0).as_secs()).collect();
        assert_eq!(full, [1, 2, 4, 8, 16, 32, 64, 128, 180, 180]);
        b.reset();
        assert_eq!(b.next_delay(0.0), Duration::from_millis(500));
        b.saturate();
        assert_eq!(b.next_delay(0.0), Duration::from_secs(90));
    }
}
