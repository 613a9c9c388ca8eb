//! The recorder's decisions, without I/O: what a crash-left partial segment is worth, which
//! mtime a closing segment gets, where the next split falls, why a camera session ended, how
//! fast frames arrive and what the `STATUS=` line says.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// MPEG-TS packet length (mpegtsmux writes plain 188-byte packets, no M2TS time codes).
pub const TS_PACKET: u64 = 188;
const TS_SYNC: u8 = 0x47;

/// How many bytes of a partial segment [`partial_verdict`] needs to see.
pub const PARTIAL_HEAD: usize = 64 * 1024;

/// What to do with a `.part` file found at start or by `seg-cam finalize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartialVerdict {
    /// Cut the file to `len` bytes (whole TS packets) and hand it off.
    Keep { len: u64 },
    /// Nothing decodable: delete it; `why` says so in the journal.
    Delete { why: String },
}

/// Judges a partial segment from its length and its first bytes (up to [`PARTIAL_HEAD`]).
///
/// It is kept when it starts with a TS sync byte and holds the start of at least one video
/// PES packet (stream id 0xE0..0xEF) within the whole packets seen: then a decoder gets at
/// least the start of a frame. A torn last packet is cut off.
pub fn partial_verdict(len: u64, head: &[u8]) -> PartialVerdict {
    if len == 0 {
        return PartialVerdict::Delete {
            why: "empty".into(),
        };
    }
    let whole = len - len % TS_PACKET;
    if whole == 0 {
        return PartialVerdict::Delete {
            why: format!("{len} bytes: less than one TS packet"),
        };
    }
    if head.first() != Some(&TS_SYNC) {
        return PartialVerdict::Delete {
            why: "not an MPEG-TS stream (no sync byte at the start)".into(),
        };
    }
    let seen = (head.len() as u64).min(whole) as usize;
    let has_video = head[..seen]
        .chunks_exact(TS_PACKET as usize)
        .any(starts_video_pes);
    if has_video {
        PartialVerdict::Keep { len: whole }
    } else {
        PartialVerdict::Delete {
            why: format!("{len} bytes without a video frame"),
        }
    }
}

/// Whether a TS packet starts a video PES packet.
fn starts_video_pes(p: &[u8]) -> bool {
    if p.len() < 4 || p[0] != TS_SYNC || p[1] & 0x40 == 0 {
        return false;
    }
    let payload = match (p[3] >> 4) & 0x3 {
        0b01 => 4,
        0b11 => 5 + usize::from(p[4]),
        _ => return false,
    };
    p.get(payload..payload + 4)
        .is_some_and(|h| h[..3] == [0, 0, 1] && (0xE0..=0xEF).contains(&h[3]))
}

/// How far back a segment's mtime may lie behind the last one handed off and still be bumped
/// past it. Further back, the clock was stepped back: the mtime stays (the uploader gives a
/// repeated key a `-2` variant), rather than dragging every later segment into the future.
pub const MTIME_BUMP_WINDOW_S: i64 = 10;

/// The mtime (Unix seconds) to give a segment whose file says `actual`, when the last segment
/// handed off got `last`: object keys have one-second resolution, so two segments never share
/// a second. `None`: keep the file's own mtime.
pub fn unique_mtime(actual: i64, last: Option<i64>) -> Option<i64> {
    match last {
        Some(l) if actual <= l && l - actual < MTIME_BUMP_WINDOW_S => Some(l + 1),
        _ => None,
    }
}

/// Where segments are split: a grid of `seg` from the first frame's running time, so segment
/// lengths average exactly `seg` whatever the frame rate.
#[derive(Debug, Clone)]
pub struct SplitGrid {
    seg: Duration,
    next: Option<Duration>,
}

impl SplitGrid {
    pub fn new(seg: Duration) -> SplitGrid {
        SplitGrid { seg, next: None }
    }

    /// Called for every frame (running time `rt`): `true` when this frame must start a new
    /// segment (be a keyframe and the split point).
    pub fn frame(&mut self, rt: Duration) -> bool {
        match self.next {
            None => {
                self.next = Some(rt + self.seg);
                false
            }
            Some(n) if rt >= n => {
                let mut n = n;
                while n <= rt {
                    n += self.seg;
                }
                self.next = Some(n);
                true
            }
            Some(_) => false,
        }
    }
}

/// Frame-rate estimate over a sliding window of (seconds, frame counter) samples.
#[derive(Debug, Clone, Default)]
pub struct FpsMeter {
    samples: VecDeque<(f64, u64)>,
}

/// The window [`FpsMeter`] averages over, in seconds.
pub const FPS_WINDOW_S: f64 = 5.0;

impl FpsMeter {
    /// Adds a sample: `t` seconds on any monotonic scale, `frames` a running total.
    pub fn sample(&mut self, t: f64, frames: u64) {
        if self.samples.back().is_some_and(|(_, f)| frames < *f) {
            self.samples.clear();
        }
        self.samples.push_back((t, frames));
        while self
            .samples
            .front()
            .is_some_and(|(t0, _)| t - t0 > FPS_WINDOW_S)
        {
            self.samples.pop_front();
        }
    }

    /// Frames per second, `None` before two samples half a second apart.
    pub fn fps(&self) -> Option<f64> {
        let (t0, f0) = *self.samples.front()?;
        let (t1, f1) = *self.samples.back()?;
        (t1 - t0 >= 0.5).then(|| (f1 - f0) as f64 / (t1 - t0))
    }

    pub fn reset(&mut self) {
        self.samples.clear();
    }
}

/// Why a camera session ended (or never started): the words STATUS= and the journal use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// No TCP connection: `detail` is the OS's reason ("connection refused").
    Unreachable { detail: String },
    /// The camera answered with an HTTP error status.
    HttpStatus { code: u32 },
    /// 200, but not a multipart stream (a captive portal, the wrong URL, other firmware).
    NotAStream { content_type: String },
    /// The camera closed the stream (souphttpsrc's EOS).
    Closed,
    /// The socket stayed open but no part arrived for `secs`.
    Stalled { secs: u32 },
    /// Parts arrived, but none decoded for `secs`.
    Undecodable { secs: u32 },
    /// Connected, but no frame within `secs`.
    NoFirstFrame { secs: u32 },
    /// The RAM directory has no room.
    DiskFull { detail: String },
    /// Anything else, with GStreamer's words.
    Other { detail: String },
}

impl Fault {
    /// A stable short key for repeat-limiting log lines.
    pub fn key(&self) -> &'static str {
        match self {
            Fault::Unreachable { .. } => "unreachable",
            Fault::HttpStatus { .. } => "http",
            Fault::NotAStream { .. } => "not-a-stream",
            Fault::Closed => "closed",
            Fault::Stalled { .. } => "stalled",
            Fault::Undecodable { .. } => "undecodable",
            Fault::NoFirstFrame { .. } => "no-first-frame",
            Fault::DiskFull { .. } => "disk-full",
            Fault::Other { .. } => "other",
        }
    }
}

fn http_reason(code: u32) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Unreachable { detail } => write!(f, "camera unreachable ({detail})"),
            Fault::HttpStatus { code } => match http_reason(*code) {
                "" => write!(f, "camera answered HTTP {code}"),
                r => write!(f, "camera answered HTTP {code} {r}"),
            },
            Fault::NotAStream { content_type } => {
                write!(f, "camera sent {content_type} instead of an MJPEG stream")
            }
            Fault::Closed => write!(f, "camera closed the stream"),
            Fault::Stalled { secs } => write!(f, "camera stalled (no frame for {secs} s)"),
            Fault::Undecodable { secs } => {
                write!(
                    f,
                    "camera sends corrupt JPEG frames (none decoded for {secs} s)"
                )
            }
            Fault::NoFirstFrame { secs } => {
                write!(f, "camera sent no frame within {secs} s of connecting")
            }
            Fault::DiskFull { detail } => write!(f, "RAM disk full ({detail})"),
            Fault::Other { detail } => write!(f, "stream error ({detail})"),
        }
    }
}

/// What a session saw, for [`session_fault`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionReport {
    /// The HTTP status souphttpsrc reported (0 or `None`: no answer).
    pub http_status: Option<u32>,
    pub content_type: Option<String>,
    /// JPEG parts out of the demuxer.
    pub parts: u64,
    /// Decoded frames.
    pub frames: u64,
    /// The recorder's own timer fired: no decoded frame for this many seconds.
    pub timed_out_s: Option<u32>,
    /// Parts kept arriving while the timer ran (frames did not decode).
    pub parts_while_timed_out: bool,
    /// A write failed for lack of space.
    pub disk_full: Option<String>,
    /// The first GStreamer error's text.
    pub error: Option<String>,
    /// Why a TCP connection to the camera failed, when the recorder checked after a failure
    /// without an HTTP answer.
    pub connect_error: Option<String>,
}

/// Decides why a session ended.
pub fn session_fault(r: &SessionReport) -> Fault {
    if let Some(detail) = &r.disk_full {
        return Fault::DiskFull {
            detail: detail.clone(),
        };
    }
    let answered = r.http_status.is_some_and(|c| c != 0);
    if let Some(code) = r.http_status.filter(|c| *c >= 300) {
        return Fault::HttpStatus { code };
    }
    if let Some(ct) = &r.content_type {
        if answered && !ct.to_ascii_lowercase().starts_with("multipart/") {
            let ct = ct.split(';').next().unwrap_or(ct).trim();
            return Fault::NotAStream {
                content_type: ct.to_string(),
            };
        }
    }
    if let Some(secs) = r.timed_out_s {
        return if r.frames == 0 && r.parts == 0 {
            Fault::NoFirstFrame { secs }
        } else if r.parts_while_timed_out {
            Fault::Undecodable { secs }
        } else {
            Fault::Stalled { secs }
        };
    }
    if !answered {
        if let Some(detail) = &r.connect_error {
            return Fault::Unreachable {
                detail: detail.clone(),
            };
        }
    }
    match &r.error {
        Some(e) if !answered => Fault::Unreachable { detail: e.clone() },
        Some(e) if r.frames == 0 => Fault::Other { detail: e.clone() },
        _ => Fault::Closed,
    }
}

/// What the recorder is doing, for `STATUS=`.
#[derive(Debug, Clone, PartialEq)]
pub enum Activity {
    Connecting {
        url: String,
    },
    Recording {
        fps: Option<f64>,
        /// The segment being written and how long it has been open.
        segment: Option<(String, u64)>,
        segments_last_hour: usize,
    },
    Closing {
        why: String,
    },
    Waiting {
        fault: Fault,
        retry_in_s: u64,
    },
    Stopping,
}

impl fmt::Display for Activity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activity::Connecting { url } => write!(f, "connecting to {url}"),
            Activity::Recording {
                fps,
                segment,
                segments_last_hour,
            } => {
                match fps {
                    Some(fps) => write!(f, "recording {fps:.1} fps")?,
                    None => write!(f, "recording")?,
                }
                if let Some((name, age)) = segment {
                    write!(f, ", segment {name} ({age} s)")?;
                }
                let s = if *segments_last_hour == 1 { "" } else { "s" };
                write!(f, ", {segments_last_hour} segment{s} in the last hour")
            }
            Activity::Closing { why } => write!(f, "closing the segment: {why}"),
            Activity::Waiting { fault, retry_in_s } => {
                write!(f, "{fault}, retry in {retry_in_s} s")
            }
            Activity::Stopping => write!(f, "stopping: closing the last segment"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TS packet: `pusi` payload-unit-start, `afc` adaptation field control, `payload`.
    fn packet(pusi: bool, afc: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![TS_SYNC, if pusi { 0x40 } else { 0 } | 0x01, 0x00, afc << 4];
        if afc == 0b11 {
            p.extend([1, 0]);
        }
        p.extend_from_slice(payload);
        p.resize(TS_PACKET as usize, 0xff);
        p
    }

    fn pat() -> Vec<u8> {
        packet(true, 0b01, &[0, 0, 0xb0, 0x0d])
    }

    fn video_pes(afc: u8) -> Vec<u8> {
        packet(true, afc, &[0, 0, 1, 0xE0, 0, 0])
    }

    #[test]
    fn partials_are_judged_by_content() {
        let mut good = pat();
        good.extend(video_pes(0b11));
        good.extend(packet(false, 0b01, &[1, 2, 3]));
        let audio_only = [pat(), packet(true, 0b01, &[0, 0, 1, 0xC0])].concat();
        type Case = (&'static str, u64, Vec<u8>, Result<u64, &'static str>);
        let cases: Vec<Case> = vec![
            ("empty", 0, vec![], Err("empty")),
            (
                "tiny",
                100,
                vec![TS_SYNC; 100],
                Err("less than one TS packet"),
            ),
            ("whole", 3 * 188, good.clone(), Ok(3 * 188)),
            ("torn tail", 3 * 188 + 50, good.clone(), Ok(3 * 188)),
            (
                "head only",
                10 * 188,
                good[..2 * 188].to_vec(),
                Ok(10 * 188),
            ),
            ("pat only", 188, pat(), Err("without a video frame")),
            ("audio", 376, audio_only, Err("without a video frame")),
            ("not ts", 376, vec![0u8; 376], Err("no sync byte")),
            (
                "video pes plain",
                376,
                [pat(), video_pes(0b01)].concat(),
                Ok(376),
            ),
            // The PES start sits in a torn last packet: nothing decodable.
            (
                "pes in torn",
                200,
                [pat(), video_pes(0b01)].concat(),
                Err("without"),
            ),
        ];
        for (name, len, head, want) in cases {
            let got = partial_verdict(len, &head);
            match (want, got) {
                (Ok(l), PartialVerdict::Keep { len }) => assert_eq!(len, l, "{name}"),
                (Err(w), PartialVerdict::Delete { why }) => {
                    assert!(why.contains(w), "{name}: {why}")
                }
                (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn mtimes_never_share_a_second() {
        for (actual, last, want) in [
            (100, None, None),
            (100, Some(99), None),
            (100, Some(100), Some(101)),
            (100, Some(101), Some(102)),
            (100, Some(109), Some(110)),
            // Clock stepped back: keep the real time.
            (100, Some(110), None),
            (100, Some(5000), None),
        ] {
            assert_eq!(unique_mtime(actual, last), want, "{actual} after {last:?}");
        }
        // A burst of segments closing in one second gets consecutive seconds.
        let mut last = None;
        let mut got = vec![];
        for actual in [50, 50, 50, 51, 60] {
            let m = unique_mtime(actual, last).unwrap_or(actual);
            got.push(m);
            last = Some(m);
        }
        assert_eq!(got, [50, 51, 52, 53, 60]);
    }

    #[test]
    fn split_grid_follows_the_first_frame() {
        let ms = Duration::from_millis;
        let mut g = SplitGrid::new(Duration::from_secs(4));
        let splits: Vec<u64> = (0..130)
            .map(|i| ms(500 + i * 100))
            .filter(|t| g.frame(*t))
            .map(|t| t.as_millis() as u64)
            .collect();
        assert_eq!(splits, [4500, 8500, 12500]);
        // A gap longer than a segment splits once and keeps the grid.
        let mut g = SplitGrid::new(Duration::from_secs(4));
        assert!(!g.frame(ms(0)));
        assert!(g.frame(ms(9_100)));
        assert!(!g.frame(ms(11_900)));
        assert!(g.frame(ms(12_000)));
    }

    #[test]
    fn fps_over_a_window() {
        let mut m = FpsMeter::default();
        assert_eq!(m.fps(), None);
        m.sample(0.0, 0);
        m.sample(0.2, 3);
        assert_eq!(m.fps(), None);
        for s in 1..=10 {
            m.sample(s as f64, s * 15);
        }
        assert_eq!(m.fps(), Some(15.0));
        m.sample(11.0, 2); // a new session restarts the counter
        assert_eq!(m.fps(), None);
    }

    fn report() -> SessionReport {
        SessionReport::default()
    }

    #[test]
    fn session_faults_in_words() {
        let cases: Vec<(SessionReport, &str)> = vec![
            (
                SessionReport {
                    http_status: Some(0),
                    error: Some("Internal data stream error.".into()),
                    connect_error: Some("connection refused".into()),
                    ..report()
                },
                "camera unreachable (connection refused)",
            ),
            (
                SessionReport {
                    http_status: Some(404),
                    error: Some("Not Found".into()),
                    ..report()
                },
                "camera answered HTTP 404 Not Found",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    content_type: Some("text/html; charset=utf-8".into()),
                    error: Some("Could not demultiplex stream.".into()),
                    ..report()
                },
                "camera sent text/html instead of an MJPEG stream",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    content_type: Some("multipart/x-mixed-replace;boundary=1".into()),
                    parts: 40,
                    frames: 40,
                    ..report()
                },
                "camera closed the stream",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    parts: 40,
                    frames: 40,
                    timed_out_s: Some(5),
                    ..report()
                },
                "camera stalled (no frame for 5 s)",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    parts: 90,
                    frames: 40,
                    timed_out_s: Some(5),
                    parts_while_timed_out: true,
                    ..report()
                },
                "camera sends corrupt JPEG frames (none decoded for 5 s)",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    timed_out_s: Some(5),
                    ..report()
                },
                "camera sent no frame within 5 s of connecting",
            ),
            (
                SessionReport {
                    http_status: Some(200),
                    frames: 10,
                    disk_full: Some("No space left on device".into()),
                    ..report()
                },
                "RAM disk full (No space left on device)",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(session_fault(&r).to_string(), want, "{r:?}");
        }
    }

    #[test]
    fn status_lines() {
        let rec = Activity::Recording {
            fps: Some(14.83),
            segment: Some(("seg-1760271142000-0a3f.ts".into(), 12)),
            segments_last_hour: 3,
        };
        assert_eq!(
            rec.to_string(),
            "recording 14.8 fps, segment seg-1760271142000-0a3f.ts (12 s), 3 segments in the last hour"
        );
        let wait = Activity::Waiting {
            fault: Fault::Unreachable {
                detail: "connection refused".into(),
            },
            retry_in_s: 8,
        };
        assert_eq!(
            wait.to_string(),
            "camera unreachable (connection refused), retry in 8 s"
        );
        let one = Activity::Recording {
            fps: None,
            segment: None,
            segments_last_hour: 1,
        };
        assert_eq!(one.to_string(), "recording, 1 segment in the last hour");
    }
}
