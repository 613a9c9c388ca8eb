//! Test rig for the recorder: a camera double in-process, a temporary config and RAM
//! directory, the real `seg-cam` binary with its own sd_notify socket, and ffprobe.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the rig"
)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Options};
pub use test_rigs::media::{probe_clean, Probe};
use test_rigs::process::{wait_until, ChildGuard};
use visdcam_core::segment::{classify, EntryKind};

pub const BIN: &str = env!("CARGO_BIN_EXE_seg-cam");

/// Datagrams the recorder sent to its NOTIFY_SOCKET, with their arrival times.
#[derive(Default)]
pub struct Notify {
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
}

impl Notify {
    fn listen(path: &Path) -> Notify {
        let sock = UnixDatagram::bind(path).expect("binding the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let n = Notify::default();
        let (lines, stop) = (n.lines.clone(), n.stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(len) = sock.recv(&mut buf) {
                    let now = Instant::now();
                    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
                    let mut l = lines.lock().unwrap();
                    for line in text.lines() {
                        l.push((now, line.to_string()));
                    }
                }
            }
        });
        n
    }

    pub fn all(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap().clone()
    }

    /// STATUS= texts in order.
    pub fn statuses(&self) -> Vec<(Instant, String)> {
        self.all()
            .into_iter()
            .filter_map(|(t, l)| l.strip_prefix("STATUS=").map(|s| (t, s.to_string())))
            .collect()
    }

    pub fn count(&self, line: &str) -> usize {
        self.all().iter().filter(|(_, l)| l == line).count()
    }

    /// Waits for a STATUS= received after `after` that satisfies `pred`.
    pub fn wait_status(
        &self,
        after: Instant,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<(Instant, String)> {
        let mut found = None;
        let _ = wait_until(Instant::now() + timeout, || {
            found = self
                .statuses()
                .into_iter()
                .find(|(t, s)| *t >= after && pred(s));
            found.is_some()
        });
        found
    }

    /// The longest "retry in N s" in effect when the camera recovered at `t`: the last one
    /// announced before `t` and any announced within 1.5 s after it (an attempt that was
    /// already failing when the camera came back).
    pub fn backoff_at(&self, t: Instant) -> Duration {
        let st = self.statuses();
        let last_before = st
            .iter()
            .rposition(|(at, s)| *at <= t && s.contains("retry in"));
        let from = last_before.unwrap_or(st.len());
        let secs = st[from..]
            .iter()
            .filter(|(at, _)| *at <= t + Duration::from_millis(1500))
            .filter_map(|(_, s)| {
                let n = s.rsplit_once("retry in ")?.1.strip_suffix(" s")?;
                n.parse::<u64>().ok()
            })
            .max()
            .unwrap_or(0);
        Duration::from_secs(secs)
    }
}

impl Drop for Notify {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct Rig {
    pub cam: CameraDouble,
    pub tmp: tempfile::TempDir,
    pub etc: PathBuf,
    /// RAM_DIR/cam1
    pub dir: PathBuf,
    pub child: Option<ChildGuard>,
    pub notify: Notify,
    runs: usize,
}

impl Rig {
    /// A 320x240 10 fps double and a config with `extra` lines (SEG_SECONDS=4 by default).
    pub fn new(extra: &str) -> Rig {
        Rig::with_camera(320, 240, 10.0, extra)
    }

    /// A `width`×`height` double at `fps` and a config with `extra` lines.
    pub fn with_camera(width: u32, height: u32, fps: f64, extra: &str) -> Rig {
        let cam = CameraDouble::start(Options {
            width,
            height,
            fps,
            ..Default::default()
        })
        .expect("starting the camera double");
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        let ram = tmp.path().join("ram");
        fs::create_dir_all(etc.join("cameras")).unwrap();
        fs::write(
            etc.join("visdcam.conf"),
            format!(
                // RUN_DIR last: tests name the line numbers of `extra`'s keys.
                "RAM_DIR={}\nSEG_SECONDS=4\nLOG_LEVEL=debug\n{extra}\nRUN_DIR={}\n",
                ram.display(),
                tmp.path().join("run").display()
            ),
        )
        .unwrap();
        fs::write(
            etc.join("cameras/cam1.conf"),
            format!("CAMERA_URL={}\n", cam.stream_url()),
        )
        .unwrap();
        let notify = Notify::listen(&tmp.path().join("notify.sock"));
        Rig {
            cam,
            etc,
            dir: ram.join("cam1"),
            tmp,
            child: None,
            notify,
            runs: 0,
        }
    }

    /// The recorder's live-frame socket (`RUN_DIR/seg-cam1/live.sock`).
    pub fn live_socket(&self) -> PathBuf {
        self.tmp.path().join("run/seg-cam1/live.sock")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("VISDCAM_CONFIG_DIR", &self.etc)
            .env("NOTIFY_SOCKET", self.tmp.path().join("notify.sock"))
            .env("WATCHDOG_USEC", "2000000")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null());
        c
    }

    /// Starts `seg-cam cam1`, its stderr to `stderr-N.log` in the temp dir.
    pub fn start(&mut self) {
        self.runs += 1;
        let log = fs::File::create(self.log_path(self.runs)).unwrap();
        let mut c = self.command();
        c.arg("cam1").stdout(Stdio::null()).stderr(log);
        self.child = Some(ChildGuard::spawn("seg-cam", c).expect("spawning seg-cam"));
    }

    fn log_path(&self, run: usize) -> PathBuf {
        self.tmp.path().join(format!("stderr-{run}.log"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().and_then(|c| c.pid()).expect("running")
    }

    pub fn running(&self) -> bool {
        self.child.as_ref().is_some_and(|c| !c.has_exited())
    }

    /// SIGTERM and wait; the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        c.stop(Duration::from_secs(15)).expect("exit status")
    }

    pub fn kill9(&mut self) {
        let mut c = self.child.take().expect("running");
        c.kill();
    }

    pub fn finals(&self) -> Vec<PathBuf> {
        entries(&self.dir, true)
    }

    pub fn partials(&self) -> Vec<PathBuf> {
        entries(&self.dir, false)
    }

    /// Waits until at least `n` final segments exist.
    pub fn wait_finals(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        wait_until(Instant::now() + timeout, || self.finals().len() >= n)
            .unwrap_or_else(|e| panic!("{n} final segments: {e}; have {:?}", self.finals()));
        self.finals()
    }

    /// Waits until a `.part` holds at least `bytes` (a segment well under way).
    pub fn wait_partial(&self, bytes: u64, timeout: Duration) -> PathBuf {
        let mut found = None;
        wait_until(Instant::now() + timeout, || {
            found = self
                .partials()
                .into_iter()
                .find(|p| fs::metadata(p).is_ok_and(|m| m.len() >= bytes));
            found.is_some()
        })
        .unwrap_or_else(|e| panic!("a .part of {bytes} bytes: {e}"));
        found.unwrap()
    }

    pub fn stderr(&self) -> String {
        (1..=self.runs)
            .map(|r| fs::read_to_string(self.log_path(r)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- next run ---\n")
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("=== seg-cam stderr ===\n{}", self.stderr());
            eprintln!("=== STATUS ===");
            for (_, s) in self.notify.statuses() {
                eprintln!("{s}");
            }
            eprintln!("=== {} ===", self.dir.display());
            for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
                eprintln!(
                    "{} {}",
                    e.file_name().to_string_lossy(),
                    e.metadata().map(|m| m.len()).unwrap_or(0)
                );
            }
        }
    }
}

/// Final (or partial) segments in `dir`, sorted by name (= start time).
pub fn entries(dir: &Path, finals: bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            matches!(
                (classify(&e.file_name().to_string_lossy()), finals),
                (EntryKind::Final(_), true) | (EntryKind::Partial(_), false)
            )
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Every final segment decodes as H.264 with at least one frame; mtimes are distinct seconds.
pub fn assert_all_decodable(dir: &Path) -> Vec<(PathBuf, Probe)> {
    let finals = entries(dir, true);
    assert!(!finals.is_empty(), "no final segment in {}", dir.display());
    let mut seconds = std::collections::BTreeSet::new();
    finals
        .into_iter()
        .map(|p| {
            let pr = probe_clean(&p);
            assert_eq!(pr.codec, "h264", "{}: {pr:?}", p.display());
            assert!(pr.frames > 0, "{}: {pr:?}", p.display());
            assert!(pr.first_is_key, "{} starts on a keyframe", p.display());
            let m = fs::metadata(&p).unwrap().modified().unwrap();
            let s = m.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            assert!(
                seconds.insert(s),
                "{}: mtime second {s} repeated",
                p.display()
            );
            (p, pr)
        })
        .collect()
}

/// The `start ms` in a segment's name.
pub fn start_ms(p: &Path) -> u64 {
    let name = p.file_name().unwrap().to_string_lossy();
    visdcam_core::segment::SegmentName::parse_final(&name)
        .or_else(|| visdcam_core::segment::SegmentName::parse_partial(&name))
        .expect("a segment name")
        .start_ms
}
