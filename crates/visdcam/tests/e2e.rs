//! End to end: the visdcam `.deb` installed on a real systemd 252 (Debian 12 in an nspawn
//! container), checked the way an admin would see it: the two users (the recorder's cannot
//! read the uploader's credential), units, timer, RAM disk, an upgrade from the single-user
//! layout with a recorder running, and purge with segments on the RAM disk; then the real daemons recording two camera doubles (on the host's 127.0.0.1)
//! into a real S3 server (SeaweedFS, also on the host) through faults, a setdur, a stop and a
//! reboot, with the journal in RAM and nothing written to the SD card (issue 10); and
//! `visdcam migrate` moving a running visdcam-pi install (gst-launch units against the
//! doubles) over, with a refused key, a failure midway, `--dry-run` and a second run (issue 19).
//!
//! Every test is `#[ignore]`d (needs root, systemd-nspawn, debootstrap, the package and the
//! double): run them with `cargo xtask e2e [FILTER]`, which builds the package and the camera
//! double, sets `VISDCAM_DEB` and `VISDCAM_CAMERA_DOUBLE` and passes `--ignored`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use test_rigs::container::{workspace_root, Container};
use test_rigs::media::probe;
use test_rigs::process::ChildGuard;
use test_rigs::s3::S3Rig;

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

/// `(uid, primary gid)` of a user inside the container, from `getent passwd`, which must show
/// a system account without a login shell.
fn system_user(c: &Container, user: &str) -> (u32, u32) {
    let passwd = sh(c, &format!("getent passwd {user}"));
    let fields: Vec<&str> = passwd.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    let gid: u32 = fields[3].parse().unwrap();
    assert!(uid < 1000, "system uid: {passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    (uid, gid)
}

fn group_id(c: &Container, group: &str) -> u32 {
    let line = sh(c, &format!("getent group {group}"));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

/// The real `(uid, gid)` of a unit's main process, from its `/proc/PID/status`.
fn main_ids(c: &Container, unit: &str) -> (u32, u32) {
    let pid = prop(c, unit, "MainPID");
    assert!(pid != "0" && !pid.is_empty(), "{unit} has no main process");
    let status = sh(c, &format!("cat /proc/{pid}/status"));
    let real = |field: &str| -> u32 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in {unit}'s status: {status}"))
    };
    (real("Uid:"), real("Gid:"))
}

/// Runs `argv` inside as `user` with the group visdcam and no other group, as the unit's
/// process would (`setpriv`); the output whatever the exit status.
fn as_user(c: &Container, user: &str, argv: &[&str]) -> std::process::Output {
    let mut full = vec![
        "setpriv",
        "--reuid",
        user,
        "--regid",
        "visdcam",
        "--clear-groups",
    ];
    full.extend(argv);
    c.exec(&full)
}

/// Files and directories inside owned by a user or group that does not exist (anything a
/// deleted account left behind), outside /proc, /sys and /dev.
fn ownerless_files(c: &Container) -> String {
    sh(
        c,
        "find / \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o \
         \\( -nouser -o -nogroup \\) -print",
    )
}

/// `apt-get purge visdcam`; its stdout (the maintainer scripts' lines).
fn purge(c: &Container) -> String {
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, the amd64 .deb and the camera double: cargo xtask e2e [FILTER] builds both and runs it with --ignored (cargo xtask ci runs that)"]
fn package_installs_users_units_and_timer_and_purge_keeps_an_fstab_ram_disk() {
    let c = installed();

    // The daemons' users, system accounts without a login shell: the uploader's (visdcam)
    // and the recorder's (visdcam-rec), whose primary group is the uploader's group.
    let (uploader_uid, visdcam_gid) = system_user(&c, "visdcam");
    let (rec_uid, rec_gid) = system_user(&c, "visdcam-rec");
    assert_ne!(rec_uid, uploader_uid);
    assert_eq!(group_id(&c, "visdcam"), visdcam_gid);
    assert_eq!(
        rec_gid, visdcam_gid,
        "visdcam-rec's primary group is visdcam"
    );

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

    // Only the uploader runs as the user that may read the credential.
    for (unit, user) in [
        ("seg@cam1.service", "visdcam-rec"),
        ("uploader@cam1.service", "visdcam"),
        ("daynight.service", "visdcam-rec"),
        ("net-shaper.service", "visdcam-rec"),
    ] {
        assert_eq!(prop(&c, unit, "User"), user, "{unit}");
        assert_eq!(prop(&c, unit, "Group"), "visdcam", "{unit}");
    }
    // The live-view page: shipped, not enabled, its own user with the group visdcam added.
    assert_eq!(prop(&c, "visdcam-web.service", "User"), "visdcam-web");
    assert_eq!(
        prop(&c, "visdcam-web.service", "SupplementaryGroups"),
        "visdcam"
    );
    assert_eq!(
        systemctl(&c, &["is-enabled", "visdcam-web.socket"]).trim(),
        "disabled"
    );
    assert_eq!(
        sh(
            &c,
            "readlink -f /usr/lib/systemd/system-generators/visdcam-web-generator"
        ),
        "/usr/bin/visdcam"
    );

    // The RAM disk: a tmpfs of visdcam's that the group visdcam (both users) shares, setgid,
    // not readable by others.
    systemctl(&c, &["start", "mnt-ramcam.mount"]);
    assert_eq!(sh(&c, "findmnt -n -o FSTYPE /mnt/ramcam"), "tmpfs");
    assert_eq!(
        sh(&c, "stat -c %U:%G:%a /mnt/ramcam"),
        "visdcam:visdcam:2770"
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

    // A camera's recorder and uploader, each as its own user (PrivateUsers=yes in both). The
    // camera is down (nothing listens on port 9) and the store unreachable: the recorder
    // waits and retries, the uploader runs, both in the camera's directory.
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        b"B2_ENDPOINT=http://127.0.0.1:9\nB2_BUCKET=b\nB2_REGION=r\nB2_ADDRESSING_STYLE=path\n\
          REQUIRE_CLOCK_SYNC=no\n",
    )
    .unwrap();
    c.write_file(
        "/etc/visdcam/cameras/cam1.conf",
        b"CAMERA_URL=http://127.0.0.1:9/stream\n",
    )
    .unwrap();
    sh(
        &c,
        "umask 077; printf '[b2]\\naws_access_key_id = KEYID-E2E\\naws_secret_access_key = s\\n' \
         > /etc/visdcam/aws-credentials",
    );
    start(&c, &["seg@cam1.service", "uploader@cam1.service"]);
    assert_eq!(main_ids(&c, "seg@cam1.service"), (rec_uid, visdcam_gid));
    assert_eq!(
        main_ids(&c, "uploader@cam1.service"),
        (uploader_uid, visdcam_gid)
    );

    // The credential systemd hands the uploader is its user's alone; the recorder's user can
    // read neither that copy nor the file it comes from (the uploader's user can: the check
    // can tell).
    let creds = "/run/credentials/uploader@cam1.service";
    let stat = sh(
        &c,
        &format!("stat -c '%U %a' {creds} {creds}/aws-credentials"),
    );
    let modes: Vec<&str> = stat.lines().collect();
    assert_eq!(modes.len(), 2, "{stat}");
    for m in &modes {
        let (owner, mode) = m.split_once(' ').unwrap();
        assert_eq!(owner, "visdcam", "{stat}");
        let mode = u32::from_str_radix(mode, 8).unwrap();
        assert_eq!(mode & 0o077, 0, "group or others have access: {stat}");
    }
    for path in [
        format!("{creds}/aws-credentials"),
        "/etc/visdcam/aws-credentials".to_string(),
    ] {
        let out = as_user(&c, "visdcam-rec", &["cat", &path]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("Permission denied"),
            "visdcam-rec reading {path}: {}{err}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("KEYID-E2E"));
    }
    let own = as_user(&c, "visdcam", &["cat", &format!("{creds}/aws-credentials")]);
    assert!(
        String::from_utf8_lossy(&own.stdout).contains("KEYID-E2E"),
        "the uploader's user reads its credential: {}",
        String::from_utf8_lossy(&own.stderr)
    );

    // The camera's directory: shared (group visdcam, 2770) whoever made it; each daemon's
    // files are its own user's, group visdcam, 0640.
    wait_for("both daemons' files", Duration::from_secs(30), || {
        c.exec(&[
            "test",
            "-e",
            "/mnt/ramcam/cam1/.seg-cam.lock",
            "-a",
            "-e",
            "/mnt/ramcam/cam1/.uploader-stats",
        ])
        .status
        .success()
    });
    let dir = sh(&c, "stat -c %G:%a /mnt/ramcam/cam1");
    assert_eq!(dir, "visdcam:2770");
    assert_eq!(
        sh(
            &c,
            "stat -c %U:%G:%a /mnt/ramcam/cam1/.seg-cam.lock /mnt/ramcam/cam1/.uploader-stats"
        ),
        "visdcam-rec:visdcam:640\nvisdcam:visdcam:640"
    );

    // doctor tells when the two users cannot share the RAM disk (the mode of earlier
    // versions) or the recorder's user could read the credential, and how to fix it.
    let doctor = |c: &Container| {
        String::from_utf8_lossy(&c.exec(&["visdcam", "doctor"]).stdout).into_owned()
    };
    let line = |out: &str, prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix}: {out}"))
            .to_owned()
    };
    let out = doctor(&c);
    assert!(
        line(&out, "✔ RAM disk: /mnt/ramcam tmpfs").contains("free"),
        "{out}"
    );
    assert_eq!(
        line(&out, "✔ credentials: /etc/visdcam/aws-credentials"),
        "✔ credentials: /etc/visdcam/aws-credentials readable by root only (systemd copies it \
         for the uploader alone)"
    );
    sh(
        &c,
        "chmod 0750 /mnt/ramcam; chmod 0640 /etc/visdcam/aws-credentials",
    );
    let out = doctor(&c);
    assert_eq!(
        line(&out, "✘ RAM disk:"),
        "✘ RAM disk: /mnt/ramcam (visdcam:visdcam, mode 2750): the group visdcam cannot create \
         files in it, and the recorder (visdcam-rec) and the uploader (visdcam) share it through \
         that group — fix: sudo chgrp visdcam /mnt/ramcam && sudo chmod 2770 /mnt/ramcam; for \
         the next boot, mode=2770,gid=visdcam in its mount options (a drop-in for \
         mnt-ramcam.mount, or its /etc/fstab line)"
    );
    assert!(
        line(&out, "✘ credentials: /etc/visdcam/aws-credentials (root:root, mode 0640): users other than root can read it")
            .ends_with("— fix: sudo chown root:root /etc/visdcam/aws-credentials && sudo chmod 600 /etc/visdcam/aws-credentials"),
        "{out}"
    );
    sh(
        &c,
        "chmod 2770 /mnt/ramcam; chmod 0600 /etc/visdcam/aws-credentials",
    );

    // Purge with an /etc/fstab RAM disk (kept from visdcam-pi, with the options its guide
    // gives): the mount stays, nothing the deleted users owned stays on it.
    sys_ok(
        &c,
        &[
            "stop",
            "seg@cam1.service",
            "uploader@cam1.service",
            "mnt-ramcam.mount",
        ],
    );
    sh(
        &c,
        "echo 'tmpfs /mnt/ramcam tmpfs mode=2770,uid=visdcam,gid=visdcam,size=25%,nosuid,nodev,noexec 0 0' \
         >> /etc/fstab; systemctl daemon-reload",
    );
    start(&c, &["seg@cam1.service", "uploader@cam1.service"]);
    assert_eq!(
        prop(&c, "mnt-ramcam.mount", "FragmentPath"),
        "/run/systemd/generator/mnt-ramcam.mount"
    );
    // seg-cam takes its lock before it tells systemd it is ready.
    sh(&c, "test -e /mnt/ramcam/cam1/.seg-cam.lock");
    // A segment waiting for upload, as the recorder leaves it.
    let seg = "/mnt/ramcam/cam1/seg-1760271142000-0a3f.ts";
    let made = as_user(
        &c,
        "visdcam-rec",
        &[
            "sh",
            "-c",
            &format!("umask 027; head -c 1000 /dev/zero > {seg}"),
        ],
    );
    assert!(made.status.success(), "{made:?}");
    let out = purge(&c);
    assert!(
        out.contains(
            "visdcam: removed the camera directories from /mnt/ramcam, discarding 1 segment(s) \
             not uploaded; the mount stays"
        ),
        "{out}"
    );
    assert_eq!(sh(&c, "findmnt -n -o FSTYPE /mnt/ramcam"), "tmpfs");
    assert_eq!(sh(&c, "ls -A /mnt/ramcam"), "");
    assert_eq!(sh(&c, "stat -c %U:%G /mnt/ramcam"), "root:root");
    assert!(
        !c.exec(&["getent", "passwd", "visdcam-rec"])
            .status
            .success(),
        "visdcam-rec removed"
    );
    assert_eq!(ownerless_files(&c), "", "files of deleted users");
}

/// `systemctl start UNIT...`; on failure the panic shows the units' journals.
fn start(c: &Container, units: &[&str]) {
    let mut argv = vec!["systemctl", "start"];
    argv.extend(units);
    if let Err(e) = c.exec_ok(&argv) {
        let journals: Vec<String> = units
            .iter()
            .map(|u| format!("--- {u}:\n{}", c.journal(u)))
            .collect();
        panic!("{e}\n{}", journals.join("\n"));
    }
}

fn sys_ok(c: &Container, args: &[&str]) -> String {
    let mut argv = vec!["systemctl"];
    argv.extend(args);
    c.exec_ok(&argv).unwrap_or_else(|e| panic!("{e}"))
}

/// `(owner, name)` of every entry in a camera's RAM directory (one the uploader deletes while
/// it is listed is left out).
fn owners(c: &Container, cam: &str) -> Vec<(String, String)> {
    sh(
        c,
        &format!("find /mnt/ramcam/{cam} -mindepth 1 -printf '%u %f\\n' 2>/dev/null || true"),
    )
    .lines()
    .filter_map(|l| l.split_once(' '))
    .map(|(u, f)| (u.to_owned(), f.to_owned()))
    .collect()
}

/// The start time (ms) in a segment's name, final or partial.
fn start_ms(name: &str) -> Option<i64> {
    name.strip_prefix("seg-")?.split('-').next()?.parse().ok()
}

/// `dpkg -i` of the package again (an upgrade for the maintainer scripts: `$2` is the
/// installed version); its output.
fn upgrade(c: &Container) -> String {
    let out = c.exec(&[
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "dpkg",
        "-i",
        "/xchg/visdcam.deb",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "upgrading: {text}");
    text
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, the amd64 .deb and the camera double: cargo xtask e2e [FILTER] builds both and runs it with --ignored (cargo xtask ci runs that)"]
fn upgrade_from_one_user_keeps_recording_and_admin_choices_and_purge_removes_everything() {
    let scratch = tempfile::tempdir().unwrap();
    let s3 = S3Rig::start();
    let cam = start_camera(scratch.path(), "camera-double-1");
    let c = installed();
    // An admin's choices: timer disabled, a camera file, credentials.
    sys_ok(&c, &["disable", "--now", "daynight.timer"]);
    let camera_file = format!("# the porch\nCAMERA_URL={}\n", cam.stream_url);
    c.write_file("/etc/visdcam/cameras/cam1.conf", camera_file.as_bytes())
        .unwrap();
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        format!(
            "B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
             REQUIRE_CLOCK_SYNC=no\nSEG_SECONDS=2\nKEYFRAME_INTERVAL=10\n",
            s3.endpoint(),
            s3.bucket(),
            s3.region()
        )
        .as_bytes(),
    )
    .unwrap();
    let (creds, _) = s3.write_aws_files(scratch.path(), "b2");
    c.copy_in(&creds, "/etc/visdcam/aws-credentials").unwrap();
    sh(&c, "chmod 600 /etc/visdcam/aws-credentials");

    // The layout of the versions before visdcam-rec: every daemon ran as visdcam, the RAM
    // disk was visdcam's alone (mode 0750) and so was everything in it. The package's units
    // as they were then, the user gone; the reinstall below is the upgrade (dpkg replaces the
    // units, postinst runs with the old version). The mode comes from a size drop-in written
    // after the docs of then, which the upgrade leaves to the admin (with a warning).
    sh(
        &c,
        "cd /lib/systemd/system; \
         sed -i 's/^User=visdcam-rec$/User=visdcam/' seg@.service daynight.service \
             net-shaper.service; \
         mkdir -p /etc/systemd/system/mnt-ramcam.mount.d; \
         printf '[Mount]\\nOptions=mode=0750,uid=visdcam,gid=visdcam,size=128M,nosuid,nodev,noexec\\n' \
             > /etc/systemd/system/mnt-ramcam.mount.d/size.conf; \
         userdel visdcam-rec; systemctl daemon-reload; \
         systemctl start mnt-ramcam.mount; \
         install -d -o visdcam -g visdcam -m 0750 /mnt/ramcam/cam1",
    );
    let (visdcam_uid, visdcam_gid) = system_user(&c, "visdcam");
    // daynight leaves what it learnt of the cameras in its runtime directory (kept after it
    // ends: RuntimeDirectoryPreserve=yes).
    start(&c, &["daynight.service"]);
    assert_eq!(
        sh(&c, "find /run/visdcam/daynight -printf '%u\\n' | sort -u"),
        "visdcam"
    );
    start(&c, &["seg@cam1.service"]);
    assert_eq!(main_ids(&c, "seg@cam1.service"), (visdcam_uid, visdcam_gid));
    // Segments waiting (no uploader yet) and one being written, all visdcam's.
    wait_for(
        "two closed segments and one being written",
        Duration::from_secs(60),
        || {
            let o = owners(&c, "cam1");
            o.iter().filter(|(_, f)| f.ends_with(".ts")).count() >= 2
                && o.iter().any(|(_, f)| f.ends_with(".ts.part"))
        },
    );
    let before = owners(&c, "cam1");
    assert!(before.iter().all(|(u, _)| u == "visdcam"), "{before:?}");
    assert!(
        before.iter().any(|(_, f)| f == ".seg-cam.lock"),
        "{before:?}"
    );
    assert_eq!(
        sh(&c, "stat -c %a /mnt/ramcam /mnt/ramcam/cam1"),
        "750\n750"
    );

    // The upgrade, with the RAM disk mounted and the recorder running.
    let upgrading_ms = Utc::now().timestamp_millis();
    let out = upgrade(&c);
    assert!(!out.contains("could not share"), "{out}");
    assert!(
        out.contains(
            "visdcam: /mnt/ramcam is mounted with mode=0750 (/etc/fstab or a mnt-ramcam.mount \
             drop-in): the recorder (visdcam-rec) needs mode=2770 from the next boot on"
        ),
        "{out}"
    );
    let upgraded_ms = Utc::now().timestamp_millis();

    // The recorder runs again, as visdcam-rec; the RAM disk and the camera's directory are
    // shared through the group; what the recorder wrote is its new user's, the .part it was
    // writing was handed off (not left to a user that cannot finish it).
    let (rec_uid, rec_gid) = system_user(&c, "visdcam-rec");
    assert_eq!(rec_gid, visdcam_gid);
    assert_eq!(prop(&c, "seg@cam1.service", "ActiveState"), "active");
    assert_eq!(main_ids(&c, "seg@cam1.service"), (rec_uid, visdcam_gid));
    assert_eq!(
        sh(&c, "stat -c %U:%G:%a /mnt/ramcam /mnt/ramcam/cam1"),
        "visdcam:visdcam:2770\nvisdcam:visdcam:2770"
    );
    let after = owners(&c, "cam1");
    let stale: Vec<_> = after
        .iter()
        .filter(|(u, f)| {
            u != "visdcam-rec"
                || (f.ends_with(".ts.part") && start_ms(f).is_some_and(|ms| ms < upgrading_ms))
        })
        .collect();
    assert!(
        stale.is_empty(),
        "after the upgrade: {stale:?} (all: {after:?})"
    );
    // It records on: segments begun after the upgrade close, its user's.
    wait_for(
        "a segment recorded after the upgrade",
        Duration::from_secs(30),
        || {
            owners(&c, "cam1").iter().any(|(u, f)| {
                u == "visdcam-rec"
                    && f.ends_with(".ts")
                    && start_ms(f).is_some_and(|ms| ms > upgraded_ms)
            })
        },
    );
    assert_eq!(restarts(&c, "seg@cam1.service"), 0);
    let journal = c.journal("seg@cam1.service");
    assert!(!journal.contains("ermission denied"), "{journal}");

    // daynight runs as visdcam-rec now, in its runtime directory of before (systemd gives it
    // to the unit's user at start).
    start(&c, &["daynight.service"]);
    assert_eq!(
        sh(&c, "find /run/visdcam/daynight -printf '%u\\n' | sort -u"),
        "visdcam-rec"
    );

    // The uploader (the user it always was) uploads and deletes what either layout recorded.
    let queued_before: Vec<String> = before
        .iter()
        .filter(|(_, f)| f.ends_with(".ts"))
        .map(|(_, f)| f.clone())
        .collect();
    start(&c, &["uploader@cam1.service"]);
    assert_eq!(
        main_ids(&c, "uploader@cam1.service"),
        (visdcam_uid, visdcam_gid)
    );
    wait_for(
        "the segments from before the upgrade uploaded and deleted",
        Duration::from_secs(60),
        || {
            let now = owners(&c, "cam1");
            queued_before
                .iter()
                .all(|q| !now.iter().any(|(_, f)| f == q))
                && objects_of(&s3, 1).len() > queued_before.len()
        },
    );
    let journal = c.journal("uploader@cam1.service");
    assert!(!journal.contains("ermission denied"), "{journal}");

    // The admin's choices survived.
    assert_eq!(systemctl(&c, &["is-enabled", "daynight.timer"]), "disabled");
    assert_eq!(systemctl(&c, &["is-active", "daynight.timer"]), "inactive");
    assert_eq!(
        sh(&c, "cat /etc/visdcam/cameras/cam1.conf"),
        camera_file.trim()
    );

    // Purge with segments waiting on the package's RAM disk: it is unmounted (the segments
    // are discarded, and said so) before the users go, so no file of theirs outlives them.
    sys_ok(&c, &["stop", "uploader@cam1.service"]);
    wait_for("a segment waiting", Duration::from_secs(30), || {
        owners(&c, "cam1").iter().any(|(_, f)| f.ends_with(".ts"))
    });
    let out = purge(&c);
    let line = out
        .lines()
        .find(|l| l.starts_with("visdcam: unmounted the RAM disk /mnt/ramcam, discarding "))
        .unwrap_or_else(|| panic!("no line about the RAM disk: {out}"));
    let discarded: u32 = line
        .split_whitespace()
        .nth(7)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(discarded >= 1, "{line}");
    assert!(
        !c.exec(&["mountpoint", "-q", "/mnt/ramcam"])
            .status
            .success(),
        "the package's RAM disk is still mounted"
    );
    for user in ["visdcam", "visdcam-rec", "visdcam-web"] {
        assert!(
            !c.exec(&["getent", "passwd", user]).status.success(),
            "{user} removed"
        );
    }
    assert!(
        !c.exec(&["getent", "group", "visdcam"]).status.success(),
        "group visdcam removed"
    );
    assert_eq!(ownerless_files(&c), "", "files of deleted users");
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

// ---------------------------------------------------------------------------------------------
// The real daemons: two cameras recording into the bucket, faults, reboot, SD-card writes.
// ---------------------------------------------------------------------------------------------

/// Segment length of the recording cameras (short, so the test sees many segments).
const SEG: u32 = 6;
/// What `visdcam setdur` changes cam1 to.
const SETDUR: u32 = 3;
/// Issue 10: the cameras record and upload at least this long before the SD-card check.
const WINDOW: Duration = Duration::from_secs(300);
/// Issue 10: cam3's camera is down at least this long before its journal lines are counted
/// (the window is stretched until it is: recording and the SD-card check go on meanwhile).
const DEAD_CAMERA: Duration = Duration::from_secs(600);
/// IST, the key time zone (no daylight saving).
const IST_SECS: i32 = 5 * 3600 + 1800;

/// One camera-double process on 127.0.0.1 (killed with the test).
struct Camera {
    _guard: ChildGuard,
    stream_url: String,
}

/// The camera-double binary: `VISDCAM_CAMERA_DOUBLE` (set by `cargo xtask e2e`), else the one
/// beside this test's `visdcam`.
fn camera_double_bin() -> PathBuf {
    let path = std::env::var_os("VISDCAM_CAMERA_DOUBLE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_visdcam")).with_file_name("camera-double")
        });
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p camera-double` (cargo xtask e2e does)",
        path.display()
    );
    path
}

fn start_camera(dir: &Path, name: &str) -> Camera {
    let out_path = dir.join(format!("{name}.out"));
    let out = std::fs::File::create(&out_path).unwrap();
    let mut cmd = Command::new(camera_double_bin());
    cmd.args(["--port", "0", "--size", "320x240", "--fps", "10"])
        .stdout(out)
        .stderr(std::process::Stdio::null());
    let guard = ChildGuard::spawn(name, cmd).expect("starting camera-double");
    let mut base = String::new();
    wait_for(&format!("{name} ready"), Duration::from_secs(30), || {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        match text.lines().find_map(|l| l.strip_prefix("ready ")) {
            Some(url) => {
                base = url.trim().to_owned();
                true
            }
            None => false,
        }
    });
    let port: u16 = base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{name}: no port in {base}"));
    Camera {
        _guard: guard,
        stream_url: format!("http://127.0.0.1:{}/stream", port + 1),
    }
}

#[track_caller]
fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An uploaded segment: its key, camera number and key time (IST seconds → UTC).
#[derive(Debug, Clone)]
struct Object {
    key: String,
    camera: u32,
    time: DateTime<Utc>,
}

/// Parses `camN/YYYY/MM/DD/HH/cam_N_YYYY_MM_DD_HH_mm_ss.ts` (every field checked against the
/// others); `None` when the key does not follow the layout.
fn parse_key(key: &str) -> Option<Object> {
    let parts: Vec<&str> = key.split('/').collect();
    let [cam, y, mo, d, h, file] = parts.as_slice() else {
        return None;
    };
    let n: u32 = cam.strip_prefix("cam")?.parse().ok()?;
    let digits = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(y, 4) && digits(mo, 2) && digits(d, 2) && digits(h, 2)) {
        return None;
    }
    let rest = file
        .strip_prefix(&format!("cam_{n}_{y}_{mo}_{d}_{h}_"))?
        .strip_suffix(".ts")?;
    let (mi, se) = rest.split_once('_')?;
    if !(digits(mi, 2) && digits(se, 2)) {
        return None;
    }
    let naive = NaiveDate::from_ymd_opt(y.parse().ok()?, mo.parse().ok()?, d.parse().ok()?)?
        .and_hms_opt(h.parse().ok()?, mi.parse().ok()?, se.parse().ok()?)?;
    let ist = FixedOffset::east_opt(IST_SECS)?;
    let time = naive.and_local_timezone(ist).single()?.with_timezone(&Utc);
    Some(Object {
        key: key.to_owned(),
        camera: n,
        time,
    })
}

/// Every object in the bucket; panics on a key outside the layout.
fn objects(s3: &S3Rig) -> Vec<Object> {
    s3.list_objects()
        .into_iter()
        .map(|(key, _)| parse_key(&key).unwrap_or_else(|| panic!("key outside the layout: {key}")))
        .collect()
}

fn objects_of(s3: &S3Rig, camera: u32) -> Vec<Object> {
    objects(s3)
        .into_iter()
        .filter(|o| o.camera == camera)
        .collect()
}

/// Downloads an object and returns its duration by ffprobe (which must decode it).
fn duration(s3: &S3Rig, scratch: &Path, key: &str) -> f64 {
    let body = s3.get_object(key);
    let file = scratch.join("probe.ts");
    std::fs::write(&file, &body).unwrap();
    let p = probe(&file);
    assert_eq!(p.codec, "h264", "{key}: {p:?}");
    p.duration
}

fn prop(c: &Container, unit: &str, name: &str) -> String {
    systemctl(c, &["show", "-P", name, unit])
}

fn restarts(c: &Container, unit: &str) -> u32 {
    prop(c, unit, "NRestarts").parse().unwrap_or(0)
}

/// `visdcam` (the host build) on the host, talking to the container's systemd over D-Bus.
fn host_visdcam(c: &Container, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_visdcam"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", c.bus_address())
        .env(
            "VISDCAM_CONFIG_DIR",
            format!("/proc/{}/root/etc/visdcam", c.pid1()),
        )
        .output()
        .expect("running visdcam");
    assert!(
        out.status.success(),
        "visdcam {args:?} on the host: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `visdcam status --json` of the installed package, inside (it reads the RAM disk there).
fn status(c: &Container) -> serde_json::Value {
    let out = c
        .exec_ok(&["visdcam", "status", "--json"])
        .unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
}

fn camera_status<'a>(st: &'a serde_json::Value, cam: &str) -> &'a serde_json::Value {
    st["cameras"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["camera"] == cam))
        .unwrap_or_else(|| panic!("{cam} not in status: {st}"))
}

/// Systemd Manager method over D-Bus from the host (StartUnit/StopUnit), mode `replace`.
fn manager_call(c: &Container, method: &str, unit: &str) {
    let conn = zbus::blocking::connection::Builder::address(c.bus_address().as_str())
        .and_then(|b| b.build())
        .unwrap_or_else(|e| panic!("connecting to the container's bus: {e}"));
    conn.call_method(
        Some("org.freedesktop.systemd1"),
        "/org/freedesktop/systemd1",
        Some("org.freedesktop.systemd1.Manager"),
        method,
        &(unit, "replace"),
    )
    .unwrap_or_else(|e| panic!("{method} {unit}: {e}"));
}

/// The `.ts.part` files in a camera's RAM directory, oldest first, with their start time (ms
/// since the epoch, from the name `seg-<start ms>-<tag>.ts.part`).
fn parts(c: &Container, cam: &str) -> Vec<(String, i64)> {
    let out = c.exec(&["ls", &format!("/mnt/ramcam/{cam}")]);
    let mut v: Vec<(String, i64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(".ts.part"))
        .filter_map(|l| {
            let ms = l.strip_prefix("seg-")?.split('-').next()?.parse().ok()?;
            Some((l.to_owned(), ms))
        })
        .collect();
    v.sort_by_key(|p| p.1);
    v
}

fn journal_lines(c: &Container, cam: &str) -> usize {
    let out = c.exec(&[
        "journalctl",
        "--no-pager",
        "-q",
        "-o",
        "cat",
        "-u",
        &format!("seg@{cam}.service"),
        "-u",
        &format!("uploader@{cam}.service"),
    ]);
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Lines the repeat limiter (visdcam-core ratelimit: first line at once, then quiet periods of
/// 60 s doubling up to an hour) lets through for one persisting fault in `secs` seconds:
/// emissions at t = 0 and then no earlier than 60, 180, 420, 900, ... s (60·(2^k − 1)).
fn limiter_lines(secs: u64) -> u64 {
    let mut lines = 1;
    let mut k = 1u32;
    while 60 * (2u64.pow(k) - 1) <= secs {
        lines += 1;
        k += 1;
    }
    lines
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, the amd64 .deb and the camera double: cargo xtask e2e [FILTER] builds both and runs it with --ignored (cargo xtask ci runs that)"]
fn cameras_record_upload_recover_and_spare_the_sd_card() {
    let test_start = Utc::now();
    let scratch = tempfile::tempdir().unwrap();
    let s3 = S3Rig::start();
    let cam1 = start_camera(scratch.path(), "camera-double-1");
    let cam2 = start_camera(scratch.path(), "camera-double-2");
    // cam3 points at a port nothing listens on, for the whole test.
    let dead_port = test_rigs::process::free_port();

    // What a plain boot writes to the root file system (the journal is never excused).
    let plain: BTreeSet<String> = {
        let p = Container::boot().expect("booting a plain container");
        p.written_files()
            .into_iter()
            .filter(|f| !f.starts_with("/var/log/journal/"))
            .collect()
    };

    let mut c = installed();
    let (creds, _) = s3.write_aws_files(scratch.path(), "b2");
    c.copy_in(&creds, "/etc/visdcam/aws-credentials").unwrap();
    sh(
        &c,
        "chown root:root /etc/visdcam/aws-credentials; chmod 600 /etc/visdcam/aws-credentials",
    );
    // Build machines report the clock unsynchronised (and nspawn denies adjtimex).
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        format!(
            "B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
             REQUIRE_CLOCK_SYNC=no\nSEG_SECONDS={SEG}\nKEYFRAME_INTERVAL=10\n",
            s3.endpoint(),
            s3.bucket(),
            s3.region()
        )
        .as_bytes(),
    )
    .unwrap();
    for (cam, url) in [
        ("cam1", cam1.stream_url.clone()),
        ("cam2", cam2.stream_url.clone()),
        ("cam3", format!("http://127.0.0.1:{dead_port}/stream")),
    ] {
        c.write_file(
            &format!("/etc/visdcam/cameras/{cam}.conf"),
            format!("# {cam}\nCAMERA_URL={url}\n").as_bytes(),
        )
        .unwrap();
    }
    c.exec_ok(&["visdcam", "ramlogs", "on"])
        .unwrap_or_else(|e| panic!("{e}"));
    // Journal files written before `ramlogs on` (journald closed them when it restarted).
    let journal_before: BTreeMap<String, (SystemTime, u64)> = c
        .written_file_stats()
        .into_iter()
        .filter(|(f, _)| f.starts_with("/var/log/journal/"))
        .collect();

    host_visdcam(&c, &["enable", "all"]);
    let started = host_visdcam(&c, &["start", "all"]);
    for cam in ["cam1", "cam2", "cam3"] {
        for unit in [
            format!("seg@{cam}.service"),
            format!("uploader@{cam}.service"),
        ] {
            assert!(
                started.contains(&format!("{unit}: start done")),
                "{started}"
            );
            assert_eq!(systemctl(&c, &["is-enabled", &unit]), "enabled", "{unit}");
        }
    }
    let cam3_started = Instant::now();

    // Objects for both cameras, under the right keys, decodable, SEG seconds long.
    wait_for(
        "two segments of each camera",
        Duration::from_secs(60),
        || objects_of(&s3, 1).len() >= 2 && objects_of(&s3, 2).len() >= 2,
    );
    let now = Utc::now();
    for o in objects(&s3) {
        assert!(
            o.camera == 1 || o.camera == 2,
            "unexpected object {}",
            o.key
        );
        assert!(
            o.time >= test_start - chrono::Duration::seconds(1)
                && o.time <= now + chrono::Duration::seconds(1),
            "{}: key time {} outside the test window {test_start}..{now}",
            o.key,
            o.time
        );
        let d = duration(&s3, scratch.path(), &o.key);
        assert!(d > 0.5 && d <= SEG as f64 + 1.0, "{}: {d} s", o.key);
    }

    // status --json: recorders and uploaders active with their STATUS text.
    wait_for(
        "recorders and uploaders reporting",
        Duration::from_secs(30),
        || {
            let st = status(&c);
            ["cam1", "cam2"].iter().all(|cam| {
                let units = camera_status(&st, cam)["units"]
                    .as_array()
                    .cloned()
                    .unwrap();
                units.len() == 2
                    && units.iter().all(|u| u["active_state"] == "active")
                    && units[0]["status_text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("recording"))
                    && units[1]["status_text"]
                        .as_str()
                        .is_some_and(|t| t.contains(&format!("last {cam}/")))
            })
        },
    );

    // Each daemon as its own user: the recorder's cannot read the uploader's credential. The
    // segments are the recorder's user's; the uploader reads and deletes them through the
    // group visdcam (the uploads above, the drained queue below).
    let (rec_uid, visdcam_gid) = system_user(&c, "visdcam-rec");
    let (uploader_uid, _) = system_user(&c, "visdcam");
    for cam in ["cam1", "cam2"] {
        assert_eq!(
            main_ids(&c, &format!("seg@{cam}.service")),
            (rec_uid, visdcam_gid)
        );
        assert_eq!(
            main_ids(&c, &format!("uploader@{cam}.service")),
            (uploader_uid, visdcam_gid)
        );
        let o = owners(&c, cam);
        assert!(
            o.iter()
                .filter(|(_, f)| f.starts_with("seg-"))
                .all(|(u, _)| u == "visdcam-rec")
                && o.iter().any(|(_, f)| f.starts_with("seg-")),
            "{cam}: {o:?}"
        );
    }

    // Issue 10's window starts: from here on nothing may be written to the SD card.
    let window_start = Instant::now();
    let before_window = c.written_file_stats();

    // kill -9 of a recorder: systemd restarts it, ExecStopPost hands the partial off.
    let seg1 = "seg@cam1.service";
    let n1 = restarts(&c, seg1);
    wait_for("cam1's segment 2-4 s old", Duration::from_secs(30), || {
        let now_ms = Utc::now().timestamp_millis();
        parts(&c, "cam1")
            .last()
            .is_some_and(|(_, start)| (2000..4000).contains(&(now_ms - start)))
    });
    let pid = prop(&c, seg1, "MainPID");
    let killed_at = Utc::now();
    sh(&c, &format!("kill -9 {pid}"));
    wait_for("seg@cam1 restarted", Duration::from_secs(30), || {
        restarts(&c, seg1) == n1 + 1 && prop(&c, seg1, "ActiveState") == "active"
    });
    let mut partial = None;
    wait_for(
        "cam1's partial segment uploaded",
        Duration::from_secs(40),
        || {
            partial = objects_of(&s3, 1).into_iter().find(|o| {
                o.time >= killed_at - chrono::Duration::seconds(3)
                    && o.time <= killed_at + chrono::Duration::seconds(2)
                    && duration(&s3, scratch.path(), &o.key) < SEG as f64 - 1.5
            });
            partial.is_some()
        },
    );
    eprintln!("kill -9: partial {:?}", partial.unwrap().key);

    // SIGSTOP of the other recorder: the watchdog (WatchdogSec=30) gets it restarted.
    let seg2 = "seg@cam2.service";
    let n2 = restarts(&c, seg2);
    let pid2 = prop(&c, seg2, "MainPID");
    sh(&c, &format!("kill -STOP {pid2}"));
    let stopped_at = Instant::now();

    // Meanwhile on cam1: setdur, then a stop over D-Bus.
    host_visdcam(&c, &["setdur", "cam1", &SETDUR.to_string()]);
    let setdur_at = Utc::now();
    let mut short = Vec::new();
    wait_for(
        "cam1 segments of the new length",
        Duration::from_secs(60),
        || {
            short = objects_of(&s3, 1)
                .into_iter()
                .filter(|o| o.time > setdur_at + chrono::Duration::milliseconds(1500))
                .map(|o| duration(&s3, scratch.path(), &o.key))
                .collect();
            short.len() >= 3
        },
    );
    for d in &short {
        assert!(
            (*d - SETDUR as f64).abs() <= 1.0,
            "after setdur {SETDUR}: {short:?}"
        );
    }
    manager_call(&c, "StopUnit", seg1);
    wait_for("seg@cam1 stopped", Duration::from_secs(30), || {
        prop(&c, seg1, "ActiveState") == "inactive"
    });
    assert_eq!(
        parts(&c, "cam1"),
        vec![],
        "a .ts.part left after stopping seg@cam1"
    );
    manager_call(&c, "StartUnit", seg1);

    wait_for(
        "the watchdog restarting seg@cam2",
        Duration::from_secs(75),
        || {
            restarts(&c, seg2) == n2 + 1
                && c.journal(seg2).contains("Failed with result 'watchdog'")
                && prop(&c, seg2, "ActiveState") == "active"
        },
    );
    eprintln!(
        "SIGSTOP: restarted by the watchdog after {:.0?}",
        stopped_at.elapsed()
    );
    wait_for(
        "cam1 and cam2 recording again",
        Duration::from_secs(60),
        || {
            let t = Utc::now() - chrono::Duration::seconds(SEG as i64 + 4);
            objects_of(&s3, 1).iter().any(|o| o.time > t)
                && objects_of(&s3, 2).iter().any(|o| o.time > t)
        },
    );

    // Let the cameras record and upload for the rest of the window, and until cam3 has been
    // down for DEAD_CAMERA. The test waits on the clock here: the window's length is the point.
    let left = || {
        WINDOW
            .saturating_sub(window_start.elapsed())
            .max(DEAD_CAMERA.saturating_sub(cam3_started.elapsed()))
    };
    while !left().is_zero() {
        std::thread::sleep(Duration::from_secs(5).min(left()));
        assert_eq!(prop(&c, seg1, "ActiveState"), "active");
    }
    let recent = Utc::now() - chrono::Duration::seconds(20);
    assert!(
        objects_of(&s3, 1).iter().any(|o| o.time > recent),
        "cam1 stopped uploading"
    );
    assert!(
        objects_of(&s3, 2).iter().any(|o| o.time > recent),
        "cam2 stopped uploading"
    );

    // cam3's camera was down all along: the repeat limiter keeps its journal short.
    let cam3_secs = cam3_started.elapsed().as_secs();
    let cam3_lines = journal_lines(&c, "cam3");
    assert!(
        cam3_secs >= DEAD_CAMERA.as_secs(),
        "cam3 down only {cam3_secs} s"
    );
    // systemd's Starting/Started for the two units (4), the daemons' start-up lines (the
    // uploader says REQUIRE_CLOCK_SYNC=no and what it watches: 2, plus 2 to spare), and what
    // the limiter lets through for the one persisting fault (4 lines in 10-15 minutes). Anything
    // logged per retry (the dconf warning GIO printed on every connection before seg@ set
    // GSETTINGS_BACKEND=memory) breaks it within minutes.
    let bound = 4 + 4 + limiter_lines(cam3_secs) as usize;
    eprintln!(
        "cam3: {cam3_lines} journal lines in {cam3_secs} s (bound {bound}):\n{}",
        c.journal("seg@cam3.service")
    );
    assert!(
        cam3_lines <= bound,
        "cam3: {cam3_lines} journal lines > {bound}"
    );

    // Issue 10: nothing written to the SD card during the window, except the camera file
    // that `visdcam setdur` rewrote on purpose.
    let after_window = c.written_file_stats();
    let changed: Vec<&String> = after_window
        .iter()
        .filter(|(f, st)| before_window.get(*f) != Some(st))
        .map(|(f, _)| f)
        .filter(|f| f.as_str() != "/etc/visdcam/cameras/cam1.conf")
        .collect();
    assert!(
        changed.is_empty(),
        "written to the root file system during {:?} of recording:\n{changed:#?}",
        window_start.elapsed()
    );
    // And overall: what a plain boot writes, the package, its configuration (test files,
    // enablement links, the ramlogs drop-in, the user) and the journal from before ramlogs.
    // dpkg lists /lib/...; on merged-/usr Debian the files land in /usr/lib/....
    let packaged: BTreeSet<String> = sh(&c, "dpkg -L visdcam")
        .lines()
        .flat_map(|f| {
            let merged = ["/lib/", "/bin/", "/sbin/"]
                .iter()
                .find(|p| f.starts_with(*p))
                .map(|_| format!("/usr{f}"));
            std::iter::once(f.to_owned()).chain(merged)
        })
        .collect();
    let deliberate = |f: &str| {
        packaged.contains(f)
            || [
                "/var/lib/dpkg/",
                "/var/lib/systemd/deb-systemd-helper-enabled/",
                "/etc/visdcam/",
                "/etc/systemd/system/",
            ]
            .iter()
            .any(|p| f.starts_with(p))
            || [
                "/var/log/dpkg.log",
                "/etc/systemd/journald.conf.d/visdcam-ramlogs.conf",
                "/etc/passwd",
                "/etc/passwd-",
                "/etc/group",
                "/etc/group-",
                "/etc/shadow",
                "/etc/shadow-",
                "/etc/gshadow",
                "/etc/gshadow-",
                "/etc/.pwd.lock",
            ]
            .contains(&f)
    };
    let unexplained: Vec<&String> = after_window
        .iter()
        .filter(|(f, st)| {
            !plain.contains(*f) && !deliberate(f) && journal_before.get(*f) != Some(*st)
        })
        .map(|(f, _)| f)
        .collect();
    assert!(
        unexplained.is_empty(),
        "written to the root file system beyond a plain boot and the test's own files:\n{unexplained:#?}"
    );

    // A reboot: the enabled units come back by themselves and the queue drains.
    let rebooted_at = Utc::now();
    c.reboot().expect("rebooting the container");
    wait_for(
        "cameras back after the reboot",
        Duration::from_secs(60),
        || {
            ["cam1", "cam2", "cam3"].iter().all(|cam| {
                prop(&c, &format!("seg@{cam}.service"), "ActiveState") == "active"
                    && prop(&c, &format!("uploader@{cam}.service"), "ActiveState") == "active"
            })
        },
    );
    wait_for(
        "new segments after the reboot",
        Duration::from_secs(60),
        || {
            objects_of(&s3, 1).iter().any(|o| o.time > rebooted_at)
                && objects_of(&s3, 2).iter().any(|o| o.time > rebooted_at)
        },
    );
    wait_for("the upload queues drained", Duration::from_secs(60), || {
        let st = status(&c);
        ["cam1", "cam2"]
            .iter()
            .all(|cam| camera_status(&st, cam)["ram"]["queued"] == 0)
    });
    // ramlogs survived the reboot: still no journal on the SD card.
    let journal_now: BTreeMap<String, (SystemTime, u64)> = c
        .written_file_stats()
        .into_iter()
        .filter(|(f, _)| f.starts_with("/var/log/journal/"))
        .collect();
    assert_eq!(
        journal_now, journal_before,
        "journal files on the SD card changed"
    );

    // Everything gone afterwards: container processes, cgroups, run directory, servers.
    let nspawn = c.nspawn_pid().unwrap();
    let cgroups = c.cgroups().to_vec();
    let run_dir = c.run_dir().to_path_buf();
    drop(c);
    assert!(
        !Path::new(&format!("/proc/{nspawn}")).exists(),
        "nspawn still running"
    );
    for cg in cgroups {
        assert!(!cg.exists(), "{} left behind", cg.display());
    }
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
    let weed = s3.pid().unwrap();
    drop(s3);
    assert!(
        !Path::new(&format!("/proc/{weed}")).exists(),
        "S3 server still running"
    );
}

// ---------------------------------------------------------------------------------------------
// `visdcam migrate` from visdcam-pi (issue 19).

/// The visdcam-pi test install (crates/visdcam-core/testdata/visdcam-pi, the files the core's
/// plan tests read), as `(path on the Pi, text)`.
fn visdcam_pi_files() -> Vec<(String, String)> {
    let root = workspace_root().join("crates/visdcam-core/testdata/visdcam-pi");
    let mut out = Vec::new();
    let mut dirs = vec![root.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let rel = p.strip_prefix(&root).unwrap().display().to_string();
                out.push((format!("/{rel}"), std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Lays visdcam-pi down as its owner installed it by hand: scripts in /usr/local/bin (755),
/// units in /etc/systemd/system (644), the helper, tmpfiles.d applied, root's aws-cli files,
/// /etc/default knobs. Only addresses change: the cameras are the doubles, the store is the
/// rig (its bucket, region and endpoint in the knobs file; path style in the aws config, as
/// SeaweedFS wants), and segments are 2 s long with a keyframe each second. `secret` goes into
/// root's credentials (a wrong one makes the bucket refuse the key).
fn lay_down_visdcam_pi(c: &Container, s3: &S3Rig, cams: &[&Camera], secret: &str) {
    for (path, text) in visdcam_pi_files() {
        let text = match path.as_str() {
            "/root/.aws/credentials" => format!(
                "[default]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other\n\n\
                 [b2]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n",
                s3.access_key()
            ),
            "/root/.aws/config" => format!(
                "[profile b2]\nregion = {}\ns3 =\n    signature_version = s3v4\n    \
                 addressing_style = path\n",
                s3.region()
            ),
            p if p.starts_with("/etc/default/uploader-cam") => format!(
                "{text}B2_REGION={}\nB2_ENDPOINT={}\n",
                s3.region(),
                s3.endpoint()
            ),
            p if p.starts_with("/usr/local/bin/uploader-cam") => {
                text.replace("BUCKET=visd-cctv", &format!("BUCKET={}", s3.bucket()))
            }
            p if p.starts_with("/usr/local/bin/seg-cam") => {
                let n: usize = p["/usr/local/bin/seg-cam".len()..]
                    .trim_end_matches(".sh")
                    .parse()
                    .unwrap();
                text.replace(
                    "STREAM=\"http://${CAM_IP}:81/stream\"",
                    &format!("STREAM=\"{}\"", cams[n - 1].stream_url),
                )
                .replace("SEG_NS=60000000000", "SEG_NS=2000000000")
                .replace("key-int-max=30", "key-int-max=10")
            }
            _ => text,
        };
        c.write_file(&path, text.as_bytes()).unwrap();
        if path.starts_with("/usr/local/bin/") {
            sh(c, &format!("chmod 755 {path}"));
        }
    }
    sh(
        c,
        "chmod 700 /root/.aws; chmod 600 /root/.aws/credentials; \
         systemd-tmpfiles --create /etc/tmpfiles.d/ramcam.conf; systemctl daemon-reload; \
         systemctl enable --now seg-cam1 seg-cam2 uploader-cam1 uploader-cam2 \
             visdcam-daynight.timer",
    );
}

/// `home-cam-*.ts` files in /mnt/ramcam/CAMERA (or where a run moved them): name, mtime in
/// whole seconds and nanoseconds, MD5.
fn old_files(c: &Container, dir: &str) -> Vec<(String, i64, String)> {
    sh(
        c,
        &format!(
            "cd {dir} 2>/dev/null || exit 0; for f in home-cam-*.ts; do [ -e \"$f\" ] || continue; \
             echo \"$f $(stat -c %Y \"$f\") $(md5sum < \"$f\" | cut -d' ' -f1)\"; done"
        ),
    )
    .lines()
    .map(|l| {
        let v: Vec<&str> = l.split(' ').collect();
        (v[0].to_owned(), v[1].parse().unwrap(), v[2].to_owned())
    })
    .collect()
}

/// visdcam-pi's object key for a camera's segment with mtime `secs` (IST, as its uploader
/// script's `date -r` under TZ=Asia/Kolkata).
fn old_style_key(camera: u32, secs: i64) -> String {
    let ist = FixedOffset::east_opt(IST_SECS).unwrap();
    let t = DateTime::from_timestamp(secs, 0)
        .unwrap()
        .with_timezone(&ist);
    format!(
        "cam{camera}/{}/cam_{camera}_{}.ts",
        t.format("%Y/%m/%d/%H"),
        t.format("%Y_%m_%d_%H_%M_%S")
    )
}

/// A key without the uploader's `-N` variant suffix (`…_14_05_11-2.ts` → `…_14_05_11.ts`).
fn without_variant(key: &str) -> String {
    let stem = key.strip_suffix(".ts").unwrap_or(key);
    match stem.rsplit_once('-') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{base}.ts")
        }
        _ => key.to_owned(),
    }
}

/// The state a run of migrate may not change: unit files, scripts, the helper, tmpfiles,
/// the package's configuration (with modes and checksums), the backups, and the old units'
/// states.
fn migration_state(c: &Container) -> String {
    sh(
        c,
        "find /etc/systemd/system /usr/local/bin /etc/tmpfiles.d /etc/visdcam /etc/default \
             /var/backups /etc/systemd/journald.conf.d -xdev \\( -type f -o -type l \\) \
             -printf '%p %m %u ' -exec sh -c 'md5sum < \"$1\" | cut -c1-8' _ {} \\; | sort; \
         for u in seg-cam1 seg-cam2 uploader-cam1 uploader-cam2 visdcam-daynight.timer \
             seg@cam1 uploader@cam1 seg@cam2 uploader@cam2; do \
             echo \"$u $(systemctl is-enabled $u 2>&1) $(systemctl is-active $u 2>&1)\"; done",
    )
}

/// `/usr/bin/visdcam migrate ARGS` inside (by full path: visdcam-pi's helper in
/// /usr/local/bin comes first in PATH until the migration moves it); the output.
fn migrate(c: &Container, args: &[&str]) -> std::process::Output {
    let mut argv = vec!["/usr/bin/visdcam", "migrate"];
    argv.extend(args);
    c.exec(&argv)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "needs root, systemd-nspawn, debootstrap, the amd64 .deb and the camera double: cargo xtask e2e [FILTER] builds both and runs it with --ignored (cargo xtask ci runs that)"]
fn migrate_moves_a_running_visdcam_pi_over_and_loses_no_footage() {
    let scratch = tempfile::tempdir().unwrap();
    let s3 = S3Rig::start();
    let cam1 = start_camera(scratch.path(), "camera-double-1");
    let cam2 = start_camera(scratch.path(), "camera-double-2");
    let c = installed();
    // This machine's clock counts as unsynchronised (nspawn denies adjtimex): an admin's
    // setting the migration must keep.
    c.write_file(
        "/etc/visdcam/visdcam.conf",
        b"# this Pi\nREQUIRE_CLOCK_SYNC=no\nKEYFRAME_INTERVAL=10\n",
    )
    .unwrap();
    lay_down_visdcam_pi(&c, &s3, &[&cam1, &cam2], s3.secret_key());

    // visdcam-pi runs: gst-launch records both doubles into home-cam-N-*.ts; its uploaders
    // run too, but the container has no aws-cli (nor pv, lsof), so every upload fails (they
    // log it in /run/visdcam) and the segments wait, as on a Pi whose uplink is down.
    for u in ["seg-cam1", "seg-cam2", "uploader-cam1", "uploader-cam2"] {
        assert_eq!(systemctl(&c, &["is-active", u]), "active", "{u}");
    }
    wait_for(
        "three visdcam-pi segments of each camera",
        Duration::from_secs(60),
        || {
            old_files(&c, "/mnt/ramcam/cam1").len() >= 3
                && old_files(&c, "/mnt/ramcam/cam2").len() >= 3
        },
    );
    wait_for("the old uploaders failing", Duration::from_secs(30), || {
        sh(&c, "cat /run/visdcam/uploader-cam1.log 2>/dev/null || true").contains("failed")
    });
    assert_eq!(sh(&c, "command -v visdcam"), "/usr/local/bin/visdcam");

    // Injected failure: the bucket refuses root's key. Checked before anything old stops,
    // so nothing changes and visdcam-pi keeps running; its units can start again.
    let before = migration_state(&c);
    sh(
        &c,
        "sed -i 's/^aws_secret_access_key = .*/aws_secret_access_key = wrong-secret/' \
            /root/.aws/credentials",
    );
    let refused = migrate(&c, &[]);
    let out = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&format!(
            "bucket {} at {} does not accept profile [b2]",
            s3.bucket(),
            s3.endpoint()
        )),
        "{out}"
    );
    assert!(out.contains("SignatureDoesNotMatch"), "{out}");
    assert!(
        out.contains("nothing was changed, visdcam-pi keeps running"),
        "{out}"
    );
    let after_refusal = migration_state(&c);
    assert_eq!(after_refusal, before, "a refused key changed something");
    for u in ["seg-cam1", "seg-cam2", "uploader-cam1", "uploader-cam2"] {
        assert_eq!(systemctl(&c, &["is-active", u]), "active", "{u}");
    }
    let restarted_at: i64 = sh(&c, "date +%s").parse().unwrap();
    sys_ok(&c, &["restart", "seg-cam1", "uploader-cam1"]);
    wait_for("seg-cam1 recording again", Duration::from_secs(30), || {
        systemctl(&c, &["is-active", "seg-cam1"]) == "active"
            && old_files(&c, "/mnt/ramcam/cam1")
                .iter()
                .any(|(f, t, _)| f == "home-cam-1-00000.ts" && *t >= restarted_at)
    });
    sh(
        &c,
        &format!(
            "sed -i 's/^aws_secret_access_key = wrong-secret$/aws_secret_access_key = {}/' \
             /root/.aws/credentials",
            s3.secret_key()
        ),
    );

    // --dry-run prints the plan and changes nothing.
    let before = migration_state(&c);
    let dry = migrate(&c, &["--dry-run"]);
    let plan = text(&dry);
    assert!(dry.status.success(), "{plan}");
    for want in [
        format!("camera cam1: stream {} (from /usr/local/bin/seg-cam1.sh)", cam1.stream_url),
        "camera cam1: segments of 2 s (from /usr/local/bin/seg-cam1.sh)".to_owned(),
        "camera cam1: upload cap RATE_KBPS=500 KiB/s (from /etc/default/uploader-cam1)".to_owned(),
        format!("B2_BUCKET={} (from /usr/local/bin/uploader-cam1.sh)", s3.bucket()),
        format!("B2_ENDPOINT={} (from /etc/default/uploader-cam1)", s3.endpoint()),
        "B2_ADDRESSING_STYLE=path (from /root/.aws/config)".to_owned(),
        "stop seg-cam1.service, seg-cam2.service, uploader-cam1.service, uploader-cam2.service, visdcam-daynight.timer".to_owned(),
        "/usr/local/bin/visdcam".to_owned(),
        "/mnt/ramcam is a plain directory".to_owned(),
        "--dry-run: nothing was changed.".to_owned(),
    ] {
        assert!(plan.contains(&want), "plan lacks {want:?}:\n{plan}");
    }
    assert!(
        !plan.contains(s3.secret_key()),
        "the plan shows the secret:\n{plan}"
    );
    assert_eq!(migration_state(&c), before, "--dry-run changed something");

    // Injected failure midway, after the old units stopped: the RAM directory cannot be moved
    // aside (a file is in the way). The old files go back and the old units start again.
    sh(&c, "echo in-the-way > /mnt/ramcam.visdcam-pi");
    let failed = migrate(&c, &[]);
    let out = text(&failed);
    assert_eq!(failed.status.code(), Some(1), "{out}");
    assert!(out.contains("cannot move aside /mnt/ramcam"), "{out}");
    assert!(
        out.contains(
            "the migration stopped midway; visdcam-pi's files are back and its units \
                      started again; the backup /var/backups/visdcam-pi-"
        ),
        "{out}"
    );
    for u in [
        "seg-cam1",
        "seg-cam2",
        "uploader-cam1",
        "uploader-cam2",
        "visdcam-daynight.timer",
    ] {
        assert_eq!(systemctl(&c, &["is-enabled", u]), "enabled", "{u}");
        assert_eq!(systemctl(&c, &["is-active", u]), "active", "{u}");
    }
    assert_eq!(sh(&c, "command -v visdcam"), "/usr/local/bin/visdcam");
    let first_backup = sh(&c, "ls -d /var/backups/visdcam-pi-*");
    // gst-launch may fail its first connection (the double serves one client, and the old one
    // may not be gone yet) and restart from home-cam-N-00000.ts after RestartSec=5: steady
    // once three files were written after the restart.
    let resumed_at: i64 = sh(&c, "date +%s").parse().unwrap();
    wait_for(
        "visdcam-pi recording again",
        Duration::from_secs(60),
        || {
            [1, 2].iter().all(|n| {
                old_files(&c, &format!("/mnt/ramcam/cam{n}"))
                    .iter()
                    .filter(|(_, t, _)| *t > resumed_at)
                    .count()
                    >= 3
            })
        },
    );
    sh(&c, "rm /mnt/ramcam.visdcam-pi");

    // The migration. The closed segments now (all but each camera's newest, still being
    // written) must reach the bucket byte for byte under visdcam-pi's keys.
    let waiting: Vec<(u32, String, i64, String)> = [1u32, 2]
        .iter()
        .flat_map(|&n| {
            let mut v = old_files(&c, &format!("/mnt/ramcam/cam{n}"));
            v.sort_by_key(|(f, t, _)| (*t, f.clone()));
            v.pop();
            v.into_iter().map(move |(f, t, m)| (n, f, t, m))
        })
        .collect();
    let run = migrate(&c, &[]);
    let log = text(&run);
    let migrated_at = Utc::now();
    assert!(run.status.success(), "migrate: {log}");
    for want in [
        // The failed run wrote the credentials file already.
        format!(
            "bucket {} at {} accepts profile [b2] of /etc/visdcam/aws-credentials",
            s3.bucket(),
            s3.endpoint()
        ),
        "visdcam-pi segments handed to uploader@cam1".to_owned(),
        "visdcam-pi is migrated; to go back to visdcam-pi: sudo sh /var/backups/visdcam-pi-"
            .to_owned(),
        "--- visdcam doctor".to_owned(),
    ] {
        assert!(log.contains(&want), "output lacks {want:?}:\n{log}");
    }

    // Old units gone, nothing of visdcam-pi runs, its files in the backup.
    for u in [
        "seg-cam1.service",
        "seg-cam2.service",
        "uploader-cam1.service",
        "uploader-cam2.service",
        "visdcam-daynight.timer",
        "visdcam-daynight.service",
    ] {
        assert_eq!(prop(&c, u, "LoadState"), "not-found", "{u}");
    }
    let procs = sh(&c, "ps -eo args");
    assert!(
        !procs.contains("gst-launch") && !procs.contains("/usr/local/bin/"),
        "visdcam-pi still runs:\n{procs}"
    );
    assert_eq!(
        sh(&c, "ls -A /usr/local/bin"),
        "",
        "/usr/local/bin keeps files"
    );
    assert_eq!(
        sh(
            &c,
            "test -e /etc/tmpfiles.d/ramcam.conf && echo left || echo gone"
        ),
        "gone"
    );
    assert_eq!(sh(&c, "command -v visdcam"), "/usr/bin/visdcam");
    let backups = sh(&c, "ls -d /var/backups/visdcam-pi-*");
    assert_eq!(backups.lines().count(), 2, "{backups}");
    let backup = backups
        .lines()
        .find(|b| *b != first_backup)
        .unwrap()
        .to_owned();
    assert!(
        sh(
            &c,
            &format!("test -f {first_backup}/etc/visdcam/visdcam.conf && echo kept")
        ) == "kept",
        "the admin's visdcam.conf is in the first run's backup"
    );
    let saved = sh(&c, &format!("cd {backup} && find . -type f | sort"));
    for f in [
        "./undo.sh",
        "./etc/systemd/system/seg-cam1.service",
        "./etc/systemd/system/net-shaper.service",
        "./usr/local/bin/uploader-cam2.sh",
        "./usr/local/bin/visdcam",
        "./etc/tmpfiles.d/ramcam.conf",
    ] {
        assert!(
            saved.lines().any(|l| l == f),
            "{f} not in the backup:\n{saved}"
        );
    }
    assert_eq!(sh(&c, &format!("stat -c %a {backup}")), "700");

    // The configuration: cameras, store, credentials (root's, 0600), the admin's lines kept.
    let cam1_conf = sh(&c, "cat /etc/visdcam/cameras/cam1.conf");
    assert!(
        cam1_conf.contains(&format!("CAMERA_URL={}\n", cam1.stream_url)),
        "{cam1_conf}"
    );
    assert!(
        cam1_conf.contains("SEG_SECONDS=2\nRATE_KBPS=500"),
        "{cam1_conf}"
    );
    let global = sh(&c, "cat /etc/visdcam/visdcam.conf");
    assert!(
        global.starts_with("# this Pi\nREQUIRE_CLOCK_SYNC=no\nKEYFRAME_INTERVAL=10\n"),
        "{global}"
    );
    assert!(
        global.contains(&format!("B2_BUCKET={}\n", s3.bucket())),
        "{global}"
    );
    assert_eq!(
        sh(&c, "stat -c '%a %U' /etc/visdcam/aws-credentials"),
        "600 root"
    );
    assert!(
        sh(
            &c,
            "test -f /etc/systemd/journald.conf.d/visdcam-ramlogs.conf && echo yes"
        ) == "yes"
    );

    // The new units run, enabled, and upload to the same bucket layout.
    for u in [
        "seg@cam1.service",
        "uploader@cam1.service",
        "seg@cam2.service",
        "uploader@cam2.service",
        "daynight.timer",
    ] {
        assert_eq!(systemctl(&c, &["is-enabled", u]), "enabled", "{u}");
        assert_eq!(systemctl(&c, &["is-active", u]), "active", "{u}");
    }
    let keys_now = || -> Vec<String> { s3.list_objects().into_iter().map(|(k, _)| k).collect() };
    wait_for(
        "new segments of both cameras in the bucket",
        Duration::from_secs(60),
        || {
            let keys = keys_now();
            [1u32, 2].iter().all(|&n| {
                keys.iter()
                    .filter_map(|k| parse_key(k))
                    .any(|o| o.camera == n && o.time > migrated_at)
            })
        },
    );
    // Every key follows the layout; a `-N` variant is the uploader's answer to two segments
    // in one second (visdcam-pi's uploader overwrote the first with the second).
    let odd: Vec<String> = keys_now()
        .into_iter()
        .filter(|k| parse_key(&without_variant(k)).is_none())
        .collect();
    assert!(odd.is_empty(), "keys outside the layout: {odd:?}");
    // Every visdcam-pi segment under the key visdcam-pi would have used (or its variant),
    // the same bytes.
    let stored = |n: u32, t: i64, md5: &str| -> Option<String> {
        let base = old_style_key(n, t);
        keys_now()
            .into_iter()
            .filter(|k| without_variant(k) == base)
            .find(|k| test_rigs::s3::md5_hex(&s3.get_object(k)) == md5)
    };
    wait_for("the old segments uploaded", Duration::from_secs(60), || {
        waiting
            .iter()
            .all(|(n, _, t, md5)| stored(*n, *t, md5).is_some())
    });
    let exact = waiting
        .iter()
        .filter(|(n, _, t, md5)| stored(*n, *t, md5) == Some(old_style_key(*n, *t)))
        .count();
    assert!(
        exact * 2 > waiting.len(),
        "most old segments keep their exact key: {exact} of {}",
        waiting.len()
    );
    wait_for(
        "the old segments gone from RAM",
        Duration::from_secs(30),
        || {
            sh(&c, "ls /mnt/ramcam/cam1 /mnt/ramcam/cam2")
                .lines()
                .all(|l| !l.starts_with("home-cam-"))
        },
    );
    assert_eq!(
        sh(
            &c,
            "test -e /mnt/ramcam.visdcam-pi && echo left || echo gone"
        ),
        "gone"
    );

    // A second run finds nothing and changes nothing.
    let before = migration_state(&c);
    let second = migrate(&c, &[]);
    let out = text(&second);
    assert!(second.status.success(), "{out}");
    assert!(out.contains("No visdcam-pi install found"), "{out}");
    assert_eq!(
        migration_state(&c),
        before,
        "the second run changed something"
    );

    // The way back the output names: undo.sh stops the new units and puts visdcam-pi back,
    // enabled and recording.
    let undo_at: i64 = sh(&c, "date +%s").parse().unwrap();
    let undone = c.exec(&["sh", &format!("{backup}/undo.sh")]);
    assert!(undone.status.success(), "undo.sh: {}", text(&undone));
    for u in [
        "seg-cam1",
        "seg-cam2",
        "uploader-cam1",
        "uploader-cam2",
        "visdcam-daynight.timer",
    ] {
        assert_eq!(systemctl(&c, &["is-enabled", u]), "enabled", "{u}");
        assert_eq!(systemctl(&c, &["is-active", u]), "active", "{u}");
    }
    for u in [
        "seg@cam1.service",
        "uploader@cam2.service",
        "daynight.timer",
    ] {
        assert_eq!(systemctl(&c, &["is-enabled", u]), "disabled", "{u}");
        assert_eq!(systemctl(&c, &["is-active", u]), "inactive", "{u}");
    }
    assert_eq!(sh(&c, "command -v visdcam"), "/usr/local/bin/visdcam");
    wait_for(
        "visdcam-pi recording after undo.sh",
        Duration::from_secs(60),
        || {
            old_files(&c, "/mnt/ramcam/cam1")
                .iter()
                .any(|(_, t, _)| *t > undo_at)
        },
    );
}
