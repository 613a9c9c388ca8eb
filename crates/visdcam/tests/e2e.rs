//! End to end: the visdcam `.deb` installed on a real systemd 252 (Debian 12 in an nspawn
//! container), checked the way an admin would see it: user, units, timer, RAM disk, upgrade
//! and purge.
//!
//! Run with `cargo xtask e2e` (builds the package, sets `VISDCAM_DEB` and `VISDCAM_E2E=1`).

use std::path::PathBuf;

use test_rigs::container::{e2e_enabled, Container};

/// The package under test (`VISDCAM_DEB`, set by `cargo xtask e2e`).
fn deb() -> PathBuf {
    let path = std::env::var_os("VISDCAM_DEB")
        .map(PathBuf::from)
        .expect("VISDCAM_DEB is not set: run the end-to-end test with `cargo xtask e2e`");
    assert!(
        path.is_file(),
        "VISDCAM_DEB={} is not a file",
        path.display()
    );
    path
}

/// Boots a container and installs the package offline: `dpkg -i` downloads nothing, so a
/// dependency missing from the rootfs fails here (`apt-get --no-download` cannot take a local
/// file: "Pathname to install is not absolute").
fn installed() -> Container {
    let deb = deb();
    let c = Container::boot().expect("booting the container");
    std::fs::copy(&deb, c.xchg().join("visdcam.deb")).expect("staging the .deb");
    install(&c);
    c
}

fn install(c: &Container) {
    let out = c.exec(&[
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "dpkg",
        "-i",
        "/xchg/visdcam.deb",
    ]);
    assert!(
        out.status.success(),
        "installing the .deb: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh(c: &Container, script: &str) -> String {
    c.exec_ok(&["sh", "-ec", script])
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .to_owned()
}

fn systemctl(c: &Container, args: &[&str]) -> String {
    let mut argv = vec!["systemctl"];
    argv.extend(args);
    let out = c.exec(&argv);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn package_installs_user_units_and_timer() {
    if !e2e_enabled("package_installs_user_units_and_timer") {
        return;
    }
    let c = installed();

    // The daemons' user, a system account without a login shell.
    let passwd = sh(&c, "getent passwd visdcam");
    let fields: Vec<&str> = passwd.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "system uid: {passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");

    // Every unit is known to systemd and parses.
    for unit in [
        "seg@cam1.service",
        "uploader@cam1.service",
        "daynight.service",
        "daynight.timer",
        "net-shaper.service",
        "visdcam.target",
        "mnt-ramcam.mount",
    ] {
        assert_eq!(
            systemctl(&c, &["show", "-P", "LoadState", unit]),
            "loaded",
            "{unit}"
        );
    }
    let cat = sys_ok(&c, &["cat", "seg@cam1.service"]);
    assert!(cat.contains("ExecStart=/usr/bin/seg-cam %i"), "{cat}");
    let exec_start = systemctl(&c, &["show", "-P", "ExecStart", "seg@cam1.service"]);
    assert!(exec_start.contains("path=/usr/bin/seg-cam"), "{exec_start}");

    // Enabled by the package: the timer and the cameras' target; not the shaper or templates.
    assert_eq!(systemctl(&c, &["is-enabled", "daynight.timer"]), "enabled");
    assert_eq!(systemctl(&c, &["is-active", "daynight.timer"]), "active");
    assert_eq!(systemctl(&c, &["is-enabled", "visdcam.target"]), "enabled");
    assert_eq!(
        systemctl(&c, &["is-enabled", "net-shaper.service"]),
        "disabled"
    );
    assert_eq!(
        systemctl(&c, &["is-active", "seg@cam1.service"]),
        "inactive"
    );
    let timers = systemctl(&c, &["show", "-P", "TimersCalendar", "daynight.timer"]);
    assert!(timers.contains("06:00:00 Asia/Kolkata"), "{timers}");
    assert!(timers.contains("18:00:00 Asia/Kolkata"), "{timers}");

    // The RAM disk: a tmpfs owned by visdcam, not readable by others.
    systemctl(&c, &["start", "mnt-ramcam.mount"]);
    assert_eq!(sh(&c, "findmnt -n -o FSTYPE /mnt/ramcam"), "tmpfs");
    assert_eq!(
        sh(&c, "stat -c %U:%G:%a /mnt/ramcam"),
        "visdcam:visdcam:750"
    );

    // Config files are conffiles; the credential link points at the documented path.
    let conffiles = sh(&c, "cat /var/lib/dpkg/info/visdcam.conffiles");
    assert!(
        conffiles.contains("/etc/visdcam/visdcam.conf"),
        "{conffiles}"
    );
    assert_eq!(
        sh(&c, "readlink /usr/lib/credstore/visdcam-aws-credentials"),
        "/etc/visdcam/aws-credentials"
    );

    // The real sandbox exposure, measured by the container's systemd.
    for unit in ["seg@cam1.service", "uploader@cam1.service"] {
        let out = c.exec(&["systemd-analyze", "security", "--no-pager", unit]);
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split_once("Overall exposure level for "))
            .and_then(|(_, r)| r.split_once(": "))
            .and_then(|(_, r)| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no exposure for {unit}: {text}"));
        assert!(level <= 2.0, "{unit}: exposure {level}");
    }
}

fn sys_ok(c: &Container, args: &[&str]) -> String {
    let mut argv = vec!["systemctl"];
    argv.extend(args);
    c.exec_ok(&argv).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn upgrade_keeps_admin_choices_and_purge_removes_everything() {
    if !e2e_enabled("upgrade_keeps_admin_choices_and_purge_removes_everything") {
        return;
    }
    let c = installed();
    // An admin's choices: timer disabled, a camera file, credentials.
    sys_ok(&c, &["disable", "--now", "daynight.timer"]);
    sh(
        &c,
        "printf 'B2_BUCKET=x\\n' > /etc/visdcam/cameras/cam1.conf; \
         install -m 600 /dev/null /etc/visdcam/aws-credentials",
    );

    // Reinstalling is an upgrade for the maintainer scripts ($2 = old version).
    install(&c);
    assert_eq!(systemctl(&c, &["is-enabled", "daynight.timer"]), "disabled");
    assert_eq!(systemctl(&c, &["is-active", "daynight.timer"]), "inactive");
    assert_eq!(sh(&c, "cat /etc/visdcam/cameras/cam1.conf"), "B2_BUCKET=x");

    let out = c.exec(&[
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "purge",
        "-y",
        "-q",
        "visdcam",
    ]);
    assert!(
        out.status.success(),
        "purge: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !c.exec(&["getent", "passwd", "visdcam"]).status.success(),
        "user removed"
    );
    assert!(
        !c.exec(&["test", "-e", "/etc/visdcam"]).status.success(),
        "/etc/visdcam removed"
    );
    assert!(!c
        .exec(&["test", "-e", "/lib/systemd/system/seg@.service"])
        .status
        .success());
    assert_eq!(
        systemctl(&c, &["show", "-P", "LoadState", "daynight.timer"]),
        "not-found"
    );
    let leftovers = sh(
        &c,
        "ls /etc/systemd/system/timers.target.wants/ /etc/systemd/system/multi-user.target.wants/",
    );
    assert!(
        !leftovers.contains("daynight") && !leftovers.contains("visdcam"),
        "{leftovers}"
    );
}
