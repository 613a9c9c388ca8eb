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
/// lines: `dropped` and `dropped_bytes` (segments it dropped over the RAM budget), and, written
/// once a second while it runs (`visdcam metrics`, `alert` and `top` read them): `frames`
/// (decoded), `parts` (JPEG parts received), `segments` (closed and handed off), `faults`
/// (connections that failed or ended in a fault), `reconnects` (times frames flowed again after
/// a fault), `fps_milli` (frame rate × 1000, 0 when not recording),
/// `recording` (0/1), `last_frame_unix`, `down_since_unix` (when frames stopped; 0 while they
/// arrive) and `updated_unix` (when the file was written: a stale file means no recorder).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecorderStats {
    pub dropped: u64,
    pub dropped_bytes: u64,
    pub frames: u64,
    pub parts: u64,
    pub segments: u64,
    pub faults: u64,
    pub reconnects: u64,
    pub fps_milli: u64,
    pub recording: bool,
    pub last_frame_unix: i64,
    pub down_since_unix: i64,
    pub updated_unix: i64,
}

impl RecorderStats {
    pub fn render(&self) -> String {
        format!(
            "dropped={}\ndropped_bytes={}\nframes={}\nparts={}\nsegments={}\nfaults={}\nreconnects={}\n\
             fps_milli={}\nrecording={}\nlast_frame_unix={}\ndown_since_unix={}\nupdated_unix={}\n",
            self.dropped,
            self.dropped_bytes,
            self.frames,
            self.parts,
            self.segments,
            self.faults,
            self.reconnects,
            self.fps_milli,
            u8::from(self.recording),
            self.last_frame_unix,
            self.down_since_unix,
            self.updated_unix,
        )
    }

    /// Reads the counters back; unknown or malformed lines are ignored (they start at 0).
    pub fn parse(text: &str) -> RecorderStats {
        let mut s = RecorderStats::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let n = || v.trim().parse::<u64>().unwrap_or(0);
            let t = || v.trim().parse::<i64>().unwrap_or(0);
            match k.trim() {
                "dropped" => s.dropped = n(),
                "dropped_bytes" => s.dropped_bytes = n(),
                "frames" => s.frames = n(),
                "parts" => s.parts = n(),
                "segments" => s.segments = n(),
                "faults" => s.faults = n(),
                "reconnects" => s.reconnects = n(),
                "fps_milli" => s.fps_milli = n(),
                "recording" => s.recording = n() == 1,
                "last_frame_unix" => s.last_frame_unix = t(),
                "down_since_unix" => s.down_since_unix = t(),
                "updated_unix" => s.updated_unix = t(),
                _ => {}
            }
        }
        s
    }

    /// The recorder's state at `now_unix`: frames arrive (`recording`) or not since when.
    /// While not recording, the start of the outage is kept from an earlier run (a restart does
    /// not restart the clock of an outage), else the last frame's time, else now.
    pub fn note_state(&mut self, recording: bool, now_unix: i64) {
        self.recording = recording;
        self.updated_unix = now_unix;
        if recording {
            self.down_since_unix = 0;
        } else if self.down_since_unix == 0 {
            self.down_since_unix = if self.last_frame_unix > 0 {
                self.last_frame_unix
            } else {
                now_unix
            };
        }
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
            ..RecorderStats::default()
        };
        assert!(s.render().starts_with("dropped=3\ndropped_bytes=3145728\n"));
        assert_eq!(RecorderStats::parse(&s.render()), s);
        // A file from before the run-time counters reads as zeros for them.
        assert_eq!(
            RecorderStats::parse("dropped=3\ndropped_bytes=3145728\n"),
            s
        );
        let full = RecorderStats {
            frames: 1200,
            parts: 1210,
            segments: 7,
            faults: 5,
            reconnects: 2,
            fps_milli: 19_950,
            recording: true,
            last_frame_unix: 1_764_750_000,
            updated_unix: 1_764_750_001,
            ..s
        };
        assert_eq!(RecorderStats::parse(&full.render()), full);
        assert_eq!(
            RecorderStats::parse("dropped=x\njunk\n"),
            RecorderStats::default()
        );
    }

    #[test]
    fn an_outage_starts_at_the_last_frame_and_survives_a_restart() {
        let mut s = RecorderStats {
            last_frame_unix: 1000,
            ..RecorderStats::default()
        };
        s.note_state(true, 1000);
        assert_eq!((s.recording, s.down_since_unix), (true, 0));
        s.note_state(false, 1030);
        assert_eq!(
            (s.recording, s.down_since_unix, s.updated_unix),
            (false, 1000, 1030)
        );
        // A restarted recorder reads the file back: the outage keeps its start.
        let mut again = RecorderStats::parse(&s.render());
        again.note_state(false, 1100);
        assert_eq!(again.down_since_unix, 1000);
        // No frame ever: down since the first look.
        let mut fresh = RecorderStats::default();
        fresh.note_state(false, 2000);
        assert_eq!(fresh.down_since_unix, 2000);
    }
}
