//! `visdcam doctor`, the real binary, against a real S3 server (test-rigs' SeaweedFS rig) and
//! real camera doubles: every check's ✔ line on a good setup (a write-only key's too, with what
//! it may not do; the bucket's Object Lock when asked), and the ✘ line with its fix for
//! each thing that goes wrong (wrong secret, missing bucket, a bucket without the Object Lock
//! `OBJECT_LOCK_DAYS` asks for, refused camera, a web page instead
//! of a stream, a busy stream, a stalled or corrupt stream, no RAM disk, invalid configuration,
//! clock not synchronised). No system bus is reachable in those, so the units line is `–`;
//! the last test boots a real systemd in a container for the unit lines and for a stream held
//! by the camera's own recorder; it is `#[ignore]`d (needs root, systemd-nspawn, debootstrap)
//! and `cargo xtask ci` runs it with `--ignored`.
//!
//! Every run is bounded: the binary must finish within [`RUN_BOUND`] or the test fails.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault, Options};
use test_rigs::s3::{S3Options, S3Rig};

/// doctor's own deadline is 25 s; it must have printed everything and exited by then.
const RUN_BOUND: Duration = Duration::from_secs(35);

/// A configuration directory, credentials file and test clock in a temporary directory.
struct Setup {
    tmp: tempfile::TempDir,
    conf: PathBuf,
    credentials: PathBuf,
    clock: PathBuf,
}

/// What one doctor run printed.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn camera() -> CameraDouble {
    CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .expect("starting a camera double")
}

/// `global` is visdcam.conf's text; each camera gets `CAMERA_URL=<url>` plus `extra`.
fn setup(global: &str, cameras: &[(&str, String)]) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("etc");
    fs::create_dir_all(conf.join("cameras")).unwrap();
    fs::write(conf.join("visdcam.conf"), global).unwrap();
    for (name, text) in cameras {
        fs::write(conf.join(format!("cameras/{name}.conf")), text).unwrap();
    }
    let clock = tmp.path().join("clock");
    fs::write(&clock, "synced=yes\n").unwrap();
    let credentials = tmp.path().join("credentials");
    Setup {
        credentials,
        clock,
        conf,
        tmp,
    }
}

/// visdcam.conf for the rig's bucket (or `bucket`) on a RAM disk at `ram_dir`.
fn global(rig: Option<&S3Rig>, bucket: Option<&str>, ram_dir: &Path) -> String {
    let mut g = format!(
        "RAM_DIR={}\nRAM_BUDGET_MB=1\nRAM_MIN_FREE_MB=1\n",
        ram_dir.display()
    );
    if let Some(rig) = rig {
        g += &format!(
            "B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_PROFILE=b2\nB2_ADDRESSING_STYLE=path\n",
            rig.endpoint(),
            bucket.unwrap_or(rig.bucket()),
            rig.region()
        );
    }
    g
}

fn cam_conf(cam: &CameraDouble) -> String {
    format!("# test camera\nCAMERA_URL={}\n", cam.stream_url())
}

/// The tmpfs every Linux test machine has; doctor only reads its size.
fn shm() -> PathBuf {
    PathBuf::from("/dev/shm")
}

/// Runs `visdcam doctor` with the setup's config dir, credentials and clock, and no system
/// bus; fails the test if it does not finish within [`RUN_BOUND`].
fn doctor(s: &Setup, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_visdcam"));
    cmd.arg("doctor")
        .env("VISDCAM_CONFIG_DIR", &s.conf)
        .env("VISDCAM_CREDENTIALS", &s.credentials)
        .env("VISDCAM_TEST_CLOCK", &s.clock)
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}/no-bus", s.tmp.path().display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("running visdcam doctor");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(RUN_BOUND) {
        Ok(out) => out.expect("waiting for visdcam doctor"),
        Err(_) => {
            // Our own child: end it so the test does not leave it behind.
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("visdcam doctor did not finish within {RUN_BOUND:?}");
        }
    };
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    // Shown when a test fails.
    println!("--- visdcam doctor\n{}{}", run.stdout, run.stderr);
    run.assert_shape();
    run
}

impl Run {
    /// Every line is one check (✔, ✘ or – with a fix) except the closing summary.
    #[track_caller]
    fn assert_shape(&self) {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert!(!lines.is_empty(), "no output; stderr:\n{}", self.stderr);
        for l in &lines {
            let ok = l.starts_with("✔ ")
                || ((l.starts_with("✘ ") || l.starts_with("– ")) && l.contains(" — fix: "))
                || l.starts_with("all checks passed");
            assert!(ok, "not a check line: {l:?}\n{}", self.stdout);
        }
    }

    /// The one line that contains `what`.
    #[track_caller]
    fn line(&self, what: &str) -> &str {
        let found: Vec<&str> = self.stdout.lines().filter(|l| l.contains(what)).collect();
        assert_eq!(
            found.len(),
            1,
            "expected one line with {what:?}:\n{}",
            self.stdout
        );
        found[0]
    }

    #[track_caller]
    fn passes(&self, what: &str) -> &str {
        let l = self.line(what);
        assert!(l.starts_with("✔ "), "{what} should pass:\n{}", self.stdout);
        l
    }

    #[track_caller]
    fn fails(&self, what: &str) -> &str {
        let l = self.line(what);
        assert!(l.starts_with("✘ "), "{what} should fail:\n{}", self.stdout);
        l
    }

    fn count(&self, mark: &str) -> usize {
        self.stdout.lines().filter(|l| l.starts_with(mark)).count()
    }

    #[track_caller]
    fn assert_failed(&self, n: usize) {
        assert_eq!(self.code, Some(1), "exit status\n{}", self.stdout);
        assert_eq!(self.count("✘ "), n, "failed lines\n{}", self.stdout);
        assert!(
            self.stderr
                .starts_with(&format!("visdcam: {n} check(s) failed")),
            "stderr: {}",
            self.stderr
        );
    }
}

#[test]
fn good_setup_passes_every_check_and_exits_0() {
    let rig = S3Rig::start();
    let (c1, c2) = (camera(), camera());
    let s = setup(
        &global(Some(&rig), None, &shm()),
        &[("cam1", cam_conf(&c1)), ("cam2", cam_conf(&c2))],
    );
    let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
    fs::rename(creds, &s.credentials).unwrap();

    let r = doctor(&s, &[]);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.count("✘ "), 0, "{}", r.stdout);
    r.passes("visdcam.conf is valid");
    r.passes("cam1.conf is valid");
    r.passes("cam2.conf is valid");
    let creds = r.passes("credentials:");
    assert!(
        creds.contains(&format!("accepted by bucket {}", rig.bucket())),
        "{creds}"
    );
    assert!(r.passes("clock:").contains("synchronised"));
    assert!(r
        .passes("camera cam1:")
        .ends_with(&format!("{} is streaming MJPEG", c1.stream_url())));
    assert!(r
        .passes("camera cam2:")
        .ends_with(&format!("{} is streaming MJPEG", c2.stream_url())));
    assert!(r
        .passes("RAM disk:")
        .starts_with("✔ RAM disk: /dev/shm tmpfs"));
    assert!(r.passes("GStreamer:").contains("x264enc"));
    // Units need systemd: not checked here, which does not fail the run.
    let units = r.line("units:");
    assert!(
        units.starts_with("– units: not checked: cannot connect to the system bus")
            && units.contains("fix: run doctor on the Pi itself"),
        "{units}"
    );
    let logs = r.passes("logs: kept");
    assert!(
        ["(persistent)", "(volatile)", "nowhere"]
            .iter()
            .any(|w| logs.contains(w)),
        "{logs}"
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some("all checks passed (1 not checked)")
    );
    assert_eq!(r.stderr, "");
}

#[test]
fn write_only_key_passes_and_says_it_cannot_list_or_read() {
    let rig = S3Rig::start();
    let s = setup(&global(Some(&rig), None, &shm()), &[]);
    let (id, secret) = rig.write_only_key();
    fs::write(
        &s.credentials,
        format!("[b2]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();

    let r = doctor(&s, &[]);
    let l = r.passes("credentials:");
    assert!(
        l.contains(&format!("accepted by bucket {}", rig.bucket())),
        "{l}"
    );
    assert!(
        l.contains("the key cannot list or read, as recommended for the Pi"),
        "{l}"
    );
    // The full-rights key is told what it may do too.
    let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
    fs::rename(creds, &s.credentials).unwrap();
    let l = doctor(&s, &[]).passes("credentials:").to_string();
    assert!(l.contains("the key can list and read"), "{l}");
    assert!(l.contains("a write-only key is safer on the Pi"), "{l}");
}

#[test]
fn object_lock_asked_of_the_bucket_is_checked() {
    let rig = S3Rig::start_with(S3Options {
        object_lock: true,
        ..S3Options::default()
    });
    rig.create_bucket("no-lock");
    let with_lock = |bucket: Option<&str>| {
        let s = setup(
            &format!(
                "{}OBJECT_LOCK_DAYS=30\nOBJECT_LOCK_MODE=Compliance\n",
                global(Some(&rig), bucket, &shm())
            ),
            &[],
        );
        let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
        fs::rename(creds, &s.credentials).unwrap();
        s
    };
    let s = with_lock(None);
    let l = doctor(&s, &[]).passes("object lock:").to_string();
    assert!(
        l.contains(&format!(
            "bucket {} has Object Lock on, as OBJECT_LOCK_DAYS=30 ({}:{}, \
             compliance mode) needs",
            rig.bucket(),
            s.conf.join("visdcam.conf").display(),
            global(Some(&rig), None, &shm()).lines().count() + 1
        )),
        "{l}"
    );

    // A bucket without Object Lock would refuse every upload: a failed check with the fix.
    let s = with_lock(Some("no-lock"));
    let r = doctor(&s, &[]);
    let l = r.fails("object lock:");
    assert!(
        l.contains("but bucket no-lock has no Object Lock: it refuses every upload")
            && l.contains(
                "fix: enable Object Lock (B2: File Lock) on the bucket, or unset \
                 OBJECT_LOCK_DAYS"
            ),
        "{l}"
    );
    r.passes("credentials:");

    // A write-only key may not read the setting: not checked, and not a failure.
    let s = with_lock(None);
    let (id, secret) = rig.lock_writer_key();
    fs::write(
        &s.credentials,
        format!("[b2]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let r = doctor(&s, &[]);
    let l = r.line("object lock:");
    assert!(
        l.starts_with("– object lock: OBJECT_LOCK_DAYS=30")
            && l.contains("the key may not read whether bucket visd-cctv has Object Lock")
            && l.contains("fix: the uploader's first upload tells"),
        "{l}"
    );

    // Without OBJECT_LOCK_DAYS nothing is asked of the bucket.
    let s = setup(&global(Some(&rig), Some("no-lock"), &shm()), &[]);
    let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
    fs::rename(creds, &s.credentials).unwrap();
    let r = doctor(&s, &[]);
    r.passes("credentials:");
    assert!(!r.stdout.contains("object lock"), "{}", r.stdout);
}

#[test]
fn wrong_secret_fails_credentials_with_403_and_the_fix() {
    let rig = S3Rig::start();
    let c1 = camera();
    let s = setup(
        &global(Some(&rig), None, &shm()),
        &[("cam1", cam_conf(&c1))],
    );
    fs::write(
        &s.credentials,
        format!(
            "[default]\naws_access_key_id = other\naws_secret_access_key = other\n\n[b2]\n\
             aws_access_key_id = {}\naws_secret_access_key = {}x\n",
            rig.access_key(),
            rig.secret_key()
        ),
    )
    .unwrap();

    let r = doctor(&s, &[]);
    r.assert_failed(1);
    let l = r.fails("credentials:");
    assert!(l.contains("profile [b2] refused by bucket"), "{l}");
    assert!(l.contains("HEAD answered 403"), "{l}");
    assert!(
        l.contains("fix: check aws_access_key_id and aws_secret_access_key"),
        "{l}"
    );
    r.passes("camera cam1:");
}

#[test]
fn missing_profile_and_missing_file_say_what_to_write() {
    let rig = S3Rig::start();
    let s = setup(&global(Some(&rig), None, &shm()), &[]);
    fs::write(&s.credentials, "[default]\naws_access_key_id = k\n").unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("credentials:");
    assert!(l.contains("no [b2] profile with aws_access_key_id"), "{l}");
    assert!(l.contains("fix: add them, or set B2_PROFILE"), "{l}");

    fs::remove_file(&s.credentials).unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("credentials:");
    assert!(
        l.contains(&format!("cannot read {}", s.credentials.display())),
        "{l}"
    );
    // No camera configured is a failure of its own.
    r.fails("cameras: none configured");
}

#[test]
fn missing_bucket_is_named() {
    let rig = S3Rig::start();
    let c1 = camera();
    let s = setup(
        &global(Some(&rig), Some("no-such-bucket"), &shm()),
        &[("cam1", cam_conf(&c1))],
    );
    let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
    fs::rename(creds, &s.credentials).unwrap();

    let r = doctor(&s, &[]);
    r.assert_failed(1);
    let l = r.fails("bucket:");
    assert!(
        l.contains(&format!(
            "bucket: no-such-bucket does not exist at {}",
            rig.endpoint()
        )),
        "{l}"
    );
    assert!(l.contains("404"), "{l}");
    assert!(l.contains("fix: check B2_BUCKET"), "{l}");
}

/// Camera checks without a bucket configured (that line fails on its own).
fn cameras_only(c1: &CameraDouble, c2: &CameraDouble) -> Setup {
    setup(
        &global(None, None, &shm()),
        &[("cam1", cam_conf(c1)), ("cam2", cam_conf(c2))],
    )
}

#[test]
fn refused_camera_fails_alone() {
    let (c1, c2) = (camera(), camera());
    c1.set_fault(Fault::CloseAndRefuse(Duration::from_secs(600)));
    let s = cameras_only(&c1, &c2);
    let r = doctor(&s, &[]);
    r.assert_failed(2);
    r.fails("bucket: B2_ENDPOINT and B2_BUCKET are not both set");
    let l = r.fails("camera cam1:");
    assert!(l.contains(&c1.stream_url()), "{l}");
    assert!(l.to_lowercase().contains("refused"), "{l}");
    assert!(l.contains("fix: check the camera's power and Wi-Fi"), "{l}");
    r.passes("camera cam2:");
}

#[test]
fn html_instead_of_a_stream_is_not_mjpeg() {
    let (c1, c2) = (camera(), camera());
    c1.set_fault(Fault::Html);
    let s = cameras_only(&c1, &c2);
    let r = doctor(&s, &[]);
    r.assert_failed(2);
    let l = r.fails("camera cam1:");
    assert!(l.contains("answered 200 \"text/html"), "{l}");
    assert!(l.contains("not an MJPEG stream"), "{l}");
    assert!(
        l.contains("fix: CAMERA_URL must name the camera's stream"),
        "{l}"
    );
    r.passes("camera cam2:");
}

#[test]
fn busy_camera_says_another_client_holds_the_stream() {
    let (c1, c2) = (camera(), camera());
    // Another viewer: connected and being served frames.
    let port = c1.port() + 1;
    let mut viewer = TcpStream::connect(("127.0.0.1", port)).unwrap();
    viewer
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    viewer
        .write_all(b"GET /stream HTTP/1.1\r\nHost: cam\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 64];
    let n = viewer.read(&mut head).expect("the viewer is served");
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);

    let s = cameras_only(&c1, &c2);
    let started = Instant::now();
    let r = doctor(&s, &[]);
    r.assert_failed(2);
    let l = r.fails("camera cam1:");
    assert!(
        l.contains("accepted the connection but sent nothing for 5 s"),
        "{l}"
    );
    assert!(
        l.contains("another client holds the stream (the camera serves one at a time)"),
        "{l}"
    );
    assert!(
        l.contains("its /status answers, so the camera is up"),
        "{l}"
    );
    assert!(l.contains("fix: close the other viewer"), "{l}");
    r.passes("camera cam2:");
    assert!(started.elapsed() < RUN_BOUND);
    drop(viewer);
}

#[test]
fn stalled_and_corrupt_streams_fail_with_a_fix() {
    let (c1, c2) = (camera(), camera());
    c1.set_fault(Fault::Stall);
    c2.set_fault(Fault::CorruptJpeg);
    let s = cameras_only(&c1, &c2);
    let r = doctor(&s, &[]);
    r.assert_failed(3);
    let stall = r.fails("camera cam1:");
    assert!(
        stall.contains("the stream stalled or broke after 0 B"),
        "{stall}"
    );
    let corrupt = r.fails("camera cam2:");
    assert!(
        corrupt.contains("no JPEG frame in the first 64.0 KiB of the stream"),
        "{corrupt}"
    );
    assert!(corrupt.contains("fix: power-cycle the camera"), "{corrupt}");
}

#[test]
fn ram_dir_missing_or_not_tmpfs_names_the_mount_unit() {
    let (c1, c2) = (camera(), camera());
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("ramcam");
    let s = setup(
        &global(None, None, &missing),
        &[("cam1", cam_conf(&c1)), ("cam2", cam_conf(&c2))],
    );
    let r = doctor(&s, &[]);
    r.assert_failed(2);
    let l = r.fails("RAM disk:");
    assert!(
        l.contains(&format!("{} does not exist", missing.display())),
        "{l}"
    );
    assert!(
        l.contains(&format!("fix: mount a tmpfs at {}", missing.display())),
        "{l}"
    );
    assert!(l.contains("mnt-ramcam.mount"), "{l}");

    // A plain directory on the root filesystem.
    fs::create_dir(&missing).unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("RAM disk:");
    assert!(
        l.contains("is not a tmpfs mount (not a mount point): segments would wear the SD card"),
        "{l}"
    );
    assert!(l.contains("mnt-ramcam.mount"), "{l}");
}

#[test]
fn invalid_config_names_file_and_line() {
    let (c1, c2) = (camera(), camera());
    let bad = format!("# cam2\nCAMERA_URL={}\nSEG_SECONDS=soon\n", c2.stream_url());
    let s = setup(
        &global(None, None, &shm()),
        &[("cam1", cam_conf(&c1)), ("cam2", bad)],
    );
    let r = doctor(&s, &[]);
    let cam2 = s.conf.join("cameras/cam2.conf");
    let l = r.fails(&format!("{}:3", cam2.display()));
    assert!(
        l.starts_with(&format!(
            "✘ configuration: {}:3: SEG_SECONDS:",
            cam2.display()
        )),
        "{l}"
    );
    assert!(l.contains("fix: edit the file at that line"), "{l}");
    // cam1 is still checked in full.
    r.passes("cam1.conf is valid");
    r.passes("camera cam1:");
    assert!(r.stdout.lines().all(|l| !l.contains("camera cam2:")));
    r.assert_failed(2);

    // A broken global file: named once; the cameras are not checked on top of it.
    fs::write(
        s.conf.join("visdcam.conf"),
        "RAM_DIR=/dev/shm\nRAM_BUDGET_MB=lots\n",
    )
    .unwrap();
    let r = doctor(&s, &[]);
    let g = s.conf.join("visdcam.conf");
    let l = r.fails(&format!("{}:2", g.display()));
    assert!(l.contains("RAM_BUDGET_MB"), "{l}");
    assert!(r
        .line("configuration: camera cam1 not checked")
        .starts_with("– "));
    r.assert_failed(1);
}

#[test]
fn unsynchronised_clock_fails_with_the_fix() {
    let s = setup(&global(None, None, &shm()), &[]);
    fs::write(&s.clock, "synced=no\n").unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("clock:");
    assert!(l.contains("not synchronised"), "{l}");
    assert!(l.contains("fix: check the network and NTP"), "{l}");
}

#[test]
fn host_clock_is_read_from_the_kernel() {
    let s = setup(&global(None, None, &shm()), &[]);
    // No test clock: the kernel's state (or timesyncd's flag) decides, as for the uploader.
    let r = doctor(&s, &[("VISDCAM_TEST_CLOCK", "")]);
    // SAFETY: a zeroed timex with modes = 0 only reads the kernel's state.
    let mut tx: nix::libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: `tx` is a valid, writable timex.
    let rc = unsafe { nix::libc::adjtimex(&mut tx) };
    let kernel_synced = rc >= 0 && tx.status & nix::libc::STA_UNSYNC == 0;
    let flag = Path::new("/run/systemd/timesync/synchronized").exists();
    let l = r.line("clock:");
    if kernel_synced || flag {
        assert!(l.starts_with("✔ clock: synchronised"), "{l}");
    } else {
        assert!(l.starts_with("✘ clock: not synchronised"), "{l}");
    }
}

/// A stand-in recorder: READY with a STATUS, then a real GStreamer client on the camera's
/// stream (holding it, as seg-cam does).
const STUB_SEG: &str = r#"#!/bin/sh
systemd-notify --pid=$$ --ready --status="recording $1"
exec gst-launch-1.0 -q souphttpsrc location="$CAMERA_URL" ! fakesink
"#;

fn stub_unit(what: &str, exec: &str, wanted_by: &str) -> String {
    format!(
        "[Unit]\nDescription=stub {what}\n\n[Service]\nType=notify\nNotifyAccess=all\n\
         EnvironmentFile=-/etc/visdcam/cameras/%i.conf\nExecStart={exec}\n\n\
         [Install]\nWantedBy={wanted_by}\n"
    )
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p visdcam --test doctor -- --ignored --test-threads=1"]
fn with_systemd_units_are_checked_and_the_recorder_may_hold_the_stream() {
    let rig = S3Rig::start();
    let (c1, c2) = (camera(), camera());
    let s = setup(
        &global(Some(&rig), None, &shm()),
        &[("cam1", cam_conf(&c1)), ("cam2", cam_conf(&c2))],
    );
    let (creds, _) = rig.write_aws_files(s.tmp.path(), "b2");
    fs::rename(creds, &s.credentials).unwrap();

    let c = test_rigs::container::Container::boot().expect("booting the container");
    for (name, cam) in [("cam1", &c1), ("cam2", &c2)] {
        c.write_file(
            &format!("/etc/visdcam/cameras/{name}.conf"),
            cam_conf(cam).as_bytes(),
        )
        .unwrap();
    }
    c.write_file("/usr/local/bin/stub-seg", STUB_SEG.as_bytes())
        .unwrap();
    c.exec_ok(&["chmod", "755", "/usr/local/bin/stub-seg"])
        .unwrap();
    let idle = "/bin/sh -c 'systemd-notify --pid=$$ --ready; exec sleep infinity'";
    for (path, text) in [
        (
            "/etc/systemd/system/seg@.service",
            stub_unit("seg", "/usr/local/bin/stub-seg %i", "multi-user.target"),
        ),
        (
            "/etc/systemd/system/uploader@.service",
            stub_unit("uploader", idle, "multi-user.target"),
        ),
        (
            "/etc/systemd/system/net-shaper.service",
            stub_unit("net-shaper", idle, "multi-user.target"),
        ),
        (
            "/etc/systemd/system/daynight.service",
            "[Unit]\nDescription=stub daynight\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
                .to_string(),
        ),
        (
            "/etc/systemd/system/daynight.timer",
            "[Unit]\nDescription=stub daynight timer\n\n[Timer]\nOnCalendar=daily\n\n\
             [Install]\nWantedBy=timers.target\n"
                .to_string(),
        ),
    ] {
        c.write_file(path, text.as_bytes()).unwrap();
    }
    c.exec_ok(&["systemctl", "daemon-reload"]).unwrap();
    c.exec_ok(&[
        "systemctl",
        "enable",
        "seg@cam1.service",
        "seg@cam2.service",
        "uploader@cam1.service",
        "uploader@cam2.service",
        "daynight.timer",
        "net-shaper.service",
    ])
    .unwrap();
    c.exec_ok(&["systemctl", "start", "seg@cam1.service"])
        .unwrap();
    // The recorder holds cam1's stream once frames flow to it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c1.frames_served() < 3 {
        assert!(
            Instant::now() < deadline,
            "the stub recorder never got frames"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let bus = c.bus_address();
    let env = [("DBUS_SYSTEM_BUS_ADDRESS", bus.as_str())];

    let r = doctor(&s, &env);
    assert_eq!(r.code, Some(0), "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.count("✘ "), 0);
    assert_eq!(r.count("– "), 0);
    let l = r.passes("camera cam1:");
    assert!(
        l.contains("is busy with seg@cam1.service, which records it (recording cam1)"),
        "{l}"
    );
    r.passes("camera cam2:");
    assert!(r
        .passes("seg@cam1.service:")
        .ends_with("enabled, active (running)"));
    for unit in [
        "seg@cam2.service",
        "uploader@cam1.service",
        "uploader@cam2.service",
        "daynight.timer",
        "net-shaper.service",
    ] {
        assert!(r.passes(&format!("{unit}:")).contains(": enabled, "));
    }
    assert_eq!(r.stdout.lines().last(), Some("all checks passed"));

    // A unit disabled by hand: its line fails with the command that fixes it.
    c.exec_ok(&["systemctl", "disable", "uploader@cam2.service"])
        .unwrap();
    let r = doctor(&s, &env);
    r.assert_failed(1);
    assert_eq!(
        r.fails("uploader@cam2.service:"),
        "✘ uploader@cam2.service: disabled at boot, inactive — fix: sudo visdcam enable cam2 --now"
    );
}

#[test]
fn the_live_view_needs_a_password_beyond_loopback_and_doctor_says_so() {
    let (c1, c2) = (camera(), camera());
    let s = cameras_only(&c1, &c2);
    // Default: loopback, no password needed.
    let r = doctor(&s, &[]);
    r.passes("live view: WEB_LISTEN=127.0.0.1:8088 (default) is this machine only");
    // On the network without a password: the page would refuse to start.
    let conf = s.conf.join("visdcam.conf");
    let text = fs::read_to_string(&conf).unwrap();
    fs::write(&conf, format!("{text}WEB_LISTEN=0.0.0.0:8088\n")).unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("live view: WEB_LISTEN=0.0.0.0:8088");
    assert!(
        l.contains("visdcam.conf:") && l.contains("no password is set"),
        "{l}"
    );
    assert!(l.contains("fix: sudo visdcam web-password"), "{l}");
    // With one: passes, and says where it is.
    let mut set = Command::new(env!("CARGO_BIN_EXE_visdcam"))
        .arg("web-password")
        .env("VISDCAM_CONFIG_DIR", &s.conf)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    set.stdin
        .take()
        .unwrap()
        .write_all(b"porch light\nporch light\n")
        .unwrap();
    assert!(set.wait().unwrap().success());
    let r = doctor(&s, &[]);
    let l = r.passes("live view: WEB_LISTEN=0.0.0.0:8088");
    assert!(l.contains("asks for the password in"), "{l}");
    // A damaged hash file is named.
    fs::write(s.conf.join("web-password"), "hunter2\n").unwrap();
    let r = doctor(&s, &[]);
    let l = r.fails("live view:");
    assert!(l.contains("web-password: not a password hash"), "{l}");
}

/// Writes a recorder's load file for `cam` under `ram`, as seg-cam renders it.
fn load_file(ram: &Path, cam: &str, load: &visdcam_core::encoder::Load) {
    let dir = ram.join(cam);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(visdcam_core::encoder::LOAD_FILE), load.render()).unwrap();
}

#[test]
fn encoders_are_named_and_the_hardware_budget_and_a_slow_recorder_fail() {
    use visdcam_core::encoder::Load;
    let (c1, c2, c3) = (camera(), camera(), camera());
    let ram = tempfile::tempdir().unwrap();
    let hw = |fps: f64| Load {
        encoder: "v4l2".into(),
        encoder_why: "v4l2h264enc on /dev/video11 passed its start probe".into(),
        frames_in: 1200,
        frames_out: 1200,
        width: 1600,
        height: 1200,
        fps,
        x264_preset: "ultrafast".into(),
        ..Load::default()
    };
    let conf = |c: &CameraDouble| format!("{}ENCODER=v4l2\n", cam_conf(c));
    let s = setup(
        &global(None, None, ram.path()),
        &[("cam1", conf(&c1)), ("cam2", conf(&c2))],
    );
    // Two 1600×1200 cameras at 12 fps fit the level 4 budget.
    load_file(ram.path(), "cam1", &hw(12.0));
    load_file(ram.path(), "cam2", &hw(12.0));
    let r = doctor(&s, &[]);
    assert!(r
        .passes("encoder: camera cam1")
        .contains("records with v4l2 (v4l2h264enc on /dev/video11 passed its start probe)"));
    assert!(r
        .passes("encoder budget:")
        .contains("2 camera(s) on the hardware encoder, 180000 of 245760 macroblocks/s"));

    // A third does not; and a camera on x264 that cannot keep up fails with the fix.
    fs::write(s.conf.join("cameras/cam3.conf"), conf(&c3)).unwrap();
    load_file(ram.path(), "cam3", &hw(12.0));
    let c4 = camera();
    fs::write(s.conf.join("cameras/cam4.conf"), cam_conf(&c4)).unwrap();
    load_file(
        ram.path(),
        "cam4",
        &Load {
            encoder: "x264".into(),
            encoder_why: "ENCODER=auto: no hardware encoder: no /dev/video11".into(),
            frames_in: 600,
            frames_out: 410,
            dropped: 190,
            dropped_recent: 190,
            lag_ms: 2_400,
            cpu_percent: 49.0,
            width: 1600,
            height: 1200,
            fps: 10.0,
            x264_preset: "veryfast".into(),
        },
    );
    let r = doctor(&s, &[]);
    let budget = r.fails("encoder budget:");
    assert!(
        budget.contains("need 270000 macroblocks/s, over its level 4 budget of 245760"),
        "{budget}"
    );
    let slow = r.fails("encoder: camera cam4");
    assert!(
        slow.contains("records with x264 (ENCODER=auto: no hardware encoder: no /dev/video11)")
            && slow.contains("cannot keep up: 190 frames dropped in the last minute")
            && slow.contains(
                "— fix: X264_PRESET=ultrafast, a smaller framesize, ENCODER=v4l2 on a Pi 4 \
                 (docs/guide/install-pi.md)"
            ),
        "{slow}"
    );
}
