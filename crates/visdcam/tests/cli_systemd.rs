//! `visdcam` against a real systemd booted in a container (test-rigs' nspawn rig): unit control
//! and status over D-Bus from the host, setdur's rewrite + restart, logs, lsram/clean on the
//! files a running recorder wrote, enable, ramlogs, and permission denied for a plain user.
//!
//! The units are stand-ins (`seg@`/`uploader@` running small shell scripts that notify READY
//! and STATUS= like the real daemons and, for the recorder, write segment files the way seg-cam
//! names them); the installed .deb with the real daemons is tests/e2e.rs' job.
//!
//! Every test is `#[ignore]`d: they need root, systemd-nspawn and debootstrap. `cargo xtask ci`
//! runs them with `--ignored`; by hand:
//! `cargo test -p visdcam --test cli_systemd -- --ignored --test-threads=1`.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use test_rigs::container::Container;

const STUB_SEG: &str = r#"#!/bin/sh
# Stand-in for seg-cam: READY with a STATUS, then segments named as seg-cam names them.
cam="$1"; dir="$RAM_DIR/$cam"
mkdir -p "$dir"
echo "stub recorder $cam starting with SEG_SECONDS=$SEG_SECONDS"
systemd-notify --pid=$$ --ready --status="recording $cam, segment length ${SEG_SECONDS}s"
while :; do
  ms=$(date +%s%3N); tag=$(printf %04x $(od -An -N2 -tu2 /dev/urandom))
  head -c 100000 /dev/zero > "$dir/seg-$ms-$tag.ts.part"
  sleep "$SEG_SECONDS"
  mv "$dir/seg-$ms-$tag.ts.part" "$dir/seg-$ms-$tag.ts"
done
"#;

const STUB_UPLOADER: &str = r#"#!/bin/sh
echo "stub uploader $1 starting"
systemd-notify --pid=$$ --ready --status="queue 0, last upload never, 0 dropped"
exec sleep infinity
"#;

fn unit(what: &str) -> String {
    format!(
        "[Unit]\nDescription=stub {what} %i\n\n[Service]\nType=notify\nNotifyAccess=all\n\
         EnvironmentFile=/etc/visdcam/visdcam.conf\nEnvironmentFile=/etc/visdcam/cameras/%i.conf\n\
         ExecStart=/usr/local/bin/stub-{what} %i\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Boots a container with two cameras, the stub units and the visdcam binary inside.
fn boot(seg_seconds: u32) -> Container {
    let c = Container::boot().expect("booting the container");
    c.write_file("/etc/visdcam/visdcam.conf", b"RAM_DIR=/mnt/ramcam\n")
        .unwrap();
    for cam in ["cam1", "cam2"] {
        c.write_file(
            &format!("/etc/visdcam/cameras/{cam}.conf"),
            format!(
                "# {cam} test camera\nCAMERA_URL=http://127.0.0.1:9/stream\n\n# length\n\
                 SEG_SECONDS={seg_seconds}\n"
            )
            .as_bytes(),
        )
        .unwrap();
    }
    c.write_file("/usr/local/bin/stub-seg", STUB_SEG.as_bytes())
        .unwrap();
    c.write_file("/usr/local/bin/stub-uploader", STUB_UPLOADER.as_bytes())
        .unwrap();
    c.write_file("/etc/systemd/system/seg@.service", unit("seg").as_bytes())
        .unwrap();
    c.write_file(
        "/etc/systemd/system/uploader@.service",
        unit("uploader").as_bytes(),
    )
    .unwrap();
    c.exec_ok(&[
        "chmod",
        "755",
        "/usr/local/bin/stub-seg",
        "/usr/local/bin/stub-uploader",
    ])
    .unwrap();
    c.copy_in(
        &PathBuf::from(env!("CARGO_BIN_EXE_visdcam")),
        "/usr/local/bin/visdcam",
    )
    .unwrap();
    c.exec_ok(&["chmod", "755", "/usr/local/bin/visdcam"])
        .unwrap();
    // The test harness may use systemctl; visdcam itself never does.
    c.exec_ok(&["systemctl", "daemon-reload"]).unwrap();
    c
}

fn config_dir(c: &Container) -> String {
    format!("/proc/{}/root/etc/visdcam", c.pid1())
}

/// Runs visdcam on the host, talking to the container's systemd.
fn host(c: &Container, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_visdcam"))
        .args(args)
        .env("DBUS_SYSTEM_BUS_ADDRESS", c.bus_address())
        .env("VISDCAM_CONFIG_DIR", config_dir(c))
        .output()
        .expect("running visdcam")
}

/// Runs visdcam inside the container (for commands that read its files or journal).
fn inside(c: &Container, args: &[&str]) -> Output {
    let mut argv = vec!["/usr/local/bin/visdcam"];
    argv.extend(args);
    c.exec(&argv)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "visdcam failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn status_json(c: &Container, cam: &str) -> serde_json::Value {
    serde_json::from_str(&ok(host(c, &["status", cam, "--json"]))).expect("status --json")
}

fn is_active(c: &Container, unit: &str) -> String {
    text(&c.exec(&["systemctl", "is-active", unit]).stdout)
        .trim()
        .to_string()
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p visdcam --test cli_systemd -- --ignored --test-threads=1"]
fn start_stop_restart_and_status_over_dbus() {
    let c = boot(60);
    assert_eq!(is_active(&c, "seg@cam1.service"), "inactive");

    let out = ok(host(&c, &["start", "cam1"]));
    assert!(
        out.contains("seg@cam1.service: start done, now active (running)")
            && out.contains("uploader@cam1.service: start done, now active (running)"),
        "{out}"
    );
    // systemd agrees, seen from inside.
    assert_eq!(is_active(&c, "seg@cam1.service"), "active");
    assert_eq!(is_active(&c, "uploader@cam1.service"), "active");
    assert_eq!(is_active(&c, "seg@cam2.service"), "inactive");

    let s = status_json(&c, "cam1");
    let units = &s["cameras"][0]["units"];
    assert_eq!(units[0]["unit"], "seg@cam1.service");
    assert_eq!(units[0]["active_state"], "active");
    assert_eq!(units[0]["sub_state"], "running");
    assert_eq!(
        units[0]["status_text"],
        "recording cam1, segment length 60s"
    );
    assert_eq!(
        units[1]["status_text"],
        "queue 0, last upload never, 0 dropped"
    );
    assert_eq!(units[0]["restarts"], 0);
    assert!(units[0]["since"].as_str().unwrap().ends_with('Z'));
    let pid_before = units[0]["main_pid"].as_u64().unwrap();
    assert_eq!(s["shaper"]["load_state"], "not-found");

    let line = ok(host(&c, &["status", "cam1"]));
    assert!(
        line.contains("seg@cam1.service         active (running) for ")
            && line
                .contains(", 0 restarts, not started at boot — recording cam1, segment length 60s")
            && line.contains("net-shaper.service       not-found (unit not installed?)"),
        "{line}"
    );

    let out = ok(host(&c, &["restart", "cam1"]));
    assert!(
        out.contains("seg@cam1.service: restart done, now active (running)"),
        "{out}"
    );
    let pid_after = status_json(&c, "cam1")["cameras"][0]["units"][0]["main_pid"]
        .as_u64()
        .unwrap();
    assert_ne!(pid_before, pid_after, "restart gave a new main process");

    let out = ok(host(&c, &["stop", "all"]));
    assert!(
        out.contains("seg@cam1.service: stop done, now inactive (dead)")
            && out.contains("seg@cam2.service: nothing to do")
                | out.contains("seg@cam2.service: stop done"),
        "{out}"
    );
    assert_eq!(is_active(&c, "seg@cam1.service"), "inactive");
    assert_eq!(
        status_json(&c, "cam1")["cameras"][0]["units"][0]["active_state"],
        "inactive"
    );

    // A unit that fails to start: the result is reported and the exit status is 1.
    c.write_file(
        "/etc/visdcam/cameras/cam2.conf",
        b"CAMERA_URL=http://127.0.0.1:9/stream\nSEG_SECONDS=5\n",
    )
    .unwrap();
    c.exec_ok(&["chmod", "000", "/usr/local/bin/stub-uploader"])
        .unwrap();
    let out = host(&c, &["start", "cam2"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("uploader@cam2.service: start failed, service result exit-code")
            && err.ends_with("visdcam: 1 of 2 units failed to start\n"),
        "{err}"
    );

    // enable: the instance is wanted at boot.
    let out = ok(host(&c, &["enable", "cam1"]));
    assert!(
        out.contains(
            "created symlink /etc/systemd/system/multi-user.target.wants/seg@cam1.service"
        ),
        "{out}"
    );
    assert_eq!(
        status_json(&c, "cam1")["cameras"][0]["units"][0]["unit_file_state"],
        "enabled"
    );
    ok(host(&c, &["disable", "cam1"]));
    assert_eq!(
        status_json(&c, "cam1")["cameras"][0]["units"][0]["unit_file_state"],
        "disabled"
    );
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p visdcam --test cli_systemd -- --ignored --test-threads=1"]
fn setdur_rewrites_the_file_and_restarts_the_recorder() {
    let c = boot(60);
    ok(host(&c, &["start", "cam1"]));
    let out = ok(host(&c, &["setdur", "cam1", "30"]));
    assert!(
        out.contains("cam1: SEG_SECONDS 60 → 30 in ")
            && out.contains("seg@cam1.service: restart done, now active (running)"),
        "{out}"
    );
    // Comments and order kept, only the value changed.
    assert_eq!(
        c.exec_ok(&["cat", "/etc/visdcam/cameras/cam1.conf"])
            .unwrap(),
        "# cam1 test camera\nCAMERA_URL=http://127.0.0.1:9/stream\n\n# length\nSEG_SECONDS=30\n"
    );
    // The restarted recorder runs with the new length.
    assert_eq!(
        status_json(&c, "cam1")["cameras"][0]["units"][0]["status_text"],
        "recording cam1, segment length 30s"
    );
    assert_eq!(
        ok(host(&c, &["getdur", "cam1"])).lines().next().unwrap(),
        format!("cam1 30 ({}/cameras/cam1.conf:5)", config_dir(&c))
    );

    // A stopped recorder is not started by setdur.
    let out = ok(host(&c, &["setdur", "cam2", "45"]));
    assert!(
        out.contains("seg@cam2.service is inactive; the new length applies when it starts"),
        "{out}"
    );
    assert_eq!(is_active(&c, "seg@cam2.service"), "inactive");

    // An invalid value leaves the file as it was.
    let out = host(&c, &["setdur", "cam1", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(c
        .exec_ok(&["cat", "/etc/visdcam/cameras/cam1.conf"])
        .unwrap()
        .ends_with("SEG_SECONDS=30\n"));
}

#[test]
#[ignore = "needs root, systemd-nspawn and debootstrap (the first run builds the rootfs, minutes): cargo xtask ci runs it; by hand: cargo test -p visdcam --test cli_systemd -- --ignored --test-threads=1"]
fn logs_lsram_clean_permissions_and_ramlogs_inside() {
    let c = boot(2);
    ok(inside(&c, &["start", "cam1", "cam2"]));

    // logs: that camera's units only.
    let logs = ok(inside(&c, &["logs", "cam1", "-n", "100"]));
    assert!(
        logs.contains("stub recorder cam1 starting with SEG_SECONDS=2")
            && logs.contains("stub uploader cam1 starting"),
        "{logs}"
    );
    assert!(!logs.contains("stub recorder cam2"), "{logs}");

    // lsram on the files the running recorder wrote: wait for two closed segments.
    let lsram = |c: &Container| -> serde_json::Value {
        serde_json::from_str(&ok(inside(c, &["lsram", "cam1", "--json"]))).unwrap()
    };
    wait_for("two queued segments", Duration::from_secs(20), || {
        lsram(&c)["cameras"][0]["queued"].as_u64().unwrap() >= 2
    });
    ok(inside(&c, &["stop", "cam1"]));
    let l = lsram(&c);
    let cam = &l["cameras"][0];
    assert_eq!(cam["recording"], 1, "{l}");
    let queued = cam["queued"].as_u64().unwrap();
    assert_eq!(cam["total_bytes"], 100_000 * (queued + 1));
    let text_out = ok(inside(&c, &["lsram", "cam1"]));
    assert!(
        text_out.contains(&format!(
            "{} segments (1 recording, {queued} queued)",
            queued + 1
        )),
        "{text_out}"
    );

    // clean: every queued segment, never the one being recorded.
    let out = ok(inside(&c, &["clean", "cam1", "--yes"]));
    assert!(
        out.contains(&format!("deleted {queued} segments, ")),
        "{out}"
    );
    let after = lsram(&c);
    assert_eq!(after["cameras"][0]["queued"], 0);
    assert_eq!(after["cameras"][0]["recording"], 1);

    // A plain user may read status but not control units: exit 4 with the sudo hint.
    let out = c.exec(&[
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/usr/local/bin/visdcam",
        "restart",
        "cam2",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "visdcam: cannot restart seg@cam2.service: permission denied: run it with sudo (or \
         allow it with a polkit rule)\n"
    );

    // ramlogs: the drop-in, journald restarted, and where logs go.
    let out = ok(inside(&c, &["ramlogs", "on"]));
    assert!(
        out.contains("systemd-journald.service: restart done, now active (running)")
            && out.contains("logs are now kept in RAM only"),
        "{out}"
    );
    assert_eq!(
        c.exec_ok(&["cat", "/etc/systemd/journald.conf.d/visdcam-ramlogs.conf"])
            .unwrap(),
        visdcam_core_dropin()
    );
    assert!(ok(inside(&c, &["ramlogs", "status"])).contains("in RAM only"));
    let out = ok(inside(&c, &["ramlogs", "off"]));
    assert!(out.contains("removed /etc/systemd/journald.conf.d/visdcam-ramlogs.conf"));
    assert!(!c
        .upper_dir()
        .join("etc/systemd/journald.conf.d/visdcam-ramlogs.conf")
        .exists());
}

/// The drop-in text as the CLI writes it (kept in visdcam-core; repeated here so a change to
/// it is a visible change to this test).
fn visdcam_core_dropin() -> &'static str {
    "# Installed by `visdcam ramlogs on`; `visdcam ramlogs off` removes it.\n\
     # Keeps the journal in RAM (/run/log/journal) so logging does not wear the SD card.\n\
     # Logs are lost at reboot.\n[Journal]\nStorage=volatile\nRuntimeMaxUse=32M\n"
}
