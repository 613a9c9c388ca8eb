//! `visdcam footage | fetch | play`, the real binary, on real footage: the real `seg-cam` and
//! `uploader` record a camera double (10 s segments, one 40 s outage) into the real S3 rig
//! (SeaweedFS), then the commands find, export and play it. Media files are checked with
//! ffprobe/ffmpeg and GStreamer's playbin; list requests are counted at a proxy in front of the
//! store. `seg-cam` and `uploader` are the workspace's own builds (`cargo test --workspace`
//! builds them next to `visdcam`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault, Options};
use chrono::{DateTime, SecondsFormat, Utc};
use test_rigs::media::{probe_clean, Probe};
use test_rigs::process::{wait_until, ChildGuard};
use test_rigs::proxy::CountingProxy;
use test_rigs::s3::S3Rig;

const SEG: i64 = 10;
/// KEYFRAME_INTERVAL=20 at 10 fps: a keyframe every 2 s.
const KEYFRAME_S: f64 = 2.0;
const FPS: f64 = 10.0;

fn now() -> DateTime<Utc> {
    Utc::now()
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A sibling binary of `visdcam` in the same target directory.
fn sibling(name: &str) -> PathBuf {
    test_rigs::process::sibling_binary(env!("CARGO_BIN_EXE_visdcam"), name)
}

/// A configuration directory and credentials for the rig.
struct Setup {
    tmp: tempfile::TempDir,
    conf: PathBuf,
    creds: PathBuf,
    aws_config: PathBuf,
}

impl Setup {
    fn new(rig: &S3Rig, endpoint: &str, camera_conf: Option<String>) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("etc");
        fs::create_dir_all(conf.join("cameras")).unwrap();
        fs::create_dir_all(tmp.path().join("ram")).unwrap();
        fs::create_dir_all(tmp.path().join("out")).unwrap();
        fs::write(
            conf.join("visdcam.conf"),
            format!(
                "RAM_DIR={}\nSEG_SECONDS={SEG}\nKEYFRAME_INTERVAL=20\nREQUIRE_CLOCK_SYNC=no\n\
                 B2_ENDPOINT={endpoint}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
                 LOG_LEVEL=warn\n",
                tmp.path().join("ram").display(),
                rig.bucket(),
                rig.region()
            ),
        )
        .unwrap();
        if let Some(text) = camera_conf {
            fs::write(conf.join("cameras/cam1.conf"), text).unwrap();
        }
        let aws = tmp.path().join("aws");
        fs::create_dir_all(&aws).unwrap();
        let (creds, aws_config) = rig.write_aws_files(&aws, "b2");
        // A profile whose key the store does not know, and one that may only write.
        let mut text = fs::read_to_string(&creds).unwrap();
        text.push_str(
            "[wrong]\naws_access_key_id = VISDTESTNOSUCHKEY\naws_secret_access_key = nope\n",
        );
        let (id, secret) = rig.write_only_key();
        text.push_str(&format!(
            "[writeonly]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"
        ));
        fs::write(&creds, text).unwrap();
        Setup {
            tmp,
            conf,
            creds,
            aws_config,
        }
    }

    fn out(&self) -> PathBuf {
        self.tmp.path().join("out")
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("VISDCAM_CONFIG_DIR", &self.conf)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.creds)
            .env("AWS_CONFIG_FILE", &self.aws_config)
            .env("HOME", self.tmp.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null());
        c
    }

    /// Runs `visdcam ARGS` in the output directory.
    fn visdcam(&self, args: &[&str]) -> Run {
        let out = self
            .command(Path::new(env!("CARGO_BIN_EXE_visdcam")))
            .args(args)
            .current_dir(self.out())
            .output()
            .expect("running visdcam");
        Run::from(args, out)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn from(args: &[&str], o: Output) -> Run {
        let r = Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        };
        eprintln!(
            "$ visdcam {}\n-> {:?}\n{}{}",
            args.join(" "),
            r.code,
            r.stdout,
            r.stderr
        );
        r
    }

    fn ok(self) -> Run {
        assert_eq!(self.code, Some(0), "{}{}", self.stdout, self.stderr);
        self
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

fn ts(v: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    (b - a).num_milliseconds() as f64 / 1000.0
}

/// `ffprobe` of a media file that must decode cleanly as H.264: duration, frames decoded,
/// creation time.
fn probe(path: &Path) -> Probe {
    let p = probe_clean(path);
    assert_eq!(p.codec, "h264", "{}: {p:?}", path.display());
    p
}

/// The H.264 slice NAL units (types 1 and 5) of a media file's video, in order, as Annex B.
fn slices(path: &Path) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map",
            "0:v:0",
            "-c:v",
            "copy",
            "-bsf:v",
            "h264_mp4toannexb",
            "-f",
            "h264",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = out.stdout;
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= b.len() {
        if b[i] == 0 && b[i + 1] == 0 && b[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let mut e = starts.get(n + 1).map_or(b.len(), |&next| next - 3);
        while e > s && b[e - 1] == 0 {
            e -= 1;
        }
        let nal = &b[s..e];
        if matches!(nal.first().map(|h| h & 0x1f), Some(1 | 5)) {
            nals.push(nal.to_vec());
        }
    }
    nals
}

/// Whether `part` appears as one contiguous run inside `whole`.
fn contiguous_run(whole: &[Vec<u8>], part: &[Vec<u8>]) -> bool {
    !part.is_empty() && whole.windows(part.len()).any(|w| w == part)
}

fn objects_of(rig: &S3Rig, camera: &str) -> Vec<(String, u64)> {
    rig.list_objects()
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{camera}/")))
        .collect()
}

/// Files left in a directory (nothing half-written may stay).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_recording_with_an_outage_is_found_fetched_and_played() {
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: FPS,
        ..Default::default()
    })
    .unwrap();
    let camera_conf = format!(
        "CAMERA_URL={}\nCONTROL_URL={}/\n",
        cam.stream_url(),
        cam.base_url()
    );
    let s = Setup::new(&rig, &rig.endpoint(), Some(camera_conf));
    let spawn = |name: &str| {
        let mut c = s.command(&sibling(name));
        c.arg("cam1").stdout(Stdio::null());
        ChildGuard::spawn(name, c).unwrap()
    };
    let rec_start = now();
    let mut recorder = spawn("seg-cam");
    let mut uploader = spawn("uploader");

    // 90 s of footage, then the camera goes away for 40 s.
    wait_until(Instant::now() + Duration::from_secs(150), || {
        objects_of(&rig, "cam1").len() >= 9
    })
    .expect("nine segments uploaded");
    let served = cam.frames_served();
    let out_start = now();
    cam.set_fault(Fault::CloseAndRefuse(Duration::from_secs(40)));
    // The outage ends when frames flow to the recorder again (after its reconnect backoff).
    wait_until(Instant::now() + Duration::from_secs(120), || {
        cam.frames_served() > served + 1
    })
    .expect("the recorder streams again");
    let out_end = now() - chrono::Duration::milliseconds(100);
    let before = objects_of(&rig, "cam1").len();
    wait_until(Instant::now() + Duration::from_secs(120), || {
        objects_of(&rig, "cam1").len() >= before + 5
    })
    .expect("five more segments after the outage");
    recorder.stop(Duration::from_secs(15));
    let cam_dir = s.tmp.path().join("ram/cam1");
    wait_until(Instant::now() + Duration::from_secs(60), || {
        fs::read_dir(&cam_dir)
            .map(|d| {
                !d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".ts"))
            })
            .unwrap_or(true)
    })
    .expect("the uploader drained the RAM directory");
    uploader.stop(Duration::from_secs(15));
    let rec_end = now();
    eprintln!(
        "recorded {} → {}, outage {} → {}",
        iso(rec_start),
        iso(rec_end),
        out_start,
        out_end
    );

    // --- footage: two spans, one gap where the outage was.
    let from = rec_start + chrono::Duration::seconds(5);
    let to = rec_end - chrono::Duration::seconds(5);
    let f = s
        .visdcam(&["footage", "cam1", &iso(from), &iso(to), "--json"])
        .ok()
        .json();
    let spans = f["spans"].as_array().unwrap();
    let gaps = f["gaps"].as_array().unwrap();
    assert_eq!(spans.len(), 2, "{f:#}");
    assert_eq!(gaps.len(), 1, "{f:#}");
    let (gap_start, gap_end) = (ts(&gaps[0]["start"]), ts(&gaps[0]["end"]));
    assert!(
        secs_between(out_start, gap_start).abs() <= 2.0,
        "gap starts at {gap_start}, the camera went away at {out_start}"
    );
    assert!(
        secs_between(out_end, gap_end).abs() <= 2.0,
        "gap ends at {gap_end}, frames flowed again at {out_end}"
    );
    assert_eq!(f["segment_seconds"], SEG);
    let text = s
        .visdcam(&["footage", "cam1", &iso(from), &iso(to)])
        .ok()
        .stdout;
    assert!(text.contains("2 spans, 1 gap"), "{text}");
    assert!(text.contains("no footage"), "{text}");

    // --- fetch: 70 s straddling segment boundaries, as .mp4 and .ts.
    let span1_start = ts(&spans[0]["start"]);
    let f_from = span1_start + chrono::Duration::milliseconds(13_400);
    let f_to = f_from + chrono::Duration::seconds(70);
    assert!(f_to < gap_start, "the clip lies inside the first span");
    let uploaded: Vec<Vec<u8>> = {
        let keys: Vec<String> = objects_of(&rig, "cam1")
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        let dir = s.tmp.path().join("uploaded");
        fs::create_dir_all(&dir).unwrap();
        let mut all = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let p = dir.join(format!("{i:03}.ts"));
            fs::write(&p, rig.get_object(k)).unwrap();
            all.extend(slices(&p));
        }
        all
    };
    for (name, creation) in [("clip.mp4", true), ("clip.ts", false)] {
        let r = s
            .visdcam(&["fetch", "cam1", &iso_ms(f_from), &iso_ms(f_to), "-o", name])
            .ok();
        assert!(
            r.stdout.starts_with(&format!("wrote {name}: ")),
            "{}",
            r.stdout
        );
        let files = listing(&s.out());
        assert!(files.iter().any(|n| n == name), "{name} written: {files:?}");
        assert!(
            !files
                .iter()
                .any(|n| n.ends_with(".part") || n.starts_with('.')),
            "nothing half-written or temporary left: {files:?}"
        );
        let path = s.out().join(name);
        let p = probe(&path);
        assert!(
            (p.duration - 70.0).abs() <= KEYFRAME_S + 0.2,
            "{name}: {} s for a 70 s range",
            p.duration
        );
        let want_frames = p.duration * FPS;
        assert!(
            (p.frames as f64 - want_frames).abs() <= want_frames * 0.1,
            "{name}: {} frames in {} s at {FPS} fps",
            p.frames,
            p.duration
        );
        if creation {
            let c = p.creation_time.expect("an .mp4 carries its creation time");
            let c = DateTime::parse_from_rfc3339(&c)
                .unwrap()
                .with_timezone(&Utc);
            let early = secs_between(c, f_from);
            assert!(
                (-0.5..=KEYFRAME_S + 1.0).contains(&early),
                "creation time {c} vs start {f_from}"
            );
        }
        // x264 may cut a picture into several slices: compare slices, not frames.
        let got = slices(&path);
        assert!(got.len() as u64 >= p.frames, "{} slices", got.len());
        assert!(
            contiguous_run(&uploaded, &got),
            "{name}: its H.264 slices are not the uploaded ones (re-encoded?)"
        );
    }

    // In a terminal, as a person sees it (tmux): a progress bar while the GETs wait, Ctrl-C
    // leaves nothing behind; then a run to 100 %.
    {
        let proxy = CountingProxy::start(rig.addr());
        let before = listing(&s.out());
        let tmux = Tmux::new(&s, "tty");
        proxy.hold_object_gets(true);
        tmux.run(&format!(
            "fetch cam1 {} {} -o tty.mp4 --endpoint {}",
            iso_ms(f_from),
            iso_ms(f_to),
            proxy.endpoint()
        ));
        let screen =
            tmux.wait_for(|t| t.contains("  0/") && t.contains(" segments") && t.contains("[---"));
        assert!(screen.contains("  0%"), "{screen}");
        tmux.keys("C-c");
        let screen = tmux.wait_for(exited);
        assert!(
            screen.contains("cancelled; nothing was written"),
            "{screen}"
        );
        assert!(screen.lines().any(|l| l == "EXIT=130"), "{screen}");
        assert_eq!(listing(&s.out()), before, "Ctrl-C left something behind");
        proxy.hold_object_gets(false);
        tmux.run(&format!(
            "fetch cam1 {} {} -o tty.mp4 --endpoint {}",
            iso_ms(f_from),
            iso_ms(f_to),
            proxy.endpoint()
        ));
        let screen = tmux.wait_for(exited);
        assert!(screen.lines().any(|l| l == "EXIT=0"), "{screen}");
        assert!(
            screen.contains("[##############################] 100%"),
            "{screen}"
        );
        assert!(screen.contains("wrote tty.mp4: "), "{screen}");
        fs::remove_file(s.out().join("tty.mp4")).unwrap();
    }

    // A range across the outage keeps the gap in time and lists it.
    let across_from = gap_start - chrono::Duration::seconds(15);
    let across_to = gap_end + chrono::Duration::seconds(15);
    let r = s
        .visdcam(&[
            "fetch",
            "cam1",
            &iso(across_from),
            &iso(across_to),
            "-o",
            "across.mkv",
        ])
        .ok();
    assert!(r.stderr.contains("gap at "), "{}", r.stderr);
    let path = s.out().join("across.mkv");
    let p = probe(&path);
    let want = secs_between(across_from, across_to);
    assert!(
        (p.duration - want).abs() <= 2.0 * KEYFRAME_S + 1.0,
        "across.mkv: {} s for a {want} s range with a gap kept in time",
        p.duration
    );

    // --- play: an HLS playlist of presigned URLs that ffmpeg and GStreamer play.
    let r = s
        .visdcam(&["play", "cam1", &iso(from), &iso(to), "-o", "all.m3u8"])
        .ok();
    assert!(r.stdout.contains("valid for 1h"), "{}", r.stdout);
    let playlist = s.out().join("all.m3u8");
    let text = fs::read_to_string(&playlist).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY").count(), 1, "{text}");
    assert_eq!(
        text.matches("#EXT-X-PROGRAM-DATE-TIME:").count(),
        text.matches("#EXTINF:").count()
    );
    assert!(text.contains(&format!("{}/{}/cam1/", rig.endpoint(), rig.bucket())));
    let copy = s.out().join("from-playlist.ts");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-protocol_whitelist",
            "file,http,tcp",
            "-i",
        ])
        .arg(&playlist)
        .args(["-c", "copy"])
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "ffmpeg over HTTP: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    probe(&copy);
    let out = Command::new("gst-launch-1.0")
        .arg("playbin")
        .arg(format!("uri=file://{}", playlist.display()))
        .arg("video-sink=fakesink sync=false")
        .arg("audio-sink=fakesink")
        .output()
        .unwrap();
    let gst = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && gst.contains("Got EOS"),
        "playbin: {gst}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An expired URL: the player gets 403.
    s.visdcam(&[
        "play",
        "cam1",
        &iso(from),
        "1m",
        "--expires",
        "1s",
        "-o",
        "short.m3u8",
    ])
    .ok();
    let short = s.out().join("short.m3u8");
    let url = fs::read_to_string(&short)
        .unwrap()
        .lines()
        .find(|l| l.starts_with("http"))
        .unwrap()
        .to_string();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    wait_until(Instant::now() + Duration::from_secs(10), || {
        agent.get(&url).call().is_ok_and(|r| r.status() == 403)
    })
    .expect("the URL expires after 1 s");
    let out = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "warning",
            "-protocol_whitelist",
            "file,http,tcp",
            "-i",
        ])
        .arg(&short)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("403 Forbidden"),
        "ffmpeg on an expired playlist: {err}"
    );

    // --- clear one-line errors, non-zero exits, nothing written.
    let before = listing(&s.out());
    for (args, code, want) in [
        (
            vec!["footage", "cam1", "2020-01-01 10:00", "1h"],
            1,
            "no footage of cam1 between 2020-01-01 10:00:00 IST and 2020-01-01 11:00:00 IST",
        ),
        (
            vec!["fetch", "cam1", "2020-01-01 10:00", "10m", "-o", "none.mp4"],
            1,
            "no footage of cam1",
        ),
        (vec!["footage", "cam9"], 2, "unknown camera `cam9`"),
        (vec!["fetch", "cam1", "17:40", "17:30"], 2, "the end ("),
        (
            vec!["footage", "cam1", "--profile", "wrong"],
            1,
            "InvalidAccessKeyId",
        ),
        (
            vec!["footage", "cam1", "--profile", "writeonly"],
            1,
            "listFiles",
        ),
        (
            vec!["play", "cam1", "sometime"],
            2,
            "cannot read `sometime` as a start time",
        ),
    ] {
        let r = s.visdcam(&args);
        assert_eq!(r.code, Some(code), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.lines().count(),
            1,
            "{args:?}: one line: {}",
            r.stderr
        );
        assert!(r.stderr.contains(want), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    assert_eq!(
        listing(&s.out()),
        before,
        "nothing written by failed commands"
    );
}

/// Whether the screen shows the exit status line (`EXIT=` at a line's start, not the typed
/// command that prints it).
fn exited(screen: &str) -> bool {
    screen.lines().any(|l| l.starts_with("EXIT="))
}

/// A tmux session running `visdcam` commands in the output directory, read with capture-pane.
struct Tmux {
    name: String,
    env: String,
    cwd: PathBuf,
}

impl Tmux {
    fn new(s: &Setup, name: &str) -> Tmux {
        let name = format!("visdcam-test-{name}-{}", std::process::id());
        let env = format!(
            "env VISDCAM_CONFIG_DIR={} AWS_SHARED_CREDENTIALS_FILE={} AWS_CONFIG_FILE={} HOME={}",
            s.conf.display(),
            s.creds.display(),
            s.aws_config.display(),
            s.tmp.path().display()
        );
        let st = Command::new("tmux")
            .args(["new-session", "-d", "-s", &name, "-x", "160", "-y", "12"])
            .arg("-c")
            .arg(s.out())
            .status()
            .expect("tmux (apt-get install tmux)");
        assert!(st.success());
        let tmux = Tmux {
            name,
            env,
            cwd: s.out(),
        };
        // Keys typed before the shell has printed its prompt would be echoed ahead of it.
        tmux.wait_for(|t| !t.trim().is_empty());
        tmux
    }

    /// Clears the screen and types `visdcam ARGS; echo EXIT=$?`.
    fn run(&self, args: &str) {
        self.keys("clear");
        self.keys("Enter");
        // The last command's status line must be gone before the next one is typed.
        self.wait_for(|t| !exited(t) && !t.contains("clear"));
        let line = format!(
            "cd {} && {} {} {args}; echo EXIT=$?",
            self.cwd.display(),
            self.env,
            env!("CARGO_BIN_EXE_visdcam")
        );
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", &line])
            .status()
            .unwrap();
        assert!(st.success());
        self.keys("Enter");
    }

    fn keys(&self, keys: &str) {
        let st = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, keys])
            .status()
            .unwrap();
        assert!(st.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-J", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The screen once `cond` holds for it (within 60 s).
    fn wait_for(&self, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(Instant::now() + Duration::from_secs(60), || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok.is_ok(), "the terminal never showed it:\n{last}");
        eprintln!("--- tmux {} ---\n{last}", self.name);
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

fn iso_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[test]
fn listing_an_hour_costs_a_few_requests_in_a_full_bucket() {
    let rig = S3Rig::start();
    let proxy = CountingProxy::start(rig.addr());
    let s = Setup::new(&rig, &proxy.endpoint(), None);
    // 10,000 objects of other hours and cameras, and 360 segments of cam1's hour
    // 2026-11-30 14:00–15:00 IST (08:30Z–09:30Z), 10 s apart, ending at :10, :20, ...
    let tz = chrono_tz::Asia::Kolkata;
    let template = visdcam_core::keys::KeyTemplate::default();
    let hour = DateTime::parse_from_rfc3339("2026-11-30T08:30:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut keys: Vec<String> = (1..=360)
        .map(|i| template.render("cam1", hour + chrono::Duration::seconds(i * SEG), tz))
        .collect();
    let mut other = 0i64;
    while keys.len() < 10_360 {
        let camera = ["cam1", "cam2", "cam3"][(other % 3) as usize];
        // Other hours of the same days and other days, both sides of the hour asked for.
        let offset = (other / 3 % 2000 - 1000) * 157 + if other % 2 == 0 { 7_200 } else { -7_200 };
        let at = hour + chrono::Duration::seconds(offset);
        other += 1;
        let key = template.render(camera, at, tz);
        if camera == "cam1"
            && at >= hour - chrono::Duration::hours(1)
            && at <= hour + chrono::Duration::hours(2)
        {
            continue;
        }
        keys.push(key);
    }
    std::thread::scope(|scope| {
        for chunk in keys.chunks(keys.len().div_ceil(8)) {
            let rig = &rig;
            scope.spawn(move || {
                for k in chunk {
                    rig.put_object(k, b"x");
                }
            });
        }
    });
    proxy.clear();
    let r = s
        .visdcam(&[
            "footage",
            "cam1",
            "2026-11-30 14:00",
            "1h",
            "--json",
            "--endpoint",
            &proxy.endpoint(),
        ])
        .ok();
    let v = r.json();
    assert_eq!(v["segments"], 360, "{v:#}");
    assert_eq!(v["spans"].as_array().unwrap().len(), 1, "{v:#}");
    let lines = proxy.request_lines();
    let lists = lines.iter().filter(|l| l.contains("list-type=2")).count();
    assert!(
        (1..=3).contains(&lists),
        "{lists} list requests for one hour: {lines:#?}"
    );
    assert!(lines.len() <= lists + 2, "requests: {lines:#?}");
    assert_eq!(v["list_requests"], lists);

    // `play --open` hands the playlist to the first player in PATH: here a stand-in `mpv`
    // that notes what it was given (no media player runs headless in a test).
    let bin = s.tmp.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let seen = s.tmp.path().join("player-args");
    let mpv = bin.join("mpv");
    fs::write(
        &mpv,
        format!("#!/bin/sh\necho \"$@\" > '{}'\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&mpv, fs::Permissions::from_mode(0o755)).unwrap();
    let out = s
        .command(Path::new(env!("CARGO_BIN_EXE_visdcam")))
        .args([
            "play",
            "cam1",
            "2026-11-30 14:00",
            "10m",
            "--open",
            "-o",
            "p.m3u8",
        ])
        .env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        )
        .current_dir(s.out())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("opening it with mpv"), "{text}");
    wait_until(Instant::now() + Duration::from_secs(10), || seen.exists()).unwrap();
    assert_eq!(fs::read_to_string(&seen).unwrap().trim(), "p.m3u8");
    let playlist = fs::read_to_string(s.out().join("p.m3u8")).unwrap();
    assert_eq!(
        playlist.matches("#EXTINF:10.000,").count(),
        60,
        "{playlist}"
    );
}

#[test]
fn a_template_without_a_date_first_cannot_be_listed_by_range() {
    let rig = S3Rig::start();
    let s = Setup::new(&rig, &rig.endpoint(), None);
    let conf = s.conf.join("visdcam.conf");
    let mut text = fs::read_to_string(&conf).unwrap();
    text.push_str("KEY_TEMPLATE={camera}/%s.ts\n");
    fs::write(&conf, text).unwrap();
    let r = s.visdcam(&["footage", "cam1"]);
    assert_eq!(r.code, Some(78), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot be listed by key prefix"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1);
}
