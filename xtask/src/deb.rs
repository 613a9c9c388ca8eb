//! `cargo xtask deb [--target aarch64-unknown-linux-gnu]`: release binaries and the visdcam
//! `.deb` (cargo-deb, metadata in crates/visdcam/Cargo.toml) into target/dist.
//!
//! Installs what is missing first and says so: cargo-deb (`cargo install --locked`), and for
//! the Pi's arm64 the Debian multiarch cross toolchain with GStreamer's arm64 dev packages and
//! the Rust target (the recipe in probe-figures.md; the linker is set in .cargo/config.toml).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use crate::util::{cargo, describe, root, run};

/// The crates whose binaries the package ships (crates/visdcam carries the metadata).
const BIN_CRATES: &[&str] = &["seg-cam", "uploader", "daynight", "net-shaper", "visdcam"];

/// Cross targets we know how to set up: Rust triple, Debian architecture, GNU triple.
const CROSS: &[(&str, &str, &str)] = &[("aarch64-unknown-linux-gnu", "arm64", "aarch64-linux-gnu")];

pub fn deb(args: &[String]) -> Result<(), String> {
    let mut target = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--target" => {
                target = Some(it.next().ok_or("--target needs a value")?.clone());
            }
            s if s.starts_with("--target=") => target = Some(s["--target=".len()..].to_owned()),
            other => {
                return Err(format!(
                    "unknown argument `{other}` (usage: cargo xtask deb [--target TRIPLE])"
                ))
            }
        }
    }
    let deb = build_deb(target.as_deref())?;
    println!("{}", deb.display());
    Ok(())
}

/// Builds the release binaries and the `.deb` for `target` (host when `None`); returns the
/// package's path under target/dist.
pub fn build_deb(target: Option<&str>) -> Result<PathBuf, String> {
    let started = Instant::now();
    ensure_cargo_deb()?;
    let cross = match target {
        None => None,
        Some(t) if is_host(t) => None,
        Some(t) => Some(
            CROSS
                .iter()
                .find(|(triple, _, _)| *triple == t)
                .ok_or_else(|| {
                    format!(
                        "don't know how to cross-build for `{t}`; supported: {}",
                        CROSS.iter().map(|c| c.0).collect::<Vec<_>>().join(", ")
                    )
                })?,
        ),
    };
    if let Some(&(triple, arch, gnu)) = cross {
        ensure_cross(triple, arch, gnu)?;
    }

    let mut build = cargo();
    build.args(["build", "--release", "--locked"]);
    for c in BIN_CRATES {
        build.args(["-p", c]);
    }
    if let Some(&(triple, _, gnu)) = cross {
        build.args(["--target", triple]);
        cross_env(&mut build, gnu);
    }
    run(&mut build)?;
    let built = Instant::now();

    let dist = root().join("target/dist");
    std::fs::create_dir_all(&dist).map_err(|e| format!("creating {}: {e}", dist.display()))?;
    let mut pack = cargo();
    pack.args(["deb", "-p", "visdcam", "--no-build", "-o"])
        .arg(&dist);
    if let Some(&(triple, _, gnu)) = cross {
        pack.args(["--target", triple]);
        cross_env(&mut pack, gnu);
    }
    pack.current_dir(root());
    eprintln!("$ {}", describe(&pack));
    let out = pack
        .output()
        .map_err(|e| format!("cannot run {}: {e}", describe(&pack)))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    if !out.status.success() {
        return Err(format!("`{}` failed: {}", describe(&pack), out.status));
    }
    // cargo-deb prints the package's path as its last line of stdout.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .ok_or_else(|| format!("cargo deb did not name the package it built:\n{stdout}"))?;
    eprintln!(
        "deb: {} (binaries {:.0?}, package {:.1?})",
        path.display(),
        built - started,
        built.elapsed()
    );
    Ok(path)
}

fn is_host(triple: &str) -> bool {
    Command::new("rustc")
        .arg("-vV")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&format!("host: {triple}")))
        .unwrap_or(false)
}

/// pkg-config must find the target's GStreamer, never the host's.
fn cross_env(cmd: &mut Command, gnu: &str) {
    cmd.env("PKG_CONFIG_ALLOW_CROSS", "1")
        .env(
            "PKG_CONFIG_LIBDIR",
            format!("/usr/lib/{gnu}/pkgconfig:/usr/share/pkgconfig"),
        )
        .env_remove("PKG_CONFIG_PATH");
}

fn ensure_cargo_deb() -> Result<(), String> {
    let found = cargo()
        .args(["deb", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    eprintln!("deb: cargo-deb is missing; installing it from crates.io (about a minute)");
    run(cargo().args(["install", "cargo-deb", "--locked"]))
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Debian multiarch cross toolchain + the target's GStreamer dev files + the Rust target.
fn ensure_cross(triple: &str, arch: &str, gnu: &str) -> Result<(), String> {
    let packages = [
        format!("gcc-{gnu}"),
        format!("libc6-dev-{arch}-cross"),
        format!("libgstreamer1.0-dev:{arch}"),
        format!("libgstreamer-plugins-base1.0-dev:{arch}"),
    ];
    let missing: Vec<&String> = packages.iter().filter(|p| !dpkg_installed(p)).collect();
    if !missing.is_empty() {
        let arches = Command::new("dpkg")
            .arg("--print-foreign-architectures")
            .output()
            .map_err(|e| format!("running dpkg: {e}"))?;
        if !String::from_utf8_lossy(&arches.stdout)
            .lines()
            .any(|a| a.trim() == arch)
        {
            eprintln!("deb: adding Debian architecture {arch} (multiarch) for the cross build");
            run(Command::new("dpkg").args(["--add-architecture", arch]))?;
        }
        eprintln!(
            "deb: installing the {arch} cross toolchain and GStreamer dev files: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run(Command::new("apt-get").args(["update", "-q"]))?;
        run(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("running rustup (needed for --target): {e}"))?;
    if !String::from_utf8_lossy(&targets.stdout)
        .lines()
        .any(|t| t.trim() == triple)
    {
        eprintln!("deb: adding the Rust target {triple}");
        run(Command::new("rustup").args(["target", "add", triple]))?;
    }
    Ok(())
}
