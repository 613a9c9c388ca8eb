//! `cargo xtask arm64`: the arm64 package proven on arm64 (under emulation). Registers
//! qemu-user for arm64 with binfmt_misc (the fix-binary flag, so programs inside a chroot run),
//! makes an arm64 Debian 12 root with debootstrap (kept in `target/e2e-arm64/rootfs`, rebuilt
//! only when missing), cross-builds the arm64 `.deb`, installs it there **with apt** (so its
//! `Depends:` resolve on arm64), then runs crates/visdcam/tests/arm64.rs with `--ignored`:
//! `--version` of every binary, a recording from the camera double uploaded to the S3 rig,
//! `doctor`. About a minute with the root kept, some eight minutes the first time, so `ci`
//! only cross-builds the package; the last result is recorded in docs/guide/install-pi.md.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::testrun::{run_tests, Totals};
use crate::util::{ignored_tests, root, run};

const SUITE: &str = "bookworm";
const BINFMT_DIR: &str = "/proc/sys/fs/binfmt_misc";
const BINFMT_CONF: &str = "/usr/lib/binfmt.d/qemu-aarch64.conf";

pub fn arm64(_args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let (res, totals) = check();
    eprintln!(
        "arm64: {} after {:.0} s ({totals})",
        if res.is_ok() { "passed" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    res
}

/// Prepares the root with the package and runs the test.
pub fn check() -> (Result<(), String>, Totals) {
    let rootfs = match prepare() {
        Ok(r) => r,
        Err(e) => return (Err(e), Totals::default()),
    };
    run_tests(
        ignored_tests("visdcam", "arm64", &["--nocapture"]).env("VISDCAM_ARM64_ROOT", &rootfs),
    )
}

/// binfmt_misc, the root, the arm64 `.deb` installed in it.
fn prepare() -> Result<PathBuf, String> {
    let started = Instant::now();
    ensure_binfmt()?;
    let rootfs = ensure_root()?;
    eprintln!(
        "arm64: root ready after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let deb = crate::deb::build_deb(Some("aarch64-unknown-linux-gnu"))?;
    eprintln!(
        "arm64: {} after {:.0} s",
        deb.display(),
        started.elapsed().as_secs_f64()
    );
    install(&rootfs, &deb)?;
    eprintln!(
        "arm64: installed after {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(rootfs)
}

/// qemu-user-static installed and registered for aarch64 with the fix-binary flag.
fn ensure_binfmt() -> Result<(), String> {
    if !Path::new(BINFMT_CONF).exists() {
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "qemu-user-static"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    if !Path::new(BINFMT_DIR).join("register").exists() {
        run(Command::new("mount").args(["-t", "binfmt_misc", "binfmt_misc", BINFMT_DIR]))?;
    }
    let entry = Path::new(BINFMT_DIR).join("qemu-aarch64");
    if !entry.exists() {
        let line = fs::read_to_string(BINFMT_CONF).map_err(|e| format!("{BINFMT_CONF}: {e}"))?;
        fs::write(Path::new(BINFMT_DIR).join("register"), line.trim())
            .map_err(|e| format!("registering qemu-aarch64 with binfmt_misc: {e}"))?;
    }
    let state = fs::read_to_string(&entry).map_err(|e| e.to_string())?;
    if !state.contains("enabled")
        || !state
            .lines()
            .any(|l| l.starts_with("flags:") && l.contains('F'))
    {
        return Err(format!(
            "{}: not enabled with the fix-binary flag:\n{state}",
            entry.display()
        ));
    }
    Ok(())
}

fn mirror() -> String {
    fs::read_to_string("/etc/apt/sources.list.d/debian.sources")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .and_then(|u| u.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// The arm64 root, made by debootstrap once (`rootfs.stamp` marks it complete).
fn ensure_root() -> Result<PathBuf, String> {
    let dir = root().join("target/e2e-arm64");
    let rootfs = dir.join("rootfs");
    let stamp = dir.join("rootfs.stamp");
    if stamp.exists() && rootfs.join("usr/bin/apt-get").exists() {
        return Ok(rootfs);
    }
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let building = dir.join("rootfs.new");
    if building.exists() {
        fs::remove_dir_all(&building).map_err(|e| e.to_string())?;
    }
    eprintln!(
        "arm64: debootstrap {SUITE} arm64 into {} (several minutes)",
        building.display()
    );
    run(Command::new("debootstrap")
        .args([
            "--arch=arm64",
            "--variant=minbase",
            "--include=ca-certificates",
            SUITE,
        ])
        .arg(&building)
        .arg(mirror()))?;
    if rootfs.exists() {
        fs::remove_dir_all(&rootfs).map_err(|e| e.to_string())?;
    }
    fs::rename(&building, &rootfs).map_err(|e| e.to_string())?;
    fs::write(&stamp, format!("{SUITE} arm64 minbase\n")).map_err(|e| e.to_string())?;
    Ok(rootfs)
}

/// `apt-get install ./visdcam_…_arm64.deb` inside the root, with /proc mounted meanwhile.
fn install(rootfs: &Path, deb: &Path) -> Result<(), String> {
    let name = deb
        .file_name()
        .ok_or("a .deb path")?
        .to_string_lossy()
        .into_owned();
    fs::copy(deb, rootfs.join("tmp").join(&name)).map_err(|e| e.to_string())?;
    let proc_dir = rootfs.join("proc");
    run(Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir))?;
    let apt = |args: &[&str]| {
        run(Command::new("chroot")
            .arg(rootfs)
            .arg("apt-get")
            .args(["-q", "-y", "-o", "Dpkg::Use-Pty=0"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS"))
    };
    // The package alone first (its Depends: resolve on arm64), then gst-inspect-1.0, which
    // doctor's GStreamer check runs and the install guide recommends.
    let res = apt(&["update"])
        .and_then(|()| {
            // --reinstall: a rebuilt package keeps its version, and apt would skip it.
            apt(&[
                "install",
                "--reinstall",
                "--no-install-recommends",
                &format!("/tmp/{name}"),
            ])
        })
        .and_then(|()| apt(&["install", "--no-install-recommends", "gstreamer1.0-tools"]));
    let _ = Command::new("umount").arg("-l").arg(&proc_dir).status();
    res
}
