//! The recorder's side of the RAM budget: after each hand-off (and every few seconds) it drops
//! its own camera's oldest queued segments while they exceed `RAM_BUDGET_MB` or the RAM disk has
//! less than `RAM_MIN_FREE_MB` free, exactly as the uploader does (the policy is
//! `visdcam_core::budget`). So a camera whose uploader is stopped, failed or never started stays
//! within its budget, and the other cameras keep recording.
//!
//! Only final `.ts` names are touched (never the `.part` being written), and never the segment
//! the uploader names as in flight in its counters file (`uploading=`). A segment the uploader
//! deleted first (uploaded or dropped) is skipped silently. Drops are counted in
//! `.seg-cam-stats` (`visdcam status` shows it beside the uploader's counters).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use visdcam_core::budget::{budget_drops, queue_order, Queued, RecorderStats, RECORDER_STATS_FILE};
use visdcam_core::config::Settings;
use visdcam_core::ratelimit::{RepeatLimiter, Verdict};
use visdcam_core::segment::{classify, EntryKind};
use visdcam_core::upload::{human_bytes, Stats, STATS_FILE};
use visdcam_daemon::fsutil::write_atomic;

/// Enforces the budget on one camera directory.
pub struct Budget {
    dir: PathBuf,
    budget: u64,
    min_free: u64,
    budget_mb: u64,
    min_free_mb: u64,
    stats: RecorderStats,
    written: Option<RecorderStats>,
    last: Option<Instant>,
    limiter: RepeatLimiter,
}

impl Budget {
    /// Reads the counters kept by an earlier run.
    pub fn new(settings: &Settings, dir: PathBuf) -> Budget {
        let stats = std::fs::read_to_string(dir.join(RECORDER_STATS_FILE))
            .map(|t| RecorderStats::parse(&t))
            .unwrap_or_default();
        Budget {
            dir,
            budget: settings.ram_budget_bytes(),
            min_free: settings.ram_min_free_bytes(),
            budget_mb: settings.ram_budget_mb,
            min_free_mb: settings.ram_min_free_mb,
            written: Some(stats),
            stats,
            last: None,
            limiter: RepeatLimiter::new(Duration::from_secs(60), Duration::from_secs(3600)),
        }
    }

    pub fn stats(&self) -> RecorderStats {
        self.stats
    }

    /// Changes the run-time counters and writes the file if anything changed (the recorder
    /// calls this once a second, so `updated_unix` moves and the file is at most a second old).
    pub fn update(&mut self, f: impl FnOnce(&mut RecorderStats)) {
        f(&mut self.stats);
        self.save();
    }

    /// [`Budget::enforce`] if `every` has passed since the last time.
    pub fn enforce_if_due(&mut self, every: Duration) {
        if self.last.is_none_or(|t| t.elapsed() >= every) {
            self.enforce();
        }
    }

    /// Lists the queue and drops the oldest segments over the budget; the number dropped.
    pub fn enforce(&mut self) -> u64 {
        self.last = Some(Instant::now());
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut queued: Vec<Queued> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if !matches!(classify(&name), EntryKind::Final(_)) {
                    return None;
                }
                let m = std::fs::symlink_metadata(e.path()).ok()?;
                m.file_type().is_file().then(|| Queued {
                    name,
                    size: m.len(),
                    mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
                })
            })
            .collect();
        queued.sort_by(queue_order);
        let free = visdcam_daemon::fsutil::free_bytes(&self.dir).unwrap_or(u64::MAX);
        let uploading = std::fs::read_to_string(self.dir.join(STATS_FILE))
            .map(|t| Stats::parse(&t).uploading)
            .unwrap_or_default();
        let uploading = (!uploading.is_empty()).then_some(uploading.as_str());
        let drops = budget_drops(&queued, uploading, self.budget, free, self.min_free);
        let mut n = 0;
        for i in drops {
            let q = &queued[i];
            match std::fs::remove_file(self.dir.join(&q.name)) {
                Ok(()) => {
                    n += 1;
                    self.stats.dropped += 1;
                    self.stats.dropped_bytes += q.size;
                    let msg = format!(
                        "dropped {} ({}): queued segments exceed the RAM budget \
                         (RAM_BUDGET_MB={}, RAM_MIN_FREE_MB={}, {} free); is uploader@ running?",
                        q.name,
                        human_bytes(q.size),
                        self.budget_mb,
                        self.min_free_mb,
                        human_bytes(free)
                    );
                    match self.limiter.check("drop", Instant::now()) {
                        Verdict::Emit { suppressed: 0 } => log::warn!("{msg}"),
                        Verdict::Emit { suppressed } => {
                            log::warn!("{msg} ({suppressed} similar drops not logged)")
                        }
                        Verdict::Suppress => {}
                    }
                }
                // The uploader took it first (uploaded or dropped it): not ours to count.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    if let Verdict::Emit { .. } = self.limiter.check("drop-error", Instant::now()) {
                        log::error!("cannot drop {}: {e}", self.dir.join(&q.name).display());
                    }
                }
            }
        }
        self.save();
        n
    }

    fn save(&mut self) {
        if self.written == Some(self.stats) {
            return;
        }
        let path = self.dir.join(RECORDER_STATS_FILE);
        match write_atomic(&path, self.stats.render().as_bytes()) {
            Ok(()) => self.written = Some(self.stats),
            Err(e) => {
                if let Verdict::Emit { .. } = self.limiter.check("stats", Instant::now()) {
                    log::error!("cannot write {}: {e}", path.display());
                }
            }
        }
    }
}
