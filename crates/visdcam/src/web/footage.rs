//! Today's footage on the page: each camera's spans in the bucket (the `footage` timeline) and a
//! span played in the page's `<video>` from an HLS playlist (the `play` logic). The playlist's
//! segments are the page's own URLs (`/api/segment`), which stream each object from the bucket
//! as it comes (a verified GET, nothing re-encoded, nothing kept): browsers' HLS players refuse
//! segments from another origin unless the bucket sends CORS headers, and the phone need not
//! reach the bucket at all. Only keys of the camera's own segments are served.
//!
//! The page uses its own read-capable key, never the uploader's (which may be write-only, and
//! which the page's user cannot read): `web-read-credentials` (aws-cli format, profile
//! `B2_PROFILE`) in `$CREDENTIALS_DIRECTORY` (visdcam-web.service's `LoadCredential=`, from
//! `/etc/visdcam/web-read-credentials`), or in the configuration directory when run by hand.
//! Without one the page shows no footage and says how to add it.

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use visdcam_core::footage::{format_local, Range};
use visdcam_s3::Locations;

use crate::footage::Library;
use crate::Ctx;

/// The credential's name (in `$CREDENTIALS_DIRECTORY` and the configuration directory).
pub const READ_KEY: &str = "web-read-credentials";
/// Longest span one playlist covers.
pub const MAX_SPAN: Duration = Duration::from_secs(6 * 3600);

/// Where the read key may be: the service's credential, then the configuration directory.
pub fn read_key_files(ctx: &Ctx) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Some(d) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) {
        v.push(PathBuf::from(d).join(READ_KEY));
    }
    v.push(ctx.dir.join(READ_KEY));
    v
}

/// Whether a read key is there at all.
pub fn read_key_present(ctx: &Ctx) -> bool {
    read_key_files(ctx).iter().any(|p| p.is_file())
}

fn library(ctx: &Ctx, camera: &str) -> Result<Library, String> {
    if !read_key_present(ctx) {
        return Err(format!(
            "no footage here: the page needs a read-capable key in {} (docs/guide/live-view.md)",
            ctx.dir.join(READ_KEY).display()
        ));
    }
    let settings = visdcam_daemon::config::load_camera_from(&ctx.dir, camera)
        .map_err(|e| visdcam_daemon::error_chain(&e))?;
    Library::with_credentials(
        camera,
        settings,
        Locations {
            credentials: read_key_files(ctx),
            config: Vec::new(),
        },
    )
}

/// One span of footage as the page lists it.
#[derive(Serialize)]
pub struct SpanJson {
    pub from_ms: i64,
    pub to_ms: i64,
    /// `17:40:05 – 17:55:10` in KEY_TZ.
    pub label: String,
    pub segments: usize,
}

#[derive(Serialize)]
pub struct FootageJson {
    pub camera: String,
    pub spans: Vec<SpanJson>,
    /// Why there is no list, in words.
    pub error: Option<String>,
}

/// Today's spans (local midnight in KEY_TZ until now), newest first.
pub fn today(ctx: &Ctx, camera: &str, now: DateTime<Utc>) -> FootageJson {
    let mut doc = FootageJson {
        camera: camera.to_string(),
        spans: Vec::new(),
        error: None,
    };
    let result = (|| -> Result<Vec<SpanJson>, String> {
        let mut lib = library(ctx, camera)?;
        let tz = lib.settings().key_tz;
        let midnight = now
            .with_timezone(&tz)
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .and_then(|m| tz.from_local_datetime(&m).earliest())
            .map(|m| m.with_timezone(&Utc))
            .unwrap_or(now - chrono::Duration::hours(24));
        let (t, _) = lib
            .timeline(Range {
                from: midnight,
                to: now,
            })
            .map_err(|f| f.message)?;
        let time = |d: DateTime<Utc>| {
            // `2026-12-03 17:40:05 IST`: the time.
            format_local(d, tz)
                .split(' ')
                .nth(1)
                .unwrap_or_default()
                .to_string()
        };
        Ok(t.spans
            .iter()
            .rev()
            .map(|s| SpanJson {
                from_ms: s.start.timestamp_millis(),
                to_ms: s.end.timestamp_millis(),
                label: format!("{} – {}", time(s.start), time(s.end)),
                segments: s.segments,
            })
            .collect())
    })();
    match result {
        Ok(spans) => doc.spans = spans,
        Err(e) => doc.error = Some(e),
    }
    doc
}

/// Percent-encodes a key for a query value (keeps letters, digits and `-_.~/`).
pub fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Decodes a percent-encoded query value; `None` when it is malformed or not UTF-8.
pub fn decode(v: &str) -> Option<String> {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The HLS playlist of `camera` from `from_ms` to `to_ms`, its segments served by the page.
pub fn playlist(ctx: &Ctx, camera: &str, from_ms: i64, to_ms: i64) -> Result<String, String> {
    let (Some(from), Some(to)) = (
        DateTime::<Utc>::from_timestamp_millis(from_ms),
        DateTime::<Utc>::from_timestamp_millis(to_ms),
    ) else {
        return Err("from and to must be times in ms since the epoch".into());
    };
    if to <= from || (to - from).to_std().unwrap_or_default() > MAX_SPAN {
        return Err(format!(
            "a span must end after it starts and last at most {} h",
            MAX_SPAN.as_secs() / 3600
        ));
    }
    let mut lib = library(ctx, camera)?;
    let (t, _) = lib.timeline(Range { from, to }).map_err(|f| f.message)?;
    if t.segments.is_empty() {
        return Err("no footage in that span".into());
    }
    lib.playlist_via(&t, &|key| {
        Ok(format!("/api/segment?camera={camera}&key={}", encode(key)))
    })
    .map_err(|f| f.message)
}

/// Streams one of `camera`'s segments from the bucket to `conn` (404 for any other key).
pub fn segment(ctx: &Ctx, camera: &str, key: &str, conn: &mut TcpStream) -> std::io::Result<()> {
    let lib = match library(ctx, camera) {
        Ok(l) => l,
        Err(e) => return super::http::text(conn, 404, &e),
    };
    let s = lib.settings();
    if s.key_template.parse_key(camera, key, s.key_tz).is_none() {
        return super::http::text(conn, 404, "not a segment of this camera");
    }
    let size = match lib.store().head(key) {
        Ok(Some(h)) => h.size,
        Ok(None) => return super::http::text(conn, 404, "no such segment"),
        Err(f) => return super::http::text(conn, 502, &format!("the bucket: {}", f.why())),
    };
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {size}\r\n\
         Cache-Control: private, max-age=3600\r\nX-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n\r\n"
    )?;
    if let Err(f) = lib.store().get(key, conn, &mut |_| {}) {
        // The head went out: the browser sees a short or damaged segment and skips it.
        log::warn!("streaming {key}: {}", f.why());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_the_query_and_bad_escapes_are_refused() {
        for key in [
            "cam1/2026/12/03/17/cam_1_2026_12_03_17_42_22.ts",
            "cam1/2026/10/25/02/cam_1_2026_10_25_02_30_00_CET.ts",
            "odd key/with&=?#%+é",
        ] {
            assert_eq!(
                decode(&encode(key)).as_deref(),
                Some(key),
                "{}",
                encode(key)
            );
        }
        assert!(!encode("a&key=b").contains('&'));
        assert_eq!(decode("%4"), None);
        assert_eq!(decode("%zz"), None);
        assert_eq!(decode("%ff"), None, "not UTF-8");
    }
}
