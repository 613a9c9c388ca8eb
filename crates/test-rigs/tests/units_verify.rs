//! The shipped systemd units (`systemd/`) pass `systemd-analyze verify` with no output at all,
//! their timer expressions parse, the daemons' sandboxes stay at exposure <= 2.0, the two
//! daemons that act on the clock's sync state may read it (`adjtimex`) but never set it, and only
//! the uploader runs as the user that can read the B2 credential (sysusers makes the users; the
//! live-view page has its own, with the group visdcam added).
//!
//! Runs on the host, no container: `--root=` points systemd-analyze at a temporary tree with
//! the host's own units (for `sysinit.target` & co.), ours, and stub executables in /usr/bin.
//! `verify` exits 0 on warnings such as `Unknown key`, so any output counts as a failure.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every unit we ship, as verify needs them (templates with an instance).
const UNITS: &[&str] = &[
    "seg@cam1.service",
    "uploader@cam1.service",
    "daynight.service",
    "daynight.timer",
    "net-shaper.service",
    "visdcam.target",
    "mnt-ramcam.mount",
    "visdcam-web.socket",
    "visdcam-web.service",
    "visdcam-alert.service",
    "visdcam-alert.timer",
    "visdcam-metrics.socket",
    "visdcam-metrics@1.service",
];

/// Highest acceptable `systemd-analyze security` exposure per service.
const MAX_EXPOSURE: &[(&str, f64)] = &[
    ("seg@cam1.service", 2.0),
    ("uploader@cam1.service", 2.0),
    ("daynight.service", 2.0),
    ("net-shaper.service", 2.0),
    ("visdcam-web.service", 2.0),
    ("visdcam-alert.service", 2.0),
    ("visdcam-metrics@1.service", 2.0),
];

const BINARIES: &[&str] = &["seg-cam", "uploader", "daynight", "net-shaper", "visdcam"];

fn units_dir() -> PathBuf {
    test_rigs::container::workspace_root().join("systemd")
}

fn host_unit_dir() -> PathBuf {
    ["/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.join("sysinit.target").exists())
        .expect("the host's systemd units (apt-get install systemd)")
}

/// A root tree with the host's units, ours (plus `extra` files) and stub binaries.
fn root_with_units(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let unit_dir = root.path().join("usr/lib/systemd/system");
    fs::create_dir_all(&unit_dir).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", host_unit_dir().display()))
        .arg(&unit_dir)
        .status()
        .unwrap();
    assert!(status.success(), "copying the host's units");
    let mut shipped = 0;
    for entry in fs::read_dir(units_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if [".service", ".timer", ".mount", ".target", ".socket"]
            .iter()
            .any(|s| name.ends_with(s))
        {
            fs::copy(&path, unit_dir.join(&name)).unwrap();
            shipped += 1;
        }
    }
    assert_eq!(
        shipped,
        UNITS.len(),
        "every shipped unit is listed in UNITS"
    );
    for (name, text) in extra {
        fs::write(unit_dir.join(name), text).unwrap();
    }
    let bin = root.path().join("usr/bin");
    fs::create_dir_all(&bin).unwrap();
    for b in BINARIES {
        let p = bin.join(b);
        fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

fn analyze(root: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(format!("--root={}", root.display()))
        .current_dir("/")
        .output()
        .expect("running systemd-analyze (apt-get install systemd)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn shipped_units_verify_without_any_output() {
    let root = root_with_units(&[]);
    let mut args = vec!["verify", "--man=no"];
    args.extend(UNITS);
    let (ok, out) = analyze(root.path(), &args);
    assert!(ok && out.is_empty(), "systemd-analyze verify:\n{out}");
}

#[test]
fn verify_harness_reports_what_it_should() {
    // A unit with a typo and a missing binary must produce output, or the test above proves
    // nothing.
    let broken = "[Service]\nExecStart=/usr/bin/not-shipped\nWatchdogSec=thirty\nRestrt=always\n";
    let root = root_with_units(&[("broken.service", broken)]);
    let (_, out) = analyze(root.path(), &["verify", "--man=no", "broken.service"]);
    assert!(out.contains("Restrt"), "{out}");
    assert!(out.contains("thirty"), "{out}");
    assert!(out.contains("/usr/bin/not-shipped"), "{out}");
}

fn timer_calendars() -> Vec<String> {
    let timer = fs::read_to_string(units_dir().join("daynight.timer")).unwrap();
    timer
        .lines()
        .filter_map(|l| l.strip_prefix("OnCalendar="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn timer_calendar_expressions_parse_and_mean_ist() {
    let calendars = timer_calendars();
    assert_eq!(calendars.len(), 3, "{calendars:?}");
    for cal in &calendars {
        let out = Command::new("systemd-analyze")
            .args(["calendar", "--iterations=3", cal])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{cal}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // 06:00 and 18:00 in Asia/Kolkata (UTC+05:30, no DST) are 00:30 and 12:30 UTC.
        let expect_utc = match cal.as_str() {
            "*-*-* 06:00:00 Asia/Kolkata" => "00:30:00 UTC",
            "*-*-* 18:00:00 Asia/Kolkata" => "12:30:00 UTC",
            "*:00/5" => ":00 UTC",
            other => panic!("unexpected OnCalendar={other}"),
        };
        let elapses: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("Next elapse") || l.trim_start().starts_with("Iter."))
            .collect();
        assert_eq!(elapses.len(), 3, "{cal}:\n{text}");
        for line in elapses {
            assert!(line.contains(expect_utc), "{cal}: {line}");
        }
    }
}

/// Units whose daemon reads the kernel's clock state (`adjtimex`, `STA_UNSYNC`): the recorder
/// notes clock offsets while unsynchronised, the uploader waits for the sync.
const CLOCK_READERS: &[&str] = &[
    "seg@cam1.service",
    "uploader@cam1.service",
    "visdcam-alert.service",
    "visdcam-metrics@1.service",
];

/// `systemd-analyze security`'s line for `item` (its first column).
fn security_line(out: &str, item: &str) -> String {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(item))
        .unwrap_or_else(|| panic!("no {item} line:\n{out}"))
        .to_string()
}

#[test]
fn clock_readers_may_read_the_clock_state_but_not_set_it() {
    // systemd's own reading of each unit's filters: `ProtectClock=yes` (or a filter without
    // adjtimex) would leave these daemons blind to chrony's or ntpd's sync.
    let root = root_with_units(&[]);
    for unit in CLOCK_READERS {
        let (_, out) = analyze(root.path(), &["security", "--offline=yes", unit]);
        let clock = security_line(&out, "SystemCallFilter=~@clock");
        assert!(clock.contains("adjtimex is allowed"), "{unit}: {clock}");
        let cap = security_line(&out, "CapabilityBoundingSet=~CAP_SYS_TIME");
        assert!(
            cap.contains("cannot change the system clock"),
            "{unit}: {cap}"
        );
    }
    // The others keep ProtectClock=yes.
    let (_, out) = analyze(
        root.path(),
        &["security", "--offline=yes", "daynight.service"],
    );
    let clock = security_line(&out, "SystemCallFilter=~@clock");
    assert!(clock.contains("@clock is not included"), "{clock}");
}

#[test]
fn daemon_sandboxes_stay_at_low_exposure() {
    let root = root_with_units(&[]);
    for (unit, max) in MAX_EXPOSURE {
        let (_, out) = analyze(root.path(), &["security", "--offline=yes", unit]);
        let level: f64 = out
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, rest)| rest.split_once(": "))
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure level for {unit}:\n{out}"));
        eprintln!("{unit}: exposure {level}");
        assert!(level <= *max, "{unit}: exposure {level} > {max}:\n{out}");
    }
}

/// `KEY=` values of a unit file (every line, in order).
fn unit_values(text: &str, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
        .collect()
}

#[test]
fn only_the_uploader_runs_as_the_user_that_may_read_the_credential() {
    // The credential's copy in /run/credentials/<unit>/ belongs to the unit's user: any other
    // service running as that user could read it. So the uploader's user runs nothing else,
    // and whatever talks to a camera runs as visdcam-rec; all share the group visdcam.
    let mut services = 0;
    for entry in fs::read_dir(units_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".service") {
            continue;
        }
        services += 1;
        let text = fs::read_to_string(&path).unwrap();
        let user = unit_values(&text, "User");
        let group = unit_values(&text, "Group");
        let creds = unit_values(&text, "LoadCredential");
        let supplementary = unit_values(&text, "SupplementaryGroups");
        if name == "visdcam-web.service" {
            // The live-view page: its own user and group, plus visdcam for the live sockets
            // and the RAM directories; its own read key, never the uploader's.
            assert_eq!(
                creds,
                ["web-read-credentials:visdcam-web-read-credentials"],
                "{name}"
            );
            assert_eq!(user, ["visdcam-web"], "{name}");
            assert_eq!(group, ["visdcam-web"], "{name}");
            assert_eq!(supplementary, ["visdcam"], "{name}");
            continue;
        }
        if name == "seg@.service" {
            // The Pi 4's hardware encoder, /dev/video11, belongs to the group video.
            assert_eq!(supplementary, ["video"], "{name}");
        } else if name == "visdcam-alert.service" {
            // The alert checker reads its own journal line back after a reboot
            // (docs/design/monitoring.md); the journal never holds a credential.
            assert_eq!(supplementary, ["systemd-journal"], "{name}");
        } else {
            assert!(supplementary.is_empty(), "{name}: {supplementary:?}");
        }
        let expect = if name == "uploader@.service" {
            assert_eq!(creds, ["aws-credentials:visdcam-aws-credentials"], "{name}");
            "visdcam"
        } else {
            assert!(creds.is_empty(), "{name} loads a credential: {creds:?}");
            assert!(
                unit_values(&text, "SetCredential").is_empty()
                    && unit_values(&text, "LoadCredentialEncrypted").is_empty(),
                "{name}"
            );
            "visdcam-rec"
        };
        assert_eq!(user, [expect], "{name}");
        assert_eq!(group, ["visdcam"], "{name}");
    }
    assert_eq!(services, 7, "every shipped service checked");

    // sysusers: both users, visdcam-rec with visdcam as its primary group.
    let sysusers = fs::read_to_string(units_dir().join("visdcam.sysusers")).unwrap();
    let users: Vec<Vec<&str>> = sysusers
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        users.iter().map(|f| (f[0], f[1], f[2])).collect::<Vec<_>>(),
        [
            ("u", "visdcam", "-"),
            ("u", "visdcam-rec", "-:visdcam"),
            ("u", "visdcam-web", "-")
        ],
        "{sysusers}"
    );
}
