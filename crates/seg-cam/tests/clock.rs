//! Segments recorded while the clock is unsynchronised and no uploader runs (stopped, failed,
//! not started yet) are keyed by when they were really recorded once the clock is
//! synchronised and the uploader starts: the recorder notes each segment's clock offset at
//! hand-off, so the uploader need not have seen it before the clock stepped.
//!
//! The real `seg-cam` records the camera double under a test clock (`VISDCAM_TEST_CLOCK`) that
//! is 5 h behind and unsynchronised; then the clock is "stepped" (synced, no offset) and the
//! real `uploader` (a sibling binary; `cargo test --workspace` builds it) starts against the
//! S3 rig.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camera_double::{CameraDouble, Options};
use test_rigs::process::{wait_until, ChildGuard};
use test_rigs::s3::S3Rig;
use visdcam_core::clock::TestClock;
use visdcam_core::segment::{classify, EntryKind};

const FIVE_H: Duration = Duration::from_secs(5 * 3600);

fn sibling(name: &str) -> PathBuf {
    test_rigs::process::sibling_binary(env!("CARGO_BIN_EXE_seg-cam"), name)
}

/// Final segment names in `dir`.
fn finals(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| matches!(classify(n), EntryKind::Final(_)))
        .collect();
    v.sort();
    v
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// The key visdcam-pi's layout gives a time (Asia/Kolkata, the default `KEY_TZ`), formatted
/// here independently of the core's template code.
fn key_at(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap()
        .with_timezone(&chrono_tz::Asia::Kolkata)
        .format("cam1/%Y/%m/%d/%H/cam_1_%Y_%m_%d_%H_%M_%S.ts")
        .to_string()
}

fn spawn(name: &str, bin: &Path, etc: &Path, clock: &Path, log: &Path) -> ChildGuard {
    let mut c = Command::new(bin);
    c.arg("cam1")
        .env("VISDCAM_CONFIG_DIR", etc)
        .env("VISDCAM_TEST_CLOCK", clock)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap());
    ChildGuard::spawn(name, c).unwrap()
}

#[test]
fn segments_closed_unsynced_while_no_uploader_ran_get_their_real_time_keys() {
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .expect("starting the camera double");
    let tmp = tempfile::tempdir().unwrap();
    let etc = tmp.path().join("etc");
    let ram = tmp.path().join("ram");
    let dir = ram.join("cam1");
    fs::create_dir_all(etc.join("cameras")).unwrap();
    fs::write(
        etc.join("visdcam.conf"),
        format!(
            "RAM_DIR={}\nSEG_SECONDS=2\nKEYFRAME_INTERVAL=10\nREQUIRE_CLOCK_SYNC=yes\n\
             B2_ENDPOINT={}\nB2_BUCKET={}\nB2_ADDRESSING_STYLE=path\nLOG_LEVEL=debug\n",
            ram.display(),
            rig.endpoint(),
            rig.bucket()
        ),
    )
    .unwrap();
    fs::write(
        etc.join("cameras/cam1.conf"),
        format!("CAMERA_URL={}\n", cam.stream_url()),
    )
    .unwrap();
    let awsdir = tmp.path().join("aws");
    fs::create_dir_all(&awsdir).unwrap();
    let (creds, aws_config) = rig.write_aws_files(&awsdir, "b2");
    // Booted without a battery clock: 5 h behind, not synchronised.
    let clock = tmp.path().join("test-clock");
    let write_clock = |synced, offset_s| {
        fs::write(&clock, TestClock { synced, offset_s }.render()).unwrap();
    };
    write_clock(false, -(FIVE_H.as_secs() as i64));

    // Record with no uploader running; note when each segment appeared (real time).
    let seg_log = tmp.path().join("seg-cam.log");
    let up_log = tmp.path().join("uploader.log");
    let logs = || {
        format!(
            "seg-cam:\n{}\nuploader:\n{}",
            fs::read_to_string(&seg_log).unwrap_or_default(),
            fs::read_to_string(&up_log).unwrap_or_default()
        )
    };
    let mut seen: Vec<(String, SystemTime)> = Vec::new();
    let note = |seen: &mut Vec<(String, SystemTime)>| {
        let now = SystemTime::now();
        for n in finals(&dir) {
            if !seen.iter().any(|(s, _)| *s == n) {
                seen.push((n, now));
            }
        }
    };
    let mut rec = spawn(
        "seg-cam cam1",
        Path::new(env!("CARGO_BIN_EXE_seg-cam")),
        &etc,
        &clock,
        &seg_log,
    );
    wait_until(Instant::now() + Duration::from_secs(60), || {
        note(&mut seen);
        seen.len() >= 3
    })
    .unwrap_or_else(|e| panic!("3 segments: {e}\n{}", logs()));
    let st = rec.stop(Duration::from_secs(15)).expect("seg-cam exits");
    assert!(st.success(), "seg-cam: {st}\n{}", logs());
    note(&mut seen);

    // The wrong clock was in effect: every mtime is 5 h before the segment appeared.
    for (name, at) in &seen {
        let mtime = fs::metadata(dir.join(name)).unwrap().modified().unwrap();
        let lag = unix_secs(*at) - (unix_secs(mtime) + FIVE_H.as_secs() as i64);
        assert!(
            (0..=3).contains(&lag),
            "{name}: mtime {} s, appeared at {} s: not 5 h behind",
            unix_secs(mtime),
            unix_secs(*at)
        );
    }

    // The clock is synchronised (stepped +5 h), then the uploader starts.
    write_clock(true, 0);
    let mut up = {
        let mut c = Command::new(sibling("uploader"));
        c.arg("cam1")
            .env("VISDCAM_CONFIG_DIR", &etc)
            .env("VISDCAM_TEST_CLOCK", &clock)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&up_log).unwrap());
        ChildGuard::spawn("uploader cam1", c).unwrap()
    };
    wait_until(Instant::now() + Duration::from_secs(60), || {
        finals(&dir).is_empty()
    })
    .unwrap_or_else(|e| panic!("all uploaded: {e}; left {:?}\n{}", finals(&dir), logs()));
    up.stop(Duration::from_secs(10));

    // Each segment is stored under the time it really ended: at most 3 s before it appeared
    // (the end is dated from its running time; the rename follows the next keyframe).
    let keys: Vec<String> = rig.list_objects().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), seen.len(), "{keys:?}\n{}", logs());
    for (name, at) in &seen {
        let real = unix_secs(*at);
        let hit = (0..=3).find(|d| keys.contains(&key_at(real - d)));
        eprintln!("{name}: key {hit:?} s before it appeared");
        assert!(
            hit.is_some(),
            "{name} appeared at {} but no key is within 3 s before it (the unsynchronised \
             clock would give {}): {keys:?}\n{}",
            key_at(real),
            key_at(real - FIVE_H.as_secs() as i64),
            logs()
        );
    }
}
