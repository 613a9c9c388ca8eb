//! `visdcam top`'s screen from two snapshots: per camera whether frames arrive and at what
//! rate, segments closed, the upload queue, the upload rate (from the uploader's byte
//! counters, the body in flight included) against `RATE_KBPS`, retries and the last upload;
//! then the uplink's transmit rate, the RAM disk, the clock and the open alerts.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::alerts::Kind;
use crate::monitor::{CameraSnapshot, Snapshot};
use crate::upload::{human_age, human_bytes};

/// The uplink's transmit counter at a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    pub device: String,
    pub tx_bytes: u64,
}

/// An open (raised) alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub kind: Kind,
    pub subject: String,
    pub since: i64,
}

/// What one screen shows: the snapshot now, the one before (for rates) and how far apart.
pub struct View<'a> {
    pub now: &'a Snapshot,
    pub prev: Option<&'a Snapshot>,
    pub elapsed_s: f64,
    pub uplink: Option<(&'a Uplink, Option<&'a Uplink>)>,
    /// `None`: the alert state cannot be read.
    pub alerts: Option<&'a [OpenAlert]>,
    pub tz: Tz,
}

/// Bytes the uploader has sent: stored, plus the body in flight.
fn sent(c: &CameraSnapshot) -> Option<u64> {
    c.uploader
        .as_ref()
        .map(|u| u.uploaded_bytes + u.uploading_sent)
}

fn rate(now: u64, before: u64, secs: f64) -> Option<f64> {
    (secs > 0.0 && now >= before).then(|| (now - before) as f64 / secs)
}

/// `12.3 KiB/s`.
fn per_s(r: Option<f64>) -> String {
    match r {
        Some(r) => format!("{}/s", human_bytes(r.round() as u64)),
        None => "–".into(),
    }
}

fn state(c: &CameraSnapshot, now: i64) -> String {
    if c.config_error.is_some() {
        return "config error".into();
    }
    match c.down_since(now) {
        None => "recording".into(),
        Some(Some(t)) => format!("down {}", human_age(now - t)),
        Some(None) => "no recorder".into(),
    }
}

/// The screen's lines (no colour, no escape codes: the caller positions them).
pub fn render(v: &View<'_>) -> Vec<String> {
    let s = v.now;
    let when = DateTime::<Utc>::from_timestamp(s.now_unix, 0)
        .unwrap_or_default()
        .with_timezone(&v.tz)
        .format("%Y-%m-%d %H:%M:%S %Z");
    let mut out = vec![
        format!("visdcam top — {} — {when} — q quits", s.host),
        String::new(),
        format!(
            "{:<10} {:<14} {:>5} {:>8} {:>16} {:>12} {:>12} {:>7}  {}",
            "CAMERA",
            "STATE",
            "FPS",
            "SEGMENTS",
            "QUEUE",
            "UPLOAD",
            "LIMIT",
            "RETRIES",
            "LAST UPLOAD"
        ),
    ];
    for c in &s.cameras {
        let before = v
            .prev
            .and_then(|p| p.cameras.iter().find(|o| o.camera == c.camera));
        let fps = match c.recorder {
            Some(r) if c.recording(s.now_unix) => format!("{:.1}", r.fps_milli as f64 / 1000.0),
            _ => "–".into(),
        };
        let segments = c.recorder.map_or("–".into(), |r| r.segments.to_string());
        let queue = c.uploader.as_ref().map_or("–".into(), |u| {
            format!("{} ({})", u.queue, human_bytes(u.queue_bytes))
        });
        let upload = per_s(
            sent(c)
                .zip(before.and_then(sent))
                .and_then(|(n, b)| rate(n, b, v.elapsed_s)),
        );
        let limit = match c.rate_limit_bps {
            _ if c.config_error.is_some() => "–".into(),
            0 => "unlimited".into(),
            b => format!("{}/s", human_bytes(b)),
        };
        let (retries, last) = c.uploader.as_ref().map_or(("–".into(), "–".into()), |u| {
            let retries = (u.retries_transient + u.retries_refused + u.retries_config).to_string();
            let mut last = if u.last_upload_unix > 0 {
                format!(
                    "{} ago",
                    human_age((s.now_unix - u.last_upload_unix).max(0))
                )
            } else {
                "never".into()
            };
            if u.failing_since_unix > 0 {
                last.push_str(&format!(" — failing: {}", u.last_error));
            }
            (retries, last)
        });
        out.push(format!(
            "{:<10} {:<14} {:>5} {:>8} {:>16} {:>12} {:>12} {:>7}  {}",
            c.camera,
            state(c, s.now_unix),
            fps,
            segments,
            queue,
            upload,
            limit,
            retries,
            last
        ));
    }
    if s.cameras.is_empty() {
        out.push("no cameras configured".into());
    }
    out.push(String::new());
    let mut pi = Vec::new();
    if let Some((now, before)) = v.uplink {
        let r = before.and_then(|b| rate(now.tx_bytes, b.tx_bytes, v.elapsed_s));
        pi.push(format!(
            "uplink {} TX {}",
            now.device,
            match r {
                Some(r) => format!("{:.2} Mbit/s ({})", r * 8.0 / 1e6, per_s(Some(r))),
                None => "–".into(),
            }
        ));
    }
    if let Some(d) = &s.disk {
        pi.push(format!(
            "RAM disk {} {} % used, {} free{}",
            d.path,
            d.used_percent(),
            human_bytes(d.free_bytes),
            if d.mounted { "" } else { " (NOT a RAM disk)" }
        ));
    }
    pi.push(
        match s.clock_synced {
            Some(true) => "clock synced",
            Some(false) => "clock NOT synced",
            None => "clock unknown",
        }
        .into(),
    );
    out.push(pi.join(" · "));
    match v.alerts {
        None => out.push("alerts: cannot read the alert state".into()),
        Some([]) => out.push("alerts: none open".into()),
        Some(list) => {
            out.push(format!("alerts: {} open", list.len()));
            for a in list {
                out.push(format!(
                    "  {} {} since {}",
                    a.kind.id(),
                    a.subject,
                    human_age((s.now_unix - a.since).max(0))
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::RecorderStats;
    use crate::monitor::DiskSnapshot;
    use crate::upload::Stats;

    fn snap(now: i64, uploaded: u64, sending: u64) -> Snapshot {
        Snapshot {
            now_unix: now,
            host: "pi".into(),
            cameras: vec![
                CameraSnapshot {
                    camera: "cam1".into(),
                    recorder: Some(RecorderStats {
                        fps_milli: 9_950,
                        recording: true,
                        segments: 42,
                        updated_unix: now,
                        ..RecorderStats::default()
                    }),
                    uploader: Some(Stats {
                        uploaded_bytes: uploaded,
                        uploading_sent: sending,
                        queue: 3,
                        queue_bytes: 3 << 20,
                        last_upload_unix: now - 12,
                        retries_transient: 2,
                        ..Stats::default()
                    }),
                    rate_limit_bps: 200 * 1024,
                    ..CameraSnapshot::default()
                },
                CameraSnapshot {
                    camera: "cam2".into(),
                    recorder: Some(RecorderStats {
                        down_since_unix: now - 300,
                        updated_unix: now,
                        ..RecorderStats::default()
                    }),
                    ..CameraSnapshot::default()
                },
            ],
            disk: Some(DiskSnapshot {
                path: "/mnt/ramcam".into(),
                size_bytes: 100 << 20,
                free_bytes: 80 << 20,
                mounted: true,
            }),
            clock_synced: Some(true),
            ..Snapshot::default()
        }
    }

    #[test]
    fn rates_from_two_snapshots_and_every_part_of_the_screen() {
        let before = snap(1_764_750_000, 10 << 20, 0);
        // 2 s later: one segment of 300 KiB stored, 100 KiB of the next sent.
        let now = snap(1_764_750_002, (10 << 20) + (300 << 10), 100 << 10);
        let (u0, u1) = (
            Uplink {
                device: "eth0".into(),
                tx_bytes: 1_000_000,
            },
            Uplink {
                device: "eth0".into(),
                tx_bytes: 1_250_000,
            },
        );
        let alerts = [OpenAlert {
            kind: Kind::CameraDown,
            subject: "cam2".into(),
            since: 1_764_750_002 - 300,
        }];
        let lines = render(&View {
            now: &now,
            prev: Some(&before),
            elapsed_s: 2.0,
            uplink: Some((&u1, Some(&u0))),
            alerts: Some(&alerts),
            tz: chrono_tz::UTC,
        });
        let text = lines.join("\n");
        assert_eq!(
            lines[0],
            "visdcam top — pi — 2025-12-03 08:20:02 UTC — q quits"
        );
        let cam1 = lines.iter().find(|l| l.starts_with("cam1")).unwrap();
        for part in [
            "recording",
            "9.9",
            "42",
            "3 (3.0 MiB)",
            "200.0 KiB/s",
            "2",
            "12 s ago",
        ] {
            assert!(cam1.contains(part), "{part} in {cam1}");
        }
        let cam2 = lines.iter().find(|l| l.starts_with("cam2")).unwrap();
        assert!(cam2.contains("down 5 min"), "{cam2}");
        assert!(
            text.contains("uplink eth0 TX 1.00 Mbit/s (122.1 KiB/s) · RAM disk /mnt/ramcam 20 % used, 80.0 MiB free · clock synced"),
            "{text}"
        );
        assert!(
            text.contains("alerts: 1 open\n  camera_down cam2 since 5 min"),
            "{text}"
        );
        // The first screen has no rates yet.
        let first = render(&View {
            now: &now,
            prev: None,
            elapsed_s: 0.0,
            uplink: None,
            alerts: None,
            tz: chrono_tz::UTC,
        })
        .join("\n");
        assert!(first.contains("–"), "{first}");
        assert!(first.contains("alerts: cannot read the alert state"));
    }
}
