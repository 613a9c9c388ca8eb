//! The soak (issue 15): the installed `.deb` on a real systemd (Debian 12 in an nspawn
//! container), three cameras recording camera doubles into the S3 rig through a fault proxy,
//! under a seeded random schedule of every fault class, then a ledger of every segment.
//!
//! Run it with `cargo xtask soak --minutes N --seed S` (builds the package, sets
//! `VISDCAM_DEB`, `VISDCAM_SOAK_MINUTES` and `VISDCAM_SOAK_SEED`). What it does, the fault
//! matrix and the record of the longest run: docs/reliability.md.
//!
//! - Tracks of faults, each with at most one fault at a time, every class of a track played
//!   once (shuffled) before any repeats: the store (503 storm, 500s, cut uploads, the store
//!   down, a silent black hole: `test_rigs::proxy::FaultProxy`), each camera (close, stall, reboot, corrupt frames, HTML,
//!   404), the daemons (`kill -9`, a SIGSTOP shorter than half the unit's `WatchdogSec` and
//!   one longer than all of it, then SIGCONT), RAM pressure (a ballast file leaves the RAM
//!   disk under `RAM_MIN_FREE_MB`), and one container reboot (no daemon fault or ballast near
//!   it, so each restart has one cause).
//! - The ledger's witness is on the host: inotify on each camera's RAM directory through
//!   `/proc/<container pid 1>/root/mnt/ramcam/camN` sees every `seg-*.ts` appear (the
//!   recorder's rename; the directory is listed again whenever the watch is made) and be
//!   deleted; the bytes are read (size, MD5, mtime) as soon as the name appears (or from the
//!   `.part` as the recorder closes it). At the end (after the cool-down: no unit failed,
//!   restarts only those the schedule caused, RSS flat, journal bounded, nothing written
//!   outside RAM and /run) the recorders are stopped (their partials handed off) and the
//!   queues drain; then every
//!   segment is either in the bucket exactly once (found by its `visdcam-start-ms` metadata,
//!   with its bytes and the key of its mtime), or deleted unuploaded and covered by the
//!   daemons' drop counters (RAM budget), or was queued in RAM when the container went down for
//!   the reboot (the RAM disk is RAM) — anything else is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use camera_double::{CameraDouble, Fault, Options as CamOptions};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use test_rigs::container::Container;
use test_rigs::proxy::{FaultProxy, StoreFault};
use test_rigs::s3::{md5_hex, S3Rig};

/// Segment length (short: many segments in the ledger).
const SEG: u32 = 6;
/// Camera doubles: small frames at a low rate, so three cameras and the container fit on a
/// shared two-core machine.
const FPS: f64 = 5.0;
const CAMERAS: [&str; 3] = ["cam1", "cam2", "cam3"];
/// The presets daynight applies keep the doubles' frames small (OV2640 framesize 5: QVGA).
const QVGA: u32 = 5;
/// The recorders' bitrate: about 300 KB per segment.
const BITRATE_KBPS: u32 = 400;
/// The RAM disk's size in the container (a drop-in; the package's default is 25 % of RAM).
const RAM_DISK_MB: u64 = 48;
/// Per camera: past this many MiB queued, the oldest segments are dropped.
const RAM_BUDGET_MB: u64 = 2;
/// Below this free on the RAM disk, queued segments are dropped.
const RAM_MIN_FREE_MB: u64 = 8;
/// The units' `WatchdogSec` (systemd/seg@.service, uploader@.service).
const SEG_WATCHDOG: u64 = 30;
const UPLOADER_WATCHDOG: u64 = 60;
/// How often units, restarts and RSS are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// IST, the key time zone (no daylight saving).
const IST_SECS: i32 = 5 * 3600 + 1800;
/// How much RSS may grow from the first window after warm-up to the last: 10 %, or 1 MiB for a
/// daemon as small as the uploader (6 MB), whose first upload after a long store fault
/// allocates its HTTP and TLS buffers (a step seen at 5.4 → 6.5 MB, flat afterwards).
const RSS_GROWTH: f64 = 0.10;
const RSS_SLACK_KIB: u64 = 1024;

// ---------------------------------------------------------------------------------------------
// The schedule
// ---------------------------------------------------------------------------------------------

/// splitmix64: a small seeded generator, enough for a reproducible schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.range(0, i as u64) as usize;
            v.swap(i, j);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    CamClose,
    CamStall,
    CamReboot,
    CamCorrupt,
    CamHtml,
    CamNotFound,
    Store503,
    Store500,
    StoreCut,
    StoreOutage,
    StoreBlackHole,
    Kill9,
    StopShort,
    StopLong,
    RamPressure,
    Reboot,
}

const CAMERA_CLASSES: [Class; 6] = [
    Class::CamClose,
    Class::CamStall,
    Class::CamReboot,
    Class::CamCorrupt,
    Class::CamHtml,
    Class::CamNotFound,
];
const STORE_CLASSES: [Class; 5] = [
    Class::Store503,
    Class::Store500,
    Class::StoreCut,
    Class::StoreOutage,
    Class::StoreBlackHole,
];
const DAEMON_CLASSES: [Class; 3] = [Class::Kill9, Class::StopShort, Class::StopLong];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::CamClose => "camera close",
            Class::CamStall => "camera stall",
            Class::CamReboot => "camera reboot",
            Class::CamCorrupt => "camera corrupt frames",
            Class::CamHtml => "camera HTML",
            Class::CamNotFound => "camera 404",
            Class::Store503 => "store 503 storm",
            Class::Store500 => "store 500s",
            Class::StoreCut => "store cut bodies",
            Class::StoreOutage => "store outage (down)",
            Class::StoreBlackHole => "store black hole",
            Class::Kill9 => "kill -9",
            Class::StopShort => "SIGSTOP (short)",
            Class::StopLong => "SIGSTOP (past the watchdog)",
            Class::RamPressure => "RAM pressure",
            Class::Reboot => "container reboot",
        }
    }
}

/// The six daemon units the daemon track picks from.
fn units() -> Vec<String> {
    CAMERAS
        .iter()
        .flat_map(|c| [format!("seg@{c}.service"), format!("uploader@{c}.service")])
        .collect()
}

fn watchdog_of(unit: &str) -> u64 {
    if unit.starts_with("seg@") {
        SEG_WATCHDOG
    } else {
        UPLOADER_WATCHDOG
    }
}

/// One scheduled fault: from `at` (since the soak began) for `dur`, on `target` (a camera
/// index, a unit index, or nothing).
#[derive(Debug, Clone)]
struct Event {
    at: Duration,
    dur: Duration,
    class: Class,
    target: usize,
}

impl Event {
    fn describe(&self) -> String {
        let units = units();
        let on = match self.class {
            c if CAMERA_CLASSES.contains(&c) => format!(" on {}", CAMERAS[self.target]),
            c if DAEMON_CLASSES.contains(&c) => format!(" of {}", units[self.target]),
            _ => String::new(),
        };
        format!("{}{on}, {} s", self.class.name(), self.dur.as_secs())
    }
}

/// The soak's phases: warm-up (no faults), faults, cool-down (no faults; RSS's last window).
#[derive(Debug, Clone, Copy)]
struct Phases {
    total: Duration,
    warm: Duration,
    cool: Duration,
    reboot_at: Duration,
}

fn phases(minutes: u64, rng: &mut Rng) -> Phases {
    let total = Duration::from_secs(minutes * 60);
    let warm = Duration::from_secs((minutes * 6).clamp(60, 180));
    let cool = Duration::from_secs((minutes * 10).clamp(100, 300));
    let window = total.saturating_sub(warm + cool);
    // Early, so the RSS windows (after it) are far apart.
    let reboot_at = warm + window * (rng.range(15, 25) as u32) / 100;
    Phases {
        total,
        warm,
        cool,
        reboot_at,
    }
}

/// The seeded schedule: each track draws its classes in shuffled rounds, with random
/// durations and gaps, until the fault window ends.
fn schedule(p: &Phases, rng: &mut Rng) -> Vec<Event> {
    let end = p.total - p.cool;
    let mut events = vec![Event {
        at: p.reboot_at,
        dur: Duration::ZERO,
        class: Class::Reboot,
        target: 0,
    }];
    // Daemon faults and the ballast keep away from the reboot: each restart then has one cause.
    let clear_of_reboot = |at: Duration, dur: Duration| {
        at + dur + Duration::from_secs(45) < p.reboot_at
            || at > p.reboot_at + Duration::from_secs(45)
    };
    let track = |classes: &[Class],
                 rng: &mut Rng,
                 gap: (u64, u64),
                 target: &mut dyn FnMut(&mut Rng) -> usize,
                 keep_clear: bool,
                 events: &mut Vec<Event>| {
        let mut round: Vec<Class> = Vec::new();
        let mut t = p.warm + Duration::from_secs(rng.range(0, gap.1));
        loop {
            if round.is_empty() {
                round = classes.to_vec();
                rng.shuffle(&mut round);
            }
            let class = round[round.len() - 1];
            let tgt = target(rng);
            let secs = match class {
                Class::CamClose | Class::CamReboot => rng.range(5, 25),
                Class::CamStall | Class::CamCorrupt | Class::CamHtml | Class::CamNotFound => {
                    rng.range(10, 40)
                }
                Class::Store503 | Class::Store500 | Class::StoreCut => rng.range(15, 45),
                Class::StoreOutage => rng.range(20, 60),
                // Longer than the uploader's WatchdogSec: waiting on a silent network must not
                // look stuck.
                Class::StoreBlackHole => rng.range(UPLOADER_WATCHDOG + 5, UPLOADER_WATCHDOG + 20),
                Class::Kill9 => 0,
                Class::StopShort => {
                    let w = watchdog_of(&units()[tgt]);
                    rng.range(3, w / 2 - 5)
                }
                Class::StopLong => {
                    let w = watchdog_of(&units()[tgt]);
                    rng.range(w + 5, w + 15)
                }
                Class::RamPressure => rng.range(30, 60),
                Class::Reboot => 0,
            };
            let dur = Duration::from_secs(secs);
            if t + dur > end {
                break;
            }
            if keep_clear && !clear_of_reboot(t, dur) {
                // Later, the same class.
                t += Duration::from_secs(15);
                continue;
            }
            round.pop();
            events.push(Event {
                at: t,
                dur,
                class,
                target: tgt,
            });
            t += dur + Duration::from_secs(rng.range(gap.0, gap.1));
        }
    };
    track(
        &STORE_CLASSES,
        rng,
        (10, 30),
        &mut |_| 0,
        false,
        &mut events,
    );
    for cam in 0..CAMERAS.len() {
        track(
            &CAMERA_CLASSES,
            rng,
            (10, 40),
            &mut |_| cam,
            false,
            &mut events,
        );
    }
    let n_units = units().len() as u64;
    track(
        &DAEMON_CLASSES,
        rng,
        (15, 45),
        &mut |r| r.range(0, n_units - 1) as usize,
        true,
        &mut events,
    );
    track(
        &[Class::RamPressure],
        rng,
        (45, 120),
        &mut |_| 0,
        true,
        &mut events,
    );
    events.sort_by_key(|e| (e.at, e.class));
    events
}

// ---------------------------------------------------------------------------------------------
// The ledger's witness: inotify on the container's RAM directories
// ---------------------------------------------------------------------------------------------

/// A segment seen handed off (a final `seg-*.ts` name in a camera's RAM directory).
#[derive(Debug, Clone)]
struct Seen {
    start_ms: i64,
    /// Size and MD5, read as soon as the name appeared, or from the `.part` as the recorder
    /// closed it (`None` if the uploader had it gone before either read).
    bytes: Option<(u64, String)>,
    /// Its mtime (ns), read when the final name appeared.
    mtime_ns: Option<i64>,
    /// Deleted in the RAM directory (uploaded, or dropped).
    deleted: bool,
    /// The container boot it was seen in (0, then 1 after the reboot).
    boot: u32,
}

#[derive(Default)]
struct Witness {
    /// (camera index, file name) → what was seen.
    seen: BTreeMap<(usize, String), Seen>,
    /// (camera index, final name) → size and MD5 of a `.part` the recorder closed.
    parts: BTreeMap<(usize, String), (u64, String)>,
    /// (boot, camera index) → the drop counters last written: the uploader's `dropped` in
    /// `.uploader-stats` and the recorder's in `.seg-cam-stats` (read at each rewrite, so the
    /// last drops before the reboot are counted too).
    drops: BTreeMap<(u32, usize), (u64, u64)>,
}

/// Drop counter files and their readers.
const UPLOADER_STATS: &str = ".uploader-stats";
const RECORDER_STATS: &str = ".seg-cam-stats";

fn read_dropped(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == "dropped")
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Reads a camera's counter file after it changed; a counter never goes down within a boot.
fn note_counter(witness: &Mutex<Witness>, cam: usize, dir: &Path, name: &str, boot: u32) {
    if name != UPLOADER_STATS && name != RECORDER_STATS {
        return;
    }
    let Some(n) = read_dropped(&dir.join(name)) else {
        return;
    };
    let mut w = witness.lock().unwrap();
    let entry = w.drops.entry((boot, cam)).or_default();
    let slot = if name == UPLOADER_STATS {
        &mut entry.0
    } else {
        &mut entry.1
    };
    *slot = (*slot).max(n);
}

struct Watcher {
    witness: Arc<Mutex<Witness>>,
    pid1: Arc<AtomicU32>,
    boot: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn start_ms_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("seg-")?.strip_suffix(".ts")?;
    rest.split('-').next()?.parse().ok()
}

impl Watcher {
    fn start(pid1: u32) -> Watcher {
        let witness = Arc::new(Mutex::new(Witness::default()));
        let pid = Arc::new(AtomicU32::new(pid1));
        let boot = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (w, p, b, s) = (witness.clone(), pid.clone(), boot.clone(), stop.clone());
        let thread = std::thread::spawn(move || watch_loop(&w, &p, &b, &s));
        Watcher {
            witness,
            pid1: pid,
            boot,
            stop,
            thread: Some(thread),
        }
    }

    fn rebooted(&self, pid1: u32) {
        self.boot.fetch_add(1, Ordering::SeqCst);
        self.pid1.store(pid1, Ordering::SeqCst);
    }

    fn finish(&mut self) -> Witness {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the watcher thread");
        }
        std::mem::take(&mut *self.witness.lock().unwrap())
    }
}

fn note(witness: &Mutex<Witness>, cam: usize, dir: &Path, name: &str, boot: u32) {
    let Some(start_ms) = start_ms_of(name) else {
        return;
    };
    let mut w = witness.lock().unwrap();
    if w.seen.contains_key(&(cam, name.to_owned())) {
        return;
    }
    let path = dir.join(name);
    let mtime_ns = std::fs::metadata(&path).ok().map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.mtime() * 1_000_000_000 + m.mtime_nsec()
    });
    let bytes = std::fs::read(&path)
        .ok()
        .map(|body| (body.len() as u64, md5_hex(&body)))
        .or_else(|| w.parts.remove(&(cam, name.to_owned())));
    w.parts.remove(&(cam, name.to_owned()));
    w.seen.insert(
        (cam, name.to_owned()),
        Seen {
            start_ms,
            bytes,
            mtime_ns,
            deleted: false,
            boot,
        },
    );
}

/// Reads a `.part` the recorder just closed (its bytes are final: the rename comes next).
fn note_part(witness: &Mutex<Witness>, cam: usize, dir: &Path, name: &str) {
    let Some(fin) = name.strip_suffix(".part") else {
        return;
    };
    if start_ms_of(fin).is_none() {
        return;
    }
    if let Ok(body) = std::fs::read(dir.join(name)) {
        let mut w = witness.lock().unwrap();
        if !w.seen.contains_key(&(cam, fin.to_owned())) {
            w.parts
                .insert((cam, fin.to_owned()), (body.len() as u64, md5_hex(&body)));
        }
    }
}

fn watch_loop(witness: &Mutex<Witness>, pid1: &AtomicU32, boot: &AtomicU32, stop: &AtomicBool) {
    let mut ino = Inotify::init().expect("inotify_init");
    // Per camera: the watch and the container pid 1 it was made under.
    let mut watches: Vec<Option<(WatchDescriptor, u32)>> = vec![None; CAMERAS.len()];
    let mut buf = vec![0u8; 256 * 1024];
    let mask = WatchMask::MOVED_TO
        | WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::DELETE
        | WatchMask::MOVED_FROM;
    loop {
        let pid = pid1.load(Ordering::SeqCst);
        let b = boot.load(Ordering::SeqCst);
        for (cam, slot) in watches.iter_mut().enumerate() {
            if let Some((wd, made)) = slot.clone() {
                if made != pid {
                    let _ = ino.watches().remove(wd);
                    *slot = None;
                }
            }
            if slot.is_none() {
                let dir = PathBuf::from(format!("/proc/{pid}/root/mnt/ramcam/{}", CAMERAS[cam]));
                if let Ok(wd) = ino.watches().add(&dir, mask) {
                    *slot = Some((wd, pid));
                    // What appeared before the watch.
                    if let Ok(entries) = std::fs::read_dir(&dir) {
                        for e in entries.flatten() {
                            if let Some(name) = e.file_name().to_str() {
                                note(witness, cam, &dir, name, b);
                                note_counter(witness, cam, &dir, name, b);
                            }
                        }
                    }
                }
            }
        }
        let stopping = stop.load(Ordering::SeqCst);
        loop {
            let events: Vec<(WatchDescriptor, EventMask, Option<String>)> =
                match ino.read_events(&mut buf) {
                    Ok(evs) => evs
                        .map(|e| {
                            (
                                e.wd,
                                e.mask,
                                e.name.and_then(OsStr::to_str).map(str::to_owned),
                            )
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                };
            if events.is_empty() {
                break;
            }
            for (wd, m, name) in events {
                let Some(cam) = watches
                    .iter()
                    .position(|s| s.as_ref().is_some_and(|(w, _)| *w == wd))
                else {
                    continue;
                };
                if m.contains(EventMask::IGNORED) || m.contains(EventMask::UNMOUNT) {
                    watches[cam] = None;
                    continue;
                }
                let Some(name) = name else { continue };
                let dir = PathBuf::from(format!("/proc/{pid}/root/mnt/ramcam/{}", CAMERAS[cam]));
                if m.intersects(EventMask::MOVED_TO | EventMask::CLOSE_WRITE) {
                    note_counter(witness, cam, &dir, &name, b);
                }
                if m.contains(EventMask::CLOSE_WRITE) {
                    note_part(witness, cam, &dir, &name);
                }
                if !name.ends_with(".ts") {
                    continue;
                }
                if m.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                    // Seen first if it came and went between two reads.
                    note(witness, cam, &dir, &name, b);
                    if let Some(s) = witness.lock().unwrap().seen.get_mut(&(cam, name)) {
                        s.deleted = true;
                    }
                } else {
                    note(witness, cam, &dir, &name, b);
                }
            }
        }
        if stopping {
            return;
        }
        // Woken by the next event (the uploader may delete a segment milliseconds after its
        // rename), or after 100 ms to look for directories to watch.
        use std::os::fd::AsFd;
        let mut fds = [nix::poll::PollFd::new(
            ino.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
    }
}

// ---------------------------------------------------------------------------------------------
// Container helpers
// ---------------------------------------------------------------------------------------------

fn deb() -> PathBuf {
    let path = std::env::var_os("VISDCAM_DEB")
        .map(PathBuf::from)
        .expect("VISDCAM_DEB is not set: run the soak with `cargo xtask soak`");
    assert!(
        path.is_file(),
        "VISDCAM_DEB={} is not a file",
        path.display()
    );
    path
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number"))
    })
}

fn sh(c: &Container, script: &str) -> String {
    c.exec_ok(&["sh", "-ec", script])
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .to_owned()
}

fn prop(c: &Container, unit: &str, name: &str) -> String {
    let out = c.exec(&["systemctl", "show", "-P", name, unit]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A unit's state at a sample: active state, main PID and RSS (KiB, 0 unless active).
#[derive(Debug, Clone)]
struct UnitSample {
    active: String,
    pid: String,
    rss_kib: u64,
}

fn sample_units(c: &Container) -> BTreeMap<String, UnitSample> {
    let script = format!(
        "for u in {}; do \
           a=$(systemctl show -P ActiveState $u); p=$(systemctl show -P MainPID $u); \
           r=$(systemctl show -P NRestarts $u); \
           m=$(awk '/^VmRSS:/{{print $2}}' /proc/$p/status 2>/dev/null || true); \
           echo \"$u $a $p $r ${{m:-0}}\"; \
         done",
        units().join(" ")
    );
    let out = c.try_exec(&["sh", "-c", &script]);
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [u, a, pid, _restarts, m] = f.as_slice() else {
                return None;
            };
            Some((
                (*u).to_owned(),
                UnitSample {
                    active: (*a).to_owned(),
                    pid: (*pid).to_owned(),
                    rss_kib: if *a == "active" {
                        m.parse().unwrap_or(0)
                    } else {
                        0
                    },
                },
            ))
        })
        .collect()
}

/// What one boot's journal and counters say, read before the RAM (and the journal in it) goes.
#[derive(Debug, Clone, Default)]
struct BootRecord {
    /// Per unit: NRestarts and the watchdog timeouts systemd logged.
    restarts: BTreeMap<String, u64>,
    watchdog: BTreeMap<String, u64>,
    /// Per camera: journal lines of its two units.
    journal_lines: Vec<u64>,
}

fn boot_record(c: &Container) -> BootRecord {
    let mut r = BootRecord::default();
    for u in units() {
        r.restarts
            .insert(u.clone(), prop(c, &u, "NRestarts").parse().unwrap_or(0));
        let journal = c.journal(&u);
        let n = journal.matches("Watchdog timeout").count() as u64;
        r.watchdog.insert(u, n);
    }
    for cam in CAMERAS {
        let out = c.exec(&[
            "journalctl",
            "--no-pager",
            "-q",
            "-o",
            "cat",
            "-u",
            &format!("seg@{cam}.service"),
            "-u",
            &format!("uploader@{cam}.service"),
        ]);
        r.journal_lines
            .push(String::from_utf8_lossy(&out.stdout).lines().count() as u64);
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Bucket side
// ---------------------------------------------------------------------------------------------

/// An object: its key, camera index, key time, start ms (metadata) and whether its body's MD5
/// is the one in its metadata.
#[derive(Debug, Clone)]
struct Object {
    key: String,
    cam: usize,
    time: DateTime<Utc>,
    start_ms: i64,
    md5: String,
}

/// `camN/YYYY/MM/DD/HH/cam_N_YYYY_MM_DD_HH_mm_ss[-V].ts` → (camera number, key time).
fn parse_key(key: &str) -> Option<(u32, DateTime<Utc>)> {
    let parts: Vec<&str> = key.split('/').collect();
    let [cam, y, mo, d, h, file] = parts.as_slice() else {
        return None;
    };
    let n: u32 = cam.strip_prefix("cam")?.parse().ok()?;
    let rest = file
        .strip_prefix(&format!("cam_{n}_{y}_{mo}_{d}_{h}_"))?
        .strip_suffix(".ts")?;
    let rest = rest.split('-').next()?;
    let (mi, se) = rest.split_once('_')?;
    let naive = NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, d.parse().ok()?)?
        .and_hms_opt(h.parse().ok()?, mi.parse().ok()?, se.parse().ok()?)?;
    let ist = FixedOffset::east_opt(IST_SECS)?;
    let time = naive.and_local_timezone(ist).single()?.with_timezone(&Utc);
    Some((n, time))
}

fn bucket_objects(s3: &S3Rig) -> Vec<Object> {
    s3.list_objects()
        .into_iter()
        .map(|(key, _)| {
            let (n, time) =
                parse_key(&key).unwrap_or_else(|| panic!("key outside the layout: {key}"));
            let (body, meta) = s3.get_object_with_meta(&key);
            let md5 = md5_hex(&body);
            assert_eq!(
                meta.get("md5").map(String::as_str),
                Some(md5.as_str()),
                "{key}: the body's MD5 is not the one in its metadata"
            );
            let start_ms = meta
                .get("visdcam-start-ms")
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{key}: no visdcam-start-ms metadata: {meta:?}"));
            Object {
                key,
                cam: (n as usize)
                    .checked_sub(1)
                    .filter(|i| *i < CAMERAS.len())
                    .unwrap_or_else(|| panic!("camera {n} is not one of the soak's")),
                time,
                start_ms,
                md5,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The soak
// ---------------------------------------------------------------------------------------------

/// What the executor keeps of a fault in progress.
enum Active {
    None,
    Stopped { pid: String },
    Ballast,
}

fn median(v: &mut [u64]) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "a long randomised run of the installed .deb in a container (root, systemd-nspawn, debootstrap, the amd64 .deb): cargo xtask soak --minutes N --seed S (cargo xtask ci runs a short one)"]
fn soak_loses_and_duplicates_nothing_under_a_random_schedule_of_faults() {
    let minutes = env_u64("VISDCAM_SOAK_MINUTES").unwrap_or(10);
    assert!(minutes >= 5, "VISDCAM_SOAK_MINUTES={minutes}: at least 5");
    let seed = env_u64("VISDCAM_SOAK_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    let mut rng = Rng(seed);
    let ph = phases(minutes, &mut rng);
    let events = schedule(&ph, &mut rng);
    eprintln!(
        "soak: {minutes} min, seed {seed}: warm-up {} s, faults until {} s, cool-down {} s; \
         {} scheduled faults:",
        ph.warm.as_secs(),
        (ph.total - ph.cool).as_secs(),
        ph.cool.as_secs(),
        events.len()
    );
    for e in &events {
        eprintln!("  {:>5} s  {}", e.at.as_secs(), e.describe());
    }
    let classes: BTreeSet<Class> = events.iter().map(|e| e.class).collect();
    let all: BTreeSet<Class> = CAMERA_CLASSES
        .iter()
        .chain(&STORE_CLASSES)
        .chain(&DAEMON_CLASSES)
        .chain(&[Class::RamPressure, Class::Reboot])
        .copied()
        .collect();
    let missing: Vec<&str> = all.difference(&classes).map(|c| c.name()).collect();
    if minutes >= 10 {
        assert!(
            missing.is_empty(),
            "seed {seed}: the schedule misses {missing:?}"
        );
    } else if !missing.is_empty() {
        eprintln!("soak: a run this short misses {missing:?}");
    }

    // The rigs: the store behind the fault proxy, three camera doubles.
    let scratch = tempfile::tempdir().unwrap();
    let s3 = S3Rig::start();
    let proxy = FaultProxy::start(s3.addr());
    let cams: Vec<CameraDouble> = (0..CAMERAS.len())
        .map(|_| {
            CameraDouble::start(CamOptions {
                width: 320,
                height: 240,
                fps: FPS,
                ..CamOptions::default()
            })
            .expect("starting a camera double")
        })
        .collect();

    // The package, configured as a person would, with the journal in RAM.
    let mut c = Container::boot().expect("booting the container");
    std::fs::copy(deb(), c.xchg().join("visdcam.deb")).expect("staging the .deb");
    sh(
        &c,
        "DEBIAN_FRONTEND=noninteractive dpkg -i /xchg/visdcam.deb >/dev/null",
    );
    let (creds, _) = s3.write_aws_files(scratch.path(), "b2");
    c.copy_in(&creds, "/etc/visdcam/aws-credentials").unwrap();
    sh(
        &c,
        "chown root:root /etc/visdcam/aws-credentials; chmod 600 /etc/visdcam/aws-credentials",
    );
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        format!(
            "B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
             REQUIRE_CLOCK_SYNC=no\nSEG_SECONDS={SEG}\nKEYFRAME_INTERVAL=10\n\
             RAM_BUDGET_MB={RAM_BUDGET_MB}\nRAM_MIN_FREE_MB={RAM_MIN_FREE_MB}\n\
             X264_BITRATE_KBPS={BITRATE_KBPS}\nPRESET_DAY_FRAMESIZE={QVGA}\n\
             PRESET_NIGHT_FRAMESIZE={QVGA}\n",
            proxy.endpoint(),
            s3.bucket(),
            s3.region()
        )
        .as_bytes(),
    )
    .unwrap();
    for (cam, double) in CAMERAS.iter().zip(&cams) {
        c.write_file(
            &format!("/etc/visdcam/cameras/{cam}.conf"),
            format!("CAMERA_URL={}\n", double.stream_url()).as_bytes(),
        )
        .unwrap();
    }
    c.write_file(
        "/etc/systemd/system/mnt-ramcam.mount.d/size.conf",
        format!(
            "[Mount]\nOptions=mode=2770,uid=visdcam,gid=visdcam,size={RAM_DISK_MB}M,nosuid,nodev,noexec\n"
        )
        .as_bytes(),
    )
    .unwrap();
    sh(
        &c,
        "systemctl stop mnt-ramcam.mount; systemctl daemon-reload",
    );
    sh(&c, "visdcam ramlogs on >/dev/null");
    sh(
        &c,
        "visdcam enable all >/dev/null && visdcam start all >/dev/null",
    );
    assert_eq!(
        sh(&c, "findmnt -n -o SIZE /mnt/ramcam"),
        format!("{RAM_DISK_MB}M")
    );
    let mut watcher = Watcher::start(c.pid1());
    wait_for("an object of every camera", Duration::from_secs(90), || {
        let keys = s3.list_objects();
        (1..=CAMERAS.len()).all(|n| keys.iter().any(|(k, _)| k.starts_with(&format!("cam{n}/"))))
    });
    let written_start = c.written_file_stats();
    let mut written_before_reboot = BTreeMap::new();
    let mut written_after_reboot = BTreeMap::new();

    // The schedule, played against the clock (the soak's length is the point).
    let t0 = Instant::now();
    let mut actions: Vec<(Duration, bool, usize)> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        actions.push((e.at, true, i));
        if e.dur > Duration::ZERO {
            actions.push((e.at + e.dur, false, i));
        }
    }
    actions.sort_by_key(|a| (a.0, a.1));
    let mut active: Vec<Active> = events.iter().map(|_| Active::None).collect();
    let units = units();
    let mut executed: BTreeMap<(String, Class), u64> = BTreeMap::new();
    let mut boots: Vec<BootRecord> = Vec::new();
    // (time, boot, units).
    let mut samples: Vec<(Duration, usize, BTreeMap<String, UnitSample>)> = Vec::new();
    let mut rebooted_at = Duration::ZERO;
    let mut next_sample = Duration::ZERO;
    let mut next_action = 0;
    let log = |t: Duration, what: &str| eprintln!("[{:>6.1} s] {what}", t.as_secs_f64());
    loop {
        let now = t0.elapsed();
        if now >= next_sample {
            let sample = sample_units(&c);
            let down: Vec<String> = sample
                .iter()
                .filter(|(_, s)| s.active != "active")
                .map(|(u, s)| format!("{u} {}", s.active))
                .collect();
            if !down.is_empty() {
                log(now, &format!("  not active: {}", down.join(", ")));
            }
            samples.push((now, boots.len(), sample));
            next_sample = now + SAMPLE_EVERY;
        }
        if next_action < actions.len() && actions[next_action].0 <= now {
            let (_, begin, i) = actions[next_action];
            next_action += 1;
            let e = &events[i];
            let verb = if begin { "begin" } else { "end" };
            log(now, &format!("{verb} {}", e.describe()));
            match (e.class, begin) {
                (Class::CamClose, true) => cams[e.target].set_fault(Fault::CloseAndRefuse(e.dur)),
                (Class::CamReboot, true) => cams[e.target].set_fault(Fault::Reboot(e.dur)),
                (Class::CamClose | Class::CamReboot, false) => {}
                (Class::CamStall, true) => cams[e.target].set_fault(Fault::Stall),
                (Class::CamCorrupt, true) => cams[e.target].set_fault(Fault::CorruptJpeg),
                // HTML and 404 answer new stream requests: the stream running is closed first.
                (Class::CamHtml | Class::CamNotFound, true) => {
                    let cam = &cams[e.target];
                    cam.set_fault(Fault::CloseAndRefuse(Duration::ZERO));
                    cam.set_fault(if e.class == Class::CamHtml {
                        Fault::Html
                    } else {
                        Fault::NotFound
                    });
                }
                (
                    Class::CamStall | Class::CamCorrupt | Class::CamHtml | Class::CamNotFound,
                    false,
                ) => cams[e.target].set_fault(Fault::None),
                (Class::Store503, true) => proxy.set_fault(StoreFault::SlowDown),
                (Class::Store500, true) => proxy.set_fault(StoreFault::InternalError),
                (Class::StoreCut, true) => proxy.set_fault(StoreFault::CutBody),
                (Class::StoreBlackHole, true) => proxy.set_fault(StoreFault::BlackHole),
                (
                    Class::Store503
                    | Class::Store500
                    | Class::StoreCut
                    | Class::StoreBlackHole
                    | Class::StoreOutage,
                    false,
                ) => proxy.set_fault(StoreFault::Pass),
                (Class::StoreOutage, true) => proxy.set_fault(StoreFault::Down),
                (Class::Kill9 | Class::StopShort | Class::StopLong, true) => {
                    let unit = &units[e.target];
                    let pid = prop(&c, unit, "MainPID");
                    if pid.is_empty() || pid == "0" {
                        log(now, &format!("  {unit} has no main process: skipped"));
                    } else {
                        let sig = if e.class == Class::Kill9 {
                            "KILL"
                        } else {
                            "STOP"
                        };
                        let out = c.exec(&["kill", &format!("-{sig}"), &pid]);
                        if out.status.success() {
                            *executed.entry((unit.clone(), e.class)).or_default() += 1;
                            if e.class != Class::Kill9 {
                                active[i] = Active::Stopped { pid };
                            }
                        } else {
                            log(now, &format!("  kill -{sig} {pid} failed: skipped"));
                        }
                    }
                }
                (Class::Kill9, false) => {}
                (Class::StopShort | Class::StopLong, false) => {
                    if let Active::Stopped { pid } = &active[i] {
                        // The process may be gone (the watchdog): then this finds nothing.
                        let _ = c.exec(&["kill", "-CONT", pid]);
                    }
                    active[i] = Active::None;
                }
                (Class::RamPressure, true) => {
                    let free = sh(&c, "stat -f -c '%a %S' /mnt/ramcam");
                    let (blocks, bsize) = free.split_once(' ').unwrap();
                    let free: u64 = blocks.parse::<u64>().unwrap() * bsize.parse::<u64>().unwrap();
                    let leave = RAM_MIN_FREE_MB / 2 * 1024 * 1024;
                    let size = free.saturating_sub(leave);
                    sh(
                        &c,
                        &format!("fallocate -l {size} /mnt/ramcam/.soak-ballast"),
                    );
                    log(
                        now,
                        &format!(
                            "  ballast {} MiB, {} MiB left free",
                            size >> 20,
                            leave >> 20
                        ),
                    );
                    active[i] = Active::Ballast;
                }
                (Class::RamPressure, false) => {
                    if let Active::Ballast = active[i] {
                        sh(&c, "rm -f /mnt/ramcam/.soak-ballast");
                    }
                    active[i] = Active::None;
                }
                (Class::Reboot, true) => {
                    boots.push(boot_record(&c));
                    written_before_reboot = c.written_file_stats();
                    c.reboot().expect("rebooting the container");
                    watcher.rebooted(c.pid1());
                    wait_for(
                        "every unit back after the reboot",
                        Duration::from_secs(90),
                        || units.iter().all(|u| prop(&c, u, "ActiveState") == "active"),
                    );
                    written_after_reboot = c.written_file_stats();
                    rebooted_at = t0.elapsed();
                    log(rebooted_at, "  rebooted, every unit active");
                }
                (Class::Reboot, false) => {}
            }
            continue;
        }
        if next_action >= actions.len() && now >= ph.total {
            break;
        }
        let next = actions
            .get(next_action)
            .map_or(ph.total, |a| a.0)
            .min(next_sample)
            .min(ph.total);
        std::thread::sleep(
            next.saturating_sub(t0.elapsed())
                .min(Duration::from_secs(1)),
        );
    }

    // The end: nothing failed; the recorders stop (their partials handed off) and the queues
    // drain through a healthy store.
    // daynight.service is a oneshot the timer runs every 5 minutes; a camera that is down
    // does not fail it (exit 75 is success for the unit), a camera that refuses its preset
    // does, until the next run. Run it now, as the timer would: what is failed after that is
    // stuck.
    let daynight = c.exec(&["systemctl", "start", "daynight.service"]);
    if !daynight.status.success() {
        eprintln!(
            "soak: daynight after the cool-down:\n{}",
            c.journal("daynight.service")
        );
    }
    let failed = sh(&c, "systemctl --failed --no-legend --plain");
    let written_end = c.written_file_stats();
    for cam in CAMERAS {
        sh(&c, &format!("systemctl stop seg@{cam}.service"));
    }
    // Not a panic on timeout: what is left is in the ledger (and fails it), with the rest.
    let drained = test_rigs::process::wait_until(Instant::now() + Duration::from_secs(300), || {
        CAMERAS.iter().all(|cam| {
            std::fs::read_dir(format!("/proc/{}/root/mnt/ramcam/{cam}", c.pid1()))
                .map(|d| {
                    !d.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".ts"))
                })
                .unwrap_or(false)
        })
    });
    if drained.is_err() {
        eprintln!("soak: the upload queues did not drain within 300 s");
    }
    boots.push(boot_record(&c));
    let elapsed = t0.elapsed();
    // The kernel queued the events of the last changes as they happened; the watcher's final
    // pass reads them all before it returns.
    let witness = watcher.finish();
    let objects = bucket_objects(&s3);

    // The ledger.
    let mut by_segment: BTreeMap<(usize, i64), Vec<&Object>> = BTreeMap::new();
    for o in &objects {
        by_segment.entry((o.cam, o.start_ms)).or_default().push(o);
    }
    let last_boot = (boots.len() - 1) as u32;
    let mut uploaded = 0u64;
    let mut deleted_unuploaded = vec![0u64; CAMERAS.len()];
    let mut at_reboot = 0u64;
    let mut left = Vec::new();
    let mut gone = Vec::new();
    let mut duplicated = Vec::new();
    let mut wrong = Vec::new();
    let mut handed = vec![0u64; CAMERAS.len()];
    let mut matched: BTreeSet<String> = BTreeSet::new();
    let mut bytes_checked = 0u64;
    let mut keys_checked = 0u64;
    for ((cam, name), s) in &witness.seen {
        handed[*cam] += 1;
        let found = by_segment
            .get(&(*cam, s.start_ms))
            .cloned()
            .unwrap_or_default();
        match found.as_slice() {
            [] if s.deleted => {
                deleted_unuploaded[*cam] += 1;
                gone.push(format!("{}/{name} (boot {})", CAMERAS[*cam], s.boot));
            }
            [] if s.boot < last_boot => at_reboot += 1,
            [] => left.push(format!("{}/{name}", CAMERAS[*cam])),
            [o] => {
                uploaded += 1;
                matched.insert(o.key.clone());
                if let Some((_, md5)) = &s.bytes {
                    bytes_checked += 1;
                    if *md5 != o.md5 {
                        wrong.push(format!(
                            "{}/{name} → {}: MD5 {md5} in RAM, {} in the bucket",
                            CAMERAS[*cam], o.key, o.md5
                        ));
                    }
                }
                if let Some(mtime_ns) = s.mtime_ns {
                    keys_checked += 1;
                    let key_s = o.time.timestamp();
                    let mtime_s = mtime_ns.div_euclid(1_000_000_000);
                    if key_s != mtime_s {
                        wrong.push(format!(
                            "{}/{name} → {}: mtime {mtime_s}, key time {key_s}",
                            CAMERAS[*cam], o.key
                        ));
                    }
                }
            }
            many => duplicated.push(format!(
                "{}/{name}: {:?}",
                CAMERAS[*cam],
                many.iter().map(|o| &o.key).collect::<Vec<_>>()
            )),
        }
    }
    let unseen: Vec<&Object> = objects
        .iter()
        .filter(|o| !matched.contains(&o.key))
        .collect();
    let unseen_dups = unseen
        .iter()
        .filter(|o| by_segment[&(o.cam, o.start_ms)].len() > 1)
        .count();
    let drops_counted: Vec<u64> = (0..CAMERAS.len())
        .map(|i| {
            witness
                .drops
                .iter()
                .filter(|((_, cam), _)| *cam == i)
                .map(|(_, (u, r))| u + r)
                .sum()
        })
        .collect();
    let lost: u64 = (0..CAMERAS.len())
        .map(|i| deleted_unuploaded[i].saturating_sub(drops_counted[i]))
        .sum();
    let dropped_budget: u64 = (0..CAMERAS.len())
        .map(|i| deleted_unuploaded[i].min(drops_counted[i]))
        .sum();
    let only_in_bucket = (unseen.len() - unseen_dups) as u64;
    let handed_total = handed.iter().sum::<u64>() + only_in_bucket;
    let dup_total = duplicated.len() + unseen_dups;
    eprintln!(
        "\nsoak: ledger after {:.1} min (seed {seed}):",
        elapsed.as_secs_f64() / 60.0
    );
    eprintln!(
        "  {handed_total} handed off, {} uploaded, {} dropped (RAM budget/free space: \
         {dropped_budget}; queued in RAM at the reboot: {at_reboot}), {lost} lost, {dup_total} \
         duplicated",
        uploaded + only_in_bucket,
        dropped_budget + at_reboot
    );
    eprintln!(
        "  per camera handed off {handed:?}; drop counters (uploader + recorder) {drops_counted:?}; \
         {only_in_bucket} object(s) whose hand-off the watcher missed; bytes checked against \
         the RAM copy for {bytes_checked}, key time against the mtime for {keys_checked}"
    );
    eprintln!("  store proxy: {:?}", proxy.counts());

    // Restarts: each caused by the schedule.
    let mut restart_lines = Vec::new();
    let mut restart_errors = Vec::new();
    for u in &units {
        let observed: u64 = boots.iter().map(|b| b.restarts[u]).sum();
        let wd: u64 = boots.iter().map(|b| b.watchdog[u]).sum();
        let n = |cl: Class| executed.get(&(u.clone(), cl)).copied().unwrap_or(0);
        let (kills, short, long) = (n(Class::Kill9), n(Class::StopShort), n(Class::StopLong));
        restart_lines.push(format!(
            "{u}: {observed} restarts ({wd} by the watchdog); scheduled kill -9 {kills}, \
             SIGSTOP short {short}, past the watchdog {long}"
        ));
        if observed < kills + long || observed > kills + long + short {
            restart_errors.push(format!(
                "{u}: {observed} restarts, the schedule explains {}..={}",
                kills + long,
                kills + long + short
            ));
        }
        if wd < long || wd > long + short {
            restart_errors.push(format!(
                "{u}: {wd} watchdog timeouts, the schedule explains {long}..={}",
                long + short
            ));
        }
    }
    eprintln!("  restarts:\n    {}", restart_lines.join("\n    "));

    // RSS: the median of the first window after the warm-up that follows the reboot (every
    // process is new then) vs the median of the last window (up to 10 min each), counting only
    // processes past their own warm-up (a restarted daemon starts small).
    let rss_start = ph.warm.max(rebooted_at + ph.warm);
    let win = (ph.total.saturating_sub(rss_start) / 4).min(Duration::from_secs(600));
    let mut born: BTreeMap<(String, usize, String), Duration> = BTreeMap::new();
    for (t, boot, s) in &samples {
        for (u, x) in s {
            born.entry((u.clone(), *boot, x.pid.clone())).or_insert(*t);
        }
    }
    let mut rss_lines = Vec::new();
    let mut rss_errors = Vec::new();
    for u in &units {
        let pick = |from: Duration, to: Duration, grown: bool| -> Vec<u64> {
            samples
                .iter()
                .filter(|(t, _, _)| *t >= from && *t <= to)
                .filter_map(|(t, boot, s)| {
                    let x = s.get(u)?;
                    let age = *t - born[&(u.clone(), *boot, x.pid.clone())];
                    (!grown || age >= ph.warm).then_some(x.rss_kib)
                })
                .filter(|r| *r > 0)
                .collect()
        };
        let first = median(&mut pick(rss_start, rss_start + win, true));
        let last = median(&mut pick(ph.total - win, ph.total, true));
        // A minute-by-minute line (medians) for the record.
        let timeline: Vec<String> = (0..=ph.total.as_secs() / 60)
            .map(|m| {
                let from = Duration::from_secs(m * 60);
                median(&mut pick(from, from + Duration::from_secs(59), false)).to_string()
            })
            .collect();
        rss_lines.push(format!(
            "{u}: {first} KiB → {last} KiB; per minute: {}",
            timeline.join(" ")
        ));
        let grown = last.saturating_sub(first);
        if first == 0
            || last == 0
            || (last as f64 > first as f64 * (1.0 + RSS_GROWTH) && grown > RSS_SLACK_KIB)
        {
            rss_errors.push(format!("{u}: RSS {first} KiB → {last} KiB"));
        }
    }
    eprintln!(
        "  RSS (median from {} s for {} s → the last {} s; processes older than {} s):\n    {}",
        rss_start.as_secs(),
        win.as_secs(),
        win.as_secs(),
        ph.warm.as_secs(),
        rss_lines.join("\n    ")
    );

    // Journal lines per camera: one per upload plus a bounded few per fault that touched it.
    let hours = elapsed.as_secs_f64() / 3600.0;
    let mut journal_errors = Vec::new();
    let mut journal_lines = Vec::new();
    for (i, cam) in CAMERAS.iter().enumerate() {
        let lines: u64 = boots.iter().map(|b| b.journal_lines[i]).sum();
        let touching = events
            .iter()
            .filter(|e| {
                let on_cam = CAMERA_CLASSES.contains(&e.class) && e.target == i;
                let on_unit = DAEMON_CLASSES.contains(&e.class)
                    && units[e.target].ends_with(&format!("@{cam}.service"));
                on_cam
                    || on_unit
                    || STORE_CLASSES.contains(&e.class)
                    || matches!(e.class, Class::RamPressure | Class::Reboot)
            })
            .count() as u64;
        let bound = handed[i] + 25 * touching + 40;
        journal_lines.push(format!(
            "{cam}: {lines} lines ({:.0}/h; bound {bound}: {} segments + 25 × {touching} faults + 40)",
            lines as f64 / hours,
            handed[i]
        ));
        if lines > bound {
            journal_errors.push(format!("{cam}: {lines} journal lines > {bound}"));
        }
    }
    eprintln!("  journal:\n    {}", journal_lines.join("\n    "));

    // Nothing written outside RAM and /run in steady state (the reboot itself aside).
    let changed = |a: &BTreeMap<String, (SystemTime, u64)>,
                   b: &BTreeMap<String, (SystemTime, u64)>| {
        b.iter()
            .filter(|(f, st)| a.get(*f) != Some(*st))
            .map(|(f, _)| f.clone())
            .chain(a.keys().filter(|f| !b.contains_key(*f)).cloned())
            .collect::<Vec<String>>()
    };
    let mut sd_writes = changed(&written_start, &written_before_reboot);
    sd_writes.extend(changed(&written_after_reboot, &written_end));
    let by_reboot = changed(&written_before_reboot, &written_after_reboot);
    eprintln!("  written to the root file system by the reboot itself: {by_reboot:?}");
    // systemd's own state and the login records (systemd-update-utmp) of any Debian reboot.
    let reboot_outside_systemd: Vec<&String> = by_reboot
        .iter()
        .filter(|f| !f.starts_with("/var/lib/systemd/") && f.as_str() != "/var/log/wtmp")
        .collect();

    let mut problems = Vec::new();
    if lost > 0 || dup_total > 0 {
        problems.push(format!(
            "{lost} lost, {dup_total} duplicated: {duplicated:#?}; deleted in RAM without an \
             object: {gone:#?}"
        ));
    }
    if !left.is_empty() {
        problems.push(format!("segments still queued after the drain: {left:?}"));
    }
    if !wrong.is_empty() {
        problems.push(format!("objects with other bytes or key time: {wrong:#?}"));
    }
    if !failed.is_empty() {
        problems.push(format!("failed units at the end: {failed}"));
    }
    problems.extend(restart_errors);
    problems.extend(rss_errors);
    problems.extend(journal_errors);
    if !sd_writes.is_empty() {
        problems.push(format!(
            "written outside RAM and /run in steady state: {sd_writes:#?}"
        ));
    }
    if !reboot_outside_systemd.is_empty() {
        problems.push(format!("the reboot wrote {reboot_outside_systemd:?}"));
    }
    if !problems.is_empty() {
        let failed_units = failed.lines().filter_map(|l| l.split_whitespace().next());
        for u in units.iter().map(String::as_str).chain(failed_units) {
            eprintln!("--- {u}:\n{}", c.journal(u));
        }
    }
    assert!(
        problems.is_empty(),
        "soak seed {seed}:\n{}",
        problems.join("\n")
    );
}

/// The schedule alone (no container): from 10 minutes on every class is drawn whatever the
/// seed, and no daemon fault or ballast comes near the reboot.
#[test]
fn schedules_hold_every_class_and_keep_daemon_faults_off_the_reboot() {
    let all: BTreeSet<Class> = CAMERA_CLASSES
        .iter()
        .chain(&STORE_CLASSES)
        .chain(&DAEMON_CLASSES)
        .chain(&[Class::RamPressure, Class::Reboot])
        .copied()
        .collect();
    for minutes in [10, 30, 60] {
        for seed in 0..500 {
            let mut rng = Rng(seed);
            let ph = phases(minutes, &mut rng);
            let events = schedule(&ph, &mut rng);
            let classes: BTreeSet<Class> = events.iter().map(|e| e.class).collect();
            let missing: Vec<&Class> = all.difference(&classes).collect();
            assert!(
                missing.is_empty(),
                "{minutes} min, seed {seed}: no {missing:?}"
            );
            for e in &events {
                assert!(
                    e.at >= ph.warm && e.at + e.dur <= ph.total - ph.cool,
                    "{e:?}"
                );
                if DAEMON_CLASSES.contains(&e.class) || e.class == Class::RamPressure {
                    let clear = e.at + e.dur + Duration::from_secs(45) < ph.reboot_at
                        || e.at > ph.reboot_at + Duration::from_secs(45);
                    assert!(clear, "{minutes} min, seed {seed}: {e:?} near the reboot");
                }
            }
            let mut again = Rng(seed);
            let ph2 = phases(minutes, &mut again);
            assert_eq!(
                format!("{:?}", schedule(&ph2, &mut again)),
                format!("{events:?}")
            );
        }
    }
}
