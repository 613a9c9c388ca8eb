//! The uploader's loop for one camera: watch the RAM directory, keep the queue within the RAM
//! budget, wait for a trusted clock, upload the oldest segment, delete it once verified.
//!
//! `run()` calls `run_once()` (one refresh, then at most one upload attempt) until shutdown.
//! Failures back off: transient ones 1 s doubling to 60 s with jitter (or the store's
//! `Retry-After`); refusals (403/404/400: keys, bucket, skew) 10 s doubling to 5 min, cut short
//! when the credentials files change. The queue is refreshed on inotify events, every 10 s,
//! and every 200 ms during an upload, so drops happen even while a slow upload runs.
//!
//! The network call (HEAD, PUT) runs on a worker thread; this thread waits for it, and meanwhile
//! keeps the queue within budget, publishes STATUS= (`waiting for the store` when nothing has
//! moved for 2 s) and pings the watchdog — while the call is within its bounds. Every wait in
//! the call is bounded (`Timeouts::TRANSFER`: name lookup, connect, each read and write), so a
//! network that goes silent ends in a failed attempt and a retry; only a call silent for longer
//! than those bounds allow ([`net_silence_limit`]) stops the pings, and then systemd's watchdog
//! restarts a stuck uploader as it should.
//!
//! A key that may write but not read (B2's `writeFiles` alone, the recommended key) has its
//! `HEAD` refused: the segment is then uploaded without the duplicate check, and the uploader
//! stops asking — no `HEAD` for the next segments for [`DUPLICATE_REPROBE`], then one probe
//! again (and at every start), so a key given read access later gets its check back. STATUS=
//! and the counters file say while the check is off; the log says so once per start.
//!
//! With `OBJECT_LOCK_DAYS`, every PUT carries Object Lock retention headers (`visdcam-s3`). A
//! bucket without Object Lock refuses them ([`Failure::Config`]): that is logged once, shown
//! in STATUS=, and tried again every [`CONFIG_RECHECK`], never uploaded without the lock; the
//! segments wait under the RAM budget meanwhile.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use inotify::{Inotify, WatchMask};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use visdcam_core::backoff::Backoff;
use visdcam_core::clock::{corrected_ns, ClockNotes, NOTES_FILE, RECORDER_NOTES_FILE};
use visdcam_core::config::Settings;
use visdcam_core::rate::Pacer;
use visdcam_core::ratelimit::{RepeatLimiter, Verdict};
use visdcam_core::segment::{classify, EntryKind, SegmentName};
use visdcam_core::upload::{human_bytes, plan_drops, retry_delay, Failure, Stats, STATS_FILE};
use visdcam_daemon::fsutil::write_atomic;
use visdcam_daemon::notify::Notifier;
use visdcam_daemon::shutdown;

use visdcam_daemon::clock::{boot_id, load_notes, ClockSource, Reading};
use visdcam_s3::{prepare, DuplicateCheck, Prepared, Store, Stored, Timeouts};

/// Full rescan at least this often (inotify can overflow).
const RESCAN_EVERY: Duration = Duration::from_secs(10);

/// After a refused `HEAD` (a key that may not read), how long segments go up without one
/// before the next upload probes again.
pub const DUPLICATE_REPROBE: Duration = Duration::from_secs(3600);

/// After a refusal only a change to the bucket or the configuration cures ([`Failure::Config`]:
/// `OBJECT_LOCK_DAYS` on a bucket without Object Lock), the wait before the next try: long
/// enough not to hammer the store, short enough that uploads resume soon after the fix.
pub const CONFIG_RECHECK: Duration = Duration::from_secs(300);

/// STATUS= says the uploader is waiting for the store once nothing moved for this long.
const SILENCE_SHOWN: Duration = Duration::from_secs(2);

/// How long a network call may go without progress (a body chunk sent, or the call's end)
/// before the uploader counts it as stuck and stops feeding the watchdog: two whole requests
/// at their bounds (the HEAD, then the PUT up to its first body byte), plus 10 s.
pub fn net_silence_limit(t: &Timeouts) -> Duration {
    t.request_silence() * 2 + Duration::from_secs(10)
}

/// A closed segment waiting for upload.
#[derive(Debug, Clone)]
struct Pending {
    name: String,
    size: u64,
    mtime_ns: i64,
}

/// Everything the loop keeps.
pub struct Uploader {
    camera: String,
    dir: PathBuf,
    settings: Settings,
    /// Lent to the upload in progress (`None` meanwhile), so its tick may use `self`.
    store: Option<Store>,
    cred_locations: visdcam_s3::creds::Locations,
    clock: ClockSource,
    /// The uploader's own notes: offsets of segments first seen unsynchronised that the
    /// recorder did not note.
    notes: ClockNotes,
    notes_written: String,
    /// The recorder's notes of this boot (`.seg-cam-clock`), read at each scan: preferred.
    recorder_offsets: BTreeMap<String, i64>,
    stats: Stats,
    stats_written: String,
    notifier: Notifier,
    inotify: Inotify,
    pending: Vec<Pending>,
    foreign_logged: HashSet<OsString>,
    dirty: bool,
    last_scan: Option<Instant>,
    last_clock: Option<Reading>,
    transient: Backoff,
    refused: Backoff,
    next_attempt: Option<Instant>,
    /// Credentials fingerprint when the store refused us; a change retries at once.
    refused_with: Option<u64>,
    limiter: RepeatLimiter,
    in_flight: Option<String>,
    /// How long the network call in progress has been silent (shown in STATUS= from 2 s).
    net_silent: Option<Duration>,
    /// When a `HEAD` before a PUT was last refused (the key may not read): until
    /// [`DUPLICATE_REPROBE`] later, uploads skip it.
    head_refused_at: Option<Instant>,
    /// The duplicate check being off was logged (once per start).
    duplicate_off_logged: bool,
    /// The configuration refusal last logged ([`Failure::Config`]), until an upload works.
    config_refusal: Option<String>,
}

fn unix_now() -> i64 {
    Utc::now().timestamp()
}

/// Metadata sent with a segment: `visdcam-start-ms`, the first frame's wall time in Unix ms
/// from its name (shifted by the same clock-step correction as its key time, so key time minus
/// start stays the segment's length), and `md5`, the hex MD5 of its bytes (readers verify with
/// it where the ETag is not an MD5).
fn segment_meta(
    seg: &Pending,
    key_time: DateTime<Utc>,
    md5_hex: &str,
) -> Vec<(&'static str, String)> {
    let mut meta = Vec::with_capacity(2);
    if let Some(name) = SegmentName::parse_final(&seg.name) {
        let shift_ms = key_time
            .timestamp_nanos_opt()
            .map_or(0, |ns| (ns - seg.mtime_ns).div_euclid(1_000_000));
        let start = i64::try_from(name.start_ms)
            .unwrap_or(i64::MAX)
            .saturating_add(shift_ms);
        meta.push((META_START_MS, start.to_string()));
    }
    meta.push((META_MD5, md5_hex.to_string()));
    meta
}

/// `x-amz-meta-visdcam-start-ms`: the segment's first-frame wall time, Unix ms.
pub const META_START_MS: &str = "visdcam-start-ms";
/// `x-amz-meta-md5`: the hex MD5 of the segment's bytes.
pub const META_MD5: &str = "md5";

impl Uploader {
    pub fn new(
        camera: &str,
        settings: Settings,
        store: Store,
        clock: ClockSource,
    ) -> Result<Uploader, String> {
        let dir = settings
            .camera_dir()
            .ok_or("no camera in the settings (bug)")?;
        visdcam_daemon::fsutil::ensure_shared_dir(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let inotify = Inotify::init().map_err(|e| format!("inotify_init: {e}"))?;
        inotify
            .watches()
            .add(
                &dir,
                WatchMask::MOVED_TO
                    | WatchMask::CLOSE_WRITE
                    | WatchMask::CREATE
                    | WatchMask::DELETE
                    | WatchMask::MOVED_FROM,
            )
            .map_err(|e| format!("watching {}: {e}", dir.display()))?;
        let stats = std::fs::read_to_string(dir.join(STATS_FILE))
            .map(|t| Stats::parse(&t))
            .unwrap_or_default();
        let notes = load_notes(&dir.join(NOTES_FILE), &boot_id());
        Ok(Uploader {
            camera: camera.to_string(),
            dir,
            settings,
            cred_locations: store.locations().clone(),
            store: Some(store),
            clock,
            notes,
            notes_written: String::new(),
            recorder_offsets: BTreeMap::new(),
            stats,
            stats_written: String::new(),
            notifier: Notifier::from_env(),
            inotify,
            pending: Vec::new(),
            foreign_logged: HashSet::new(),
            dirty: true,
            last_scan: None,
            last_clock: None,
            transient: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            refused: Backoff::new(Duration::from_secs(10), Duration::from_secs(300)),
            next_attempt: None,
            refused_with: None,
            limiter: RepeatLimiter::new(Duration::from_secs(60), Duration::from_secs(3600)),
            in_flight: None,
            net_silent: None,
            head_refused_at: None,
            duplicate_off_logged: false,
            config_refusal: None,
        })
    }

    /// Runs until SIGTERM/SIGINT.
    pub fn run(&mut self) {
        self.refresh();
        self.notifier.ready();
        log::info!(
            "watching {} for camera {}; {} pending",
            self.dir.display(),
            self.camera,
            self.pending.len()
        );
        while !shutdown::requested() {
            self.run_once();
        }
        self.notifier.stopping();
        self.publish();
    }

    /// One refresh and at most one upload attempt (or a short wait).
    fn run_once(&mut self) {
        self.refresh();
        if self.settings.require_clock_sync && !self.last_clock.is_some_and(|c| c.synced) {
            self.wait_events(Duration::from_secs(1));
            return;
        }
        if let Some(at) = self.next_attempt {
            let now = Instant::now();
            if now < at {
                if self
                    .refused_with
                    .is_some_and(|f| f != visdcam_s3::creds::fingerprint(&self.cred_locations))
                {
                    log::info!("credentials files changed; retrying now");
                    self.next_attempt = None;
                    self.refused_with = None;
                    return;
                }
                self.wait_events((at - now).min(Duration::from_secs(1)));
                return;
            }
        }
        let Some(seg) = self.pending.first().cloned() else {
            self.wait_events(Duration::from_secs(5));
            return;
        };
        self.attempt(&seg);
    }

    /// The object time of a segment: its mtime, corrected for clock steps since it was noted
    /// unsynchronised: by the recorder at its hand-off, else by this uploader at first sight.
    fn key_time(&self, seg: &Pending) -> DateTime<Utc> {
        let mut ns = seg.mtime_ns;
        if self.settings.require_clock_sync {
            let then = self
                .recorder_offsets
                .get(&seg.name)
                .or_else(|| self.notes.offsets.get(&seg.name));
            if let (Some(then), Some(now)) = (then, self.last_clock) {
                ns = corrected_ns(seg.mtime_ns, *then, now.offset_ns());
            }
        }
        DateTime::from_timestamp_nanos(ns)
    }

    fn attempt(&mut self, seg: &Pending) {
        let path = self.dir.join(&seg.name);
        let key_time = self.key_time(seg);
        let key = self
            .settings
            .key_template
            .render(&self.camera, key_time, self.settings.key_tz);
        let prep = match prepare(&path) {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.dirty = true;
                return;
            }
            Err(e) => {
                self.fail(Failure::Transient {
                    why: format!("cannot read {}: {e}", path.display()),
                    retry_after: None,
                });
                return;
            }
        };
        let size = prep.size;
        let meta = segment_meta(seg, key_time, &prep.md5_hex);
        let pacer = Pacer::from_kibps(self.settings.rate_kbps);
        let started = Instant::now();
        self.in_flight = Some(seg.name.clone());
        self.stats.uploading = seg.name.clone();
        self.stats.uploading_sent = 0;
        self.stats.uploading_size = size;
        // Now, not at the first tick: the recorder reads `uploading=` to spare this segment
        // when it enforces the RAM budget.
        self.publish();
        let check = if self
            .head_refused_at
            .is_some_and(|t| t.elapsed() < DUPLICATE_REPROBE)
        {
            DuplicateCheck::Skip
        } else {
            DuplicateCheck::Head
        };
        let store = self
            .store
            .take()
            .expect("the store is back after each upload");
        let result = self.upload_watched(&store, prep, &key, &meta, check, pacer);
        self.store = Some(store);
        self.in_flight = None;
        self.stats.uploading.clear();
        self.stats.uploading_sent = 0;
        self.stats.uploading_size = 0;
        match result {
            Ok(stored) => {
                let checked = !matches!(stored, Stored::UploadedUnchecked { .. });
                let (key, how) = match stored {
                    Stored::Uploaded { key } | Stored::UploadedUnchecked { key } => {
                        (key, "uploaded")
                    }
                    Stored::AlreadyThere { key } => (key, "already stored"),
                };
                if check == DuplicateCheck::Head {
                    self.note_duplicate_check(checked, &key);
                }
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        // The object is safe; the file stays queued. Retry with the backoff:
                        // at once, the next pass would find it stored and fail again, in a
                        // loop. It is counted when it is gone.
                        self.fail(Failure::Transient {
                            why: format!("{how} {key} but cannot delete {}: {e}", path.display()),
                            retry_after: None,
                        });
                        return;
                    }
                    // Dropped over the RAM budget while it was sent (by the recorder, which
                    // spares the segment in flight unless it missed `uploading=`): stored all
                    // the same, and counted as dropped by whoever unlinked it.
                    log::info!(
                        "{} was deleted while it was uploaded (RAM budget); it is stored",
                        seg.name
                    );
                }
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let speed = (size as f64 / secs) as u64;
                log::info!(
                    "{how} {} as {key} ({}, {:.1} s, {}/s)",
                    seg.name,
                    human_bytes(size),
                    secs,
                    human_bytes(speed)
                );
                self.pending.retain(|p| p.name != seg.name);
                self.notes.offsets.remove(&seg.name);
                self.stats.uploaded += 1;
                self.stats.uploaded_bytes += size;
                self.stats.last_key = key;
                self.stats.last_size = size;
                self.stats.last_speed_bps = speed;
                self.stats.last_upload_unix = unix_now();
                // From the segment's close (its end time, clock-step corrected) to now.
                let closed_ms = key_time.timestamp_millis();
                self.stats
                    .note_latency((Utc::now().timestamp_millis() - closed_ms).max(0) as u64);
                self.stats.failing_since_unix = 0;
                if !self.stats.last_error.is_empty() {
                    let held = self.limiter.clear("upload");
                    log::info!(
                        "uploads work again (after: {}; {held} similar messages held back)",
                        self.stats.last_error
                    );
                }
                self.stats.last_error.clear();
                self.config_refusal = None;
                self.transient.reset();
                self.refused.reset();
                self.next_attempt = None;
                self.refused_with = None;
                self.dirty = true;
                self.publish();
            }
            Err(f) => self.fail(f),
        }
    }

    /// Runs `store.upload` on a worker thread and waits for its answer. Meanwhile: the queue
    /// is kept within budget, STATUS= is published, and the watchdog is pinged as long as the
    /// call made progress within [`net_silence_limit`]. On SIGTERM the wait ends at once (the
    /// worker is left to the process exit; the segment stays queued).
    fn upload_watched(
        &mut self,
        store: &Store,
        prep: Prepared,
        key: &str,
        meta: &[(&'static str, String)],
        check: DuplicateCheck,
        pacer: Option<Pacer>,
    ) -> Result<Stored, Failure> {
        let limit = net_silence_limit(&Timeouts::TRANSFER);
        let started = Instant::now();
        // Bytes of the body sent, and ms after `started` of the last progress.
        let sent = Arc::new(AtomicU64::new(0));
        let moved_ms = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let worker = {
            let (store, key, meta) = (store.clone(), key.to_string(), meta.to_vec());
            let (sent, moved_ms) = (sent.clone(), moved_ms.clone());
            std::thread::Builder::new()
                .name("upload".into())
                .spawn(move || {
                    // Called between body chunks: the call is not blocked on the network.
                    let mut tick = |n: u64| {
                        sent.store(n, Ordering::Relaxed);
                        let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                        moved_ms.store(ms, Ordering::Relaxed);
                        !shutdown::requested()
                    };
                    let _ =
                        tx.send(store.upload_checked(prep, &key, &meta, check, pacer, &mut tick));
                })
        };
        if let Err(e) = worker {
            return Err(Failure::Transient {
                why: format!("cannot start the upload thread: {e}"),
                retry_after: None,
            });
        }
        let mut stuck_logged = false;
        let result = loop {
            let answer = rx.recv_timeout(Duration::from_millis(200));
            let moved = Duration::from_millis(moved_ms.load(Ordering::Relaxed));
            let silent = started.elapsed().saturating_sub(moved);
            match answer {
                Ok(r) => break r,
                Err(RecvTimeoutError::Disconnected) => {
                    break Err(Failure::Transient {
                        why: "the upload thread ended without an answer".into(),
                        retry_after: None,
                    })
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if shutdown::requested() {
                break Err(Failure::Transient {
                    why: "shutting down".into(),
                    retry_after: None,
                });
            }
            self.stats.uploading_sent = sent.load(Ordering::Relaxed);
            self.net_silent = (silent >= SILENCE_SHOWN).then_some(silent);
            self.refresh_quiet();
            if silent < limit {
                self.notifier.ping_if_due();
            } else if !stuck_logged {
                stuck_logged = true;
                log::error!(
                    "the upload of {key} made no progress for {} s, longer than its network \
                     timeouts allow: it is stuck; no more watchdog pings",
                    silent.as_secs()
                );
            }
        };
        self.net_silent = None;
        result
    }

    /// After an upload that tried the duplicate check: `checked` is false when its `HEAD` was
    /// refused (the key may not read).
    fn note_duplicate_check(&mut self, checked: bool, key: &str) {
        if checked {
            self.head_refused_at = None;
            if self.stats.duplicate_check_off {
                log::info!("the key may read again: the duplicate check is back on");
            }
            self.stats.duplicate_check_off = false;
            return;
        }
        self.head_refused_at = Some(Instant::now());
        self.stats.duplicate_check_off = true;
        if self.duplicate_off_logged {
            log::debug!("HEAD of {key} still refused; the duplicate check stays off");
            return;
        }
        self.duplicate_off_logged = true;
        log::info!(
            "the key may write but not read (HEAD of {key} was refused): the duplicate check is \
             off, so segments are uploaded without first looking for the same bytes under \
             their key (verified by the signed Content-MD5 all the same); probed again every \
             {} min. A segment whose upload is repeated after a crash is stored again under \
             the same key (B2 keeps the older copy as a hidden version)",
            DUPLICATE_REPROBE.as_secs() / 60
        );
    }

    fn fail(&mut self, f: Failure) {
        if shutdown::requested() {
            return;
        }
        if let Failure::Config { why } = &f {
            self.fail_config(why.clone());
            return;
        }
        let (delay, loud) = match &f {
            Failure::Transient { retry_after, .. } => {
                let backoff = self.transient.next(fastrand::f64());
                (retry_delay(*retry_after, backoff), false)
            }
            // `Config` went to `fail_config` above.
            Failure::Refused { .. } | Failure::Config { .. } => {
                self.refused_with = Some(visdcam_s3::creds::fingerprint(&self.cred_locations));
                (self.refused.next(fastrand::f64()), true)
            }
        };
        let msg = format!(
            "upload failed: {}; retrying in {:.0} s{}",
            f.why(),
            delay.as_secs_f64().ceil(),
            if loud {
                " (nothing is deleted; fix this and the uploader retries)"
            } else {
                ""
            }
        );
        if let Verdict::Emit { suppressed } = self.limiter.check("upload", Instant::now()) {
            let more = if suppressed > 0 {
                format!(" ({suppressed} similar messages held back)")
            } else {
                String::new()
            };
            if loud {
                log::error!("{msg}{more}");
            } else {
                log::warn!("{msg}{more}");
            }
        }
        self.stats.note_failure(&f, unix_now());
        self.next_attempt = Some(Instant::now() + delay);
        self.publish();
    }

    /// A refusal only a change to the bucket or the configuration cures (`OBJECT_LOCK_DAYS` on
    /// a bucket without Object Lock): said once at error level, tried again every
    /// [`CONFIG_RECHECK`]; meanwhile segments wait under the RAM budget like any backlog.
    fn fail_config(&mut self, why: String) {
        if self.config_refusal.as_deref() == Some(why.as_str()) {
            log::debug!("still refused: {why}");
        } else {
            log::error!(
                "upload refused: {why}. Nothing is uploaded until then: segments wait in {} \
                 (past RAM_BUDGET_MB={} the oldest are dropped); tried again every {} min",
                self.dir.display(),
                self.settings.ram_budget_mb,
                CONFIG_RECHECK.as_secs() / 60
            );
            self.config_refusal = Some(why.clone());
        }
        self.stats
            .note_failure(&Failure::Config { why }, unix_now());
        self.next_attempt = Some(Instant::now() + CONFIG_RECHECK);
        self.publish();
    }

    /// Waits up to `d` for a directory event (or shutdown).
    fn wait_events(&mut self, d: Duration) {
        self.notifier.ping_if_due();
        let end = Instant::now() + d;
        while !shutdown::requested() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let step = left.min(Duration::from_millis(200));
            self.notifier.ping_if_due();
            let fd = self.inotify.as_fd();
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            let ms = u16::try_from(step.as_millis()).unwrap_or(u16::MAX);
            if matches!(poll(&mut fds, PollTimeout::from(ms)), Ok(n) if n > 0) {
                self.drain_events();
                return;
            }
        }
    }

    fn drain_events(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.inotify.read_events(&mut buf) {
                Ok(events) => {
                    if events.count() == 0 {
                        return;
                    }
                    self.dirty = true;
                }
                Err(_) => return,
            }
        }
    }

    /// Rescans if needed, enforces the budget, notes clock offsets, publishes status.
    fn refresh(&mut self) {
        self.notifier.ping_if_due();
        self.refresh_quiet();
    }

    /// [`Uploader::refresh`] without the watchdog ping.
    fn refresh_quiet(&mut self) {
        self.drain_events();
        match self.clock.read() {
            Ok(r) => {
                if let Some(prev) = self.last_clock {
                    if prev.synced != r.synced && r.synced {
                        log::info!("system clock synchronised; uploads start");
                    }
                }
                self.last_clock = Some(r);
            }
            Err(e) => {
                if let Verdict::Emit { .. } = self.limiter.check("clock", Instant::now()) {
                    log::error!("reading the clock state: {e}");
                }
            }
        }
        if self.dirty || self.last_scan.is_none_or(|t| t.elapsed() >= RESCAN_EVERY) {
            self.dirty = false;
            self.last_scan = Some(Instant::now());
            if let Err(e) = self.scan() {
                if let Verdict::Emit { .. } = self.limiter.check("scan", Instant::now()) {
                    log::error!("{e}");
                }
            }
            self.enforce_budget();
        }
        let waiting =
            self.settings.require_clock_sync && !self.last_clock.is_some_and(|c| c.synced);
        if waiting {
            if let Some(now) = self.last_clock {
                for p in &self.pending {
                    if !self.recorder_offsets.contains_key(&p.name) {
                        self.notes
                            .offsets
                            .entry(p.name.clone())
                            .or_insert_with(|| now.offset_ns());
                    }
                }
            }
        }
        self.stats.clock_waiting = waiting;
        self.publish();
    }

    /// Lists closed segments, oldest first. Anything else is ignored (logged once).
    fn scan(&mut self) -> Result<(), String> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| format!("cannot list {}: {e}", self.dir.display()))?;
        let mut pending = Vec::new();
        for entry in entries.flatten() {
            let os_name = entry.file_name();
            let Some(name) = os_name.to_str() else {
                self.log_foreign(&os_name, "a name that is not UTF-8");
                continue;
            };
            match classify(name) {
                EntryKind::Final(_) => {}
                EntryKind::Partial(_) | EntryKind::Internal => continue,
                EntryKind::Foreign => {
                    self.log_foreign(&os_name, "not a segment name (seg-<ms>-<tag>.ts)");
                    continue;
                }
            }
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if !meta.file_type().is_file() {
                self.log_foreign(&os_name, "not a regular file (symlink, directory, FIFO...)");
                continue;
            }
            pending.push(Pending {
                name: name.to_string(),
                size: meta.len(),
                mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            });
        }
        // The recorder enforces the same budget in the same order (visdcam_core::budget).
        pending.sort_by_cached_key(|p| visdcam_core::budget::queue_key(p.mtime_ns, &p.name));
        let names: HashSet<&str> = pending.iter().map(|p| p.name.as_str()).collect();
        self.notes.offsets.retain(|n, _| names.contains(n.as_str()));
        // After the listing: the recorder writes a segment's note before its rename, so every
        // segment listed above that has a note is in what is read here.
        let mut recorder =
            load_notes(&self.dir.join(RECORDER_NOTES_FILE), &self.notes.boot_id).offsets;
        recorder.retain(|n, _| names.contains(n.as_str()));
        self.recorder_offsets = recorder;
        self.pending = pending;
        Ok(())
    }

    fn log_foreign(&mut self, name: &OsString, why: &str) {
        if self.foreign_logged.insert(name.clone()) {
            log::warn!(
                "ignoring {} in {}: {why}; it is never uploaded",
                Path::new(name).display(),
                self.dir.display()
            );
        }
    }

    /// Drops the oldest pending segments while over `RAM_BUDGET_MB` or under
    /// `RAM_MIN_FREE_MB` free; never the one being uploaded.
    fn enforce_budget(&mut self) {
        let free = visdcam_daemon::fsutil::free_bytes(&self.dir).unwrap_or(u64::MAX);
        let sizes: Vec<u64> = self.pending.iter().map(|p| p.size).collect();
        let protect = self
            .in_flight
            .as_ref()
            .and_then(|n| self.pending.iter().position(|p| &p.name == n));
        let drops = plan_drops(
            &sizes,
            protect,
            self.settings.ram_budget_bytes(),
            free,
            self.settings.ram_min_free_bytes(),
        );
        if drops.is_empty() {
            return;
        }
        let mut gone = HashSet::new();
        for i in drops {
            let p = &self.pending[i];
            match std::fs::remove_file(self.dir.join(&p.name)) {
                Ok(()) => {
                    log::warn!(
                        "dropped {} ({}): pending segments exceed the RAM budget \
                         (RAM_BUDGET_MB={}, RAM_MIN_FREE_MB={}, {} free)",
                        p.name,
                        human_bytes(p.size),
                        self.settings.ram_budget_mb,
                        self.settings.ram_min_free_mb,
                        human_bytes(free)
                    );
                    self.stats.dropped += 1;
                    self.stats.dropped_bytes += p.size;
                    gone.insert(p.name.clone());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    gone.insert(p.name.clone());
                }
                Err(e) => log::error!("cannot drop {}: {e}", p.name),
            }
        }
        self.pending.retain(|p| !gone.contains(&p.name));
        for n in &gone {
            self.notes.offsets.remove(n);
        }
    }

    /// Writes the counters and clock notes (when changed) and sends STATUS=.
    fn publish(&mut self) {
        self.stats.queue = self.pending.len() as u64;
        self.stats.queue_bytes = self.pending.iter().map(|p| p.size).sum();
        let text = self.stats.render();
        if text != self.stats_written {
            if let Err(e) = write_atomic(&self.dir.join(STATS_FILE), text.as_bytes()) {
                if let Verdict::Emit { .. } = self.limiter.check("stats", Instant::now()) {
                    log::error!("cannot write {}: {e}", self.dir.join(STATS_FILE).display());
                }
            }
            self.stats_written = text;
        }
        let notes = self.notes.render();
        if notes != self.notes_written {
            let path = self.dir.join(NOTES_FILE);
            let r = if self.notes.offsets.is_empty() {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            } else {
                write_atomic(&path, notes.as_bytes())
            };
            if let Err(e) = r {
                log::error!("cannot write {}: {e}", path.display());
            }
            self.notes_written = notes;
        }
        let mut status = self.stats.status_line(unix_now());
        if let Some(silent) = self.net_silent {
            status.push_str(&format!(
                "; waiting for the store (no answer for {} s)",
                silent.as_secs()
            ));
        }
        self.notifier.status(&status);
    }
}
