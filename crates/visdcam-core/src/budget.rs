//! A camera's RAM budget, enforced by both of its daemons: the uploader (while it runs) and the
//! recorder (always, so a camera whose uploader is stopped, failed or never started cannot
//! fill the shared RAM disk and stop every other camera). One policy, decided here: the queued
//! final segments, oldest first, are dropped while they exceed `RAM_BUDGET_MB` or the
//! filesystem has less than `RAM_MIN_FREE_MB` free ([`crate::upload::plan_drops`]); never a
//! `.part` (it is not queued yet) and never the segment the uploader is sending.
//!
//! Whichever daemon's `unlink` succeeds counts the drop, in its own counters file: the
//! uploader's in [`crate::upload::STATS_FILE`], the recorder's in [`RECORDER_STATS_FILE`];
//! `visdcam status` shows both. A drop the other daemon already made (`ENOENT`) is not a drop
//! and not an error.

use std::cmp::Ordering;

use crate::segment::SegmentName;
use crate::upload::plan_drops;

/// A final segment waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub name: String,
    pub size: u64,
    /// The segment's mtime (its end time), ns since the Unix epoch.
    pub mtime_ns: i64,
}

/// The sort key of the queue order: oldest mtime first, then start time and tag in the name.
pub fn queue_key(mtime_ns: i64, name: &str) -> (i64, Option<SegmentName>) {
    (mtime_ns, SegmentName::parse_final(name))
}

/// Queue order (see [`queue_key`]).
pub fn queue_order(a: &Queued, b: &Queued) -> Ordering {
    queue_key(a.mtime_ns, &a.name).cmp(&queue_key(b.mtime_ns, &b.name))
}

/// Indexes into `queued` (in [`queue_order`]) of the segments to drop so the queue is at most
/// `budget` bytes and the filesystem keeps `min_free` of its `free` bytes; `uploading` (the
/// uploader's segment in flight, if any) is never dropped.
pub fn budget_drops(
    queued: &[Queued],
    uploading: Option<&str>,
    budget: u64,
    free: u64,
    min_free: u64,
) -> Vec<usize> {
    let sizes: Vec<u64> = queued.iter().map(|q| q.size).collect();
    let protect = uploading.and_then(|n| queued.iter().position(|q| q.name == n));
    plan_drops(&sizes, protect, budget, free, min_free)
}

/// The recorder's counters file in a camera's RAM directory (a dot-file: never uploaded).
pub const RECORDER_STATS_FILE: &str = ".seg-cam-stats";

/// The recorder's counters, kept across restarts in [`RECORDER_STATS_FILE`] as `key=value`
/// lines: `dropped` and `dropped_bytes` (segments it dropped over the RAM budget).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub dropped: u64,
    pub dropped_bytes: u64,
}

impl RecorderStats {
    pub fn render(&self) -> String {
        format!(
            "dropped={}\ndropped_bytes={}\n",
            self.dropped, self.dropped_bytes
        )
    }

    /// Reads the counters back; unknown or malformed lines are ignored (they start at 0).
    pub fn parse(text: &str) -> RecorderStats {
        let mut s = RecorderStats::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let n = v.trim().parse().unwrap_or(0);
            match k.trim() {
                "dropped" => s.dropped = n,
                "dropped_bytes" => s.dropped_bytes = n,
                _ => {}
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real segment name: start `ms`, `tag`.
    fn n(ms: u64, tag: u16) -> String {
        SegmentName::new(1_760_271_140_000 + ms, tag).final_name()
    }

    fn q(name: String, size: u64, mtime_s: i64) -> Queued {
        Queued {
            name,
            size,
            mtime_ns: mtime_s * 1_000_000_000,
        }
    }

    #[test]
    fn oldest_first_and_never_the_upload() {
        let mut v = vec![
            q(n(3000, 3), 300, 3),
            q(n(1000, 1), 300, 1),
            q(n(2000, 2), 300, 2),
            q(n(2000, 1), 300, 2),
        ];
        v.sort_by(queue_order);
        let names: Vec<String> = v.iter().map(|q| q.name.clone()).collect();
        assert_eq!(names, [n(1000, 1), n(2000, 1), n(2000, 2), n(3000, 3)]);
        // 1200 bytes queued, budget 700: the two oldest go.
        assert_eq!(budget_drops(&v, None, 700, u64::MAX, 0), [0, 1]);
        // The oldest is being uploaded: the next two go instead.
        assert_eq!(
            budget_drops(&v, Some(n(1000, 1).as_str()), 700, u64::MAX, 0),
            [1, 2]
        );
        // A name that is not queued (already uploaded) protects nothing.
        assert_eq!(budget_drops(&v, Some("gone.ts"), 700, u64::MAX, 0), [0, 1]);
        // Within budget but the filesystem is short: 100 free, 500 wanted.
        assert_eq!(budget_drops(&v, None, 10_000, 100, 500), [0, 1]);
        assert!(budget_drops(&v, None, 1200, 500, 500).is_empty());
    }

    #[test]
    fn recorder_stats_round_trip() {
        let s = RecorderStats {
            dropped: 3,
            dropped_bytes: 3 << 20,
        };
        assert_eq!(s.render(), "dropped=3\ndropped_bytes=3145728\n");
        assert_eq!(RecorderStats::parse(&s.render()), s);
        assert_eq!(
            RecorderStats::parse("dropped=x\njunk\n"),
            RecorderStats::default()
        );
    }
}
