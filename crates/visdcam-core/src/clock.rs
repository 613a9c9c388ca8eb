//! Wall-clock trust: whether the system clock is synchronised, and the real recording time of
//! segments whose mtimes were written before it was.
//!
//! A Raspberry Pi has no battery clock: after boot its clock is hours or years off until NTP
//! steps it. Segments closed before that step carry wrong mtimes. For each segment closed
//! while the clock is unsynchronised, the offset between `CLOCK_REALTIME` and `CLOCK_BOOTTIME`
//! (which never steps) is noted. Once synchronised, the segment's real time is
//! `mtime + (offset_now − offset_then)`: the mtime moved by exactly the step(s) since.
//!
//! Two notes files in the camera's RAM directory ([`ClockNotes`]), both carrying the kernel's
//! boot id (notes from another boot are ignored: realtime − boottime offsets of different
//! boots are unrelated):
//! - [`RECORDER_NOTES_FILE`]: the recorder notes each segment at its hand-off, so segments
//!   closed while no uploader ran (stopped, failed, restarting, started after the sync) are
//!   still corrected. The uploader prefers this note.
//! - [`NOTES_FILE`]: the uploader notes segments it first sees unsynchronised that the
//!   recorder did not note (left by an older recorder, or its note could not be written).
//!
//! Tests cannot step the machine's clock, so both daemons read a test clock file when the
//! environment variable [`TEST_CLOCK_ENV`] names one ([`TestClock`]): it replaces the kernel's
//! sync state and shifts the daemons' view of `CLOCK_REALTIME`.

use std::collections::BTreeMap;

/// Environment variable naming a test clock file (tests only; see [`TestClock`]).
pub const TEST_CLOCK_ENV: &str = "VISDCAM_TEST_CLOCK";

/// File name of the uploader's notes in a camera's RAM directory.
pub const NOTES_FILE: &str = ".uploader-clock";

/// File name of the recorder's notes (taken at each hand-off) in a camera's RAM directory.
pub const RECORDER_NOTES_FILE: &str = ".seg-cam-clock";

/// A test's stand-in for the kernel clock state, read from the file named by
/// [`TEST_CLOCK_ENV`]. Text, one `key=value` per line:
///
/// ```text
/// synced=no          # yes|no: replaces the kernel's/timesyncd's sync state
/// offset_s=-18000    # seconds added to CLOCK_REALTIME as the daemons see it
/// ```
///
/// Changing `offset_s` while a daemon runs simulates a clock step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestClock {
    pub synced: bool,
    pub offset_s: i64,
}

impl TestClock {
    pub fn parse(text: &str) -> Result<TestClock, String> {
        let mut clock = TestClock {
            synced: false,
            offset_s: 0,
        };
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |what: &str| format!("line {}: {what}: `{line}`", n + 1);
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad("expected key=value"))?;
            match (k.trim(), v.trim()) {
                ("synced", "yes") => clock.synced = true,
                ("synced", "no") => clock.synced = false,
                ("synced", _) => return Err(bad("synced must be yes or no")),
                ("offset_s", v) => {
                    clock.offset_s = v.parse().map_err(|_| bad("offset_s must be an integer"))?
                }
                _ => return Err(bad("unknown key (synced, offset_s)")),
            }
        }
        Ok(clock)
    }

    pub fn render(&self) -> String {
        format!(
            "synced={}\noffset_s={}\n",
            if self.synced { "yes" } else { "no" },
            self.offset_s
        )
    }
}

/// What the system says about clock synchronisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncEvidence {
    /// The kernel's `STA_UNSYNC` flag from `adjtimex(2)`; `None` when the call is not allowed
    /// (systemd's `ProtectClock=` forbids it).
    pub kernel_unsync: Option<bool>,
    /// `/run/systemd/timesync/synchronized` exists (systemd-timesyncd synchronised once).
    pub timesyncd_flag: bool,
}

impl SyncEvidence {
    /// Synchronised when either source says so.
    pub fn synced(&self) -> bool {
        self.timesyncd_flag || self.kernel_unsync == Some(false)
    }
}

/// `CLOCK_REALTIME − CLOCK_BOOTTIME` in nanoseconds: constant until the clock steps.
pub fn offset_ns(realtime_ns: i64, boottime_ns: i64) -> i64 {
    realtime_ns - boottime_ns
}

/// The real time of a file whose mtime was written when the offset was `offset_then`.
pub fn corrected_ns(mtime_ns: i64, offset_then: i64, offset_now: i64) -> i64 {
    mtime_ns + (offset_now - offset_then)
}

/// Offsets noted for segments closed (recorder) or first seen (uploader) before the clock was
/// synchronised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockNotes {
    /// `/proc/sys/kernel/random/boot_id` when the notes were taken.
    pub boot_id: String,
    /// Final segment file name → offset (ns) when noted.
    pub offsets: BTreeMap<String, i64>,
}

impl ClockNotes {
    /// Text form: `boot_id=<id>` then one `<file name>=<offset ns>` per segment.
    pub fn render(&self) -> String {
        let mut s = format!("boot_id={}\n", self.boot_id);
        for (name, off) in &self.offsets {
            s.push_str(&format!("{name}={off}\n"));
        }
        s
    }

    /// Parses [`ClockNotes::render`]'s output; malformed lines are skipped (the file is ours,
    /// written atomically, so they only come from a person editing it).
    pub fn parse(text: &str) -> ClockNotes {
        let mut notes = ClockNotes::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if k == "boot_id" {
                notes.boot_id = v.trim().to_string();
            } else if let Ok(off) = v.trim().parse() {
                notes.offsets.insert(k.to_string(), off);
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000_000_000;

    #[test]
    fn five_hour_step_restores_recording_time() {
        // Booted 100 s ago with the clock 5 h behind (fake-hwclock); a segment closed at
        // wall time T−5h (wrong), seen at once; then NTP steps the clock +5 h.
        let boot = 100_000_000_000;
        let real_t = 1_760_271_142_000_000_000i64;
        let wrong = real_t - 5 * H;
        let then = offset_ns(wrong, boot);
        let now = offset_ns(real_t + 60_000_000_000, boot + 60_000_000_000);
        assert_eq!(corrected_ns(wrong, then, now), real_t);
    }

    #[test]
    fn no_step_no_change() {
        let o = offset_ns(1_000, 10);
        assert_eq!(corrected_ns(5_000, o, o), 5_000);
    }

    #[test]
    fn sync_evidence() {
        let e = |k, f| SyncEvidence {
            kernel_unsync: k,
            timesyncd_flag: f,
        };
        assert!(!e(Some(true), false).synced());
        assert!(!e(None, false).synced());
        assert!(e(Some(false), false).synced());
        assert!(e(None, true).synced());
        assert!(e(Some(true), true).synced());
    }

    #[test]
    fn test_clock_file() {
        let c = TestClock::parse("# test\nsynced=yes\noffset_s = -18000\n").unwrap();
        assert_eq!(
            c,
            TestClock {
                synced: true,
                offset_s: -18000
            }
        );
        assert_eq!(TestClock::parse(&c.render()).unwrap(), c);
        assert!(!TestClock::parse("").unwrap().synced);
        for bad in ["synced=maybe", "offset_s=1h", "speed=2", "synced"] {
            assert!(TestClock::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn notes_round_trip() {
        let mut n = ClockNotes {
            boot_id: "abc".into(),
            ..Default::default()
        };
        n.offsets.insert("seg-1760271142000-0a3f.ts".into(), -5 * H);
        n.offsets.insert("seg-1760271202000-0b00.ts".into(), 42);
        assert_eq!(ClockNotes::parse(&n.render()), n);
        assert_eq!(ClockNotes::parse("junk\nx=y\n"), ClockNotes::default());
    }
}
