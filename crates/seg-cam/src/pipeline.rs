//! The recording pipeline for one camera connection, built element by element:
//!
//! ```text
//! {souphttpsrc} ─ {multipartdemux} ┄(pad-added)┄ {queue, leaky} ─ {jpegdec} ─ {videoconvert}
//!     ─ {capsfilter I420 | NV12} ─ {x264enc | v4l2h264enc ─ capsfilter profile, level}
//!     ─ {h264parse} ─ {splitmuxsink: mpegtsmux + filesink}
//!  ▲ parts counted here  ▲ drops counted   ▲ frames counted  ▲ split grid: force a keyframe and
//!  ▲ live feed: each part (JPEG)                            split-at-running-time every SEG_SECONDS
//!    offered to crate::live                                 encoded frames counted at h264parse
//! ```
//!
//! - The queue after the demuxer is the one place frames wait, and it is bounded
//!   ([`QUEUE_FRAMES`], [`QUEUE_TIME`]) and leaky: when decoding and encoding cannot keep up
//!   with the camera, the oldest JPEG is dropped (before any work was spent on it) rather than
//!   memory growing. Its thread boundary also keeps the source reading at network pace, so
//!   arrival timestamps stay true and a segment's playback time stays its wall time.
//!
//! - The live feed is a pad probe on multipartdemux's source pad, not a branch of the
//!   pipeline: it takes a reference to each part (the camera's JPEG, undecoded) and offers it
//!   to [`crate::live`] on a bounded channel with `try_send`. The recording path stays the
//!   same elements doing the same work; what it pays per frame is a reference count and one
//!   channel operation that never waits (crates/seg-cam/tests/live.rs measures it).
//!
//! - Timestamps are arrival times (`is-live`, `do-timestamp` on the source), so a segment
//!   plays at wall-clock speed whatever frame rate the camera manages.
//! - `videoconvert` is a pass-through when jpegdec already gives I420 (4:2:0 JPEGs); it only
//!   works for 4:2:2 JPEGs, which x264 would otherwise encode as High 4:2:2 that few players
//!   decode.
//! - Splits: x264 makes a keyframe every `KEYFRAME_INTERVAL` frames; on top of that the
//!   recorder forces one on the first frame past each `SEG_SECONDS` grid point and asks
//!   splitmuxsink to split there (`split-at-running-time`; `max-size-time` is 0). Segments
//!   are therefore `SEG_SECONDS` long (± one frame) and start on a keyframe.
//! - File names come from `format-location-full`: `seg-<wall ms of the first frame>-<tag>.ts.part`
//!   (wall time as [`ClockSource::wall_now`] gives it: a test clock shifts it).
//! - A pipeline lives for one connection: the run loop drains it to EOS and drops it when the
//!   camera fails, then builds a new one.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use gstreamer::prelude::*;
use visdcam_core::recorder::SplitGrid;
use visdcam_core::segment::SegmentName;
use visdcam_daemon::clock::ClockSource;

/// Every element the pipeline uses and the Debian package that provides it.
pub const ELEMENTS: &[(&str, &str)] = &[
    ("souphttpsrc", "gstreamer1.0-plugins-good"),
    ("multipartdemux", "gstreamer1.0-plugins-good"),
    ("queue", "libgstreamer1.0-0"),
    ("jpegdec", "gstreamer1.0-plugins-good"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("capsfilter", "libgstreamer1.0-0"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("splitmuxsink", "gstreamer1.0-plugins-good"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("filesink", "libgstreamer1.0-0"),
];

/// The elements that are not installed, with their packages. Empty when all are there.
pub fn missing_elements() -> Vec<(&'static str, &'static str)> {
    ELEMENTS
        .iter()
        .filter(|(name, _)| gst::ElementFactory::find(name).is_none())
        .copied()
        .collect()
}

/// One line naming what to install.
pub fn missing_message(missing: &[(&str, &str)]) -> String {
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.sort_unstable();
    packages.dedup();
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    format!(
        "missing GStreamer element{} {}: install with `apt install {}`",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        packages.join(" ")
    )
}

/// What the pipeline needs to know.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub url: String,
    pub dir: PathBuf,
    pub seg: Duration,
    pub x264_preset: String,
    pub bitrate_kbps: u32,
    pub keyframe_interval: u32,
    /// The encoder this pipeline is built with (the start probe's and fallbacks' choice).
    pub encoder: visdcam_core::encoder::Encoder,
    pub encoder_device: PathBuf,
    /// souphttpsrc's socket timeout: longer than the recorder's own stall timeout, so the
    /// recorder decides (souphttpsrc would retry with a Range header the camera ignores).
    pub socket_timeout_s: u32,
    /// Wall time for segment names (`VISDCAM_TEST_CLOCK` shifts it in tests).
    pub clock: ClockSource,
    /// Where each received JPEG is offered for live viewing (`None`: the socket could not be
    /// made; recording goes on without it).
    pub live: Option<crate::live::LiveFeed>,
}

/// Counters the streaming threads update and the run loop reads.
pub struct Counters {
    epoch: Instant,
    parts: AtomicU64,
    frames: AtomicU64,
    /// Frames that left the leaky queue (the rest of `parts` was dropped or still waits).
    dequeued: AtomicU64,
    /// Encoded frames out of the encoder.
    encoded: AtomicU64,
    /// Running time (ns + 1) of the newest part's arrival and the PTS (its arrival time) of
    /// the newest encoded frame out (0: none yet).
    last_in_pts: AtomicU64,
    last_out_pts: AtomicU64,
    first_in_pts: AtomicU64,
    /// Milliseconds since `epoch` + 1 of the last part / frame (0: none yet).
    last_part: AtomicU64,
    last_frame: AtomicU64,
    /// The last `.part` files this pipeline opened: bounded, however long the connection.
    opened: Mutex<RecentParts>,
}

/// How many of the `.part` files a pipeline opened it remembers: the one being written and the
/// one before it. The run loop hands a file off once splitmuxsink reported it closed and the
/// next fragment opened (its filesink lets go of the old file only then); by the time file N
/// opens, file N−2's close was reported (N−1 was written in between), so N−2 and every older
/// file were handed off already. Whatever is still a `.part` when the pipeline stops is handed
/// off from this list (or, if missed anyway, finalised as a crash leftover at the next start
/// or by `seg-cam finalize`).
pub const PARTS_KEPT: usize = 2;

/// The last [`PARTS_KEPT`] paths pushed, oldest first.
#[derive(Debug, Default)]
pub struct RecentParts(VecDeque<PathBuf>);

impl RecentParts {
    pub fn push(&mut self, path: PathBuf) {
        if self.0.len() == PARTS_KEPT {
            self.0.pop_front();
        }
        self.0.push_back(path);
    }

    pub fn to_vec(&self) -> Vec<PathBuf> {
        self.0.iter().cloned().collect()
    }
}

impl Counters {
    fn new() -> Counters {
        Counters {
            epoch: Instant::now(),
            parts: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            dequeued: AtomicU64::new(0),
            encoded: AtomicU64::new(0),
            last_in_pts: AtomicU64::new(0),
            last_out_pts: AtomicU64::new(0),
            first_in_pts: AtomicU64::new(0),
            last_part: AtomicU64::new(0),
            last_frame: AtomicU64::new(0),
            opened: Mutex::new(RecentParts::default()),
        }
    }

    fn stamp(&self, at: &AtomicU64) {
        at.store(
            self.epoch.elapsed().as_millis() as u64 + 1,
            Ordering::Relaxed,
        );
    }

    fn read(&self, at: &AtomicU64) -> Option<Instant> {
        match at.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.epoch + Duration::from_millis(ms - 1)),
        }
    }

    pub fn parts(&self) -> u64 {
        self.parts.load(Ordering::Relaxed)
    }

    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    pub fn dequeued(&self) -> u64 {
        self.dequeued.load(Ordering::Relaxed)
    }

    pub fn encoded(&self) -> u64 {
        self.encoded.load(Ordering::Relaxed)
    }

    /// How far the encoder's output is behind the newest frame in, by their arrival times.
    pub fn lag(&self) -> Duration {
        let (i, o) = (
            self.last_in_pts.load(Ordering::Relaxed),
            self.last_out_pts.load(Ordering::Relaxed),
        );
        match (i, o) {
            (0, _) => Duration::ZERO,
            // Nothing encoded yet: behind by everything that came in.
            (i, 0) => {
                Duration::from_nanos(i.saturating_sub(self.first_in_pts.load(Ordering::Relaxed)))
            }
            (i, o) => Duration::from_nanos(i.saturating_sub(o)),
        }
    }

    pub fn last_part(&self) -> Option<Instant> {
        self.read(&self.last_part)
    }

    pub fn last_frame(&self) -> Option<Instant> {
        self.read(&self.last_frame)
    }

    /// The `.part` files this pipeline may not have handed off yet (see [`PARTS_KEPT`]).
    pub fn opened(&self) -> Vec<PathBuf> {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .to_vec()
    }

    /// splitmuxsink opened `path` for the next fragment.
    fn note_opened(&self, path: PathBuf) {
        self.opened
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(path);
    }
}

/// JPEG frames the queue before the decoder holds at most.
pub const QUEUE_FRAMES: u32 = 30;
/// The longest the queue before the decoder holds frames (by their arrival times).
pub const QUEUE_TIME: Duration = Duration::from_secs(2);
/// Its memory bound (30 large JPEGs are well under it).
pub const QUEUE_BYTES: u32 = 16 * 1024 * 1024;

/// A built pipeline and its counters.
pub struct Recording {
    pub pipeline: gst::Pipeline,
    pub counters: Arc<Counters>,
    /// The leaky queue (its current level).
    pub queue: gst::Element,
    /// jpegdec (its output caps give the frame size).
    pub dec: gst::Element,
    /// The encoder element (an error from it is the encoder failing).
    pub enc: gst::Element,
}

impl Recording {
    /// Frames the leaky queue dropped so far.
    pub fn dropped(&self) -> u64 {
        let level = u64::from(self.queue.property::<u32>("current-level-buffers"));
        self.counters
            .parts()
            .saturating_sub(self.counters.dequeued())
            .saturating_sub(level)
    }

    /// The decoded frame size, once known.
    pub fn frame_size(&self) -> Option<(u32, u32)> {
        let caps = self.dec.static_pad("src")?.current_caps()?;
        let s = caps.structure(0)?;
        Some((
            s.get::<i32>("width").ok()? as u32,
            s.get::<i32>("height").ok()? as u32,
        ))
    }
}

/// Building failed: an element is missing or refused a link (a broken installation).
#[derive(Debug)]
pub struct BuildError(pub String);

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "building the pipeline: {}", self.0)
    }
}

impl std::error::Error for BuildError {}

fn make(factory: &str, name: &str) -> Result<gst::Element, BuildError> {
    gst::ElementFactory::make(factory)
        .name(name)
        .build()
        .map_err(|_| BuildError(missing_message(&missing_elements())))
}

fn wall_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The running time of a buffer (its PTS mapped through the sample's or pad's segment).
fn running_time(pts: gst::ClockTime, segment: Option<&gst::Segment>) -> gst::ClockTime {
    segment
        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
        .and_then(|s| s.to_running_time(pts))
        .unwrap_or(pts)
}

impl Recording {
    pub fn build(cfg: &PipelineConfig) -> Result<Recording, BuildError> {
        let counters = Arc::new(Counters::new());
        let pipeline = gst::Pipeline::with_name("seg-cam");
        let src = make("souphttpsrc", "src")?;
        src.set_property("location", &cfg.url);
        src.set_property("is-live", true);
        src.set_property("do-timestamp", true);
        src.set_property("timeout", cfg.socket_timeout_s);
        // The run loop retries with backoff; souphttpsrc's own retries would only delay it.
        src.set_property("retries", 0i32);
        let demux = make("multipartdemux", "demux")?;
        demux.set_property("single-stream", true);
        let dec = make("jpegdec", "dec")?;
        // Corrupt frames are skipped, never fatal (a stream of them counts as a stall).
        dec.set_property("max-errors", -1i32);
        let convert = make("videoconvert", "convert")?;
        let queue = make("queue", "inq")?;
        queue.set_property("max-size-buffers", QUEUE_FRAMES);
        queue.set_property("max-size-time", QUEUE_TIME.as_nanos() as u64);
        queue.set_property("max-size-bytes", QUEUE_BYTES);
        queue.set_property_from_str("leaky", "downstream");
        let caps = make("capsfilter", "raw")?;
        caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("format", visdcam_core::encoder::raw_format(cfg.encoder))
                .build(),
        );
        use visdcam_core::encoder::Encoder;
        let (enc, enc_caps) = match cfg.encoder {
            Encoder::X264 => {
                let enc = make("x264enc", "enc")?;
                enc.set_property_from_str("speed-preset", &cfg.x264_preset);
                enc.set_property_from_str("tune", "zerolatency");
                enc.set_property("bitrate", cfg.bitrate_kbps);
                enc.set_property("key-int-max", cfg.keyframe_interval);
                (enc, None)
            }
            Encoder::V4l2 => {
                let enc = crate::encoder::hardware_element(
                    &cfg.encoder_device,
                    cfg.bitrate_kbps,
                    cfg.keyframe_interval,
                )
                .map_err(BuildError)?;
                let c = make("capsfilter", "h264caps")?;
                c.set_property("caps", crate::encoder::output_caps());
                (enc, Some(c))
            }
        };
        let parse = make("h264parse", "parse")?;
        // SPS/PPS before every keyframe: each segment decodes on its own.
        parse.set_property("config-interval", -1i32);
        let sink = make("splitmuxsink", "split")?;
        if gst::ElementFactory::find("mpegtsmux").is_none()
            || gst::ElementFactory::find("filesink").is_none()
        {
            return Err(BuildError(missing_message(&missing_elements())));
        }
        sink.set_property("muxer-factory", "mpegtsmux");
        sink.set_property("max-size-time", 0u64);
        sink.set_property("max-size-bytes", 0u64);
        sink.set_property("send-keyframe-requests", false);

        pipeline
            .add_many([
                &src, &demux, &queue, &dec, &convert, &caps, &enc, &parse, &sink,
            ])
            .map_err(|e| BuildError(e.to_string()))?;
        if let Some(c) = &enc_caps {
            pipeline.add(c).map_err(|e| BuildError(e.to_string()))?;
        }
        src.link(&demux)
            .map_err(|e| BuildError(format!("souphttpsrc ! multipartdemux: {e}")))?;
        let mut chain = vec![&queue, &dec, &convert, &caps, &enc];
        if let Some(c) = &enc_caps {
            chain.push(c);
        }
        chain.extend([&parse, &sink]);
        gst::Element::link_many(chain)
            .map_err(|e| BuildError(format!("queue ! jpegdec ! ... ! splitmuxsink: {e}")))?;

        // multipartdemux adds its pad on the first part.
        let dec_sink = queue
            .static_pad("sink")
            .ok_or_else(|| BuildError("queue has no sink pad".into()))?;
        let c = counters.clone();
        let live = cfg.live.clone();
        demux.connect_pad_added(move |_, pad| {
            if dec_sink.is_linked() {
                return;
            }
            if let Err(e) = pad.link(&dec_sink) {
                log::error!("linking multipartdemux to jpegdec: {e}");
                return;
            }
            let c = c.clone();
            let live = live.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                c.parts.fetch_add(1, Ordering::Relaxed);
                c.stamp(&c.last_part);
                // The arrival in running time (the source's timestamps are running times of
                // arrival; multipartdemux's parts need not carry them).
                let arrival = pad
                    .parent_element()
                    .and_then(|e| e.current_running_time())
                    .or_else(|| info.buffer().and_then(|b| b.pts()));
                if let Some(pts) = arrival {
                    c.last_in_pts.store(pts.nseconds() + 1, Ordering::Relaxed);
                    let _ = c.first_in_pts.compare_exchange(
                        0,
                        pts.nseconds() + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                if let (Some(live), Some(buffer)) = (&live, info.buffer()) {
                    live.offer(buffer);
                }
                gst::PadProbeReturn::Ok
            });
        });

        let c = counters.clone();
        queue
            .static_pad("src")
            .ok_or_else(|| BuildError("queue has no src pad".into()))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.dequeued.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        let c = counters.clone();
        parse
            .static_pad("sink")
            .ok_or_else(|| BuildError("h264parse has no sink pad".into()))?
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                c.encoded.fetch_add(1, Ordering::Relaxed);
                // The encoder shifts timestamps (x264enc by 1000 hours) in its segment: compare
                // running times.
                if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                    let segment = pad
                        .sticky_event::<gst::event::Segment>(0)
                        .map(|e| e.segment().clone());
                    let rt = running_time(pts, segment.as_ref());
                    c.last_out_pts.store(rt.nseconds() + 1, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        let c = counters.clone();
        dec.static_pad("src")
            .ok_or_else(|| BuildError("jpegdec has no src pad".into()))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                c.frames.fetch_add(1, Ordering::Relaxed);
                c.stamp(&c.last_frame);
                gst::PadProbeReturn::Ok
            });

        // The split grid: force a keyframe and split there every SEG_SECONDS.
        let enc_sink = enc
            .static_pad("sink")
            .ok_or_else(|| BuildError("the encoder has no sink pad".into()))?;
        let split_weak = sink.downgrade();
        let grid = Mutex::new(SplitGrid::new(cfg.seg));
        caps.static_pad("src")
            .ok_or_else(|| BuildError("capsfilter has no src pad".into()))?
            .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                    return gst::PadProbeReturn::Ok;
                };
                let segment = pad
                    .sticky_event::<gst::event::Segment>(0)
                    .map(|e| e.segment().clone());
                let rt = running_time(pts, segment.as_ref());
                let split = grid
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .frame(Duration::from_nanos(rt.nseconds()));
                if split {
                    let s = gst::Structure::builder("GstForceKeyUnit")
                        .field("timestamp", pts.nseconds())
                        .field("stream-time", pts.nseconds())
                        .field("running-time", rt.nseconds())
                        .field("all-headers", true)
                        .field("count", 0u32)
                        .build();
                    if !enc_sink.send_event(gst::event::CustomDownstream::new(s)) {
                        log::warn!("the encoder refused a keyframe request");
                    }
                    if let Some(split) = split_weak.upgrade() {
                        split.emit_by_name::<()>("split-at-running-time", &[&rt.nseconds()]);
                    }
                }
                gst::PadProbeReturn::Ok
            });

        let dir = cfg.dir.clone();
        let clock = cfg.clock.clone();
        let c = counters.clone();
        sink.connect("format-location-full", false, move |args| {
            let el = args[0].get::<gst::Element>().ok()?;
            // The fragment opens a little after its first frame arrived: date it back.
            let lag = args
                .get(2)
                .and_then(|v| v.get::<gst::Sample>().ok())
                .and_then(|s| {
                    let pts = s.buffer()?.pts()?;
                    let rt = running_time(pts, s.segment());
                    Some(el.current_running_time()?.saturating_sub(rt))
                })
                .unwrap_or(gst::ClockTime::ZERO);
            let now = clock.wall_now();
            let start = now
                .checked_sub(Duration::from_nanos(lag.nseconds()))
                .unwrap_or(now);
            let mut name = SegmentName::new(wall_ms(start), fastrand::u16(..));
            while dir.join(name.partial_name()).exists() || dir.join(name.final_name()).exists() {
                name.tag = fastrand::u16(..);
            }
            let path = dir.join(name.partial_name());
            c.note_opened(path.clone());
            Some(path.to_string_lossy().into_owned().to_value())
        });

        Ok(Recording {
            pipeline,
            counters,
            queue,
            dec,
            enc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_connection_remembers_only_the_parts_it_may_still_hand_off() {
        // A day of 2 s segments on one connection: 43 200 splits.
        let c = Counters::new();
        let part = |i: u64| PathBuf::from(format!("/mnt/ramcam/cam1/seg-{i}-0a3f.ts.part"));
        for i in 0..43_200 {
            c.note_opened(part(i));
            assert!(
                c.opened().len() <= 2,
                "after {} splits: {}",
                i + 1,
                c.opened().len()
            );
        }
        // The file being written and the one before it (maybe not reported closed yet).
        assert_eq!(c.opened(), [part(43_198), part(43_199)]);
    }
}
