//! Which H.264 encoder a recorder uses and how it is set up, without I/O: `ENCODER=` against
//! the start probe's verdict, the Pi 4 hardware encoder's caps and `extra-controls`, its
//! input alignment, the macroblock budget all cameras share, and the recorder's "can it keep
//! up" verdict with the file that carries these figures to `visdcam status` and `doctor`
//! (docs/design/encoder.md).

use std::collections::BTreeMap;
use std::fmt;

/// GStreamer's element for a V4L2 memory-to-memory H.264 encoder (the Pi 4's `bcm2835-codec`).
pub const V4L2_ELEMENT: &str = "v4l2h264enc";
/// The Pi 4's encoder device.
pub const DEFAULT_DEVICE: &str = "/dev/video11";
/// The profile asked for in the caps after `v4l2h264enc`.
pub const V4L2_PROFILE: &str = "high";
/// The level asked for in the caps. Since GStreamer 1.18 the level comes from the caps; without
/// one the driver is left at level 1.0 (128×96) and refuses real frame sizes. Level 4 is the
/// block's ceiling and covers every ESP32-CAM frame size up to 1600×1200.
pub const V4L2_LEVEL: &str = "4";
/// Macroblocks per second of H.264 level 4 (and 4.1): the Pi 4 encoder's whole budget,
/// shared by every camera it encodes.
pub const LEVEL4_MB_PER_S: u64 = 245_760;
/// Largest frame of level 4, in macroblocks.
pub const LEVEL4_MAX_FRAME_MB: u64 = 8_192;
/// Row alignment (pixels) the encoder's input buffers need when the recorder allocates them.
pub const V4L2_WIDTH_ALIGN: u32 = 32;
/// Height alignment of the encoder's input (whole macroblock rows).
pub const V4L2_HEIGHT_ALIGN: u32 = 16;

/// `ENCODER=`: what the configuration asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderSetting {
    /// The hardware encoder if its start probe passes, x264 otherwise.
    Auto,
    X264,
    /// The hardware encoder; x264 (with a warning) if its start probe fails.
    V4l2,
}

impl EncoderSetting {
    pub const CHOICES: &'static [&'static str] = &["auto", "x264", "v4l2"];

    pub fn parse(s: &str) -> Option<EncoderSetting> {
        match s {
            "auto" => Some(EncoderSetting::Auto),
            "x264" => Some(EncoderSetting::X264),
            "v4l2" => Some(EncoderSetting::V4l2),
            _ => None,
        }
    }

    /// Whether the hardware encoder is tried at start.
    pub fn tries_hardware(self) -> bool {
        self != EncoderSetting::X264
    }
}

/// The encoder a pipeline is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    X264,
    V4l2,
}

impl Encoder {
    pub fn name(self) -> &'static str {
        match self {
            Encoder::X264 => "x264",
            Encoder::V4l2 => "v4l2",
        }
    }

    pub fn element(self) -> &'static str {
        match self {
            Encoder::X264 => "x264enc",
            Encoder::V4l2 => V4L2_ELEMENT,
        }
    }
}

/// The encoder chosen and why, in words (STATUS=, the journal, `status`, `doctor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub encoder: Encoder,
    pub why: String,
    /// The configuration asked for the hardware encoder and does not get it.
    pub warn: bool,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.encoder.name(), self.why)
    }
}

/// The encoder for `setting` given the start probe's result (`None` when no probe ran, which
/// only `ENCODER=x264` does).
pub fn choose(setting: EncoderSetting, device: &str, probe: Option<Result<(), String>>) -> Choice {
    match (setting, probe) {
        (EncoderSetting::X264, _) | (_, None) => Choice {
            encoder: Encoder::X264,
            why: "ENCODER=x264".into(),
            warn: false,
        },
        (s, Some(Ok(()))) => Choice {
            encoder: Encoder::V4l2,
            why: format!(
                "{} on {device} passed its start probe{}",
                V4L2_ELEMENT,
                if s == EncoderSetting::Auto {
                    ", ENCODER=auto"
                } else {
                    ""
                }
            ),
            warn: false,
        },
        (EncoderSetting::Auto, Some(Err(e))) => Choice {
            encoder: Encoder::X264,
            why: format!("ENCODER=auto: no hardware encoder: {e}"),
            warn: false,
        },
        (EncoderSetting::V4l2, Some(Err(e))) => Choice {
            encoder: Encoder::X264,
            why: format!("ENCODER=v4l2 failed its start probe: {e}"),
            warn: true,
        },
    }
}

/// The choice after the hardware encoder failed while recording: x264 for this camera until
/// the recorder restarts.
pub fn after_failure(error: &str) -> Choice {
    Choice {
        encoder: Encoder::X264,
        why: format!("{V4L2_ELEMENT} failed while recording: {error}"),
        warn: true,
    }
}

/// `extra-controls` for `v4l2h264enc`: bitrate in bit/s, the keyframe period, and SPS/PPS
/// repeated before every keyframe so each segment decodes on its own.
pub fn v4l2_extra_controls(bitrate_kbps: u32, keyframe_interval: u32) -> String {
    format!(
        "controls,video_bitrate={},h264_i_frame_period={},repeat_sequence_header=1",
        u64::from(bitrate_kbps) * 1000,
        keyframe_interval
    )
}

/// The caps after `v4l2h264enc`, as a caps string.
pub fn v4l2_output_caps() -> String {
    format!("video/x-h264,profile={V4L2_PROFILE},level=(string){V4L2_LEVEL}")
}

/// The raw format the hardware encoder is fed (x264 gets I420).
pub fn raw_format(encoder: Encoder) -> &'static str {
    match encoder {
        Encoder::X264 => "I420",
        Encoder::V4l2 => "NV12",
    }
}

/// The frame the hardware encoder is given for a `width`×`height` camera frame: the width
/// padded to [`V4L2_WIDTH_ALIGN`] and the height to [`V4L2_HEIGHT_ALIGN`] (the padding is a
/// border on the right and bottom). ESP32-CAM sizes such as 400×296 or 240×176 need it.
pub fn v4l2_aligned(width: u32, height: u32) -> (u32, u32) {
    (
        width.div_ceil(V4L2_WIDTH_ALIGN) * V4L2_WIDTH_ALIGN,
        height.div_ceil(V4L2_HEIGHT_ALIGN) * V4L2_HEIGHT_ALIGN,
    )
}

/// Macroblocks (16×16) in one frame.
pub fn macroblocks(width: u32, height: u32) -> u64 {
    u64::from(width.div_ceil(16)) * u64::from(height.div_ceil(16))
}

/// One camera's share of the hardware encoder.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraLoad {
    pub camera: String,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

impl CameraLoad {
    pub fn mb_per_s(&self) -> f64 {
        macroblocks(self.width, self.height) as f64 * self.fps
    }
}

/// The cameras' sum against [`LEVEL4_MB_PER_S`]: `None` when they fit, otherwise the words
/// `doctor` prints.
pub fn budget_excess(cameras: &[CameraLoad]) -> Option<String> {
    let total: f64 = cameras.iter().map(CameraLoad::mb_per_s).sum();
    let too_big: Vec<String> = cameras
        .iter()
        .filter(|c| macroblocks(c.width, c.height) > LEVEL4_MAX_FRAME_MB)
        .map(|c| format!("{} ({}×{})", c.camera, c.width, c.height))
        .collect();
    if !too_big.is_empty() {
        return Some(format!(
            "frames larger than the hardware encoder's level 4 ({LEVEL4_MAX_FRAME_MB} \
             macroblocks): {}",
            too_big.join(", ")
        ));
    }
    if total <= LEVEL4_MB_PER_S as f64 {
        return None;
    }
    let parts: Vec<String> = cameras
        .iter()
        .map(|c| {
            format!(
                "{} {}×{} at {:.0} fps = {:.0}",
                c.camera,
                c.width,
                c.height,
                c.fps,
                c.mb_per_s()
            )
        })
        .collect();
    Some(format!(
        "the hardware encoder's cameras need {total:.0} macroblocks/s, over its level 4 \
         budget of {LEVEL4_MB_PER_S} shared by all cameras ({}): give some cameras \
         ENCODER=x264, a smaller framesize or fewer fps",
        parts.join("; ")
    ))
}

/// The recorder's file in a camera's RAM directory with its encoder and load (a dot-file:
/// never uploaded). `visdcam status` and `doctor` read it.
pub const LOAD_FILE: &str = ".seg-cam-load";

/// Frames dropped in a window, or an encoder lag, beyond which the recorder says it cannot
/// keep up.
pub const BEHIND_LAG_MS: u64 = 2_000;

/// What the recorder measured over the last window, for STATUS= and [`LOAD_FILE`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Load {
    pub encoder: String,
    pub encoder_why: String,
    /// JPEG frames in from the camera (this connection).
    pub frames_in: u64,
    /// Encoded frames out of the encoder.
    pub frames_out: u64,
    /// Frames the bounded queue before the decoder dropped.
    pub dropped: u64,
    /// Frames dropped in the last window.
    pub dropped_recent: u64,
    /// Arrival of the newest frame minus arrival of the newest encoded one, in ms.
    pub lag_ms: u64,
    /// The recorder's own CPU use, percent of one core, over the last window.
    pub cpu_percent: f64,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// The X264_PRESET in use (for the advice).
    pub x264_preset: String,
}

impl Load {
    /// Whether the recorder is falling behind the camera.
    pub fn behind(&self) -> bool {
        self.dropped_recent > 0 || self.lag_ms > BEHIND_LAG_MS
    }

    /// The sentence saying the recorder cannot keep up and what fixes it; `None` when it keeps up.
    pub fn advice(&self) -> Option<String> {
        if !self.behind() {
            return None;
        }
        let fix = if self.encoder == Encoder::V4l2.name() {
            "a smaller framesize or fewer cameras on the hardware encoder".to_string()
        } else {
            let faster = match self.x264_preset.as_str() {
                "ultrafast" => None,
                _ => Some("X264_PRESET=ultrafast"),
            };
            let mut f = Vec::new();
            if let Some(p) = faster {
                f.push(p.to_string());
            }
            f.push("a smaller framesize".into());
            f.push("ENCODER=v4l2 on a Pi 4".into());
            f.join(", ")
        };
        Some(format!(
            "cannot keep up: {} frames dropped in the last minute, encoder {:.1} s behind, \
             recorder at {:.0} % CPU; fix: {fix}",
            self.dropped_recent,
            self.lag_ms as f64 / 1000.0,
            self.cpu_percent
        ))
    }

    /// The STATUS= suffix: encoder, frames and, when behind, the advice.
    pub fn status_suffix(&self) -> String {
        let mut s = format!(
            "; encoder {} ({}), frames in {} out {} dropped {}, lag {:.1} s, CPU {:.0} %",
            self.encoder,
            self.encoder_why,
            self.frames_in,
            self.frames_out,
            self.dropped,
            self.lag_ms as f64 / 1000.0,
            self.cpu_percent
        );
        if let Some(a) = self.advice() {
            s.push_str("; ");
            s.push_str(&a);
        }
        s
    }

    /// [`LOAD_FILE`]'s text: `key=value` lines.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut line = |k: &str, v: String| {
            s.push_str(k);
            s.push('=');
            s.push_str(&v.replace('\n', " "));
            s.push('\n');
        };
        line("encoder", self.encoder.clone());
        line("encoder_why", self.encoder_why.clone());
        line("frames_in", self.frames_in.to_string());
        line("frames_out", self.frames_out.to_string());
        line("frames_dropped", self.dropped.to_string());
        line(
            "frames_dropped_last_minute",
            self.dropped_recent.to_string(),
        );
        line("encoder_lag_ms", self.lag_ms.to_string());
        line("cpu_percent", format!("{:.1}", self.cpu_percent));
        line("width", self.width.to_string());
        line("height", self.height.to_string());
        line("fps", format!("{:.1}", self.fps));
        if let Some(a) = self.advice() {
            line("behind", a);
        }
        s
    }
}

/// [`LOAD_FILE`]'s lines as a map (unknown keys kept, malformed lines skipped), read like the
/// daemons' other counters files ([`crate::cli::parse_stats`]).
pub fn parse_load(text: &str) -> BTreeMap<String, String> {
    crate::cli::parse_stats(text).into_iter().collect()
}

/// The load of a camera from its [`LOAD_FILE`], for the budget check (`None` before a size
/// and a frame rate were measured).
pub fn camera_load(camera: &str, file: &BTreeMap<String, String>) -> Option<CameraLoad> {
    let w = file.get("width")?.parse().ok()?;
    let h = file.get("height")?.parse().ok()?;
    let fps: f64 = file.get("fps")?.parse().ok()?;
    (w > 0 && h > 0 && fps > 0.0).then(|| CameraLoad {
        camera: camera.to_string(),
        width: w,
        height: h,
        fps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(name: &str, w: u32, h: u32, fps: f64) -> CameraLoad {
        CameraLoad {
            camera: name.into(),
            width: w,
            height: h,
            fps,
        }
    }

    #[test]
    fn the_choice_follows_the_setting_and_the_probe() {
        let dev = "/dev/video11";
        let c = choose(EncoderSetting::X264, dev, None);
        assert_eq!((c.encoder, c.warn), (Encoder::X264, false));
        assert_eq!(c.to_string(), "x264 (ENCODER=x264)");
        let c = choose(EncoderSetting::Auto, dev, Some(Ok(())));
        assert_eq!(c.encoder, Encoder::V4l2);
        assert_eq!(
            c.to_string(),
            "v4l2 (v4l2h264enc on /dev/video11 passed its start probe, ENCODER=auto)"
        );
        let c = choose(
            EncoderSetting::Auto,
            dev,
            Some(Err("no /dev/video11".into())),
        );
        assert_eq!((c.encoder, c.warn), (Encoder::X264, false));
        assert_eq!(c.why, "ENCODER=auto: no hardware encoder: no /dev/video11");
        let c = choose(
            EncoderSetting::V4l2,
            dev,
            Some(Err("no /dev/video11".into())),
        );
        assert_eq!((c.encoder, c.warn), (Encoder::X264, true));
        assert_eq!(
            c.why,
            "ENCODER=v4l2 failed its start probe: no /dev/video11"
        );
        let c = choose(EncoderSetting::V4l2, dev, Some(Ok(())));
        assert_eq!((c.encoder, c.warn), (Encoder::V4l2, false));
        let c = after_failure("Failed to process frame.");
        assert_eq!((c.encoder, c.warn), (Encoder::X264, true));
        assert_eq!(
            c.why,
            "v4l2h264enc failed while recording: Failed to process frame."
        );
        assert_eq!(EncoderSetting::parse("v4l2"), Some(EncoderSetting::V4l2));
        assert_eq!(EncoderSetting::parse("omx"), None);
        assert!(!EncoderSetting::X264.tries_hardware());
    }

    #[test]
    fn hardware_caps_carry_profile_and_level_and_controls_the_rest() {
        assert_eq!(
            v4l2_output_caps(),
            "video/x-h264,profile=high,level=(string)4"
        );
        assert_eq!(
            v4l2_extra_controls(1000, 30),
            "controls,video_bitrate=1000000,h264_i_frame_period=30,repeat_sequence_header=1"
        );
        assert_eq!(raw_format(Encoder::V4l2), "NV12");
        assert_eq!(raw_format(Encoder::X264), "I420");
        assert_eq!(Encoder::V4l2.element(), "v4l2h264enc");
    }

    #[test]
    fn odd_esp32_sizes_are_padded_for_the_hardware_encoder() {
        let cases = [
            ((1600, 1200), (1600, 1200)),
            ((800, 600), (800, 608)),
            ((320, 240), (320, 240)),
            ((400, 296), (416, 304)),
            ((240, 176), (256, 176)),
            ((176, 144), (192, 144)),
            ((1280, 720), (1280, 720)),
        ];
        for ((w, h), want) in cases {
            assert_eq!(v4l2_aligned(w, h), want, "{w}×{h}");
        }
    }

    #[test]
    fn the_macroblock_budget_is_shared_by_all_cameras() {
        assert_eq!(macroblocks(1600, 1200), 7_500);
        assert_eq!(macroblocks(800, 600), 50 * 38);
        // Two 1600×1200 cameras at 12 fps: 180 000 MB/s, within 245 760.
        let two = [cam("a", 1600, 1200, 12.0), cam("b", 1600, 1200, 12.0)];
        assert_eq!(budget_excess(&two), None);
        // A third: 270 000, over.
        let three = [two[0].clone(), two[1].clone(), cam("c", 1600, 1200, 12.0)];
        let msg = budget_excess(&three).expect("three do not fit");
        assert!(msg.contains("270000 macroblocks/s"), "{msg}");
        assert!(msg.contains("c 1600×1200 at 12 fps = 90000"), "{msg}");
        // Exactly at the limit fits: 1280×768 is 3 840 macroblocks, × 64 fps = 245 760.
        assert_eq!(budget_excess(&[cam("a", 1280, 768, 64.0)]), None);
        assert!(budget_excess(&[cam("a", 1280, 768, 64.1)]).is_some());
        // A frame too large for level 4 whatever the rate.
        let huge = [cam("big", 2048, 1536, 1.0)];
        assert!(budget_excess(&huge).unwrap().contains("big (2048×1536)"));
    }

    #[test]
    fn the_recorder_says_when_it_cannot_keep_up_and_what_fixes_it() {
        let mut l = Load {
            encoder: "x264".into(),
            encoder_why: "ENCODER=x264".into(),
            frames_in: 300,
            frames_out: 299,
            lag_ms: 80,
            cpu_percent: 7.7,
            width: 1600,
            height: 1200,
            fps: 10.0,
            x264_preset: "veryfast".into(),
            ..Load::default()
        };
        assert!(!l.behind());
        assert_eq!(l.advice(), None);
        assert_eq!(
            l.status_suffix(),
            "; encoder x264 (ENCODER=x264), frames in 300 out 299 dropped 0, lag 0.1 s, CPU 8 %"
        );
        l.dropped = 40;
        l.dropped_recent = 12;
        l.cpu_percent = 20.0;
        assert_eq!(
            l.advice().unwrap(),
            "cannot keep up: 12 frames dropped in the last minute, encoder 0.1 s behind, \
             recorder at 20 % CPU; fix: X264_PRESET=ultrafast, a smaller framesize, \
             ENCODER=v4l2 on a Pi 4"
        );
        l.x264_preset = "ultrafast".into();
        assert!(l
            .advice()
            .unwrap()
            .ends_with("fix: a smaller framesize, ENCODER=v4l2 on a Pi 4"));
        l.dropped_recent = 0;
        l.lag_ms = 2_500;
        assert!(l.behind());
        let file = parse_load(&l.render());
        assert_eq!(file["frames_dropped"], "40");
        assert_eq!(file["encoder_lag_ms"], "2500");
        assert!(file["behind"].starts_with("cannot keep up"));
        assert_eq!(
            camera_load("cam1", &file),
            Some(cam("cam1", 1600, 1200, 10.0))
        );
        assert_eq!(camera_load("cam1", &parse_load("width=0\nheight=0")), None);
    }
}
