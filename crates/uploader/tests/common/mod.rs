//! Shared set-up for the uploader's integration tests: a config directory, a RAM directory,
//! real MPEG-TS segments (made once by ffmpeg), the real `uploader` binary, its counters file
//! and its sd_notify STATUS.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use test_rigs::process::ChildGuard;
use test_rigs::s3::S3Rig;
use visdcam_core::segment::SegmentName;
use visdcam_core::upload::Stats;

pub const CAMERA: &str = "cam1";

/// A real MPEG-TS file from ffmpeg (H.264 test pattern), at about `kbit` kbit/s for 2 s.
pub fn real_segment(kbit: u32) -> Vec<u8> {
    static CACHE: OnceLock<std::sync::Mutex<std::collections::HashMap<u32, Vec<u8>>>> =
        OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(v) = cache.lock().unwrap().get(&kbit) {
        return v.clone();
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.ts");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc=size=640x480:rate=10")
        .args(["-t", "2", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-b:v", &format!("{kbit}k"), "-minrate", &format!("{kbit}k")])
        .args([
            "-maxrate",
            &format!("{kbit}k"),
            "-bufsize",
            &format!("{kbit}k"),
        ])
        .args(["-x264-params", "nal-hrd=cbr", "-f", "mpegts"])
        .arg(&out)
        .status()
        .expect("running ffmpeg (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed");
    let bytes = fs::read(&out).unwrap();
    cache.lock().unwrap().insert(kbit, bytes.clone());
    bytes
}

/// A test's directories, config and running uploader.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub etc: PathBuf,
    pub ram: PathBuf,
    pub camdir: PathBuf,
    pub creds: PathBuf,
    pub aws_config: PathBuf,
    pub notify: UnixDatagram,
    pub notify_path: PathBuf,
    pub status: String,
    pub child: Option<ChildGuard>,
    pub extra_env: Vec<(String, String)>,
    next_tag: u16,
}

impl Env {
    /// Config for `rig` (path style, no clock gate) plus `extra` lines in visdcam.conf.
    pub fn new(rig: &S3Rig, extra: &str) -> Env {
        Env::with_endpoint(rig, &rig.endpoint(), extra)
    }

    pub fn with_endpoint(rig: &S3Rig, endpoint: &str, extra: &str) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path().join("etc");
        let ram = tmp.path().join("ram");
        let camdir = ram.join(CAMERA);
        fs::create_dir_all(etc.join("cameras")).unwrap();
        fs::create_dir_all(&camdir).unwrap();
        let clock_line = if extra.contains("REQUIRE_CLOCK_SYNC") {
            ""
        } else {
            "REQUIRE_CLOCK_SYNC=no\n"
        };
        fs::write(
            etc.join("visdcam.conf"),
            format!(
                "RAM_DIR={}\nB2_ENDPOINT={endpoint}\nB2_BUCKET={}\nB2_ADDRESSING_STYLE=path\n\
                 LOG_LEVEL=info\n{clock_line}{extra}",
                ram.display(),
                rig.bucket()
            ),
        )
        .unwrap();
        fs::write(
            etc.join("cameras").join(format!("{CAMERA}.conf")),
            "CAMERA_URL=http://127.0.0.1:9/stream\n",
        )
        .unwrap();
        let awsdir = tmp.path().join("aws");
        fs::create_dir_all(&awsdir).unwrap();
        let (creds, aws_config) = rig.write_aws_files(&awsdir, "b2");
        let notify_path = tmp.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify.set_nonblocking(true).unwrap();
        Env {
            tmp,
            etc,
            ram,
            camdir,
            creds,
            aws_config,
            notify,
            notify_path,
            status: String::new(),
            child: None,
            extra_env: Vec::new(),
            next_tag: 0x1000,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.tmp.path().join("uploader.log")
    }

    /// Starts the real `uploader cam1`.
    pub fn start(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uploader"));
        cmd.arg(CAMERA)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("VISDCAM_CONFIG_DIR", &self.etc)
            .env("AWS_SHARED_CREDENTIALS_FILE", &self.creds)
            .env("AWS_CONFIG_FILE", &self.aws_config)
            .env("NOTIFY_SOCKET", &self.notify_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        self.child = Some(ChildGuard::spawn("uploader", cmd).unwrap());
    }

    /// The uploader's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Places a closed segment the way the recorder does: write `.part`, set its mtime, rename.
    pub fn place(&mut self, bytes: &[u8], mtime: SystemTime) -> PathBuf {
        self.next_tag += 1;
        let ms = mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let name = SegmentName::new(ms, self.next_tag);
        let part = self.camdir.join(name.partial_name());
        fs::write(&part, bytes).unwrap();
        fs::File::options()
            .write(true)
            .open(&part)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let fin = self.camdir.join(name.final_name());
        fs::rename(&part, &fin).unwrap();
        fin
    }

    /// The counters file (default values before it exists).
    pub fn stats(&self) -> Stats {
        fs::read_to_string(self.camdir.join(".uploader-stats"))
            .map(|t| Stats::parse(&t))
            .unwrap_or_default()
    }

    /// The latest STATUS= the uploader sent.
    pub fn status(&mut self) -> String {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.notify.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]);
            for line in msg.lines() {
                if let Some(s) = line.strip_prefix("STATUS=") {
                    self.status = s.to_string();
                }
            }
        }
        self.status.clone()
    }

    /// Segment files (`*.ts`, any type) left in the camera directory.
    pub fn segments_left(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.camdir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".ts"))
            .collect();
        v.sort();
        v
    }

    /// Polls `cond` until `secs` pass; panics with the uploader's log if it never holds.
    pub fn wait(&mut self, secs: u64, what: &str, mut cond: impl FnMut(&mut Env) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut ok = false;
        while Instant::now() < deadline {
            // Keep the notify socket drained: a full queue would block the uploader's sends.
            self.status();
            if cond(self) {
                ok = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            ok,
            "timed out after {secs} s waiting for {what}\nstatus: {}\nstats: {:?}\nleft: {:?}\nlog:\n{}",
            self.status(),
            self.stats(),
            self.segments_left(),
            self.log()
        );
    }

    /// Stops the uploader with SIGTERM and checks it exits 0.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let st = c.stop(Duration::from_secs(10)).unwrap();
            assert!(st.success(), "uploader exited with {st}\n{}", self.log());
        }
    }
}

/// The key visdcam-pi would give a file with this mtime, formatted here independently of the
/// core's template code.
pub fn expected_key(mtime: SystemTime, tz: chrono_tz::Tz) -> String {
    let t: chrono::DateTime<chrono::Utc> = mtime.into();
    t.with_timezone(&tz)
        .format("cam1/%Y/%m/%d/%H/cam_1_%Y_%m_%d_%H_%M_%S.ts")
        .to_string()
}

/// A whole-second time `secs_ago` seconds before now.
pub fn secs_ago(secs_ago: u64) -> SystemTime {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(now - secs_ago)
}

/// Asserts the bucket holds exactly `expect` (key → bytes), nothing else, no empty object.
pub fn assert_bucket(rig: &S3Rig, expect: &[(String, Vec<u8>)]) {
    let listed = rig.list_objects();
    let mut want: Vec<(String, u64)> = expect
        .iter()
        .map(|(k, b)| (k.clone(), b.len() as u64))
        .collect();
    want.sort();
    assert_eq!(listed, want, "objects in the bucket");
    for (k, b) in expect {
        assert!(!b.is_empty());
        assert!(rig.get_object(k) == *b, "bytes of {k} differ from the file");
    }
}

pub fn path_of(p: &Path) -> String {
    p.display().to_string()
}
