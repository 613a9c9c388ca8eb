//! `seg-cam`'s command line and start-up refusals: usage, configuration errors (exit 78 with
//! file:line), missing GStreamer plugins (exit 69 naming the Debian package), a second
//! recorder for the same camera, and `finalize` with nothing to do.

mod common;

use std::fs;
use std::process::Output;

use common::{Rig, BIN};

fn run(rig: &Rig, args: &[&str]) -> Output {
    rig.command().args(args).output().expect("running seg-cam")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn usage_errors_exit_64() {
    let rig = Rig::new("");
    for args in [
        &[][..],
        &["a", "b"],
        &["finalize", "cam1", "x"],
        &["--bogus"],
    ] {
        let o = run(&rig, args);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("usage: seg-cam <camera>"), "{args:?}");
    }
    let o = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("seg-cam finalize <camera>"));
}

#[test]
fn config_errors_exit_78_with_file_and_line() {
    let rig = Rig::new("X264_BITRATE_KBPS=5\n");
    for args in [&["cam1"][..], &["finalize", "cam1"]] {
        let o = run(&rig, args);
        assert_eq!(o.status.code(), Some(78), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("visdcam.conf:4: X264_BITRATE_KBPS: 5 is out of range"),
            "{e}"
        );
    }
    let o = run(&rig, &["cam9"]);
    assert_eq!(o.status.code(), Some(78));
    assert!(
        stderr(&o).contains("unknown camera `cam9`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_plugins_name_the_debian_package() {
    let rig = Rig::new("");
    let empty = rig.tmp.path().join("no-plugins");
    fs::create_dir(&empty).unwrap();
    let o = rig
        .command()
        .arg("cam1")
        .env("GST_PLUGIN_SYSTEM_PATH_1_0", &empty)
        .env("GST_PLUGIN_PATH_1_0", &empty)
        .env("GST_REGISTRY_1_0", rig.tmp.path().join("registry.bin"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(69), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("missing GStreamer elements souphttpsrc")
            && e.contains("x264enc")
            && e.contains("apt install")
            && e.contains("gstreamer1.0-plugins-good")
            && e.contains("gstreamer1.0-plugins-ugly")
            && e.contains("gstreamer1.0-plugins-bad"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one clear error: {e}");
    assert!(!rig.notify.all().iter().any(|(_, l)| l == "READY=1"));
}

#[test]
fn a_second_recorder_for_the_same_camera_is_refused() {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_partial(1, std::time::Duration::from_secs(30));
    let o = run(&rig, &["cam1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("already recording"), "{}", stderr(&o));
    // finalize leaves the running recorder's .part alone.
    let parts = rig.partials();
    let o = run(&rig, &["finalize", "cam1"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("nothing finalised"), "{}", stderr(&o));
    assert!(parts.iter().all(|p| p.exists()));
    assert_eq!(rig.stop().code(), Some(0));
}

#[test]
fn finalize_without_a_directory_does_nothing() {
    let rig = Rig::new("");
    let o = run(&rig, &["finalize", "cam1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!rig.dir.exists());
}
