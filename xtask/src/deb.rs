//! `cargo xtask deb [--target aarch64-unknown-linux-gnu]`: release binaries and the visdcam
//! `.deb` (cargo-deb, metadata in crates/visdcam/Cargo.toml) into target/dist, checked by
//! lintian (errors and warnings fail the build).
//!
//! Installs what is missing first and says so: cargo-deb (`cargo install --locked`), and for
//! the Pi's arm64 the Debian cross compiler, the arm64 GStreamer libraries (multiarch, only
//! packages that are co-installable with the host's amd64 ones) and the Rust target; the linker
//! is set in .cargo/config.toml.
//!
//! ```text
//!  host (amd64 dev packages untouched)        target/cross/arm64-sysroot (dpkg -x, not installed)
//!  /usr/lib/aarch64-linux-gnu/                  usr/lib/aarch64-linux-gnu/pkgconfig/gstreamer-app-1.0.pc
//!    libgstapp-1.0.so.0.2200.0  ◄───────────────  usr/lib/aarch64-linux-gnu/libgstapp-1.0.so (absolute link)
//!    libgstreamer-1.0.so (libgstreamer1.0-dev:arm64, Multi-Arch: same)
//! ```
//! `libgstreamer-plugins-base1.0-dev:arm64` is not co-installable with the amd64 one (apt
//! replaces the host's package), so it is only unpacked; the build finds it through
//! `PKG_CONFIG_LIBDIR` and a target-only `-L`. apt is simulated first and run with
//! `--no-remove`: the set-up refuses to remove any host package.

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
    if let Some(&(triple, arch, gnu)) = cross {
        build.args(["--target", triple]);
        cross_env(&mut build, arch, gnu);
    }
    run(&mut build)?;
    let built = Instant::now();

    let dist = root().join("target/dist");
    std::fs::create_dir_all(&dist).map_err(|e| format!("creating {}: {e}", dist.display()))?;
    let mut pack = cargo();
    pack.args(["deb", "-p", "visdcam", "--no-build", "-o"])
        .arg(&dist);
    if let Some(&(triple, arch, gnu)) = cross {
        pack.args(["--target", triple]);
        cross_env(&mut pack, arch, gnu);
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
    // Errors and warnings fail the build; packaging/lintian-overrides says why each
    // remaining finding is intended.
    run(Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .arg(&path))
    .map_err(|e| format!("{e} (cargo xtask deps installs lintian)"))?;
    eprintln!(
        "deb: {} (binaries {:.0?}, package + lintian {:.1?})",
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

/// pkg-config must find the target's GStreamer, never the host's: the sysroot's `.pc` files
/// first (GStreamer's plugins-base dev files), then the multiarch ones. The linker gets the
/// sysroot's library directory for the `.so` dev links (target-only rustflags: build scripts
/// and proc macros, built for the host, are not affected).
fn cross_env(cmd: &mut Command, arch: &str, gnu: &str) {
    let lib = sysroot(arch).join("usr/lib").join(gnu);
    let triple_env = CROSS
        .iter()
        .find(|c| c.2 == gnu)
        .map(|c| c.0.to_uppercase().replace('-', "_"))
        .expect("gnu triple comes from CROSS");
    cmd.env("PKG_CONFIG_ALLOW_CROSS", "1")
        .env(
            "PKG_CONFIG_LIBDIR",
            format!(
                "{}:/usr/lib/{gnu}/pkgconfig:/usr/share/pkgconfig",
                lib.join("pkgconfig").display()
            ),
        )
        .env_remove("PKG_CONFIG_PATH")
        .env(
            format!("CARGO_TARGET_{triple_env}_RUSTFLAGS"),
            format!("-L native={}", lib.display()),
        );
}

/// target/cross/<arch>-sysroot: dev files unpacked (never installed) for the cross build.
fn sysroot(arch: &str) -> PathBuf {
    root().join("target/cross").join(format!("{arch}-sysroot"))
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

/// Packages the cross build installs on the host. Each one is co-installable with the host's
/// own packages: the cross compiler and libc are `-cross` packages, `libgstreamer1.0-dev` is
/// `Multi-Arch: same`, and the plugins-base *runtime* library is `Multi-Arch: same`.
/// `libgstreamer-plugins-base1.0-dev:<arch>` is NOT (its gir dependency is arch-specific and
/// replaces the host's amd64 dev package), so it is only unpacked ([`ensure_sysroot`]).
fn cross_packages(arch: &str, gnu: &str) -> Vec<String> {
    vec![
        format!("gcc-{gnu}"),
        format!("libc6-dev-{arch}-cross"),
        format!("libgstreamer1.0-dev:{arch}"),
        format!("libgstreamer-plugins-base1.0-0:{arch}"),
    ]
}

/// The unpacked (not installed) dev package; its version must match the installed runtime.
const SYSROOT_DEV: &str = "libgstreamer-plugins-base1.0-dev";
const SYSROOT_RUNTIME: &str = "libgstreamer-plugins-base1.0-0";

/// Debian multiarch cross toolchain + the target's GStreamer dev files + the Rust target.
fn ensure_cross(triple: &str, arch: &str, gnu: &str) -> Result<(), String> {
    let packages = cross_packages(arch, gnu);
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
            "deb: installing the {arch} cross toolchain and GStreamer libraries: {}",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        );
        run(Command::new("apt-get").args(["update", "-q"]))?;
        refuse_removals(&missing)?;
        run(Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "--no-remove",
            ])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    ensure_sysroot(arch, gnu)?;
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

/// Simulates the install first: the cross set-up must never remove a host package (a
/// non-co-installable foreign dev package replaces the host's one, breaking host builds).
fn refuse_removals(packages: &[&String]) -> Result<(), String> {
    let sim = Command::new("apt-get")
        .args(["install", "-s", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .map_err(|e| format!("running apt-get -s: {e}"))?;
    let text = String::from_utf8_lossy(&sim.stdout);
    let removals: Vec<&str> = text.lines().filter(|l| l.starts_with("Remv ")).collect();
    if !sim.status.success() {
        return Err(format!(
            "apt-get cannot install the cross packages: {}",
            String::from_utf8_lossy(&sim.stderr)
        ));
    }
    if !removals.is_empty() {
        return Err(format!(
            "installing the cross packages would remove host packages; refusing:\n{}",
            removals.join("\n")
        ));
    }
    Ok(())
}

/// The installed version of a package (`pkg:arch`), if installed.
fn installed_version(pkg: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}\t${Version}", pkg])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (status, version) = text.split_once('\t')?;
    status
        .contains("install ok installed")
        .then(|| version.trim().to_owned())
}

/// Unpacks `libgstreamer-plugins-base1.0-dev:<arch>` (same version as the installed runtime)
/// into target/cross/<arch>-sysroot with `apt-get download` + `dpkg -x`, then points its
/// `.so` dev links at the installed runtime libraries (absolute paths: the package's relative
/// links would dangle inside the sysroot). Rebuilt when the runtime version changes.
fn ensure_sysroot(arch: &str, gnu: &str) -> Result<(), String> {
    let version = installed_version(&format!("{SYSROOT_RUNTIME}:{arch}"))
        .ok_or_else(|| format!("{SYSROOT_RUNTIME}:{arch} is not installed"))?;
    let sysroot = sysroot(arch);
    let stamp = sysroot.with_extension("stamp");
    let want = format!("{SYSROOT_DEV}:{arch}={version}\n");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    eprintln!(
        "deb: unpacking {SYSROOT_DEV}:{arch} {version} into {}",
        sysroot.display()
    );
    let cross_dir = sysroot
        .parent()
        .expect("sysroot has a parent")
        .to_path_buf();
    let downloads = cross_dir.join("debs");
    for d in [&sysroot, &downloads] {
        if d.exists() {
            std::fs::remove_dir_all(d).map_err(|e| format!("removing {}: {e}", d.display()))?;
        }
    }
    std::fs::create_dir_all(&downloads)
        .map_err(|e| format!("creating {}: {e}", downloads.display()))?;
    // `apt-get download` writes into the current directory.
    let mut download = Command::new("apt-get");
    download
        .args(["download", "-q"])
        .arg(format!("{SYSROOT_DEV}:{arch}={version}"));
    eprintln!("$ {} (in {})", describe(&download), downloads.display());
    let status = download
        .current_dir(&downloads)
        .status()
        .map_err(|e| format!("running apt-get download: {e}"))?;
    if !status.success() {
        return Err(format!(
            "apt-get download {SYSROOT_DEV}:{arch}={version} failed ({status}); run apt-get update?"
        ));
    }
    let deb = std::fs::read_dir(&downloads)
        .map_err(|e| format!("reading {}: {e}", downloads.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download left no .deb in {}", downloads.display()))?;
    run(Command::new("dpkg").arg("-x").arg(&deb).arg(&sysroot))?;

    let libdir = sysroot.join("usr/lib").join(gnu);
    let system_libdir = PathBuf::from("/usr/lib").join(gnu);
    let mut fixed = 0;
    for entry in std::fs::read_dir(&libdir)
        .map_err(|e| format!("reading {}: {e}", libdir.display()))?
        .flatten()
    {
        let path = entry.path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        let name = target
            .file_name()
            .ok_or_else(|| format!("{} links to {}", path.display(), target.display()))?;
        let runtime = system_libdir.join(name);
        if !runtime.exists() {
            // A library this build does not link (e.g. from a runtime package not installed).
            std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
            continue;
        }
        std::fs::remove_file(&path).map_err(|e| format!("removing {}: {e}", path.display()))?;
        std::os::unix::fs::symlink(&runtime, &path)
            .map_err(|e| format!("linking {} -> {}: {e}", path.display(), runtime.display()))?;
        fixed += 1;
    }
    if fixed == 0 {
        return Err(format!("no .so links found in {}", libdir.display()));
    }
    std::fs::write(&stamp, want).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    eprintln!("deb: sysroot ready ({fixed} library links to /usr/lib/{gnu})");
    Ok(())
}
