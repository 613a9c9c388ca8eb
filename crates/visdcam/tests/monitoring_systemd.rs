//! Monitoring under a real systemd (nspawn container, host network): the shipped
//! `visdcam-metrics.socket`/`visdcam-metrics@.service` answer scrapes from the host with the
//! figures of a real `seg@cam1` and `uploader@cam1` (recording a camera double, uploading to the
//! S3 rig, both on the host) and the units' states over D-Bus, inside their sandbox; the shipped
//! `visdcam-alert.service`, started again and again, raises a camera outage to a webhook on the
//! host once and resolves it once, then a failed unit (an uploader refusing an invalid
//! configuration) the same way, keeping its state in `/run/visdcam-alert`.
//!
//! `#[ignore]`d: needs root, systemd-nspawn and debootstrap. `cargo xtask ci` runs it with
//! `--ignored`; by hand: `cargo test -p visdcam --test monitoring_systemd -- --ignored`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault, Options};
use test_rigs::container::Container;
use test_rigs::process::{free_port, wait_until};
use test_rigs::s3::S3Rig;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../systemd")
        .join(name)
}

fn sibling(name: &str) -> PathBuf {
    test_rigs::process::sibling_binary(env!("CARGO_BIN_EXE_visdcam"), name)
}

/// A webhook receiver on the host's 127.0.0.1 keeping the JSON bodies.
fn hook() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut line, mut len) = (String::new(), 0);
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut body = vec![0; len];
            if reader.read_exact(&mut body).is_ok() {
                if let Ok(v) = serde_json::from_slice(&body) {
                    keep.lock().unwrap().push(v);
                }
            }
            let _ = write!(conn, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, got)
}

/// A scrape of the socket unit from the host: the value of one sample line, if present.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
}

fn scrape(port: u16) -> Option<String> {
    let mut r = ureq::get(&format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .ok()?;
    assert_eq!(
        r.headers().get("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    r.body_mut().read_to_string().ok()
}

/// The RAM disk, the camera's units and the metrics socket (none is enabled).
fn start_units(c: &Container) {
    c.exec_ok(&["systemctl", "start", "mnt-ramcam.mount"])
        .unwrap();
    c.exec_ok(&["chgrp", "visdcam", "/mnt/ramcam"]).unwrap();
    c.exec_ok(&["chmod", "2770", "/mnt/ramcam"]).unwrap();
    c.exec_ok(&[
        "systemctl",
        "start",
        "seg@cam1.service",
        "uploader@cam1.service",
        "visdcam-metrics.socket",
    ])
    .unwrap_or_else(|e| panic!("{e}\n{}", c.journal("seg@cam1.service")));
}

/// One alert check: the real unit, started as the timer would.
fn check(c: &Container) {
    c.exec_ok(&["systemctl", "start", "visdcam-alert.service"])
        .unwrap_or_else(|e| panic!("{e}\n{}", c.journal("visdcam-alert.service")));
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p visdcam --test monitoring_systemd -- --ignored"]
fn metrics_socket_and_alert_service_under_real_systemd() {
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    let (hook_port, bodies) = hook();
    let metrics_port = free_port();

    let c = Container::boot().expect("booting the container");
    for bin in ["seg-cam", "uploader"] {
        c.copy_in(&sibling(bin), &format!("/usr/bin/{bin}"))
            .unwrap();
    }
    c.copy_in(Path::new(env!("CARGO_BIN_EXE_visdcam")), "/usr/bin/visdcam")
        .unwrap();
    c.exec_ok(&[
        "chmod",
        "0755",
        "/usr/bin/seg-cam",
        "/usr/bin/uploader",
        "/usr/bin/visdcam",
    ])
    .unwrap();
    for unit in [
        "seg@.service",
        "uploader@.service",
        "mnt-ramcam.mount",
        "visdcam.target",
        "visdcam-metrics.socket",
        "visdcam-metrics@.service",
        "visdcam-alert.service",
        "visdcam-alert.timer",
    ] {
        c.copy_in(&shipped(unit), &format!("/etc/systemd/system/{unit}"))
            .unwrap();
    }
    c.copy_in(
        &shipped("visdcam.sysusers"),
        "/usr/lib/sysusers.d/visdcam.conf",
    )
    .unwrap();
    c.exec_ok(&["systemd-sysusers"]).unwrap();
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        format!(
            "RAM_DIR=/mnt/ramcam\nSEG_SECONDS=3\nKEYFRAME_INTERVAL=10\nREQUIRE_CLOCK_SYNC=no\n\
             B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
             ALERT_URL=http://127.0.0.1:{hook_port}/hook\nALERT_CAMERA_DOWN=5s\n\
             ALERT_RAM_DISK_PERCENT=100\n",
            rig.endpoint(),
            rig.bucket(),
            rig.region()
        )
        .as_bytes(),
    )
    .unwrap();
    c.write_file(
        "/etc/visdcam/cameras/cam1.conf",
        format!("CAMERA_URL={}\n", cam.stream_url()).as_bytes(),
    )
    .unwrap();
    c.write_file(
        "/etc/visdcam/aws-credentials",
        format!(
            "[b2]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            rig.access_key(),
            rig.secret_key()
        )
        .as_bytes(),
    )
    .unwrap();
    c.exec_ok(&["chmod", "0600", "/etc/visdcam/aws-credentials"])
        .unwrap();
    c.exec_ok(&["mkdir", "-p", "/usr/lib/credstore"]).unwrap();
    c.exec_ok(&[
        "ln",
        "-sf",
        "/etc/visdcam/aws-credentials",
        "/usr/lib/credstore/visdcam-aws-credentials",
    ])
    .unwrap();
    // The port: a free one instead of 9464, as the guide's drop-in does it.
    c.write_file(
        "/etc/systemd/system/visdcam-metrics.socket.d/port.conf",
        format!("[Socket]\nListenStream=\nListenStream=127.0.0.1:{metrics_port}\n").as_bytes(),
    )
    .unwrap();
    c.exec_ok(&["systemctl", "daemon-reload"]).unwrap();
    c.exec_ok(&["systemctl", "start", "mnt-ramcam.mount"])
        .unwrap();
    c.exec_ok(&["chgrp", "visdcam", "/mnt/ramcam"]).unwrap();
    c.exec_ok(&["chmod", "2770", "/mnt/ramcam"]).unwrap();
    c.exec_ok(&[
        "systemctl",
        "start",
        "seg@cam1.service",
        "uploader@cam1.service",
        "visdcam-metrics.socket",
    ])
    .unwrap_or_else(|e| panic!("{e}\n{}", c.journal("seg@cam1.service")));

    // Scrapes from the host, each a visdcam-metrics@ instance in its sandbox.
    let mut last = String::new();
    let ok = wait_until(Instant::now() + Duration::from_secs(90), || {
        last = scrape(metrics_port).unwrap_or_default();
        sample(&last, "visdcam_segments_uploaded_total{camera=\"cam1\"}").is_some_and(|n| n >= 2.0)
    });
    assert!(
        ok.is_ok(),
        "no uploads in the metrics:\n{last}\n{}\n{}",
        c.journal("visdcam-metrics@*"),
        c.journal("uploader@cam1.service")
    );
    let uploaded = sample(&last, "visdcam_segments_uploaded_total{camera=\"cam1\"}").unwrap();
    assert!(uploaded <= rig.list_objects().len() as f64);
    for (line, want) in [
        ("visdcam_systemd_up", 1.0),
        ("visdcam_camera_up{camera=\"cam1\"}", 1.0),
        ("visdcam_unit_active{unit=\"seg@cam1.service\"}", 1.0),
        ("visdcam_unit_active{unit=\"uploader@cam1.service\"}", 1.0),
        ("visdcam_unit_failed{unit=\"uploader@cam1.service\"}", 0.0),
        (
            "visdcam_unit_restarts_total{unit=\"seg@cam1.service\"}",
            0.0,
        ),
        ("visdcam_ram_disk_mounted{path=\"/mnt/ramcam\"}", 1.0),
        ("visdcam_upload_queue_segments{camera=\"cam1\"}", 0.0),
    ] {
        // The queue may hold the segment just closed.
        let got = sample(&last, line);
        if line.starts_with("visdcam_upload_queue") {
            assert!(got.is_some_and(|n| n <= 1.0), "{line}: {got:?}\n{last}");
        } else {
            assert_eq!(got, Some(want), "{line}\n{last}");
        }
    }

    // `visdcam status` keeps its text line short: the monitoring keys are in the JSON only.
    let status = c.exec_ok(&["visdcam", "status", "cam1"]).unwrap();
    let ram = status
        .lines()
        .find(|l| l.trim_start().starts_with("RAM: "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(
        ram.contains("; recorder: dropped 0, dropped_bytes 0"),
        "{ram}"
    );
    assert!(
        !ram.contains("latency") && !ram.contains("retries"),
        "{ram}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&c.exec_ok(&["visdcam", "status", "--json", "cam1"]).unwrap())
            .unwrap();
    let up = &json["cameras"][0]["uploader_stats"];
    assert!(
        up["latency_buckets"].is_string() && up["retries_refused"] == "0",
        "{up}"
    );
    assert_eq!(json["cameras"][0]["recorder_stats"]["recording"], "1");

    // Alerts: the real unit, started as the timer would, again and again.
    check(&c);
    assert!(bodies.lock().unwrap().is_empty(), "nothing wrong yet");
    cam.set_fault(Fault::CloseAndRefuse(Duration::from_secs(15)));
    let summary = || -> Vec<String> {
        bodies
            .lock()
            .unwrap()
            .iter()
            .map(|b| {
                format!(
                    "{} {}",
                    b["event"].as_str().unwrap(),
                    b["title"].as_str().unwrap()
                )
            })
            .collect()
    };
    let until = |c: &Container, n: usize| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while summary().len() < n {
            assert!(
                Instant::now() < deadline,
                "alerts so far: {:?}\n{}",
                summary(),
                c.journal("visdcam-alert.service")
            );
            check(c);
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    until(&c, 1);
    // A reboot while the alert is open: /run (the checker's state) is emptied; the journal
    // line the unit printed brings the open alert back, so it is resolved (once) when the
    // camera records again after the boot.
    let mut c = c;
    c.reboot().expect("rebooting the container");
    assert!(!c
        .exec(&["test", "-e", "/run/visdcam-alert/state"])
        .status
        .success());
    start_units(&c);
    until(&c, 2);
    for _ in 0..3 {
        check(&c);
    }
    let host = c.exec_ok(&["hostname"]).unwrap().trim().to_string();
    assert_eq!(
        summary(),
        [
            format!("raised visdcam on {host}: camera cam1 down"),
            format!("resolved visdcam on {host}: resolved: camera cam1 down"),
        ]
    );
    // A unit fails: cam2's configuration is invalid, so its uploader exits 78 and systemd
    // marks it failed (RestartPreventExitStatus=78). Raised once, resolved once after
    // reset-failed.
    c.write_file(
        "/etc/visdcam/cameras/cam2.conf",
        format!("CAMERA_URL={}\nSEG_SECONDS=1\n", cam.stream_url()).as_bytes(),
    )
    .unwrap();
    assert!(c
        .exec_ok(&["systemctl", "start", "uploader@cam2.service"])
        .is_err());
    let text = scrape(metrics_port).unwrap();
    assert_eq!(
        sample(&text, "visdcam_unit_failed{unit=\"uploader@cam2.service\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "visdcam_camera_config_valid{camera=\"cam2\"}"),
        Some(0.0)
    );
    check(&c);
    c.exec_ok(&["systemctl", "reset-failed", "uploader@cam2.service"])
        .unwrap();
    check(&c);
    check(&c);
    assert_eq!(
        summary()[2..],
        [
            format!("raised visdcam on {host}: uploader@cam2.service failed"),
            format!("resolved visdcam on {host}: resolved: uploader@cam2.service failed"),
        ]
    );
    let state = c.exec_ok(&["cat", "/run/visdcam-alert/state"]).unwrap();
    assert!(state.starts_with("# visdcam alert state v1\n"), "{state}");
    let owner = c
        .exec_ok(&["stat", "-c", "%U:%G %a", "/run/visdcam-alert"])
        .unwrap();
    assert_eq!(owner.trim(), "visdcam-rec:visdcam 750");
    // The timer arms.
    c.exec_ok(&["systemctl", "start", "visdcam-alert.timer"])
        .unwrap();
    let next = c
        .exec_ok(&[
            "systemctl",
            "show",
            "-p",
            "NextElapseUSecMonotonic",
            "--value",
            "visdcam-alert.timer",
        ])
        .unwrap();
    assert!(
        !next.trim().is_empty() && next.trim() != "infinity",
        "{next}"
    );
}
