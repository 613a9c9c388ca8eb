//! The clock gate with the test clock (`VISDCAM_TEST_CLOCK`): nothing is uploaded before sync,
//! and segments closed before a +5 h step are keyed by when they were really recorded, even
//! across an uploader restart.

mod common;

use std::time::Duration;

use common::*;
use test_rigs::s3::S3Rig;
use visdcam_core::clock::TestClock;

const FIVE_H: u64 = 5 * 3600;

#[test]
fn unsynced_waits_then_step_keys_by_real_recording_time() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "REQUIRE_CLOCK_SYNC=yes\n");
    let clock = env.tmp.path().join("test-clock");
    let write_clock = |synced, offset_s| {
        std::fs::write(&clock, TestClock { synced, offset_s }.render()).unwrap();
    };
    // Booted with the clock 5 h behind: the recorder stamps files 5 h early.
    write_clock(false, -(FIVE_H as i64));
    env.extra_env
        .push(("VISDCAM_TEST_CLOCK".into(), clock.display().to_string()));
    let seg = real_segment(200);
    let really = secs_ago(90);
    let stamped = really - Duration::from_secs(FIVE_H);
    let early = env.place(&seg, stamped);
    let name = early.file_name().unwrap().to_string_lossy().into_owned();
    env.start();
    let notes = env.camdir.join(".uploader-clock");
    env.wait(30, "the segment noted while unsynced", |e| {
        std::fs::read_to_string(&notes).is_ok_and(|t| t.contains(&name)) && e.stats().clock_waiting
    });
    env.wait(10, "STATUS says it waits", |e| {
        e.status().contains("waiting for clock sync")
    });
    assert!(early.exists());
    assert!(
        rig.list_objects().is_empty(),
        "nothing uploaded before sync"
    );

    // A restart keeps the notes.
    env.stop();
    env.start();
    env.wait(30, "waiting again after restart", |e| {
        e.status().contains("waiting for clock sync")
    });
    assert!(rig.list_objects().is_empty());

    // NTP steps the clock +5 h.
    write_clock(true, 0);
    env.wait(60, "uploaded after sync", |_| !early.exists());
    let listed = rig.list_objects();
    assert_eq!(listed.len(), 1, "{listed:?}");
    let key = &listed[0].0;
    let ok = (-2i64..=2).any(|d| {
        let t = if d < 0 {
            really - Duration::from_secs((-d) as u64)
        } else {
            really + Duration::from_secs(d as u64)
        };
        *key == expected_key(t, chrono_tz::Asia::Kolkata)
    });
    assert!(
        ok,
        "{key} is not within 2 s of {} (the wrong stamp would give {})",
        expected_key(really, chrono_tz::Asia::Kolkata),
        expected_key(stamped, chrono_tz::Asia::Kolkata)
    );
    assert!(!notes.exists(), "notes removed once nothing needs them");

    // A segment closed after the sync keeps its mtime.
    let later = secs_ago(10);
    let mut other = seg.clone();
    other.push(1);
    env.place(&other, later);
    env.wait(60, "second uploaded", |e| e.segments_left().is_empty());
    let keys: Vec<String> = rig.list_objects().into_iter().map(|(k, _)| k).collect();
    assert!(
        keys.contains(&expected_key(later, chrono_tz::Asia::Kolkata)),
        "{keys:?}"
    );
    env.stop();
}

#[test]
fn gate_off_uploads_at_once_even_when_unsynced() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "REQUIRE_CLOCK_SYNC=no\n");
    let clock = env.tmp.path().join("test-clock");
    std::fs::write(&clock, "synced=no\n").unwrap();
    env.extra_env
        .push(("VISDCAM_TEST_CLOCK".into(), clock.display().to_string()));
    let seg = real_segment(200);
    let t = secs_ago(30);
    let p = env.place(&seg, t);
    env.start();
    env.wait(60, "uploaded", |_| !p.exists());
    assert_eq!(rig.list_objects().len(), 1);
    assert!(!env.stats().clock_waiting);
    env.stop();
}
