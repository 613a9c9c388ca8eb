//! Configuration tests: good files, every kind of bad line, override order.

use super::*;

const G: &str = "/etc/visdcam/visdcam.conf";
const C: &str = "/etc/visdcam/cameras/cam1.conf";

fn load_pair(global: &str, camera: &str) -> Result<Settings, ConfigError> {
    load(
        Some(Source {
            path: G,
            text: global,
        }),
        Some((
            "cam1",
            Source {
                path: C,
                text: camera,
            },
        )),
        G,
    )
}

fn err(global: &str, camera: &str) -> String {
    load_pair(global, camera).unwrap_err().to_string()
}

const CAM: &str = "CAMERA_URL=http://192.168.1.33:81/stream\n";

#[test]
fn defaults_with_only_a_camera_url() {
    let s = load_pair("", CAM).unwrap();
    assert_eq!(s.camera.as_deref(), Some("cam1"));
    assert_eq!(s.seg_seconds, 60);
    assert_eq!(s.ram_dir, PathBuf::from("/mnt/ramcam"));
    assert_eq!(s.camera_dir(), Some(PathBuf::from("/mnt/ramcam/cam1")));
    assert_eq!(s.key_tz, chrono_tz::Asia::Kolkata);
    assert_eq!(s.key_template, KeyTemplate::default());
    assert_eq!(s.b2_profile, "b2");
    assert_eq!(s.b2_addressing_style, AddressingStyle::VirtualHost);
    assert!(s.require_clock_sync);
    assert_eq!(s.rate_kbps, 0);
    assert_eq!(s.rate_bytes_per_sec(), None);
    assert_eq!(s.upload_dscp, Some(8));
    assert_eq!(s.x264_preset, "ultrafast");
    assert_eq!(s.shaper_rate_bps, 3_000_000);
    assert_eq!(s.day_start.to_string(), "06:00");
    assert_eq!(s.night_start.to_string(), "18:00");
    assert_eq!(s.presets["day"]["framesize"], 9);
    assert_eq!(s.presets["night"]["special_effect"], 2);
    assert_eq!(
        s.control_url.as_ref().unwrap().to_string(),
        "http://192.168.1.33/",
        "stream on :81 means control on :80"
    );
    assert_eq!(s.origin_of("CAMERA_URL"), format!("{C}:1"));
    assert_eq!(s.origin_of("SEG_SECONDS"), "default");
}

#[test]
fn visdcam_pi_knobs_carry_over() {
    let global = "# visdcam-pi style\nB2_PROFILE=b2\nB2_REGION=ca-east-006\n\
                  B2_ENDPOINT=https://s3.ca-east-006.backblazeb2.com/\nB2_BUCKET=visd-cctv\n\
                  RATE_KBPS=200\n";
    let s = load_pair(global, CAM).unwrap();
    assert_eq!(s.b2_region.as_deref(), Some("ca-east-006"));
    assert_eq!(
        s.b2_endpoint.as_deref(),
        Some("https://s3.ca-east-006.backblazeb2.com")
    );
    assert_eq!(s.b2_bucket.as_deref(), Some("visd-cctv"));
    assert_eq!(s.rate_bytes_per_sec(), Some(200 * 1024));
}

#[test]
fn camera_file_overrides_global() {
    let global = "SEG_SECONDS=120\nRATE_KBPS=100\nKEY_TZ=UTC\nPRESET_NIGHT_GAINCEILING=6\n";
    let camera = format!("{CAM}SEG_SECONDS=30\nPRESET_NIGHT_GAINCEILING=4\nPRESET_DUSK_AEC2=1\n");
    let s = load_pair(global, &camera).unwrap();
    assert_eq!(s.seg_seconds, 30);
    assert_eq!(s.origin_of("SEG_SECONDS"), format!("{C}:2"));
    assert_eq!(s.rate_kbps, 100);
    assert_eq!(s.origin_of("RATE_KBPS"), format!("{G}:2"));
    assert_eq!(s.key_tz, chrono_tz::UTC);
    assert_eq!(s.presets["night"]["gainceiling"], 4);
    assert_eq!(s.presets["dusk"]["aec2"], 1);
    // Untouched night variables keep their defaults.
    assert_eq!(s.presets["night"]["aec2"], 1);
}

#[test]
fn global_alone_loads_without_a_camera() {
    let s = load(
        Some(Source {
            path: G,
            text: "SHAPER_RATE=2500kbit\nSHAPER_DEV=eth0\n",
        }),
        None,
        G,
    )
    .unwrap();
    assert_eq!(s.camera, None);
    assert_eq!(s.camera_url, None);
    assert_eq!(s.shaper_rate_bps, 2_500_000);
    assert_eq!(s.shaper_dev.as_deref(), Some("eth0"));
}

#[test]
fn bad_lines_name_file_line_key_and_range() {
    let cases: &[(&str, &str, &str)] = &[
        ("SEG_SECONDS=1\n", CAM, "visdcam.conf:1: SEG_SECONDS: 1 is out of range; allowed: an integer from 2 to 3600"),
        ("\nSEG_SECONDS=abc\n", CAM, "visdcam.conf:2: SEG_SECONDS: `abc` is not a whole number; allowed: an integer from 2 to 3600"),
        ("", "CAMERA_URL=http://x:81/stream\nSEG_SECONDS=4000\n", "cam1.conf:2: SEG_SECONDS: 4000 is out of range; allowed: an integer from 2 to 3600"),
        ("SEG_SECOND=60\n", CAM, "visdcam.conf:1: SEG_SECOND: unknown key (did you mean SEG_SECONDS?)"),
        ("FOO=1\n", CAM, "visdcam.conf:1: FOO: unknown key"),
        ("garbage line\n", CAM, "visdcam.conf:1: expected KEY=VALUE, found `garbage line`"),
        ("A-B=1\n", CAM, "visdcam.conf:1: `A-B` is not a valid key"),
        ("B2_BUCKET=\"open\n", CAM, "visdcam.conf:1: unterminated double quote"),
        ("RATE_KBPS=10\nRATE_KBPS=20\n", CAM, "visdcam.conf:2: RATE_KBPS: set twice in this file (first on line 1); keep one"),
        ("CAMERA_URL=http://x/stream\n", CAM, "visdcam.conf:1: CAMERA_URL: belongs in a camera's file"),
        ("", "CAMERA_URL=http://x:81/\nSHAPER_RATE=1mbit\n", "cam1.conf:2: SHAPER_RATE: can only be set in the global visdcam.conf"),
        ("", "CAMERA_URL=https://x/stream\n", "cam1.conf:1: CAMERA_URL: `https://x/stream` must start with http://"),
        ("", "CAMERA_URL=http://x:99999/stream\n", "cam1.conf:1: CAMERA_URL: `http://x:99999/stream`: port `99999` is not a number from 1 to 65535"),
        ("", "SEG_SECONDS=10\n", "cam1.conf: CAMERA_URL: missing: camera cam1 needs its stream"),
        ("KEY_TZ=Asia/Calcutta2\n", CAM, "visdcam.conf:1: KEY_TZ: `Asia/Calcutta2` is not a known time zone"),
        ("KEY_TEMPLATE={camera}/%H.ts\n", CAM, "visdcam.conf:1: KEY_TEMPLATE: must contain seconds"),
        ("B2_ADDRESSING_STYLE=vhost\n", CAM, "visdcam.conf:1: B2_ADDRESSING_STYLE: `vhost` is not an option; allowed: one of virtual, path"),
        ("REQUIRE_CLOCK_SYNC=maybe\n", CAM, "visdcam.conf:1: REQUIRE_CLOCK_SYNC: `maybe` is not yes or no"),
        ("B2_ENDPOINT=s3.example.com\n", CAM, "visdcam.conf:1: B2_ENDPOINT: `s3.example.com` must start with https://"),
        ("RAM_DIR=mnt/ram\n", CAM, "visdcam.conf:1: RAM_DIR: `mnt/ram` is not an absolute path"),
        ("SHAPER_RATE=3 furlongs\n", CAM, "visdcam.conf:1: SHAPER_RATE: `3 furlongs`: unknown unit `furlongs`"),
        ("SHAPER_RATE=10bit\n", CAM, "visdcam.conf:1: SHAPER_RATE: `10bit` is out of range"),
        ("UPLOAD_DSCP=cs9\n", CAM, "visdcam.conf:1: UPLOAD_DSCP: `cs9` is not a DSCP class"),
        ("DAY_START=6am\n", CAM, "visdcam.conf:1: DAY_START: `6am` is not a time of day HH:MM"),
        ("NIGHT_START=06:00\n", CAM, "visdcam.conf:1: NIGHT_START: 06:00 is the same as DAY_START"),
        ("STALL_TIMEOUT_S=30\n", CAM, "visdcam.conf:1: STALL_TIMEOUT_S: 30 is out of range; allowed: an integer from 2 to 10"),
        ("X264_PRESET=placebo\n", CAM, "visdcam.conf:1: X264_PRESET: `placebo` is not an option; allowed: one of ultrafast"),
        ("PRESET_NIGHT_GAINCEILING=9\n", CAM, "visdcam.conf:1: PRESET_NIGHT_GAINCEILING: 9 is out of range for gainceiling; allowed: 0 to 6"),
        ("PRESET_DAY_QUALITY=high\n", CAM, "visdcam.conf:1: PRESET_DAY_QUALITY: `high` is not an integer; allowed: 0 to 63"),
        ("PRESET_DAY_SHARPNESS=1\n", CAM, "visdcam.conf:1: PRESET_DAY_SHARPNESS: unknown preset variable"),
        ("\nOBJECT_LOCK_DAYS=-1\n", CAM, "visdcam.conf:2: OBJECT_LOCK_DAYS: `-1` is not a whole number; allowed: an integer from 0 to 3650"),
        ("OBJECT_LOCK_DAYS=30d\n", CAM, "visdcam.conf:1: OBJECT_LOCK_DAYS: `30d` is not a whole number; allowed: an integer from 0 to 3650"),
        ("OBJECT_LOCK_DAYS=1.5\n", CAM, "visdcam.conf:1: OBJECT_LOCK_DAYS: `1.5` is not a whole number"),
        ("", "CAMERA_URL=http://x:81/\nOBJECT_LOCK_DAYS=36500\n", "cam1.conf:2: OBJECT_LOCK_DAYS: 36500 is out of range; allowed: an integer from 0 to 3650"),
        ("OBJECT_LOCK_DAYS=30\nOBJECT_LOCK_MODE=legal-hold\n", CAM, "visdcam.conf:2: OBJECT_LOCK_MODE: `legal-hold` is not an option; allowed: one of governance, compliance"),
    ];
    for (global, camera, expect) in cases {
        let got = err(global, camera);
        assert!(got.contains(expect), "\n got: {got}\nwant: {expect}");
        assert!(got.starts_with("/etc/visdcam/"), "{got}");
    }
}

#[test]
fn shaper_dev_that_would_change_a_tc_batch_line_is_refused() {
    let global = |dev: &str| {
        load(
            Some(Source {
                path: G,
                text: &format!("SHAPER_RATE=2mbit\nSHAPER_DEV={dev}\n"),
            }),
            None,
            G,
        )
    };
    assert_eq!(
        global("wlan0").unwrap().shaper_dev.as_deref(),
        Some("wlan0")
    );
    assert_eq!(global("").unwrap().shaper_dev, None);
    // Quoted as systemd reads the file: the value is `eth0#x`, `eth0 root`, `e"th0`.
    for dev in ["'eth0#x'", "'eth0 root'", "'e\"th0'", "eth0:1", "a/b"] {
        let e = global(dev).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{G}:2: SHAPER_DEV: ")) && e.contains("not an interface name"),
            "{dev}: {e}"
        );
    }
}

#[test]
fn invalid_camera_name_is_rejected() {
    let e = load(
        None,
        Some((
            "Cam_1",
            Source {
                path: "/etc/visdcam/cameras/Cam_1.conf",
                text: CAM,
            },
        )),
        G,
    )
    .unwrap_err();
    assert!(e.to_string().contains("invalid camera name `Cam_1`"), "{e}");
}

#[test]
fn control_url_derivation_and_override() {
    for (stream, control) in [
        ("http://10.0.0.5:81/stream", "http://10.0.0.5/"),
        ("http://10.0.0.5/stream", "http://10.0.0.5/"),
        ("http://127.0.0.1:40001/stream", "http://127.0.0.1:40000/"),
        ("http://cam.lan:8081/stream", "http://cam.lan:8080/"),
    ] {
        let s = load_pair("", &format!("CAMERA_URL={stream}\n")).unwrap();
        assert_eq!(s.control_url.unwrap().to_string(), control, "{stream}");
    }
    let s = load_pair("", &format!("{CAM}CONTROL_URL=http://192.168.1.33:8000\n")).unwrap();
    assert_eq!(
        s.control_url.unwrap().join("/status"),
        "http://192.168.1.33:8000/status"
    );
}

#[test]
fn rates_and_dscp() {
    for (s, bits) in [
        ("3mbit", 3_000_000),
        ("500kbit", 500_000),
        ("375kbps", 3_000_000),
        ("64000", 64_000),
        ("1.5Mbit", 1_500_000),
    ] {
        assert_eq!(parse_rate(s), Ok(bits), "{s}");
    }
    for (s, v) in [
        ("cs1", Some(8)),
        ("CS0", Some(0)),
        ("af41", Some(34)),
        ("ef", Some(46)),
        ("none", None),
        ("10", Some(10)),
    ] {
        assert_eq!(parse_dscp(s), Ok(v), "{s}");
    }
    assert!(parse_dscp("64").is_err());
    assert!(parse_dscp("af51").is_err());
}

#[test]
fn check_value_for_setdur() {
    assert_eq!(check_value("SEG_SECONDS", "180"), Ok(()));
    assert_eq!(
        check_value("SEG_SECONDS", "0").unwrap_err(),
        "0 is out of range; allowed: an integer from 2 to 3600"
    );
    assert_eq!(
        check_value("SEG_SECONDS", "3m").unwrap_err(),
        "`3m` is not a whole number; allowed: an integer from 2 to 3600"
    );
}

#[test]
fn every_key_is_documented_and_defaults_are_valid() {
    // Defaults must themselves load: an empty global file resolves every default.
    load(None, None, G).unwrap();
    for k in KEYS {
        assert!(!k.doc.is_empty(), "{} has no doc", k.name);
        assert!(envfile::valid_key(k.name), "{}", k.name);
    }
}

#[test]
fn object_lock_is_off_by_default_and_set_per_camera_in_any_case() {
    use crate::objectlock::{LockMode, ObjectLock};
    assert_eq!(load_pair("", CAM).unwrap().object_lock, None);
    assert_eq!(
        load_pair("OBJECT_LOCK_DAYS=0\nOBJECT_LOCK_MODE=compliance\n", CAM)
            .unwrap()
            .object_lock,
        None
    );
    assert_eq!(
        load_pair("OBJECT_LOCK_DAYS=30\n", CAM).unwrap().object_lock,
        Some(ObjectLock {
            days: 30,
            mode: LockMode::Governance
        })
    );
    let camera = format!("{CAM}OBJECT_LOCK_DAYS=3650\nOBJECT_LOCK_MODE=Compliance\n");
    let s = load_pair(
        "OBJECT_LOCK_DAYS=30\nOBJECT_LOCK_MODE=GOVERNANCE\n",
        &camera,
    )
    .unwrap();
    assert_eq!(
        s.object_lock,
        Some(ObjectLock {
            days: 3650,
            mode: LockMode::Compliance
        })
    );
    assert_eq!(s.origin_of("OBJECT_LOCK_MODE"), format!("{C}:3"));
    // Case-insensitive like every choice.
    assert_eq!(
        load_pair("LOG_LEVEL=DEBUG\nB2_ADDRESSING_STYLE=Path\n", CAM)
            .unwrap()
            .log_level,
        "debug"
    );
    assert_eq!(check_value("OBJECT_LOCK_MODE", "COMPLIANCE"), Ok(()));
    assert_eq!(
        check_value("OBJECT_LOCK_DAYS", "4000").unwrap_err(),
        "4000 is out of range; allowed: an integer from 0 to 3650"
    );
}

#[test]
fn alert_keys_defaults_values_and_errors() {
    let s = load_pair("", CAM).unwrap();
    assert_eq!(
        (
            s.alert_url.as_deref(),
            s.alert_email.as_deref(),
            s.alert_camera_down_s,
            s.alert_upload_failing_s,
            s.alert_ram_disk_percent
        ),
        (None, None, 600, 900, 90)
    );
    assert_eq!(s.alert_clock_unsynced_s, 600);
    let s = load_pair(
        "ALERT_URL=https://ntfy.sh/pi-cams?tpl=1&t={{.title}}&m={{.message}}\n\
         ALERT_EMAIL=me@example.org\nALERT_CAMERA_DOWN=1h30m\nALERT_UPLOAD_FAILING=45s\n\
         ALERT_RAM_DISK_PERCENT=75\n",
        CAM,
    )
    .unwrap();
    assert_eq!(
        s.alert_url.as_deref(),
        Some("https://ntfy.sh/pi-cams?tpl=1&t={{.title}}&m={{.message}}"),
        "kept exactly: the query is the ntfy template"
    );
    assert_eq!(s.alert_email.as_deref(), Some("me@example.org"));
    assert_eq!(
        (s.alert_camera_down_s, s.alert_upload_failing_s),
        (5400, 45)
    );
    assert_eq!(s.alert_ram_disk_percent, 75);
    assert_eq!(load_pair("ALERT_EMAIL=\n", CAM).unwrap().alert_email, None);
    for (line, want) in [
        ("ALERT_URL=ntfy.sh/x", "visdcam.conf:1: ALERT_URL: `ntfy.sh/x` must start with https:// or http://"),
        ("ALERT_CAMERA_DOWN=ten", "visdcam.conf:1: ALERT_CAMERA_DOWN: invalid duration `ten`"),
        ("ALERT_CAMERA_DOWN=2d", "visdcam.conf:1: ALERT_CAMERA_DOWN: `2d` is out of range; allowed: a duration such as 90s, 10m, 2h or 1h30m, from 1s to 1d 0h"),
        ("ALERT_EMAIL=me@example.org,x@y.z", "visdcam.conf:1: ALERT_EMAIL: `me@example.org,x@y.z` is not an e-mail address"),
        ("ALERT_EMAIL=me", "visdcam.conf:1: ALERT_EMAIL: `me` is not an e-mail address such as me@example.org"),
        ("ALERT_RAM_DISK_PERCENT=0", "visdcam.conf:1: ALERT_RAM_DISK_PERCENT: 0 is out of range"),
    ] {
        let e = err(&format!("{line}\n"), CAM);
        assert!(e.contains(want), "{line}: {e}");
    }
    assert!(err("", "CAMERA_URL=http://x:81/\nALERT_URL=http://h/\n")
        .contains("ALERT_URL: can only be set in the global visdcam.conf"));
}
