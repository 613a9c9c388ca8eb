//! Upload pacing: when the next chunk of a request body may go out under a `RATE_KBPS` cap.
//!
//! The cap is on the body, in bytes per second (`RATE_KBPS` × 1024, like `pv -L`). Pacing is by
//! cumulative bytes: the byte at offset `n` may leave at `n / rate` seconds after the body
//! started, so the average over the whole body is exact, whatever the chunk sizes and however
//! late the sender wakes up. A small first chunk (`burst`) goes out at once.

use std::time::Duration;

/// Paces one request body at `bytes_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    bytes_per_sec: u64,
}

impl Pacer {
    /// `None` for "unlimited" (a rate of 0).
    pub fn new(bytes_per_sec: u64) -> Option<Pacer> {
        (bytes_per_sec > 0).then_some(Pacer { bytes_per_sec })
    }

    /// From the `RATE_KBPS` setting (KiB/s; 0 = unlimited).
    pub fn from_kibps(kibps: u64) -> Option<Pacer> {
        Pacer::new(kibps.saturating_mul(1024))
    }

    pub fn bytes_per_sec(&self) -> u64 {
        self.bytes_per_sec
    }

    /// How long to wait before sending more, when `sent` bytes of the body have gone out and
    /// `elapsed` has passed since the body started. Zero when the sender is behind schedule.
    pub fn wait(&self, sent: u64, elapsed: Duration) -> Duration {
        let due = Duration::from_secs_f64(sent as f64 / self.bytes_per_sec as f64);
        due.saturating_sub(elapsed)
    }

    /// Chunk size that keeps the flow smooth: about 1/20 s of data, between 1 KiB and 64 KiB.
    pub fn chunk(&self) -> usize {
        (self.bytes_per_sec / 20).clamp(1024, 64 * 1024) as usize
    }

    /// How long `bytes` take at this rate.
    pub fn duration_of(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kibps_is_1024_bytes_per_second() {
        let p = Pacer::from_kibps(100).unwrap();
        assert_eq!(p.bytes_per_sec(), 102_400);
        assert!(Pacer::from_kibps(0).is_none());
        // 3 MiB at 100 KiB/s: 30.72 s.
        assert_eq!(
            p.duration_of(3 * 1024 * 1024),
            Duration::from_millis(30_720)
        );
    }

    #[test]
    fn waits_until_schedule_and_never_negative() {
        let p = Pacer::new(1000).unwrap();
        assert_eq!(p.wait(0, Duration::ZERO), Duration::ZERO);
        assert_eq!(p.wait(500, Duration::ZERO), Duration::from_millis(500));
        assert_eq!(
            p.wait(500, Duration::from_millis(200)),
            Duration::from_millis(300)
        );
        assert_eq!(p.wait(500, Duration::from_secs(2)), Duration::ZERO);
    }

    #[test]
    fn simulated_send_hits_the_rate_within_a_chunk() {
        // A sender that writes a chunk, then sleeps as told (and oversleeps by 3 ms each time).
        let p = Pacer::from_kibps(100).unwrap();
        let total = 3 * 1024 * 1024u64;
        let mut sent = 0u64;
        let mut now = Duration::ZERO;
        while sent < total {
            let w = p.wait(sent, now);
            if !w.is_zero() {
                now += w + Duration::from_millis(3);
            }
            sent += (p.chunk() as u64).min(total - sent);
        }
        let expect = p.duration_of(total - p.chunk() as u64);
        let err = (now.as_secs_f64() / expect.as_secs_f64() - 1.0).abs();
        assert!(err < 0.01, "{now:?} vs {expect:?}");
    }

    #[test]
    fn chunk_sizes_are_bounded() {
        assert_eq!(Pacer::new(1).unwrap().chunk(), 1024);
        assert_eq!(Pacer::from_kibps(100).unwrap().chunk(), 5120);
        assert_eq!(Pacer::from_kibps(100_000).unwrap().chunk(), 65_536);
    }
}
