//! Repeated-message limiting: a camera down for a day must not write a line per retry.
//!
//! The first occurrence of a message key is logged; repeats within the quiet period are
//! counted, and the next line after the period says how many were held back. The quiet period
//! doubles with each suppressed burst up to a cap, and resets once the key is cleared (the
//! condition ended). Time is passed in, so the policy is testable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it; `suppressed` similar messages were held back since the last line.
    Emit { suppressed: u64 },
    /// Hold it back.
    Suppress,
}

struct Entry {
    next_allowed: Instant,
    period: Duration,
    suppressed: u64,
}

/// Per-key limiter.
pub struct RepeatLimiter {
    first_period: Duration,
    max_period: Duration,
    entries: HashMap<String, Entry>,
}

impl RepeatLimiter {
    pub fn new(first_period: Duration, max_period: Duration) -> RepeatLimiter {
        RepeatLimiter {
            first_period,
            max_period,
            entries: HashMap::new(),
        }
    }

    /// Decides for one occurrence of `key` at `now`.
    pub fn check(&mut self, key: &str, now: Instant) -> Verdict {
        match self.entries.get_mut(key) {
            None => {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        next_allowed: now + self.first_period,
                        period: self.first_period,
                        suppressed: 0,
                    },
                );
                Verdict::Emit { suppressed: 0 }
            }
            Some(e) if now >= e.next_allowed => {
                let suppressed = e.suppressed;
                e.period = (e.period * 2).min(self.max_period);
                e.next_allowed = now + e.period;
                e.suppressed = 0;
                Verdict::Emit { suppressed }
            }
            Some(e) => {
                e.suppressed += 1;
                Verdict::Suppress
            }
        }
    }

    /// The condition behind `key` ended: the next occurrence is logged at once. Returns how
    /// many were held back since the last line, so the caller can say so.
    pub fn clear(&mut self, key: &str) -> u64 {
        self.entries.remove(key).map_or(0, |e| e.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_retries_every_second_logs_few_lines() {
        let mut l = RepeatLimiter::new(Duration::from_secs(60), Duration::from_secs(3600));
        let t0 = Instant::now();
        let lines = (0..86_400u64)
            .filter(|s| {
                matches!(
                    l.check("down", t0 + Duration::from_secs(*s)),
                    Verdict::Emit { .. }
                )
            })
            .count();
        // 60, 120, 240, ... up to hourly: about 6 + 23 lines.
        assert!(lines <= 32, "{lines} lines");
        assert!(lines >= 24, "{lines} lines: still says it is down hourly");
    }

    #[test]
    fn ten_minutes_down_is_a_handful_of_lines() {
        let mut l = RepeatLimiter::new(Duration::from_secs(60), Duration::from_secs(3600));
        let t0 = Instant::now();
        let lines = (0..600u64)
            .filter(|s| {
                matches!(
                    l.check("down", t0 + Duration::from_secs(*s)),
                    Verdict::Emit { .. }
                )
            })
            .count();
        assert_eq!(lines, 4, "0 s, 60 s, 180 s, 420 s");
    }

    #[test]
    fn reports_suppressed_and_resets_on_clear() {
        let mut l = RepeatLimiter::new(Duration::from_secs(10), Duration::from_secs(100));
        let t0 = Instant::now();
        assert_eq!(l.check("k", t0), Verdict::Emit { suppressed: 0 });
        assert_eq!(l.check("k", t0 + Duration::from_secs(1)), Verdict::Suppress);
        assert_eq!(l.check("k", t0 + Duration::from_secs(2)), Verdict::Suppress);
        assert_eq!(
            l.check("k", t0 + Duration::from_secs(10)),
            Verdict::Emit { suppressed: 2 }
        );
        assert_eq!(l.check("other", t0), Verdict::Emit { suppressed: 0 });
        assert_eq!(
            l.check("k", t0 + Duration::from_secs(11)),
            Verdict::Suppress
        );
        assert_eq!(l.clear("k"), 1);
        assert_eq!(
            l.check("k", t0 + Duration::from_secs(12)),
            Verdict::Emit { suppressed: 0 }
        );
    }
}
