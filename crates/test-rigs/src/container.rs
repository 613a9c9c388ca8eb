//! Booting a Debian rootfs with systemd-nspawn and driving its real systemd from the host.
//!
//! ```text
//!  target/e2e/rootfs (debootstrap, built once, read-only lower layer)
//!        │   overlayfs, mounted in a private mount namespace of the launcher
//!  target/e2e/runs/run-<pid>-<n>/{upper,work} ──► merged ──► systemd-nspawn --boot ──► systemd 252
//!        │                                                   │ own cgroup visdcam-e2e-<pid>-<n>
//!        └─ upper = every file the container wrote           └─ /xchg bound to run-*/xchg
//! ```
//!
//! [`Container::boot`] builds the rootfs on first use ([`ensure_rootfs`]: `debootstrap
//! --variant=minbase` with systemd and every package the visdcam `.deb` depends on, so
//! installing it needs no network), then boots it and polls until `systemctl
//! is-system-running` says `running`. The overlay's upper directory belongs to the container,
//! not to nspawn's `--volatile=overlay`, so it survives a [`Container::reboot`] and lists every
//! file written outside the container's tmpfs mounts ([`Container::written_files`]).
//!
//! Clean-up: `Drop` powers the container off (SIGTERM to nspawn), SIGKILLs whatever is left in
//! its cgroups, removes the cgroups and the run directory. The overlay mount lives in a mount
//! namespace that dies with the container's processes, so it cannot leak. If the test process
//! itself is SIGKILLed, nspawn gets SIGTERM (`PR_SET_PDEATHSIG`) and the next `boot` sweeps the
//! cgroups and run directories of dead test processes.
//!
//! Pitfalls handled (see `real-systemd-in-tests.md`): `--register=no` needs `--keep-unit`;
//! nspawn leaves `payload/` and `supervisor/` cgroups behind; `nsenter` passes the host's
//! `DBUS_SYSTEM_BUS_ADDRESS` in, which breaks `systemd-run` inside.

use std::ffi::CString;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The Debian release the container runs (the Pi runs Raspberry Pi OS bookworm).
pub const SUITE: &str = "bookworm";

/// What `debootstrap --variant=minbase --include=` adds: systemd itself and tools the tests
/// use. debootstrap's resolver cannot pick providers of virtual packages (GStreamer's
/// dependency chain needs `default-dbus-session-bus`), so the rest comes from [`PACKAGES`].
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "iproute2",
    "procps",
    "tzdata",
    "ca-certificates",
    "init-system-helpers",
];

/// Installed with `apt-get install --no-install-recommends` in a chroot after debootstrap:
/// everything the visdcam `.deb` depends on (its `Depends:` and the shared libraries behind
/// `$auto`), so installing it inside with `apt-get install --no-download` needs no network.
/// Changing either list rebuilds the rootfs (the lists are its stamp).
pub const PACKAGES: &[&str] = &[
    "libglib2.0-0",
    "libgstreamer1.0-0",
    "libgstreamer-plugins-base1.0-0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
    "gstreamer1.0-plugins-bad",
    "gstreamer1.0-tools",
];

/// How long a boot may take before [`Container::boot`] gives up (typically 0.3 s to 2 s).
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `Drop` and [`Container::reboot`] wait for the container to shut down cleanly.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// systemd-nspawn's exit status when the container rebooted.
const NSPAWN_REBOOT_STATUS: i32 = 133;

const POLL: Duration = Duration::from_millis(50);
const NAME_PREFIX: &str = "visdcam-e2e-";

/// An error from the container rig, with the context needed to act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

fn err(msg: impl Into<String>) -> Error {
    Error(msg.into())
}

/// The workspace root (this crate lives in `<root>/crates/test-rigs`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-rigs is two levels below the workspace root")
        .to_path_buf()
}

/// `<workspace>/target/e2e`, where the rootfs, its stamp and the run directories live.
pub fn e2e_dir() -> PathBuf {
    workspace_root().join("target/e2e")
}

fn stamp_text() -> String {
    format!(
        "suite={SUITE}\nbase={}\npackages={}\n",
        BASE_PACKAGES.join(","),
        PACKAGES.join(",")
    )
}

/// The mirror debootstrap uses: `VISDCAM_E2E_MIRROR`, else the host's Debian source, else
/// deb.debian.org.
fn mirror() -> String {
    if let Ok(m) = std::env::var("VISDCAM_E2E_MIRROR") {
        return m;
    }
    let sources = fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
    sources
        .lines()
        .find_map(|l| l.strip_prefix("URIs:"))
        .and_then(|uris| uris.split_whitespace().next())
        .map(str::to_owned)
        .unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// Returns the cached rootfs, building it first if it is missing or was built from another
/// package list. Concurrent callers wait for one build (a `flock` on `rootfs.lock`).
pub fn ensure_rootfs() -> Result<PathBuf> {
    let dir = e2e_dir();
    fs::create_dir_all(&dir).map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
    let rootfs = dir.join("rootfs");
    let stamp = dir.join("rootfs.stamp");
    let lock_path = dir.join("rootfs.lock");
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| err(format!("opening {}: {e}", lock_path.display())))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| err(format!("locking {}: {e}", lock_path.display())))?;

    let expected = stamp_text();
    let current = fs::read_to_string(&stamp).ok();
    if current.as_deref() == Some(expected.as_str()) && rootfs.join("lib/systemd/systemd").exists()
    {
        return Ok(rootfs);
    }
    eprintln!(
        "container: building the {SUITE} rootfs in {} ({})",
        rootfs.display(),
        if current.is_some() {
            "package list changed"
        } else {
            "first use"
        }
    );
    let started = Instant::now();
    let _ = fs::remove_file(&stamp);
    let building = dir.join("rootfs.new");
    for old in [&rootfs, &building] {
        if old.exists() {
            fs::remove_dir_all(old).map_err(|e| err(format!("removing {}: {e}", old.display())))?;
        }
    }
    let log_path = dir.join("debootstrap.log");
    let log = fs::File::create(&log_path)
        .map_err(|e| err(format!("creating {}: {e}", log_path.display())))?;
    let mut debootstrap = Command::new("debootstrap");
    debootstrap
        .arg("--variant=minbase")
        .arg(format!("--include={}", BASE_PACKAGES.join(",")))
        .arg(SUITE)
        .arg(&building)
        .arg(mirror());
    run_logged(debootstrap, &log, &log_path)?;
    let apt_get = |args: &[&str]| {
        let mut cmd = Command::new("chroot");
        cmd.arg(&building)
            .arg("apt-get")
            .args(["-q", "-y", "-o", "Dpkg::Use-Pty=0"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS");
        run_logged(cmd, &log, &log_path)
    };
    apt_get(&["update"])?;
    let mut install = vec!["install", "--no-install-recommends"];
    install.extend(PACKAGES);
    apt_get(&install)?;
    apt_get(&["clean"])?;
    fs::rename(&building, &rootfs).map_err(|e| {
        err(format!(
            "renaming {} to {}: {e}",
            building.display(),
            rootfs.display()
        ))
    })?;
    fs::write(&stamp, expected).map_err(|e| err(format!("writing {}: {e}", stamp.display())))?;
    eprintln!("container: rootfs built in {:.0?}", started.elapsed());
    Ok(rootfs)
}

/// Runs a build step with its output appended to the build log; on failure the error quotes
/// the log's end.
fn run_logged(mut cmd: Command, log: &fs::File, log_path: &Path) -> Result<()> {
    let clone = || {
        log.try_clone()
            .map_err(|e| err(format!("duplicating {}: {e}", log_path.display())))
    };
    let what = format!("{cmd:?}");
    let status = cmd
        .stdin(Stdio::null())
        .stdout(clone()?)
        .stderr(clone()?)
        .status()
        .map_err(|e| {
            err(format!(
                "running {what}: {e} (cargo xtask deps installs debootstrap)"
            ))
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(err(format!(
            "{what} failed ({status}); last lines of {}:\n{}",
            log_path.display(),
            tail(log_path, 20)
        )))
    }
}

/// The last `n` lines of a text file, for error messages.
fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// How to boot a container; `Options::default()` shares the host's network namespace (services
/// inside reach servers the test runs on the host's 127.0.0.1).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra `--bind=HOST:DEST` mounts (read-write).
    pub binds: Vec<(PathBuf, String)>,
    /// `--private-network`: no network inside but loopback (and what the test creates).
    pub private_network: bool,
    /// Extra capabilities for the container, e.g. `CAP_NET_ADMIN` for tc with a private network.
    pub capabilities: Vec<String>,
}

/// A booted Debian container with a real systemd; see the module docs.
#[derive(Debug)]
pub struct Container {
    name: String,
    rootfs: PathBuf,
    run_dir: PathBuf,
    cgroups: Vec<PathBuf>,
    options: Options,
    run: Option<Run>,
}

/// One systemd-nspawn process (a reboot makes a new one).
#[derive(Debug)]
struct Run {
    nspawn: u32,
    pid1: u32,
    exited: mpsc::Receiver<io::Result<ExitStatus>>,
}

impl Container {
    /// Boots a container with default [`Options`].
    pub fn boot() -> Result<Container> {
        Container::boot_with(Options::default())
    }

    /// Builds the rootfs if needed, boots it and waits until systemd reports `running`.
    pub fn boot_with(options: Options) -> Result<Container> {
        check_prerequisites()?;
        let rootfs = ensure_rootfs()?;
        sweep_stale();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let run_dir = e2e_dir().join("runs").join(&name);
        for sub in ["upper", "work", "merged", "xchg"] {
            let p = run_dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| err(format!("creating {}: {e}", p.display())))?;
        }
        let mut container = Container {
            cgroups: cgroup_roots()
                .into_iter()
                .map(|root| root.join(&name))
                .collect(),
            name,
            rootfs,
            run_dir,
            options,
            run: None,
        };
        for cg in &container.cgroups {
            fs::create_dir_all(cg).map_err(|e| err(format!("creating {}: {e}", cg.display())))?;
        }
        container.launch()?;
        Ok(container)
    }

    /// The machine name (also the hostname inside).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The container's PID 1 as the host sees it.
    pub fn pid1(&self) -> u32 {
        self.run
            .as_ref()
            .map(|r| r.pid1)
            .expect("container is running")
    }

    /// The systemd-nspawn process (host pid), while the container runs.
    pub fn nspawn_pid(&self) -> Option<u32> {
        self.run.as_ref().map(|r| r.nspawn)
    }

    /// The container's own cgroups on the host (one per hierarchy); `Drop` removes them.
    pub fn cgroups(&self) -> &[PathBuf] {
        &self.cgroups
    }

    /// The run directory (overlay upper/work dirs, `/xchg`, nspawn's log); `Drop` removes it.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The D-Bus address of the container's system bus, usable from the host
    /// (`DBUS_SYSTEM_BUS_ADDRESS` for zbus or busctl).
    pub fn bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid1()
        )
    }

    /// The host directory bound at `/xchg` inside.
    pub fn xchg(&self) -> PathBuf {
        self.run_dir.join("xchg")
    }

    /// The overlay's upper directory: everything the container wrote to its root filesystem.
    pub fn upper_dir(&self) -> PathBuf {
        self.run_dir.join("upper")
    }

    /// Runs a command inside (all namespaces of PID 1, the host's `DBUS_SYSTEM_BUS_ADDRESS`
    /// removed) and returns its output whatever its exit status.
    pub fn exec(&self, argv: &[&str]) -> Output {
        self.try_exec(argv)
            .unwrap_or_else(|e| panic!("container {}: {e}", self.name))
    }

    /// Like [`exec`](Self::exec), but an error if the command cannot be run at all.
    pub fn try_exec(&self, argv: &[&str]) -> Result<Output> {
        let pid1 = self
            .run
            .as_ref()
            .map(|r| r.pid1)
            .ok_or_else(|| err("the container is not running"))?;
        nsenter(pid1, argv)
            .output()
            .map_err(|e| err(format!("running nsenter for {argv:?}: {e}")))
    }

    /// Runs a command inside and returns its stdout; an error with its stderr if it fails.
    pub fn exec_ok(&self, argv: &[&str]) -> Result<String> {
        let out = self.try_exec(argv)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(err(format!(
                "{argv:?} in container {} failed ({}): {}{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            )))
        }
    }

    /// Copies a host file to `dest` inside (through `/xchg`, so symlinks inside resolve
    /// against the container's root, not the host's).
    pub fn copy_in(&self, host: &Path, dest: &str) -> Result<()> {
        let staged = format!("copy-in-{}", fastrand::u64(..));
        let staged_host = self.xchg().join(&staged);
        fs::copy(host, &staged_host).map_err(|e| {
            err(format!(
                "copying {} to {}: {e}",
                host.display(),
                staged_host.display()
            ))
        })?;
        let res = self
            .exec_ok(&[
                "cp",
                "--no-preserve=ownership",
                &format!("/xchg/{staged}"),
                dest,
            ])
            .map(drop);
        let _ = fs::remove_file(&staged_host);
        res
    }

    /// Writes `contents` to `dest` inside (mode 0644, parent directories created).
    pub fn write_file(&self, dest: &str, contents: &[u8]) -> Result<()> {
        let staged = format!("write-{}", fastrand::u64(..));
        let staged_host = self.xchg().join(&staged);
        fs::write(&staged_host, contents)
            .map_err(|e| err(format!("writing {}: {e}", staged_host.display())))?;
        let res = self
            .exec_ok(&[
                "install",
                "-D",
                "-m",
                "0644",
                &format!("/xchg/{staged}"),
                dest,
            ])
            .map(drop);
        let _ = fs::remove_file(&staged_host);
        res
    }

    /// `journalctl -u UNIT -o cat` inside: the unit's messages, one per line.
    pub fn journal(&self, unit: &str) -> String {
        let out = self.exec(&["journalctl", "--no-pager", "-q", "-o", "cat", "-u", unit]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every non-directory entry the container created, changed or deleted (overlay whiteouts)
    /// on its root filesystem, as absolute paths inside, sorted. tmpfs mounts (`/run`, `/tmp`,
    /// `/dev`, `/proc`, `/sys` and any the units mount) never appear; the listing filters
    /// those prefixes anyway.
    pub fn written_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.upper_dir(), "", &mut out);
        out.retain(|p| {
            !["/run/", "/tmp/", "/dev/", "/proc/", "/sys/"]
                .iter()
                .any(|pre| p.starts_with(pre))
        });
        out.sort();
        out
    }

    /// [`written_files`](Self::written_files) with each entry's modification time and size
    /// (of the entry itself, symlinks not followed), to tell what was written after a moment:
    /// snapshot, wait, compare.
    pub fn written_file_stats(&self) -> std::collections::BTreeMap<String, (SystemTime, u64)> {
        let upper = self.upper_dir();
        self.written_files()
            .into_iter()
            .filter_map(|p| {
                let meta = fs::symlink_metadata(upper.join(p.trim_start_matches('/'))).ok()?;
                Some((p, (meta.modified().ok()?, meta.len())))
            })
            .collect()
    }

    /// Reboots the container (`systemctl reboot` inside; nspawn exits with status 133 and is
    /// started again on the same overlay, so files written before the reboot are still there)
    /// and waits until the new boot is `running`.
    pub fn reboot(&mut self) -> Result<()> {
        let run = self
            .run
            .take()
            .ok_or_else(|| err("the container is not running"))?;
        // The command may be killed as the container goes down: its status says nothing.
        let _ = nsenter(run.pid1, &["systemctl", "reboot", "--no-block"]).output();
        let status = run.exited.recv_timeout(SHUTDOWN_TIMEOUT);
        match status {
            Ok(Ok(s)) if s.code() == Some(NSPAWN_REBOOT_STATUS) => {}
            Ok(Ok(s)) => {
                return Err(err(format!(
                    "container {} did not reboot: nspawn exited with {s}; log:\n{}",
                    self.name,
                    tail(&self.log_path(), 20)
                )))
            }
            Ok(Err(e)) => return Err(err(format!("waiting for nspawn: {e}"))),
            Err(_) => {
                self.run = Some(run);
                return Err(err(format!(
                    "container {} did not shut down for the reboot within {SHUTDOWN_TIMEOUT:?}",
                    self.name
                )));
            }
        }
        self.kill_and_clear_cgroups(false);
        self.launch()
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.join("nspawn.log")
    }

    /// Starts systemd-nspawn on a fresh overlay mount over the same upper directory and waits
    /// for the boot to finish.
    fn launch(&mut self) -> Result<()> {
        let log_path = self.log_path();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| err(format!("opening {}: {e}", log_path.display())))?;
        let log2 = log
            .try_clone()
            .map_err(|e| err(format!("duplicating {}: {e}", log_path.display())))?;

        let mut nspawn_args: Vec<String> = vec![
            "-D".into(),
            path_str(&self.run_dir.join("merged")),
            "-M".into(),
            self.name.clone(),
            "--boot".into(),
            "--register=no".into(),
            "--keep-unit".into(),
            "--console=pipe".into(),
            "--link-journal=no".into(),
            format!("--bind={}:/xchg", path_str(&self.xchg())),
        ];
        for (host, dest) in &self.options.binds {
            nspawn_args.push(format!("--bind={}:{dest}", path_str(host)));
        }
        if self.options.private_network {
            nspawn_args.push("--private-network".into());
        }
        for cap in &self.options.capabilities {
            nspawn_args.push(format!("--capability={cap}"));
        }

        // unshare: the overlay mount exists only in this private mount namespace, so it goes
        // away with the container's last process, whatever happens to the test.
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-ec"])
            .arg(
                r#"mount -t overlay visdcam-e2e -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4"
shift 4
exec systemd-nspawn "$@""#,
            )
            .arg("sh")
            .arg(&self.rootfs)
            .arg(self.run_dir.join("upper"))
            .arg(self.run_dir.join("work"))
            .arg(self.run_dir.join("merged"))
            .args(&nspawn_args)
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let procs: Vec<CString> = self
            .cgroups
            .iter()
            .map(|cg| {
                CString::new(cg.join("cgroup.procs").as_os_str().as_bytes())
                    .expect("cgroup paths have no NUL")
            })
            .collect();
        // SAFETY: between fork and exec the closure makes only async-signal-safe system calls
        // (open, write, close, prctl) on data prepared before the fork; it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                for p in &procs {
                    // "0" moves the writing process itself (cgroup v1 and v2).
                    let fd = nix::fcntl::open(
                        p.as_c_str(),
                        nix::fcntl::OFlag::O_WRONLY,
                        nix::sys::stat::Mode::empty(),
                    )?;
                    nix::unistd::write(&fd, b"0")?;
                }
                nix::sys::prctl::set_pdeathsig(Signal::SIGTERM)?;
                Ok(())
            });
        }

        // The thread that forks nspawn lives until nspawn exits: PR_SET_PDEATHSIG fires when
        // the forking *thread* ends, and it also collects the exit status.
        let (pid_tx, pid_rx) = mpsc::channel::<io::Result<u32>>();
        let (exit_tx, exit_rx) = mpsc::channel::<io::Result<ExitStatus>>();
        thread::Builder::new()
            .name(format!("nspawn-{}", self.name))
            .spawn(move || match cmd.spawn() {
                Ok(mut child) => {
                    let _ = pid_tx.send(Ok(child.id()));
                    let _ = exit_tx.send(child.wait());
                }
                Err(e) => {
                    let _ = pid_tx.send(Err(e));
                }
            })
            .map_err(|e| err(format!("starting the nspawn thread: {e}")))?;
        let nspawn = pid_rx
            .recv()
            .map_err(|_| err("the nspawn thread died"))?
            .map_err(|e| err(format!("starting unshare/systemd-nspawn: {e}")))?;

        let started = Instant::now();
        let deadline = started + BOOT_TIMEOUT;
        let mut pid1 = None;
        let outcome = loop {
            if let Ok(status) = exit_rx.try_recv() {
                break Err(err(format!(
                    "systemd-nspawn exited during boot ({}); log {}:\n{}",
                    status.map_or_else(|e| e.to_string(), |s| s.to_string()),
                    log_path.display(),
                    tail(&log_path, 30)
                )));
            }
            if pid1.is_none() {
                pid1 = child_named(nspawn, "systemd");
            }
            if let Some(p) = pid1 {
                let socket = format!("/proc/{p}/root/run/dbus/system_bus_socket");
                if Path::new(&socket).exists() {
                    let out = nsenter(p, &["systemctl", "is-system-running"]).output();
                    let state = out
                        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                        .unwrap_or_default();
                    match state.as_str() {
                        "running" => break Ok(p),
                        "degraded" => {
                            let failed = nsenter(p, &["systemctl", "--failed", "--no-legend"])
                                .output()
                                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                                .unwrap_or_default();
                            break Err(err(format!(
                                "container booted degraded; failed units:\n{failed}"
                            )));
                        }
                        _ => {}
                    }
                }
            }
            if Instant::now() >= deadline {
                break Err(err(format!(
                    "container {} not running after {BOOT_TIMEOUT:?}; log:\n{}",
                    self.name,
                    tail(&log_path, 30)
                )));
            }
            thread::sleep(POLL);
        };
        self.run = Some(Run {
            nspawn,
            pid1: pid1.unwrap_or(0),
            exited: exit_rx,
        });
        match outcome {
            Ok(_) => {
                eprintln!(
                    "container {}: running after {:.1?}",
                    self.name,
                    started.elapsed()
                );
                Ok(())
            }
            // Drop cleans up what was started.
            Err(e) => Err(e),
        }
    }

    /// Powers off (SIGTERM to nspawn makes it send systemd the poweroff signal), waits, then
    /// SIGKILLs what is left.
    fn shut_down(&mut self) {
        let Some(run) = self.run.take() else { return };
        let _ = kill(Pid::from_raw(run.nspawn as i32), Signal::SIGTERM);
        if run.exited.recv_timeout(SHUTDOWN_TIMEOUT).is_err() {
            eprintln!(
                "container {}: no clean shutdown within {SHUTDOWN_TIMEOUT:?}, killing it",
                self.name
            );
            let _ = kill(Pid::from_raw(run.nspawn as i32), Signal::SIGKILL);
            let _ = run.exited.recv_timeout(Duration::from_secs(5));
        }
    }

    /// SIGKILLs every process left in the container's cgroups and removes the cgroups below
    /// them (`payload/`, `supervisor/`); with `remove_roots` also the per-container cgroups.
    fn kill_and_clear_cgroups(&self, remove_roots: bool) {
        for cg in &self.cgroups {
            clear_cgroup(cg, remove_roots);
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.shut_down();
        self.kill_and_clear_cgroups(true);
        if let Err(e) = fs::remove_dir_all(&self.run_dir) {
            eprintln!(
                "container {}: removing {}: {e}",
                self.name,
                self.run_dir.display()
            );
        }
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// `nsenter` into every namespace of `pid1`, without the host's D-Bus address.
fn nsenter(pid1: u32, argv: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg("-t")
        .arg(pid1.to_string())
        .arg("-a")
        .args([
            "env",
            "-u",
            "DBUS_SYSTEM_BUS_ADDRESS",
            "SYSTEMD_PAGER=",
            "SYSTEMD_COLORS=0",
        ])
        .args(argv)
        .stdin(Stdio::null());
    cmd
}

/// A child process of `parent` whose command name is `comm`.
fn child_named(parent: u32, comm: &str) -> Option<u32> {
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may contain spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let ppid = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok());
        if name == comm && ppid == Some(parent) {
            return Some(pid);
        }
    }
    None
}

fn check_prerequisites() -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        return Err(err(
            "the container rig needs root (systemd-nspawn, mounts, cgroups): its tests are \
             #[ignore]d; `cargo xtask ci` runs them as root with --ignored",
        ));
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
    ] {
        let found = std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Err(err(format!(
                "`{tool}` not found: apt-get install {package} (or cargo xtask deps)"
            )));
        }
    }
    Ok(())
}

/// The cgroup hierarchies a launcher must join: on a hybrid (v1) host the named `systemd`
/// hierarchy and the `unified` one, on a pure v2 host the root.
fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.procs").exists() {
        return vec![base.to_path_buf()];
    }
    ["systemd", "unified"]
        .iter()
        .map(|h| base.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

/// Kills every process in `cg` and below, then removes the cgroups below it depth-first (and
/// `cg` itself with `remove_root`).
fn clear_cgroup(cg: &Path, remove_root: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = cgroup_pids(cg);
        if pids.is_empty() || Instant::now() >= deadline {
            break;
        }
        for pid in pids {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        thread::sleep(POLL);
    }
    remove_cgroup_dirs(cg, remove_root);
}

fn cgroup_pids(cg: &Path) -> Vec<u32> {
    let mut pids: Vec<u32> = fs::read_to_string(cg.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    if let Ok(entries) = fs::read_dir(cg) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                pids.extend(cgroup_pids(&e.path()));
            }
        }
    }
    pids
}

fn remove_cgroup_dirs(cg: &Path, remove_self: bool) {
    if let Ok(entries) = fs::read_dir(cg) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_dirs(&e.path(), true);
            }
        }
    }
    if remove_self {
        if let Err(e) = fs::remove_dir(cg) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("container: removing cgroup {}: {e}", cg.display());
            }
        }
    }
}

/// Removes cgroups and run directories left by test processes that no longer exist (a test
/// binary killed with SIGKILL cannot run `Drop`).
fn sweep_stale() {
    let dead = |name: &str| -> bool {
        name.strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
    };
    for root in cgroup_roots() {
        if let Ok(entries) = fs::read_dir(&root) {
            for e in entries.flatten() {
                if e.file_name().to_str().is_some_and(dead) {
                    clear_cgroup(&e.path(), true);
                }
            }
        }
    }
    if let Ok(entries) = fs::read_dir(e2e_dir().join("runs")) {
        for e in entries.flatten() {
            if e.file_name().to_str().is_some_and(dead) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Collects the non-directory entries below `dir` as absolute container paths.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = format!("{prefix}/{}", e.file_name().to_string_lossy());
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&e.path(), &path, out),
            _ => out.push(path),
        }
    }
}
