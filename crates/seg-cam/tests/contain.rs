//! One camera's trouble must not stop the others (issue 15, item 1): two cameras share a small
//! RAM disk, cam1's uploader never runs, cam2's uploads into the S3 rig. The recorder keeps its
//! own camera within `RAM_BUDGET_MB`, so cam1 stays within its budget and cam2 loses nothing.
//!
//! Real parts: two camera doubles, two `seg-cam` processes, the real `uploader` for cam2 (the
//! workspace's own build next to `seg-cam`), SeaweedFS, and a real tmpfs the test mounts
//! under its temporary directory (needs root; unmounted on drop).
//!
//! Scaled down: the issue asks for ten minutes. Here the tmpfs is 24 MiB, `RAM_BUDGET_MB=8`,
//! `SEG_SECONDS=2`, and cam1 records 640x480 at `X264_BITRATE_KBPS=6000` (3 to 4 Mbit/s from
//! the double), so cam1 alone hands off more than the whole tmpfs within the 80 s run (the test
//! asserts it did): without the recorder's budget the RAM disk is full after about a minute,
//! cam2's uploader then drops cam2's segments to keep `RAM_MIN_FREE_MB` free and both recorders
//! hit ENOSPC — this test failed that way before the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Options};
use inotify::{Inotify, WatchMask};
use test_rigs::process::{wait_until, ChildGuard};
use test_rigs::s3::S3Rig;
use visdcam_core::budget::{RecorderStats, RECORDER_STATS_FILE};
use visdcam_core::segment::{classify, EntryKind};
use visdcam_core::upload::{Stats, STATS_FILE};

const TMPFS_MIB: u64 = 24;
const BUDGET_MIB: u64 = 8;
const RUN: Duration = Duration::from_secs(80);

/// A tmpfs mounted on a directory; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, mib: u64) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .expect("running mount");
        assert!(st.success(), "mounting a tmpfs on {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Final segments handed off in a directory (inotify `MOVED_TO`), with their size then.
struct HandOffs {
    seen: Arc<Mutex<BTreeMap<String, u64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HandOffs {
    fn watch(dir: &Path) -> HandOffs {
        let mut ino = Inotify::init().unwrap();
        ino.watches().add(dir, WatchMask::MOVED_TO).unwrap();
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, dir) = (seen.clone(), stop.clone(), dir.to_path_buf());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                // Read before the queue: once told to stop, one last pass reads every event the
                // kernel queued before, and the empty queue ends it.
                let stopping = st.load(Ordering::SeqCst);
                match ino.read_events(&mut buf) {
                    Ok(events) => {
                        for e in events {
                            let Some(name) = e.name.and_then(|n| n.to_str()) else {
                                continue;
                            };
                            if let EntryKind::Final(_) = classify(name) {
                                let size = fs::metadata(dir.join(name)).map_or(0, |m| m.len());
                                s.lock().unwrap().insert(name.to_string(), size);
                            }
                        }
                    }
                    Err(_) if stopping => return,
                    // Nothing queued (a non-blocking read): look again shortly.
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        HandOffs {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Every hand-off the directory saw until now (its writers stopped).
    fn finish(&mut self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("the hand-off watcher");
        }
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for HandOffs {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Final segments in `dir` and their total size.
fn finals(dir: &Path) -> (usize, u64) {
    let mut n = 0;
    let mut bytes = 0;
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if let EntryKind::Final(_) = classify(&e.file_name().to_string_lossy()) {
            n += 1;
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    (n, bytes)
}

fn sibling(name: &str) -> PathBuf {
    test_rigs::process::sibling_binary(env!("CARGO_BIN_EXE_seg-cam"), name)
}

fn spawn(
    name: &str,
    bin: &Path,
    camera: &str,
    etc: &Path,
    log: &Path,
    env: &[(&str, &Path)],
) -> ChildGuard {
    let mut c = Command::new(bin);
    c.arg(camera)
        .env("VISDCAM_CONFIG_DIR", etc)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap());
    for (k, v) in env {
        c.env(k, v);
    }
    ChildGuard::spawn(name, c).unwrap()
}

#[test]
#[ignore = "takes 2 min and needs root (mounts a tmpfs): cargo xtask ci runs it; by hand: sudo cargo test -p seg-cam --test contain -- --ignored"]
fn a_camera_without_its_uploader_stays_in_budget_and_the_other_loses_nothing() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts a tmpfs and needs root"
    );
    let rig = S3Rig::start();
    let cam1 = CameraDouble::start(Options {
        width: 640,
        height: 480,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    let cam2 = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ram = tmp.path().join("ram");
    let _tmpfs = Tmpfs::mount(&ram, TMPFS_MIB);
    let etc = tmp.path().join("etc");
    fs::create_dir_all(etc.join("cameras")).unwrap();
    fs::write(
        etc.join("visdcam.conf"),
        format!(
            "RAM_DIR={}\nSEG_SECONDS=2\nRAM_BUDGET_MB={BUDGET_MIB}\nRAM_MIN_FREE_MB=2\n\
             B2_ENDPOINT={}\nB2_BUCKET={}\nB2_ADDRESSING_STYLE=path\nREQUIRE_CLOCK_SYNC=no\n\
             LOG_LEVEL=info\n",
            ram.display(),
            rig.endpoint(),
            rig.bucket()
        ),
    )
    .unwrap();
    fs::write(
        etc.join("cameras/cam1.conf"),
        format!("CAMERA_URL={}\nX264_BITRATE_KBPS=6000\n", cam1.stream_url()),
    )
    .unwrap();
    fs::write(
        etc.join("cameras/cam2.conf"),
        format!("CAMERA_URL={}\nX264_BITRATE_KBPS=1000\n", cam2.stream_url()),
    )
    .unwrap();
    let awsdir = tmp.path().join("aws");
    fs::create_dir_all(&awsdir).unwrap();
    let (creds, aws_config) = rig.write_aws_files(&awsdir, "b2");
    let (dir1, dir2) = (ram.join("cam1"), ram.join("cam2"));
    fs::create_dir_all(&dir1).unwrap();
    fs::create_dir_all(&dir2).unwrap();
    let mut handed1 = HandOffs::watch(&dir1);
    let mut handed2 = HandOffs::watch(&dir2);

    let segcam = Path::new(env!("CARGO_BIN_EXE_seg-cam"));
    let logs = tmp.path();
    let mut rec1 = spawn(
        "seg-cam cam1",
        segcam,
        "cam1",
        &etc,
        &logs.join("seg1.log"),
        &[],
    );
    let mut rec2 = spawn(
        "seg-cam cam2",
        segcam,
        "cam2",
        &etc,
        &logs.join("seg2.log"),
        &[],
    );
    let mut up2 = spawn(
        "uploader cam2",
        &sibling("uploader"),
        "cam2",
        &etc,
        &logs.join("up2.log"),
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", &creds),
            ("AWS_CONFIG_FILE", &aws_config),
        ],
    );
    let dump = || {
        let read = |n: &str| fs::read_to_string(logs.join(n)).unwrap_or_default();
        let tail = |s: String| {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(40)..].join("\n")
        };
        format!(
            "--- seg1 ---\n{}\n--- seg2 ---\n{}\n--- up2 ---\n{}",
            tail(read("seg1.log")),
            tail(read("seg2.log")),
            tail(read("up2.log"))
        )
    };

    // Record; sample cam1's queue and the tmpfs' free space.
    let start = Instant::now();
    let mut max_queue1 = 0u64;
    let mut min_free = u64::MAX;
    while start.elapsed() < RUN {
        max_queue1 = max_queue1.max(finals(&dir1).1);
        if let Ok(s) = nix::sys::statvfs::statvfs(&ram) {
            #[allow(clippy::unnecessary_cast, reason = "narrower on 32-bit targets")]
            let free = s.blocks_available() as u64 * s.fragment_size() as u64;
            min_free = min_free.min(free);
        }
        assert!(
            !rec1.has_exited() && !rec2.has_exited() && !up2.has_exited(),
            "a daemon exited\n{}",
            dump()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(rec1
        .stop(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    assert!(rec2
        .stop(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    // cam2's uploader drains its queue, then stops.
    let drained = wait_until(Instant::now() + Duration::from_secs(60), || {
        finals(&dir2).0 == 0
    });
    assert!(drained.is_ok(), "cam2's queue did not drain\n{}", dump());
    assert!(up2
        .stop(Duration::from_secs(15))
        .is_some_and(|s| s.success()));

    let h1 = handed1.finish();
    let h2 = handed2.finish();
    let seg_max1 = h1.values().copied().max().unwrap_or(0);
    let handed_bytes1: u64 = h1.values().sum();
    let rstats1 = RecorderStats::parse(
        &fs::read_to_string(dir1.join(RECORDER_STATS_FILE)).unwrap_or_default(),
    );
    let rstats2 = RecorderStats::parse(
        &fs::read_to_string(dir2.join(RECORDER_STATS_FILE)).unwrap_or_default(),
    );
    let ustats2 = Stats::parse(&fs::read_to_string(dir2.join(STATS_FILE)).unwrap_or_default());
    let bucket: BTreeSet<String> = rig.list_objects().into_iter().map(|(k, _)| k).collect();
    let (left1, _) = finals(&dir1);
    eprintln!(
        "cam1: {} segments handed off ({} MiB, largest {} KiB), recorder dropped {} ({} MiB), \
         {left1} left, largest queue {} KiB (budget {} KiB); tmpfs {TMPFS_MIB} MiB, least free \
         {} KiB; cam2: {} handed off, {} uploaded, {} dropped by the uploader, {} by the \
         recorder, {} objects in the bucket",
        h1.len(),
        handed_bytes1 >> 20,
        seg_max1 >> 10,
        rstats1.dropped,
        rstats1.dropped_bytes >> 20,
        max_queue1 >> 10,
        BUDGET_MIB << 10,
        min_free >> 10,
        h2.len(),
        ustats2.uploaded,
        ustats2.dropped,
        rstats2.dropped,
        bucket.len()
    );

    // cam1 stayed within its budget (a just-handed-off segment may be seen before the drop
    // it triggers), and every segment it handed off is queued or counted as dropped.
    assert!(
        max_queue1 <= (BUDGET_MIB << 20) + seg_max1,
        "cam1's queue reached {max_queue1} bytes\n{}",
        dump()
    );
    assert!(rstats1.dropped > 0);
    assert_eq!(
        h1.len() as u64,
        rstats1.dropped + left1 as u64,
        "cam1 ledger: handed off = dropped + queued"
    );
    // cam2 lost nothing: it recorded throughout and every segment is in the bucket.
    let expected2 = (RUN.as_secs() / 2) as usize * 3 / 4;
    assert!(
        h2.len() >= expected2,
        "cam2 handed off {} segments in {} s (expected at least {expected2})\n{}",
        h2.len(),
        RUN.as_secs(),
        dump()
    );
    assert_eq!(ustats2.dropped, 0, "cam2's uploader dropped\n{}", dump());
    assert_eq!(rstats2.dropped, 0, "cam2's recorder dropped\n{}", dump());
    assert_eq!(
        ustats2.uploaded,
        h2.len() as u64,
        "cam2: uploaded = handed off\n{}",
        dump()
    );
    assert_eq!(bucket.len(), h2.len(), "cam2's objects in the bucket");
    assert!(bucket.iter().all(|k| k.starts_with("cam2/")), "{bucket:?}");
    // And the scaled run proves something: cam1 alone handed off more than the whole RAM disk.
    assert!(
        handed_bytes1 > TMPFS_MIB << 20,
        "cam1 handed off only {handed_bytes1} bytes: the run does not prove anything\n{}",
        dump()
    );
}
