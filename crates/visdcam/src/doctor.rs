//! `doctor`: every check in one go, one line per check: `✔` passed, `✘` failed (with the fix),
//! `–` could not be checked here (with what would make it checkable). Configuration, bucket
//! credentials (present, accepted by a signed HEAD on the bucket, and what the key may do
//! besides writing: list, read; the files systemd hands to the uploader root's alone), the
//! bucket's Object Lock when `OBJECT_LOCK_DAYS` asks for it (one `GET ?object-lock`), clock
//! synchronisation, each camera's MJPEG stream, the RAM disk (mounted, with room, shared by the
//! recorder's and the uploader's users), GStreamer plugins, units enabled and where logs go.
//!
//! Every check that waits on something outside the process runs in its own thread with its
//! own timeouts, and the whole run has one deadline ([`RUN_DEADLINE`]): a check still busy then
//! is reported as failed with what it waited for, so doctor never hangs.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use visdcam_core::cli::{
    credentials_file_problem, format_size, shared_dir_problem, LogStorage, RECORDER_USER,
    SHARED_GROUP, UPLOADER_USER,
};
use visdcam_core::clock::{SyncEvidence, TestClock, TEST_CLOCK_ENV};
use visdcam_core::config::Settings;
use visdcam_core::objectlock::{BucketLock, ObjectLock};
use visdcam_core::units::{self, camera_units};
use visdcam_daemon::clock::{kernel_unsync, TIMESYNCD_FLAG};
use visdcam_daemon::config::{camera_path, global_path, load_camera_from, load_global_from};
use visdcam_s3::creds::CREDSTORE;
use visdcam_s3::{Access, CredError, Locations, Store, StoreConfig, StoreError, Timeouts};

use crate::fail::{self, Failure};
use crate::ram::fs_info;
use crate::systemd::{Systemd, UnitInfo};
use crate::Ctx;

/// GStreamer elements the recorder's pipeline needs, and the package that ships each.
const ELEMENTS: &[(&str, &str)] = &[
    ("souphttpsrc", "gstreamer1.0-plugins-good"),
    ("multipartdemux", "gstreamer1.0-plugins-good"),
    ("jpegdec", "gstreamer1.0-plugins-good"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
];

/// The RAM disk the package mounts, and the unit that mounts it.
const PACKAGE_RAM_DIR: &str = "/mnt/ramcam";
const RAM_MOUNT_UNIT: &str = "mnt-ramcam.mount";

/// Connecting to a camera or the bucket endpoint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Waiting for an answer's head, or for the first JPEG of a stream.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// One `gst-inspect-1.0` run (the first one may rebuild the plugin registry).
const GST_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole run: every check has answered by then or is reported as hanging.
pub const RUN_DEADLINE: Duration = Duration::from_secs(25);

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Pass,
    Fail,
    /// Could not be checked here (not a failure).
    Skip,
}

/// One output line.
#[derive(Debug)]
struct Line {
    mark: Mark,
    what: String,
    fix: Option<String>,
}

impl Line {
    fn pass(what: impl Into<String>) -> Line {
        Line {
            mark: Mark::Pass,
            what: what.into(),
            fix: None,
        }
    }

    fn fail(what: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            mark: Mark::Fail,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    fn skip(what: impl Into<String>, fix: impl Into<String>) -> Line {
        Line {
            mark: Mark::Skip,
            what: what.into(),
            fix: Some(fix.into()),
        }
    }

    /// `✔ what`, `✘ what — fix: …`, `– what — fix: …`; always a single line.
    fn render(&self) -> String {
        let mark = match self.mark {
            Mark::Pass => "✔",
            Mark::Fail => "✘",
            Mark::Skip => "–",
        };
        let one = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        match &self.fix {
            Some(fix) => format!("{mark} {} — fix: {}", one(&self.what), one(fix)),
            None => format!("{mark} {}", one(&self.what)),
        }
    }
}

/// The lines printed so far and how many failed or were skipped.
#[derive(Default)]
struct Report {
    failed: usize,
    skipped: usize,
}

impl Report {
    fn print(&mut self, line: Line) {
        match line.mark {
            Mark::Fail => self.failed += 1,
            Mark::Skip => self.skipped += 1,
            Mark::Pass => {}
        }
        println!("{}", line.render());
    }
}

/// A check running in its own thread.
struct Pending<T> {
    rx: mpsc::Receiver<T>,
}

impl<T: Send + 'static> Pending<T> {
    fn spawn(f: impl FnOnce() -> T + Send + 'static) -> Pending<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The receiver is gone only when doctor already gave up on this check.
            let _ = tx.send(f());
        });
        Pending { rx }
    }

    /// The result, or `None` when the run's deadline passed first.
    fn wait(&self, deadline: Instant) -> Option<T> {
        self.rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .ok()
    }
}

/// The line for a check that did not answer before the run's deadline.
fn hung(what: &str, waited_for: &str) -> Line {
    Line::fail(
        format!(
            "{what}: no answer within {} s ({waited_for})",
            RUN_DEADLINE.as_secs()
        ),
        format!("{waited_for} hangs; run doctor again, and look at that first"),
    )
}

pub fn run(ctx: &Ctx) -> fail::Result<()> {
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut r = Report::default();
    let dir = ctx.dir_str();
    let config_fix = "edit the file at that line (docs/reference/config.md lists every key)";

    // Configuration: files only, no waiting.
    let global = match load_global_from(&ctx.dir) {
        Ok(g) => {
            r.print(Line::pass(format!(
                "configuration: {} is valid",
                global_path(&ctx.dir).display()
            )));
            Some(g)
        }
        Err(e) => {
            r.print(Line::fail(
                format!("configuration: {}", visdcam_daemon::error_chain(&e)),
                config_fix,
            ));
            None
        }
    };
    if let Some(g) = &global {
        r.print(check_web(ctx, g));
    }
    let mut cameras: Vec<Settings> = Vec::new();
    if ctx.known.is_empty() {
        r.print(Line::fail(
            format!("cameras: none configured in {dir}/cameras/"),
            format!(
                "copy {dir}/cameras/cam1.conf.example to {dir}/cameras/cam1.conf and set \
                 CAMERA_URL"
            ),
        ));
    }
    for cam in &ctx.known {
        match load_camera_from(&ctx.dir, cam) {
            Ok(s) => {
                r.print(Line::pass(format!(
                    "configuration: {} is valid",
                    camera_path(&ctx.dir, cam).display()
                )));
                cameras.push(s);
            }
            // The global file's error was reported above; each camera repeats it.
            Err(_) if global.is_none() => r.print(Line::skip(
                format!("configuration: camera {cam} not checked"),
                format!("fix {} first", global_path(&ctx.dir).display()),
            )),
            Err(e) => r.print(Line::fail(
                format!("configuration: {}", visdcam_daemon::error_chain(&e)),
                config_fix,
            )),
        }
    }

    // Settings the uploaders and recorders run with: the cameras', or the global file's when
    // no camera is usable. Bucket and RAM disk are checked once per distinct value.
    let effective: Vec<Settings> = if cameras.is_empty() {
        global.iter().cloned().collect()
    } else {
        cameras.clone()
    };
    let bucket_id = |s: &Settings| {
        format!(
            "{:?} {:?} {:?} {} {:?}",
            s.b2_endpoint, s.b2_bucket, s.b2_region, s.b2_profile, s.b2_addressing_style
        )
    };
    let mut bucket_seen = Vec::new();
    let mut buckets = Vec::new();
    for s in &effective {
        let id = bucket_id(s);
        if !bucket_seen.contains(&id) {
            // Object Lock is asked of this bucket when any camera uploading to it asks.
            let lock = effective
                .iter()
                .filter(|o| bucket_id(o) == id)
                .find_map(|o| o.object_lock.map(|l| (o.origin_of("OBJECT_LOCK_DAYS"), l)));
            bucket_seen.push(id);
            let s = s.clone();
            buckets.push(Pending::spawn(move || check_bucket(&s, lock)));
        }
    }

    // Everything that waits runs at once.
    let units_list: Vec<String> = ctx
        .known
        .iter()
        .flat_map(|c| camera_units(c))
        .chain([units::DAYNIGHT_TIMER.into(), units::SHAPER_SERVICE.into()])
        .collect();
    let unit_infos = {
        let list = units_list.clone();
        Pending::spawn(move || read_units(&list))
    };
    let streams: Vec<(String, Pending<Stream>)> = cameras
        .iter()
        .map(|s| {
            let s = s.clone();
            (
                s.camera.clone().unwrap_or_default(),
                Pending::spawn(move || check_stream(&s)),
            )
        })
        .collect();
    let gst = Pending::spawn(check_gstreamer);

    // Credentials and bucket (and its Object Lock when a camera asks for it).
    for p in &buckets {
        match p.wait(deadline) {
            Some(lines) => lines.into_iter().for_each(|l| r.print(l)),
            None => r.print(hung("bucket", "the HEAD request to B2_ENDPOINT")),
        }
    }
    if let Some(line) = check_credentials_files() {
        r.print(line);
    }
    if effective.is_empty() {
        r.print(Line::skip(
            "credentials: not checked",
            format!("fix {} first", global_path(&ctx.dir).display()),
        ));
    }

    r.print(check_clock());

    // Cameras streaming; a busy stream is fine when our own recorder is what keeps it busy.
    let units = unit_infos.wait(deadline);
    for (cam, p) in &streams {
        let line = match p.wait(deadline) {
            Some(Stream::Line(l)) => l,
            Some(Stream::Busy { url, status_ok }) => busy_line(cam, &url, status_ok, &units),
            None => hung(&format!("camera {cam}"), "the camera's HTTP server"),
        };
        r.print(line);
    }

    // RAM disk(s).
    let mut ram_dirs: Vec<&Path> = Vec::new();
    for s in &effective {
        if !ram_dirs.contains(&s.ram_dir.as_path()) {
            ram_dirs.push(&s.ram_dir);
        }
    }
    for dir in ram_dirs {
        let users: Vec<Settings> = cameras
            .iter()
            .filter(|c| c.ram_dir == dir)
            .cloned()
            .collect();
        let s = effective
            .iter()
            .find(|s| s.ram_dir == dir)
            .expect("from effective");
        r.print(check_ram_disk(s, &users));
    }
    if effective.is_empty() {
        r.print(Line::skip(
            "RAM disk: not checked",
            format!("fix {} first", global_path(&ctx.dir).display()),
        ));
    }

    r.print(
        gst.wait(deadline)
            .unwrap_or_else(|| hung("GStreamer", "gst-inspect-1.0")),
    );
    for line in check_encoders(&cameras) {
        r.print(line);
    }

    // Units.
    match units {
        Some(Ok(infos)) => {
            for i in infos {
                r.print(unit_line(i));
            }
        }
        Some(Err(e)) => r.print(Line::skip(
            format!("units: not checked: {e}"),
            "run doctor on the Pi itself, where systemd is PID 1 (DBUS_SYSTEM_BUS_ADDRESS \
             names another bus)",
        )),
        None => r.print(hung("units", "systemd over D-Bus")),
    }

    let storage = crate::ramlogs::current_storage();
    r.print(match storage {
        LogStorage::Persistent => Line::pass(format!(
            "logs: kept {} (persistent) — `sudo visdcam ramlogs on` keeps them in RAM",
            storage.describe()
        )),
        LogStorage::Volatile => Line::pass(format!("logs: kept {} (volatile)", storage.describe())),
        LogStorage::Discarded => Line::pass(format!("logs: kept {}", storage.describe())),
    });

    let not_checked = match r.skipped {
        0 => String::new(),
        n => format!(" ({n} not checked)"),
    };
    if r.failed > 0 {
        return Err(Failure::failed(format!(
            "{} check(s) failed{not_checked}",
            r.failed
        )));
    }
    println!("all checks passed{not_checked}");
    Ok(())
}

/// The line for credentials that could not be loaded.
/// The live-view page: where it listens (WEB_LISTEN) and whether it needs, and has, its
/// password. Files only, no waiting.
fn check_web(ctx: &Ctx, g: &Settings) -> Line {
    let origin = g.origin_of("WEB_LISTEN");
    let pass_file = crate::web::password::path(&ctx.dir);
    let stored = match crate::web::password::load(&ctx.dir) {
        Ok(s) => s,
        Err(e) => return Line::fail(format!("live view: {e}"), "sudo visdcam web-password"),
    };
    let loopback = g.web_listen.ip().is_loopback();
    match (loopback, stored.is_some()) {
        (true, false) => Line::pass(format!(
            "live view: WEB_LISTEN={} ({origin}) is this machine only; no password needed",
            g.web_listen
        )),
        (true, true) => Line::pass(format!(
            "live view: WEB_LISTEN={} ({origin}) is this machine only; a password is set              ({}) and asked for",
            g.web_listen,
            pass_file.display()
        )),
        (false, true) => Line::pass(format!(
            "live view: WEB_LISTEN={} ({origin}) reaches the network and asks for the password              in {}",
            g.web_listen,
            pass_file.display()
        )),
        (false, false) => Line::fail(
            format!(
                "live view: WEB_LISTEN={} ({origin}) reaches the network but no password is set:                  the page refuses to start",
                g.web_listen
            ),
            "sudo visdcam web-password (or WEB_LISTEN=127.0.0.1:8088)",
        ),
    }
}

fn credentials_line(e: &CredError, profile: &str) -> Line {
    let write_it = |at: &Path| {
        format!(
            "put an aws-cli style file with a [{profile}] profile (aws_access_key_id, \
             aws_secret_access_key) at {} (mode 0600)",
            at.display()
        )
    };
    match e {
        CredError::NoFile { tried } if tried.len() == 1 => Line::fail(
            format!(
                "credentials: cannot read {}: no such file",
                tried[0].display()
            ),
            write_it(&tried[0]),
        ),
        CredError::NoFile { tried } => Line::fail(
            format!(
                "credentials: none of {} exists",
                tried
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            write_it(Path::new(CREDSTORE[0])),
        ),
        CredError::Unreadable { kind, .. } if *kind == std::io::ErrorKind::PermissionDenied => {
            Line::fail(
                format!("credentials: {e}"),
                "run doctor with sudo (the file is root's, mode 0600)",
            )
        }
        CredError::Unreadable { path, .. } => Line::fail(
            format!("credentials: {e}"),
            format!("check {}", path.display()),
        ),
        CredError::Invalid { path, why } if why.starts_with("line ") => Line::fail(
            format!("credentials: {e}"),
            format!(
                "fix that line of {} (aws-cli style: [{profile}], then key = value lines)",
                path.display()
            ),
        ),
        CredError::Invalid { path, why } => Line::fail(
            format!(
                "credentials: no [{profile}] profile with aws_access_key_id and \
                 aws_secret_access_key in {} ({why})",
                path.display()
            ),
            "add them, or set B2_PROFILE to the profile's name",
        ),
    }
}

/// The credentials and bucket line, then, when `lock` (where `OBJECT_LOCK_DAYS` is set, and
/// the lock) is given and the bucket accepted the key, the Object Lock line.
fn check_bucket(s: &Settings, lock: Option<(String, ObjectLock)>) -> Vec<Line> {
    let (line, store) = check_bucket_access(s);
    let mut lines = vec![line];
    if let (Some(store), Some((origin, lock))) = (store, lock) {
        lines.push(lock_line(&store, &origin, lock));
    }
    lines
}

/// Whether the bucket has the Object Lock the uploads will ask for: one `GET ?object-lock`.
fn lock_line(store: &Store, origin: &str, lock: ObjectLock) -> Line {
    let bucket = &store.config().bucket;
    let asked = format!(
        "OBJECT_LOCK_DAYS={} ({origin}, {} mode)",
        lock.days, lock.mode
    );
    match store.object_lock_configuration() {
        Ok(BucketLock {
            enabled: true,
            default,
        }) => {
            let default = match default {
                Some(d) => format!(
                    "; objects uploaded without a lock get the bucket's default, {} mode for {} \
                     days",
                    d.mode, d.days
                ),
                None => String::new(),
            };
            Line::pass(format!(
                "object lock: bucket {bucket} has Object Lock on, as \
                 {asked} needs{default}"
            ))
        }
        Ok(BucketLock { enabled: false, .. }) => Line::fail(
            format!(
                "object lock: {asked}, but bucket {bucket} has no Object Lock: it refuses every \
                 upload"
            ),
            format!(
                "{} (B2 web UI: the bucket's Object Lock setting; it cannot be turned off \
                 again)",
                visdcam_core::objectlock::FIX_NO_LOCK
            ),
        ),
        Err(StoreError::Answer { status: 403, .. }) => Line::skip(
            format!(
                "object lock: {asked}; the key may not read whether bucket {bucket} has Object \
                 Lock (B2's readBucketRetentions), as suits the Pi"
            ),
            "the uploader's first upload tells: without Object Lock on the bucket it is \
             refused, and STATUS and the log say so",
        ),
        Err(e) => Line::skip(
            format!(
                "object lock: {asked}; reading bucket {bucket}'s Object Lock setting failed: {}",
                visdcam_s3::Failure::from(e).why()
            ),
            "run doctor again; the uploader's first upload tells as well",
        ),
    }
}

/// Credentials and bucket through the uploader's own S3 client: the same files, the same
/// signing, the same error table; only the timeouts are doctor's. The store is returned when
/// the bucket accepted the key.
fn check_bucket_access(s: &Settings) -> (Line, Option<Store>) {
    let (Some(endpoint), Some(bucket)) = (&s.b2_endpoint, &s.b2_bucket) else {
        return (
            Line::fail(
                "bucket: B2_ENDPOINT and B2_BUCKET are not both set",
                "set them in /etc/visdcam/visdcam.conf",
            ),
            None,
        );
    };
    let cfg = StoreConfig {
        endpoint: endpoint.clone(),
        bucket: bucket.clone(),
        style: s.b2_addressing_style,
        region: s.b2_region.clone(),
        profile: s.b2_profile.clone(),
        dscp: None,
        object_lock: s.object_lock,
    };
    if let Err(e) = Store::check_config(&cfg) {
        return (
            Line::fail(
                format!("bucket: {e}"),
                "fix B2_ENDPOINT, B2_BUCKET or B2_ADDRESSING_STYLE",
            ),
            None,
        );
    }
    let timeouts = Timeouts {
        connect: CONNECT_TIMEOUT,
        per_read: ANSWER_TIMEOUT,
        per_write: ANSWER_TIMEOUT,
        global: Some(CONNECT_TIMEOUT + ANSWER_TIMEOUT),
    };
    let store = Store::with_timeouts(cfg, Locations::for_cli(), timeouts);
    let loaded = match store.credentials() {
        Ok(l) => l,
        Err(e) => return (credentials_line(&e, &s.b2_profile), None),
    };
    let profile = format!("{} profile [{}]", loaded.source.display(), s.b2_profile);
    let accepted = format!("credentials: {profile} accepted by bucket {bucket} at {endpoint}");
    let (status, code) = match store.probe_bucket() {
        Ok(()) => return (access_line(&accepted, store.probe_access()), Some(store)),
        Err(StoreError::Credentials(e)) => return (credentials_line(&e, &s.b2_profile), None),
        Err(StoreError::Config(e)) => {
            return (
                Line::fail(
                    format!("bucket: {e}"),
                    "fix B2_ENDPOINT, B2_BUCKET or B2_ADDRESSING_STYLE",
                ),
                None,
            )
        }
        Err(StoreError::Transport(f)) => {
            return (
                Line::fail(
                    format!("bucket: cannot reach {endpoint}: {}", f.why()),
                    "check the network and B2_ENDPOINT",
                ),
                None,
            )
        }
        Err(StoreError::Answer { status, code, .. }) => (status, code.unwrap_or_default()),
    };
    let answer = if code.is_empty() {
        status.to_string()
    } else {
        format!("{status} {code}")
    };
    let line = match (status, code.as_str()) {
        // Signed right, but not allowed to look at the bucket: a key that may only write
        // (B2's writeFiles alone) is refused the HEAD of the bucket on some stores.
        (403, "AccessDenied") => {
            return (access_line(&accepted, store.probe_access()), Some(store));
        }
        (404, _) | (_, "NoSuchBucket") => Line::fail(
            format!("bucket: {bucket} does not exist at {endpoint} (HEAD answered {answer})"),
            "check B2_BUCKET (the bucket's name, not its id), or create the bucket",
        ),
        (_, "RequestTimeTooSkewed") => Line::fail(
            format!(
                "credentials: {profile} refused by bucket {bucket}: this clock is more than 15 \
                 minutes off (HEAD answered {answer})"
            ),
            "synchronise the clock (see the clock line)",
        ),
        (403 | 401, _) => Line::fail(
            format!(
                "credentials: {profile} refused by bucket {bucket} at {endpoint} (HEAD answered \
                 {answer})"
            ),
            "check aws_access_key_id and aws_secret_access_key (an application key's secret is \
             shown once: make a new key if in doubt), and that the key may access this bucket",
        ),
        (301 | 400, _) => Line::fail(
            format!("bucket: {bucket} at {endpoint}: HEAD answered {answer}"),
            "check B2_REGION and B2_ENDPOINT (wrong region?)",
        ),
        _ => Line::fail(
            format!("bucket: {bucket} at {endpoint}: HEAD answered {answer}"),
            "check B2_ENDPOINT and the bucket's state",
        ),
    };
    (line, None)
}

/// The credentials line of a key the bucket accepted, with what it may do besides writing.
/// Writing itself is not tried: doctor stores nothing.
fn access_line(accepted: &str, access: Result<Access, StoreError>) -> Line {
    const UNTESTED: &str = "writing is not tried here; the uploader's first upload is";
    match access {
        Ok(Access {
            list: false,
            read: false,
        }) => Line::pass(format!(
            "{accepted}: the key cannot list or read, as recommended for the Pi (a write-only \
             key; {UNTESTED})"
        )),
        Ok(Access {
            list: true,
            read: true,
        }) => Line::pass(format!(
            "{accepted}: the key can list and read ({UNTESTED}); a write-only key is safer on \
             the Pi (docs/guide/b2-credentials.md)"
        )),
        Ok(Access { list, read }) => {
            let yes_no = |b: bool| if b { "can" } else { "cannot" };
            Line::pass(format!(
                "{accepted}: the key {} list and {} read ({UNTESTED}); a write-only key is \
                 safer on the Pi (docs/guide/b2-credentials.md)",
                yes_no(list),
                yes_no(read)
            ))
        }
        Err(e) => Line::fail(
            format!(
                "{accepted}, but probing what the key may do failed: {}",
                visdcam_s3::Failure::from(e).why()
            ),
            "run doctor again; check the network and the key's capabilities",
        ),
    }
}

/// The clock as the uploader judges it (kernel `STA_UNSYNC` or timesyncd's flag; a test clock
/// file under `VISDCAM_TEST_CLOCK` replaces both, as it does for the uploader).
fn check_clock() -> Line {
    let unsynced_fix = "check the network and NTP: `timedatectl timesync-status` (timesyncd) or \
                        `chronyc tracking` (chrony)";
    let (synced, source) = match std::env::var_os(TEST_CLOCK_ENV).filter(|v| !v.is_empty()) {
        Some(p) => {
            let parsed = std::fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|t| TestClock::parse(&t));
            match parsed {
                Ok(t) => (t.synced, format!("test clock {}", Path::new(&p).display())),
                Err(e) => {
                    return Line::fail(
                        format!("clock: {TEST_CLOCK_ENV}={}: {e}", Path::new(&p).display()),
                        format!("fix the file, or unset {TEST_CLOCK_ENV}"),
                    )
                }
            }
        }
        None => {
            let evidence = SyncEvidence {
                kernel_unsync: kernel_unsync(),
                timesyncd_flag: Path::new(TIMESYNCD_FLAG).exists(),
            };
            let source = match (evidence.kernel_unsync, evidence.timesyncd_flag) {
                (_, true) => "systemd-timesyncd",
                (Some(_), false) => "kernel",
                (None, false) => "no kernel state (adjtimex refused) and no timesyncd flag",
            };
            (evidence.synced(), source.to_string())
        }
    };
    if synced {
        Line::pass(format!("clock: synchronised ({source})"))
    } else {
        Line::fail(
            format!(
                "clock: not synchronised ({source}); a Pi has no battery clock, so uploads \
                 wait for it"
            ),
            unsynced_fix,
        )
    }
}

/// What a camera's stream check found.
enum Stream {
    Line(Line),
    /// Connected, but no answer: another client holds the camera's only stream.
    Busy {
        url: String,
        status_ok: bool,
    },
}

fn check_stream(s: &Settings) -> Stream {
    let cam = s.camera.clone().unwrap_or_default();
    let Some(url) = &s.camera_url else {
        return Stream::Line(Line::fail(
            format!("camera {cam}: no CAMERA_URL"),
            "set CAMERA_URL in the camera's file",
        ));
    };
    let url = url.to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_response(Some(ANSWER_TIMEOUT))
        .timeout_recv_body(Some(ANSWER_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let down = |e: String| {
        Stream::Line(Line::fail(
            format!("camera {cam}: {url}: {e}"),
            "check the camera's power and Wi-Fi, and CAMERA_URL",
        ))
    };
    let mut resp = match agent.get(&url).call() {
        Ok(r) => r,
        Err(ureq::Error::Timeout(ureq::Timeout::RecvResponse)) => {
            return Stream::Busy {
                status_ok: camera_status_answers(s),
                url,
            }
        }
        Err(e) => return down(e.to_string()),
    };
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if status != 200 || !ctype.starts_with("multipart/x-mixed-replace") {
        return Stream::Line(Line::fail(
            format!(
                "camera {cam}: {url} answered {status} {ctype:?}: not an MJPEG stream \
                 (multipart/x-mixed-replace)"
            ),
            "CAMERA_URL must name the camera's stream (CameraWebServer: http://CAMERA:81/stream), \
             not its web page",
        ));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut reader = resp.body_mut().as_reader();
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                return Stream::Line(Line::fail(
                    format!(
                        "camera {cam}: {url}: the stream stalled or broke after {}: {e}",
                        format_size(got as u64)
                    ),
                    "power-cycle the camera; if it keeps happening, lower its framesize or \
                     improve its Wi-Fi",
                ))
            }
        }
        if buf[..got].windows(3).any(|w| w == [0xff, 0xd8, 0xff]) {
            return Stream::Line(Line::pass(format!(
                "camera {cam}: {url} is streaming MJPEG"
            )));
        }
    }
    Stream::Line(Line::fail(
        format!(
            "camera {cam}: {url}: no JPEG frame in the first {} of the stream",
            format_size(got as u64)
        ),
        "power-cycle the camera; frames this broken usually mean a brown-out (use a 5 V 2 A \
         supply) or frames too big for its RAM (lower framesize or raise quality)",
    ))
}

/// Whether the camera's control server answers `/status` (it does while a stream runs).
fn camera_status_answers(s: &Settings) -> bool {
    let Some(control) = &s.control_url else {
        return false;
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(CONNECT_TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    matches!(agent.get(control.join("/status")).call(), Ok(r) if r.status().is_success())
}

/// The line for a camera whose stream is held by another client.
fn busy_line(
    cam: &str,
    url: &str,
    status_ok: bool,
    units: &Option<Result<Vec<UnitInfo>, String>>,
) -> Line {
    let seg = format!("seg@{cam}.service");
    let recorder = match units {
        Some(Ok(infos)) => infos
            .iter()
            .find(|i| i.unit == seg && i.active_state == "active"),
        _ => None,
    };
    let alive = if status_ok {
        "its /status answers, so the camera is up"
    } else {
        "its /status does not answer either"
    };
    if let (Some(i), true) = (recorder, status_ok) {
        return Line::pass(format!(
            "camera {cam}: {url} is busy with {seg}, which records it ({}); {alive}",
            i.status_text.as_deref().unwrap_or("no status text")
        ));
    }
    Line::fail(
        format!(
            "camera {cam}: {url} accepted the connection but sent nothing for {} s: another \
             client holds the stream (the camera serves one at a time); {alive}",
            ANSWER_TIMEOUT.as_secs()
        ),
        format!(
            "close the other viewer (a browser tab, VLC, another recorder); if {seg} is \
             recording it, `visdcam status {cam}` shows how it goes"
        ),
    )
}

fn check_ram_disk(g: &Settings, cameras: &[Settings]) -> Line {
    let path = &g.ram_dir;
    let packaged = path == Path::new(PACKAGE_RAM_DIR);
    let mount_fix = if packaged {
        format!("sudo systemctl enable --now {RAM_MOUNT_UNIT} (the visdcam package ships it)")
    } else {
        format!(
            "mount a tmpfs at {} (the package's {RAM_MOUNT_UNIT} mounts {PACKAGE_RAM_DIR}; \
             set RAM_DIR={PACKAGE_RAM_DIR} to use it)",
            path.display()
        )
    };
    let Some(fs) = fs_info(path) else {
        return Line::fail(
            format!("RAM disk: {} does not exist", path.display()),
            mount_fix,
        );
    };
    if !matches!(fs.mounted_fstype.as_deref(), Some("tmpfs" | "ramfs")) {
        return Line::fail(
            format!(
                "RAM disk: {} is not a tmpfs mount ({}): segments would wear the SD card",
                path.display(),
                fs.mounted_fstype.as_deref().unwrap_or("not a mount point")
            ),
            mount_fix,
        );
    }
    if let Some(line) = check_shared_dirs(path, cameras) {
        return line;
    }
    let min_free = g.ram_min_free_bytes();
    let budgets: u64 = cameras.iter().map(Settings::ram_budget_bytes).sum();
    let used = fs.size_bytes.saturating_sub(fs.free_bytes);
    if fs.size_bytes < budgets + min_free {
        return Line::fail(
            format!(
                "RAM disk: {} is {} but the cameras' budgets plus RAM_MIN_FREE_MB need {}",
                path.display(),
                format_size(fs.size_bytes),
                format_size(budgets + min_free)
            ),
            format!(
                "lower RAM_BUDGET_MB, or make the tmpfs bigger (a drop-in for {RAM_MOUNT_UNIT})"
            ),
        );
    }
    if fs.free_bytes < min_free {
        return Line::fail(
            format!(
                "RAM disk: {} has only {} free, below RAM_MIN_FREE_MB",
                path.display(),
                format_size(fs.free_bytes)
            ),
            "uploads are behind; `visdcam lsram all` shows the queue, `visdcam status` why",
        );
    }
    Line::pass(format!(
        "RAM disk: {} tmpfs, {} used, {} free",
        path.display(),
        format_size(used),
        format_size(fs.free_bytes)
    ))
}

/// `owner:group, mode NNNN` of a file, names where the system has them.
fn owner_and_mode(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let user = nix::unistd::User::from_uid(meta.uid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.uid().to_string(), |u| u.name);
    let group = nix::unistd::Group::from_gid(meta.gid().into())
        .ok()
        .flatten()
        .map_or_else(|| meta.gid().to_string(), |g| g.name);
    format!("{user}:{group}, mode {:04o}", meta.mode() & 0o7777)
}

/// The RAM directory and the cameras' directories in it let the recorder's and the uploader's
/// users work together (through the group `visdcam`); `None` when they do, or when there is no
/// such group here (the package is not installed: the units line says so).
fn check_shared_dirs(ram_dir: &Path, cameras: &[Settings]) -> Option<Line> {
    use std::os::unix::fs::MetadataExt;
    let shared = nix::unistd::Group::from_name(SHARED_GROUP).ok().flatten()?;
    let dirs = std::iter::once((ram_dir.to_path_buf(), false)).chain(
        cameras
            .iter()
            .filter_map(|c| c.camera_dir())
            .map(|d| (d, true)),
    );
    for (dir, camera) in dirs {
        // A camera directory appears with the camera's first recording.
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        let Some(why) = shared_dir_problem(meta.mode(), meta.gid(), shared.gid.as_raw(), camera)
        else {
            continue;
        };
        let fix = if camera {
            format!(
                "sudo chgrp -R {SHARED_GROUP} {0} && sudo chmod 2770 {0}",
                dir.display()
            )
        } else {
            format!(
                "sudo chgrp {SHARED_GROUP} {0} && sudo chmod 2770 {0}; for the next boot, \
                 mode=2770,gid={SHARED_GROUP} in its mount options (a drop-in for \
                 {RAM_MOUNT_UNIT}, or its /etc/fstab line)",
                dir.display()
            )
        };
        return Some(Line::fail(
            format!(
                "RAM disk: {} ({}): {why}",
                dir.display(),
                owner_and_mode(&meta)
            ),
            fix,
        ));
    }
    None
}

/// The credentials files systemd hands to the uploader (the package's and the credstores'):
/// root's alone, since the recorder's user shares the group `visdcam` with the uploader's.
/// `None` when none exists (the bucket line says so).
fn check_credentials_files() -> Option<Line> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = Vec::new();
    let mut checked = Vec::new();
    for p in CREDSTORE {
        // Following links: /usr/lib/credstore's entry is a link to /etc/visdcam's file.
        let Ok(meta) = std::fs::metadata(p) else {
            continue;
        };
        if seen.contains(&(meta.dev(), meta.ino())) {
            continue;
        }
        seen.push((meta.dev(), meta.ino()));
        if let Some(why) = credentials_file_problem(meta.uid(), meta.mode()) {
            return Some(Line::fail(
                format!(
                    "credentials: {p} ({}): {why}; only the uploader ({UPLOADER_USER}) may get \
                     the key, never the recorder's user ({RECORDER_USER})",
                    owner_and_mode(&meta)
                ),
                format!("sudo chown root:root {p} && sudo chmod 600 {p}"),
            ));
        }
        checked.push(p.to_string());
    }
    (!checked.is_empty()).then(|| {
        Line::pass(format!(
            "credentials: {} readable by root only (systemd copies it for the uploader alone)",
            checked.join(", ")
        ))
    })
}

/// Runs `gst-inspect-1.0 --exists ELEMENT`: `Ok(true)` present, `Ok(false)` missing.
fn gst_exists(element: &str) -> Result<bool, String> {
    let mut child = Command::new("gst-inspect-1.0")
        .args(["--exists", element])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run gst-inspect-1.0: {e}"))?;
    let until = Instant::now() + GST_TIMEOUT;
    loop {
        match child.try_wait() {
            // 127: the command was not found after all (qemu-user reports a failed exec
            // this way instead of as a spawn error).
            Ok(Some(status)) if status.code() == Some(127) => {
                return Err("cannot run gst-inspect-1.0: not found".into())
            }
            Ok(Some(status)) => return Ok(status.success()),
            Ok(None) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(None) => {
                // It is ours and hangs: end it rather than leave it behind.
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "gst-inspect-1.0 --exists {element} took longer than {} s",
                    GST_TIMEOUT.as_secs()
                ));
            }
            Err(e) => return Err(format!("waiting for gst-inspect-1.0: {e}")),
        }
    }
}

fn check_gstreamer() -> Line {
    let mut missing = Vec::new();
    for (element, package) in ELEMENTS {
        match gst_exists(element) {
            Ok(true) => {}
            Ok(false) => missing.push((*element, *package)),
            Err(e) => {
                return Line::fail(
                    format!("GStreamer: {e}"),
                    "sudo apt install gstreamer1.0-tools",
                )
            }
        }
    }
    if missing.is_empty() {
        return Line::pass(format!(
            "GStreamer: {} present",
            ELEMENTS.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
    pkgs.dedup();
    Line::fail(
        format!(
            "GStreamer: missing {}",
            missing.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
        ),
        format!("sudo apt install {}", pkgs.join(" ")),
    )
}

/// Each camera's encoder and load, from the recorder's load file (which encoder and why, and
/// whether it keeps up), then the hardware encoder's macroblock budget over the cameras that
/// use it (docs/design/encoder.md).
fn check_encoders(cameras: &[Settings]) -> Vec<Line> {
    use visdcam_core::encoder::{self, EncoderSetting};
    let mut lines = Vec::new();
    let mut hardware = Vec::new();
    let mut unmeasured = Vec::new();
    for s in cameras {
        let cam = s.camera.clone().unwrap_or_default();
        let file = s.ram_dir.join(&cam).join(encoder::LOAD_FILE);
        // A camera that has not recorded yet has no encoder to report (its recorder's unit
        // line says why).
        let Ok(text) = std::fs::read_to_string(&file) else {
            if s.encoder == EncoderSetting::V4l2 {
                unmeasured.push(cam);
            }
            continue;
        };
        let load = encoder::parse_load(&text);
        let enc = load.get("encoder").cloned().unwrap_or_default();
        let why = load.get("encoder_why").cloned().unwrap_or_default();
        let what = format!("encoder: camera {cam} records with {enc} ({why})");
        lines.push(if let Some(behind) = load.get("behind") {
            // "cannot keep up: …; fix: …": the fix goes where doctor puts fixes.
            let (why, fix) = behind.split_once("; fix: ").unwrap_or((behind, ""));
            Line::fail(
                format!("{what}; it {why}"),
                format!("{fix} (docs/guide/install-pi.md)"),
            )
        } else if s.encoder == EncoderSetting::V4l2 && enc != "v4l2" {
            Line::fail(
                what,
                format!(
                    "check {} is the Pi 4's encoder (bcm2835-codec) and CMA has room, or set \
                     ENCODER=auto",
                    s.encoder_device.display()
                ),
            )
        } else {
            Line::pass(what)
        });
        if enc == "v4l2" || s.encoder == EncoderSetting::V4l2 {
            match encoder::camera_load(&cam, &load) {
                Some(l) => hardware.push(l),
                None => unmeasured.push(cam),
            }
        }
    }
    if let Some(excess) = encoder::budget_excess(&hardware) {
        lines.push(Line::fail(
            format!("encoder budget: {excess}"),
            "move cameras to ENCODER=x264 or lower their framesize (docs/guide/install-pi.md)",
        ));
    } else if !hardware.is_empty() {
        let total: f64 = hardware.iter().map(encoder::CameraLoad::mb_per_s).sum();
        let mut what = format!(
            "encoder budget: {} camera(s) on the hardware encoder, {total:.0} of {} \
             macroblocks/s",
            hardware.len(),
            encoder::LEVEL4_MB_PER_S
        );
        if !unmeasured.is_empty() {
            what.push_str(&format!(" (not measured yet: {})", unmeasured.join(", ")));
        }
        lines.push(Line::pass(what));
    }
    lines
}

/// Every unit's state from systemd, or why systemd could not be asked.
fn read_units(list: &[String]) -> Result<Vec<UnitInfo>, String> {
    let sd = Systemd::connect().map_err(|e| e.message)?;
    let mut out = Vec::new();
    for u in list {
        match sd.unit_info(u) {
            Ok(i) => out.push(i),
            // One unit systemd cannot load is reported as not loaded, not as a bus failure.
            Err(e) => out.push(UnitInfo {
                unit: u.clone(),
                load_state: e.message,
                ..UnitInfo::default()
            }),
        }
    }
    Ok(out)
}

fn unit_line(i: UnitInfo) -> Line {
    let u = &i.unit;
    if i.unit_file_state == "enabled" && i.active_state == "failed" {
        // Enabled but given up on (start limit hit, or a fatal configuration error).
        return Line::fail(
            format!("{u}: enabled, but failed ({})", i.sub_state),
            format!("journalctl -u {u} -n 30 says why; then sudo systemctl restart {u}"),
        );
    }
    if i.unit_file_state == "enabled" {
        return Line::pass(format!(
            "{u}: enabled, {} ({})",
            i.active_state, i.sub_state
        ));
    }
    if i.load_state != "loaded" {
        return Line::fail(
            format!("{u}: {}", i.load_state),
            "install the visdcam package (sudo apt install ./visdcam_*.deb)",
        );
    }
    let at_boot = if i.unit_file_state.is_empty() {
        "unknown"
    } else {
        &i.unit_file_state
    };
    if u == units::SHAPER_SERVICE {
        // The package never enables the shaper (packaging/debian/postinst): off is a choice.
        return Line::pass(format!(
            "{u}: {at_boot} at boot, {} (optional: uploads are not shaped; \
             sudo systemctl enable --now {u} shapes them)",
            i.active_state
        ));
    }
    Line::fail(
        format!("{u}: {at_boot} at boot, {}", i.active_state),
        match u.split_once('@') {
            Some((_, inst)) => format!(
                "sudo visdcam enable {} --now",
                inst.trim_end_matches(".service")
            ),
            None => format!(
                "sudo systemctl enable --now {u} (the package enables it; was it disabled by hand?)"
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn unit(name: &str, file_state: &str, active: &str) -> UnitInfo {
        UnitInfo {
            unit: name.into(),
            load_state: "loaded".into(),
            unit_file_state: file_state.into(),
            active_state: active.into(),
            ..UnitInfo::default()
        }
    }

    #[test]
    fn unit_lines_fail_for_failed_or_disabled_units() {
        let ok = unit_line(unit("uploader@cam1.service", "enabled", "active"));
        assert!(matches!(ok.mark, Mark::Pass), "{}", ok.what);
        let failed = unit_line(unit("uploader@cam1.service", "enabled", "failed"));
        assert!(matches!(failed.mark, Mark::Fail), "{}", failed.what);
        assert!(
            failed.what.contains("enabled, but failed"),
            "{}",
            failed.what
        );
        assert!(failed
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("journalctl -u uploader@cam1.service")));
        let off = unit_line(unit("seg@cam2.service", "disabled", "inactive"));
        assert!(matches!(off.mark, Mark::Fail));
        assert_eq!(off.fix.as_deref(), Some("sudo visdcam enable cam2 --now"));
        let timer_off = unit_line(unit(units::DAYNIGHT_TIMER, "disabled", "inactive"));
        assert!(matches!(timer_off.mark, Mark::Fail), "{}", timer_off.what);
    }

    #[test]
    fn a_shaper_left_off_is_a_choice_but_a_failed_one_is_not() {
        // postinst never enables net-shaper.service: a fresh install must not fail doctor.
        let off = unit_line(unit(units::SHAPER_SERVICE, "disabled", "inactive"));
        assert!(matches!(off.mark, Mark::Pass), "{}", off.what);
        assert!(off.what.contains("optional"), "{}", off.what);
        let failed = unit_line(unit(units::SHAPER_SERVICE, "enabled", "failed"));
        assert!(matches!(failed.mark, Mark::Fail), "{}", failed.what);
    }

    #[test]
    fn credential_problems_name_the_file_and_the_fix() {
        let one = credentials_line(
            &CredError::NoFile {
                tried: vec![PathBuf::from("/x/creds")],
            },
            "b2",
        );
        assert_eq!(one.what, "credentials: cannot read /x/creds: no such file");
        assert!(one.fix.as_deref().unwrap().contains("[b2] profile"));
        let denied = credentials_line(
            &CredError::Unreadable {
                path: PathBuf::from("/etc/visdcam/aws-credentials"),
                kind: std::io::ErrorKind::PermissionDenied,
                error: "Permission denied (os error 13)".into(),
            },
            "b2",
        );
        assert!(denied.fix.as_deref().unwrap().contains("sudo"));
        let bad = credentials_line(
            &CredError::Invalid {
                path: PathBuf::from("/x/creds"),
                why: "line 2: expected `key = value`".into(),
            },
            "b2",
        );
        assert_eq!(
            bad.what,
            "credentials: /x/creds: line 2: expected `key = value`"
        );
    }

    #[test]
    fn lines_are_single_lines() {
        let l = Line::fail("a\n  b", "c\nd");
        assert_eq!(l.render(), "✘ a b — fix: c d");
        assert_eq!(Line::pass("ok").render(), "✔ ok");
        assert_eq!(Line::skip("x", "y").render(), "– x — fix: y");
    }
}
