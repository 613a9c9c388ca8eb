//! Capped exponential backoff with jitter, as pure arithmetic: callers sleep, this only counts.

use std::time::Duration;

/// Backoff state: `next()` gives the delay before the next try.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next try, without jitter: base·2ⁿ, capped.
    pub fn next_plain(&mut self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.attempt = self.attempt.saturating_add(1);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay with jitter: `unit` in [0, 1) (from a random source) picks a point in
    /// [75 %, 100 %] of the plain delay, so retries of several cameras drift apart.
    pub fn next(&mut self, unit: f64) -> Duration {
        let plain = self.next_plain();
        plain.mul_f64(0.75 + 0.25 * unit.clamp(0.0, 1.0))
    }

    /// Back to the first delay after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Tries since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_caps_then_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let got: Vec<u64> = (0..8).map(|_| b.next_plain().as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.next_plain(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(30));
        assert_eq!(b.next(0.0), Duration::from_secs(6));
        assert_eq!(b.next(1.0), Duration::from_secs(16));
        assert_eq!(b.next(0.5), Duration::from_millis(26_250));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            b.next_plain();
        }
        assert_eq!(b.next_plain(), Duration::from_secs(30));
    }
}
