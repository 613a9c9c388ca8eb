//! `daynight` end to end: the real binary against in-process ESP32-CAM doubles, a temporary
//! configuration directory and state directory, and the injectable clock (`--at`).

use std::collections::BTreeMap;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use camera_double::{Board, CameraDouble, Fault, Options};
use visdcam_core::camvars::{DEFAULT_DAY, DEFAULT_NIGHT};

const NIGHT_AT: &str = "2025-10-12T22:00:00+05:30";

struct Rig {
    cfg: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Rig {
    fn new(global: &str) -> Rig {
        let cfg = tempfile::tempdir().unwrap();
        fs::create_dir(cfg.path().join("cameras")).unwrap();
        fs::write(cfg.path().join("visdcam.conf"), global).unwrap();
        Rig {
            cfg,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// A camera file whose stream is `stream_url` (control URL derived: stream port - 1).
    fn camera(&self, name: &str, stream_url: &str, extra: &str) {
        fs::write(
            self.cfg.path().join("cameras").join(format!("{name}.conf")),
            format!("CAMERA_URL={stream_url}\n{extra}"),
        )
        .unwrap();
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_daynight"))
            .args(args)
            .env("VISDCAM_CONFIG_DIR", self.cfg.path())
            .env("VISDCAM_STATE_DIR", self.state.path())
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUNTIME_DIRECTORY")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("ALL_PROXY")
            .output()
            .unwrap();
        eprintln!(
            "daynight {args:?} → {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn preset(values: &[(&str, i32)], extra: &[(&str, i32)]) -> BTreeMap<String, i64> {
    values
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), i64::from(*v)))
        .collect()
}

/// The variables the double was sent, with their values; panics on a non-200 answer.
fn sent_ok(cam: &CameraDouble) -> BTreeMap<String, i64> {
    cam.control_log()
        .into_iter()
        .map(|c| {
            assert_eq!(c.status, 200, "{c:?}");
            (c.var, c.val.parse().unwrap())
        })
        .collect()
}

/// Every preset variable `/status` can report has the preset's value (vflip from the sensor).
fn assert_on(cam: &CameraDouble, want: &BTreeMap<String, i64>) {
    let status = cam.status();
    for (k, v) in want {
        let got = status.get(k).copied().or_else(|| cam.sensor_value(k));
        assert_eq!(got, Some(*v), "{k}");
    }
}

fn start() -> CameraDouble {
    CameraDouble::start(Options::default()).unwrap()
}

/// Polls until the double's control port accepts connections again.
fn wait_listening(cam: &CameraDouble) {
    let addr = SocketAddr::from(([127, 0, 0, 1], cam.port()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "the double did not come back");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn apply_night_sets_exactly_the_night_variables_and_reconcile_then_sends_nothing() {
    let rig = Rig::new("");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");

    let out = rig.run(&["apply", "cam1", "night", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(0));
    let night = preset(DEFAULT_NIGHT, &[]);
    assert_eq!(sent_ok(&cam), night, "exactly the night variables");
    assert_eq!(
        cam.control_log()[0].var,
        "framesize",
        "framesize goes first"
    );
    assert_on(&cam, &night);
    let err = stderr(&out);
    assert!(err.contains("cam1: quality 10 → 14"), "old → new logged");

    cam.clear_control_log();
    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(0));
    assert!(cam.control_log().is_empty(), "{:?}", cam.control_log());
    // Only the port-80 endpoints: the recorder's single stream slot is never taken.
    assert_eq!(cam.stream_connections(), 0);
}

#[test]
fn reconcile_sends_only_differences_then_confirms() {
    let rig = Rig::new("");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    let out = rig.run(&["reconcile", "cam1", "--at", "2025-10-12T12:00:00+05:30"]);
    assert_eq!(out.status.code(), Some(0));
    // Boot settings (framesize 8 at 640x480, quality 10, gainceiling 0, bpc 0) against day.
    let sent = sent_ok(&cam);
    assert_eq!(
        sent,
        preset(
            &[
                ("framesize", 9),
                ("quality", 12),
                ("gainceiling", 2),
                ("bpc", 1)
            ],
            &[]
        )
    );
    assert_on(&cam, &preset(DEFAULT_DAY, &[]));
}

#[test]
fn rebooted_camera_gets_its_preset_back_including_unreadable_vflip() {
    let rig = Rig::new("PRESET_NIGHT_VFLIP=1\n");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    let night = preset(DEFAULT_NIGHT, &[("vflip", 1)]);

    assert_eq!(
        rig.run(&["reconcile", "--at", NIGHT_AT]).status.code(),
        Some(0)
    );
    assert_on(&cam, &night);
    assert!(
        sent_ok(&cam).contains_key("vflip"),
        "vflip sent on the first run"
    );
    cam.clear_control_log();
    assert_eq!(
        rig.run(&["reconcile", "--at", NIGHT_AT]).status.code(),
        Some(0)
    );
    assert!(
        cam.control_log().is_empty(),
        "nothing to do, vflip not resent"
    );

    // Brown-out: the camera is away for a moment, then back with boot settings.
    cam.set_fault(Fault::Reboot(Duration::from_secs(2)));
    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(75), "a down camera: EX_TEMPFAIL");
    let err = stderr(&out);
    assert!(
        err.contains("cam1: camera down: GET http://127.0.0.1:")
            && err.contains("skipped, retried on the next run"),
        "{err}"
    );
    wait_listening(&cam);
    assert_eq!(cam.reboots(), 1);
    assert_eq!(cam.sensor_value("vflip"), Some(0), "the reboot reset vflip");
    assert_eq!(cam.status()["quality"], 10);

    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(0));
    assert_on(&cam, &night);
    let sent = sent_ok(&cam);
    assert!(
        sent.contains_key("vflip") && sent.contains_key("quality"),
        "{sent:?}"
    );
    cam.clear_control_log();
    assert_eq!(
        rig.run(&["reconcile", "--at", NIGHT_AT]).status.code(),
        Some(0)
    );
    assert!(cam.control_log().is_empty());
}

#[test]
fn reboot_detected_from_lost_values_resends_vflip() {
    // The camera comes back while nobody was looking (no failed run in between).
    let rig = Rig::new("PRESET_NIGHT_VFLIP=1\n");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    assert_eq!(
        rig.run(&["reconcile", "--at", NIGHT_AT]).status.code(),
        Some(0)
    );
    cam.set_fault(Fault::Reboot(Duration::from_millis(100)));
    wait_listening(&cam);
    cam.clear_control_log();
    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("the camera rebooted?"));
    assert_eq!(cam.sensor_value("vflip"), Some(1));
    assert!(sent_ok(&cam).contains_key("vflip"));
}

#[test]
fn auto_picks_night_at_0559_and_day_at_0600_ist() {
    let rig = Rig::new("");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    for (at, want) in [
        ("2025-10-12T05:59:00+05:30", DEFAULT_NIGHT),
        ("2025-10-12T06:00:00+05:30", DEFAULT_DAY),
        // The same instants written in UTC.
        ("2025-10-12T00:29:00Z", DEFAULT_NIGHT),
        ("2025-10-12T00:30:00Z", DEFAULT_DAY),
    ] {
        cam.clear_control_log();
        let out = rig.run(&["apply", "cam1", "auto", "--at", at]);
        assert_eq!(out.status.code(), Some(0), "{at}");
        assert_eq!(sent_ok(&cam), preset(want, &[]), "{at}");
    }
    let out = rig.run(&["due", "--at", "2025-10-12T05:59:00+05:30"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cam1 night "));
    let out = rig.run(&["due", "all", "--at", "2025-10-12T06:00:00+05:30"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cam1 day "));
}

#[test]
fn schedule_follows_configured_times_and_zone() {
    let rig = Rig::new("DAY_START=07:15\nNIGHT_START=19:45\nSCHEDULE_TZ=Europe/Berlin\n");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    // 07:14 in Berlin (CEST, +02:00) is still night; 07:15 is day.
    for (at, want) in [
        ("2025-07-01T07:14:59+02:00", "night"),
        ("2025-07-01T05:15:00Z", "day"),
        ("2025-07-01T19:45:00+02:00", "night"),
    ] {
        let out = rig.run(&["due", "--at", at]);
        let line = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(line.starts_with(&format!("cam1 {want} ")), "{at}: {line}");
    }
}

#[test]
fn out_of_range_preset_value_is_a_config_error_with_file_and_line() {
    let rig = Rig::new("# presets\nSEG_SECONDS=60\nPRESET_NIGHT_GAINCEILING=9\n");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    let want = format!(
        "{}:3: PRESET_NIGHT_GAINCEILING: 9 is out of range for gainceiling; allowed: 0 to 6",
        rig.cfg.path().join("visdcam.conf").display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(cam.control_log().is_empty(), "nothing sent");
}

#[test]
fn broken_camera_file_is_reported_and_other_cameras_still_handled() {
    let rig = Rig::new("");
    let (good, bad) = (start(), start());
    rig.camera("cam1", &good.stream_url(), "");
    rig.camera("cam2", &bad.stream_url(), "PRESET_DAY_QUALITY=64\n");
    let out = rig.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(78));
    let err = stderr(&out);
    assert!(
        err.contains("cam2.conf:2: PRESET_DAY_QUALITY: 64 is out of range"),
        "{err}"
    );
    assert!(bad.control_log().is_empty());
    assert_on(&good, &preset(DEFAULT_NIGHT, &[]));
}

#[test]
fn variable_refused_with_500_is_reported_and_the_others_applied() {
    let rig = Rig::new("");
    // A board without flash LED: /control answers 500 for led_intensity.
    let noled = CameraDouble::start_with(Options::default(), Board::NoLed).unwrap();
    let other = start();
    rig.camera(
        "cam1",
        &noled.stream_url(),
        "PRESET_NIGHT_LED_INTENSITY=10\n",
    );
    rig.camera("cam2", &other.stream_url(), "");
    // And a camera that is down: a refusal still ends with 1, not with the down camera's 75.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}/stream", gone.local_addr().unwrap());
    drop(gone);
    rig.camera("cam3", &gone_url, "");
    let out = rig.run(&["apply", "all", "night", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cam1: led_intensity -1 → 10 refused: HTTP 500"),
        "{err}"
    );
    assert!(
        err.contains("cam1: not on night: led_intensity=10 refused (HTTP 500)"),
        "{err}"
    );
    assert!(err.contains("cam3 (down)"), "{err}");
    let log = noled.control_log();
    let refused: Vec<_> = log.iter().filter(|c| c.status != 200).collect();
    assert_eq!(refused.len(), 1, "{log:?}");
    assert_eq!(refused[0].var, "led_intensity");
    assert_eq!(
        log.len(),
        DEFAULT_NIGHT.len(),
        "every other variable still sent"
    );
    let mut night = preset(DEFAULT_NIGHT, &[]);
    night.remove("led_intensity");
    assert_on(&noled, &night);
    assert_on(&other, &preset(DEFAULT_NIGHT, &[]));

    // With the LED off in the preset, a board without LED counts as on the preset.
    let rig2 = Rig::new("");
    rig2.camera("cam1", &noled.stream_url(), "");
    noled.clear_control_log();
    let out = rig2.run(&["reconcile", "--at", NIGHT_AT]);
    assert_eq!(out.status.code(), Some(0));
    assert!(noled.control_log().iter().all(|c| c.var != "led_intensity"));
}

#[test]
fn down_and_slow_cameras_do_not_hold_up_the_others() {
    let rig = Rig::new("");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    // Accepts connections (the kernel completes the handshake) and never answers.
    let slow = TcpListener::bind("127.0.0.1:0").unwrap();
    let slow_port = slow.local_addr().unwrap().port();
    rig.camera(
        "cam2",
        &format!("http://127.0.0.1:{}/stream", slow_port + 1),
        "",
    );
    // Nothing listens: connection refused.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_port = gone.local_addr().unwrap().port();
    drop(gone);
    rig.camera(
        "cam3",
        &format!("http://127.0.0.1:{}/stream", gone_port + 1),
        "",
    );
    let started = Instant::now();
    let out = rig.run(&["reconcile", "--at", NIGHT_AT, "--timeout", "2"]);
    let took = started.elapsed();
    // Down cameras only (the one that answered is on its preset): EX_TEMPFAIL, which the
    // service counts as success.
    assert_eq!(out.status.code(), Some(75));
    // Bounded by the per-camera budget (plus process start), not by the slow camera.
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_on(&cam, &preset(DEFAULT_NIGHT, &[]));
    let err = stderr(&out);
    assert!(
        err.contains("cam2: camera down: GET ") && err.contains("time budget ran out"),
        "{err}"
    );
    assert!(err.contains("cam3: camera down: GET "), "{err}");
    assert!(
        err.contains("not on their preset: cam2 (down); cam3 (down) (of 3 camera(s))"),
        "{err}"
    );
}

#[test]
fn usage_errors() {
    let rig = Rig::new("");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    for (args, msg) in [
        (
            &["apply", "cam1", "dusk"][..],
            "no preset `dusk` for cam1 (known: day, night)",
        ),
        (&["apply", "cam9"][..], "unknown camera"),
        (&["reconcile", "--at", "06:00"][..], "--at `06:00`"),
        (&["reconcile", "--timeout", "0"][..], "--timeout `0`"),
        (&["frobnicate"][..], "unknown command `frobnicate`"),
    ] {
        let out = rig.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(msg), "{args:?}");
    }
    assert!(cam.control_log().is_empty());
}

/// Lines `OnCalendar=` of a drop-in that name a time (not the reset, not the periodic run).
fn switch_expressions(dropin: &str) -> Vec<String> {
    dropin
        .lines()
        .filter_map(|l| l.strip_prefix("OnCalendar="))
        .filter(|e| e.starts_with("*-*-*"))
        .map(str::to_string)
        .collect()
}

fn systemd_analyze(args: &[&str], unit_path: Option<&Path>) -> Output {
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(args);
    if let Some(p) = unit_path {
        // Trailing `:` keeps the built-in search path after ours.
        cmd.env("SYSTEMD_UNIT_PATH", format!("{}:", p.display()));
    }
    cmd.output()
        .expect("systemd-analyze (apt-get install systemd)")
}

#[test]
fn timer_dropin_matches_configured_schedule_and_verifies() {
    let rig = Rig::new("DAY_START=07:15\nNIGHT_START=19:45\n");
    let cam = start();
    rig.camera("cam1", &cam.stream_url(), "");
    rig.camera("cam2", &cam.stream_url(), "SCHEDULE_TZ=Europe/Berlin\n");
    let units = tempfile::tempdir().unwrap();
    let dropin_dir = units.path().join("daynight.timer.d");
    let d = dropin_dir.to_str().unwrap();

    let out = rig.run(&["timer-dropin", "--write", "--dropin-dir", d, "--no-reload"]);
    assert_eq!(out.status.code(), Some(0));
    let text = fs::read_to_string(dropin_dir.join("schedule.conf")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&rig.run(&["timer-dropin"]).stdout),
        text
    );
    assert_eq!(
        switch_expressions(&text),
        [
            "*-*-* 07:15:00 Asia/Kolkata",
            "*-*-* 07:15:00 Europe/Berlin",
            "*-*-* 19:45:00 Asia/Kolkata",
            "*-*-* 19:45:00 Europe/Berlin",
        ]
    );
    assert!(text.contains("\nOnCalendar=\n"), "resets the unit's list");
    assert!(
        text.contains("\nOnCalendar=*:00/5\n"),
        "keeps the periodic run"
    );
    // Unchanged configuration: the file is left alone.
    let out = rig.run(&["timer-dropin", "--write", "--dropin-dir", d, "--no-reload"]);
    assert!(stderr(&out).contains("is up to date"));

    // systemd reads each time in its zone: 07:15 IST is 01:45 UTC, 19:45 IST is 14:15 UTC;
    // in Berlin it depends on the date (CET/CEST), so check the local time there.
    for (expr, utc_hm) in [
        ("*-*-* 07:15:00 Asia/Kolkata", Some("01:45:00 UTC")),
        ("*-*-* 19:45:00 Asia/Kolkata", Some("14:15:00 UTC")),
        ("*-*-* 07:15:00 Europe/Berlin", None),
    ] {
        let out = Command::new("systemd-analyze")
            .args(["calendar", "--iterations=3", expr])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{expr}: {text}");
        assert!(text.contains(&format!("Normalized form: {expr}")), "{text}");
        let elapses: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("Next elapse:") || l.contains("Iter. #"))
            .collect();
        assert_eq!(elapses.len(), 3, "{text}");
        match utc_hm {
            Some(hm) => assert!(elapses.iter().all(|l| l.ends_with(hm)), "{text}"),
            None => {
                let berlin = Command::new("systemd-analyze")
                    .args(["calendar", "--iterations=3", expr])
                    .env("TZ", "Europe/Berlin")
                    .output()
                    .unwrap();
                let b = String::from_utf8_lossy(&berlin.stdout);
                let n = b.lines().filter(|l| l.contains("07:15:00 CE")).count();
                assert_eq!(n, 3, "{b}");
            }
        }
    }

    // The shipped timer with the drop-in passes `systemd-analyze verify` without a word.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd");
    fs::copy(
        shipped.join("daynight.timer"),
        units.path().join("daynight.timer"),
    )
    .unwrap();
    let service = fs::read_to_string(shipped.join("daynight.service")).unwrap();
    let service: String = service
        .lines()
        .map(|l| match l.strip_prefix("ExecStart=") {
            Some(_) => format!("ExecStart={} reconcile", env!("CARGO_BIN_EXE_daynight")),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    fs::write(units.path().join("daynight.service"), service).unwrap();
    let timer = units.path().join("daynight.timer");
    let args = ["verify", "--man=no", timer.to_str().unwrap()];
    let out = systemd_analyze(&args, Some(units.path()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
    // Control: verify does read the drop-in (a broken line is reported).
    fs::write(
        dropin_dir.join("schedule.conf"),
        format!("{text}OnCalendar=25:99\n"),
    )
    .unwrap();
    let out = systemd_analyze(&args, Some(units.path()));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("schedule.conf"), "{said}");
}

#[test]
fn shipped_timer_has_the_default_schedule() {
    let rig = Rig::new("");
    let dropin = String::from_utf8(rig.run(&["timer-dropin"]).stdout).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd/daynight.timer");
    let unit = fs::read_to_string(shipped).unwrap();
    let on_calendar = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("OnCalendar=") && *l != "OnCalendar=")
            .map(str::to_string)
            .collect()
    };
    assert_eq!(on_calendar(&unit), on_calendar(&dropin));
}
