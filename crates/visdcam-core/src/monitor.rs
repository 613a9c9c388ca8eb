//! What the Pi looks like at one instant, as data (`Snapshot`: the daemons' counters files,
//! the units' states, the RAM disk, the clock), and its Prometheus text exposition
//! (`render_metrics`). `visdcam metrics`, `visdcam alert check` and `visdcam top` gather one
//! snapshot each; the reading is theirs, every figure's meaning is here.

use std::fmt::Write as _;

use crate::budget::RecorderStats;
use crate::upload::{Stats, LATENCY_BUCKETS_S};

/// A recorder's counters file older than this means no recorder is running.
pub const RECORDER_STALE_S: i64 = 30;

/// One unit as systemd reports it over D-Bus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    pub unit_file_state: String,
    /// `NRestarts`: automatic restarts since the unit was last started by hand.
    pub restarts: Option<u32>,
}

impl UnitState {
    pub fn failed(&self) -> bool {
        self.active_state == "failed"
    }

    /// Wanted: running, or enabled to run (a camera a person stopped and disabled is not
    /// watched).
    pub fn wanted(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        ) || self.unit_file_state.starts_with("enabled")
            || self.failed()
    }
}

/// One camera.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CameraSnapshot {
    pub camera: String,
    /// The camera's configuration does not load (the rest is then mostly empty).
    pub config_error: Option<String>,
    /// The recorder's counters file, if present.
    pub recorder: Option<RecorderStats>,
    /// The uploader's counters file, if present.
    pub uploader: Option<Stats>,
    /// Bytes of the camera's files on the RAM disk and its budget.
    pub ram_bytes: u64,
    pub budget_bytes: u64,
    /// `RATE_KBPS` in bytes per second (0: unlimited).
    pub rate_limit_bps: u64,
    /// The encoder and its preset (`x264enc`, `veryfast`).
    pub encoder: String,
    pub encoder_preset: String,
    /// `seg@` and `uploader@` (empty without a system bus).
    pub recorder_unit: Option<UnitState>,
    pub uploader_unit: Option<UnitState>,
}

impl CameraSnapshot {
    /// Whether frames arrive now: the recorder's file is fresh and says so.
    pub fn recording(&self, now_unix: i64) -> bool {
        self.recorder
            .is_some_and(|r| r.recording && now_unix - r.updated_unix <= RECORDER_STALE_S)
    }

    /// Since when no frames arrive, if they do not: the recorder's own account while it runs,
    /// else (it stopped or is stuck) its last frame or last word. `None` when recording, or
    /// when nothing is known (no file yet): the caller counts from when it first saw that.
    pub fn down_since(&self, now_unix: i64) -> Option<Option<i64>> {
        if self.recording(now_unix) {
            return None;
        }
        Some(self.recorder.and_then(|r| {
            [r.down_since_unix, r.last_frame_unix, r.updated_unix]
                .into_iter()
                .find(|t| *t > 0)
        }))
    }

    /// Whether the camera is meant to record: its units are wanted, or nothing is known of
    /// them (no system bus).
    pub fn watched(&self) -> bool {
        match (&self.recorder_unit, &self.uploader_unit) {
            (None, None) => true,
            (r, u) => {
                r.as_ref().is_some_and(UnitState::wanted)
                    || u.as_ref().is_some_and(UnitState::wanted)
            }
        }
    }
}

/// The RAM disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskSnapshot {
    pub path: String,
    pub size_bytes: u64,
    pub free_bytes: u64,
    /// A tmpfs/ramfs is mounted there (else segments would go to the SD card).
    pub mounted: bool,
}

impl DiskSnapshot {
    pub fn used_percent(&self) -> u64 {
        (self.size_bytes.saturating_sub(self.free_bytes) * 100)
            .checked_div(self.size_bytes)
            .unwrap_or(0)
    }
}

/// One net-shaper class's counters (`tc -s class show`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShaperClass {
    pub class: String,
    pub sent_bytes: u64,
    pub sent_packets: u64,
    pub dropped: u64,
    pub overlimits: u64,
}

/// Everything at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub now_unix: i64,
    pub host: String,
    pub cameras: Vec<CameraSnapshot>,
    pub disk: Option<DiskSnapshot>,
    /// `None`: unknown.
    pub clock_synced: Option<bool>,
    /// Whether the system bus answered (units are unknown otherwise).
    pub systemd: bool,
    /// net-shaper, daynight and the alert checker.
    pub other_units: Vec<UnitState>,
    pub shaper_classes: Vec<ShaperClass>,
}

impl Snapshot {
    /// Every unit known, cameras' first.
    pub fn units(&self) -> impl Iterator<Item = &UnitState> {
        self.cameras
            .iter()
            .flat_map(|c| c.recorder_unit.iter().chain(c.uploader_unit.iter()))
            .chain(self.other_units.iter())
    }
}

/// A label value escaped for the exposition format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Builds the exposition: each family's HELP and TYPE once, then its samples.
struct Expo {
    out: String,
}

impl Expo {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", esc(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one sample per camera that has the value.
    fn per_camera<T: std::fmt::Display>(
        &mut self,
        s: &Snapshot,
        name: &str,
        kind: &str,
        help: &str,
        value: impl Fn(&CameraSnapshot) -> Option<T>,
    ) {
        let values: Vec<(&str, T)> = s
            .cameras
            .iter()
            .filter_map(|c| value(c).map(|v| (c.camera.as_str(), v)))
            .collect();
        if values.is_empty() {
            return;
        }
        self.family(name, kind, help);
        for (camera, v) in values {
            self.sample(name, &[("camera", camera)], v);
        }
    }
}

fn seconds_ms(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// The Prometheus text exposition (format 0.0.4) of a snapshot. Counters come from the
/// daemons' files, which keep them across restarts; they restart at 0 only when the RAM disk
/// is emptied (a reboot), which Prometheus' `rate()` handles as a counter reset.
pub fn render_metrics(s: &Snapshot) -> String {
    let mut e = Expo { out: String::new() };
    let rec = |c: &CameraSnapshot| c.recorder;
    let up = |c: &CameraSnapshot| c.uploader.clone();

    e.family(
        "visdcam_camera_config_valid",
        "gauge",
        "1 when the camera's configuration loads, 0 when it does not.",
    );
    for c in &s.cameras {
        e.sample(
            "visdcam_camera_config_valid",
            &[("camera", &c.camera)],
            u8::from(c.config_error.is_none()),
        );
    }
    e.per_camera(
        s,
        "visdcam_camera_up",
        "gauge",
        "1 while frames arrive from the camera (the recorder's file is fresh and says so).",
        |c| c.recorder.map(|_| u8::from(c.recording(s.now_unix))),
    );
    e.per_camera(
        s,
        "visdcam_camera_frames_per_second",
        "gauge",
        "Decoded frames per second over the last seconds (0 when not recording).",
        |c| {
            rec(c).map(|r| {
                if c.recording(s.now_unix) {
                    seconds_ms(r.fps_milli)
                } else {
                    "0".to_string()
                }
            })
        },
    );
    e.per_camera(
        s,
        "visdcam_camera_frames_received_total",
        "counter",
        "JPEG frames received from the camera.",
        |c| rec(c).map(|r| r.parts),
    );
    e.per_camera(
        s,
        "visdcam_camera_frames_total",
        "counter",
        "Frames decoded and encoded.",
        |c| rec(c).map(|r| r.frames),
    );
    e.per_camera(
        s,
        "visdcam_camera_frames_dropped_total",
        "counter",
        "Frames received that did not decode (corrupt JPEGs).",
        |c| rec(c).map(|r| r.parts.saturating_sub(r.frames)),
    );
    e.per_camera(
        s,
        "visdcam_camera_faults_total",
        "counter",
        "Camera connections that failed or ended in a fault (each is retried).",
        |c| rec(c).map(|r| r.faults),
    );
    e.per_camera(
        s,
        "visdcam_camera_reconnects_total",
        "counter",
        "Times frames flowed again after a fault.",
        |c| rec(c).map(|r| r.reconnects),
    );
    e.per_camera(
        s,
        "visdcam_camera_last_frame_timestamp_seconds",
        "gauge",
        "Unix time of the last frame received.",
        |c| {
            rec(c)
                .filter(|r| r.last_frame_unix > 0)
                .map(|r| r.last_frame_unix)
        },
    );
    e.per_camera(
        s,
        "visdcam_segments_closed_total",
        "counter",
        "Segments the recorder closed and handed to the uploader.",
        |c| rec(c).map(|r| r.segments),
    );
    e.per_camera(
        s,
        "visdcam_segments_uploaded_total",
        "counter",
        "Segments stored in the bucket (verified).",
        |c| up(c).map(|u| u.uploaded),
    );
    e.per_camera(
        s,
        "visdcam_uploaded_bytes_total",
        "counter",
        "Bytes of segments stored in the bucket.",
        |c| up(c).map(|u| u.uploaded_bytes),
    );
    let drops: Vec<(&str, &str, u64, u64)> = s
        .cameras
        .iter()
        .flat_map(|c| {
            let r = c
                .recorder
                .map(|r| (c.camera.as_str(), "recorder", r.dropped, r.dropped_bytes));
            let u = c
                .uploader
                .as_ref()
                .map(|u| (c.camera.as_str(), "uploader", u.dropped, u.dropped_bytes));
            r.into_iter().chain(u)
        })
        .collect();
    if !drops.is_empty() {
        e.family(
            "visdcam_segments_dropped_total",
            "counter",
            "Segments deleted unuploaded, by the daemon that dropped them and why.",
        );
        for (camera, by, n, _) in &drops {
            e.sample(
                "visdcam_segments_dropped_total",
                &[("camera", camera), ("by", by), ("reason", "ram_budget")],
                n,
            );
        }
        e.family(
            "visdcam_dropped_bytes_total",
            "counter",
            "Bytes of segments deleted unuploaded.",
        );
        for (camera, by, _, b) in &drops {
            e.sample(
                "visdcam_dropped_bytes_total",
                &[("camera", camera), ("by", by), ("reason", "ram_budget")],
                b,
            );
        }
    }
    let uploaders: Vec<(&str, Stats)> = s
        .cameras
        .iter()
        .filter_map(|c| c.uploader.clone().map(|u| (c.camera.as_str(), u)))
        .collect();
    if !uploaders.is_empty() {
        let name = "visdcam_upload_latency_seconds";
        e.family(
            name,
            "histogram",
            "Time from a segment's close to its being stored in the bucket.",
        );
        for (camera, u) in &uploaders {
            let mut cumulative = 0;
            for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
                cumulative += u.latency[i];
                e.sample(
                    &format!("{name}_bucket"),
                    &[("camera", camera), ("le", &bound.to_string())],
                    cumulative,
                );
            }
            cumulative += u.latency[LATENCY_BUCKETS_S.len()];
            e.sample(
                &format!("{name}_bucket"),
                &[("camera", camera), ("le", "+Inf")],
                cumulative,
            );
            e.sample(
                &format!("{name}_sum"),
                &[("camera", camera)],
                seconds_ms(u.latency_sum_ms),
            );
            e.sample(&format!("{name}_count"), &[("camera", camera)], cumulative);
        }
        e.family(
            "visdcam_upload_retries_total",
            "counter",
            "Failed upload attempts (each is retried), by cause: transient (network, 5xx, \
             throttling), refused (credentials, bucket, clock skew), config (Object Lock).",
        );
        for (camera, u) in &uploaders {
            for (cause, n) in [
                ("transient", u.retries_transient),
                ("refused", u.retries_refused),
                ("config", u.retries_config),
            ] {
                e.sample(
                    "visdcam_upload_retries_total",
                    &[("camera", camera), ("cause", cause)],
                    n,
                );
            }
        }
    }
    e.per_camera(
        s,
        "visdcam_upload_queue_segments",
        "gauge",
        "Closed segments waiting for upload.",
        |c| up(c).map(|u| u.queue),
    );
    e.per_camera(
        s,
        "visdcam_upload_queue_bytes",
        "gauge",
        "Bytes of closed segments waiting for upload.",
        |c| up(c).map(|u| u.queue_bytes),
    );
    e.per_camera(
        s,
        "visdcam_upload_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the last segment stored.",
        |c| {
            up(c)
                .filter(|u| u.last_upload_unix > 0)
                .map(|u| u.last_upload_unix)
        },
    );
    e.per_camera(
        s,
        "visdcam_upload_failing_since_timestamp_seconds",
        "gauge",
        "Unix time of the first failed attempt since the last success (0 while uploads work).",
        |c| up(c).map(|u| u.failing_since_unix),
    );
    e.per_camera(
        s,
        "visdcam_upload_clock_waiting",
        "gauge",
        "1 while the uploader waits for a synchronised clock.",
        |c| up(c).map(|u| u8::from(u.clock_waiting)),
    );
    e.per_camera(
        s,
        "visdcam_upload_rate_limit_bytes_per_second",
        "gauge",
        "RATE_KBPS in bytes per second (0: unlimited).",
        |c| c.config_error.is_none().then_some(c.rate_limit_bps),
    );
    e.per_camera(
        s,
        "visdcam_ram_camera_bytes",
        "gauge",
        "Bytes of the camera's segments on the RAM disk (recording and queued).",
        |c| c.config_error.is_none().then_some(c.ram_bytes),
    );
    e.per_camera(
        s,
        "visdcam_ram_budget_bytes",
        "gauge",
        "RAM_BUDGET_MB in bytes.",
        |c| c.config_error.is_none().then_some(c.budget_bytes),
    );
    let encoders: Vec<&CameraSnapshot> =
        s.cameras.iter().filter(|c| !c.encoder.is_empty()).collect();
    if !encoders.is_empty() {
        e.family(
            "visdcam_encoder_info",
            "gauge",
            "The H.264 encoder each camera's recorder uses (always 1).",
        );
        for c in encoders {
            e.sample(
                "visdcam_encoder_info",
                &[
                    ("camera", &c.camera),
                    ("encoder", &c.encoder),
                    ("preset", &c.encoder_preset),
                ],
                1,
            );
        }
    }

    e.family(
        "visdcam_systemd_up",
        "gauge",
        "1 when systemd answered over the system bus (unit metrics are missing otherwise).",
    );
    e.sample("visdcam_systemd_up", &[], u8::from(s.systemd));
    let units: Vec<&UnitState> = s.units().filter(|u| u.load_state == "loaded").collect();
    if !units.is_empty() {
        e.family(
            "visdcam_unit_active",
            "gauge",
            "1 while the unit is active.",
        );
        for u in &units {
            e.sample(
                "visdcam_unit_active",
                &[("unit", &u.unit)],
                u8::from(u.active_state == "active"),
            );
        }
        e.family(
            "visdcam_unit_failed",
            "gauge",
            "1 while the unit is in the failed state.",
        );
        for u in &units {
            e.sample(
                "visdcam_unit_failed",
                &[("unit", &u.unit)],
                u8::from(u.failed()),
            );
        }
        let restarts: Vec<(&str, u32)> = units
            .iter()
            .filter_map(|u| u.restarts.map(|n| (u.unit.as_str(), n)))
            .collect();
        if !restarts.is_empty() {
            e.family(
                "visdcam_unit_restarts_total",
                "counter",
                "Automatic restarts by systemd (NRestarts; reset when the unit is started by hand).",
            );
            for (unit, n) in restarts {
                e.sample("visdcam_unit_restarts_total", &[("unit", unit)], n);
            }
        }
    }
    if let Some(d) = &s.disk {
        for (name, help, v) in [
            (
                "visdcam_ram_disk_size_bytes",
                "Size of the RAM disk.",
                d.size_bytes,
            ),
            (
                "visdcam_ram_disk_free_bytes",
                "Free bytes on the RAM disk.",
                d.free_bytes,
            ),
            (
                "visdcam_ram_disk_mounted",
                "1 when a RAM file system is mounted at RAM_DIR (else segments go to the SD card).",
                u64::from(d.mounted),
            ),
        ] {
            e.family(name, "gauge", help);
            e.sample(name, &[("path", &d.path)], v);
        }
    }
    if let Some(synced) = s.clock_synced {
        e.family(
            "visdcam_clock_synchronized",
            "gauge",
            "1 when the system clock is synchronised (NTP).",
        );
        e.sample("visdcam_clock_synchronized", &[], u8::from(synced));
    }
    if !s.shaper_classes.is_empty() {
        for (name, help, f) in [
            (
                "visdcam_shaper_sent_bytes_total",
                "Bytes sent through the net-shaper class.",
                (|c: &ShaperClass| c.sent_bytes) as fn(&ShaperClass) -> u64,
            ),
            (
                "visdcam_shaper_sent_packets_total",
                "Packets sent through the net-shaper class.",
                |c| c.sent_packets,
            ),
            (
                "visdcam_shaper_dropped_packets_total",
                "Packets the net-shaper class dropped.",
                |c| c.dropped,
            ),
            (
                "visdcam_shaper_overlimits_total",
                "Times the net-shaper class was over its rate.",
                |c| c.overlimits,
            ),
        ] {
            e.family(name, "counter", help);
            for c in &s.shaper_classes {
                e.sample(name, &[("class", &c.class)], f(c));
            }
        }
    }
    e.out
}

/// What `visdcam metrics --http` does with a request: `Some(path)` of a `GET`/`HEAD` it
/// serves (`/metrics` or `/`), else the whole error answer to send.
pub fn http_request(head: &str) -> Result<(bool, String), String> {
    let line = head.lines().next().unwrap_or("");
    let mut f = line.split(' ');
    let (method, target) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => Ok((method == "HEAD", path.to_string())),
        ("GET" | "HEAD", _) => Err(http_answer(
            404,
            "text/plain; charset=utf-8",
            "try /metrics\n",
            false,
        )),
        _ => Err(http_answer(
            405,
            "text/plain; charset=utf-8",
            "GET /metrics\n",
            false,
        )),
    }
}

/// A complete HTTP/1.1 answer that closes the connection (the body left out for `HEAD`).
pub fn http_answer(status: u16, content_type: &str, body: &str, head_only: bool) -> String {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{}",
        body.len(),
        if head_only { "" } else { body }
    )
}

/// The exposition format's content type.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, active: &str, restarts: u32) -> UnitState {
        UnitState {
            unit: name.into(),
            load_state: "loaded".into(),
            active_state: active.into(),
            sub_state: "running".into(),
            unit_file_state: "enabled".into(),
            restarts: Some(restarts),
        }
    }

    fn snapshot() -> Snapshot {
        let mut up = Stats {
            uploaded: 12,
            uploaded_bytes: 12 << 20,
            dropped: 1,
            dropped_bytes: 4096,
            queue: 2,
            queue_bytes: 2 << 20,
            last_upload_unix: 1_764_750_000,
            retries_transient: 3,
            ..Stats::default()
        };
        up.note_latency(1500);
        up.note_latency(45_000);
        Snapshot {
            now_unix: 1_764_750_010,
            host: "pi".into(),
            cameras: vec![
                CameraSnapshot {
                    camera: "cam1".into(),
                    recorder: Some(RecorderStats {
                        frames: 1000,
                        parts: 1004,
                        segments: 14,
                        faults: 3,
                        reconnects: 2,
                        fps_milli: 19_875,
                        recording: true,
                        last_frame_unix: 1_764_750_009,
                        updated_unix: 1_764_750_009,
                        ..RecorderStats::default()
                    }),
                    uploader: Some(up),
                    ram_bytes: 3 << 20,
                    budget_bytes: 96 << 20,
                    rate_limit_bps: 200 * 1024,
                    encoder: "x264enc".into(),
                    encoder_preset: "veryfast".into(),
                    recorder_unit: Some(unit("seg@cam1.service", "active", 1)),
                    uploader_unit: Some(unit("uploader@cam1.service", "failed", 4)),
                    ..CameraSnapshot::default()
                },
                CameraSnapshot {
                    camera: "bad\"cam".into(),
                    config_error: Some("x".into()),
                    ..CameraSnapshot::default()
                },
            ],
            disk: Some(DiskSnapshot {
                path: "/mnt/ramcam".into(),
                size_bytes: 100,
                free_bytes: 25,
                mounted: true,
            }),
            clock_synced: Some(true),
            systemd: true,
            other_units: vec![],
            shaper_classes: vec![ShaperClass {
                class: "1:10".into(),
                sent_bytes: 500,
                sent_packets: 5,
                dropped: 0,
                overlimits: 7,
            }],
        }
    }

    fn has(text: &str, line: &str) {
        assert!(
            text.lines().any(|l| l == line),
            "no line `{line}` in\n{text}"
        );
    }

    #[test]
    fn every_figure_with_its_labels() {
        let t = render_metrics(&snapshot());
        has(&t, "visdcam_camera_up{camera=\"cam1\"} 1");
        has(
            &t,
            "visdcam_camera_frames_per_second{camera=\"cam1\"} 19.875",
        );
        has(
            &t,
            "visdcam_camera_frames_received_total{camera=\"cam1\"} 1004",
        );
        has(&t, "visdcam_camera_frames_dropped_total{camera=\"cam1\"} 4");
        has(&t, "visdcam_camera_reconnects_total{camera=\"cam1\"} 2");
        has(&t, "visdcam_camera_faults_total{camera=\"cam1\"} 3");
        has(&t, "visdcam_segments_closed_total{camera=\"cam1\"} 14");
        has(&t, "visdcam_segments_uploaded_total{camera=\"cam1\"} 12");
        has(&t, "visdcam_uploaded_bytes_total{camera=\"cam1\"} 12582912");
        has(
            &t,
            "visdcam_segments_dropped_total{camera=\"cam1\",by=\"uploader\",reason=\"ram_budget\"} 1",
        );
        has(
            &t,
            "visdcam_segments_dropped_total{camera=\"cam1\",by=\"recorder\",reason=\"ram_budget\"} 0",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_bucket{camera=\"cam1\",le=\"2\"} 1",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_bucket{camera=\"cam1\",le=\"30\"} 1",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_bucket{camera=\"cam1\",le=\"60\"} 2",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_bucket{camera=\"cam1\",le=\"+Inf\"} 2",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_sum{camera=\"cam1\"} 46.500",
        );
        has(
            &t,
            "visdcam_upload_latency_seconds_count{camera=\"cam1\"} 2",
        );
        has(
            &t,
            "visdcam_upload_retries_total{camera=\"cam1\",cause=\"transient\"} 3",
        );
        has(&t, "visdcam_upload_queue_segments{camera=\"cam1\"} 2");
        has(&t, "visdcam_upload_queue_bytes{camera=\"cam1\"} 2097152");
        has(
            &t,
            "visdcam_upload_last_success_timestamp_seconds{camera=\"cam1\"} 1764750000",
        );
        has(
            &t,
            "visdcam_upload_rate_limit_bytes_per_second{camera=\"cam1\"} 204800",
        );
        has(
            &t,
            "visdcam_encoder_info{camera=\"cam1\",encoder=\"x264enc\",preset=\"veryfast\"} 1",
        );
        has(
            &t,
            "visdcam_unit_restarts_total{unit=\"uploader@cam1.service\"} 4",
        );
        has(&t, "visdcam_unit_failed{unit=\"uploader@cam1.service\"} 1");
        has(&t, "visdcam_unit_active{unit=\"seg@cam1.service\"} 1");
        has(&t, "visdcam_ram_disk_free_bytes{path=\"/mnt/ramcam\"} 25");
        has(&t, "visdcam_clock_synchronized 1");
        has(&t, "visdcam_shaper_overlimits_total{class=\"1:10\"} 7");
        // A label value with a quote is escaped; a broken camera has only its validity.
        has(&t, "visdcam_camera_config_valid{camera=\"bad\\\"cam\"} 0");
        assert!(!t.contains("visdcam_ram_budget_bytes{camera=\"bad"));
    }

    #[test]
    fn each_family_is_declared_once_before_its_samples_with_prometheus_names() {
        let t = render_metrics(&snapshot());
        let mut declared = std::collections::BTreeSet::new();
        for line in t.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(declared.insert(name.to_string()), "{name} declared twice");
                assert!(name.starts_with("visdcam_"));
                assert_eq!(
                    kind == "counter",
                    name.ends_with("_total"),
                    "{name}: counters and only counters end in _total"
                );
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|f| declared.contains(*f)))
                    .unwrap_or(name);
                assert!(declared.contains(family), "{name} before its TYPE");
            }
        }
    }

    #[test]
    fn a_stale_recorder_file_is_a_camera_down_since_its_last_frame() {
        let mut s = snapshot();
        s.now_unix += RECORDER_STALE_S + 1;
        let c = &s.cameras[0];
        assert!(!c.recording(s.now_unix));
        assert_eq!(c.down_since(s.now_unix), Some(Some(1_764_750_009)));
        has(&render_metrics(&s), "visdcam_camera_up{camera=\"cam1\"} 0");
        has(
            &render_metrics(&s),
            "visdcam_camera_frames_per_second{camera=\"cam1\"} 0",
        );
        let unknown = CameraSnapshot::default();
        assert_eq!(unknown.down_since(0), Some(None));
        assert_eq!(snapshot().cameras[0].down_since(1_764_750_010), None);
    }

    #[test]
    fn http_requests() {
        assert_eq!(
            http_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok((false, "/metrics".into()))
        );
        assert_eq!(
            http_request("HEAD /?x=1 HTTP/1.0\r\n"),
            Ok((true, "/".into()))
        );
        assert!(http_request("GET /other HTTP/1.1\r\n")
            .unwrap_err()
            .starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(http_request("POST /metrics HTTP/1.1\r\n")
            .unwrap_err()
            .starts_with("HTTP/1.1 405 "));
        assert_eq!(
            http_answer(200, METRICS_CONTENT_TYPE, "a 1\n", false),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\na 1\n"
        );
        assert!(http_answer(200, "t", "a 1\n", true)
            .ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
    }
}
