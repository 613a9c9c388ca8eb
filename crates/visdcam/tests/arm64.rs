//! The arm64 package on arm64: an arm64 Debian 12 root (debootstrap) with the arm64 `.deb`
//! installed by apt, its programs run by qemu-user through binfmt_misc (`cargo xtask arm64`
//! prepares all three and runs this test). In the root, with `chroot` and without systemd
//! (emulated systemd is not needed for what is proven here; the units are proven on amd64 by
//! e2e.rs): every binary's `--version`, `visdcam doctor` (configuration, credentials against
//! the S3 rig, the camera, GStreamer), and a recording at 320×240, 5 fps from the camera double
//! on the host by the arm64 `seg-cam`, uploaded by the arm64 `uploader` to the S3 rig, every
//! object decoding. GStreamer's registry is kept in the root between runs (`GST_REGISTRY`): the
//! first plugin scan under emulation takes minutes.
//!
//! `#[ignore]`d: needs root, the prepared root (VISDCAM_ARM64_ROOT) and minutes:
//! `cargo xtask arm64`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Options};
use test_rigs::media::probe_clean;
use test_rigs::process::{wait_until, ChildGuard};
use test_rigs::s3::S3Rig;

const BINARIES: &[&str] = &["seg-cam", "uploader", "daynight", "net-shaper", "visdcam"];
/// Inside the root: kept from one run to the next.
const REGISTRY: &str = "/var/cache/visdcam-test/gstreamer-registry.bin";

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var_os("VISDCAM_ARM64_ROOT")
            .expect("VISDCAM_ARM64_ROOT: the arm64 root `cargo xtask arm64` prepares"),
    )
}

/// `/proc`, `/dev` and a tmpfs RAM disk mounted in the root while the test runs.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn new(root: &Path) -> Mounts {
        let mut m = Mounts(Vec::new());
        for (what, target, args) in [
            ("proc", "proc", vec!["-t", "proc"]),
            ("/dev", "dev", vec!["--bind"]),
            (
                "ramcam",
                "mnt/ramcam",
                vec!["-t", "tmpfs", "-o", "size=64m"],
            ),
        ] {
            let t = root.join(target);
            fs::create_dir_all(&t).unwrap();
            let ok = Command::new("mount")
                .args(&args)
                .arg(what)
                .arg(&t)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mounting {what} on {}", t.display());
            m.0.push(t);
        }
        m
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for t in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(t).status();
        }
    }
}

/// A command run inside the root with a clean environment plus `env`.
fn chroot(root: &Path, env: &[(&str, String)], argv: &[&str]) -> Command {
    let mut c = Command::new("chroot");
    c.arg(root).arg("/usr/bin/env").arg("-i");
    c.arg("PATH=/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        c.arg(format!("{k}={v}"));
    }
    c.args(argv).stdin(Stdio::null());
    c
}

/// Frames of an H.264 file that decodes cleanly.
fn h264_frames(path: &Path) -> u64 {
    let p = probe_clean(path);
    assert_eq!(p.codec, "h264", "{}: {p:?}", path.display());
    p.frames
}

#[test]
#[ignore = "needs root and the arm64 root with the arm64 .deb installed: cargo xtask arm64"]
fn the_arm64_package_records_and_uploads_under_emulation() {
    let root = root();
    let started = Instant::now();
    let arch = Command::new("chroot")
        .arg(&root)
        .args(["dpkg", "--print-architecture"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&arch.stdout).trim(), "arm64");
    let version = env!("CARGO_PKG_VERSION");
    for bin in BINARIES {
        let out = chroot(&root, &[], &[&format!("/usr/bin/{bin}"), "--version"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{bin} --version: {}", text.trim());
        assert!(out.status.success(), "{bin} --version: {out:?}");
        assert_eq!(text.trim(), format!("{bin} {version}"), "{bin}");
        let file = Command::new("file")
            .arg(root.join("usr/bin").join(bin))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        assert!(file.is_empty() || file.contains("aarch64"), "{file}");
    }

    let _mounts = Mounts::new(&root);
    let rig = S3Rig::start();
    let cam = CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 5.0,
        ..Default::default()
    })
    .unwrap();
    // Configuration and credentials inside the root.
    let etc = root.join("tmp/arm64-etc");
    let _ = fs::remove_dir_all(&etc);
    fs::create_dir_all(etc.join("cameras")).unwrap();
    let ram = root.join("mnt/ramcam");
    for e in fs::read_dir(&ram).unwrap() {
        let _ = fs::remove_dir_all(e.unwrap().path());
    }
    fs::write(
        etc.join("visdcam.conf"),
        format!(
            "RAM_DIR=/mnt/ramcam\nRUN_DIR=/tmp/arm64-run\nSEG_SECONDS=4\nREQUIRE_CLOCK_SYNC=no\n\
             B2_ENDPOINT={}\nB2_BUCKET={}\nB2_REGION={}\nB2_PROFILE=b2\nB2_ADDRESSING_STYLE=path\n",
            rig.endpoint(),
            rig.bucket(),
            rig.region()
        ),
    )
    .unwrap();
    fs::write(
        etc.join("cameras/cam1.conf"),
        format!("CAMERA_URL={}\n", cam.stream_url()),
    )
    .unwrap();
    let (creds, config) = rig.write_aws_files(&etc, "b2");
    let inside = |p: &Path| format!("/{}", p.strip_prefix(&root).unwrap().display());
    fs::create_dir_all(root.join("var/cache/visdcam-test")).unwrap();
    let env = vec![
        ("VISDCAM_CONFIG_DIR", "/tmp/arm64-etc".to_string()),
        ("GST_REGISTRY", REGISTRY.to_string()),
        ("GST_REGISTRY_FORK", "no".to_string()),
        ("GSETTINGS_BACKEND", "memory".to_string()),
    ];

    // The recorder: the first start scans GStreamer's plugins under emulation.
    let t = Instant::now();
    let mut rec = ChildGuard::spawn(
        "arm64 seg-cam",
        chroot(&root, &env, &["/usr/bin/seg-cam", "cam1"]),
    )
    .unwrap();
    let camdir = ram.join("cam1");
    let finals = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "ts"))
            .collect();
        v.sort();
        v
    };
    wait_until(Instant::now() + Duration::from_secs(600), || {
        finals(&camdir).len() >= 3
    })
    .expect("three segments from the arm64 seg-cam within 10 minutes");
    println!(
        "arm64 seg-cam: three segments after {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let load = fs::read_to_string(camdir.join(visdcam_core::encoder::LOAD_FILE)).unwrap();
    println!("load file: {load}");
    assert_eq!(
        rec.stop(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );
    let recorded: Vec<PathBuf> = finals(&camdir);
    let mut frames = Vec::new();
    for p in &recorded {
        frames.push(h264_frames(p));
    }
    println!("segments: {} with frames {frames:?}", recorded.len());
    assert!(frames.iter().all(|&f| f > 0), "{frames:?}");

    // The uploader sends them to the S3 rig; the objects decode.
    let mut uenv = env.clone();
    uenv.push(("AWS_SHARED_CREDENTIALS_FILE", inside(&creds)));
    uenv.push(("AWS_CONFIG_FILE", inside(&config)));
    let t = Instant::now();
    let mut up = ChildGuard::spawn(
        "arm64 uploader",
        chroot(&root, &uenv, &["/usr/bin/uploader", "cam1"]),
    )
    .unwrap();
    wait_until(Instant::now() + Duration::from_secs(300), || {
        rig.list_objects().len() >= recorded.len()
    })
    .expect("every segment uploaded by the arm64 uploader");
    println!(
        "arm64 uploader: {} objects after {:.0} s",
        recorded.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        up.stop(Duration::from_secs(20)).and_then(|s| s.code()),
        Some(0)
    );
    let dl = tempfile::tempdir().unwrap();
    for (key, _) in rig.list_objects() {
        let p = dl.path().join(key.replace('/', "_"));
        fs::write(&p, rig.get_object(&key)).unwrap();
        assert!(h264_frames(&p) > 0, "{key}");
    }
    // doctor, after the recorder made GStreamer's registry (gst-inspect-1.0 has 10 s): every
    // check but the units (no systemd here).
    let t = Instant::now();
    let mut denv = env.clone();
    denv.push(("VISDCAM_CREDENTIALS", inside(&creds)));
    denv.push(("AWS_CONFIG_FILE", inside(&config)));
    let out = chroot(&root, &denv, &["/usr/bin/visdcam", "doctor"])
        .output()
        .unwrap();
    let doctor = String::from_utf8_lossy(&out.stdout).into_owned();
    println!(
        "--- visdcam doctor ({:.0} s)\n{doctor}",
        t.elapsed().as_secs_f64()
    );
    let line = |what: &str| {
        doctor
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} line:\n{doctor}"))
            .to_string()
    };
    assert!(line("visdcam.conf is valid").starts_with("✔"));
    assert!(line("credentials:").starts_with("✔"), "{doctor}");
    assert!(line("camera cam1:").starts_with("✔"), "{doctor}");
    // gst-inspect-1.0 (gstreamer1.0-tools) is not among the package's Depends: doctor names it.
    let gst = line("GStreamer:");
    if root.join("usr/bin/gst-inspect-1.0").exists() {
        assert!(gst.starts_with("✔"), "{doctor}");
    } else {
        assert!(gst.contains("apt install gstreamer1.0-tools"), "{doctor}");
    }

    println!("whole check: {:.0} s", started.elapsed().as_secs_f64());
}
