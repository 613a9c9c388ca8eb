//! `cargo xtask bench [--quick]`: measures visdcam against what a user would otherwise run,
//! on the same input in the same run, and reports ratios.
//!
//! - Recorder: `seg-cam` vs the same pipeline under `gst-launch-1.0` vs `ffmpeg`, each fed by
//!   its own camera double; CPU seconds (user+sys from `wait4`), peak RSS, frames recorded.
//! - Uploader: `uploader` vs `aws s3 cp --recursive` on the same segment files against the same
//!   SeaweedFS; wall time, CPU, peak RSS. Close→visible latency of `uploader`.
//! - `RATE_KBPS` accuracy; start-up and memory with 10,000 queued segments.
//! - Per frame: seg-cam's frames per CPU-second at each camera size (cameras per core).
//! - Live view: what 0, 1 and 5 viewers of the page's live stream cost the recorder and
//!   `visdcam web`, and the frame rate each viewer gets.
//!
//! Runs alternate between the tools and report medians. Results: `docs/benchmarks.md` (full
//! runs only) and `target/bench/results.json`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use nix::libc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use test_rigs::s3::{S3Options, S3Rig};

use crate::util::{cargo, cargo_target_dir, root, run};

/// What one run of one tool cost.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu_s: f64,
    max_rss_kb: u64,
    /// Peak anonymous RSS seen while sampling (heap, stacks, buffers: what the Pi must find;
    /// the rest is clean file pages of the executable and libraries).
    max_anon_kb: u64,
    wall_s: f64,
}

/// Spawned child whose resource usage we collect: CPU time from `wait4`, peak RSS from the
/// child's own `VmHWM`. (`ru_maxrss` would not do: `posix_spawn` runs the child on the
/// parent's memory until `exec`, and the kernel folds that memory's peak into the child's.)
struct Measured {
    child: Child,
    started: Instant,
    hwm_kb: u64,
    anon_kb: u64,
}

impl Measured {
    fn spawn(cmd: &mut Command) -> Result<Measured, String> {
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", crate::util::describe(cmd)))?;
        Ok(Measured {
            child,
            started: Instant::now(),
            hwm_kb: 0,
            anon_kb: 0,
        })
    }

    /// Reads the child's peak RSS so far (it only grows; the last reading before exit wins).
    fn sample_hwm(&mut self) {
        let Ok(status) = fs::read_to_string(format!("/proc/{}/status", self.child.id())) else {
            return;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        self.hwm_kb = self.hwm_kb.max(field("VmHWM:"));
        self.anon_kb = self.anon_kb.max(field("RssAnon:"));
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `sig`, then waits (up to 30 s, then SIGKILL) and returns the child's usage.
    fn stop(mut self, sig: Signal) -> Result<Usage, String> {
        self.sample_hwm();
        let _ = kill(self.pid(), sig);
        self.wait_usage(Duration::from_secs(30))
    }

    fn wait_usage(&mut self, limit: Duration) -> Result<Usage, String> {
        let deadline = Instant::now() + limit;
        loop {
            self.sample_hwm();
            let mut status = 0;
            // SAFETY: rusage is plain data; wait4 fills it for our own child.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let r =
                unsafe { libc::wait4(self.pid().as_raw(), &mut status, libc::WNOHANG, &mut ru) };
            if r == self.pid().as_raw() {
                let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
                return Ok(Usage {
                    cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
                    max_rss_kb: self.hwm_kb,
                    max_anon_kb: self.anon_kb,
                    wall_s: self.started.elapsed().as_secs_f64(),
                });
            }
            if r < 0 {
                return Err(format!("wait4: {}", std::io::Error::last_os_error()));
            }
            if Instant::now() > deadline {
                let _ = kill(self.pid(), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[idx]
}

fn bin(name: &str) -> PathBuf {
    cargo_target_dir().join("release").join(name)
}

/// A camera double started as its own process; `ready http://127.0.0.1:P` on stdout.
struct Double {
    child: Child,
    base: String,
}

impl Double {
    fn start(size: &str, fps: u32) -> Result<Double, String> {
        let mut child = Command::new(bin("camera-double"))
            .args(["--port", "0", "--size", size, "--fps", &fps.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start camera-double: {e}"))?;
        let stdout = child.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| format!("camera-double: {e}"))?;
        let base = line
            .trim()
            .strip_prefix("ready ")
            .ok_or_else(|| format!("camera-double said `{}`", line.trim()))?
            .to_string();
        Ok(Double { child, base })
    }

    fn stream_url(&self) -> String {
        let (host, port) = self.base.rsplit_once(':').expect("base has a port");
        let port: u16 = port.parse().expect("numeric port");
        format!("{host}:{}/stream", port + 1)
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

/// Frames in every `.ts` file of `dir` (ffprobe counts decoded frames).
fn frames_in(dir: &Path) -> Result<u64, String> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let p = entry.map_err(|e| e.to_string())?.path();
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if !(name.ends_with(".ts") || name.ends_with(".ts.part")) {
            continue;
        }
        let out = Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
            .arg(&p)
            .output()
            .map_err(|e| format!("ffprobe: {e}"))?;
        // ffprobe prints the count once per program and stream: take the first.
        total += String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(total)
}

fn scratch(name: &str) -> PathBuf {
    let d = root().join("target/bench/scratch").join(name);
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("create scratch dir");
    d
}

/// Writes a config dir for one camera and returns it.
fn config_dir(name: &str, camera_url: &str, ram: &Path, extra: &str) -> PathBuf {
    let dir = scratch(&format!("{name}-etc"));
    fs::create_dir_all(dir.join("cameras")).expect("cameras dir");
    fs::write(
        dir.join("visdcam.conf"),
        format!(
            "RAM_DIR={}\nREQUIRE_CLOCK_SYNC=no\nLOG_LEVEL=warn\n{extra}",
            ram.display()
        ),
    )
    .expect("write config");
    fs::write(
        dir.join("cameras/cam1.conf"),
        format!("CAMERA_URL={camera_url}\n"),
    )
    .expect("write camera config");
    dir
}

const TOOLS: [&str; 3] = ["seg-cam", "gst-launch", "ffmpeg"];

/// One recorder run of `tool` for `secs` against a fresh double.
fn record_once(
    tool: &str,
    size: &str,
    fps: u32,
    secs: u64,
    seg: u64,
) -> Result<(Usage, u64), String> {
    let double = Double::start(size, fps)?;
    let url = double.stream_url();
    let out = scratch(&format!("rec-{tool}"));
    let mut cmd = match tool {
        "seg-cam" => {
            let etc = config_dir("rec", &url, &out, &format!("SEG_SECONDS={seg}\n"));
            let mut c = Command::new(bin("seg-cam"));
            c.arg("cam1").env("VISDCAM_CONFIG_DIR", etc);
            c
        }
        "gst-launch" => {
            let mut c = Command::new("gst-launch-1.0");
            c.arg("-e").args(
                format!(
                    "souphttpsrc location={url} is-live=true do-timestamp=true ! \
                     multipartdemux single-stream=true ! \
                     queue leaky=downstream max-size-buffers=30 max-size-time=2000000000 \
                     max-size-bytes=16777216 ! jpegdec ! videoconvert ! \
                     video/x-raw,format=I420 ! \
                     x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 bitrate=1000 ! \
                     h264parse config-interval=-1 ! splitmuxsink muxer=mpegtsmux \
                     max-size-time={} send-keyframe-requests=true location={}/seg-%05d.ts",
                    seg * 1_000_000_000,
                    out.display()
                )
                .split_whitespace(),
            );
            c
        }
        _ => {
            let mut c = Command::new("ffmpeg");
            c.args(["-hide_banner", "-nostdin", "-loglevel", "error"])
                .args([
                    "-use_wallclock_as_timestamps",
                    "1",
                    "-f",
                    "mpjpeg",
                    "-i",
                    &url,
                ])
                .args([
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                ])
                .args([
                    "-b:v",
                    "1000k",
                    "-g",
                    "30",
                    "-pix_fmt",
                    "yuv420p",
                    "-fps_mode",
                    "passthrough",
                    // A keyframe at every split, as seg-cam and splitmuxsink's keyframe
                    // requests make: the same number of (costly) IDR frames in all three.
                    "-force_key_frames",
                    &format!("expr:gte(t,n_forced*{seg})"),
                ])
                .args(["-f", "segment", "-segment_time", &seg.to_string()])
                .args(["-segment_format", "mpegts", "-reset_timestamps", "1"])
                .arg(out.join("seg-%05d.ts"));
            c
        }
    };
    cmd.stdout(Stdio::null());
    let mut m = Measured::spawn(&mut cmd)?;
    // The run's length is the measurement: sample memory meanwhile.
    while m.started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        m.sample_hwm();
    }
    let usage = m.stop(Signal::SIGINT)?;
    let frames = frames_in(&if tool == "seg-cam" {
        out.join("cam1")
    } else {
        out
    })?;
    drop(double);
    Ok((usage, frames))
}

fn recorder(quick: bool, report: &mut Report) -> Result<(), String> {
    let cases: &[(&str, u32)] = if quick {
        &[("800x600", 15)]
    } else {
        &[("800x600", 15), ("1600x1200", 10)]
    };
    let (secs, runs, seg) = if quick { (6, 1, 3) } else { (60, 3, 10) };
    for (size, fps) in cases {
        let mut results: Vec<Vec<(Usage, u64)>> = vec![Vec::new(); TOOLS.len()];
        for r in 0..runs {
            for i in 0..TOOLS.len() {
                // Rotate the order so no tool always runs first (warm caches, CPU clocks).
                let t = (i + r) % TOOLS.len();
                eprintln!(
                    "bench: recorder {} {size}@{fps} run {}/{runs}",
                    TOOLS[t],
                    r + 1
                );
                results[t].push(record_once(TOOLS[t], size, *fps, secs, seg)?);
            }
        }
        let med =
            |t: usize, f: &dyn Fn(&(Usage, u64)) -> f64| median(results[t].iter().map(f).collect());
        let cpu: Vec<f64> = (0..3).map(|t| med(t, &|x| x.0.cpu_s)).collect();
        let rss: Vec<f64> = (0..3).map(|t| med(t, &|x| x.0.max_rss_kb as f64)).collect();
        let anon: Vec<f64> = (0..3)
            .map(|t| med(t, &|x| x.0.max_anon_kb as f64))
            .collect();
        let frames: Vec<f64> = (0..3).map(|t| med(t, &|x| x.1 as f64)).collect();
        // Ratios within a round (runs minutes apart): the machine's drift cancels out.
        let paired = |f: &dyn Fn(&(Usage, u64)) -> f64, other: usize| {
            let v: Vec<f64> = (0..runs)
                .map(|r| f(&results[0][r]) / f(&results[other][r]))
                .collect();
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (median(v), lo, hi)
        };
        let cpu_gst = paired(&|x| x.0.cpu_s, 1);
        let cpu_ff = paired(&|x| x.0.cpu_s, 2);
        let rss_gst = paired(&|x| x.0.max_rss_kb as f64, 1);
        let spread = |p: (f64, f64, f64)| format!("{:.3} ({:.3}–{:.3})", p.0, p.1, p.2);
        let case = format!("{size} {fps} fps");
        report.check(
            &format!("seg-cam CPU / gst-launch, {case}"),
            "≤ 1.02",
            &spread(cpu_gst),
            cpu_gst.0 <= 1.02,
        );
        report.check(
            &format!("seg-cam CPU / ffmpeg, {case}"),
            "≤ 0.8",
            &spread(cpu_ff),
            cpu_ff.0 <= 0.8,
        );
        report.check(
            &format!("seg-cam peak RSS / gst-launch, {case}"),
            "≤ 1",
            &spread(rss_gst),
            rss_gst.0 <= 1.0,
        );
        report.row(
            "recorder",
            &format!("{case}, {secs} s, median of {runs}"),
            json!({
                "size": size, "fps": fps, "seconds": secs, "runs": runs,
                "cpu_s": {"seg-cam": cpu[0], "gst-launch": cpu[1], "ffmpeg": cpu[2]},
                "max_rss_kb": {"seg-cam": rss[0], "gst-launch": rss[1], "ffmpeg": rss[2]},
                "max_anon_kb": {"seg-cam": anon[0], "gst-launch": anon[1], "ffmpeg": anon[2]},
                "frames": {"seg-cam": frames[0], "gst-launch": frames[1], "ffmpeg": frames[2]},
                "runs_cpu_s": (0..3).map(|t| results[t].iter().map(|x| x.0.cpu_s).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "runs_max_rss_kb": (0..3).map(|t| results[t].iter().map(|x| x.0.max_rss_kb).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "ratio_cpu_vs_gst": cpu_gst.0,
                "ratio_cpu_vs_ffmpeg": cpu_ff.0,
                "ratio_rss_vs_gst": rss_gst.0,
            }),
            vec![
                format!(
                    "CPU s seg-cam {:.2} / gst-launch {:.2} / ffmpeg {:.2}",
                    cpu[0], cpu[1], cpu[2]
                ),
                format!(
                    "CPU ratio (median of per-round ratios, min–max) vs gst-launch {} (target ≤ 1.02), \
                     vs ffmpeg {} (target ≤ 0.8)",
                    spread(cpu_gst),
                    spread(cpu_ff)
                ),
                format!(
                    "peak RSS MiB {:.1} / {:.1} / {:.1} (ratio vs gst-launch {}, target ≤ 1)",
                    rss[0] / 1024.0,
                    rss[1] / 1024.0,
                    rss[2] / 1024.0,
                    spread(rss_gst)
                ),
                format!(
                    "of which anonymous (heap, stacks, buffers) MiB {:.1} / {:.1} / {:.1} \
                     (ratio vs gst-launch {:.3})",
                    anon[0] / 1024.0,
                    anon[1] / 1024.0,
                    anon[2] / 1024.0,
                    anon[0] / anon[1]
                ),
                format!(
                    "frames {:.0} / {:.0} / {:.0} (expected ≈ {})",
                    frames[0],
                    frames[1],
                    frames[2],
                    secs * u64::from(*fps)
                ),
            ],
        );
    }
    Ok(())
}

/// Frames per CPU-second of seg-cam alone at each ESP32-CAM size (x264, the default preset):
/// how many cameras at which size one core carries. The hardware encoder (v4l2h264enc on a
/// Pi 4's bcm2835-codec) cannot be measured here and is listed as such.
fn per_frame(quick: bool, report: &mut Report) -> Result<(), String> {
    let cases: &[(&str, u32)] = if quick {
        &[("320x240", 10)]
    } else {
        &[("320x240", 10), ("800x600", 15), ("1600x1200", 10)]
    };
    let (secs, runs) = if quick { (5, 1) } else { (30, 2) };
    for (size, fps) in cases {
        let mut rates = Vec::new();
        let mut cpu = Vec::new();
        for r in 0..runs {
            eprintln!("bench: per-frame seg-cam {size}@{fps} run {}/{runs}", r + 1);
            let (usage, frames) = record_once("seg-cam", size, *fps, secs, 10)?;
            if usage.cpu_s > 0.0 {
                rates.push(frames as f64 / usage.cpu_s);
            }
            cpu.push(usage.cpu_s / secs as f64 * 100.0);
        }
        let rate = median(rates);
        let cpu_pct = median(cpu);
        report.row(
            "per frame",
            &format!("seg-cam x264 ultrafast, {size} {fps} fps, {secs} s, median of {runs}"),
            json!({"size": size, "fps": fps, "encoder": "x264", "frames_per_cpu_s": rate,
                   "cpu_percent": cpu_pct}),
            vec![
                format!(
                    "{rate:.0} frames per CPU-second ({:.2} ms of CPU per frame)",
                    1000.0 / rate
                ),
                format!(
                    "{cpu_pct:.1} % of one core at {fps} fps: {:.1} such cameras per core here",
                    rate / f64::from(*fps)
                ),
            ],
        );
    }
    report.row(
        "per frame",
        "v4l2h264enc (hardware, ENCODER=v4l2): needs a Pi 4",
        json!({"encoder": "v4l2", "measured": false,
               "why": "no bcm2835-codec (/dev/video11) on this machine"}),
        vec![
            "not measured: needs a Pi 4 (bcm2835-codec, /dev/video11). The encode itself runs \
             on the VPU; seg-cam's CPU is then JPEG decoding and the copy into the encoder's \
             buffers. Budget: 245 760 macroblocks/s shared by all cameras (docs/design/encoder.md)."
                .into(),
        ],
    );
    Ok(())
}

/// CPU clock ticks (user + system) of a process, or of its threads named `names` only
/// (`/proc/PID/stat`, `/proc/PID/task/TID/stat`, fields 14 and 15).
fn ticks(pid: u32, names: &[&str]) -> Result<u64, String> {
    let of = |path: &Path| -> Result<u64, String> {
        let stat = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let after = stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..))
            .ok_or_else(|| format!("{}: no `)`", path.display()))?;
        let f: Vec<&str> = after.split(' ').collect();
        // After "(comm) ", the state is f[0]: utime (14) is f[11], stime (15) f[12].
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(n(11) + n(12))
    };
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    if names.is_empty() {
        return of(&proc_dir.join("stat"));
    }
    let mut sum = 0;
    let tasks = fs::read_dir(proc_dir.join("task")).map_err(|e| format!("{pid}: {e}"))?;
    for t in tasks.flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if names.contains(&comm.trim()) {
            // A thread may end between the listing and the read.
            sum += of(&t.path().join("stat")).unwrap_or(0);
        }
    }
    Ok(sum)
}

fn clock_ticks_per_s() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64
}

/// One viewer of `/cam1.mjpg` through `visdcam web`: counts the parts it receives until told
/// to stop, and says when the first one came.
fn live_viewer(
    addr: std::net::SocketAddr,
    first: std::sync::mpsc::Sender<()>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<(u64, Duration), String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET /cam1.mjpg HTTP/1.1\r\nHost: pi\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf: Vec<u8> = Vec::new();
    let mut fill_until = |buf: &mut Vec<u8>, f: &dyn Fn(&[u8]) -> Option<usize>| loop {
        if let Some(i) = f(buf) {
            return Ok::<usize, String>(i);
        }
        let mut chunk = [0u8; 65536];
        let n = s.read(&mut chunk).map_err(|e| format!("reading: {e}"))?;
        if n == 0 {
            return Err("the stream ended".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head_end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n");
    let end = fill_until(&mut buf, &head_end)?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "the page answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    buf.drain(..end + 4);
    let mut parts = 0u64;
    let mut since: Option<Instant> = None;
    loop {
        let end = fill_until(&mut buf, &head_end)?;
        let len: usize = String::from_utf8_lossy(&buf[..end])
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or("a part without Content-Length")?;
        buf.drain(..end + 4);
        fill_until(&mut buf, &|b: &[u8]| (b.len() >= len + 2).then_some(0))?;
        buf.drain(..len + 2);
        match since {
            None => {
                since = Some(Instant::now());
                let _ = first.send(());
            }
            Some(_) => parts += 1,
        }
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok((parts, since.map(|t| t.elapsed()).unwrap_or_default()));
        }
    }
}

/// What watching a camera costs: seg-cam recording one camera double while `visdcam web`
/// serves its live stream to 0, 1 and 5 viewers. CPU of the recorder (and of its live-feed
/// threads) and of the page's process, per phase, and the frame rate each viewer got.
fn live_view(quick: bool, report: &mut Report) -> Result<(), String> {
    let (size, fps, secs, phases): (&str, u32, u64, &[usize]) = if quick {
        ("320x240", 10, 5, &[0, 5])
    } else {
        ("800x600", 15, 30, &[0, 1, 5])
    };
    let double = Double::start(size, fps)?;
    let out = scratch("live");
    let port = test_rigs::process::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .map_err(|e| format!("{e}"))?;
    let etc = config_dir(
        "live",
        &double.stream_url(),
        &out.join("ram"),
        &format!(
            "SEG_SECONDS=10\nRUN_DIR={}\nWEB_LISTEN={addr}\n",
            out.join("run").display()
        ),
    );
    let mut rec = Command::new(bin("seg-cam"));
    rec.arg("cam1")
        .env("VISDCAM_CONFIG_DIR", &etc)
        .stdout(Stdio::null());
    let mut rec = Measured::spawn(&mut rec)?;
    let mut web = Command::new(bin("visdcam"));
    web.arg("web")
        .env("VISDCAM_CONFIG_DIR", &etc)
        // No system bus: the page says so instead of the units' state.
        .env(
            "DBUS_SYSTEM_BUS_ADDRESS",
            format!("unix:path={}", out.join("no-bus").display()),
        )
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut web = Measured::spawn(&mut web)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    test_rigs::process::wait_for_tcp(addr, deadline).map_err(|e| e.to_string())?;
    // The recorder's live feed is up once a viewer gets a frame through the page (told to stop
    // from the start, the viewer returns after its first frame).
    wait_for(Duration::from_secs(30), || {
        let (tx, _rx) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        live_viewer(addr, tx, stop).is_ok()
    })?;
    let hz = clock_ticks_per_s();
    let (rec_pid, web_pid) = (rec.child.id(), web.child.id());
    let live_threads = ["live", "live-accept"];
    let mut live_idle = None;
    for &n in phases {
        let viewers_text = if n == 1 {
            "1 viewer".to_string()
        } else {
            format!("{n} viewers")
        };
        eprintln!("bench: live view {size}@{fps}, {viewers_text}, {secs} s");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let viewers: Vec<_> = (0..n)
            .map(|_| {
                let (tx, stop) = (tx.clone(), stop.clone());
                std::thread::spawn(move || live_viewer(addr, tx, stop))
            })
            .collect();
        drop(tx);
        for _ in 0..n {
            rx.recv_timeout(Duration::from_secs(30))
                .map_err(|_| "a viewer got no frame within 30 s".to_string())?;
        }
        let before = (
            ticks(rec_pid, &[])?,
            ticks(rec_pid, &live_threads)?,
            ticks(web_pid, &[])?,
        );
        let t0 = Instant::now();
        // The window's length is the measurement: sample memory meanwhile.
        while t0.elapsed() < Duration::from_secs(secs) {
            std::thread::sleep(Duration::from_millis(250));
            rec.sample_hwm();
            web.sample_hwm();
        }
        let window = t0.elapsed().as_secs_f64();
        let after = (
            ticks(rec_pid, &[])?,
            ticks(rec_pid, &live_threads)?,
            ticks(web_pid, &[])?,
        );
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut rates = Vec::new();
        for v in viewers {
            let (parts, took) = v.join().map_err(|_| "a viewer panicked".to_string())??;
            rates.push(parts as f64 / took.as_secs_f64());
        }
        let pct = |a: u64, b: u64| (b - a) as f64 / hz / window * 100.0;
        let (rec_pct, live_pct, web_pct) = (
            pct(before.0, after.0),
            pct(before.1, after.1),
            pct(before.2, after.2),
        );
        let idle_live = *live_idle.get_or_insert(live_pct);
        let mut lines = vec![format!(
            "seg-cam {rec_pct:.1} % of one core in all (its live-feed threads {live_pct:.2} %), \
             visdcam web {web_pct:.2} %"
        )];
        if n > 0 {
            let (lo, hi) = rates
                .iter()
                .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
            // What the viewers add: the page's process and the recorder's live-feed threads
            // above their idle share. The recorder's total moves by about a percent from one
            // phase to the next with x264's own work, which would hide it.
            let cost = web_pct + (live_pct - idle_live).max(0.0);
            lines.push(format!(
                "each viewer got {lo:.2}–{hi:.2} fps of the camera's {fps}; the viewers cost \
                 {cost:.2} % of one core (the page, and the recorder's live feed above idle), \
                 {:.2} % each",
                cost / n as f64
            ));
        }
        report.row(
            "live view",
            &format!("seg-cam {size} {fps} fps + visdcam web, {viewers_text}, {secs} s"),
            json!({"size": size, "fps": fps, "viewers": n, "seconds": window,
                   "seg_cam_cpu_percent": rec_pct, "live_threads_cpu_percent": live_pct,
                   "web_cpu_percent": web_pct, "viewer_fps": rates}),
            lines,
        );
        if n > 0 {
            let min = rates.iter().copied().fold(f64::MAX, f64::min);
            report.check(
                &format!("live view, {viewers_text}: frame rate each gets"),
                &format!("≥ 95 % of {fps} fps"),
                &format!("{min:.2} fps (lowest)"),
                min >= f64::from(fps) * 0.95,
            );
        }
    }
    let web_usage = web.stop(Signal::SIGTERM)?;
    let rec_usage = rec.stop(Signal::SIGINT)?;
    report.row(
        "live view",
        "peak memory over all phases",
        json!({"web_peak_rss_kib": web_usage.max_rss_kb, "seg_cam_peak_rss_kib": rec_usage.max_rss_kb}),
        vec![format!(
            "visdcam web peak RSS {:.1} MiB, seg-cam {:.1} MiB",
            web_usage.max_rss_kb as f64 / 1024.0,
            rec_usage.max_rss_kb as f64 / 1024.0
        )],
    );
    drop(double);
    Ok(())
}

/// Makes `n` real segments (H.264 in MPEG-TS) of about `secs` each with ffmpeg, once.
fn sample_segments(n: usize, secs: u32) -> Result<Vec<PathBuf>, String> {
    let dir = root().join(format!("target/bench/samples-{secs}s"));
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let src = dir.join("sample.ts");
    if !src.exists() {
        run(Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi"])
            .args([
                "-i",
                &format!("testsrc2=size=800x600:rate=15:duration={secs}"),
            ])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-b:v",
                "1000k",
                "-f",
                "mpegts",
            ])
            .arg(&src))?;
    }
    let base_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
        - 3_600_000;
    let mut out = Vec::new();
    for i in 0..n {
        let name = visdcam_core::segment::SegmentName::new(base_ms + i as u64 * 61_000, i as u16);
        let p = dir.join(name.final_name());
        if !p.exists() {
            fs::copy(&src, &p).map_err(|e| format!("{}: {e}", p.display()))?;
        }
        out.push(p);
    }
    Ok(out)
}

/// Copies samples into a camera's RAM dir with distinct mtimes (one per minute, in the past).
fn stage(samples: &[PathBuf], camdir: &Path) -> Result<u64, String> {
    fs::create_dir_all(camdir).map_err(|e| e.to_string())?;
    let mut bytes = 0;
    let now = SystemTime::now();
    for (i, s) in samples.iter().enumerate() {
        let dst = camdir.join(s.file_name().expect("file name"));
        bytes += fs::copy(s, &dst).map_err(|e| e.to_string())?;
        let t = now - Duration::from_secs(3600 - 61 * i as u64);
        fs::File::options()
            .write(true)
            .open(&dst)
            .and_then(|f| f.set_modified(t))
            .map_err(|e| e.to_string())?;
    }
    Ok(bytes)
}

fn aws_cli() -> Result<PathBuf, String> {
    let venv = root().join("target/tools/awscli-venv");
    let aws = venv.join("bin/aws");
    if !aws.exists() {
        eprintln!("bench: installing awscli from PyPI into {}", venv.display());
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            "awscli",
        ]))?;
    }
    Ok(aws)
}

/// Listens as systemd's notify socket would, so a benchmark sees READY=1 and STATUS= lines. A
/// thread drains it all the time, as systemd does: the daemons' `sd_notify` sends block once a
/// datagram socket's queue (10 by default) is full.
struct NotifySocket {
    rx: std::sync::mpsc::Receiver<String>,
    path: PathBuf,
}

impl NotifySocket {
    fn new(name: &str) -> NotifySocket {
        let path = scratch(&format!("notify-{name}")).join("sock");
        let sock = UnixDatagram::bind(&path).expect("bind notify socket");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                if tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
                {
                    break;
                }
            }
        });
        NotifySocket { rx, path }
    }

    /// Next datagram, or None after 200 ms without one.
    fn recv(&self) -> Option<String> {
        self.rx.recv_timeout(Duration::from_millis(200)).ok()
    }
}

fn uploader_cmd(etc: &Path, creds: &Path) -> Command {
    let mut c = Command::new(bin("uploader"));
    c.arg("cam1")
        .env("VISDCAM_CONFIG_DIR", etc)
        .env("AWS_SHARED_CREDENTIALS_FILE", creds)
        .stdout(Stdio::null());
    c
}

fn s3_settings(rig: &S3Rig) -> String {
    format!(
        "B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n",
        rig.endpoint(),
        rig.bucket(),
        rig.region()
    )
}

fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Result<Duration, String> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if cond() {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("condition not met within {limit:?}"))
}

fn uploader(quick: bool, report: &mut Report) -> Result<(), String> {
    let n = if quick { 4 } else { 20 };
    let runs = if quick { 1 } else { 3 };
    let samples = sample_segments(n, if quick { 4 } else { 60 })?;
    let aws = aws_cli()?;
    // Every run's objects stay (3 tools × runs batches, plus the latency and rate rows).
    let sample_bytes = fs::metadata(&samples[0]).map_err(|e| e.to_string())?.len();
    let rig = S3Rig::start_with(S3Options {
        capacity_mb: (sample_bytes * n as u64 * 3 * runs as u64 / (1 << 20)) as u32 + 256,
        ..S3Options::default()
    });
    let creds_dir = scratch("creds");
    let (creds, config) = rig.write_aws_files(&creds_dir, "b2");
    let aws_cmd = |args: &[&str]| {
        let mut c = Command::new(&aws);
        c.args(["s3", "cp", "--only-show-errors"])
            .args(args)
            .args(["--endpoint-url", &rig.endpoint(), "--profile", "b2"])
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &config)
            .env("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required");
        c
    };
    // uploader; aws-cli once per segment, as visdcam-pi ran it; aws-cli once for the batch.
    const UP_TOOLS: [&str; 3] = ["uploader", "aws-cli per file", "aws-cli --recursive"];
    let mut usage: Vec<Vec<Usage>> = vec![Vec::new(); UP_TOOLS.len()];
    let mut bytes = 0;
    for r in 0..runs {
        for i in 0..UP_TOOLS.len() {
            let t = (i + r) % UP_TOOLS.len();
            let ram = scratch("up-ram");
            bytes = stage(&samples, &ram.join("cam1"))?;
            let prefix_before = rig.list_objects().len();
            eprintln!("bench: {} {n} segments run {}/{runs}", UP_TOOLS[t], r + 1);
            let u = match t {
                0 => {
                    let etc = config_dir(
                        "up",
                        "http://127.0.0.1:9/stream",
                        &ram,
                        // The whole batch is pending at once: no budget drops in a benchmark.
                        &format!("{}RAM_BUDGET_MB=4096\n", s3_settings(&rig)),
                    );
                    let m = Measured::spawn(&mut uploader_cmd(&etc, &creds))?;
                    let camdir = ram.join("cam1");
                    wait_for(Duration::from_secs(600), || {
                        fs::read_dir(&camdir)
                            .map(|d| {
                                !d.flatten()
                                    .any(|e| e.file_name().to_string_lossy().ends_with(".ts"))
                            })
                            .unwrap_or(false)
                    })
                    .map_err(|e| {
                        format!(
                            "uploader did not drain {n} segments: {e}; the store's log:\n{}",
                            rig.log_tail(3000)
                        )
                    })?;
                    m.stop(Signal::SIGTERM)?
                }
                1 => {
                    let mut total = Usage::default();
                    for f in &samples {
                        let name = f.file_name().expect("file name").to_string_lossy();
                        let src = ram.join("cam1").join(&*name);
                        let dst = format!("s3://{}/awscli-file-{r}/{name}", rig.bucket());
                        let mut m = Measured::spawn(&mut aws_cmd(&[&src.to_string_lossy(), &dst]))?;
                        let u = m.wait_usage(Duration::from_secs(600))?;
                        total.cpu_s += u.cpu_s;
                        total.wall_s += u.wall_s;
                        total.max_rss_kb = total.max_rss_kb.max(u.max_rss_kb);
                    }
                    total
                }
                _ => {
                    let dst = format!("s3://{}/awscli-{r}/", rig.bucket());
                    let mut m = Measured::spawn(&mut aws_cmd(&[
                        "--recursive",
                        &ram.join("cam1").to_string_lossy(),
                        &dst,
                    ]))?;
                    m.wait_usage(Duration::from_secs(600))?
                }
            };
            usage[t].push(u);
            let added = rig.list_objects().len() - prefix_before;
            if added != n {
                return Err(format!(
                    "{}: expected {n} new objects, found {added}",
                    UP_TOOLS[t]
                ));
            }
        }
    }
    let gb = bytes as f64 / 1e9;
    let mb = bytes as f64 / 1e6;
    let med = |v: &[Usage], f: fn(&Usage) -> f64| median(v.iter().map(f).collect());
    let cpu: Vec<f64> = usage.iter().map(|v| med(v, |u| u.cpu_s)).collect();
    let wall: Vec<f64> = usage.iter().map(|v| med(v, |u| u.wall_s)).collect();
    let rss: Vec<f64> = usage
        .iter()
        .map(|v| med(v, |u| u.max_rss_kb as f64))
        .collect();
    let (oc, ow, or) = (cpu[0], wall[0], rss[0]);
    for t in 1..UP_TOOLS.len() {
        report.check(
            &format!("uploader CPU per GB / {}", UP_TOOLS[t]),
            "≤ 0.25",
            &format!(
                "{:.3} ({:.2} vs {:.2} CPU s/GB)",
                oc / cpu[t],
                oc / gb,
                cpu[t] / gb
            ),
            oc / cpu[t] <= 0.25,
        );
    }
    report.check(
        "uploader peak RSS",
        "≤ 15 MB",
        &format!(
            "{:.1} MB (aws-cli {:.1} MB)",
            or * 1024.0 / 1e6,
            rss[2] * 1024.0 / 1e6
        ),
        or * 1024.0 <= 15e6,
    );
    for t in 1..UP_TOOLS.len() {
        report.check(
            &format!("uploader throughput / {}", UP_TOOLS[t]),
            "≥ 1",
            &format!(
                "{:.2} ({:.1} vs {:.1} MB/s)",
                wall[t] / ow,
                mb / ow,
                mb / wall[t]
            ),
            wall[t] / ow >= 1.0,
        );
    }
    let by_tool = |v: &[f64]| {
        Value::Object(
            UP_TOOLS
                .iter()
                .zip(v)
                .map(|(k, x)| (k.to_string(), json!(x)))
                .collect(),
        )
    };
    let mut lines = Vec::new();
    for t in 0..UP_TOOLS.len() {
        lines.push(format!(
            "{}: CPU {:.2} s ({:.2} s/GB), wall {:.2} s ({:.1} MB/s, start-up included), peak RSS {:.1} MiB",
            UP_TOOLS[t],
            cpu[t],
            cpu[t] / gb,
            wall[t],
            mb / wall[t],
            rss[t] / 1024.0
        ));
    }
    report.row(
        "uploader",
        &format!("{n} segments, {mb:.1} MB, median of {runs}"),
        json!({
            "segments": n, "bytes": bytes, "runs": runs,
            "cpu_s": by_tool(&cpu), "wall_s": by_tool(&wall), "max_rss_kb": by_tool(&rss),
            "cpu_s_per_gb": by_tool(&cpu.iter().map(|c| c / gb).collect::<Vec<_>>()),
            "throughput_mb_s": by_tool(&wall.iter().map(|w| mb / w).collect::<Vec<_>>()),
        }),
        lines,
    );

    // Close → visible latency: the uploader runs; segments appear one by one by rename.
    let count = if quick { 3 } else { 10 };
    let ram = scratch("lat-ram");
    let camdir = ram.join("cam1");
    fs::create_dir_all(&camdir).map_err(|e| e.to_string())?;
    let etc = config_dir("lat", "http://127.0.0.1:9/stream", &ram, &s3_settings(&rig));
    let notify = NotifySocket::new("lat");
    let m = Measured::spawn(uploader_cmd(&etc, &creds).env("NOTIFY_SOCKET", &notify.path))?;
    wait_for(Duration::from_secs(30), || {
        notify.recv().is_some_and(|s| s.contains("READY=1"))
    })?;
    let mut lat = Vec::new();
    let mut transfer = Vec::new();
    let size = fs::metadata(&samples[0]).map_err(|e| e.to_string())?.len() as f64;
    let upload_rate = mb * 1e6 / ow;
    for i in 0..count {
        let before = rig.list_objects().len();
        let name = visdcam_core::segment::SegmentName::new(
            1_700_000_000_000 + i as u64,
            0xbe00 + i as u16,
        );
        let tmp = camdir.join(name.partial_name());
        fs::copy(&samples[0], &tmp).map_err(|e| e.to_string())?;
        // Distinct mtime seconds, so every segment gets its own key.
        let mtime = SystemTime::now() - Duration::from_secs(600 - i as u64);
        fs::File::options()
            .write(true)
            .open(&tmp)
            .and_then(|f| f.set_modified(mtime))
            .map_err(|e| e.to_string())?;
        fs::rename(&tmp, camdir.join(name.final_name())).map_err(|e| e.to_string())?;
        let d = wait_for(Duration::from_secs(60), || {
            rig.list_objects().len() > before
        })
        .map_err(|e| {
            format!(
                "segment {i} not visible: {e}; the store's log:\n{}",
                rig.log_tail(3000)
            )
        })?;
        lat.push(d.as_secs_f64());
        transfer.push(size / upload_rate);
    }
    m.stop(Signal::SIGTERM)?;
    let (p50, p95) = (percentile(lat.clone(), 0.5), percentile(lat, 0.95));
    let xfer = median(transfer);
    report.check(
        "close → visible p50",
        "≤ 0.5 s + transfer",
        &format!("{p50:.3} s (transfer ≈ {xfer:.3} s; p95 {p95:.3} s)"),
        p50 <= 0.5 + xfer,
    );
    report.row(
        "latency",
        &format!("close → visible, {count} segments of {:.1} MB", size / 1e6),
        json!({"p50_s": p50, "p95_s": p95, "transfer_s": xfer}),
        vec![format!(
            "p50 {p50:.3} s, p95 {p95:.3} s; transfer alone ≈ {xfer:.3} s (target p50 ≤ 0.5 s + transfer)"
        )],
    );

    // RATE_KBPS accuracy.
    let (kbps, secs) = if quick { (100u64, 3u64) } else { (100, 60) };
    let ram = scratch("rate-ram");
    let camdir = ram.join("cam1");
    fs::create_dir_all(&camdir).map_err(|e| e.to_string())?;
    let name = visdcam_core::segment::SegmentName::new(1_700_000_100_000, 0xaaaa);
    fs::write(
        camdir.join(name.final_name()),
        vec![0x47u8; (kbps * 1024 * secs) as usize],
    )
    .map_err(|e| e.to_string())?;
    let etc = config_dir(
        "rate",
        "http://127.0.0.1:9/stream",
        &ram,
        &format!("{}RATE_KBPS={kbps}\n", s3_settings(&rig)),
    );
    let before = rig.list_objects().len();
    let m = Measured::spawn(&mut uploader_cmd(&etc, &creds))?;
    let took = wait_for(Duration::from_secs(secs * 3 + 30), || {
        rig.list_objects().len() > before
    })?;
    m.stop(Signal::SIGTERM)?;
    let err = (took.as_secs_f64() / secs as f64 - 1.0) * 100.0;
    report.check(
        &format!("RATE_KBPS={kbps} over {secs} s"),
        "±5 %",
        &format!("{err:+.1} % ({:.2} s)", took.as_secs_f64()),
        err.abs() <= 5.0,
    );
    report.row(
        "rate",
        &format!("RATE_KBPS={kbps}, {} KiB", kbps * secs),
        json!({"expected_s": secs, "took_s": took.as_secs_f64(), "error_pct": err}),
        vec![format!(
            "expected {secs} s, took {:.2} s ({err:+.1} %, target ±5 %; includes start-up)",
            took.as_secs_f64()
        )],
    );

    // 10,000 queued segments, store unreachable: start-up scan time and memory. Once with
    // 1-byte files, then with sparse files of a real segment's size: memory proportional to
    // file sizes would show as a difference; a tenth as many shows what each entry costs.
    let big = if quick { 1000 } else { 10_000 };
    let mut rss_by_case = Vec::new();
    for (n, seg_bytes) in [(big / 10, sample_bytes), (big, 1), (big, sample_bytes)] {
        let ram = scratch("queue-ram");
        let camdir = ram.join("cam1");
        fs::create_dir_all(&camdir).map_err(|e| e.to_string())?;
        for i in 0..n {
            let name = visdcam_core::segment::SegmentName::new(
                1_700_000_000_000 + i as u64 * 1000,
                i as u16,
            );
            let p = camdir.join(name.final_name());
            fs::File::create(&p)
                .and_then(|f| f.set_len(seg_bytes))
                .map_err(|e| format!("{}: {e}", p.display()))?;
        }
        let etc = config_dir(
            "queue",
            "http://127.0.0.1:9/stream",
            &ram,
            "B2_ENDPOINT=http://127.0.0.1:9\nB2_BUCKET=none\nB2_REGION=us-east-1\n\
             B2_ADDRESSING_STYLE=path\nRAM_BUDGET_MB=1048576\nRAM_MIN_FREE_MB=0\n",
        );
        let notify = NotifySocket::new("queue");
        let m = Measured::spawn(uploader_cmd(&etc, &creds).env("NOTIFY_SOCKET", &notify.path))?;
        let t0 = Instant::now();
        let mut ready = None;
        let mut queued = None;
        let mut last_status = String::new();
        while t0.elapsed() < Duration::from_secs(60) {
            if let Some(msg) = notify.recv() {
                if msg.contains("READY=1") && ready.is_none() {
                    ready = Some(t0.elapsed());
                }
                if let Some(s) = msg.lines().find_map(|l| l.strip_prefix("STATUS=")) {
                    last_status = s.to_string();
                }
                if last_status.contains(&format!("queue {n} ")) {
                    queued = Some(t0.elapsed());
                }
                if ready.is_some() && queued.is_some() {
                    break;
                }
            }
        }
        let u = m.stop(Signal::SIGTERM)?;
        let ready = ready.ok_or("uploader never sent READY=1")?;
        let queued =
            queued.ok_or_else(|| format!("STATUS never showed {n} queued: {last_status}"))?;
        rss_by_case.push(u.max_rss_kb as f64);
        let gb = n as f64 * seg_bytes as f64 / 1e9;
        let mut lines = vec![format!(
            "READY after {:.3} s, all {n} queued (STATUS) after {:.3} s (target < 1 s), peak RSS \
             {:.1} MiB for {gb:.1} GB queued; STATUS: {last_status}",
            ready.as_secs_f64(),
            queued.as_secs_f64(),
            u.max_rss_kb as f64 / 1024.0
        )];
        if rss_by_case.len() == 3 {
            let flat = rss_by_case[2] / rss_by_case[1];
            let per_entry = (rss_by_case[2] - rss_by_case[0]) * 1024.0 / (n - big / 10) as f64;
            report.check(
                &format!("{n} queued segments: scan"),
                "< 1 s",
                &format!("{:.3} s", queued.as_secs_f64()),
                queued < Duration::from_secs(1),
            );
            report.check(
                &format!("{n} queued segments: peak RSS with {gb:.0} GB vs 10 kB of files"),
                "flat (≤ 1.1)",
                &format!(
                    "{flat:.2} ({:.1} vs {:.1} MiB)",
                    rss_by_case[2] / 1024.0,
                    rss_by_case[1] / 1024.0
                ),
                flat <= 1.1,
            );
            lines.push(format!(
                "peak RSS with full-size vs 1-byte files: ratio {flat:.2} (target: flat); each \
                 queued segment costs about {per_entry:.0} bytes ({} vs {} queued)",
                n,
                big / 10
            ));
        }
        report.row(
            "queue",
            &format!("{n} queued segments of {} bytes (sparse), store down", seg_bytes),
            json!({"segments": n, "segment_bytes": seg_bytes, "ready_s": ready.as_secs_f64(), "scanned_s": queued.as_secs_f64(), "max_rss_kb": u.max_rss_kb, "status": last_status}),
            lines,
        );
    }
    Ok(())
}

/// Collected results of one section.
#[derive(Default)]
struct Report {
    json: Vec<Value>,
    md: String,
    /// The targets: figure, target, measured, met.
    checks: Vec<(String, String, String, bool)>,
}

impl Report {
    fn check(&mut self, figure: &str, target: &str, measured: &str, met: bool) {
        self.checks
            .push((figure.into(), target.into(), measured.into(), met));
    }

    fn table(&self) -> String {
        let mut t = String::from("| figure | target | measured | met |\n|---|---|---|---|\n");
        for (figure, target, measured, met) in &self.checks {
            let _ = writeln!(
                t,
                "| {figure} | {target} | {measured} | {} |",
                if *met { "yes" } else { "**no**" }
            );
        }
        t
    }
    fn row(&mut self, what: &str, case: &str, data: Value, lines: Vec<String>) {
        eprintln!("bench: {what}: {case}");
        for l in &lines {
            eprintln!("  {l}");
        }
        let _ = writeln!(self.md, "\n### {what}: {case}\n");
        for l in &lines {
            let _ = writeln!(self.md, "- {l}");
        }
        self.json
            .push(json!({"what": what, "case": case, "data": data}));
    }
}

/// Where a section's latest full run is kept: committed, so that running one section on a fresh
/// clone keeps the others' figures in docs/benchmarks.md.
fn section_file(name: &str) -> PathBuf {
    root()
        .join("xtask/bench-results")
        .join(format!("{name}.json"))
}

/// docs/benchmarks.md from the latest full run of each section ([`section_file`]).
fn write_docs(names: &[&str]) -> Result<(), String> {
    let mut runs = String::new();
    let mut table = Report::default();
    let mut details = String::new();
    for name in names {
        let path = section_file(name);
        let Ok(text) = fs::read_to_string(&path) else {
            let _ = writeln!(
                runs,
                "- {name}: not run yet (`cargo xtask bench --only={name}`)"
            );
            continue;
        };
        let v: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let _ = writeln!(
            runs,
            "- {name}: run {} on {}",
            field("date"),
            field("machine")
        );
        for c in v["checks"].as_array().into_iter().flatten() {
            let text = |i: usize| c[i].as_str().unwrap_or_default();
            table.check(text(0), text(1), text(2), c[3].as_bool().unwrap_or(false));
        }
        details.push_str(&field("md"));
    }
    let md = format!(
        "# Benchmarks\n\n<!-- Written by `cargo xtask bench`; rerun it to refresh. -->\n\n\
         Absolute times on a shared machine are noise; the ratios are the figures that count. \
         What each row measures and why the comparisons are fair: \
         [design/benchmarks.md](design/benchmarks.md).\n\n{runs}\n## Targets\n\n{}\n## Details\n{details}",
        table.table(),
    );
    fs::write(root().join("docs/benchmarks.md"), md).map_err(|e| e.to_string())?;
    eprintln!("bench: wrote docs/benchmarks.md");
    Ok(())
}

fn machine() -> String {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, {}", std::env::consts::ARCH)
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    // x264 asks for transparent huge pages for its frame buffers (madvise), so with THP on,
    // every encoder's RSS jumps by 2 MiB at random from run to run. Off for this process and
    // every tool it starts (inherited), alike.
    nix::sys::prctl::set_thp_disable(true).map_err(|e| format!("PR_SET_THP_DISABLE: {e}"))?;
    crate::deps::deps(&[])?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "seg-cam",
        "-p",
        "uploader",
        "-p",
        "camera-double",
        "-p",
        "visdcam",
    ]))?;
    let only = |what: &str| {
        !args.iter().any(|a| a.starts_with("--only="))
            || args.iter().any(|a| a == &format!("--only={what}"))
    };
    let date = || {
        Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d %H:%M UTC")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default()
    };
    let dir = root().join("target/bench");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    type Section = fn(bool, &mut Report) -> Result<(), String>;
    let sections: [(&str, Section); 4] = [
        ("recorder", recorder),
        ("uploader", uploader),
        ("per-frame", per_frame),
        ("live-view", live_view),
    ];
    let mut results = Vec::new();
    for (name, section) in sections {
        if !only(name) {
            continue;
        }
        let mut report = Report::default();
        section(quick, &mut report)?;
        eprintln!("bench: {name} targets\n{}", report.table());
        results.extend(report.json.iter().cloned());
        if !quick {
            // Kept per section, so `--only=` refreshes its part of docs/benchmarks.md.
            let saved = json!({"date": date(), "machine": machine(), "checks": report.checks, "md": report.md});
            let path = section_file(name);
            let text = serde_json::to_string_pretty(&saved).expect("json") + "\n";
            fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    let json = json!({"date": date(), "machine": machine(), "quick": quick, "results": results});
    fs::write(
        dir.join("results.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .map_err(|e| e.to_string())?;
    eprintln!("bench: wrote {}", dir.join("results.json").display());
    if !quick {
        write_docs(&sections.map(|(name, _)| name))?;
    }
    Ok(())
}
