//! The nspawn container rig against a real systemd: boot, commands and D-Bus from the host,
//! transient units, the written-files listing, reboot, and clean-up on drop.
//!
//! Every test is `#[ignore]`d: they need root, systemd-nspawn and debootstrap (the first run
//! builds the rootfs, a few minutes). `cargo xtask ci` runs them with `--ignored`; by hand:
//! `cargo test -p test-rigs --test container_rig -- --ignored --test-threads=1`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use test_rigs::container::{Container, BASE_PACKAGES, PACKAGES};

fn host_busctl(c: &Container, args: &[&str]) -> String {
    let out = Command::new("busctl")
        .env("DBUS_SYSTEM_BUS_ADDRESS", c.bus_address())
        .args(args)
        .output()
        .expect("running busctl on the host");
    assert!(
        out.status.success(),
        "busctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p test-rigs --test container_rig -- --ignored --test-threads=1"]
fn boots_real_systemd_runs_units_and_cleans_up() {
    let c = Container::boot().expect("booting the container");
    assert_eq!(
        c.exec_ok(&["systemctl", "is-system-running"])
            .unwrap()
            .trim(),
        "running"
    );
    assert!(
        c.exec_ok(&["systemctl", "--version"])
            .unwrap()
            .starts_with("systemd 252"),
        "the container runs bookworm's systemd"
    );

    // Every package the .deb relies on is in the rootfs (no network needed to install it).
    let mut query = vec!["dpkg-query", "-W", "-f=${Package} ${Status}\n"];
    query.extend(BASE_PACKAGES);
    query.extend(PACKAGES);
    let installed = c.exec_ok(&query).unwrap();
    for pkg in BASE_PACKAGES.iter().chain(PACKAGES) {
        assert!(
            installed
                .lines()
                .any(|l| l.starts_with(&format!("{pkg} ")) && l.ends_with("installed")),
            "{pkg} missing from the rootfs:\n{installed}"
        );
    }

    // The host's DBUS_SYSTEM_BUS_ADDRESS must not leak into commands run inside.
    let out = c
        .exec_ok(&[
            "systemd-run",
            "--wait",
            "--pipe",
            "-q",
            "sh",
            "-c",
            "echo transient $((6*7))",
        ])
        .unwrap();
    assert_eq!(out.trim(), "transient 42");

    // D-Bus from the host reaches the container's systemd, not anything on the host.
    let version = host_busctl(
        &c,
        &[
            "get-property",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "Version",
        ],
    );
    assert!(version.contains("252"), "{version}");
    host_busctl(
        &c,
        &[
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            "rig-probe.service",
            "fail",
            "2",
            "Type",
            "s",
            "oneshot",
            "ExecStart",
            "a(sasb)",
            "1",
            "/usr/bin/touch",
            "2",
            "/usr/bin/touch",
            "/var/lib/rig-probe",
            "false",
            "0",
        ],
    );
    wait_for(
        "the D-Bus transient unit's file",
        Duration::from_secs(20),
        || {
            c.exec(&["test", "-e", "/var/lib/rig-probe"])
                .status
                .success()
        },
    );
    // Written files: the transient unit's file is listed, tmpfs (/run, /tmp) is not.
    c.exec_ok(&["touch", "/run/on-tmpfs", "/tmp/on-tmpfs"])
        .unwrap();
    let written = c.written_files();
    assert!(
        written.contains(&"/var/lib/rig-probe".to_owned()),
        "{written:#?}"
    );
    assert!(
        !written.iter().any(|p| p.contains("on-tmpfs")),
        "{written:#?}"
    );
    assert!(c.upper_dir().join("var/lib/rig-probe").exists());
    // The rootfs itself is untouched (the overlay took the write).
    let rootfs = test_rigs::container::e2e_dir().join("rootfs");
    assert!(!rootfs.join("var/lib/rig-probe").exists());

    let journal = c.journal("rig-probe.service");
    assert!(journal.contains("rig-probe.service"), "journal: {journal}");

    // Drop: no nspawn process, cgroup or run directory is left.
    let nspawn = c.nspawn_pid().unwrap();
    let pid1 = c.pid1();
    let cgroups = c.cgroups().to_vec();
    let run_dir = c.run_dir().to_path_buf();
    assert!(!cgroups.is_empty());
    drop(c);
    for pid in [nspawn, pid1] {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} survived the drop"
        );
    }
    for cg in &cgroups {
        assert!(!cg.exists(), "{} survived the drop", cg.display());
    }
    assert!(!run_dir.exists(), "{} survived the drop", run_dir.display());
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p test-rigs --test container_rig -- --ignored --test-threads=1"]
fn reboot_keeps_the_overlay_and_resets_tmpfs() {
    let mut c = Container::boot().expect("booting the container");
    c.write_file("/var/lib/visdcam-rig/kept", b"survives reboot\n")
        .unwrap();
    c.exec_ok(&["touch", "/run/gone-after-reboot"]).unwrap();
    let first_pid1 = c.pid1();

    c.reboot().expect("rebooting the container");

    assert_ne!(c.pid1(), first_pid1, "a new systemd runs after the reboot");
    assert_eq!(
        c.exec_ok(&["systemctl", "is-system-running"])
            .unwrap()
            .trim(),
        "running"
    );
    assert_eq!(
        c.exec_ok(&["cat", "/var/lib/visdcam-rig/kept"]).unwrap(),
        "survives reboot\n"
    );
    assert!(!c
        .exec(&["test", "-e", "/run/gone-after-reboot"])
        .status
        .success());
    let boots = c
        .exec_ok(&["journalctl", "--list-boots", "--no-pager", "-q"])
        .unwrap();
    assert_eq!(
        boots.lines().count(),
        2,
        "two boots in the journal:\n{boots}"
    );
}
