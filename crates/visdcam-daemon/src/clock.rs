//! Reading the clocks the recorder and the uploader act on: `CLOCK_REALTIME`, `CLOCK_BOOTTIME`
//! and whether the system clock is synchronised (kernel `adjtimex` `STA_UNSYNC`, or
//! systemd-timesyncd's flag file). With `VISDCAM_TEST_CLOCK` set, a test clock file replaces
//! the sync state and shifts realtime as the daemon sees it (see
//! `visdcam_core::clock::TestClock`); both daemons read the same file, so a test can run them
//! on one "wrong" clock. Also the boot id and the clock-notes files in a camera's RAM directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::time::{clock_gettime, ClockId};
use visdcam_core::clock::{ClockNotes, SyncEvidence, TestClock, TEST_CLOCK_ENV};

/// systemd-timesyncd creates this once it has synchronised the clock.
pub const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

/// One reading of the clocks.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub synced: bool,
    /// Realtime as the daemon sees it (test offset applied), ns since the epoch.
    pub realtime_ns: i64,
    pub boottime_ns: i64,
    /// What the test clock adds to the kernel's realtime (0 without one), ns.
    pub shift_ns: i64,
}

impl Reading {
    /// `CLOCK_REALTIME − CLOCK_BOOTTIME`: constant until the clock steps.
    pub fn offset_ns(&self) -> i64 {
        visdcam_core::clock::offset_ns(self.realtime_ns, self.boottime_ns)
    }

    /// Realtime as the daemon sees it.
    pub fn realtime(&self) -> SystemTime {
        from_ns(self.realtime_ns)
    }

    /// A time stamp the kernel wrote (a file's mtime) as this daemon's clock would have
    /// written it: moved by the test clock's offset (unchanged without one).
    pub fn shifted(&self, kernel_time: SystemTime) -> SystemTime {
        from_ns(to_ns(kernel_time).saturating_add(self.shift_ns))
    }
}

fn to_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX),
    }
}

fn from_ns(ns: i64) -> SystemTime {
    let d = Duration::from_nanos(ns.unsigned_abs());
    if ns >= 0 {
        UNIX_EPOCH + d
    } else {
        UNIX_EPOCH - d
    }
}

/// Where clock state comes from.
#[derive(Debug, Clone)]
pub enum ClockSource {
    System,
    Test(PathBuf),
}

fn ns(clock: ClockId) -> i64 {
    // These clocks always exist on Linux.
    let t = clock_gettime(clock).expect("clock_gettime of a standard clock");
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

/// The kernel's `STA_UNSYNC` flag; `None` when adjtimex is not allowed (`ProtectClock=yes`
/// forbids even reading; the units allow `adjtimex clock_adjtime` instead, see
/// docs/design/units.md).
pub fn kernel_unsync() -> Option<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex.
    let r = unsafe { nix::libc::adjtimex(&mut tx) };
    (r >= 0).then_some(tx.status & nix::libc::STA_UNSYNC != 0)
}

impl ClockSource {
    /// The test clock when `VISDCAM_TEST_CLOCK` names a file, else the system's.
    pub fn from_env() -> ClockSource {
        match std::env::var_os(TEST_CLOCK_ENV).filter(|v| !v.is_empty()) {
            Some(p) => ClockSource::Test(PathBuf::from(p)),
            None => ClockSource::System,
        }
    }

    /// Logs a warning when a test clock is in use (call once at start).
    pub fn warn_if_test(&self) {
        if let ClockSource::Test(p) = self {
            log::warn!(
                "using the test clock {} ({TEST_CLOCK_ENV}): not for production",
                p.display()
            );
        }
    }

    /// Reads the clocks. Fails only on a test clock file that cannot be read or parsed.
    pub fn read(&self) -> Result<Reading, String> {
        let realtime = ns(ClockId::CLOCK_REALTIME);
        let boottime = ns(ClockId::CLOCK_BOOTTIME);
        match self {
            ClockSource::System => Ok(Reading {
                synced: SyncEvidence {
                    kernel_unsync: kernel_unsync(),
                    timesyncd_flag: Path::new(TIMESYNCD_FLAG).exists(),
                }
                .synced(),
                realtime_ns: realtime,
                boottime_ns: boottime,
                shift_ns: 0,
            }),
            ClockSource::Test(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{TEST_CLOCK_ENV}={}: {e}", path.display()))?;
                let t = TestClock::parse(&text)
                    .map_err(|e| format!("{TEST_CLOCK_ENV}={}: {e}", path.display()))?;
                let shift = t.offset_s * 1_000_000_000;
                Ok(Reading {
                    synced: t.synced,
                    realtime_ns: realtime + shift,
                    boottime_ns: boottime,
                    shift_ns: shift,
                })
            }
        }
    }

    /// Realtime as the daemon sees it; the kernel's when a test clock file cannot be read
    /// ([`ClockSource::read`] reports that error where it is logged).
    pub fn wall_now(&self) -> SystemTime {
        match self {
            ClockSource::System => SystemTime::now(),
            ClockSource::Test(_) => self
                .read()
                .map_or_else(|_| SystemTime::now(), |r| r.realtime()),
        }
    }
}

/// This boot's id; empty when it cannot be read (`ProcSubset=pid` hides `/proc/sys`).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The clock notes in `path` if they were taken in boot `boot_id`, else empty notes of that
/// boot (offsets of another boot are unrelated to this one's clocks). A missing or unreadable
/// file gives empty notes.
pub fn load_notes(path: &Path, boot_id: &str) -> ClockNotes {
    match std::fs::read_to_string(path).map(|t| ClockNotes::parse(&t)) {
        Ok(n) if n.boot_id == boot_id => n,
        _ => ClockNotes {
            boot_id: boot_id.to_string(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_clock_shifts_realtime_and_file_times() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("clock");
        std::fs::write(&file, "synced=no\noffset_s=-18000\n").unwrap();
        let src = ClockSource::Test(file.clone());
        let before = SystemTime::now();
        let r = src.read().unwrap();
        assert!(!r.synced);
        assert_eq!(r.shift_ns, -18_000_000_000_000);
        let seen = r.realtime();
        let five_h = Duration::from_secs(18000);
        assert!(seen >= before - five_h && seen <= SystemTime::now() - five_h);
        assert_eq!(r.shifted(UNIX_EPOCH + five_h * 2), UNIX_EPOCH + five_h);
        assert!(src.wall_now() <= SystemTime::now() - five_h);

        std::fs::write(&file, "synced=maybe\n").unwrap();
        assert!(src.read().unwrap_err().contains("synced must be yes or no"));
        // An unreadable test clock falls back to the kernel's time.
        assert!(src.wall_now() >= before);
    }

    #[test]
    fn system_clock_is_unshifted() {
        let r = ClockSource::System.read().unwrap();
        assert_eq!(r.shift_ns, 0);
        let t = UNIX_EPOCH + Duration::from_secs(1_760_271_142);
        assert_eq!(r.shifted(t), t);
        assert!(r.offset_ns() > 0);
    }

    #[test]
    fn times_before_the_epoch_round_trip() {
        let t = UNIX_EPOCH - Duration::from_millis(1500);
        assert_eq!(from_ns(to_ns(t)), t);
    }

    #[test]
    fn notes_of_another_boot_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".notes");
        let mut n = ClockNotes {
            boot_id: "boot-a".into(),
            ..Default::default()
        };
        n.offsets.insert("seg-1-0001.ts".into(), 7);
        std::fs::write(&path, n.render()).unwrap();
        assert_eq!(load_notes(&path, "boot-a"), n);
        let other = load_notes(&path, "boot-b");
        assert_eq!(other.boot_id, "boot-b");
        assert!(other.offsets.is_empty());
        assert!(load_notes(&dir.path().join("missing"), "boot-a")
            .offsets
            .is_empty());
    }
}
