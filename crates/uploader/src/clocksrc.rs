//! Reading the clocks: `CLOCK_REALTIME`, `CLOCK_BOOTTIME` and whether the system clock is
//! synchronised (kernel `adjtimex` `STA_UNSYNC`, or systemd-timesyncd's flag file). With
//! `VISDCAM_TEST_CLOCK` set, a test clock file replaces the sync state and shifts realtime
//! (see `visdcam_core::clock::TestClock`).

use std::path::PathBuf;

use nix::time::{clock_gettime, ClockId};
use visdcam_core::clock::{SyncEvidence, TestClock, TEST_CLOCK_ENV};

/// systemd-timesyncd creates this once it has synchronised the clock.
const TIMESYNCD_FLAG: &str = "/run/systemd/timesync/synchronized";

/// One reading of the clocks.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub synced: bool,
    /// Realtime as the uploader sees it (test offset applied), ns since the epoch.
    pub realtime_ns: i64,
    pub boottime_ns: i64,
}

impl Reading {
    pub fn offset_ns(&self) -> i64 {
        visdcam_core::clock::offset_ns(self.realtime_ns, self.boottime_ns)
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

/// The kernel's STA_UNSYNC flag; `None` when adjtimex is not allowed (ProtectClock=).
fn kernel_unsync() -> Option<bool> {
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex.
    let r = unsafe { nix::libc::adjtimex(&mut tx) };
    (r >= 0).then_some(tx.status & nix::libc::STA_UNSYNC != 0)
}

impl ClockSource {
    pub fn from_env() -> ClockSource {
        match std::env::var_os(TEST_CLOCK_ENV).filter(|v| !v.is_empty()) {
            Some(p) => ClockSource::Test(PathBuf::from(p)),
            None => ClockSource::System,
        }
    }

    pub fn read(&self) -> Result<Reading, String> {
        let realtime = ns(ClockId::CLOCK_REALTIME);
        let boottime = ns(ClockId::CLOCK_BOOTTIME);
        match self {
            ClockSource::System => Ok(Reading {
                synced: SyncEvidence {
                    kernel_unsync: kernel_unsync(),
                    timesyncd_flag: std::path::Path::new(TIMESYNCD_FLAG).exists(),
                }
                .synced(),
                realtime_ns: realtime,
                boottime_ns: boottime,
            }),
            ClockSource::Test(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("{TEST_CLOCK_ENV}={}: {e}", path.display()))?;
                let t = TestClock::parse(&text)
                    .map_err(|e| format!("{TEST_CLOCK_ENV}={}: {e}", path.display()))?;
                Ok(Reading {
                    synced: t.synced,
                    realtime_ns: realtime + t.offset_s * 1_000_000_000,
                    boottime_ns: boottime,
                })
            }
        }
    }
}

/// This boot's id (notes from another boot are ignored).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
