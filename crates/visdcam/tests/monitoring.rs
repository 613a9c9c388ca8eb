//! Monitoring on real parts: the real `seg-cam` and `uploader` record a camera double into the
//! real S3 rig (SeaweedFS) while a real Prometheus (Debian's `prometheus`) scrapes
//! `visdcam metrics --http`, started for each connection as `visdcam-metrics.socket`
//! (`Accept=yes`) does; the scraped values are checked against the bucket and the double.
//! `visdcam alert check` raises and resolves alerts to a webhook received by a test server.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault, Options};
use test_rigs::process::{free_port, wait_until, ChildGuard};
use test_rigs::s3::S3Rig;

/// A sibling binary of `visdcam` in the same target directory.
fn sibling(name: &str) -> PathBuf {
    test_rigs::process::sibling_binary(env!("CARGO_BIN_EXE_visdcam"), name)
}

/// A configuration directory (one camera, cam1), a RAM directory and credentials for the rig.
struct Setup {
    tmp: tempfile::TempDir,
    conf: PathBuf,
    creds: PathBuf,
    aws_config: PathBuf,
}

impl Setup {
    /// `cams`: each camera's name, its double and extra lines for its file.
    fn new(rig: &S3Rig, cams: &[(&str, &CameraDouble, &str)], extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("etc");
        fs::create_dir_all(conf.join("cameras")).unwrap();
        fs::create_dir_all(tmp.path().join("ram")).unwrap();
        fs::write(
            conf.join("visdcam.conf"),
            format!(
                "RAM_DIR={}\nKEYFRAME_INTERVAL=10\nREQUIRE_CLOCK_SYNC=no\n\
                 B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_ADDRESSING_STYLE=path\n\
                 LOG_LEVEL=info\n{extra}",
                tmp.path().join("ram").display(),
                rig.endpoint(),
                rig.bucket(),
                rig.region()
            ),
        )
        .unwrap();
        for (name, cam, more) in cams {
            fs::write(
                conf.join(format!("cameras/{name}.conf")),
                format!(
                    "CAMERA_URL={}\nCONTROL_URL={}/\n{more}",
                    cam.stream_url(),
                    cam.base_url()
                ),
            )
            .unwrap();
        }
        let aws = tmp.path().join("aws");
        fs::create_dir_all(&aws).unwrap();
        let (creds, aws_config) = rig.write_aws_files(&aws, "b2");
        Setup {
            tmp,
            conf,
            creds,
            aws_config,
        }
    }

    fn ram(&self) -> PathBuf {
        self.tmp.path().join("ram")
    }

    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env("VISDCAM_CONFIG_DIR", &self.conf)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.creds)
            .env("AWS_CONFIG_FILE", &self.aws_config)
            .env("HOME", self.tmp.path())
            .env(
                "VISDCAM_ALERT_STATE_DIR",
                self.tmp.path().join("alert-state"),
            )
            // No system bus: unit states are left out, as on a machine without systemd.
            .env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/bus")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null());
        c
    }

    /// Starts `seg-cam cam1` or `uploader cam1`.
    fn spawn(&self, name: &str) -> ChildGuard {
        self.spawn_for(name, "cam1")
    }

    fn spawn_for(&self, name: &str, camera: &str) -> ChildGuard {
        let mut c = self.command(&sibling(name));
        c.arg(camera).stdout(Stdio::null());
        ChildGuard::spawn(name, c).unwrap()
    }

    /// Runs `visdcam ARGS` to the end: exit code, stdout, stderr.
    fn visdcam(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = self
            .command(Path::new(env!("CARGO_BIN_EXE_visdcam")))
            .args(args)
            .output()
            .expect("running visdcam");
        let r = (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        if !r.1.is_empty() || !r.2.is_empty() {
            eprintln!("$ visdcam {} -> {:?}\n{}{}", args.join(" "), r.0, r.1, r.2);
        }
        r
    }
}

/// What the emulated socket unit serves each connection with: the real binary, its stdin and
/// stdout the accepted socket (systemd's `Accept=yes` with `StandardInput=socket`).
fn serve_metrics(setup: &Setup) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cmd = setup.command(Path::new(env!("CARGO_BIN_EXE_visdcam")));
    let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = cmd
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let input = OwnedFd::from(conn.try_clone().unwrap());
            let output = OwnedFd::from(conn);
            let status = Command::new(env!("CARGO_BIN_EXE_visdcam"))
                .args(["metrics", "--http"])
                .envs(envs.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::from(input))
                .stdout(Stdio::from(output))
                .status();
            if !status.as_ref().is_ok_and(|s| s.success()) {
                eprintln!("visdcam metrics --http: {status:?}");
            }
        }
    });
    port
}

/// A real Prometheus scraping `target` every second, with its storage in a temporary directory.
struct Prometheus {
    _child: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target_port: u16) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n\
                 scrape_configs:\n  - job_name: visdcam\n    static_configs:\n\
                 \x20     - targets: ['127.0.0.1:{target_port}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let mut c = Command::new("prometheus");
        c.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null());
        let child = ChildGuard::spawn("prometheus", c)
            .expect("prometheus (apt-get install prometheus; cargo xtask deps)");
        let p = Prometheus {
            _child: child,
            port,
            _dir: dir,
        };
        wait_until(Instant::now() + Duration::from_secs(60), || {
            p.get("/-/ready").is_some_and(|(code, _)| code == 200)
        })
        .expect("prometheus ready");
        p
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        match ureq::get(&format!("http://127.0.0.1:{}{path}", self.port)).call() {
            Ok(mut r) => Some((r.status().as_u16(), r.body_mut().read_to_string().ok()?)),
            Err(ureq::Error::StatusCode(c)) => Some((c, String::new())),
            Err(_) => None,
        }
    }

    /// The value of an instant query with one result, if it has one.
    fn value(&self, query: &str) -> Option<f64> {
        let (code, body) = self.get(&format!("/api/v1/query?query={}", urlencode(query)))?;
        assert_eq!(code, 200, "{query}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {v}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` has exactly `want`; the last value seen otherwise.
    fn wait_for(&self, query: &str, want: f64) -> Result<(), Option<f64>> {
        let mut last = None;
        wait_until(Instant::now() + Duration::from_secs(30), || {
            last = self.value(query);
            last == Some(want)
        })
        .map_err(|_| last)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn prometheus_scrapes_what_the_recorder_and_uploader_did() {
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    let s = Setup::new(
        &rig,
        &[("cam1", &cam, "")],
        "SEG_SECONDS=3\nRATE_KBPS=2048\n",
    );
    let prom = Prometheus::start(serve_metrics(&s));
    let mut recorder = s.spawn("seg-cam");
    let mut uploader = s.spawn("uploader");

    wait_until(Instant::now() + Duration::from_secs(90), || {
        rig.list_objects().len() >= 3
    })
    .expect("three segments uploaded");
    prom.wait_for("visdcam_camera_up{camera=\"cam1\"}", 1.0)
        .expect("the camera is up while it records");
    assert!(
        prom.value("visdcam_camera_frames_per_second{camera=\"cam1\"}")
            .is_some_and(|f| (5.0..=12.0).contains(&f)),
        "fps near the double's 10"
    );
    // One outage: the double closes the stream and refuses for 3 s; the recorder reconnects.
    let served = cam.frames_served();
    cam.set_fault(Fault::CloseAndRefuse(Duration::from_secs(3)));
    wait_until(Instant::now() + Duration::from_secs(60), || {
        cam.frames_served() > served + 30
    })
    .expect("the recorder streams again");
    let before = rig.list_objects().len();
    wait_until(Instant::now() + Duration::from_secs(60), || {
        rig.list_objects().len() >= before + 2
    })
    .expect("two more segments after the outage");
    recorder.stop(Duration::from_secs(15));
    let cam_dir = s.ram().join("cam1");
    wait_until(Instant::now() + Duration::from_secs(60), || {
        std::fs::read_dir(&cam_dir).is_ok_and(|d| {
            !d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".ts"))
        })
    })
    .expect("the uploader drained the RAM directory");

    let objects = rig.list_objects();
    let n = objects.len() as f64;
    let bytes: u64 = objects.iter().map(|(_, size)| size).sum();
    eprintln!("{} objects, {bytes} bytes", objects.len());
    for (query, want) in [
        ("visdcam_segments_uploaded_total{camera=\"cam1\"}", n),
        ("visdcam_segments_closed_total{camera=\"cam1\"}", n),
        (
            "visdcam_uploaded_bytes_total{camera=\"cam1\"}",
            bytes as f64,
        ),
        ("visdcam_upload_latency_seconds_count{camera=\"cam1\"}", n),
        ("sum(visdcam_segments_dropped_total{camera=\"cam1\"})", 0.0),
        ("visdcam_upload_queue_segments{camera=\"cam1\"}", 0.0),
        ("visdcam_camera_reconnects_total{camera=\"cam1\"}", 1.0),
        ("visdcam_camera_up{camera=\"cam1\"}", 0.0),
        (
            "visdcam_upload_rate_limit_bytes_per_second{camera=\"cam1\"}",
            2048.0 * 1024.0,
        ),
        ("sum(visdcam_upload_retries_total{camera=\"cam1\"})", 0.0),
    ] {
        if let Err(last) = prom.wait_for(query, want) {
            panic!("{query}: want {want}, Prometheus has {last:?}");
        }
    }
    // Close-to-stored: every upload within a minute here (a 3 s segment, an idle store).
    prom.wait_for(
        "visdcam_upload_latency_seconds_bucket{camera=\"cam1\",le=\"60\"}",
        n,
    )
    .expect("all within 60 s");
    // Frames: what the double served reached the recorder, less what was in flight when a
    // connection closed.
    let served = cam.frames_served() as f64;
    let received = prom
        .value("visdcam_camera_frames_received_total{camera=\"cam1\"}")
        .unwrap();
    assert!(
        received <= served && received >= served - 20.0,
        "received {received}, served {served}"
    );
    // The double counts every stream request, also one it turned away as busy because the
    // closed connection's slot was not free yet (its one-client limit): at least the reconnect.
    assert!(
        cam.stream_connections() >= 2,
        "the double saw {} stream connections, not the reconnect",
        cam.stream_connections()
    );
    // The close, then each attempt refused while the double refused.
    let faults = prom
        .value("visdcam_camera_faults_total{camera=\"cam1\"}")
        .unwrap();
    assert!(faults >= 1.0, "faults {faults}");
    eprintln!(
        "scraped: uploaded = closed = latency count = {n}, bytes {bytes}, frames received \
         {received} of {served} served, reconnects 1, faults {faults}"
    );
    uploader.stop(Duration::from_secs(15));
}

/// A webhook receiver on 127.0.0.1: answers the first `fail_first` requests 503, the rest 200,
/// and keeps the bodies it accepted.
struct Hook {
    port: u16,
    accepted: Arc<Mutex<Vec<serde_json::Value>>>,
    requests: Arc<Mutex<u32>>,
}

impl Hook {
    fn start(fail_first: u32) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(0));
        let (acc, req) = (accepted.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                let mut line = String::new();
                let mut first = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                    if first.is_empty() {
                        first = line.clone();
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let n = {
                    let mut r = req.lock().unwrap();
                    *r += 1;
                    *r
                };
                let code = if n <= fail_first {
                    "503 Service Unavailable"
                } else {
                    assert!(first.starts_with("POST /hook "), "{first}");
                    acc.lock()
                        .unwrap()
                        .push(serde_json::from_slice(&body).expect("a JSON body"));
                    "200 OK"
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
            }
        });
        Hook {
            port,
            accepted,
            requests,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.accepted.lock().unwrap().clone()
    }

    /// `event kind:subject,subject` of each accepted body.
    fn summary(&self) -> Vec<String> {
        self.bodies()
            .iter()
            .map(|b| {
                let alerts: Vec<String> = b["alerts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| {
                        format!(
                            "{}:{}",
                            a["kind"].as_str().unwrap(),
                            a["subject"].as_str().unwrap()
                        )
                    })
                    .collect();
                format!("{} {}", b["event"].as_str().unwrap(), alerts.join(","))
            })
            .collect()
    }
}

/// Runs `visdcam alert check` (a new process each time, as the timer does) about once a
/// second until `done` holds; panics with `what` at the deadline.
fn check_until(s: &Setup, secs: u64, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, _, err) = s.visdcam(&["alert", "check"]);
        assert_eq!(code, Some(0), "alert check failed: {err}");
        if done() {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(700));
    }
}

fn recorder_says_recording(s: &Setup, cam: &str) -> bool {
    fs::read_to_string(s.ram().join(cam).join(".seg-cam-stats"))
        .is_ok_and(|t| t.lines().any(|l| l == "recording=1"))
}

#[test]
fn alerts_are_raised_once_resolved_once_coalesced_and_retried_to_a_webhook() {
    let rig = S3Rig::start();
    let hook = Hook::start(1);
    let opts = Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    };
    let cam1 = CameraDouble::start(opts.clone()).unwrap();
    let cam2 = CameraDouble::start(opts).unwrap();
    let s = Setup::new(
        &rig,
        // cam1 uploads into a bucket that does not exist (yet): uploads fail with 404.
        &[("cam1", &cam1, "B2_BUCKET=later\n"), ("cam2", &cam2, "")],
        &format!(
            "SEG_SECONDS=3\nALERT_URL={}\nALERT_CAMERA_DOWN=4s\nALERT_UPLOAD_FAILING=4s\n\
             ALERT_RAM_DISK_PERCENT=100\n",
            hook.url()
        ),
    );
    let state_dir = s.tmp.path().join("alert-state");
    let _rec1 = s.spawn_for("seg-cam", "cam1");
    let _rec2 = s.spawn_for("seg-cam", "cam2");
    let _up1 = s.spawn_for("uploader", "cam1");
    wait_until(Instant::now() + Duration::from_secs(60), || {
        recorder_says_recording(&s, "cam1") && recorder_says_recording(&s, "cam2")
    })
    .expect("both cameras recording");

    // 1. Uploads of cam1 fail: raised once past 4 s. The first POST is refused (503): the
    //    message stays queued and the next check delivers it.
    check_until(&s, 60, "the upload alert", || !hook.bodies().is_empty());
    assert_eq!(hook.summary(), ["raised upload_failing:cam1"]);
    assert_eq!(
        *hook.requests.lock().unwrap(),
        2,
        "one refused, one accepted"
    );

    // 2. Both cameras go away together: one message naming both, once.
    cam1.set_fault(Fault::CloseAndRefuse(Duration::from_secs(8)));
    cam2.set_fault(Fault::CloseAndRefuse(Duration::from_secs(8)));
    check_until(&s, 60, "the camera alert", || hook.bodies().len() >= 2);
    assert_eq!(
        hook.summary()[1],
        "raised camera_down:cam1,camera_down:cam2",
        "{:#?}",
        hook.bodies()
    );
    // The open alert is in the state file the next process reads.
    let state = fs::read_to_string(state_dir.join("state")).unwrap();
    assert!(state.contains("alert\tcamera_down\tcam1\t"), "{state}");

    // 3. They come back: one resolve naming both.
    check_until(&s, 90, "the camera resolve", || hook.bodies().len() >= 3);
    assert_eq!(
        hook.summary()[2],
        "resolved camera_down:cam1,camera_down:cam2"
    );

    // 4. The bucket appears and the credentials file changes (the uploader retries at once):
    //    uploads work, the upload alert resolves.
    rig.create_bucket("later");
    let mut creds = fs::read_to_string(&s.creds).unwrap();
    creds.push_str("# touched\n");
    fs::write(&s.creds, creds).unwrap();
    check_until(&s, 90, "the upload resolve", || hook.bodies().len() >= 4);
    assert_eq!(hook.summary()[3], "resolved upload_failing:cam1");

    // Nothing repeats in later checks.
    for _ in 0..5 {
        check_until(&s, 10, "one check", || true);
    }
    assert_eq!(
        hook.summary(),
        [
            "raised upload_failing:cam1",
            "raised camera_down:cam1,camera_down:cam2",
            "resolved camera_down:cam1,camera_down:cam2",
            "resolved upload_failing:cam1",
        ]
    );
    let b = &hook.bodies()[1];
    assert_eq!(b["version"], 1);
    assert!(
        b["title"]
            .as_str()
            .unwrap()
            .ends_with(": cameras cam1, cam2 down"),
        "{b}"
    );
    assert_eq!(b["message"].as_str().unwrap().lines().count(), 2, "{b}");
}

/// A tmux session with a shell, driven with send-keys and read with capture-pane.
struct Tmux {
    name: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        let name = format!("visdcam-top-{name}-{}", std::process::id());
        let st = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "150",
                "-y",
                "16",
                "sh",
            ])
            .status()
            .expect("tmux (apt-get install tmux)");
        assert!(st.success());
        let tmux = Tmux { name };
        // Keys typed before the shell has printed its prompt are echoed by the terminal first,
        // and the command's output then lands after the late prompt ("# EXIT=0").
        tmux.wait_for("the shell's prompt", |t| !t.trim().is_empty());
        tmux
    }

    fn send(&self, literal: bool, keys: &str) {
        let mut c = Command::new("tmux");
        c.args(["send-keys", "-t", &self.name]);
        if literal {
            c.arg("-l");
        }
        assert!(c.arg(keys).status().unwrap().success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) -> String {
        let mut last = String::new();
        let ok = wait_until(Instant::now() + Duration::from_secs(60), || {
            last = self.screen();
            cond(&last)
        });
        assert!(ok.is_ok(), "the terminal never showed {what}:\n{last}");
        eprintln!("--- tmux: {what} ---\n{last}");
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

/// The first line of `screen` that starts with `prefix`.
fn line_of<'a>(screen: &'a str, prefix: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line {prefix} in\n{screen}"))
}

#[test]
fn top_refreshes_in_a_terminal_quits_on_q_and_prints_plain_lines_in_a_pipe() {
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    // Every use of the RAM disk's file system is "nearly full" at 1 %: a real open alert.
    let s = Setup::new(
        &rig,
        &[("cam1", &cam, "")],
        "SEG_SECONDS=2\nRATE_KBPS=300\nALERT_RAM_DISK_PERCENT=1\n",
    );
    let _rec = s.spawn("seg-cam");
    let _up = s.spawn("uploader");
    let (code, out, _) = s.visdcam(&["alert", "check"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("raised: "), "{out}");

    let tmux = Tmux::new("tty");
    let c = s.command(Path::new(env!("CARGO_BIN_EXE_visdcam")));
    let env: Vec<String> = c
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}='{}'", k.to_str()?, v?.to_str()?)))
        .collect();
    tmux.send(
        true,
        &format!(
            "env {} {} top; echo EXIT=$?",
            env.join(" "),
            env!("CARGO_BIN_EXE_visdcam")
        ),
    );
    tmux.send(false, "Enter");
    // Recording, and uploads moving (a rate needs two screens and a segment on its way).
    let screen = tmux.wait_for("cam1 recording with an upload rate", |t| {
        t.lines().any(|l| {
            l.starts_with("cam1 ")
                && l.contains("recording")
                && l.contains("KiB/s ")
                && l.contains("300.0 KiB/s")
        })
    });
    assert!(
        line_of(&screen, "visdcam top — ").ends_with("— q quits"),
        "{screen}"
    );
    assert!(screen.contains("alerts: 1 open"), "{screen}");
    assert!(line_of(&screen, "  ram_disk_full ").contains(&s.ram().display().to_string()));
    assert!(screen.contains("RAM disk "), "{screen}");
    let cam1 = line_of(&screen, "cam1 ").to_string();
    assert!(
        cam1.contains("10.0") || cam1.contains(" 9."),
        "about 10 fps: {cam1}"
    );
    // It refreshes: the clock in the title moves.
    let title = line_of(&screen, "visdcam top — ").to_string();
    let later = tmux.wait_for("a later screen", |t| {
        t.lines()
            .any(|l| l.starts_with("visdcam top — ") && l != title)
    });
    assert_eq!(
        later
            .lines()
            .filter(|l| l.starts_with("visdcam top — "))
            .count(),
        1,
        "redrawn in place, not scrolled: {later}"
    );
    tmux.send(false, "q");
    let screen = tmux.wait_for("the exit", |t| t.lines().any(|l| l == "EXIT=0"));
    assert!(
        !screen.contains("visdcam top — "),
        "the shell's screen is back: {screen}"
    );

    // Not a terminal: plain lines, no escape codes; --once prints one view.
    let (code, out, _) = s.visdcam(&["top", "--once"]);
    assert_eq!(code, Some(0));
    assert!(!out.contains('\x1b'), "{out:?}");
    assert!(line_of(&out, "cam1 ").contains("recording"), "{out}");
    // A pipe gets one view after another.
    let mut child = s
        .command(Path::new(env!("CARGO_BIN_EXE_visdcam")))
        .arg("top")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut titles = 0;
    let mut line = String::new();
    while titles < 2 && reader.read_line(&mut line).unwrap() > 0 {
        assert!(!line.contains('\x1b'), "{line:?}");
        if line.starts_with("visdcam top — ") {
            titles += 1;
        }
        line.clear();
    }
    assert_eq!(titles, 2);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `kind:subject` of every alert in the accepted bodies with `event`.
fn alerts_of(hook: &Hook, event: &str) -> Vec<String> {
    hook.bodies()
        .iter()
        .filter(|b| b["event"] == event)
        .flat_map(|b| {
            b["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    format!(
                        "{}:{}",
                        a["kind"].as_str().unwrap(),
                        a["subject"].as_str().unwrap()
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn ram_budget_drops_and_an_unsynchronised_clock_are_raised_on_real_parts() {
    let rig = S3Rig::start();
    let hook = Hook::start(0);
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 10.0,
        ..Default::default()
    })
    .unwrap();
    // No uploader, and more free space asked for than the disk has: the recorder drops every
    // segment it closes.
    let s = Setup::new(
        &rig,
        &[("cam1", &cam, "")],
        &format!(
            "SEG_SECONDS=2\nRAM_MIN_FREE_MB=1048576\nALERT_URL={}\nALERT_CLOCK_UNSYNCED=3s\n\
             ALERT_RAM_DISK_PERCENT=100\n",
            hook.url()
        ),
    );
    let _rec = s.spawn("seg-cam");
    wait_until(Instant::now() + Duration::from_secs(60), || {
        recorder_says_recording(&s, "cam1")
    })
    .expect("recording");
    // The checker sees the clock through the daemons' test hook: not synchronised.
    let clock = s.tmp.path().join("clock");
    fs::write(&clock, "synced=no\n").unwrap();
    let check = || {
        let out = s
            .command(Path::new(env!("CARGO_BIN_EXE_visdcam")))
            .args(["alert", "check"])
            .env("VISDCAM_TEST_CLOCK", &clock)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
    };
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    while alerts_of(&hook, "raised").len() < 2 {
        assert!(
            Instant::now() < deadline,
            "raised so far: {:?}",
            hook.summary()
        );
        check();
        std::thread::sleep(Duration::from_millis(700));
    }
    let mut raised = alerts_of(&hook, "raised");
    raised.sort();
    assert_eq!(
        raised,
        [
            "clock_unsynced:".to_string() + &host,
            "ram_budget_drops:cam1".into()
        ]
    );
    // Synchronised again: resolved once; the drops go on, and are not raised again.
    fs::write(&clock, "synced=yes\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while alerts_of(&hook, "resolved").is_empty() {
        assert!(Instant::now() < deadline, "{:?}", hook.summary());
        check();
        std::thread::sleep(Duration::from_millis(700));
    }
    let dropped_before = fs::read_to_string(s.ram().join("cam1/.seg-cam-stats")).unwrap();
    for _ in 0..4 {
        check();
        std::thread::sleep(Duration::from_millis(700));
    }
    assert_eq!(
        alerts_of(&hook, "resolved"),
        ["clock_unsynced:".to_string() + &host]
    );
    assert_eq!(alerts_of(&hook, "raised").len(), 2, "{:?}", hook.summary());
    // The metrics count the same drops as the recorder's file.
    let (code, metrics, _) = s.visdcam(&["metrics"]);
    assert_eq!(code, Some(0));
    let stats = fs::read_to_string(s.ram().join("cam1/.seg-cam-stats")).unwrap();
    let dropped: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("dropped="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 2, "{dropped_before}");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("visdcam_segments_dropped_total{camera=\"cam1\",by=\"recorder\""))
        .unwrap();
    let in_metrics: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        in_metrics <= dropped && in_metrics + 2 >= dropped,
        "{line} vs dropped={dropped}"
    );
}

/// An SMTP server on 127.0.0.1 (Python's `smtpd`) that writes each message it accepts to
/// `dir/N.eml`; its port.
fn smtp_server(dir: &Path) -> (ChildGuard, u16) {
    let port = free_port();
    let script = format!(
        "import smtpd, asyncore, itertools, warnings\n\
         warnings.simplefilter('ignore')\n\
         n = itertools.count()\n\
         class S(smtpd.SMTPServer):\n\
         \x20   def process_message(self, peer, mailfrom, rcpttos, data, **kw):\n\
         \x20       open('{}/%d.eml' % next(n), 'wb').write(b'RCPT: ' + ','.join(rcpttos).encode() + b'\\n' + data)\n\
         S(('127.0.0.1', {port}), None, decode_data=False)\n\
         asyncore.loop()\n",
        dir.display()
    );
    let mut c = Command::new("python3");
    c.arg("-c").arg(script).stdout(Stdio::null());
    let child = ChildGuard::spawn("smtpd", c).unwrap();
    test_rigs::process::wait_for_tcp(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Instant::now() + Duration::from_secs(20),
    )
    .expect("the SMTP server listens");
    (child, port)
}

#[test]
fn alerts_are_mailed_through_sendmail() {
    assert!(
        Path::new("/usr/sbin/sendmail").exists(),
        "a sendmail (apt-get install msmtp-mta; cargo xtask deps)"
    );
    let rig = S3Rig::start();
    let mails = tempfile::tempdir().unwrap();
    let (_smtp, port) = smtp_server(mails.path());
    // Every use of the file system is "nearly full" at 1 %: a real alert at the first check.
    let s = Setup::new(
        &rig,
        &[],
        "ALERT_EMAIL=owner@example.org\nALERT_RAM_DISK_PERCENT=1\n",
    );
    // msmtp (the sendmail) reads ~/.msmtprc; the tests' HOME is the scratch directory.
    let rc = s.tmp.path().join(".msmtprc");
    fs::write(
        &rc,
        format!("account default\nhost 127.0.0.1\nport {port}\nfrom visdcam@example.org\nauth off\ntls off\n"),
    )
    .unwrap();
    fs::set_permissions(&rc, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mail = |n: usize| {
        let p = mails.path().join(format!("{n}.eml"));
        wait_until(Instant::now() + Duration::from_secs(20), || p.exists())
            .unwrap_or_else(|_| panic!("no mail {n}"));
        fs::read_to_string(p).unwrap()
    };
    let (code, out, err) = s.visdcam(&["alert", "test"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(out.trim(), "✔ email: sent");
    let test = mail(0);
    assert!(test.starts_with("RCPT: owner@example.org\n"), "{test}");
    assert!(test.contains("Subject: visdcam on "), "{test}");
    assert!(test.contains(": test alert"), "{test}");
    let (code, out, _) = s.visdcam(&["alert", "check"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("sent by email: "), "{out}");
    let raised = mail(1);
    assert!(raised.contains("nearly full"), "{raised}");
    assert!(raised.contains("% used"), "{raised}");
    // Once: later checks send nothing more.
    s.visdcam(&["alert", "check"]);
    s.visdcam(&["alert", "check"]);
    assert_eq!(fs::read_dir(mails.path()).unwrap().count(), 2);
}
