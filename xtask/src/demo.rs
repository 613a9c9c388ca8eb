//! `cargo xtask demo [--seconds N]`: the main job end to end on this machine, with no camera and
//! no B2 account. Starts the camera double and a local S3 server (SeaweedFS), runs `seg-cam cam1`
//! and `uploader cam1` with 5 s segments for about a minute, and prints each object as it lands
//! (key, size, ffprobe duration), then reads the footage back as a user would: `visdcam footage`
//! prints the timeline and `visdcam fetch` writes the minute as one `.mp4`
//! (`target/demo/cam1.mp4`). Everything it started is stopped when it returns.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_rigs::process::{free_port, wait_for_tcp, ChildGuard};
use test_rigs::s3::S3Rig;

use crate::util::{cargo, cargo_target_dir, root, run};

fn bin(name: &str) -> PathBuf {
    cargo_target_dir().join("debug").join(name)
}

fn ffprobe_duration(path: &Path) -> String {
    Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .map(|s| format!("{s} s"))
        .unwrap_or_else(|| "unreadable".into())
}

pub fn demo(args: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    for a in args {
        match a.strip_prefix("--seconds=") {
            Some(v) => {
                seconds = v
                    .parse()
                    .map_err(|_| format!("--seconds={v}: not a number of seconds"))?
            }
            None => return Err(format!("demo: unknown argument `{a}` (use --seconds=N)")),
        }
    }
    run(cargo().args([
        "build",
        "-p",
        "seg-cam",
        "-p",
        "uploader",
        "-p",
        "camera-double",
        "-p",
        "visdcam",
    ]))?;

    let work = root().join("target/demo");
    let _ = fs::remove_dir_all(&work);
    let (etc, ram, aws, dl) = (
        work.join("etc"),
        work.join("ram"),
        work.join("aws"),
        work.join("download"),
    );
    for d in [etc.join("cameras"), ram.clone(), aws.clone(), dl.clone()] {
        fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }

    eprintln!("demo: starting the local S3 server (SeaweedFS)");
    let rig = S3Rig::start();
    let (creds, aws_config) = rig.write_aws_files(&aws, "b2");

    let port = free_port();
    let mut cmd = Command::new(bin("camera-double"));
    cmd.args([
        "--port",
        &port.to_string(),
        "--size",
        "640x480",
        "--fps",
        "10",
    ])
    .stdout(Stdio::null());
    let _double = ChildGuard::spawn("camera-double", cmd).map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_tcp(addr, Instant::now() + Duration::from_secs(20)).map_err(|e| e.to_string())?;
    eprintln!("demo: camera double on http://127.0.0.1:{port}");

    let write = |p: PathBuf, text: String| {
        fs::write(&p, text).map_err(|e| format!("writing {}: {e}", p.display()))
    };
    write(
        etc.join("visdcam.conf"),
        format!(
            "RAM_DIR={}\nSEG_SECONDS=5\nREQUIRE_CLOCK_SYNC=no\nB2_ENDPOINT={}\nB2_BUCKET={}\n\
             B2_REGION={}\nB2_ADDRESSING_STYLE=path\nLOG_LEVEL=warn\n",
            ram.display(),
            rig.endpoint(),
            rig.bucket(),
            rig.region()
        ),
    )?;
    write(
        etc.join("cameras/cam1.conf"),
        format!(
            "CAMERA_URL=http://127.0.0.1:{}/stream\nCONTROL_URL=http://127.0.0.1:{port}/\n",
            port + 1
        ),
    )?;
    let daemon = |name: &str| -> Result<ChildGuard, String> {
        let mut c = Command::new(bin(name));
        c.arg("cam1")
            .env("VISDCAM_CONFIG_DIR", &etc)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &aws_config)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null());
        ChildGuard::spawn(name, c).map_err(|e| e.to_string())
    };
    let started = chrono_now();
    let mut recorder = daemon("seg-cam")?;
    let mut uploader = daemon("uploader")?;
    eprintln!("demo: seg-cam and uploader running for cam1 for {seconds} s (5 s segments)");
    println!("{:<52} {:>10} {:>12}", "object key", "bytes", "duration");

    let mut seen = std::collections::BTreeSet::new();
    let report = |seen: &mut std::collections::BTreeSet<String>| {
        for (key, size) in rig.list_objects() {
            if seen.insert(key.clone()) {
                let local = dl.join(key.replace('/', "_"));
                let dur = match fs::write(&local, rig.get_object(&key)) {
                    Ok(()) => ffprobe_duration(&local),
                    Err(e) => format!("download failed: {e}"),
                };
                println!("{key:<52} {size:>10} {dur:>12}");
            }
        }
    };
    let end = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < end {
        for (name, child) in [("seg-cam", &recorder), ("uploader", &uploader)] {
            if child.has_exited() {
                return Err(format!(
                    "{name} exited early (run `{} cam1` with VISDCAM_CONFIG_DIR={} to see why)",
                    bin(name).display(),
                    etc.display()
                ));
            }
        }
        report(&mut seen);
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!("demo: stopping the recorder; the uploader finishes the last segment");
    recorder.stop(Duration::from_secs(10));
    let camdir = ram.join("cam1");
    let drain_end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < drain_end {
        let left = fs::read_dir(&camdir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".ts"))
                    .count()
            })
            .unwrap_or(0);
        report(&mut seen);
        if left == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    uploader.stop(Duration::from_secs(10));
    report(&mut seen);
    if seen.is_empty() {
        return Err("no segment reached the bucket".into());
    }
    eprintln!("demo: {} objects in bucket {}", seen.len(), rig.bucket());

    // The footage read back the way a person would: the timeline, then one file of it all.
    let visdcam = |args: &[&str]| -> Result<(), String> {
        let status = Command::new(bin("visdcam"))
            .args(args)
            .env("VISDCAM_CONFIG_DIR", &etc)
            .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", &aws_config)
            .current_dir(&work)
            .stdin(Stdio::null())
            .status()
            .map_err(|e| format!("running visdcam: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("visdcam {} failed ({status})", args.join(" ")))
        }
    };
    let (from, to) = (started, chrono_now());
    eprintln!("demo: $ visdcam footage cam1 {from} {to}");
    visdcam(&["footage", "cam1", &from, &to])?;
    let mp4 = work.join("cam1.mp4");
    eprintln!(
        "demo: $ visdcam fetch cam1 {from} {to} -o {}",
        mp4.display()
    );
    visdcam(&["fetch", "cam1", &from, &to, "-o", "cam1.mp4"])?;
    println!("{}: {}", mp4.display(), ffprobe_duration(&mp4));
    eprintln!("demo: everything stopped");
    Ok(())
}

/// Now as RFC 3339 UTC, a form `visdcam footage` accepts.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
