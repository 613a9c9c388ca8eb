//! visdcam's configuration: every key, its scope, range and default, and how the global file
//! and a camera's file combine into [`Settings`]. Pure: callers pass file names and texts.
//!
//! Files: `<dir>/visdcam.conf` (global) and `<dir>/cameras/<camera>.conf`; a camera's file
//! overrides global keys. Syntax: [`crate::envfile`]. Every error names `file:line`, the key and
//! what is allowed.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use chrono_tz::Tz;

use crate::camvars;
use crate::envfile;
use crate::error::{Classify, ErrorKind};
use crate::keys::KeyTemplate;
use crate::objectlock::{LockMode, ObjectLock};
use crate::units::validate_camera_name;

/// The live-frame socket's name in a recorder's runtime directory.
pub const LIVE_SOCKET: &str = "live.sock";

/// Where a key may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only in `visdcam.conf`.
    Global,
    /// Only in a camera's file.
    Camera,
    /// In either; the camera's file wins.
    Both,
}

/// The type and range of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int {
        min: u64,
        max: u64,
    },
    Bool,
    Choice(&'static [&'static str]),
    Text,
    HttpUrl,
    Endpoint,
    TimeZone,
    Template,
    AbsPath,
    Rate,
    ClockTime,
    Dscp,
    ListenAddr,
    /// Any http(s) URL, kept as written.
    Url,
    /// A length of time such as 90s, 10m, 1h30m, in seconds.
    Duration {
        min: u64,
        max: u64,
    },
}

impl Kind {
    /// The allowed values, in words, for error messages and the reference.
    pub fn allowed(&self) -> String {
        match self {
            Kind::Int { min, max } => format!("an integer from {min} to {max}"),
            Kind::Bool => "yes or no".into(),
            Kind::Choice(c) => format!("one of {}", c.join(", ")),
            Kind::Text => "text".into(),
            Kind::HttpUrl => "an http:// URL such as http://192.168.1.33:81/stream".into(),
            Kind::Endpoint => {
                "an https:// (or http://) URL such as https://s3.ca-east-006.backblazeb2.com".into()
            }
            Kind::TimeZone => "an IANA time zone such as Asia/Kolkata".into(),
            Kind::Template => "a key template (see Object keys below)".into(),
            Kind::AbsPath => "an absolute path".into(),
            Kind::Rate => "a rate such as 3mbit, 500kbit or 375kbps (bytes)".into(),
            Kind::ClockTime => "a time of day HH:MM, such as 06:00".into(),
            Kind::Dscp => "none, cs0..cs7, af11..af43, ef, or a number from 0 to 63".into(),
            Kind::ListenAddr => {
                "an IP address and port such as 127.0.0.1:8088, 0.0.0.0:8088 or [::]:8088".into()
            }
            Kind::Url => "an https:// or http:// URL".into(),
            Kind::Duration { min, max } => format!(
                "a duration such as 90s, 10m, 2h or 1h30m, from {} to {}",
                crate::cli::format_duration(std::time::Duration::from_secs(*min)),
                crate::cli::format_duration(std::time::Duration::from_secs(*max))
            ),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct KeySpec {
    pub name: &'static str,
    pub scope: Scope,
    pub kind: Kind,
    /// `None`: no default (required where used, or optional).
    pub default: Option<&'static str>,
    pub doc: &'static str,
}

const fn key(
    name: &'static str,
    scope: Scope,
    kind: Kind,
    default: Option<&'static str>,
    doc: &'static str,
) -> KeySpec {
    KeySpec {
        name,
        scope,
        kind,
        default,
        doc,
    }
}

const X264_PRESETS: &[&str] = &[
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
];

/// Every key visdcam knows, except the `PRESET_<NAME>_<VAR>` family (see [`preset_key`]).
pub const KEYS: &[KeySpec] = &[
    key(
        "CAMERA_URL",
        Scope::Camera,
        Kind::HttpUrl,
        None,
        "The camera's MJPEG stream (required), e.g. http://192.168.1.33:81/stream.",
    ),
    key(
        "CONTROL_URL",
        Scope::Camera,
        Kind::HttpUrl,
        None,
        "The camera's control server (/status, /control). Default: CAMERA_URL's host, port 80 \
         (the stream port minus one).",
    ),
    key(
        "SEG_SECONDS",
        Scope::Both,
        Kind::Int { min: 2, max: 3600 },
        Some("60"),
        "Segment length in seconds.",
    ),
    key(
        "RAM_DIR",
        Scope::Both,
        Kind::AbsPath,
        Some("/mnt/ramcam"),
        "The RAM disk; each camera records into RAM_DIR/<camera>/.",
    ),
    key(
        "RAM_BUDGET_MB",
        Scope::Both,
        Kind::Int {
            min: 1,
            max: 1_048_576,
        },
        Some("96"),
        "Most MiB of pending segments kept for a camera; past it the oldest are dropped.",
    ),
    key(
        "RAM_MIN_FREE_MB",
        Scope::Both,
        Kind::Int {
            min: 0,
            max: 1_048_576,
        },
        Some("16"),
        "Free MiB kept on the RAM filesystem; below it the oldest pending segments are dropped.",
    ),
    key(
        "KEY_TZ",
        Scope::Both,
        Kind::TimeZone,
        Some("Asia/Kolkata"),
        "Time zone of the dates in object keys.",
    ),
    key(
        "KEY_TEMPLATE",
        Scope::Both,
        Kind::Template,
        Some(crate::keys::DEFAULT_TEMPLATE),
        "Object key layout: strftime fields plus {camera}, {camera_}, {number}. Refused when a \
         field cannot be formatted, or when two configured cameras could get the same key.",
    ),
    key(
        "B2_PROFILE",
        Scope::Both,
        Kind::Text,
        Some("b2"),
        "Profile in the aws-cli credentials file.",
    ),
    key(
        "B2_REGION",
        Scope::Both,
        Kind::Text,
        None,
        "Bucket region, e.g. ca-east-006 (default: the profile's region in the aws config file, \
         else us-east-1).",
    ),
    key(
        "B2_ENDPOINT",
        Scope::Both,
        Kind::Endpoint,
        None,
        "S3 endpoint, e.g. https://s3.ca-east-006.backblazeb2.com (required by the uploader).",
    ),
    key(
        "B2_BUCKET",
        Scope::Both,
        Kind::Text,
        None,
        "Bucket name, e.g. visd-cctv (required by the uploader).",
    ),
    key(
        "B2_ADDRESSING_STYLE",
        Scope::Both,
        Kind::Choice(&["virtual", "path"]),
        Some("virtual"),
        "virtual: https://BUCKET.endpoint/KEY; path: https://endpoint/BUCKET/KEY.",
    ),
    key(
        "REQUIRE_CLOCK_SYNC",
        Scope::Both,
        Kind::Bool,
        Some("yes"),
        "Upload only once the system clock is synchronised (a Pi has no battery clock); \
         segments recorded before then are keyed by when they were really recorded.",
    ),
    key(
        "RATE_KBPS",
        Scope::Both,
        Kind::Int {
            min: 0,
            max: 1_048_576,
        },
        Some("0"),
        "Upload cap for this camera in KiB/s (1024 bytes per second, like pv -L); 0 = none.",
    ),
    key(
        "OBJECT_LOCK_DAYS",
        Scope::Both,
        Kind::Int {
            min: 0,
            max: crate::objectlock::MAX_DAYS as u64,
        },
        Some("0"),
        "Days each uploaded segment is locked against deletion and overwriting, counted from \
         its upload (S3 Object Lock; B2 calls it File Lock, and the bucket must have it \
         enabled); 0 = no lock. Locked footage cannot be deleted early and is billed until \
         then: docs/guide/b2-credentials.md.",
    ),
    key(
        "OBJECT_LOCK_MODE",
        Scope::Both,
        Kind::Choice(&["governance", "compliance"]),
        Some("governance"),
        "With OBJECT_LOCK_DAYS: governance lets a key with the bypass right (B2's \
         bypassGovernance, the owner's, never the Pi's) delete early; compliance lets nobody, \
         not even the account owner.",
    ),
    key(
        "UPLOAD_DSCP",
        Scope::Both,
        Kind::Dscp,
        Some("cs1"),
        "DSCP mark on upload sockets, so net-shaper can tell them apart.",
    ),
    key(
        "X264_PRESET",
        Scope::Both,
        Kind::Choice(X264_PRESETS),
        Some("ultrafast"),
        "x264 speed preset; ultrafast suits a Pi.",
    ),
    key(
        "X264_BITRATE_KBPS",
        Scope::Both,
        Kind::Int {
            min: 64,
            max: 20_000,
        },
        Some("1000"),
        "H.264 bitrate in kbit/s.",
    ),
    key(
        "KEYFRAME_INTERVAL",
        Scope::Both,
        Kind::Int { min: 1, max: 600 },
        Some("30"),
        "Frames between keyframes; each segment starts on one.",
    ),
    key(
        "ENCODER",
        Scope::Both,
        Kind::Choice(crate::encoder::EncoderSetting::CHOICES),
        Some("auto"),
        "H.264 encoder: auto uses the hardware encoder (v4l2h264enc, a Pi 4's bcm2835-codec) \
         when a short encode at start proves it works, x264 otherwise; v4l2 asks for it \
         (x264 with a warning if it fails); x264 never tries it. A hardware encoder that fails \
         while recording falls back to x264 for that camera: docs/design/encoder.md.",
    ),
    key(
        "ENCODER_DEVICE",
        Scope::Both,
        Kind::AbsPath,
        Some("/dev/video11"),
        "The hardware encoder's V4L2 device (a Pi 4's bcm2835-codec encoder is /dev/video11).",
    ),
    key(
        "STALL_TIMEOUT_S",
        Scope::Both,
        Kind::Int { min: 2, max: 10 },
        Some("5"),
        "Seconds without a frame before the recorder declares the camera stalled and reconnects.",
    ),
    key(
        "DAY_START",
        Scope::Both,
        Kind::ClockTime,
        Some("06:00"),
        "When the day preset starts, in SCHEDULE_TZ.",
    ),
    key(
        "NIGHT_START",
        Scope::Both,
        Kind::ClockTime,
        Some("18:00"),
        "When the night preset starts, in SCHEDULE_TZ.",
    ),
    key(
        "SCHEDULE_TZ",
        Scope::Both,
        Kind::TimeZone,
        Some("Asia/Kolkata"),
        "Time zone of DAY_START and NIGHT_START.",
    ),
    key(
        "SHAPER_RATE",
        Scope::Global,
        Kind::Rate,
        Some("3mbit"),
        "net-shaper: cap for all upload traffic (DSCP-marked) on the uplink.",
    ),
    key(
        "SHAPER_DEV",
        Scope::Global,
        Kind::Text,
        None,
        "net-shaper: interface to shape (default: the default route's interface); 1 to 15 \
         printable ASCII characters without `/`, `:`, `#`, quotes or `\\`.",
    ),
    key(
        "RUN_DIR",
        Scope::Global,
        Kind::AbsPath,
        Some("/run/visdcam"),
        "Runtime directory: the recorder of camera C serves its live frames on the unix socket \
         RUN_DIR/seg-C/live.sock, where the live-view page reads them. seg@C's \
         RuntimeDirectory= is /run/visdcam/seg-C: change it only for a recorder run outside \
         systemd (tests).",
    ),
    key(
        "WEB_LISTEN",
        Scope::Global,
        Kind::ListenAddr,
        Some("127.0.0.1:8088"),
        "Address and port of the live-view page (visdcam-web.socket, not enabled by the \
         package). Beyond the loopback address it requires a password (visdcam web-password).",
    ),
    key(
        "WEB_MAX_CONNECTIONS",
        Scope::Global,
        Kind::Int { min: 1, max: 1024 },
        Some("32"),
        "Most HTTP connections the live-view page serves at once; more are answered 503.",
    ),
    key(
        "WEB_VIEWERS_PER_CAMERA",
        Scope::Global,
        Kind::Int { min: 1, max: 256 },
        Some("8"),
        "Most live viewers of one camera at once; more are answered 503.",
    ),
    key(
        "ALERT_URL",
        Scope::Global,
        Kind::Url,
        None,
        "`visdcam alert`: POST each alert as JSON to this URL (a webhook, an ntfy topic, a Home \
         Assistant webhook; see docs/guide/monitoring.md). Empty: no webhook.",
    ),
    key(
        "ALERT_EMAIL",
        Scope::Global,
        Kind::Text,
        None,
        "`visdcam alert`: mail each alert to this address through the system's sendmail (when \
         installed). Empty: no mail.",
    ),
    key(
        "ALERT_CAMERA_DOWN",
        Scope::Global,
        Kind::Duration {
            min: 1,
            max: 86_400,
        },
        Some("10m"),
        "`visdcam alert`: a camera that sends no frames for this long raises an alert.",
    ),
    key(
        "ALERT_UPLOAD_FAILING",
        Scope::Global,
        Kind::Duration {
            min: 1,
            max: 86_400,
        },
        Some("15m"),
        "`visdcam alert`: a camera whose uploads fail (refused credentials, missing bucket, \
         store unreachable) for this long raises an alert.",
    ),
    key(
        "ALERT_CLOCK_UNSYNCED",
        Scope::Global,
        Kind::Duration {
            min: 1,
            max: 86_400,
        },
        Some("10m"),
        "`visdcam alert`: the clock not synchronised for this long raises an alert (a Pi without \
         a real-time clock boots unsynchronised and waits for NTP).",
    ),
    key(
        "ALERT_RAM_DISK_PERCENT",
        Scope::Global,
        Kind::Int { min: 1, max: 100 },
        Some("90"),
        "`visdcam alert`: the RAM disk used to this percentage or more raises an alert.",
    ),
    key(
        "LOG_LEVEL",
        Scope::Both,
        Kind::Choice(&["error", "warn", "info", "debug", "trace"]),
        Some("info"),
        "Daemon log level. debug and trace add visdcam's own details; libraries stay at warn, \
         and no level logs a credential, a signature or a body.",
    ),
];

/// Looks up a fixed key.
pub fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// Splits `PRESET_<NAME>_<VAR>` into (lowercase preset name, control variable).
pub fn preset_key(name: &str) -> Option<(String, &'static camvars::ControlVar)> {
    let rest = name.strip_prefix("PRESET_")?;
    let (preset, var) = rest.split_once('_')?;
    if preset.is_empty()
        || !preset
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return None;
    }
    let var = camvars::control_var(&var.to_ascii_lowercase())?;
    Some((preset.to_ascii_lowercase(), var))
}

/// A configuration file's name and contents.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub path: &'a str,
    pub text: &'a str,
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: String,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path, self.line)
    }
}

/// A configuration error, pointing at the file (and line, when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    fn at(path: &str, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            line: Some(line),
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Classify for ConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// A plain `http://host[:port]/path` URL (ESP32-CAMs speak no TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
}

impl HttpUrl {
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        let rest = s
            .strip_prefix("http://")
            .ok_or_else(|| format!("`{s}` must start with http://"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(format!("`{s}`: user:password@ is not supported"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
                let port: u16 =
                    p.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                        format!("`{s}`: port `{p}` is not a number from 1 to 65535")
                    })?;
                (h, Some(port))
            }
            _ => (authority, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
        if !host_ok {
            return Err(format!("`{s}`: `{host}` is not a host name or address"));
        }
        if path.contains(char::is_whitespace) {
            return Err(format!("`{s}`: white space in the path"));
        }
        Ok(HttpUrl {
            host: host.into(),
            port,
            path: path.into(),
        })
    }

    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(80)
    }

    /// The firmware's control server: same host, port 80 when the stream is on 81 or has no
    /// explicit port, otherwise the stream port minus one (the firmware puts the stream on +1).
    pub fn derived_control(&self) -> HttpUrl {
        let port = match self.port {
            None | Some(81) | Some(1) => None,
            Some(p) => Some(p - 1),
        };
        HttpUrl {
            host: self.host.clone(),
            port,
            path: "/".into(),
        }
    }

    /// `scheme://host[:port]` without the path.
    pub fn origin(&self) -> String {
        match self.port {
            Some(p) => format!("http://{}:{p}", self.host),
            None => format!("http://{}", self.host),
        }
    }

    /// `origin` + `path` (path must start with `/`).
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingStyle {
    VirtualHost,
    Path,
}

/// A time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime {
    pub hour: u8,
    pub minute: u8,
}

impl ClockTime {
    pub fn parse(s: &str) -> Result<ClockTime, String> {
        let bad = || format!("`{s}` is not a time of day HH:MM (00:00 to 23:59)");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.is_empty() || h.len() > 2 || m.len() != 2 {
            return Err(bad());
        }
        let hour: u8 = h.parse().map_err(|_| bad())?;
        let minute: u8 = m.parse().map_err(|_| bad())?;
        if hour > 23 || minute > 59 {
            return Err(bad());
        }
        Ok(ClockTime { hour, minute })
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// Parses a tc-style rate into bits per second: `3mbit`, `500kbit`, `375kbps` (bytes), `64000`
/// (bits). SI multipliers (k = 1000), as `tc` uses for `bit` units.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim_start();
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a rate (e.g. 3mbit, 500kbit, 375kbps)"))?;
    let mult: f64 = match unit {
        "" | "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (bit, kbit, mbit, gbit; bps, kbps, mbps are bytes/s)"
            ))
        }
    };
    let bits = (value * mult).round();
    if !(8_000.0..=100e9).contains(&bits) {
        return Err(format!("`{s}` is out of range (8kbit to 100gbit)"));
    }
    Ok(bits as u64)
}

/// Parses a DSCP setting into the 6-bit code point, `None` for `none`.
pub fn parse_dscp(s: &str) -> Result<Option<u8>, String> {
    let t = s.to_ascii_lowercase();
    let v = match t.as_str() {
        "none" => return Ok(None),
        "ef" => 46,
        _ if t.starts_with("cs") && t.len() == 3 => match t.as_bytes()[2] {
            d @ b'0'..=b'7' => (d - b'0') * 8,
            _ => return Err(format!("`{s}` is not a DSCP class")),
        },
        _ if t.starts_with("af") && t.len() == 4 => {
            let (c, p) = (t.as_bytes()[2], t.as_bytes()[3]);
            if !(b'1'..=b'4').contains(&c) || !(b'1'..=b'3').contains(&p) {
                return Err(format!("`{s}` is not a DSCP class"));
            }
            (c - b'0') * 8 + (p - b'0') * 2
        }
        _ => match t.parse::<u8>() {
            Ok(n) if n <= 63 => n,
            _ => return Err(format!("`{s}` is not a DSCP value")),
        },
    };
    Ok(Some(v))
}

/// Every setting, resolved and typed. Built by [`load`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The camera these settings are for, `None` for global-only settings.
    pub camera: Option<String>,
    pub camera_url: Option<HttpUrl>,
    pub control_url: Option<HttpUrl>,
    pub seg_seconds: u32,
    pub ram_dir: PathBuf,
    pub ram_budget_mb: u64,
    pub ram_min_free_mb: u64,
    pub key_tz: Tz,
    pub key_template: KeyTemplate,
    pub b2_profile: String,
    pub b2_region: Option<String>,
    pub b2_endpoint: Option<String>,
    pub b2_bucket: Option<String>,
    pub b2_addressing_style: AddressingStyle,
    pub require_clock_sync: bool,
    /// KiB/s (1024 B/s); 0 = unlimited.
    pub rate_kbps: u64,
    /// DSCP code point (0..=63), `None` to leave sockets unmarked.
    pub upload_dscp: Option<u8>,
    /// `OBJECT_LOCK_DAYS` and `OBJECT_LOCK_MODE`; `None` when uploads are not locked.
    pub object_lock: Option<ObjectLock>,
    pub x264_preset: String,
    pub x264_bitrate_kbps: u32,
    pub keyframe_interval: u32,
    /// `ENCODER` and `ENCODER_DEVICE`.
    pub encoder: crate::encoder::EncoderSetting,
    pub encoder_device: PathBuf,
    pub stall_timeout_s: u32,
    pub day_start: ClockTime,
    pub night_start: ClockTime,
    pub schedule_tz: Tz,
    /// Presets by lowercase name (`day`, `night`, ...), variable → value.
    pub presets: BTreeMap<String, BTreeMap<String, i32>>,
    pub shaper_rate_bps: u64,
    pub shaper_dev: Option<String>,
    pub log_level: String,
    /// `RUN_DIR`: the recorders' live sockets are `RUN_DIR/seg-<camera>/live.sock`.
    pub run_dir: PathBuf,
    /// `WEB_LISTEN`.
    pub web_listen: std::net::SocketAddr,
    pub web_max_connections: u32,
    pub web_viewers_per_camera: u32,
    /// `visdcam alert`: where alerts go and when they are raised.
    pub alert_url: Option<String>,
    pub alert_email: Option<String>,
    pub alert_camera_down_s: u64,
    pub alert_upload_failing_s: u64,
    pub alert_clock_unsynced_s: u64,
    pub alert_ram_disk_percent: u64,
    /// Where each key that was set explicitly came from.
    pub origins: BTreeMap<String, Origin>,
}

impl Settings {
    /// Where `key` was set, or a description of where to set it.
    pub fn origin_of(&self, key: &str) -> String {
        match self.origins.get(key) {
            Some(o) => o.to_string(),
            None => "default".into(),
        }
    }

    /// The camera's RAM directory (`RAM_DIR/<camera>`).
    pub fn camera_dir(&self) -> Option<PathBuf> {
        self.camera.as_ref().map(|c| self.ram_dir.join(c))
    }

    pub fn ram_budget_bytes(&self) -> u64 {
        self.ram_budget_mb * 1024 * 1024
    }

    pub fn ram_min_free_bytes(&self) -> u64 {
        self.ram_min_free_mb * 1024 * 1024
    }

    /// The camera's live-frame socket (`RUN_DIR/seg-<camera>/live.sock`).
    pub fn live_socket(&self, camera: &str) -> PathBuf {
        self.run_dir.join(format!("seg-{camera}")).join(LIVE_SOCKET)
    }

    /// Upload cap in bytes per second, `None` when unlimited.
    pub fn rate_bytes_per_sec(&self) -> Option<u64> {
        (self.rate_kbps > 0).then_some(self.rate_kbps * 1024)
    }
}

/// Which file a source is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FileRole {
    Global,
    Camera,
}

/// A raw value with its origin, before typing.
struct Raw {
    value: String,
    origin: Origin,
}

/// Reads one file into raw values, checking syntax, key names, scope and duplicates.
fn collect(
    src: Source<'_>,
    role: FileRole,
    into: &mut BTreeMap<String, Raw>,
) -> Result<(), ConfigError> {
    let assignments = envfile::parse(src.text).map_err(|e| ConfigError {
        path: src.path.into(),
        line: Some(e.line),
        key: None,
        message: e.message,
    })?;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &assignments {
        if let Some(first) = seen.insert(&a.key, a.line) {
            return Err(ConfigError::at(
                src.path,
                a.line,
                &a.key,
                format!("set twice in this file (first on line {first}); keep one"),
            ));
        }
        let scope =
            match spec(&a.key) {
                Some(s) => s.scope,
                None if preset_key(&a.key).is_some() => Scope::Both,
                None if a.key.starts_with("PRESET_") => return Err(ConfigError::at(
                    src.path,
                    a.line,
                    &a.key,
                    "unknown preset variable: use PRESET_<NAME>_<VAR> with NAME in letters and \
                     digits and VAR a camera /control variable (e.g. PRESET_NIGHT_GAINCEILING)",
                )),
                None => {
                    let hint = closest_key(&a.key)
                        .map(|k| format!(" (did you mean {k}?)"))
                        .unwrap_or_default();
                    return Err(ConfigError::at(
                        src.path,
                        a.line,
                        &a.key,
                        format!("unknown key{hint}"),
                    ));
                }
            };
        match (scope, role) {
            (Scope::Global, FileRole::Camera) => {
                return Err(ConfigError::at(
                    src.path,
                    a.line,
                    &a.key,
                    "can only be set in the global visdcam.conf",
                ))
            }
            (Scope::Camera, FileRole::Global) => {
                return Err(ConfigError::at(
                    src.path,
                    a.line,
                    &a.key,
                    "belongs in a camera's file (cameras/<camera>.conf), not in visdcam.conf",
                ))
            }
            _ => {}
        }
        into.insert(
            a.key.clone(),
            Raw {
                value: a.value.clone(),
                origin: Origin {
                    path: src.path.into(),
                    line: a.line,
                },
            },
        );
    }
    Ok(())
}

/// The known key nearest to a misspelt one, if it is close.
fn closest_key(unknown: &str) -> Option<&'static str> {
    KEYS.iter()
        .map(|k| (edit_distance(unknown, k.name), k.name))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Typed access to raw values with errors at the right file:line.
struct Resolver<'a> {
    raw: &'a BTreeMap<String, Raw>,
    defaults_path: &'a str,
}

impl Resolver<'_> {
    /// The value set (or the default). An empty value of a key without a default means unset.
    fn value(&self, name: &str) -> Option<(&str, Option<&Origin>)> {
        let default = spec(name).and_then(|s| s.default);
        match self.raw.get(name) {
            Some(r) if r.value.is_empty() && default.is_none() => None,
            Some(r) => Some((r.value.as_str(), Some(&r.origin))),
            None => default.map(|d| (d, None)),
        }
    }

    fn err(&self, name: &str, origin: Option<&Origin>, message: String) -> ConfigError {
        let allowed = spec(name).map(|s| s.kind.allowed()).unwrap_or_default();
        let message = if allowed.is_empty() || message.contains("allowed:") {
            message
        } else {
            format!("{message}; allowed: {allowed}")
        };
        match origin {
            Some(o) => ConfigError::at(&o.path, o.line, name, message),
            None => ConfigError {
                path: self.defaults_path.into(),
                line: None,
                key: Some(name.into()),
                message,
            },
        }
    }

    fn int(&self, name: &str) -> Result<u64, ConfigError> {
        let (v, o) = self.value(name).expect("integer keys have defaults");
        let Some(Kind::Int { min, max }) = spec(name).map(|s| s.kind) else {
            unreachable!("{name} is not an integer key")
        };
        match v.parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            Ok(n) => Err(self.err(name, o, format!("{n} is out of range"))),
            Err(_) => Err(self.err(name, o, format!("`{v}` is not a whole number"))),
        }
    }

    fn duration(&self, name: &str) -> Result<u64, ConfigError> {
        let Some(Kind::Duration { min, max }) = spec(name).map(|s| s.kind) else {
            unreachable!("{name} is not a duration key")
        };
        self.req(name, |v| {
            let d = crate::cli::parse_duration(v)?.as_secs();
            if (min..=max).contains(&d) {
                Ok(d)
            } else {
                Err(format!("`{v}` is out of range"))
            }
        })
    }

    fn with<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.value(name) {
            None => Ok(None),
            Some((v, o)) => f(v).map(Some).map_err(|m| self.err(name, o, m)),
        }
    }

    fn req<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self
            .with(name, f)?
            .expect("keys read with req have defaults"))
    }

    fn text(&self, name: &str) -> Option<String> {
        self.value(name)
            .map(|(v, _)| v.to_string())
            .filter(|v| !v.is_empty())
    }

    fn choice(&self, name: &str) -> Result<String, ConfigError> {
        let Some(Kind::Choice(options)) = spec(name).map(|s| s.kind) else {
            unreachable!("{name} is not a choice key")
        };
        self.req(name, |v| {
            options
                .iter()
                .find(|o| o.eq_ignore_ascii_case(v))
                .map(|o| o.to_string())
                .ok_or_else(|| format!("`{v}` is not an option"))
        })
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" | "on" => Ok(true),
        "no" | "false" | "0" | "off" => Ok(false),
        _ => Err(format!("`{v}` is not yes or no")),
    }
}

fn parse_tz(v: &str) -> Result<Tz, String> {
    v.parse::<Tz>()
        .map_err(|_| format!("`{v}` is not a known time zone"))
}

fn parse_endpoint(v: &str) -> Result<String, String> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| format!("`{v}` must start with https:// (or http:// for a local server)"))?;
    if rest.is_empty() || rest.contains(char::is_whitespace) {
        return Err(format!("`{v}` has no host"));
    }
    Ok(v.trim_end_matches('/').to_string())
}

/// A webhook URL: http(s), kept exactly (its path and query matter, e.g. ntfy's template).
fn parse_alert_url(v: &str) -> Result<String, String> {
    let rest = v
        .strip_prefix("https://")
        .or_else(|| v.strip_prefix("http://"))
        .ok_or_else(|| format!("`{v}` must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err(format!("`{v}` has no host"));
    }
    Ok(v.to_string())
}

/// An e-mail address for sendmail's To: one `local@domain`, nothing a header could smuggle.
fn parse_email(v: &str) -> Result<Option<String>, String> {
    if v.is_empty() {
        return Ok(None);
    }
    let ok = v.split_once('@').is_some_and(|(l, d)| {
        !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
    }) && !v
        .contains(|c: char| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c))
        && v.matches('@').count() == 1;
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(format!(
            "`{v}` is not an e-mail address such as me@example.org"
        ))
    }
}

fn parse_abs_path(v: &str) -> Result<PathBuf, String> {
    if !v.starts_with('/') || v.split('/').any(|c| c == "..") {
        return Err(format!("`{v}` is not an absolute path without `..`"));
    }
    Ok(PathBuf::from(v))
}

fn parse_listen(v: &str) -> Result<std::net::SocketAddr, String> {
    v.parse::<std::net::SocketAddr>()
        .map_err(|_| format!("`{v}` is not an address and port"))
}

/// Combines the global file (optional) and one camera's file (optional) into [`Settings`].
///
/// `defaults_path` names the file a person should edit when a default is wrong or a required
/// key is missing (normally the global file's path).
pub fn load(
    global: Option<Source<'_>>,
    camera: Option<(&str, Source<'_>)>,
    defaults_path: &str,
) -> Result<Settings, ConfigError> {
    let mut raw = BTreeMap::new();
    if let Some(g) = global {
        collect(g, FileRole::Global, &mut raw)?;
    }
    if let Some((name, src)) = camera {
        validate_camera_name(name).map_err(|m| ConfigError {
            path: src.path.into(),
            line: None,
            key: None,
            message: m,
        })?;
        collect(src, FileRole::Camera, &mut raw)?;
    }
    let r = Resolver {
        raw: &raw,
        defaults_path,
    };

    let camera_url = r.with("CAMERA_URL", HttpUrl::parse)?;
    let control_url = r.with("CONTROL_URL", HttpUrl::parse)?;
    if let Some((name, src)) = camera {
        if camera_url.is_none() {
            return Err(ConfigError {
                path: src.path.into(),
                line: None,
                key: Some("CAMERA_URL".into()),
                message: format!(
                    "missing: camera {name} needs its stream, e.g. CAMERA_URL=http://192.168.1.33:81/stream"
                ),
            });
        }
    }
    let control_url = control_url.or_else(|| camera_url.as_ref().map(HttpUrl::derived_control));

    let mut presets: BTreeMap<String, BTreeMap<String, i32>> = BTreeMap::new();
    for (name, values) in [
        ("day", camvars::DEFAULT_DAY),
        ("night", camvars::DEFAULT_NIGHT),
    ] {
        let p = presets.entry(name.into()).or_default();
        for (var, value) in values {
            p.insert((*var).into(), *value);
        }
    }
    for (k, v) in &raw {
        let Some((preset, var)) = preset_key(k) else {
            continue;
        };
        let value: i32 = v.value.trim().parse().map_err(|_| {
            ConfigError::at(
                &v.origin.path,
                v.origin.line,
                k,
                format!(
                    "`{}` is not an integer; allowed: {} to {}",
                    v.value, var.min, var.max
                ),
            )
        })?;
        if !(var.min..=var.max).contains(&value) {
            return Err(ConfigError::at(
                &v.origin.path,
                v.origin.line,
                k,
                format!(
                    "{value} is out of range for {}; allowed: {} to {}",
                    var.name, var.min, var.max
                ),
            ));
        }
        presets
            .entry(preset)
            .or_default()
            .insert(var.name.into(), value);
    }

    let day_start = r.req("DAY_START", ClockTime::parse)?;
    let night_start = r.req("NIGHT_START", ClockTime::parse)?;
    if day_start == night_start {
        let (_, o) = r.value("NIGHT_START").expect("has a default");
        return Err(r.err(
            "NIGHT_START",
            o,
            format!("{night_start} is the same as DAY_START; allowed: a different time"),
        ));
    }

    Ok(Settings {
        camera: camera.map(|(n, _)| n.to_string()),
        camera_url,
        control_url,
        seg_seconds: r.int("SEG_SECONDS")? as u32,
        ram_dir: r.req("RAM_DIR", parse_abs_path)?,
        ram_budget_mb: r.int("RAM_BUDGET_MB")?,
        ram_min_free_mb: r.int("RAM_MIN_FREE_MB")?,
        key_tz: r.req("KEY_TZ", parse_tz)?,
        key_template: r.req("KEY_TEMPLATE", KeyTemplate::parse)?,
        b2_profile: r.text("B2_PROFILE").unwrap_or_else(|| "b2".into()),
        b2_region: r.text("B2_REGION"),
        b2_endpoint: r.with("B2_ENDPOINT", parse_endpoint)?,
        b2_bucket: r.text("B2_BUCKET"),
        b2_addressing_style: match r.choice("B2_ADDRESSING_STYLE")?.as_str() {
            "path" => AddressingStyle::Path,
            _ => AddressingStyle::VirtualHost,
        },
        require_clock_sync: r.req("REQUIRE_CLOCK_SYNC", parse_bool)?,
        rate_kbps: r.int("RATE_KBPS")?,
        upload_dscp: r.req("UPLOAD_DSCP", parse_dscp)?,
        object_lock: ObjectLock::from_days(
            r.int("OBJECT_LOCK_DAYS")? as u32,
            r.req("OBJECT_LOCK_MODE", |v| {
                LockMode::parse(v).map_err(|_| format!("`{v}` is not an option"))
            })?,
        ),
        x264_preset: r.choice("X264_PRESET")?,
        x264_bitrate_kbps: r.int("X264_BITRATE_KBPS")? as u32,
        keyframe_interval: r.int("KEYFRAME_INTERVAL")? as u32,
        encoder: r.req("ENCODER", |v| {
            crate::encoder::EncoderSetting::parse(v)
                .ok_or_else(|| format!("`{v}` is not an option"))
        })?,
        encoder_device: r.req("ENCODER_DEVICE", parse_abs_path)?,
        stall_timeout_s: r.int("STALL_TIMEOUT_S")? as u32,
        day_start,
        night_start,
        schedule_tz: r.req("SCHEDULE_TZ", parse_tz)?,
        presets,
        shaper_rate_bps: r.req("SHAPER_RATE", parse_rate)?,
        shaper_dev: r.with("SHAPER_DEV", |v| {
            crate::tcplan::validate_device(v)
                .map(|()| v.to_string())
                .map_err(|e| e.to_string())
        })?,
        log_level: r.choice("LOG_LEVEL")?,
        run_dir: r.req("RUN_DIR", parse_abs_path)?,
        web_listen: r.req("WEB_LISTEN", parse_listen)?,
        web_max_connections: r.int("WEB_MAX_CONNECTIONS")? as u32,
        web_viewers_per_camera: r.int("WEB_VIEWERS_PER_CAMERA")? as u32,
        alert_url: r.with("ALERT_URL", parse_alert_url)?,
        alert_email: r.with("ALERT_EMAIL", parse_email)?.flatten(),
        alert_camera_down_s: r.duration("ALERT_CAMERA_DOWN")?,
        alert_upload_failing_s: r.duration("ALERT_UPLOAD_FAILING")?,
        alert_clock_unsynced_s: r.duration("ALERT_CLOCK_UNSYNCED")?,
        alert_ram_disk_percent: r.int("ALERT_RAM_DISK_PERCENT")?,
        origins: raw
            .iter()
            .map(|(k, v)| (k.clone(), v.origin.clone()))
            .collect(),
    })
}

/// Checks that `value` is valid for `key` on its own (for `setdur` and friends): the error
/// says what is allowed.
pub fn check_value(key: &str, value: &str) -> Result<(), String> {
    let s = spec(key).ok_or_else(|| format!("unknown key {key}"))?;
    let raw: BTreeMap<String, Raw> = [(
        key.to_string(),
        Raw {
            value: value.into(),
            origin: Origin {
                path: String::new(),
                line: 0,
            },
        },
    )]
    .into_iter()
    .collect();
    let r = Resolver {
        raw: &raw,
        defaults_path: "",
    };
    let result = match s.kind {
        Kind::Int { .. } => r.int(key).map(drop),
        Kind::Choice(_) => r.choice(key).map(drop),
        _ => Ok(()),
    };
    result.map_err(|e| e.message)
}

#[cfg(test)]
mod tests;

/// The configuration reference (docs/reference/config.md), rendered from [`KEYS`] so the
/// documentation cannot drift from the code.
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from crates/visdcam-core/src/config.rs by `VISDCAM_BLESS=1 cargo test \
         -p visdcam-core --test shipped_config`; do not edit by hand. -->\n\n\
         Files: `/etc/visdcam/visdcam.conf` (global) and `/etc/visdcam/cameras/<camera>.conf` \
         (one per camera; the file name is the camera's name: lowercase letters, digits and `-`). \
         A camera's file overrides the global file. `VISDCAM_CONFIG_DIR` points everything at \
         another directory.\n\n\
         Syntax: `KEY=VALUE` as systemd's `EnvironmentFile=` reads it: blank lines and lines \
         starting with `#` or `;` are ignored, values may be quoted (`\"...\"` with `\\\"`, \
         `\\\\`, `\\$` escapes, or `'...'` literally), a trailing `\\` continues a line. A choice \
         (`one of ...`) may be written in any case. A key set twice in one file, an unknown \
         key or a value out of range is an error that names `file:line`, the key and what is \
         allowed.\n\n\
         Scope: *global* keys only in `visdcam.conf`, *camera* keys only in a camera's file, \
         *both* in either.\n\n\
         | Key | Scope | Allowed | Default | Meaning |\n|---|---|---|---|---|\n",
    );
    for k in KEYS {
        let scope = match k.scope {
            Scope::Global => "global",
            Scope::Camera => "camera",
            Scope::Both => "both",
        };
        let default = match k.default {
            Some(d) => format!("`{d}`"),
            None => "(none)".into(),
        };
        out.push_str(&format!(
            "| `{}` | {scope} | {} | {default} | {} |\n",
            k.name,
            k.kind.allowed().replace('|', "\\|"),
            k.doc.replace('|', "\\|"),
        ));
    }
    out.push_str(
        "\n## Presets: `PRESET_<NAME>_<VARIABLE>`\n\n\
         A preset is a named set of the camera's `/control` variables. `day` and `night` ship \
         with the defaults below; `PRESET_NIGHT_GAINCEILING=6` changes one variable of `night`, \
         `PRESET_DUSK_AEC2=1` starts a preset `dusk`. Scope: both. Values are checked against \
         the OV2640 firmware's ranges:\n\n| Variable | Range | Readable in /status |\n|---|---|---|\n",
    );
    for v in camvars::CONTROL_VARS {
        out.push_str(&format!(
            "| `{}` | {} to {} | {} |\n",
            v.name.to_ascii_uppercase(),
            v.min,
            v.max,
            if v.readable { "yes" } else { "no" }
        ));
    }
    out.push_str(
        "\n## Object keys: `KEY_TEMPLATE`\n\n\
         A template mixes strftime fields (`%Y %m %d %H %M %S`, ...) in `KEY_TZ` with \
         `{camera}` (`cam1`), `{camera_}` (`cam_1`: an underscore before the trailing number, \
         `-` becomes `_`) and `{number}` (`1`). The time is the segment file's modification \
         time, i.e. when the segment ended. The default is visdcam-pi's layout: camera `cam1`, \
         17:42:22 IST on 2025-10-12 → `cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts`. \
         A template must contain `%S` (every segment gets its own key), and is rendered once \
         when loaded: a field chrono parses but cannot format (`%#z`) is refused. Every daemon \
         and `visdcam` refuse (exit 78, `file:line`) a template under which two configured \
         cameras could get the same key: one without `{camera}`, or with only `{camera_}` or \
         `{number}` for names such as `cam1` and `cam-1`, or `front1` and `back1`, since their \
         uploads would overwrite each other. Where daylight-saving \
         time repeats an hour, the second pass gets the zone abbreviation before the \
         extension (`..._02_30_00_CET.ts`) so no key is reused.\n",
    );
    for (name, values) in [
        ("day", camvars::DEFAULT_DAY),
        ("night", camvars::DEFAULT_NIGHT),
    ] {
        out.push_str(&format!("\nDefault `{name}`: "));
        let list: Vec<String> = values.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
        out.push_str(&list.join(", "));
        out.push('\n');
    }
    out
}
