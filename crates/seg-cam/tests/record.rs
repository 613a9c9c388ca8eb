//! The real `seg-cam` binary recording the camera double with real GStreamer: segment
//! lengths, decodability, keyframes, the rename-only hand-off, crash partials, STATUS= and
//! watchdog pings. Camera faults are in `faults.rs`.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{assert_all_decodable, probe_clean, start_ms, Rig};
use inotify::{EventMask, Inotify, WatchMask};
use test_rigs::process::wait_until;
use visdcam_core::budget::{RecorderStats, RECORDER_STATS_FILE};
use visdcam_core::segment::{classify, EntryKind};

/// (name, mask) of every inotify event in a directory, collected by a thread.
struct DirEvents {
    events: Arc<Mutex<Vec<(String, EventMask)>>>,
    stop: Arc<AtomicBool>,
}

impl DirEvents {
    fn watch(dir: &std::path::Path) -> DirEvents {
        let mut ino = Inotify::init().unwrap();
        ino.watches()
            .add(
                dir,
                WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::CLOSE_WRITE,
            )
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (e, s) = (events.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                match ino.read_events(&mut buf) {
                    Ok(evs) => {
                        let mut e = e.lock().unwrap();
                        for ev in evs {
                            if let Some(n) = ev.name {
                                e.push((n.to_string_lossy().into_owned(), ev.mask));
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        DirEvents { events, stop }
    }
}

impl Drop for DirEvents {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn three_segments_of_4_s_decode_start_on_keyframes_and_appear_only_by_rename() {
    let mut rig = Rig::new("");
    fs::create_dir_all(&rig.dir).unwrap();
    let events = DirEvents::watch(&rig.dir);
    rig.start();
    assert!(
        rig.notify
            .wait_status(Instant::now(), Duration::from_secs(20), |s| s
                .starts_with("recording"))
            .is_some(),
        "STATUS says recording"
    );
    let finals = rig.wait_finals(4, Duration::from_secs(40));
    let status = rig.notify.statuses().last().unwrap().1.clone();
    assert_eq!(rig.stop().code(), Some(0), "SIGTERM: clean exit");
    assert!(rig.partials().is_empty(), "no .part after a clean stop");
    // Its last word in the stats file: not recording (read by metrics, status, the web page).
    let stats = fs::read_to_string(rig.dir.join(RECORDER_STATS_FILE)).unwrap();
    let stats = RecorderStats::parse(&stats);
    assert!(!stats.recording && stats.fps_milli == 0, "{stats:?}");
    assert!(stats.frames > 0 && stats.last_frame_unix > 0, "{stats:?}");

    // The first three full segments (the fourth may be cut by the stop).
    let probes: Vec<_> = finals[..3].iter().map(|p| (p, probe_clean(p))).collect();
    for (p, pr) in &probes {
        assert_eq!(pr.codec, "h264", "{}", p.display());
        assert!(pr.first_is_key, "{} starts on a keyframe", p.display());
        assert!(
            (pr.duration - 4.0).abs() <= 1.0,
            "{}: {} s, want 4 ± 1",
            p.display(),
            pr.duration
        );
        // Frames: the double sends 10 fps, so 10 per second of segment, within 5 %.
        let expected = pr.duration * 10.0;
        assert!(
            (pr.frames as f64 - expected).abs() <= expected * 0.05,
            "{}: {} frames for {} s",
            p.display(),
            pr.frames,
            pr.duration
        );
    }
    // Playback speed: three segments' playing time against the wall time between the first
    // frames of segment 1 and segment 4 (names carry the wall-clock start), within 2 %.
    let played: f64 = probes.iter().map(|(_, pr)| pr.duration).sum();
    let wall = (start_ms(&finals[3]) - start_ms(&finals[0])) as f64 / 1000.0;
    assert!(
        (played - wall).abs() <= wall * 0.02,
        "played {played:.3} s over {wall:.3} s of wall time"
    );
    assert_all_decodable(&rig.dir);
    // Closed segments are 0640 whatever the umask the .part was written under (the units'
    // is 0007): the uploader's user, in the group, only reads them.
    for p in &finals {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640, "{}: {mode:o}", p.display());
    }

    // Final names only ever appeared by rename (IN_MOVED_TO), never by create or write.
    let evs = events.events.lock().unwrap().clone();
    let mut moved = 0;
    for (name, mask) in &evs {
        if let EntryKind::Final(_) = classify(name) {
            assert!(
                *mask == EventMask::MOVED_TO,
                "{name} appeared by {mask:?}, not by rename: {evs:?}"
            );
            moved += 1;
        }
    }
    assert!(moved >= 4, "{moved} renames seen: {evs:?}");
    assert!(
        status.contains("fps") && status.contains("in the last hour"),
        "{status}"
    );
    assert_eq!(rig.notify.count("READY=1"), 1);
}

#[test]
fn kill_9_mid_segment_leaves_a_partial_that_finalize_and_restart_hand_off() {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_finals(1, Duration::from_secs(30));
    let part = rig.wait_partial(20_000, Duration::from_secs(20));
    let before: BTreeMap<_, _> = rig
        .finals()
        .into_iter()
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    rig.kill9();
    assert!(part.exists(), "kill -9 leaves {}", part.display());
    // Crash leftovers with nothing decodable are deleted.
    let empty = rig.dir.join("seg-0000000000001-0001.ts.part");
    let garbage = rig.dir.join("seg-0000000000002-0002.ts.part");
    fs::write(&empty, b"").unwrap();
    fs::write(&garbage, [0x47u8; 100]).unwrap();

    let out = rig
        .command()
        .args(["finalize", "cam1"])
        .output()
        .expect("seg-cam finalize");
    assert!(
        out.status.success(),
        "finalize: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("deleted") && err.contains("empty"), "{err}");
    assert!(!empty.exists() && !garbage.exists());
    assert!(rig.partials().is_empty(), "{:?}", rig.partials());
    let name = part.file_name().unwrap().to_string_lossy();
    let handed = rig.dir.join(name.strip_suffix(".part").unwrap());
    assert!(!before.contains_key(&handed), "a new final name");
    let pr = probe_clean(&handed);
    assert!(pr.frames > 0 && pr.first_is_key, "{pr:?}");
    for (p, bytes) in &before {
        assert_eq!(&fs::read(p).unwrap(), bytes, "{} untouched", p.display());
    }

    // Again, and this time the restart itself finalises the partial.
    rig.start();
    let n = rig.finals().len();
    wait_until(Instant::now() + Duration::from_secs(30), || {
        rig.finals().len() > n
    })
    .expect("recording again after the restart");
    let part2 = rig.wait_partial(20_000, Duration::from_secs(20));
    let before2: BTreeMap<_, _> = rig
        .finals()
        .into_iter()
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    rig.kill9();
    rig.start();
    let name2 = part2.file_name().unwrap().to_string_lossy().into_owned();
    let handed2 = rig.dir.join(name2.strip_suffix(".part").unwrap());
    wait_until(Instant::now() + Duration::from_secs(20), || {
        handed2.exists()
    })
    .expect("the restart hands the partial off");
    assert!(!part2.exists());
    for (p, bytes) in &before2 {
        assert_eq!(&fs::read(p).unwrap(), bytes, "{} untouched", p.display());
    }
    assert_eq!(rig.stop().code(), Some(0));
    assert_all_decodable(&rig.dir);
}

#[test]
fn watchdog_pings_while_recording_and_while_backing_off() {
    let mut rig = Rig::new("");
    rig.start();
    let t0 = Instant::now();
    rig.notify
        .wait_status(t0, Duration::from_secs(20), |s| s.starts_with("recording"))
        .expect("recording");
    let pings = |from: Instant| {
        rig.notify
            .all()
            .iter()
            .filter(|(t, l)| *t >= from && l == "WATCHDOG=1")
            .count()
    };
    // WATCHDOG_USEC=2 s: a ping at least every second.
    let t1 = Instant::now();
    wait_until(t1 + Duration::from_secs(10), || pings(t1) >= 3).expect("pings while recording");
    rig.cam
        .set_fault(camera_double::Fault::CloseAndRefuse(Duration::from_secs(
            60,
        )));
    let (t2, _) = rig
        .notify
        .wait_status(t1, Duration::from_secs(20), |s| s.contains("retry in"))
        .expect("backing off");
    wait_until(t2 + Duration::from_secs(10), || pings(t2) >= 3).expect("pings while backing off");
    rig.cam.set_fault(camera_double::Fault::None);
    assert_eq!(rig.stop().code(), Some(0));
}
