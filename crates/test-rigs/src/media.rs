//! ffprobe as the tests read a media file, as a player would: its first video stream's codec,
//! every frame decoded and counted, duration, start time, creation tag, whether it starts on a
//! key frame, and whatever the decoder complained of.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// What ffprobe says of a media file (its first video stream and its container).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// `h264` for everything visdcam writes.
    pub codec: String,
    /// Frames decoded (`-count_frames`: every frame goes through the decoder).
    pub frames: u64,
    /// The container's duration in seconds (0 when it states none).
    pub duration: f64,
    /// The playback time of the first frame (`format=start_time`; 0 when none).
    pub start_time: f64,
    /// The container's `creation_time` tag (MP4, Matroska), if any.
    pub creation_time: Option<String>,
    /// The first video frame is a key frame (the file plays from its start on its own).
    pub first_is_key: bool,
    /// What ffprobe printed at level `error`: empty when every frame decoded cleanly.
    pub errors: String,
}

fn ffprobe() -> Command {
    let mut c = Command::new("ffprobe");
    c.args(["-v", "error", "-select_streams", "v:0", "-of", "json"]);
    c
}

fn run(cmd: &mut Command, path: &Path) -> (Value, String) {
    let out = cmd
        .arg(path)
        .output()
        .expect("running ffprobe (cargo xtask deps installs ffmpeg)");
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ffprobe {}: {errors}", path.display());
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("ffprobe {}: {e}", path.display()));
    (v, errors)
}

fn number<T: std::str::FromStr>(v: &Value) -> Option<T> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// Probes a file. Panics, naming it, when ffprobe cannot run or cannot read it at all; decode
/// errors are in [`Probe::errors`] ([`probe_clean`] asserts there are none).
pub fn probe(path: &Path) -> Probe {
    let (v, errors) = run(
        ffprobe().args([
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,codec_name:format=duration,start_time:format_tags=creation_time",
        ]),
        path,
    );
    let (first, _) = run(
        ffprobe().args([
            "-show_frames",
            "-read_intervals",
            "%+#1",
            "-show_entries",
            "frame=key_frame",
        ]),
        path,
    );
    let stream = &v["streams"][0];
    Probe {
        codec: stream["codec_name"].as_str().unwrap_or_default().into(),
        frames: number(&stream["nb_read_frames"]).unwrap_or(0),
        duration: number(&v["format"]["duration"]).unwrap_or(0.0),
        start_time: number(&v["format"]["start_time"]).unwrap_or(0.0),
        creation_time: v["format"]["tags"]["creation_time"]
            .as_str()
            .map(str::to_string),
        first_is_key: first["frames"][0]["key_frame"].as_i64() == Some(1),
        errors,
    }
}

/// [`probe`], asserting that every frame decoded without a complaint from the decoder. (Not
/// `ffmpeg -f null`: it re-times frames to the nominal rate, and two frames timed by arrival
/// closer than that collide in its muxer, which says nothing about the file.)
pub fn probe_clean(path: &Path) -> Probe {
    let p = probe(path);
    assert!(
        p.errors.is_empty(),
        "decode errors in {}: {}",
        path.display(),
        p.errors
    );
    p
}
