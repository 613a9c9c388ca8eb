//! The alert state machine, conditions from snapshots, messages and the state file, with data.

use super::*;
use crate::budget::RecorderStats;
use crate::monitor::{CameraSnapshot, DiskSnapshot, UnitState};
use crate::upload::Stats;

const T: Thresholds = Thresholds {
    camera_down_s: 600,
    upload_failing_s: 900,
    clock_unsynced_s: 600,
    ram_disk_percent: 90,
};
const T0: i64 = 1_764_750_000;

fn recording(cam: &str, at: i64) -> CameraSnapshot {
    CameraSnapshot {
        camera: cam.into(),
        recorder: Some(RecorderStats {
            recording: true,
            last_frame_unix: at,
            updated_unix: at,
            ..RecorderStats::default()
        }),
        uploader: Some(Stats::default()),
        ..CameraSnapshot::default()
    }
}

fn down(cam: &str, since: i64, at: i64) -> CameraSnapshot {
    let mut c = recording(cam, at);
    let r = c.recorder.as_mut().unwrap();
    r.recording = false;
    r.last_frame_unix = since;
    r.down_since_unix = since;
    c
}

fn snap(now: i64, cameras: Vec<CameraSnapshot>) -> Snapshot {
    Snapshot {
        now_unix: now,
        host: "pi".into(),
        cameras,
        clock_synced: Some(true),
        ..Snapshot::default()
    }
}

/// One check: observe, step, and the messages' titles.
fn check(state: &mut State, s: &Snapshot) -> Vec<String> {
    let conds = observe(s, state, &T);
    let ch = step(state, conds, s.now_unix, &T);
    messages(&ch, &s.host, s.now_unix, chrono_tz::UTC)
        .into_iter()
        .map(|m| m.title)
        .collect()
}

#[test]
fn a_camera_down_is_raised_once_after_its_threshold_and_resolved_once() {
    let mut st = State::default();
    let mut sent = Vec::new();
    // Down from T0; checks every minute for 20 minutes, then frames again.
    for m in 0..=20 {
        let now = T0 + m * 60;
        sent.extend(check(&mut st, &snap(now, vec![down("cam1", T0, now)])));
    }
    assert_eq!(
        sent,
        ["visdcam on pi: camera cam1 down"],
        "raised once, at 10 min"
    );
    for m in 21..25 {
        let now = T0 + m * 60;
        sent.extend(check(&mut st, &snap(now, vec![recording("cam1", now)])));
    }
    assert_eq!(
        sent,
        [
            "visdcam on pi: camera cam1 down",
            "visdcam on pi: resolved: camera cam1 down"
        ]
    );
    assert!(st.alerts.is_empty());
}

#[test]
fn a_short_outage_is_forgotten_silently() {
    let mut st = State::default();
    assert!(check(&mut st, &snap(T0 + 300, vec![down("cam1", T0, T0 + 300)])).is_empty());
    assert!(check(&mut st, &snap(T0 + 360, vec![recording("cam1", T0 + 360)])).is_empty());
    assert!(st.alerts.is_empty());
}

#[test]
fn the_state_file_carries_an_open_alert_across_checker_restarts() {
    let mut st = State::default();
    assert_eq!(
        check(&mut st, &snap(T0 + 700, vec![down("cam1", T0, T0 + 700)])),
        ["visdcam on pi: camera cam1 down"]
    );
    // A new process reads the file: nothing repeats, and the resolve still comes.
    let mut again = State::parse(&st.render());
    assert_eq!(again, st);
    assert!(check(
        &mut again,
        &snap(T0 + 760, vec![down("cam1", T0, T0 + 760)])
    )
    .is_empty());
    // Frames again: resolved once they have flowed for a minute, across another restart.
    let mut third = State::parse(&again.render());
    assert!(check(
        &mut third,
        &snap(T0 + 820, vec![recording("cam1", T0 + 820)])
    )
    .is_empty());
    let mut third = State::parse(&third.render());
    assert_eq!(
        check(
            &mut third,
            &snap(T0 + 880, vec![recording("cam1", T0 + 880)])
        ),
        ["visdcam on pi: resolved: camera cam1 down"]
    );
}

#[test]
fn many_cameras_failing_together_make_one_message_each_way() {
    let mut st = State::default();
    let cams = |now: i64, up: bool| {
        (1..=4)
            .map(|i| {
                let name = format!("cam{i}");
                if up {
                    recording(&name, now)
                } else {
                    // They went down within 40 s of each other.
                    down(&name, T0 + i * 10, now)
                }
            })
            .collect::<Vec<_>>()
    };
    let mut sent = Vec::new();
    for m in 0..=15 {
        let now = T0 + m * 60 + 30;
        sent.extend(check(&mut st, &snap(now, cams(now, false))));
    }
    assert_eq!(sent, ["visdcam on pi: cameras cam1, cam2, cam3, cam4 down"]);
    // They come back within seconds of each other: the first check sees only two of them.
    let now = T0 + 16 * 60;
    let mut back = cams(now, true);
    back[2] = down("cam3", T0 + 30, now);
    back[3] = down("cam4", T0 + 40, now);
    assert!(
        check(&mut st, &snap(now, back)).is_empty(),
        "not yet a minute"
    );
    let now = now + 60;
    let conds = observe(&snap(now, cams(now, true)), &mut st, &T);
    let ch = step(&mut st, conds, now, &T);
    let msgs = messages(&ch, "pi", now, chrono_tz::UTC);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].event, Event::Resolved);
    assert_eq!(msgs[0].alerts.len(), 4);
    assert_eq!(msgs[0].text.lines().count(), 4);
}

#[test]
fn uploads_failing_since_the_first_failure() {
    let mut st = State::default();
    let failing = |now: i64| {
        let mut c = recording("cam1", now);
        let u = c.uploader.as_mut().unwrap();
        u.failing_since_unix = T0;
        u.last_error = "HTTP 403 InvalidAccessKeyId".into();
        snap(now, vec![c])
    };
    assert!(check(&mut st, &failing(T0 + 840)).is_empty());
    let conds = observe(&failing(T0 + 900), &mut st, &T);
    let ch = step(&mut st, conds, T0 + 900, &T);
    let m = &messages(&ch, "pi", T0 + 900, chrono_tz::UTC)[0];
    assert_eq!(m.title, "visdcam on pi: uploads of cam1 failing");
    assert_eq!(
        m.text,
        "uploads of cam1 failing since 2025-12-03 08:20 UTC (15 min): HTTP 403 InvalidAccessKeyId"
    );
    assert!(check(&mut st, &snap(T0 + 960, vec![recording("cam1", T0 + 960)])).is_empty());
    assert_eq!(
        check(
            &mut st,
            &snap(T0 + 1020, vec![recording("cam1", T0 + 1020)])
        ),
        ["visdcam on pi: resolved: uploads of cam1 failing"]
    );
}

#[test]
fn drops_raise_at_once_and_resolve_after_a_quiet_spell() {
    let mut st = State::default();
    let with_drops = |now: i64, n: u64| {
        let mut c = recording("cam1", now);
        c.recorder.as_mut().unwrap().dropped = n;
        snap(now, vec![c])
    };
    // Drops from an earlier life of the checker's state are the baseline, not news.
    assert!(check(&mut st, &with_drops(T0, 5)).is_empty());
    assert_eq!(
        check(&mut st, &with_drops(T0 + 60, 6)),
        ["visdcam on pi: cam1: segments dropped (RAM budget)"]
    );
    assert!(
        check(&mut st, &with_drops(T0 + 120, 9)).is_empty(),
        "no repeat"
    );
    assert!(check(&mut st, &with_drops(T0 + 120 + DROPS_QUIET_S - 1, 9)).is_empty());
    assert_eq!(
        check(&mut st, &with_drops(T0 + 120 + DROPS_QUIET_S, 9)),
        ["visdcam on pi: resolved: cam1: segments dropped (RAM budget)"]
    );
}

#[test]
fn host_problems_clock_units_and_ram_disk() {
    let mut st = State::default();
    let unit = |name: &str, active: &str| UnitState {
        unit: name.into(),
        load_state: "loaded".into(),
        active_state: active.into(),
        sub_state: "failed".into(),
        unit_file_state: "enabled".into(),
        restarts: Some(5),
    };
    let s = |now: i64, bad: bool| {
        let mut c = recording("cam1", now);
        c.uploader_unit = Some(unit(
            "uploader@cam1.service",
            if bad { "failed" } else { "active" },
        ));
        Snapshot {
            clock_synced: Some(!bad),
            disk: Some(DiskSnapshot {
                path: "/mnt/ramcam".into(),
                size_bytes: 100 << 20,
                free_bytes: if bad { 5 << 20 } else { 50 << 20 },
                mounted: true,
            }),
            ..snap(now, vec![c])
        }
    };
    assert_eq!(
        check(&mut st, &s(T0, true)),
        ["visdcam on pi: uploader@cam1.service failed; RAM disk /mnt/ramcam nearly full"]
    );
    assert_eq!(
        check(&mut st, &s(T0 + T.clock_unsynced_s, true)),
        ["visdcam on pi: clock not synchronised"]
    );
    // Resolved as soon as they are gone when they were raised at once; the clock after a
    // minute in sync.
    assert_eq!(
        check(&mut st, &s(T0 + T.clock_unsynced_s + 60, false)),
        ["visdcam on pi: resolved: uploader@cam1.service failed; RAM disk /mnt/ramcam nearly full"]
    );
    assert_eq!(
        check(&mut st, &s(T0 + T.clock_unsynced_s + 120, false)),
        ["visdcam on pi: resolved: clock not synchronised"]
    );
}

#[test]
fn cameras_not_meant_to_record_are_not_watched() {
    let mut st = State::default();
    let mut c = down("cam1", T0, T0 + 3600);
    c.recorder_unit = Some(UnitState {
        unit: "seg@cam1.service".into(),
        load_state: "loaded".into(),
        active_state: "inactive".into(),
        sub_state: "dead".into(),
        unit_file_state: "disabled".into(),
        restarts: Some(0),
    });
    c.uploader_unit = c.recorder_unit.clone();
    assert!(check(&mut st, &snap(T0 + 3600, vec![c])).is_empty());
}

#[test]
fn the_json_body_is_stable() {
    let m = Message {
        event: Event::Raised,
        host: "pi".into(),
        time: T0,
        title: "visdcam on pi: camera cam1 down".into(),
        text: "camera \"cam1\" down\tsince".into(),
        alerts: vec![Alert {
            kind: Kind::CameraDown,
            subject: "cam1".into(),
            since: T0 - 600,
            detail: "no frames".into(),
        }],
    };
    assert_eq!(
        m.json(),
        "{\"version\":1,\"event\":\"raised\",\"host\":\"pi\",\"time\":\"2025-12-03T08:20:00Z\",\
         \"title\":\"visdcam on pi: camera cam1 down\",\"message\":\"camera \\\"cam1\\\" down\\tsince\",\
         \"alerts\":[{\"kind\":\"camera_down\",\"subject\":\"cam1\",\"since\":\"2025-12-03T08:10:00Z\",\
         \"detail\":\"no frames\"}]}"
    );
    assert!(test_message("pi", T0)
        .json()
        .contains("\"event\":\"test\",\"host\":\"pi\""));
}

#[test]
fn the_outbox_round_trips_and_stays_bounded() {
    let mut st = State::default();
    enqueue(&mut st, &["webhook", "email"], "{\"a\":\"b\\tc\nd\"}", T0);
    assert_eq!(st.outbox.len(), 2);
    let back = State::parse(&st.render());
    assert_eq!(back, st);
    for i in 0..100 {
        enqueue(&mut st, &["webhook"], &format!("{i}"), T0 + i);
    }
    assert_eq!(st.outbox.len(), OUTBOX_MAX);
    assert_eq!(st.outbox.last().unwrap().body, "99");
    // Damaged lines are skipped, the rest kept.
    let text = format!("{}alert\tnope\tx\t1\t1\td\ngarbage\n", back.render());
    assert_eq!(State::parse(&text), back);
}

#[test]
fn raised_alerts_cross_a_reboot_through_the_journal_line() {
    let mut st = State::default();
    check(
        &mut st,
        &snap(
            T0 + 700,
            vec![down("cam1", T0, T0 + 700), down("cam2", T0 + 650, T0 + 700)],
        ),
    );
    let line = st.open_line();
    assert!(
        line.starts_with(OPEN_LINE) && !line.contains('\n'),
        "{line}"
    );
    // After the reboot: no state file, the journal's newest line first.
    let journal = format!("{line}\nsent by webhook: x\n{OPEN_LINE}\n");
    let mut fresh = State::from_open_line(&journal);
    assert_eq!(fresh.alerts.len(), 1, "cam1 raised, cam2 was only pending");
    // Still down after boot: no repeat. Back: one resolve.
    assert!(check(
        &mut fresh,
        &snap(T0 + 900, vec![down("cam1", T0 + 850, T0 + 900)])
    )
    .is_empty());
    assert!(check(
        &mut fresh,
        &snap(T0 + 960, vec![recording("cam1", T0 + 960)])
    )
    .is_empty());
    assert_eq!(
        check(
            &mut fresh,
            &snap(T0 + 1020, vec![recording("cam1", T0 + 1020)])
        ),
        ["visdcam on pi: resolved: camera cam1 down"]
    );
    // An empty line (nothing open) and no line at all both start empty.
    assert_eq!(
        State::from_open_line(&format!("{OPEN_LINE}\n{line}")),
        State::default()
    );
    assert_eq!(State::from_open_line("raised: x\n"), State::default());
}

#[test]
fn a_flapping_camera_stays_raised_until_it_has_been_back_a_minute() {
    let mut st = State::default();
    let mut sent = Vec::new();
    sent.extend(check(
        &mut st,
        &snap(T0 + 600, vec![down("cam1", T0, T0 + 600)]),
    ));
    // Back for half a minute, down again (a new outage start), back for good.
    sent.extend(check(
        &mut st,
        &snap(T0 + 630, vec![recording("cam1", T0 + 630)]),
    ));
    sent.extend(check(
        &mut st,
        &snap(T0 + 660, vec![down("cam1", T0 + 650, T0 + 660)]),
    ));
    sent.extend(check(
        &mut st,
        &snap(T0 + 690, vec![recording("cam1", T0 + 690)]),
    ));
    sent.extend(check(
        &mut st,
        &snap(T0 + 720, vec![recording("cam1", T0 + 720)]),
    ));
    assert_eq!(sent, ["visdcam on pi: camera cam1 down"]);
    sent.extend(check(
        &mut st,
        &snap(T0 + 750, vec![recording("cam1", T0 + 750)]),
    ));
    assert_eq!(
        sent,
        [
            "visdcam on pi: camera cam1 down",
            "visdcam on pi: resolved: camera cam1 down"
        ]
    );
    // An older state file (without the clear time) still reads.
    let old = "alert\tcamera_down\tcam1\t100\t1\tno frames\n";
    assert_eq!(State::parse(old).alerts.len(), 1);
}
