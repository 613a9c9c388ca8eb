//! `ENCODER=`: the hardware encoder's start probe against devices that are not there or are not
//! encoders (this machine has no Pi 4 codec), with the real `seg-cam`, real GStreamer and the
//! camera double. Every case must record with x264, say so in one journal line, in STATUS= and
//! in the load file `visdcam status` reads.

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::{assert_all_decodable, Rig};
use visdcam_core::encoder::{parse_load, LOAD_FILE};

/// Starts the recorder with `extra` config, waits for two segments and returns (the encoder
/// lines of its log, the last STATUS=, the load file).
fn record(
    extra: &str,
) -> (
    Vec<String>,
    String,
    std::collections::BTreeMap<String, String>,
) {
    let mut rig = Rig::new(extra);
    rig.start();
    let (_, status) = rig
        .notify
        .wait_status(Instant::now(), Duration::from_secs(20), |s| {
            s.starts_with("recording") && s.contains("; encoder ") && s.contains("), frames in ")
        })
        .expect("STATUS says recording, with the encoder");
    rig.wait_finals(2, Duration::from_secs(30));
    let load = parse_load(&fs::read_to_string(rig.dir.join(LOAD_FILE)).expect("the load file"));
    assert_eq!(rig.stop().code(), Some(0));
    assert_all_decodable(&rig.dir);
    let lines = rig
        .stderr()
        .lines()
        .filter(|l| l.contains("encoder: "))
        .map(str::to_string)
        .collect();
    (lines, status, load)
}

#[test]
fn auto_without_the_device_records_with_x264_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("video11");
    let (lines, status, load) = record(&format!("ENCODER_DEVICE={}\n", dev.display()));
    let why = format!("ENCODER=auto: no hardware encoder: no {}", dev.display());
    assert_eq!(lines.len(), 1, "one encoder line: {lines:?}");
    assert!(
        lines[0].ends_with(&format!("encoder: x264 ({why})")),
        "{lines:?}"
    );
    assert!(
        lines[0].contains(" info: "),
        "auto falling back is no warning: {lines:?}"
    );
    assert!(
        status.contains(&format!("; encoder x264 ({why}), frames in ")),
        "{status}"
    );
    assert_eq!(load["encoder"], "x264");
    assert_eq!(load["encoder_why"], why);
}

#[test]
fn v4l2_on_a_device_that_is_not_a_codec_falls_back_to_x264_with_a_warning() {
    // /dev/null is a character device that answers no V4L2 ioctl.
    let (lines, status, load) = record("ENCODER=v4l2\nENCODER_DEVICE=/dev/null\n");
    assert_eq!(lines.len(), 1, "one encoder line: {lines:?}");
    assert!(
        lines[0].ends_with(
            "warn: encoder: x264 (ENCODER=v4l2 failed its start probe: /dev/null is not a V4L2 \
             device)"
        ),
        "{lines:?}"
    );
    assert!(
        status.contains("; encoder x264 (ENCODER=v4l2 failed its start probe: /dev/null is not"),
        "{status}"
    );
    assert_eq!(load["encoder"], "x264");
    assert!(load["encoder_why"].starts_with("ENCODER=v4l2 failed its start probe"));
}

#[test]
fn a_regular_file_as_device_is_refused_and_x264_never_probes() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("video11");
    fs::write(&file, b"not a device").unwrap();
    let (lines, _, load) = record(&format!("ENCODER_DEVICE={}\n", file.display()));
    assert!(
        lines[0].ends_with(&format!(
            "encoder: x264 (ENCODER=auto: no hardware encoder: {} is not a device)",
            file.display()
        )),
        "{lines:?}"
    );
    assert_eq!(load["encoder"], "x264");
    let (lines, _, load) = record("ENCODER=x264\nENCODER_DEVICE=/dev/null\n");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].ends_with("encoder: x264 (ENCODER=x264)"),
        "{lines:?}"
    );
    assert_eq!(load["encoder_why"], "ENCODER=x264");
}
