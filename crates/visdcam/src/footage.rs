//! `visdcam footage | fetch | play`: the bucket as a footage library. Lists only the key
//! prefixes a range can touch, builds the timeline with `visdcam_core::footage`, downloads and
//! joins segments (`join`), or writes an HLS playlist of presigned URLs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use visdcam_core::backoff::Backoff;
use visdcam_core::config::Settings;
use visdcam_core::footage::{
    self, format_local, human_length, human_size, EndRule, Object, PlaylistEntry, Range, Segment,
    Timeline, META_START_MS,
};
use visdcam_core::upload::Failure as StoreFailure;
use visdcam_daemon::config::{load_camera_from, load_global_from};
use visdcam_s3::{Locations, Store, StoreConfig};

use crate::args::{FootageArgs, FootageCmd, StoreArgs};
use crate::fail::{self, Exit, Failure};
use crate::join::{self, Container, Piece};
use crate::Ctx;

/// GETs in flight at once.
const PARALLEL_GETS: usize = 3;
/// Tries per segment before `fetch` gives up (the uploader retries forever; a person waits).
const GET_TRIES: u32 = 5;
/// Default validity of `play`'s URLs.
const DEFAULT_EXPIRES: Duration = Duration::from_secs(3600);
/// Players `play --open` looks for, in order.
const PLAYERS: &[&str] = &["mpv", "vlc", "ffplay"];

/// One camera's footage in one bucket.
pub(crate) struct Library {
    camera: String,
    settings: Settings,
    store: Store,
    bucket: String,
    /// List requests made (pages), for `--json` and tests.
    list_requests: usize,
}

pub fn run(ctx: &Ctx, a: FootageArgs) -> fail::Result<()> {
    let mut lib = Library::open(ctx, &a.camera, &a.store)?;
    let tz = lib.settings.key_tz;
    let end_rule = match a.cmd {
        FootageCmd::Fetch => EndRule::Required,
        FootageCmd::Footage | FootageCmd::Play => EndRule::Now,
    };
    if a.cmd == FootageCmd::Play && a.range.is_empty() {
        return Err(Failure::usage(
            "`play` needs a start, e.g. `visdcam play cam2 17:40 15m`",
        ));
    }
    let range = footage::parse_range(&a.range, Utc::now(), tz, end_rule).map_err(Failure::usage)?;
    let (timeline, unparsed) = lib.timeline(range)?;
    if timeline.segments.is_empty() {
        return Err(Failure::failed(format!(
            "no footage of {} between {} and {} in bucket {} ({} list request{})",
            lib.camera,
            format_local(range.from, tz),
            format_local(range.to, tz),
            lib.bucket,
            lib.list_requests,
            if lib.list_requests == 1 { "" } else { "s" },
        )));
    }
    match a.cmd {
        FootageCmd::Footage => {
            if a.json {
                println!("{}", timeline_json(&lib, &timeline, &unparsed));
            } else {
                print!(
                    "{}",
                    footage::render_timeline(&lib.camera, &timeline, tz, &unparsed)
                );
            }
            Ok(())
        }
        FootageCmd::Fetch => fetch(&lib, &timeline, a.output),
        FootageCmd::Play => play(
            &lib,
            &timeline,
            a.output,
            a.open,
            a.expires.unwrap_or(DEFAULT_EXPIRES),
        ),
    }
}

fn store_failure(what: &str, f: &StoreFailure) -> Failure {
    Failure::failed(format!("{what}: {}", f.why()))
}

impl Library {
    /// Settings of `camera` (or, on a machine with no camera configured, the global ones),
    /// overridden by the flags; credentials as the uploader finds them, then the package's file.
    fn open(ctx: &Ctx, camera: &str, flags: &StoreArgs) -> fail::Result<Library> {
        visdcam_core::units::validate_camera_name(camera).map_err(Failure::usage)?;
        let settings = if ctx.known.iter().any(|c| c == camera) {
            load_camera_from(&ctx.dir, camera)?
        } else if ctx.known.is_empty() {
            load_global_from(&ctx.dir)?
        } else {
            return Err(Failure::usage(visdcam_core::cli::unknown_camera(
                camera,
                &ctx.known,
                &ctx.dir_str(),
            )));
        };
        let global = visdcam_daemon::config::global_path(&ctx.dir);
        let need = |flag: &Option<String>, conf: &Option<String>, key: &str, opt: &str| {
            flag.clone().or_else(|| conf.clone()).ok_or_else(|| {
                Failure::config(format!(
                    "no {key}: set it in {} or pass --{opt}",
                    global.display()
                ))
            })
        };
        let endpoint = need(
            &flags.endpoint,
            &settings.b2_endpoint,
            "B2_ENDPOINT",
            "endpoint",
        )?;
        let bucket = need(&flags.bucket, &settings.b2_bucket, "B2_BUCKET", "bucket")?;
        let cfg = StoreConfig {
            endpoint,
            bucket: bucket.clone(),
            style: settings.b2_addressing_style,
            region: flags.region.clone().or_else(|| settings.b2_region.clone()),
            profile: flags
                .profile
                .clone()
                .unwrap_or_else(|| settings.b2_profile.clone()),
            dscp: None,
            object_lock: None,
        };
        Store::check_config(&cfg).map_err(Failure::usage)?;
        let mut locations = Locations::from_env();
        locations.credentials.push(ctx.dir.join("aws-credentials"));
        Ok(Library {
            camera: camera.to_string(),
            store: Store::new(cfg, locations),
            settings,
            bucket,
            list_requests: 0,
        })
    }

    /// A camera's footage with its configured bucket and the credentials found in
    /// `locations` only (the live-view page's read key, never the uploader's).
    pub(crate) fn with_credentials(
        camera: &str,
        settings: Settings,
        locations: Locations,
    ) -> Result<Library, String> {
        let (Some(endpoint), Some(bucket)) =
            (settings.b2_endpoint.clone(), settings.b2_bucket.clone())
        else {
            return Err("B2_ENDPOINT and B2_BUCKET are not both set".into());
        };
        let cfg = StoreConfig {
            endpoint,
            bucket: bucket.clone(),
            style: settings.b2_addressing_style,
            region: settings.b2_region.clone(),
            profile: settings.b2_profile.clone(),
            dscp: None,
            object_lock: None,
        };
        Store::check_config(&cfg)?;
        Ok(Library {
            camera: camera.to_string(),
            store: Store::new(cfg, locations),
            settings,
            bucket,
            list_requests: 0,
        })
    }

    /// A presigned GET URL of `key`.
    pub(crate) fn presign(&self, key: &str, expires: Duration) -> fail::Result<String> {
        self.store
            .presign_get(key, expires)
            .map_err(|f| store_failure(&format!("signing {key}"), &f))
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The HLS playlist of a timeline: presigned GET URLs valid for `expires`, wall-clock
    /// times, a discontinuity at every gap or recorder restart.
    pub(crate) fn playlist(&self, t: &Timeline, expires: Duration) -> fail::Result<String> {
        self.playlist_via(t, &|key| self.presign(key, expires))
    }

    /// The HLS playlist of a timeline with each segment's URL from `url_of(key)`.
    pub(crate) fn playlist_via(
        &self,
        t: &Timeline,
        url_of: &dyn Fn(&str) -> fail::Result<String>,
    ) -> fail::Result<String> {
        let mut entries = Vec::with_capacity(t.segments.len());
        for (i, s) in t.segments.iter().enumerate() {
            let url = url_of(&s.key)?;
            let gap_before = i > 0 && s.start - t.segments[i - 1].end >= gap_min();
            entries.push(PlaylistEntry {
                url,
                start: s.start,
                length: s.length(),
                discontinuity: s.discontinuity || gap_before,
            });
        }
        Ok(footage::hls_playlist(&entries, self.settings.key_tz))
    }

    /// Lists the prefixes `range` can touch (widened by two segment lengths before, so the
    /// segment holding the start and the one before it are seen, and one after) and builds
    /// the timeline; also returns the keys that are not this camera's segment keys.
    pub(crate) fn timeline(&mut self, range: Range) -> fail::Result<(Timeline, Vec<String>)> {
        let tz = self.settings.key_tz;
        let seg = chrono::Duration::seconds(i64::from(self.settings.seg_seconds));
        let lo = range.from - seg * 2 - chrono::Duration::seconds(5);
        let hi = range.to + seg + chrono::Duration::seconds(5);
        let template = &self.settings.key_template;
        let prefixes = template
            .list_prefixes(&self.camera, lo, hi, tz)
            .map_err(Failure::config)?;
        let mut objects = Vec::new();
        let mut unparsed = Vec::new();
        for prefix in &prefixes {
            let mut pages = 0;
            let listed = self
                .store
                .list(prefix, &mut |_| pages += 1)
                .map_err(|f| store_failure(&format!("listing {prefix}"), &f))?;
            self.list_requests += pages.max(1);
            for l in listed {
                match template.parse_key(&self.camera, &l.key, tz) {
                    Some(p) if p.at >= lo && p.at <= hi => objects.push(Object {
                        key: l.key,
                        size: l.size,
                        end: p.at,
                    }),
                    Some(_) => {}
                    None => unparsed.push(l.key),
                }
            }
        }
        objects.sort_by(|a, b| (a.end, &a.key).cmp(&(b.end, &b.key)));
        let usual = footage::usual_length(
            &objects,
            Duration::from_secs(u64::from(self.settings.seg_seconds)),
        );
        let mut starts = BTreeMap::new();
        for i in footage::starts_to_read(&objects, usual) {
            // Only boundaries that matter for the range.
            if objects[i].end < range.from - seg || objects[i].end > hi {
                continue;
            }
            let head = self
                .store
                .head(&objects[i].key)
                .map_err(|f| store_failure(&format!("reading {}", objects[i].key), &f))?;
            let start = head
                .and_then(|h| h.meta.get(META_START_MS).cloned())
                .and_then(|v| v.trim().parse::<i64>().ok())
                .and_then(DateTime::<Utc>::from_timestamp_millis);
            if let Some(s) = start {
                starts.insert(i, s);
            }
        }
        Ok((footage::timeline(&objects, &starts, usual, range), unparsed))
    }
}

fn rfc3339(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

fn timeline_json(lib: &Library, t: &Timeline, unparsed: &[String]) -> serde_json::Value {
    let tz = lib.settings.key_tz;
    serde_json::json!({
        "camera": lib.camera,
        "bucket": lib.bucket,
        "time_zone": tz.name(),
        "from": rfc3339(t.range.from, tz),
        "to": rfc3339(t.range.to, tz),
        "segment_seconds": t.usual.as_secs(),
        "spans": t.spans.iter().map(|s| serde_json::json!({
            "start": rfc3339(s.start, tz),
            "end": rfc3339(s.end, tz),
            "seconds": secs(s.start, s.end),
            "segments": s.segments,
            "bytes": s.bytes,
        })).collect::<Vec<_>>(),
        "gaps": t.gaps.iter().map(|g| serde_json::json!({
            "start": rfc3339(g.from, tz),
            "end": rfc3339(g.to, tz),
            "seconds": secs(g.from, g.to),
        })).collect::<Vec<_>>(),
        "segments": t.segments.len(),
        "bytes": t.segments.iter().map(|s| s.size).sum::<u64>(),
        "unparsed": unparsed,
        "list_requests": lib.list_requests,
    })
}

/// `CAMERA_YYYY-MM-DD_HH-MM-SS.EXT` in the current directory.
fn default_name(lib: &Library, from: DateTime<Utc>, ext: &str) -> PathBuf {
    PathBuf::from(format!(
        "{}_{}.{ext}",
        lib.camera,
        from.with_timezone(&lib.settings.key_tz)
            .format("%Y-%m-%d_%H-%M-%S")
    ))
}

/// `X.mp4` → `X.mp4.part`.
fn part_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// Removes what a command made unless it finished: the `.part` file and the scratch directory.
struct Scratch {
    part: PathBuf,
    dir: Option<PathBuf>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.part);
        if let Some(d) = &self.dir {
            let _ = fs::remove_dir_all(d);
        }
    }
}

/// Sets `cancel` when SIGINT or SIGTERM arrives, until `done`.
fn watch_signals<'s>(
    scope: &'s std::thread::Scope<'s, '_>,
    cancel: &'s AtomicBool,
    done: &'s AtomicBool,
) {
    scope.spawn(move || {
        while !done.load(Ordering::SeqCst) {
            if visdcam_daemon::shutdown::requested() {
                cancel.store(true, Ordering::SeqCst);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

fn cancelled() -> Failure {
    Failure::new(Exit::Interrupted, "cancelled; nothing was written")
}

/// A file writer that fails once `cancel` is set, so a GET in progress stops.
struct Cancellable<'a> {
    file: fs::File,
    cancel: &'a AtomicBool,
}

impl Write for Cancellable<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::SeqCst) {
            return Err(io::Error::other("cancelled"));
        }
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Progress on stderr: a bar redrawn in place on a terminal, a line per segment otherwise.
struct Progress {
    tty: bool,
    total_segments: usize,
    total_bytes: u64,
    done_segments: AtomicUsize,
    done_bytes: AtomicU64,
    in_flight: Mutex<BTreeMap<usize, u64>>,
    started: Instant,
}

impl Progress {
    fn bytes_now(&self) -> u64 {
        self.done_bytes.load(Ordering::SeqCst)
            + self
                .in_flight
                .lock()
                .map(|m| m.values().sum::<u64>())
                .unwrap_or(0)
    }

    fn draw(&self) {
        if !self.tty {
            return;
        }
        let bytes = self.bytes_now();
        let frac = if self.total_bytes == 0 {
            1.0
        } else {
            (bytes as f64 / self.total_bytes as f64).min(1.0)
        };
        let width = 30;
        let filled = (frac * width as f64).round() as usize;
        let rate = bytes as f64 / self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r[{}{}] {:>3}%  {}/{} segments  {} of {}  {}/s   ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            (frac * 100.0).round() as u64,
            self.done_segments.load(Ordering::SeqCst),
            self.total_segments,
            human_size(bytes),
            human_size(self.total_bytes),
            human_size(rate as u64),
        );
        let _ = io::stderr().flush();
    }

    fn segment_done(&self, i: usize, key: &str, size: u64) {
        if let Ok(mut m) = self.in_flight.lock() {
            m.remove(&i);
        }
        self.done_bytes.fetch_add(size, Ordering::SeqCst);
        let n = self.done_segments.fetch_add(1, Ordering::SeqCst) + 1;
        if self.tty {
            self.draw();
        } else {
            eprintln!(
                "fetched {n}/{} {key} ({})",
                self.total_segments,
                human_size(size)
            );
        }
    }

    fn finish(&self) {
        if self.tty {
            self.draw();
            eprintln!();
        }
    }
}

/// Downloads `segs[i]` into `path`, retrying transient failures with backoff.
fn get_one(
    lib: &Library,
    seg: &Segment,
    i: usize,
    path: &Path,
    progress: &Progress,
    cancel: &AtomicBool,
    unverified: &AtomicUsize,
) -> Result<(), String> {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    let mut tries = 0;
    loop {
        tries += 1;
        let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut dest = Cancellable { file, cancel };
        let result = lib.store.get(&seg.key, &mut dest, &mut |n| {
            if let Ok(mut m) = progress.in_flight.lock() {
                m.insert(i, n);
            }
        });
        if cancel.load(Ordering::SeqCst) {
            return Err("cancelled".into());
        }
        match result {
            Ok(got) => {
                dest.flush()
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if !got.verified {
                    unverified.fetch_add(1, Ordering::SeqCst);
                }
                progress.segment_done(i, &seg.key, got.size);
                return Ok(());
            }
            Err(StoreFailure::Transient { why, retry_after }) if tries < GET_TRIES => {
                let wait = retry_after.unwrap_or_else(|| backoff.next(fastrand::f64()));
                if !progress.tty {
                    eprintln!(
                        "retrying {} in {} ({why})",
                        seg.key,
                        visdcam_core::cli::format_duration(wait)
                    );
                }
                let end = Instant::now() + wait;
                while Instant::now() < end {
                    if cancel.load(Ordering::SeqCst) {
                        return Err("cancelled".into());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Err(f) => {
                return Err(format!(
                    "downloading {} (try {tries} of {GET_TRIES}): {}",
                    seg.key,
                    f.why()
                ))
            }
        }
    }
}

fn fetch(lib: &Library, t: &Timeline, output: Option<PathBuf>) -> fail::Result<()> {
    let tz = lib.settings.key_tz;
    let out = output.unwrap_or_else(|| default_name(lib, t.range.from, Container::Mp4.extension()));
    let container = Container::from_path(&out).ok_or_else(|| {
        Failure::usage(format!(
            "cannot write `{}`: the file name must end in .mp4, .mkv or .ts",
            out.display()
        ))
    })?;
    if out.exists() {
        return Err(Failure::failed(format!(
            "{} already exists; choose another name with -o or remove it",
            out.display()
        )));
    }
    let part = part_path(&out);
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "footage".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.join(format!(".{name}.segments-{}", std::process::id()));
    visdcam_daemon::shutdown::install()
        .map_err(|e| Failure::failed(format!("installing the Ctrl-C handler: {e}")))?;
    fs::create_dir(&dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let scratch = Scratch {
        part: part.clone(),
        dir: Some(dir.clone()),
    };

    let segs = &t.segments;
    let progress = Progress {
        tty: io::stderr().is_terminal(),
        total_segments: segs.len(),
        total_bytes: segs.iter().map(|s| s.size).sum(),
        done_segments: AtomicUsize::new(0),
        done_bytes: AtomicU64::new(0),
        in_flight: Mutex::new(BTreeMap::new()),
        started: Instant::now(),
    };
    eprintln!(
        "fetching {} segment{} ({}) of {} from {} to {}",
        segs.len(),
        if segs.len() == 1 { "" } else { "s" },
        human_size(progress.total_bytes),
        lib.camera,
        format_local(t.range.from, tz),
        format_local(t.range.to, tz),
    );
    let cancel = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let unverified = AtomicUsize::new(0);
    let first_error: Mutex<Option<String>> = Mutex::new(None);
    let paths: Vec<PathBuf> = (0..segs.len())
        .map(|i| dir.join(format!("{i:06}.ts")))
        .collect();
    let joined = std::thread::scope(|scope| {
        watch_signals(scope, &cancel, &done);
        let workers: Vec<_> = (0..PARALLEL_GETS.min(segs.len()))
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= segs.len() || cancel.load(Ordering::SeqCst) {
                        return;
                    }
                    if let Err(e) =
                        get_one(lib, &segs[i], i, &paths[i], &progress, &cancel, &unverified)
                    {
                        if let Ok(mut f) = first_error.lock() {
                            f.get_or_insert(e);
                        }
                        cancel.store(true, Ordering::SeqCst);
                        return;
                    }
                })
            })
            .collect();
        let mut since_cancel: Option<Instant> = None;
        while !workers.iter().all(|w| w.is_finished()) {
            progress.draw();
            std::thread::sleep(Duration::from_millis(100));
            // Ctrl-C: a GET still waiting for the store's answer would hold us until its read
            // timeout. Give the workers a moment to stop writing, then clean up and go.
            if visdcam_daemon::shutdown::requested() {
                let at = *since_cancel.get_or_insert_with(Instant::now);
                if at.elapsed() >= Duration::from_millis(500) {
                    progress.finish();
                    let _ = fs::remove_file(&part);
                    let _ = fs::remove_dir_all(&dir);
                    eprintln!("visdcam: {}", cancelled());
                    std::process::exit(Exit::Interrupted as i32);
                }
            }
        }
        for w in workers {
            let _ = w.join();
        }
        progress.finish();
        let result = if let Some(e) = first_error.lock().ok().and_then(|mut f| f.take()) {
            if visdcam_daemon::shutdown::requested() {
                Err(cancelled())
            } else {
                Err(Failure::failed(e))
            }
        } else if cancel.load(Ordering::SeqCst) {
            Err(cancelled())
        } else {
            let pieces: Vec<Piece> = segs
                .iter()
                .zip(&paths)
                .map(|(s, p)| Piece {
                    path: p.clone(),
                    start: s.start,
                })
                .collect();
            join::join(&pieces, t.range.from, t.range.to, container, &part, &cancel).map_err(|e| {
                if cancel.load(Ordering::SeqCst) {
                    cancelled()
                } else {
                    Failure::failed(format!("joining the segments into {}: {e}", out.display()))
                }
            })
        };
        done.store(true, Ordering::SeqCst);
        result
    })?;
    fs::rename(&part, &out).map_err(|e| {
        Failure::failed(format!(
            "renaming {} to {}: {e}",
            part.display(),
            out.display()
        ))
    })?;
    drop(scratch);
    let n = unverified.load(Ordering::SeqCst);
    if n > 0 {
        eprintln!(
            "note: {n} segment{} could not be checked against an MD5 (the store's ETag is not \
             one and the object carries no md5 metadata)",
            if n == 1 { "" } else { "s" }
        );
    }
    for (at, len) in &joined.gaps {
        eprintln!(
            "gap at {}: {} without footage (kept as a gap in time)",
            format_local(*at, tz),
            human_length(*len)
        );
    }
    if container == Container::Ts {
        eprintln!(
            "note: .ts files carry no creation time; the footage starts at {}",
            format_local(joined.start, tz)
        );
    }
    println!(
        "wrote {}: {} → {} ({}), {} frames, {}",
        out.display(),
        format_local(joined.start, tz),
        format_local(joined.end, tz),
        human_length((joined.end - joined.start).to_std().unwrap_or_default()),
        joined.frames,
        human_size(fs::metadata(&out).map(|m| m.len()).unwrap_or(0)),
    );
    Ok(())
}

fn play(
    lib: &Library,
    t: &Timeline,
    output: Option<PathBuf>,
    open: bool,
    expires: Duration,
) -> fail::Result<()> {
    let tz = lib.settings.key_tz;
    let text = lib.playlist(t, expires)?;
    let discontinuities = t
        .segments
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(i, s)| s.discontinuity || s.start - t.segments[i - 1].end >= gap_min())
        .count();
    let until = Utc::now() + chrono::Duration::from_std(expires).unwrap_or_default();
    let summary = format!(
        "{} segment{} from {} to {}, {} discontinuit{}; the URLs are valid for {} (until {})",
        t.segments.len(),
        if t.segments.len() == 1 { "" } else { "s" },
        format_local(t.segments[0].start, tz),
        format_local(t.segments[t.segments.len() - 1].end, tz),
        discontinuities,
        if discontinuities == 1 { "y" } else { "ies" },
        visdcam_core::cli::format_duration(expires),
        format_local(until, tz),
    );
    if output.as_deref() == Some(Path::new("-")) {
        if open {
            return Err(Failure::usage("--open needs a playlist file, not -o -"));
        }
        print!("{text}");
        eprintln!("playlist: {summary}");
        return Ok(());
    }
    let out = output.unwrap_or_else(|| default_name(lib, t.range.from, "m3u8"));
    let part = part_path(&out);
    let scratch = Scratch {
        part: part.clone(),
        dir: None,
    };
    fs::write(&part, &text)
        .and_then(|()| fs::rename(&part, &out))
        .map_err(|e| Failure::failed(format!("writing {}: {e}", out.display())))?;
    drop(scratch);
    println!("wrote {}: {summary}", out.display());
    if open {
        let Some(player) = PLAYERS.iter().find(|p| in_path(p)) else {
            return Err(Failure::failed(format!(
                "no player found ({}); open {} in one that plays HLS",
                PLAYERS.join(", "),
                out.display()
            )));
        };
        println!("opening it with {player}");
        std::process::Command::new(player)
            .arg(&out)
            .spawn()
            .map_err(|e| Failure::failed(format!("starting {player}: {e}")))?;
    }
    Ok(())
}

fn gap_min() -> chrono::Duration {
    chrono::Duration::from_std(footage::GAP_MIN).unwrap_or_default()
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(program);
            p.metadata().is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}
