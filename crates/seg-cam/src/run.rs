//! The recorder's main loop: `run()` calls `run_once()` (one camera connection, one pipeline)
//! forever, with capped exponential backoff and jitter between connections. The loop owns
//! every sd_notify call: STATUS= once a second and watchdog pings only from here, so a hang
//! anywhere in it (a stuck element, a deadlock while stopping a pipeline) stops the pings and
//! systemd's `WatchdogSec=` kills the process.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use visdcam_core::backoff::Backoff;
use visdcam_core::config::{HttpUrl, Settings};
use visdcam_core::ratelimit::{RepeatLimiter, Verdict};
use visdcam_core::recorder::{session_fault, Activity, Fault, FpsMeter, SessionReport};
use visdcam_core::segment::SegmentName;
use visdcam_daemon::clock::ClockSource;
use visdcam_daemon::notify::Notifier;
use visdcam_daemon::shutdown;

use crate::budget::Budget;
use crate::handoff::{self, Handoff, Outcome};
use crate::pipeline::{BuildError, PipelineConfig, Recording};
use visdcam_core::encoder::{self, Choice, Encoder, Load};

/// The recorder's own CPU time (user + system), from getrusage.
fn cpu_time() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(u) => {
            let t = |v: nix::sys::time::TimeVal| {
                Duration::new(v.tv_sec().max(0) as u64, (v.tv_usec().max(0) as u32) * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        }
        Err(_) => Duration::ZERO,
    }
}

/// Decoded frames after which a hardware encoder that gave back none is failing.
const SILENT_ENCODER_FRAMES: u64 = 30;

/// The window the "cannot keep up" verdict counts drops over.
const DROP_WINDOW: Duration = Duration::from_secs(60);

/// The recorder's load over the last second and minute: CPU use and queue drops.
struct LoadMeter {
    last: Option<(Instant, Duration)>,
    cpu_percent: f64,
    drops: VecDeque<(Instant, u64)>,
    /// Drops of earlier connections (the counters start at 0 with each pipeline).
    dropped_before: u64,
}

impl LoadMeter {
    fn new() -> LoadMeter {
        LoadMeter {
            last: None,
            cpu_percent: 0.0,
            drops: VecDeque::new(),
            dropped_before: 0,
        }
    }

    fn sample(&mut self, now: Instant, dropped_total: u64) -> u64 {
        let cpu = cpu_time();
        if let Some((t, c)) = self.last {
            let wall = now.duration_since(t).as_secs_f64();
            if wall > 0.0 {
                self.cpu_percent = cpu.saturating_sub(c).as_secs_f64() / wall * 100.0;
            }
        }
        self.last = Some((now, cpu));
        self.drops.push_back((now, dropped_total));
        while self
            .drops
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > DROP_WINDOW)
        {
            self.drops.pop_front();
        }
        let oldest = self.drops.front().map(|(_, d)| *d).unwrap_or(dropped_total);
        dropped_total.saturating_sub(oldest)
    }
}

/// How long a pipeline may take to drain to EOS (close its last segment) before it is
/// stopped anyway; the partial it leaves is then finalised like a crash leftover.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Below this much free space in the RAM directory no connection is tried.
pub const MIN_FREE_BYTES: u64 = 512 * 1024;
const TICK: Duration = Duration::from_millis(100);
/// Longest wait for the camera's name in the connect diagnosis.
const RESOLVE_LIMIT: Duration = Duration::from_secs(3);
/// Addresses of the camera tried (2 s each) in the connect diagnosis.
const PROBE_ADDRS: usize = 2;
/// The RAM budget is enforced after each hand-off and at least this often (the free-space
/// floor also moves with the other cameras' use of the RAM disk).
const BUDGET_EVERY: Duration = Duration::from_secs(5);

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How one connection ended.
enum End {
    Shutdown,
    Fault { fault: Fault, recorded: bool },
}

pub struct Recorder {
    url: HttpUrl,
    cfg: PipelineConfig,
    stall: Duration,
    handoff: Handoff,
    budget: Budget,
    notifier: Notifier,
    backoff: Backoff,
    limiter: RepeatLimiter,
    handed_off: VecDeque<Instant>,
    ready: bool,
    failures: u64,
    /// The encoder in use and why.
    choice: Choice,
    load: LoadMeter,
    /// What the last second measured (STATUS= while recording, and the load file).
    last_load: Option<Load>,
    /// Frames flowed in an earlier connection of this process (the next flow is a reconnect).
    recorded: bool,
}

impl Recorder {
    pub fn new(
        settings: &Settings,
        dir: PathBuf,
        handoff: Handoff,
        clock: ClockSource,
    ) -> Recorder {
        let url = settings
            .camera_url
            .clone()
            .expect("a camera's settings have CAMERA_URL");
        let dir_for_budget = dir.clone();
        let camera = settings
            .camera
            .as_deref()
            .expect("a camera's settings have a camera");
        let socket = settings.live_socket(camera);
        let live = match crate::live::LiveFeed::start(&socket) {
            Ok(l) => {
                log::debug!("live frames on {}", socket.display());
                Some(l)
            }
            Err(e) => {
                log::warn!("no live view: {e}");
                None
            }
        };
        let choice = choose_encoder(settings);
        if choice.warn {
            log::warn!("encoder: {choice}");
        } else {
            log::info!("encoder: {choice}");
        }
        let cfg = PipelineConfig {
            encoder: choice.encoder,
            encoder_device: settings.encoder_device.clone(),
            url: url.to_string(),
            dir,
            seg: Duration::from_secs(settings.seg_seconds.into()),
            x264_preset: settings.x264_preset.clone(),
            bitrate_kbps: settings.x264_bitrate_kbps,
            keyframe_interval: settings.keyframe_interval,
            socket_timeout_s: settings.stall_timeout_s + 10,
            clock,
            live,
        };
        let budget = Budget::new(settings, dir_for_budget);
        Recorder {
            url,
            cfg,
            stall: Duration::from_secs(settings.stall_timeout_s.into()),
            handoff,
            budget,
            notifier: Notifier::from_env(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            limiter: RepeatLimiter::new(Duration::from_secs(60), Duration::from_secs(3600)),
            handed_off: VecDeque::new(),
            ready: false,
            failures: 0,
            choice,
            load: LoadMeter::new(),
            last_load: None,
            recorded: false,
        }
    }

    /// Measures the load of the running pipeline, writes the load file and keeps the figures
    /// for STATUS=.
    fn measure(&mut self, rec: &Recording, now: Instant, fps: Option<f64>) {
        let dropped = self.load.dropped_before + rec.dropped();
        let recent = self.load.sample(now, dropped);
        let (width, height) = rec.frame_size().unwrap_or((0, 0));
        let load = Load {
            encoder: self.choice.encoder.name().to_string(),
            encoder_why: self.choice.why.clone(),
            frames_in: rec.counters.parts(),
            frames_out: rec.counters.encoded(),
            dropped,
            dropped_recent: recent,
            lag_ms: rec.counters.lag().as_millis() as u64,
            cpu_percent: self.load.cpu_percent,
            width,
            height,
            fps: fps.unwrap_or(0.0),
            x264_preset: self.cfg.x264_preset.clone(),
        };
        let file = self.handoff.dir().join(encoder::LOAD_FILE);
        if let Err(e) = visdcam_daemon::fsutil::write_atomic(&file, load.render().as_bytes()) {
            log::debug!("writing {}: {e}", file.display());
        }
        self.last_load = Some(load);
    }

    /// Records until SIGTERM/SIGINT. Only a broken installation (a pipeline that cannot be
    /// built) returns an error.
    pub fn run(&mut self) -> Result<(), BuildError> {
        while !shutdown::requested() {
            match self.run_once()? {
                End::Shutdown => break,
                End::Fault { fault, recorded } => {
                    if recorded {
                        self.backoff.reset();
                    }
                    self.budget.update(|s| {
                        s.faults += 1;
                        s.fps_milli = 0;
                        s.note_state(false, unix_now());
                    });
                    self.failures += 1;
                    let delay = self.backoff.next(fastrand::f64());
                    match self.limiter.check(fault.key(), Instant::now()) {
                        Verdict::Emit { suppressed: 0 } => {
                            log::warn!("{fault}; retrying in {:.1} s", delay.as_secs_f64())
                        }
                        Verdict::Emit { suppressed } => log::warn!(
                            "{fault}; retrying in {:.1} s ({suppressed} similar messages not logged)",
                            delay.as_secs_f64()
                        ),
                        Verdict::Suppress => {}
                    }
                    if !self.wait(delay, &fault) {
                        break;
                    }
                }
            }
        }
        // A stopped recorder records nothing: say so at once, rather than leave the last word
        // `recording=1` for readers to find stale 30 s later (metrics, status, the web page).
        self.budget.update(|s| {
            s.fps_milli = 0;
            s.note_state(false, unix_now());
        });
        self.notifier.status(&Activity::Stopping.to_string());
        self.notifier.stopping();
        Ok(())
    }

    /// Sleeps out a backoff delay, counting down in STATUS= and pinging the watchdog (this
    /// is deliberate waiting, a healthy state). False when shutdown was requested.
    fn wait(&mut self, delay: Duration, fault: &Fault) -> bool {
        let end = Instant::now() + delay;
        loop {
            if shutdown::requested() {
                return false;
            }
            let now = Instant::now();
            if now >= end {
                return true;
            }
            let left = end - now;
            self.budget.enforce_if_due(BUDGET_EVERY);
            self.budget.update(|s| s.note_state(false, unix_now()));
            self.say(&Activity::Waiting {
                fault: fault.clone(),
                retry_in_s: left.as_secs() + u64::from(left.subsec_nanos() > 0),
            });
            self.notifier.ping_if_due();
            std::thread::sleep(left.min(Duration::from_millis(200)));
        }
    }

    fn segments_last_hour(&mut self) -> usize {
        let now = Instant::now();
        while self
            .handed_off
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(3600))
        {
            self.handed_off.pop_front();
        }
        self.handed_off.len()
    }

    fn hand_off(&mut self, part: &Path, end: Option<SystemTime>) {
        match self.handoff.hand_off(part, end) {
            Ok(Outcome::HandedOff(f)) => {
                log::debug!("segment {} closed", f.display());
                self.handed_off.push_back(Instant::now());
                self.budget.update(|s| s.segments += 1);
                self.budget.enforce();
            }
            Ok(Outcome::Deleted(why)) => {
                log::warn!("deleted segment {}: {why}", part.display())
            }
            Ok(Outcome::Missing) => {}
            Err(e) => log::error!("{}", visdcam_daemon::error_chain(&e)),
        }
    }

    /// STATUS= of `activity`, with the budget drops when there were any.
    fn say(&mut self, activity: &Activity) {
        let drops = self.budget.stats();
        let mut text = activity.to_string();
        if let (Activity::Recording { .. }, Some(load)) = (activity, &self.last_load) {
            text.push_str(&load.status_suffix());
        }
        if drops.dropped > 0 {
            text.push_str(&format!(
                "; dropped {} ({}) over the RAM budget",
                drops.dropped,
                visdcam_core::upload::human_bytes(drops.dropped_bytes)
            ));
        }
        self.notifier.status(&text);
    }

    /// Checks the directory has room before connecting (after enforcing the RAM budget).
    fn check_room(&mut self) -> Option<Fault> {
        let dir = self.handoff.dir().to_path_buf();
        let dir = dir.as_path();
        if let Err(e) = handoff::ensure_dir(dir) {
            let detail = visdcam_daemon::error_chain(&e);
            return Some(if e.is_no_space() {
                Fault::DiskFull { detail }
            } else {
                Fault::Other { detail }
            });
        }
        self.budget.enforce();
        match visdcam_daemon::fsutil::free_bytes(dir) {
            Some(free) if free < MIN_FREE_BYTES => Some(Fault::DiskFull {
                detail: format!("{} KiB free in {}", free / 1024, dir.display()),
            }),
            _ => None,
        }
    }

    /// One connection: build, play, watch the bus and the frame counters, drain, hand off.
    fn run_once(&mut self) -> Result<End, BuildError> {
        if let Some(fault) = self.check_room() {
            return Ok(End::Fault {
                fault,
                recorded: false,
            });
        }
        let rec = Recording::build(&self.cfg)?;
        if !self.ready {
            self.notifier.ready();
            self.ready = true;
        }
        let counters = rec.counters.clone();
        // The file's counters run across connections and restarts: this one adds to them.
        let base = self.budget.stats();
        let pipeline = rec.pipeline.clone();
        let mut encoder_error: Option<String> = None;
        self.last_load = None;
        let bus = pipeline.bus().expect("a pipeline has a bus");
        let mut report = SessionReport::default();
        let mut shutdown_seen = false;
        let started = Instant::now();
        let mut draining: Option<Instant> = None;
        let mut closing_why = String::new();
        let mut current: Option<(String, Instant)> = None;
        let mut fps = FpsMeter::default();
        let mut last_tick: Option<Instant> = None;
        let mut recording = false;
        // Fragments splitmuxsink reported closed, with their end times, whose file it may
        // still hold open: handed off when the next fragment opens or the pipeline stops.
        let mut closed: Vec<(PathBuf, Option<SystemTime>)> = Vec::new();

        self.notifier.status(
            &Activity::Connecting {
                url: self.cfg.url.clone(),
            }
            .to_string(),
        );
        log::debug!("connecting to {}", self.cfg.url);
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            report.error = Some(format!("starting the pipeline: {e}"));
        }

        loop {
            let mut eos = false;
            // Messages until the next tick, never longer: a flood of them (jpegdec warns on
            // every corrupt frame) must not starve the stall check and the watchdog.
            let tick_end = Instant::now()
                + if draining.is_some() || report.error.is_some() {
                    Duration::from_millis(20)
                } else {
                    TICK
                };
            loop {
                let left = tick_end.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let Some(msg) =
                    bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
                else {
                    break;
                };
                use gst::MessageView;
                match msg.view() {
                    MessageView::Eos(_) => {
                        eos = true;
                        break;
                    }
                    MessageView::Error(e) => {
                        let text = e.error().to_string();
                        log::debug!(
                            "error from {}: {text} ({})",
                            msg.src().map(|s| s.path_string()).unwrap_or_default(),
                            e.debug().unwrap_or_default()
                        );
                        if self.choice.encoder == Encoder::V4l2
                            && msg
                                .src()
                                .is_some_and(|s| s == rec.enc.upcast_ref::<gst::Object>())
                            && encoder_error.is_none()
                        {
                            encoder_error = Some(text.clone());
                        }
                        if e.error().matches(gst::ResourceError::NoSpaceLeft) {
                            report.disk_full =
                                Some(format!("no space left in {}", self.handoff.dir().display()));
                        }
                        if report.error.is_none() {
                            report.error = Some(text);
                        }
                    }
                    MessageView::Warning(w) => log::debug!(
                        "warning from {}: {} ({})",
                        msg.src().map(|s| s.path_string()).unwrap_or_default(),
                        w.error(),
                        w.debug().unwrap_or_default()
                    ),
                    MessageView::Element(el) => {
                        let Some(s) = el.structure() else { continue };
                        match s.name().as_str() {
                            "http-headers" => {
                                report.http_status = s.get::<u32>("http-status-code").ok();
                                report.content_type = s
                                    .get::<gst::Structure>("response-headers")
                                    .ok()
                                    .and_then(|h| h.get::<String>("Content-Type").ok());
                            }
                            "splitmuxsink-fragment-opened" => {
                                // splitmuxsink reuses one filesink: the previous file is
                                // closed once the next one is open.
                                for (part, end) in std::mem::take(&mut closed) {
                                    self.hand_off(&part, end);
                                }
                                if let Ok(loc) = s.get::<String>("location") {
                                    let name = Path::new(&loc)
                                        .file_name()
                                        .and_then(|n| {
                                            SegmentName::parse_partial(&n.to_string_lossy())
                                        })
                                        .map(|n| n.final_name())
                                        .unwrap_or(loc);
                                    current = Some((name, Instant::now()));
                                }
                            }
                            "splitmuxsink-fragment-closed" => {
                                if let Ok(loc) = s.get::<String>("location") {
                                    // The fragment's end, from its running time.
                                    let end = s
                                        .get::<u64>("running-time")
                                        .ok()
                                        .zip(pipeline.current_running_time())
                                        .and_then(|(rt, now)| {
                                            let lag = now.nseconds().checked_sub(rt)?;
                                            self.cfg
                                                .clock
                                                .wall_now()
                                                .checked_sub(Duration::from_nanos(lag))
                                        });
                                    closed.push((PathBuf::from(loc), end));
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
            if eos {
                break;
            }
            let now = Instant::now();
            let frames = counters.frames();
            report.frames = frames;
            report.parts = counters.parts();
            if frames > 0 && !recording {
                recording = true;
                self.backoff.reset();
                if self.recorded {
                    self.budget.update(|s| s.reconnects += 1);
                }
                self.recorded = true;
                if self.failures > 0 {
                    log::info!(
                        "recording from {} again after {} failed attempt{}",
                        self.cfg.url,
                        self.failures,
                        if self.failures == 1 { "" } else { "s" }
                    );
                } else {
                    log::info!("recording from {}", self.cfg.url);
                }
                self.failures = 0;
                for key in [
                    "unreachable",
                    "http",
                    "not-a-stream",
                    "closed",
                    "stalled",
                    "undecodable",
                    "no-first-frame",
                    "disk-full",
                    "other",
                ] {
                    self.limiter.clear(key);
                }
            }
            match draining {
                None => {
                    let why = if shutdown::requested() {
                        shutdown_seen = true;
                        Some("stopping".to_string())
                    } else if report.error.is_some() || report.disk_full.is_some() {
                        Some(session_fault(&report).to_string())
                    } else if self.choice.encoder == Encoder::V4l2
                        && frames >= SILENT_ENCODER_FRAMES
                        && counters.encoded() == 0
                    {
                        let e = format!("no encoded frame out of {frames} decoded");
                        report.error = Some(format!("the hardware encoder: {e}"));
                        encoder_error = Some(e);
                        Some(session_fault(&report).to_string())
                    } else {
                        let since = counters.last_frame().unwrap_or(started);
                        if now.duration_since(since) >= self.stall {
                            report.timed_out_s = Some(self.stall.as_secs() as u32);
                            report.parts_while_timed_out =
                                counters.last_part().is_some_and(|p| p > since);
                            Some(session_fault(&report).to_string())
                        } else {
                            None
                        }
                    };
                    if let Some(why) = why {
                        if frames == 0 {
                            break;
                        }
                        log::debug!("draining the pipeline: {why}");
                        closing_why = why;
                        draining = Some(now + DRAIN_TIMEOUT);
                        // EOS into the source: it unblocks a stalled read and pushes EOS
                        // downstream, so splitmuxsink closes the last segment.
                        pipeline.send_event(gst::event::Eos::new());
                    }
                }
                Some(deadline) if now >= deadline => {
                    log::warn!(
                        "the pipeline did not drain within {} s; stopping it (the last \
                         segment is finalised from what was written)",
                        DRAIN_TIMEOUT.as_secs()
                    );
                    break;
                }
                Some(_) => {}
            }
            if last_tick.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
                last_tick = Some(now);
                fps.sample(now.duration_since(started).as_secs_f64(), frames);
                if recording {
                    self.measure(&rec, now, fps.fps());
                }
                let activity = if shutdown_seen {
                    Activity::Stopping
                } else if draining.is_some() {
                    Activity::Closing {
                        why: closing_why.clone(),
                    }
                } else if recording {
                    Activity::Recording {
                        fps: fps.fps(),
                        segment: current
                            .as_ref()
                            .map(|(n, t)| (n.clone(), now.duration_since(*t).as_secs())),
                        segments_last_hour: self.segments_last_hour(),
                    }
                } else {
                    Activity::Connecting {
                        url: self.cfg.url.clone(),
                    }
                };
                self.budget.enforce_if_due(BUDGET_EVERY);
                let wall = unix_now();
                let last_frame = counters
                    .last_frame()
                    .map(|t| wall - now.duration_since(t).as_secs() as i64);
                let fps_now = if recording && draining.is_none() {
                    fps.fps()
                } else {
                    None
                };
                let stall_s = self.stall.as_secs() as i64;
                self.budget.update(|s| {
                    s.frames = base.frames + frames;
                    s.parts = base.parts + counters.parts();
                    if let Some(t) = last_frame {
                        s.last_frame_unix = t;
                    }
                    s.fps_milli = fps_now.map_or(0, |f| (f * 1000.0).round() as u64);
                    // Recording while frames arrive within the stall limit.
                    let fresh = last_frame.is_some_and(|t| wall - t <= stall_s);
                    s.note_state(recording && fresh, wall);
                });
                self.say(&activity);
                // Healthy: frames arrive, or the connection/drain is within its time limit
                // (both are bounded above, so a stuck loop stops pinging).
                let healthy = match draining {
                    Some(deadline) => now < deadline,
                    None => {
                        now.duration_since(counters.last_frame().unwrap_or(started))
                            < self.stall + Duration::from_secs(1)
                    }
                };
                if healthy {
                    self.notifier.ping_if_due();
                }
            }
        }

        if let Err(e) = pipeline.set_state(gst::State::Null) {
            log::warn!("stopping the pipeline: {e}");
        }
        self.load.dropped_before += rec.dropped();
        if let Some(e) = encoder_error {
            self.choice = encoder::after_failure(&e);
            self.cfg.encoder = Encoder::X264;
            log::warn!("encoder: {}; recording with x264 from now on", self.choice);
        }
        // The last frames since the last tick count too.
        self.budget.update(|s| {
            s.frames = base.frames + counters.frames();
            s.parts = base.parts + counters.parts();
        });
        // Files are closed now: whatever this pipeline opened and splitmuxsink did not close
        // (drain timed out, write error) is finalised like a crash leftover. The counters keep
        // only the last files opened (`pipeline::PARTS_KEPT`): older ones were handed off.
        for (part, end) in closed {
            self.hand_off(&part, end);
        }
        for part in counters.opened() {
            self.hand_off(&part, None);
        }
        if shutdown_seen || shutdown::requested() {
            return Ok(End::Shutdown);
        }
        report.frames = counters.frames();
        report.parts = counters.parts();
        if report.http_status.is_none_or(|c| c == 0) && report.frames == 0 {
            report.connect_error = self.diagnose_connect();
        }
        Ok(End::Fault {
            fault: session_fault(&report),
            recorded: recording,
        })
    }

    /// Why a TCP connection to the camera fails, in words (souphttpsrc only says "Internal
    /// data stream error"). `None` when it connects. Runs between pings on the main loop, so
    /// every wait is bounded: the name lookup by [`RESOLVE_LIMIT`] (a silent DNS server would
    /// hold `getaddrinfo` for minutes), each connect by 2 s, and at most [`PROBE_ADDRS`]
    /// addresses are tried: 7 s at worst, well inside `WatchdogSec=30`.
    fn diagnose_connect(&self) -> Option<String> {
        let host = self.url.host.trim_start_matches('[').trim_end_matches(']');
        let port = self.url.port_or_default();
        let addrs = match visdcam_daemon::net::resolve(host, port, RESOLVE_LIMIT) {
            Ok(a) => a,
            Err(e) => return Some(format!("cannot resolve {host}: {e}")),
        };
        let mut last = None;
        for a in addrs.into_iter().take(PROBE_ADDRS) {
            match TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
                Ok(_) => return None,
                Err(e) => last = Some(e),
            }
        }
        last.map(|e| {
            if e.kind() == std::io::ErrorKind::TimedOut {
                "no answer within 2 s".to_string()
            } else {
                let s = e.to_string();
                let s = s.split(" (os error").next().unwrap_or(&s).to_string();
                let mut c = s.chars();
                match c.next() {
                    Some(f) => f.to_lowercase().chain(c).collect(),
                    None => s,
                }
            }
        })
    }
}

/// `ENCODER=` against the hardware encoder's start probe.
fn choose_encoder(settings: &Settings) -> Choice {
    let device = settings.encoder_device.to_string_lossy().into_owned();
    let probe = settings.encoder.tries_hardware().then(|| {
        crate::encoder::probe(
            &settings.encoder_device,
            settings.x264_bitrate_kbps,
            settings.keyframe_interval,
        )
    });
    encoder::choose(settings.encoder, &device, probe)
}
