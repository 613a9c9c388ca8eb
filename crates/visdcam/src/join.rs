//! Joins downloaded MPEG-TS segments into one file by wall-clock time, copying the H.264
//! access units (no decode, no encode):
//!
//! ```text
//! per piece:  {filesrc} ─ {tsdemux} ┄(pad-added)┄ {h264parse} ─ {appsink: byte-stream, au}
//!                                                                      │ pulled here: keyframe flag,
//!                                                                      ▼ PTS → wall-clock time
//!                          keep [last keyframe ≤ from, to), retime, poll `cancel`
//!                                                                      │
//! writer:     {appsrc: byte-stream, au} ─ {h264parse} ─ {mp4mux | matroskamux | mpegtsmux} ─ {filesink}
//! ```
//!
//! - A frame's wall-clock time is its piece's start plus its PTS minus the PTS of the piece's
//!   first frame; the output time is that minus the wall time of the first frame written, so a
//!   gap between pieces stays a gap in the output (and is reported in [`Joined::gaps`]).
//! - Output timestamps are strictly increasing: a piece whose start overlaps the previous
//!   piece's last frame is pushed to one frame interval after it (1 ms would make a 1 ms
//!   frame that ffmpeg, timing by frame rate, reports as non-monotonic DTS). DTS = PTS (seg-cam's x264 runs with
//!   `tune=zerolatency`: no B-frames).
//! - Both pipelines are driven synchronously from the calling thread: samples pulled with
//!   `try-pull-sample`, buffers pushed with `push-buffer` while watching the bus.
//! - MP4 is written with `faststart` (moov first). qtmux (GStreamer 1.22) stamps `mvhd`/`tkhd`/
//!   `mdhd` with the current time and has no property for it, so the creation times are
//!   patched in place afterwards. Matroska takes `creation-time` (DateUTC) as a property.
//!   MPEG-TS has no creation time.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Timelike, Utc};
use gstreamer as gst;
use gstreamer::prelude::*;

/// Output container, chosen by the file name's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Ts,
    Mkv,
}

impl Container {
    /// `.mp4`, `.ts`, `.mkv` (any case); anything else is `None`.
    pub fn from_path(path: &Path) -> Option<Container> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "mp4" => Some(Container::Mp4),
            "ts" => Some(Container::Ts),
            "mkv" => Some(Container::Mkv),
            _ => None,
        }
    }

    /// The extension without the dot.
    pub fn extension(&self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Ts => "ts",
            Container::Mkv => "mkv",
        }
    }

    fn muxer(&self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Ts => "mpegtsmux",
            Container::Mkv => "matroskamux",
        }
    }
}

/// A local `.ts` segment and the wall-clock time of its first frame.
#[derive(Debug, Clone)]
pub struct Piece {
    pub path: PathBuf,
    pub start: DateTime<Utc>,
}

/// What [`join`] wrote.
#[derive(Debug, Clone)]
pub struct Joined {
    /// Wall-clock time of the first frame written (a keyframe at or before `from`).
    pub start: DateTime<Utc>,
    /// Wall-clock end of the last frame written.
    pub end: DateTime<Utc>,
    /// Video frames written.
    pub frames: u64,
    /// Where the input had a gap of more than 1 s between pieces, and its length.
    pub gaps: Vec<(DateTime<Utc>, Duration)>,
}

/// Every element the join uses and the Debian package that provides it.
const ELEMENTS: &[(&str, &str)] = &[
    ("filesrc", "libgstreamer1.0-0"),
    ("tsdemux", "gstreamer1.0-plugins-bad"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("matroskamux", "gstreamer1.0-plugins-good"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
    ("filesink", "libgstreamer1.0-0"),
];

/// A gap between pieces longer than this is reported.
const GAP: i64 = 1_000_000_000;
/// A frame whose timestamp is not after the previous one's is placed this long after it.
const NUDGE: i64 = 1_000_000;
/// Frame duration assumed until two frames of one piece have been seen.
const DEFAULT_FRAME: i64 = 100_000_000;
/// How long a reader may go without producing a sample or EOS.
const READ_STALL: Duration = Duration::from_secs(30);
/// How long the writer may take to drain after end-of-stream.
const WRITE_DRAIN: Duration = Duration::from_secs(60);
/// The writer's appsrc queue is kept below this many bytes.
const WRITE_QUEUE: u64 = 8 << 20;
/// `byte-stream` H.264, one access unit per buffer.
const H264_AU: &str = "video/x-h264,stream-format=byte-stream,alignment=au";
const CANCELLED: &str = "cancelled";

fn init() -> Result<(), String> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| format!("cannot initialise GStreamer: {e}")))
        .clone()
}

fn check_elements(container: Container) -> Result<(), String> {
    let needed = [
        "filesrc",
        "tsdemux",
        "h264parse",
        "appsink",
        "appsrc",
        "filesink",
    ];
    let missing: Vec<(&str, &str)> = ELEMENTS
        .iter()
        .filter(|(name, _)| needed.contains(name) || *name == container.muxer())
        .filter(|(name, _)| gst::ElementFactory::find(name).is_none())
        .copied()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.sort_unstable();
    packages.dedup();
    let names: Vec<&str> = missing.iter().map(|(n, _)| *n).collect();
    Err(format!(
        "missing GStreamer element{} {}: install with `apt install {}`",
        if names.len() == 1 { "" } else { "s" },
        names.join(", "),
        packages.join(" ")
    ))
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| format!("cannot create GStreamer element {factory}: {e}"))
}

fn error_text(msg: &gst::Message) -> String {
    match msg.view() {
        gst::MessageView::Error(e) => {
            let src = msg
                .src()
                .map(|s| s.path_string().to_string())
                .unwrap_or_default();
            match e.debug() {
                Some(d) => format!("{} (from {src}: {d})", e.error()),
                None => format!("{} (from {src})", e.error()),
            }
        }
        _ => format!("unexpected message {:?}", msg.type_()),
    }
}

/// Nanoseconds from `origin` to `t`, saturating.
fn ns_since(origin: DateTime<Utc>, t: DateTime<Utc>) -> i64 {
    (t - origin)
        .num_nanoseconds()
        .unwrap_or(if t > origin { i64::MAX } else { i64::MIN })
}

fn at(origin: DateTime<Utc>, ns: i64) -> DateTime<Utc> {
    origin + chrono::Duration::nanoseconds(ns)
}

/// One access unit read from a piece, with its wall-clock time (ns since the first piece's start).
struct Frame {
    buf: gst::Buffer,
    caps: Option<gst::Caps>,
    wall: i64,
    key: bool,
    piece: usize,
    own_dur: Option<i64>,
}

/// Joins `pieces` (sorted by start, non-empty) into `out` as `container`, copying the H.264
/// access units: from the last keyframe at or before `from` (or the first keyframe if none is)
/// up to the last frame before `to` (or the end of the input): the output is at most one
/// keyframe interval longer than the range, at its start, and decodes from its first frame
/// (the frames after `to` are not needed by the ones before it: no B-frames). `out` is
/// written in place (the caller names it `.part` and renames it). `cancel` is polled between
/// buffers; when it is set the join stops with `Err("cancelled")` and the caller deletes `out`.
pub fn join(
    pieces: &[Piece],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    container: Container,
    out: &Path,
    cancel: &AtomicBool,
) -> Result<Joined, String> {
    if pieces.is_empty() {
        return Err("nothing to join: no segments".into());
    }
    if to < from {
        return Err(format!("the end {to} is before the start {from}"));
    }
    init()?;
    check_elements(container)?;
    let origin = pieces[0].start;
    let from_ns = ns_since(origin, from);
    let to_ns = ns_since(origin, to);

    // Pieces entirely before `from` are not read: the next one starts at or before it, and
    // segments start on a keyframe.
    let first = (0..pieces.len())
        .find(|&i| i + 1 == pieces.len() || pieces[i + 1].start > from)
        .unwrap_or(0);

    let mut sel = Selector {
        from: from_ns,
        to: to_ns,
        pending: Vec::new(),
        started: false,
        done: false,
        out: Output::new(container, out, origin),
    };
    let mut prev_wall: Option<i64> = None;
    // The last frame interval read inside one piece.
    let mut interval = DEFAULT_FRAME;
    let result = (|| {
        for (i, piece) in pieces.iter().enumerate().skip(first) {
            let mut base = ns_since(origin, piece.start);
            let mut p0: Option<i64> = None;
            let mut prev_ts: Option<i64> = None;
            read_piece(&piece.path, cancel, |sample| {
                let buf = sample
                    .buffer_owned()
                    .ok_or_else(|| "a sample without a buffer".to_string())?;
                let ts = buf.pts().or(buf.dts()).map(|t| t.nseconds() as i64);
                if let (Some(ts), Some(pt)) = (ts, prev_ts) {
                    if ts > pt {
                        interval = ts - pt;
                    }
                }
                prev_ts = ts.or(prev_ts);
                let mut wall = match (ts, p0) {
                    (Some(ts), Some(p0)) => base.saturating_add(ts - p0),
                    (Some(ts), None) => {
                        p0 = Some(ts);
                        // Overlapping the previous piece: one frame interval after its
                        // last frame, so the frame rate stays regular.
                        if let Some(pw) = prev_wall {
                            if base <= pw {
                                base = pw + interval;
                            }
                        }
                        base
                    }
                    // No timestamp at all: one frame interval after the previous.
                    (None, _) => prev_wall.map_or(base, |pw| pw + interval),
                };
                if let Some(pw) = prev_wall {
                    if wall <= pw {
                        wall = pw + NUDGE;
                    }
                }
                prev_wall = Some(wall);
                let frame = Frame {
                    key: !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    own_dur: buf.duration().map(|d| d.nseconds() as i64),
                    caps: sample.caps_owned(),
                    buf,
                    wall,
                    piece: i,
                };
                sel.feed(frame, cancel)?;
                Ok(!sel.done)
            })
            .map_err(|e| {
                if e == CANCELLED {
                    e
                } else {
                    format!("cannot read segment {}: {e}", piece.path.display())
                }
            })?;
            if sel.done {
                break;
            }
        }
        sel.finish(cancel)
    })();
    let (start, end, frames, gaps) = result?;
    Ok(Joined {
        start: at(origin, start),
        end: at(origin, end),
        frames,
        gaps: gaps
            .into_iter()
            .map(|(t, len)| (at(origin, t), Duration::from_nanos(len.max(0) as u64)))
            .collect(),
    })
}

/// What the writer wrote, in ns since the first piece's start: start, end, frames, gaps
/// (start, length).
type Written = (i64, i64, u64, Vec<(i64, i64)>);

/// Decides which frames are written.
struct Selector<'a> {
    from: i64,
    to: i64,
    /// Before the start: the frames from the last keyframe at or before `from`.
    pending: Vec<Frame>,
    started: bool,
    done: bool,
    out: Output<'a>,
}

impl Selector<'_> {
    fn feed(&mut self, f: Frame, cancel: &AtomicBool) -> Result<(), String> {
        if !self.started {
            if f.wall <= self.from {
                if f.key {
                    self.pending.clear();
                    self.pending.push(f);
                } else if !self.pending.is_empty() {
                    self.pending.push(f);
                }
                return Ok(());
            }
            if self.pending.is_empty() && !f.key {
                // No keyframe yet to start from.
                return Ok(());
            }
            self.started = true;
            for p in std::mem::take(&mut self.pending) {
                self.out.emit(p, cancel)?;
            }
        }
        if f.wall >= self.to && self.out.frames_seen > 0 {
            self.done = true;
            return Ok(());
        }
        self.out.emit(f, cancel)
    }

    fn finish(mut self, cancel: &AtomicBool) -> Result<Written, String> {
        // `from` is after the last frame: the last keyframe's group is what there is.
        for p in std::mem::take(&mut self.pending) {
            self.out.emit(p, cancel)?;
        }
        self.out.finish(cancel)
    }
}

/// Retimes frames and feeds the writer, one frame behind (a frame's duration is known when
/// the next one arrives).
struct Output<'a> {
    container: Container,
    path: &'a Path,
    origin: DateTime<Utc>,
    writer: Option<Writer>,
    start: i64,
    held: Option<Frame>,
    last_pts: Option<i64>,
    /// The last frame interval seen inside one piece.
    typical: i64,
    frames_seen: u64,
    pushed: u64,
    gaps: Vec<(i64, i64)>,
}

impl<'a> Output<'a> {
    fn new(container: Container, path: &'a Path, origin: DateTime<Utc>) -> Output<'a> {
        Output {
            container,
            path,
            origin,
            writer: None,
            start: 0,
            held: None,
            last_pts: None,
            typical: DEFAULT_FRAME,
            frames_seen: 0,
            pushed: 0,
            gaps: Vec::new(),
        }
    }

    fn emit(&mut self, f: Frame, cancel: &AtomicBool) -> Result<(), String> {
        if cancel.load(Ordering::Relaxed) {
            return Err(CANCELLED.into());
        }
        if self.writer.is_none() {
            let caps = f.caps.clone().unwrap_or_else(|| {
                H264_AU
                    .parse::<gst::Caps>()
                    .expect("static caps string parses")
            });
            self.writer = Some(Writer::new(
                self.container,
                self.path,
                &caps,
                at(self.origin, f.wall),
            )?);
            self.start = f.wall;
        }
        self.frames_seen += 1;
        if let Some(h) = self.held.take() {
            let delta = f.wall - h.wall;
            let dur = if h.piece == f.piece {
                self.typical = delta;
                delta
            } else {
                let end = h.wall + h.own_dur.unwrap_or(self.typical).min(delta);
                let gap = f.wall - end;
                if gap > GAP {
                    self.gaps.push((end, gap));
                    end - h.wall
                } else {
                    delta
                }
            };
            self.push(h, dur, cancel)?;
        }
        self.held = Some(f);
        Ok(())
    }

    fn push(&mut self, f: Frame, dur: i64, cancel: &AtomicBool) -> Result<(), String> {
        let mut pts = f.wall - self.start;
        if let Some(lp) = self.last_pts {
            if pts <= lp {
                pts = lp + NUDGE;
            }
        }
        self.last_pts = Some(pts);
        let mut buf = f.buf;
        {
            let b = buf.make_mut();
            let t = gst::ClockTime::from_nseconds(pts as u64);
            b.set_pts(t);
            b.set_dts(t);
            b.set_duration(gst::ClockTime::from_nseconds(dur.max(1) as u64));
            if self.pushed == 0 {
                b.set_flags(gst::BufferFlags::DISCONT);
            } else {
                b.unset_flags(gst::BufferFlags::DISCONT);
            }
        }
        let writer = self
            .writer
            .as_ref()
            .expect("writer exists once a frame was emitted");
        writer.push(buf, cancel)?;
        self.pushed += 1;
        Ok(())
    }

    fn finish(mut self, cancel: &AtomicBool) -> Result<Written, String> {
        let Some(h) = self.held.take() else {
            return Err("no keyframe in the segments: nothing to write".into());
        };
        let dur = h.own_dur.filter(|d| *d > 0).unwrap_or(self.typical);
        let end = h.wall + dur;
        self.push(h, dur, cancel)?;
        let writer = self
            .writer
            .take()
            .expect("writer exists once a frame was emitted");
        writer.finish(cancel)?;
        if self.container == Container::Mp4 {
            set_mp4_creation_time(self.path, at(self.origin, self.start)).map_err(|e| {
                format!(
                    "cannot set the creation time of {}: {e}",
                    self.path.display()
                )
            })?;
        }
        Ok((self.start, end, self.pushed, self.gaps))
    }
}

/// Reads one segment, calling `each` with every access unit until it returns `Ok(false)` or
/// the segment ends.
fn read_piece(
    path: &Path,
    cancel: &AtomicBool,
    mut each: impl FnMut(gst::Sample) -> Result<bool, String>,
) -> Result<(), String> {
    if cancel.load(Ordering::Relaxed) {
        return Err(CANCELLED.into());
    }
    if !path.is_file() {
        return Err("no such file".into());
    }
    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", path.to_string_lossy().as_ref());
    let demux = make("tsdemux")?;
    let parse = make("h264parse")?;
    let sink = make("appsink")?;
    sink.set_property("sync", false);
    sink.set_property("emit-signals", false);
    sink.set_property("max-buffers", 64u32);
    sink.set_property("caps", H264_AU.parse::<gst::Caps>().expect("static caps"));
    pipeline
        .add_many([&src, &demux, &parse, &sink])
        .map_err(|e| e.to_string())?;
    src.link(&demux).map_err(|e| e.to_string())?;
    parse.link(&sink).map_err(|e| e.to_string())?;
    let parse_sink = parse.static_pad("sink").expect("h264parse has a sink pad");
    demux.connect_pad_added(move |_, pad| {
        let is_h264 = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|c| c.structure(0).map(|s| s.name().starts_with("video/x-h264")))
            .unwrap_or(false);
        if is_h264 && !parse_sink.is_linked() {
            let _ = pad.link(&parse_sink);
        }
    });
    let guard = StateGuard(pipeline.clone().upcast());
    let bus = pipeline.bus().expect("a pipeline has a bus");
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        match bus.pop_filtered(&[gst::MessageType::Error]) {
            Some(m) => error_text(&m),
            None => "the pipeline did not start".to_string(),
        }
    })?;
    let timeout: u64 = 100_000_000; // 100 ms, in ns
    let mut last = Instant::now();
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(CANCELLED.into());
        }
        let sample = sink.emit_by_name::<Option<gst::Sample>>("try-pull-sample", &[&timeout]);
        match sample {
            Some(s) => {
                last = Instant::now();
                if !each(s)? {
                    break;
                }
            }
            None => {
                if let Some(m) = bus.pop_filtered(&[gst::MessageType::Error]) {
                    return Err(error_text(&m));
                }
                if sink.property::<bool>("eos") {
                    break;
                }
                if last.elapsed() > READ_STALL {
                    return Err(format!(
                        "no frame and no end of stream for {} s",
                        READ_STALL.as_secs()
                    ));
                }
            }
        }
    }
    drop(guard);
    Ok(())
}

/// Sets an element to NULL when dropped (error and cancel paths included).
struct StateGuard(gst::Element);

impl Drop for StateGuard {
    fn drop(&mut self) {
        let _ = self.0.set_state(gst::State::Null);
    }
}

/// The writer pipeline.
struct Writer {
    pipeline: gst::Pipeline,
    src: gst::Element,
    bus: gst::Bus,
    path: PathBuf,
    faststart_file: Option<PathBuf>,
}

impl Writer {
    fn new(
        container: Container,
        out: &Path,
        caps: &gst::Caps,
        created: DateTime<Utc>,
    ) -> Result<Writer, String> {
        let pipeline = gst::Pipeline::new();
        let src = make("appsrc")?;
        // The reader's caps (resolution, frame rate, profile) with the format pinned.
        let mut caps = caps.copy();
        {
            let c = caps.make_mut();
            c.set("stream-format", "byte-stream");
            c.set("alignment", "au");
        }
        src.set_property("caps", &caps);
        src.set_property("format", gst::Format::Time);
        src.set_property("is-live", false);
        src.set_property("block", false);
        src.set_property("max-bytes", 0u64);
        let parse = make("h264parse")?;
        let mux = make(container.muxer())?;
        let mut faststart_file = None;
        match container {
            Container::Mp4 => {
                mux.set_property("faststart", true);
                // The recorder's frames are timed by arrival (caps say framerate 0/1), from
                // which qtmux derives a nonsense track timescale (1/1215752192 seen): use
                // MPEG-TS's 90 kHz clock, which the input timestamps already have.
                mux.set_property("trak-timescale", 90_000u32);
                // The media data goes to a temporary file until the moov is written: next to
                // the output, not in /tmp (a small RAM disk on a Pi).
                let mut tmp = out.as_os_str().to_owned();
                tmp.push(".mdat-tmp");
                let tmp = PathBuf::from(tmp);
                mux.set_property("faststart-file", tmp.to_string_lossy().as_ref());
                faststart_file = Some(tmp);
            }
            Container::Mkv => {
                let t = created;
                let secs = t.second() as f64 + t.nanosecond().min(999_999_999) as f64 / 1e9;
                let dt = gst::glib::DateTime::from_utc(
                    t.year(),
                    t.month() as i32,
                    t.day() as i32,
                    t.hour() as i32,
                    t.minute() as i32,
                    secs,
                )
                .map_err(|e| format!("cannot represent {created}: {e}"))?;
                mux.set_property("creation-time", &dt);
            }
            Container::Ts => {}
        }
        let sink = make("filesink")?;
        sink.set_property("location", out.to_string_lossy().as_ref());
        sink.set_property("sync", false);
        pipeline
            .add_many([&src, &parse, &mux, &sink])
            .map_err(|e| e.to_string())?;
        gst::Element::link_many([&src, &parse, &mux, &sink])
            .map_err(|e| format!("cannot link the {} writer: {e}", container.muxer()))?;
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let writer = Writer {
            pipeline,
            src,
            bus,
            path: out.to_path_buf(),
            faststart_file,
        };
        writer
            .pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| writer.failure())?;
        Ok(writer)
    }

    fn failure(&self) -> String {
        let why = match self.bus.pop_filtered(&[gst::MessageType::Error]) {
            Some(m) => error_text(&m),
            None => "the pipeline failed".to_string(),
        };
        format!("cannot write {}: {why}", self.path.display())
    }

    fn check_bus(&self) -> Result<(), String> {
        if let Some(m) = self.bus.pop_filtered(&[gst::MessageType::Error]) {
            return Err(format!(
                "cannot write {}: {}",
                self.path.display(),
                error_text(&m)
            ));
        }
        Ok(())
    }

    fn push(&self, buf: gst::Buffer, cancel: &AtomicBool) -> Result<(), String> {
        // Back-pressure without `block=true` (which would hang if the writer failed).
        while self.src.property::<u64>("current-level-bytes") > WRITE_QUEUE {
            if cancel.load(Ordering::Relaxed) {
                return Err(CANCELLED.into());
            }
            if let Some(m) = self.bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(10),
                &[gst::MessageType::Error],
            ) {
                return Err(format!(
                    "cannot write {}: {}",
                    self.path.display(),
                    error_text(&m)
                ));
            }
        }
        self.check_bus()?;
        let flow = self
            .src
            .emit_by_name::<gst::FlowReturn>("push-buffer", &[&buf]);
        if flow != gst::FlowReturn::Ok {
            self.check_bus()?;
            return Err(format!(
                "cannot write {}: the writer refused a frame ({flow:?})",
                self.path.display()
            ));
        }
        Ok(())
    }

    fn finish(self, cancel: &AtomicBool) -> Result<(), String> {
        let flow = self
            .src
            .emit_by_name::<gst::FlowReturn>("end-of-stream", &[]);
        if flow != gst::FlowReturn::Ok {
            self.check_bus()?;
            return Err(format!(
                "cannot write {}: end of stream refused ({flow:?})",
                self.path.display()
            ));
        }
        let deadline = Instant::now() + WRITE_DRAIN;
        loop {
            if cancel.load(Ordering::Relaxed) {
                return Err(CANCELLED.into());
            }
            let msg = self.bus.timed_pop_filtered(
                gst::ClockTime::from_mseconds(100),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
            match msg {
                Some(m) if m.type_() == gst::MessageType::Eos => return Ok(()),
                Some(m) => {
                    return Err(format!(
                        "cannot write {}: {}",
                        self.path.display(),
                        error_text(&m)
                    ))
                }
                None if Instant::now() > deadline => {
                    return Err(format!(
                        "cannot write {}: not finished {} s after the last frame",
                        self.path.display(),
                        WRITE_DRAIN.as_secs()
                    ))
                }
                None => {}
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(tmp) = &self.faststart_file {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// Seconds between 1904-01-01 (the QuickTime epoch) and 1970-01-01.
const QT_EPOCH_OFFSET: i64 = 2_082_844_800;

/// Rewrites the creation and modification times of `mvhd`, every `tkhd` and every `mdhd` in
/// the file's `moov` box, in place (the box sizes do not change).
fn set_mp4_creation_time(path: &Path, t: DateTime<Utc>) -> std::io::Result<()> {
    let qt = (t.timestamp() + QT_EPOCH_OFFSET).max(0) as u64;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let mut pos = 0u64;
    while pos + 8 <= len {
        f.seek(SeekFrom::Start(pos))?;
        let mut head = [0u8; 16];
        f.read_exact(&mut head[..8])?;
        let size32 = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as u64;
        let (size, header) = match size32 {
            0 => (len - pos, 8),
            1 => {
                f.read_exact(&mut head[8..16])?;
                (
                    u64::from_be_bytes(head[8..16].try_into().expect("8 bytes")),
                    16,
                )
            }
            s => (s, 8),
        };
        if size < header || pos + size > len {
            break;
        }
        if &head[4..8] == b"moov" {
            let mut moov = vec![0u8; size as usize];
            f.seek(SeekFrom::Start(pos))?;
            f.read_exact(&mut moov)?;
            let patched = patch_times(&mut moov[header as usize..], qt);
            if patched == 0 {
                return Err(std::io::Error::other("no mvhd in the moov box"));
            }
            f.seek(SeekFrom::Start(pos))?;
            f.write_all(&moov)?;
            return f.sync_data();
        }
        pos += size;
    }
    Err(std::io::Error::other("no moov box"))
}

/// Patches the time fields in the boxes of `data`; returns how many boxes were patched.
fn patch_times(data: &mut [u8], qt: u64) -> usize {
    let mut n = 0;
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let size = u32::from_be_bytes(data[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        if size < 8 || pos + size > data.len() {
            break;
        }
        let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().expect("4 bytes");
        let body = &mut data[pos + 8..pos + size];
        match &kind {
            b"trak" | b"mdia" => n += patch_times(body, qt),
            b"mvhd" | b"tkhd" | b"mdhd" if !body.is_empty() => {
                if body[0] == 1 && body.len() >= 20 {
                    body[4..12].copy_from_slice(&qt.to_be_bytes());
                    body[12..20].copy_from_slice(&qt.to_be_bytes());
                    n += 1;
                } else if body[0] == 0 && body.len() >= 12 {
                    let v = (qt.min(u32::MAX as u64) as u32).to_be_bytes();
                    body[4..8].copy_from_slice(&v);
                    body[8..12].copy_from_slice(&v);
                    n += 1;
                }
            }
            _ => {}
        }
        pos += size;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::process::Command;

    /// The recorded segments every test reads: recording A (3 × 4 s, `ball`) starting at T0,
    /// then a 10 s gap, then recording B (2 × 4 s, `snow`) at T0 + 22 s. 10 fps, a keyframe
    /// every 2 s (20 frames).
    struct Fixture {
        _dir: tempfile::TempDir,
        pieces: Vec<Piece>,
        t0: DateTime<Utc>,
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 17, 6, 30, 0).unwrap()
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            init().unwrap();
            let dir = tempfile::tempdir().unwrap();
            record(dir.path(), "a", "ball", 120);
            record(dir.path(), "b", "snow", 80);
            let t0 = t0();
            let mut pieces = Vec::new();
            for (name, offset) in [("a00", 0), ("a01", 4), ("a02", 8), ("b00", 22), ("b01", 26)] {
                pieces.push(Piece {
                    path: dir.path().join(format!("{name}.ts")),
                    start: t0 + chrono::Duration::seconds(offset),
                });
            }
            Fixture {
                _dir: dir,
                pieces,
                t0,
            }
        })
    }

    /// Records like seg-cam does (x264 zerolatency, SPS/PPS on every keyframe, mpegtsmux via
    /// splitmuxsink), into 4 s segments `<prefix>NN.ts`.
    fn record(dir: &Path, prefix: &str, pattern: &str, frames: u32) {
        let desc = format!(
            "videotestsrc is-live=false num-buffers={frames} pattern={pattern} \
             ! video/x-raw,format=I420,width=320,height=240,framerate=10/1 \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=20 bitrate=500 \
             ! h264parse config-interval=-1 \
             ! splitmuxsink muxer-factory=mpegtsmux max-size-time=4000000000 location={}/{prefix}%02d.ts",
            dir.display()
        );
        let p = gst::parse::launch(&desc).unwrap();
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        let m = bus
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(60),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .expect("recording finished");
        assert_eq!(m.type_(), gst::MessageType::Eos, "{}", error_text(&m));
        p.set_state(gst::State::Null).unwrap();
    }

    fn secs(t: DateTime<Utc>, s: f64) -> DateTime<Utc> {
        t + chrono::Duration::milliseconds((s * 1000.0) as i64)
    }

    fn run_join(
        name: &str,
        container: Container,
        from: f64,
        to: f64,
    ) -> (tempfile::TempDir, PathBuf, Joined) {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let out = dir
            .path()
            .join(format!("{name}.{}.part", container.extension()));
        let joined = join(
            &f.pieces,
            secs(f.t0, from),
            secs(f.t0, to),
            container,
            &out,
            &AtomicBool::new(false),
        )
        .unwrap();
        (dir, out, joined)
    }

    fn probe(path: &Path) -> serde_json::Value {
        let o = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-show_entries"])
            .arg("stream=nb_read_frames,codec_name:format=duration:format_tags=creation_time")
            .args(["-of", "json"])
            .arg(path)
            .output()
            .expect("ffprobe runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    }

    /// `ffmpeg -f null` decodes the whole file; anything on stderr is a decoding error.
    fn assert_decodes(path: &Path, format: &str) {
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-f", format, "-i"])
            .arg(path)
            .args(["-f", "null", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(o.status.success());
        assert_eq!(String::from_utf8_lossy(&o.stderr), "", "{}", path.display());
    }

    /// The slice NAL units (types 1 and 5) of the file's H.264 stream, grouped by frame.
    fn slices_by_frame(path: &Path, format: &str) -> Vec<Vec<u8>> {
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-f", format, "-i"])
            .arg(path)
            .args(["-map", "0:v:0", "-c", "copy", "-bsf:v", "h264_mp4toannexb"])
            .args(["-f", "h264", "-"])
            .output()
            .expect("ffmpeg runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let data = o.stdout;
        // Split on 00 00 01 start codes.
        let mut starts = Vec::new();
        let mut i = 0;
        while i + 3 <= data.len() {
            if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
                starts.push(i + 3);
                i += 3;
            } else {
                i += 1;
            }
        }
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for (k, &s) in starts.iter().enumerate() {
            let mut e = starts.get(k + 1).map_or(data.len(), |n| n - 3);
            while e > s && data[e - 1] == 0 {
                e -= 1; // the leading zero of a 4-byte start code, or trailing zeros
            }
            let nal = &data[s..e];
            let kind = nal.first().map(|b| b & 0x1f);
            if !matches!(kind, Some(1) | Some(5)) {
                continue;
            }
            // first_mb_in_slice == 0 (ue(v) "1") starts a new frame.
            let new_frame = nal.get(1).is_some_and(|b| b & 0x80 != 0);
            if new_frame || frames.is_empty() {
                frames.push(Vec::new());
            }
            frames.last_mut().unwrap().extend_from_slice(nal);
        }
        frames
    }

    fn input_frames(pieces: &[Piece]) -> Vec<Vec<Vec<u8>>> {
        pieces
            .iter()
            .map(|p| slices_by_frame(&p.path, "mpegts"))
            .collect()
    }

    fn format_of(c: Container) -> &'static str {
        match c {
            Container::Mp4 => "mp4",
            Container::Ts => "mpegts",
            Container::Mkv => "matroska",
        }
    }

    fn duration_of(v: &serde_json::Value) -> f64 {
        v["format"]["duration"].as_str().unwrap().parse().unwrap()
    }

    fn frames_of(v: &serde_json::Value) -> u64 {
        v["streams"][0]["nb_read_frames"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    fn check_creation_time(v: &serde_json::Value, c: Container, start: DateTime<Utc>) {
        let tag = v["format"]["tags"]["creation_time"].as_str();
        match c {
            Container::Ts => assert_eq!(tag, None),
            _ => {
                let got = DateTime::parse_from_rfc3339(tag.expect("creation_time tag"))
                    .unwrap()
                    .with_timezone(&Utc);
                // MP4 stores whole seconds.
                assert_eq!(got.timestamp(), start.timestamp(), "{c:?}");
                if c == Container::Mkv {
                    assert_eq!(got.timestamp_micros(), start.timestamp_micros());
                }
            }
        }
    }

    #[test]
    fn container_from_path_and_extension() {
        assert_eq!(
            Container::from_path(Path::new("a/b.MP4")),
            Some(Container::Mp4)
        );
        assert_eq!(Container::from_path(Path::new("b.ts")), Some(Container::Ts));
        assert_eq!(
            Container::from_path(Path::new("b.mkv")),
            Some(Container::Mkv)
        );
        assert_eq!(Container::from_path(Path::new("b.avi")), None);
        assert_eq!(Container::from_path(Path::new("mp4")), None);
        for c in [Container::Mp4, Container::Ts, Container::Mkv] {
            let p = PathBuf::from(format!("x.{}", c.extension()));
            assert_eq!(Container::from_path(&p), Some(c));
        }
    }

    /// Everything, in each container: every frame of the input, byte for byte, the gap kept.
    #[test]
    fn whole_range_copies_every_frame_in_each_container() {
        let f = fixture();
        let inputs: Vec<Vec<u8>> = input_frames(&f.pieces).into_iter().flatten().collect();
        assert_eq!(inputs.len(), 200);
        for c in [Container::Mp4, Container::Ts, Container::Mkv] {
            let (_dir, out, j) = run_join("all", c, -60.0, 3600.0);
            assert_eq!(j.frames, 200, "{c:?}");
            assert_eq!(j.start, f.t0, "{c:?}");
            assert_eq!(j.end, secs(f.t0, 30.0), "{c:?}");
            assert_eq!(j.gaps.len(), 1, "{c:?}: {:?}", j.gaps);
            assert_eq!(j.gaps[0].0, secs(f.t0, 12.0));
            assert_eq!(j.gaps[0].1, Duration::from_secs(10));
            assert_decodes(&out, format_of(c));
            let v = probe(&out);
            assert_eq!(v["streams"][0]["codec_name"], "h264");
            assert_eq!(frames_of(&v), 200, "{c:?}");
            let d = duration_of(&v);
            assert!((d - 30.0).abs() <= 0.2, "{c:?}: duration {d}");
            check_creation_time(&v, c, j.start);
            let got = slices_by_frame(&out, format_of(c));
            assert_eq!(got.len(), 200, "{c:?}");
            assert!(
                got == inputs,
                "{c:?}: the slice data differs from the input"
            );
        }
    }

    /// A range in the middle starts on the keyframe before `from` and stops with the last
    /// frame before `to`.
    #[test]
    fn middle_range_cuts_at_keyframes() {
        let f = fixture();
        let per_piece = input_frames(&f.pieces);
        // Keyframes every 2 s: from 7.0 → the keyframe at 6.0 (piece a01, frame 20); to 23.0
        // → up to the frame at 22.9 (piece b00, frame 9).
        let mut expected: Vec<Vec<u8>> = per_piece[1][20..].to_vec();
        expected.extend_from_slice(&per_piece[2]);
        expected.extend_from_slice(&per_piece[3][..10]);
        for c in [Container::Mp4, Container::Mkv, Container::Ts] {
            let (_dir, out, j) = run_join("mid", c, 7.0, 23.0);
            assert_eq!(j.start, secs(f.t0, 6.0), "{c:?}");
            assert_eq!(j.end, secs(f.t0, 23.0), "{c:?}");
            assert_eq!(j.frames, 70, "{c:?}");
            assert_eq!(j.gaps, vec![(secs(f.t0, 12.0), Duration::from_secs(10))]);
            assert_decodes(&out, format_of(c));
            let v = probe(&out);
            assert_eq!(frames_of(&v), 70, "{c:?}");
            let d = duration_of(&v);
            // Asked 16 s; one keyframe interval (at most 2 s) earlier at the start.
            assert!(
                (d - 17.0).abs() <= 0.2 && (d - 16.0).abs() <= 2.0,
                "{c:?}: {d}"
            );
            check_creation_time(&v, c, j.start);
            assert!(
                slices_by_frame(&out, format_of(c)) == expected,
                "{c:?}: not the input's frames 6.0..23.0"
            );
        }
    }

    /// `from` on a keyframe starts there and `to` half a second later gives five frames; the
    /// range inside one piece reads only that piece's frames.
    #[test]
    fn range_within_one_piece() {
        let f = fixture();
        let (_dir, out, j) = run_join("one", Container::Mkv, 26.0, 26.5);
        assert_eq!(j.start, secs(f.t0, 26.0));
        assert_eq!(j.end, secs(f.t0, 26.5));
        assert_eq!(j.frames, 5);
        assert!(j.gaps.is_empty());
        assert_decodes(&out, "matroska");
        assert_eq!(frames_of(&probe(&out)), 5);
    }

    /// A piece whose start overlaps the previous piece's last frame is pushed to one frame
    /// interval after it.
    #[test]
    fn overlapping_pieces_stay_increasing() {
        let f = fixture();
        let pieces = vec![
            f.pieces[0].clone(),
            Piece {
                path: f.pieces[1].path.clone(),
                start: secs(f.t0, 3.5),
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("o.mp4.part");
        let j = join(
            &pieces,
            f.t0,
            secs(f.t0, 60.0),
            Container::Mp4,
            &out,
            &AtomicBool::new(false),
        )
        .unwrap();
        assert_eq!(j.frames, 80);
        assert!(j.gaps.is_empty());
        // a00's last frame is at 3.9 s: a01 runs from 4.0 s (one frame later) for 4 s.
        assert_eq!(j.end, secs(f.t0, 8.0));
        assert_decodes(&out, "mp4");
        assert_eq!(frames_of(&probe(&out)), 80);
    }

    #[test]
    fn cancel_stops_with_an_error() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("x.mp4.part");
        let cancel = AtomicBool::new(true);
        let err = join(
            &f.pieces,
            f.t0,
            secs(f.t0, 30.0),
            Container::Mp4,
            &out,
            &cancel,
        )
        .unwrap_err();
        assert_eq!(err, "cancelled");
        // The caller deletes the part; no faststart temporary is left behind.
        let _ = std::fs::remove_file(&out);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_bad_segment_is_named() {
        let f = fixture();
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.ts");
        std::fs::write(&bad, b"not a transport stream at all").unwrap();
        let mut pieces = f.pieces[..1].to_vec();
        pieces.push(Piece {
            path: bad.clone(),
            start: secs(f.t0, 4.0),
        });
        let err = join(
            &pieces,
            f.t0,
            secs(f.t0, 30.0),
            Container::Ts,
            &dir.path().join("o.ts.part"),
            &AtomicBool::new(false),
        );
        // tsdemux: "No program activated before EOS".
        let err = err.unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read segment {}: ", bad.display())),
            "{err}"
        );
        let missing = dir.path().join("gone.ts");
        let err = join(
            &[Piece {
                path: missing.clone(),
                start: f.t0,
            }],
            f.t0,
            f.t0,
            Container::Ts,
            &dir.path().join("o2.ts.part"),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(
            err.starts_with(&format!("cannot read segment {}", missing.display())),
            "{err}"
        );
    }
}
