//! daynight under a real systemd (nspawn container; `#[ignore]`d, `cargo xtask ci` runs it with
//! `--ignored` as root): the shipped
//! `daynight.service`/`daynight.timer` with their sandbox reach a camera double on the host,
//! keep their memory in the `RuntimeDirectory`, and `timer-dropin --write` re-arms the timer
//! at the configured times.

use std::path::Path;
use std::time::Duration;

use camera_double::{CameraDouble, Fault, Options};
use test_rigs::container::Container;
use visdcam_core::camvars::{DEFAULT_DAY, DEFAULT_NIGHT};

fn shipped(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../systemd")
        .join(name)
}

/// Runs the service once and returns the preset it says it applied (`on day`/`on night`).
fn run_service(c: &Container) {
    c.exec_ok(&["systemctl", "start", "daynight.service"])
        .expect("daynight.service runs and succeeds");
    let result = c
        .exec_ok(&[
            "systemctl",
            "show",
            "-p",
            "Result",
            "--value",
            "daynight.service",
        ])
        .unwrap();
    assert_eq!(
        result.trim(),
        "success",
        "{}",
        c.journal("daynight.service")
    );
}

fn assert_on_due(cam: &CameraDouble) {
    let status = cam.status();
    let on = |p: &[(&str, i32)]| {
        p.iter()
            .all(|(k, v)| status.get(*k) == Some(&i64::from(*v)))
    };
    assert!(on(DEFAULT_DAY) || on(DEFAULT_NIGHT), "{status:?}");
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p daynight --test e2e_systemd -- --ignored --test-threads=1"]
fn service_and_timer_under_real_systemd() {
    let cam = CameraDouble::start(Options::default()).unwrap();
    let c = Container::boot().expect("booting the container");
    c.copy_in(
        Path::new(env!("CARGO_BIN_EXE_daynight")),
        "/usr/bin/daynight",
    )
    .unwrap();
    c.exec_ok(&["chmod", "0755", "/usr/bin/daynight"]).unwrap();
    for unit in ["daynight.service", "daynight.timer"] {
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
        b"DAY_START=07:15\nNIGHT_START=19:45\n",
    )
    .unwrap();
    c.write_file(
        "/etc/visdcam/cameras/cam1.conf",
        format!("CAMERA_URL={}\n", cam.stream_url()).as_bytes(),
    )
    .unwrap();
    c.exec_ok(&["systemctl", "daemon-reload"]).unwrap();
    c.exec_ok(&["systemctl", "start", "daynight.timer"])
        .unwrap();
    let calendar = || {
        c.exec_ok(&[
            "systemctl",
            "show",
            "-p",
            "TimersCalendar",
            "daynight.timer",
        ])
        .unwrap()
    };
    assert!(
        calendar().contains("06:00:00 Asia/Kolkata"),
        "{}",
        calendar()
    );

    // The drop-in re-arms the running timer at the configured times.
    c.exec_ok(&["daynight", "timer-dropin", "--write"]).unwrap();
    let cal = calendar();
    assert!(
        cal.contains("07:15:00 Asia/Kolkata") && cal.contains("19:45:00 Asia/Kolkata"),
        "{cal}"
    );
    assert!(!cal.contains("06:00:00"), "{cal}");
    assert!(
        cal.contains("*:00/5") || cal.contains("*-*-* *:00/5:00"),
        "{cal}"
    );

    // The sandboxed oneshot reaches the camera on the host and leaves its memory in /run.
    run_service(&c);
    assert_on_due(&cam);
    let memory = c
        .exec_ok(&["cat", "/run/visdcam/daynight/cam1"])
        .expect("memory in the RuntimeDirectory");
    assert!(memory.starts_with("preset="), "{memory}");
    let journal = c.journal("daynight.service");
    assert!(journal.contains("cam1: quality 10 → "), "{journal}");

    // Rebooted camera: the next run (as the timer would start it) restores the preset.
    cam.set_fault(Fault::Reboot(Duration::from_millis(100)));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while cam.status().get("quality") != Some(&10) || cam.fault() != Fault::None {
        assert!(
            std::time::Instant::now() < deadline,
            "double did not reboot"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run_service(&c);
    assert_on_due(&cam);
    assert!(c
        .journal("daynight.service")
        .contains("the camera rebooted?"));

    // A camera that is down (nothing listens) does not leave the oneshot failed: it exits 75,
    // which the unit counts as success, and the journal names the camera.
    let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone_url = format!("http://{}/stream", gone.local_addr().unwrap());
    drop(gone);
    c.write_file(
        "/etc/visdcam/cameras/cam2.conf",
        format!("CAMERA_URL={gone_url}\n").as_bytes(),
    )
    .unwrap();
    run_service(&c);
    let status = c
        .exec_ok(&[
            "systemctl",
            "show",
            "-p",
            "ExecMainStatus",
            "--value",
            "daynight.service",
        ])
        .unwrap();
    assert_eq!(status.trim(), "75", "{}", c.journal("daynight.service"));
    let failed = c.exec(&["systemctl", "is-failed", "daynight.service"]);
    assert!(!failed.status.success(), "daynight.service is failed");
    assert!(c.journal("daynight.service").contains("cam2 (down)"));
    assert_on_due(&cam);
}
