//! Child processes that are killed when the test ends, even on panic.
//!
//! [`ChildGuard`] owns a child spawned in its own process group with `PR_SET_PDEATHSIG=SIGKILL`,
//! so neither a panicking test (the guard's `Drop`) nor a killed test binary (the kernel's
//! death signal) leaves a server behind. The polling helpers ([`wait_until`], [`wait_for_tcp`])
//! are what tests use instead of sleeps: they check a condition every few milliseconds until a
//! deadline and say how long they waited when it never came true.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How long `Drop` lets a child handle SIGTERM before it sends SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// How often the polling helpers re-check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A child process (and its process group) that is stopped when the guard is dropped.
///
/// The child runs in a new process group whose id is its pid, so signals reach everything it
/// starts. `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the
/// process; children are therefore forked by one long-lived spawner thread, so a guard may be
/// created in one test thread and kept (e.g. in a `static`) beyond it.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
    name: String,
}

impl ChildGuard {
    /// Spawns `cmd` in its own process group, to be SIGKILLed if the test process dies.
    ///
    /// `name` appears in error messages.
    pub fn spawn(name: &str, cmd: Command) -> io::Result<ChildGuard> {
        let child = spawner_spawn(cmd)
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {name}: {e}")))?;
        Ok(ChildGuard {
            child: Some(child),
            name: name.to_owned(),
        })
    }

    /// The child's pid, which is also its process-group id. `None` once it has been stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the child has exited, without reaping it (so its pid stays reserved).
    pub fn has_exited(&self) -> bool {
        match &self.child {
            Some(child) => self_exited(Pid::from_raw(child.id() as i32)),
            None => true,
        }
    }

    /// Stops the whole process group: SIGTERM, up to `grace` for the leader to exit, then
    /// SIGKILL, then reaps the leader. `Duration::ZERO` kills at once. Returns the leader's exit
    /// status; `None` if it was already stopped.
    pub fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let pgid = Pid::from_raw(child.id() as i32);
        if !grace.is_zero() {
            // ESRCH only means the group is already gone.
            let _ = killpg(pgid, Signal::SIGTERM);
            let deadline = Instant::now() + grace;
            let _ = wait_until(deadline, || self_exited(pgid));
        }
        // The leader is not reaped yet, so the group id cannot have been reused: this reaches
        // only our processes, including any stragglers the leader left in its group.
        let _ = killpg(pgid, Signal::SIGKILL);
        match child.wait() {
            Ok(status) => Some(status),
            Err(e) => {
                eprintln!("reaping {} (pid {pgid}): {e}", self.name);
                None
            }
        }
    }

    /// Kills the process group with SIGKILL at once and reaps the leader.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.stop(Duration::ZERO)
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop(DEFAULT_GRACE);
    }
}

/// Whether the process `pid` (our child) has exited, without reaping it.
fn self_exited(pid: Pid) -> bool {
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    !matches!(waitid(Id::Pid(pid), flags), Ok(WaitStatus::StillAlive))
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Forks `cmd` from the spawner thread, which lives as long as the test process.
fn spawner_spawn(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("child-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the child-spawner thread");
        Mutex::new(tx)
    });

    let parent = nix::unistd::getpid();
    cmd.process_group(0);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(io::Error::from)?;
            // The parent may have died before prctl took effect: then nobody would kill us.
            if nix::unistd::getppid() != parent {
                return Err(io::Error::other("parent died before exec"));
            }
            Ok(())
        });
    }

    let (reply_tx, reply_rx) = mpsc::channel();
    sender
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("child-spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("child-spawner thread did not answer"))?
}

/// A condition did not become true before its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// How long the caller waited.
    pub waited: Duration,
    /// What was waited for.
    pub what: String,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {:.1?} waiting for {}",
            self.waited, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `cond` every 10 ms until it returns true (`Ok`) or `deadline` passes (`Err`).
///
/// `cond` is always called at least once, and once more at the deadline.
pub fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> Result<(), TimedOut> {
    let start = Instant::now();
    loop {
        if cond() {
            return Ok(());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut {
                waited: now - start,
                what: "condition".into(),
            });
        }
        thread::sleep(POLL_INTERVAL.min(deadline - now));
    }
}

/// Waits until a TCP connection to `addr` succeeds, or `deadline` passes.
pub fn wait_for_tcp(addr: SocketAddr, deadline: Instant) -> Result<(), TimedOut> {
    wait_until(deadline, || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
    })
    .map_err(|e| TimedOut {
        what: format!("a TCP listener on {addr}"),
        ..e
    })
}

/// A binary built beside `exe` (a test's `env!("CARGO_BIN_EXE_…")`) in the same target
/// directory; panics with the command that builds it when it is not there.
pub fn sibling_binary(exe: &str, name: &str) -> PathBuf {
    let p = Path::new(exe)
        .parent()
        .expect("a built binary lives in a directory")
        .join(name);
    assert!(
        p.exists(),
        "{} is not built: run `cargo build -p {name}` (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process may take it before the caller binds it; for several ports use
/// [`free_ports`], which never returns the same port twice.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct TCP ports on 127.0.0.1 that were free a moment ago.
///
/// A port is never returned twice in one process, so rigs started by parallel tests (threads
/// of one test binary) cannot pick each other's ports between choosing and binding them, nor
/// take the port of a server that a test stopped and means to start again. Ports come from
/// below the kernel's ephemeral range (`ip_local_port_range`), so no `bind(…:0)` and no
/// outgoing connection of another test or server can take one before its rig binds it.
pub fn free_ports(n: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (low, high) = fixed_port_range();
    let mut ports = Vec::with_capacity(n);
    let mut tries = 0u32;
    while ports.len() < n {
        tries += 1;
        assert!(
            tries < 100_000,
            "no free port in 127.0.0.1:{low}..{high} after {tries} tries"
        );
        let port = fastrand::u16(low..high);
        if !handed_out.contains(&port) && nobody_listens(port) {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    ports
}

/// Whether 127.0.0.1:`port` can be bound by a server (`SO_REUSEADDR`, as std and Go set it).
/// The probe binds without listening: a child forked meanwhile by another test thread, which
/// holds copies of our sockets until its `exec`, cannot keep the port in LISTEN after we
/// return (a probe that listened did, and the rig's own bind then failed with AddrInUse).
fn nobody_listens(port: u16) -> bool {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let Ok(fd) = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    setsockopt(&fd, sockopt::ReuseAddr, &true).is_ok()
        && bind(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            &SockaddrIn::new(127, 0, 0, 1, port),
        )
        .is_ok()
}

/// Ports the kernel never hands out by itself: from 10000 up to the start of the ephemeral
/// range (Linux default 32768), or 10000..20000 if that range starts lower.
fn fixed_port_range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 12_000 {
        (10_000, ephemeral_low)
    } else {
        (10_000, 20_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn wait_until_reports_time_out() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let mut calls = 0;
        let err = wait_until(deadline, || {
            calls += 1;
            false
        })
        .unwrap_err();
        assert!(err.waited >= Duration::from_millis(50), "{err}");
        assert!(calls >= 2, "polled {calls} times");
    }

    #[test]
    fn wait_until_returns_once_true() {
        let mut calls = 0;
        wait_until(Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        })
        .unwrap();
        assert_eq!(calls, 3);
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(8);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 8);
        let again = free_ports(8);
        assert!(
            again.iter().all(|p| !ports.contains(p)),
            "{ports:?} then {again:?}"
        );
        let listener = TcpListener::bind(("127.0.0.1", ports[0])).unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_tcp(addr, Instant::now() + Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn wait_for_tcp_times_out_on_closed_port() {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let err = wait_for_tcp(addr, Instant::now() + Duration::from_millis(50)).unwrap_err();
        assert!(err.to_string().contains(&port.to_string()), "{err}");
    }

    /// Whether a process with this pid exists and is not a zombie.
    fn pid_exists(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    #[test]
    fn drop_kills_the_whole_group() {
        // The shell ignores SIGTERM, so this also covers the SIGKILL fallback; its background
        // child must die with it.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("trap '' TERM; sleep 300 & echo $! ; wait")
            .stdout(std::process::Stdio::piped());
        let mut guard = ChildGuard::spawn("sh", cmd).unwrap();
        let leader = guard.pid().unwrap();
        let mut out = guard.child.as_mut().unwrap().stdout.take().unwrap();
        let mut line = String::new();
        use std::io::Read;
        let mut byte = [0u8; 1];
        while out.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        let sleeper: u32 = line.trim().parse().unwrap();
        assert!(pid_exists(sleeper));
        assert!(!guard.has_exited());

        let started = Instant::now();
        drop(guard);
        assert!(
            started.elapsed() >= DEFAULT_GRACE,
            "SIGTERM was ignored, so Drop had to wait"
        );
        assert!(!pid_exists(leader), "leader {leader} still exists");
        // The sleeper was reparented and is reaped by init, which may take a moment.
        wait_until(Instant::now() + Duration::from_secs(5), || {
            !pid_exists(sleeper)
        })
        .expect("the background child died with its group");
    }

    #[test]
    fn kill_is_immediate_and_reports_status() {
        let mut cmd = Command::new("sleep");
        cmd.arg("300");
        let mut guard = ChildGuard::spawn("sleep", cmd).unwrap();
        let status = guard.kill().unwrap();
        assert!(!status.success());
        assert!(guard.pid().is_none());
        assert!(guard.has_exited());
        assert!(guard.kill().is_none(), "stopping twice is a no-op");
    }

    #[test]
    fn spawn_error_names_the_program() {
        let err = ChildGuard::spawn("ghost", Command::new("/nonexistent/ghost")).unwrap_err();
        assert!(err.to_string().contains("ghost"), "{err}");
    }
}
