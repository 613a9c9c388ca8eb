//! The real `net-shaper` binary against real `tc` and the real kernel, in network namespaces
//! each test creates (and deletes on drop). Needs root. Traffic only flows between these
//! namespaces, never on the host's interfaces.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{setsockopt, sockopt};
use tempfile::TempDir;

const BIN: &str = env!("CARGO_BIN_EXE_net-shaper");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create network namespaces with `ip netns add` and need root"
    );
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn check(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A network namespace, deleted (with its interfaces) on drop.
struct Netns {
    name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("vdshaper-{}-{n}-{tag}", std::process::id());
        check(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.sh(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Runs a command in the namespace; it must succeed.
    fn sh(&self, argv: &[&str]) -> String {
        check(&mut self.cmd(argv))
    }

    /// Everything tc shows for the device: qdiscs, classes, filters. Without counters, except
    /// HTB's `direct_packets_stat`, which the kernel's own IPv6 neighbour discovery moves and
    /// which is masked here.
    fn tc_state(&self, dev: &str) -> String {
        let text = ["qdisc", "class", "filter"]
            .iter()
            .map(|w| self.sh(&["tc", w, "show", "dev", dev]))
            .collect::<Vec<_>>()
            .join("--\n");
        let mut out = String::new();
        for line in text.lines() {
            let mut prev = "";
            for w in line.split_whitespace() {
                out.push_str(if prev == "direct_packets_stat" {
                    "N"
                } else {
                    w
                });
                out.push(' ');
                prev = w;
            }
            out.push('\n');
        }
        out
    }

    /// The namespace's handle, for [`enter`] from another thread.
    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

/// Runs this thread in the namespace from now on (network namespaces are per thread).
fn enter(ns: &Path) {
    let f = fs::File::open(ns).unwrap();
    setns(f, CloneFlags::CLONE_NEWNET).unwrap();
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Joins two namespaces with a veth pair: `a_dev` in `a` with `a_ip`, `b_dev` in `b`.
fn veth(a: &Netns, a_dev: &str, a_ip: &str, b: &Netns, b_dev: &str, b_ip: &str) {
    check(Command::new("ip").args([
        "link", "add", a_dev, "netns", &a.name, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]));
    for (ns, dev, ip) in [(a, a_dev, a_ip), (b, b_dev, b_ip)] {
        ns.sh(&["ip", "addr", "add", ip, "dev", dev]);
        ns.sh(&["ip", "link", "set", dev, "up"]);
    }
}

/// The shaper's namespace `a`, its far side `b`, a config dir and a state dir.
struct Rig {
    a: Netns,
    b: Netns,
    conf: TempDir,
    run: TempDir,
}

const DEV: &str = "vd0";

impl Rig {
    /// `a` (vd0, 10.213.0.1/24, default route via b) — `b` (vd1, 10.213.0.2/24).
    fn new() -> Rig {
        require_root();
        let a = Netns::new("a");
        let b = Netns::new("b");
        veth(&a, DEV, "10.213.0.1/24", &b, "vd1", "10.213.0.2/24");
        a.sh(&["ip", "route", "add", "default", "via", "10.213.0.2"]);
        Rig {
            a,
            b,
            conf: TempDir::new().unwrap(),
            run: TempDir::new().unwrap(),
        }
    }

    fn config(&self, text: &str) -> PathBuf {
        let p = self.conf.path().join("visdcam.conf");
        fs::write(&p, text).unwrap();
        p
    }

    /// Runs net-shaper in `a`.
    fn shaper(&self, args: &[&str]) -> Output {
        self.shaper_env(args, &[])
    }

    fn shaper_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = self.a.cmd(&[BIN]);
        c.args(args)
            .env("VISDCAM_CONFIG_DIR", self.conf.path())
            .env("RUNTIME_DIRECTORY", self.run.path())
            .envs(env.iter().copied());
        run(&mut c)
    }

    fn shaper_ok(&self, args: &[&str]) -> String {
        let out = self.shaper(args);
        assert!(
            out.status.success(),
            "net-shaper {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn apply_twice_gives_the_same_tree_and_clear_brings_back_the_kernel_default() {
    let rig = Rig::new();
    let before = rig.a.tc_state(DEV);
    assert!(before.starts_with("qdisc noqueue 0: root"), "{before}");

    // No --dev and no SHAPER_DEV: the default route's interface.
    rig.shaper_ok(&["apply"]);
    let once = rig.a.tc_state(DEV);
    assert!(once.contains("qdisc htb 7664: root"), "{once}");
    assert!(
        once.contains("class htb 7664:20 root leaf 7666: prio 0 rate 3Mbit"),
        "{once}"
    );
    assert!(once.contains("match 00200000/00fc0000 at 0"), "{once}");
    assert!(once.contains("protocol ipv6"), "{once}");

    rig.shaper_ok(&["apply"]);
    assert_eq!(rig.a.tc_state(DEV), once, "a second apply changed the tree");

    let status = rig.shaper(&["status"]);
    assert_eq!(status.status.code(), Some(0));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("state: installed on vd0"), "{text}");
    // This build machine's kernel has no fq_codel; a Raspberry Pi's does.
    let has_fq_codel = once.contains("fq_codel");
    let leaf_line = if has_fq_codel {
        "leaf qdisc: fq_codel"
    } else {
        "leaf qdisc: pfifo (fallback: this kernel has no fq_codel)"
    };
    assert!(text.contains(leaf_line), "{text}");
    assert!(text.contains("7664:20   uploads"), "{text}");

    rig.shaper_ok(&["clear"]);
    assert_eq!(rig.a.tc_state(DEV), before);
    let status = rig.shaper(&["status"]);
    assert_eq!(status.status.code(), Some(3), "{}", stderr(&status));
    // Clearing again is harmless.
    rig.shaper_ok(&["clear"]);
    assert_eq!(rig.a.tc_state(DEV), before);
}

#[test]
fn clear_puts_back_the_root_qdisc_that_was_there() {
    let rig = Rig::new();
    for prior in [
        &["tbf", "rate", "20mbit", "burst", "32kb", "latency", "50ms"][..],
        &["pfifo", "limit", "30"][..],
        &["bfifo", "limit", "30000"][..],
    ] {
        let mut argv = vec!["tc", "qdisc", "replace", "dev", DEV, "root"];
        argv.extend_from_slice(prior);
        rig.a.sh(&argv);
        let before = rig.a.tc_state(DEV);

        rig.shaper_ok(&["apply", "--dev", DEV, "--rate", "5mbit"]);
        let applied = rig.a.tc_state(DEV);
        assert!(applied.contains("rate 5Mbit"), "{applied}");
        rig.shaper_ok(&["apply", "--dev", DEV, "--rate", "5mbit"]);
        assert_eq!(rig.a.tc_state(DEV), applied);

        rig.shaper_ok(&["clear", "--dev", DEV]);
        assert_eq!(rig.a.tc_state(DEV), before, "after {prior:?}");
        let left: Vec<_> = fs::read_dir(rig.run.path()).unwrap().collect();
        assert!(left.is_empty(), "state file left behind: {left:?}");
    }
}

#[test]
fn unknown_device_is_named_and_nothing_changes() {
    let rig = Rig::new();
    let before = rig.a.sh(&["tc", "qdisc", "show"]);
    for args in [
        &["apply", "--dev", "nope0"][..],
        &["clear", "--dev", "nope0"][..],
    ] {
        let out = rig.shaper(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("dev nope0: ") && err.contains("Cannot find device \"nope0\""),
            "{err}"
        );
        assert!(err.contains("nothing was changed"), "{err}");
        assert_eq!(rig.a.sh(&["tc", "qdisc", "show"]), before);
    }
    // The same from the configuration file.
    rig.config("SHAPER_DEV=nope1\n");
    let out = rig.shaper(&["apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("dev nope1: "), "{}", stderr(&out));
    assert_eq!(rig.a.sh(&["tc", "qdisc", "show"]), before);
}

#[test]
fn invalid_rate_in_config_is_a_file_line_error() {
    let rig = Rig::new();
    let before = rig.a.tc_state(DEV);
    let path = rig.config("# shaping\nSHAPER_DEV=vd0\nSHAPER_RATE=3 furlongs\n");
    let out = rig.shaper(&["apply"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("{}:3: SHAPER_RATE", path.display())),
        "{err}"
    );
    assert_eq!(rig.a.tc_state(DEV), before);
    // A bad --rate is a usage error.
    let out = rig.shaper(&["apply", "--rate", "fast"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--rate: `fast`"), "{}", stderr(&out));
}

#[test]
fn someone_elses_classful_root_is_left_alone() {
    let rig = Rig::new();
    rig.a.sh(&[
        "tc", "qdisc", "add", "dev", DEV, "root", "handle", "1:", "htb",
    ]);
    rig.a.sh(&[
        "tc", "class", "add", "dev", DEV, "parent", "1:", "classid", "1:1", "htb", "rate", "1mbit",
    ]);
    let before = rig.a.tc_state(DEV);
    let out = rig.shaper(&["apply", "--dev", DEV]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("root qdisc `htb 1:` was not installed by visdcam"));
    // clear does not touch it either.
    rig.shaper_ok(&["clear", "--dev", DEV]);
    assert_eq!(rig.a.tc_state(DEV), before);
}

#[test]
fn a_failure_halfway_leaves_no_half_built_tree() {
    let rig = Rig::new();
    rig.a.sh(&[
        "tc", "qdisc", "replace", "dev", DEV, "root", "tbf", "rate", "20mbit", "burst", "32kb",
        "latency", "50ms",
    ]);
    let before = rig.a.tc_state(DEV);
    // Break the plan after the root and the classes are in (command 4 of 7).
    let out = rig.shaper_env(&["apply", "--dev", DEV], &[("NET_SHAPER_BREAK_AT", "4")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("dev vd0: applying the shaper failed at `tc qdisc add dev vd0 parent 7664:99"),
        "{err}"
    );
    assert!(
        err.contains("rolled back to the previous root `tbf"),
        "{err}"
    );
    assert_eq!(rig.a.tc_state(DEV), before);

    // Same when the tree was already installed (re-apply deletes it first).
    rig.shaper_ok(&["apply", "--dev", DEV]);
    let out = rig.shaper_env(&["apply", "--dev", DEV], &[("NET_SHAPER_BREAK_AT", "7")]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(rig.a.tc_state(DEV), before);
}

/// Bytes received per connection, counted by receiver threads in namespace `b`.
struct Sink {
    counters: Vec<Arc<AtomicU64>>,
    addrs: Vec<SocketAddr>,
    threads: Vec<thread::JoinHandle<()>>,
}

fn start_sinks(ns: &Netns, ip: &str, n: usize, stop: &Arc<AtomicBool>) -> Sink {
    let mut counters = Vec::new();
    let mut addrs = Vec::new();
    let mut threads = Vec::new();
    for _ in 0..n {
        let count = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel();
        let (ns, ip, c, stop) = (ns.path(), ip.to_string(), count.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            enter(&ns);
            let l = TcpListener::bind((ip.as_str(), 0)).unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let (mut s, _) = l.accept().unwrap();
            // Stop with the senders: their socket buffers would take many seconds to drain
            // through the 3 mbit class.
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        c.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) => {}
                    Err(e) => panic!("receiver: {e}"),
                }
            }
        }));
        addrs.push(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        counters.push(count);
    }
    Sink {
        counters,
        addrs,
        threads,
    }
}

/// A bulk sender in namespace `ns`, optionally DSCP-marked, until `stop`.
fn start_sender(
    ns: &Netns,
    to: SocketAddr,
    tos: Option<u8>,
    stop: &Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let (ns, stop) = (ns.path(), stop.clone());
    thread::spawn(move || {
        enter(&ns);
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        if let Some(tos) = tos {
            setsockopt(&s, sockopt::Ipv4Tos, &i32::from(tos)).unwrap();
        }
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let buf = vec![0x5a_u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match s.write(&buf) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                // The receiver may close first once the test is over.
                Err(_) if stop.load(Ordering::Relaxed) => break,
                Err(e) => panic!("sender: {e}"),
            }
        }
        // Dropping the stream ends the receiver's read loop.
    })
}

/// THROUGHPUT TEST (about 7 s). A (shaper, 3 mbit) — R (router; its egress to B is a 20 mbit
/// tbf: the finite "link") — B (receivers). A CS1-marked bulk transfer must get 3 Mb/s ±10 %
/// while an unmarked one at the same time gets most of the remaining 17 Mb/s. Rates are TCP
/// payload (goodput); headers cost ~4.4 % of the wire rate with 1514-byte frames.
#[test]
fn throughput_marked_is_capped_while_unmarked_gets_the_rest() {
    require_root();
    let a = Netns::new("ta");
    let r = Netns::new("tr");
    let b = Netns::new("tb");
    veth(&a, "up0", "10.213.1.1/30", &r, "r0", "10.213.1.2/30");
    veth(&r, "r1", "10.213.2.1/30", &b, "dn0", "10.213.2.2/30");
    a.sh(&["ip", "route", "add", "default", "via", "10.213.1.2"]);
    b.sh(&["ip", "route", "add", "default", "via", "10.213.2.1"]);
    r.sh(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    r.sh(&[
        "tc", "qdisc", "add", "dev", "r1", "root", "tbf", "rate", "20mbit", "burst", "32kb",
        "latency", "100ms",
    ]);

    let conf = TempDir::new().unwrap();
    fs::write(conf.path().join("visdcam.conf"), "SHAPER_RATE=3mbit\n").unwrap();
    let runtime = TempDir::new().unwrap();
    check(
        a.cmd(&[BIN, "apply"])
            .env("VISDCAM_CONFIG_DIR", conf.path())
            .env("RUNTIME_DIRECTORY", runtime.path()),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sink = start_sinks(&b, "10.213.2.2", 2, &stop);
    let senders = [
        start_sender(&a, sink.addrs[0], Some(0x20), &stop),
        start_sender(&a, sink.addrs[1], None, &stop),
    ];

    // Let both TCP flows leave slow start, then measure over a fixed window.
    let warmup = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < warmup {
        thread::sleep(Duration::from_millis(50));
    }
    let read = || {
        sink.counters
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect::<Vec<_>>()
    };
    let (t0, c0) = (Instant::now(), read());
    // Counted where the receiving threads read, so data the kernel buffered before t0 and a
    // starved reader drained after it lands in the window: up to a socket buffer (a few
    // hundred kB) on top of the rate, 0.5 Mb/s over 4 s on a loaded 2-core CI machine (seen),
    // 0.2 Mb/s over 10 s.
    let end = t0 + Duration::from_secs(10);
    while Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    let (t1, c1) = (Instant::now(), read());
    stop.store(true, Ordering::Relaxed);
    for t in senders.into_iter().chain(sink.threads) {
        t.join().expect("sender or receiver thread panicked");
    }
    let secs = (t1 - t0).as_secs_f64();
    let mbit = |i: usize| (c1[i] - c0[i]) as f64 * 8.0 / secs / 1e6;
    let (marked, unmarked) = (mbit(0), mbit(1));
    eprintln!("marked {marked:.3} Mb/s, unmarked {unmarked:.3} Mb/s over {secs:.2} s");
    assert!(
        (2.7..=3.3).contains(&marked),
        "marked transfer got {marked:.3} Mb/s, want 3 ±10 %"
    );
    assert!(
        unmarked >= (20.0 - 3.0) * 0.8 && marked + unmarked <= 20.0 * 1.05,
        "unmarked transfer got {unmarked:.3} Mb/s, want most of the remaining 17 Mb/s"
    );
}

/// Bytes sent so far through one of visdcam's classes.
fn class_bytes(ns: &Netns, dev: &str, classid: &str) -> u64 {
    let text = ns.sh(&["tc", "-s", "class", "show", "dev", dev]);
    visdcam_core::tcplan::parse_classes(&text)
        .unwrap()
        .iter()
        .find(|c| c.classid == classid)
        .and_then(|c| c.counters)
        .unwrap_or_else(|| panic!("no counters for {classid} in\n{text}"))
        .bytes
}

/// Sends `n` bytes from namespace `a` to a receiver in `b`, with the TOS / traffic-class byte
/// `tos` (IPv4 or IPv6 by the address), and waits until all of them arrived.
fn transfer(a: &Netns, b: &Netns, ip: &str, tos: Option<u8>, n: usize) {
    let (tx, rx) = mpsc::channel();
    let (bpath, ip) = (b.path(), ip.to_string());
    let receiver = thread::spawn(move || {
        enter(&bpath);
        let l = TcpListener::bind((ip.as_str(), 0)).unwrap();
        tx.send(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        got.len()
    });
    let to = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    let apath = a.path();
    let sender = thread::spawn(move || {
        enter(&apath);
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
        if let Some(tos) = tos {
            let v = i32::from(tos);
            if to.is_ipv6() {
                setsockopt(&s, sockopt::Ipv6TClass, &v).unwrap();
            } else {
                setsockopt(&s, sockopt::Ipv4Tos, &v).unwrap();
            }
        }
        s.write_all(&vec![0xa5_u8; n]).unwrap();
    });
    sender.join().unwrap();
    assert_eq!(receiver.join().unwrap(), n);
}

#[test]
fn marked_ipv4_and_ipv6_traffic_lands_in_the_capped_class() {
    let rig = Rig::new();
    for (ns, dev, ip) in [
        (&rig.a, DEV, "fd00:213::1/64"),
        (&rig.b, "vd1", "fd00:213::2/64"),
    ] {
        ns.sh(&["ip", "-6", "addr", "add", ip, "dev", dev, "nodad"]);
    }
    // cs1 is the default mark; af11 (TOS 0x28) must follow UPLOAD_DSCP.
    for (dscp, tos) in [("cs1", 0x20), ("af11", 0x28)] {
        rig.config(&format!("UPLOAD_DSCP={dscp}\n"));
        rig.shaper_ok(&["apply", "--dev", DEV, "--rate", "20mbit"]);
        for ip in ["10.213.0.2", "fd00:213::2"] {
            let size = 300_000;
            let before = (
                class_bytes(&rig.a, DEV, "7664:10"),
                class_bytes(&rig.a, DEV, "7664:20"),
            );
            transfer(&rig.a, &rig.b, ip, Some(tos), size);
            let marked = (
                class_bytes(&rig.a, DEV, "7664:10"),
                class_bytes(&rig.a, DEV, "7664:20"),
            );
            // The payload goes through the capped class; the handshake (sent before the mark
            // is set) and little else through the default one.
            assert!(
                marked.1 - before.1 >= size as u64,
                "{dscp} {ip}: {before:?} -> {marked:?}"
            );
            assert!(
                marked.0 - before.0 < 20_000,
                "{dscp} {ip}: {before:?} -> {marked:?}"
            );
            transfer(&rig.a, &rig.b, ip, None, size);
            let unmarked = (
                class_bytes(&rig.a, DEV, "7664:10"),
                class_bytes(&rig.a, DEV, "7664:20"),
            );
            assert!(
                unmarked.0 - marked.0 >= size as u64,
                "{ip}: {marked:?} -> {unmarked:?}"
            );
            // None of the unmarked payload; at most the marked connection's last bare ACKs
            // (its TIME_WAIT keeps the mark), which can leave after `transfer` returned.
            assert!(
                unmarked.1 - marked.1 < 1_000,
                "{ip}: unmarked traffic hit the capped class: {marked:?} -> {unmarked:?}"
            );
        }
    }
    // A mark that cannot single out uploads is refused.
    rig.config("UPLOAD_DSCP=cs0\n");
    let out = rig.shaper(&["apply", "--dev", DEV]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("DSCP 0 (cs0)"), "{}", stderr(&out));
}
