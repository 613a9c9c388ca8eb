//! A network that goes silent must not get the uploader killed by its watchdog (issue 15,
//! item 2): the watchdog means "stuck", not "waiting on the network".
//!
//! - A black-hole store on loopback: it answers `HEAD` with 404 (no such object yet), then
//!   takes the `PUT`'s request and body and never answers. The uploader runs with a stand-in
//!   notify socket and `WATCHDOG_USEC=4000000`; `WATCHDOG=1` must keep coming at least every
//!   2 s (half of it) while the PUT hangs, STATUS= must say it is waiting for the store, and the
//!   PUT must be abandoned (15 s without an answer: `Timeouts::TRANSFER`) and retried.
//! - A DNS server that never answers: the endpoint is a name, looked up through a
//!   `resolv.conf` (bind-mounted in a private mount namespace, `unshare -m`; needs root) that
//!   points at a UDP socket on 127.0.0.2:53 which reads and never answers, with glibc told to
//!   wait 30 s × 5 attempts. The lookup is bounded (10 s), pings continue, and it is retried.
//!
//! Both are `#[ignore]`d long tests (about 40 s each); `cargo xtask ci` runs them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use test_rigs::process::ChildGuard;
use test_rigs::s3::S3Rig;

const WATCHDOG_USEC: u64 = 4_000_000;

/// Counts of what the black hole saw.
#[derive(Default)]
struct Seen {
    heads: AtomicUsize,
    puts: AtomicUsize,
}

/// A store that answers HEAD with 404 and never answers anything else; the port.
fn black_hole_store(seen: Arc<Seen>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16384];
                loop {
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    buf.drain(..end + 4);
                    if head.starts_with("HEAD ") {
                        seen.heads.fetch_add(1, Ordering::SeqCst);
                        let _ =
                            conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                        continue;
                    }
                    if head.starts_with("PUT ") {
                        seen.puts.fetch_add(1, Ordering::SeqCst);
                    }
                    // Silence: read (and drop) whatever comes, never answer.
                    while matches!(conn.read(&mut chunk), Ok(n) if n > 0) {}
                    return;
                }
            });
        }
    });
    port
}

/// The notify datagrams, with arrival times.
fn drain_notify(env: &Env, lines: &mut Vec<(Instant, String)>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = env.notify.recv(&mut buf) {
        let now = Instant::now();
        for l in String::from_utf8_lossy(&buf[..n]).lines() {
            lines.push((now, l.to_string()));
        }
    }
}

/// The longest gap between `WATCHDOG=1` datagrams from the first one to `until`.
fn longest_ping_gap(lines: &[(Instant, String)], until: Instant) -> (Duration, usize) {
    let pings: Vec<Instant> = lines
        .iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .collect();
    let mut gap = Duration::ZERO;
    for w in pings.windows(2) {
        gap = gap.max(w[1] - w[0]);
    }
    if let Some(last) = pings.last() {
        gap = gap.max(until.saturating_duration_since(*last));
    }
    (gap, pings.len())
}

/// The "no answer for N s" values of STATUS=, in order: one climb per attempt.
fn silences(lines: &[(Instant, String)]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("STATUS="))
        .filter_map(|s| {
            let n = s.split("no answer for ").nth(1)?.split(' ').next()?;
            n.parse().ok()
        })
        .collect()
}

/// Attempts seen waiting (a drop of the silence starts a new one) and the longest silence.
fn attempts(lines: &[(Instant, String)]) -> (usize, u64) {
    let v = silences(lines);
    let n = v.windows(2).filter(|w| w[1] < w[0]).count() + usize::from(!v.is_empty());
    (n, v.iter().copied().max().unwrap_or(0))
}

/// Runs `child` until `done` holds (or `secs`), collecting notify lines; asserts it lives.
fn watch(
    env: &mut Env,
    secs: u64,
    mut done: impl FnMut(&[(Instant, String)]) -> bool,
) -> (Vec<(Instant, String)>, Instant) {
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        drain_notify(env, &mut lines);
        assert!(
            !env.child.as_ref().unwrap().has_exited(),
            "the uploader exited\n{}",
            env.log()
        );
        if done(&lines) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drain_notify(env, &mut lines);
    (lines, Instant::now())
}

/// Starts `prefix… program cam1` as `Env::start` starts the uploader.
fn start_in(env: &mut Env, prefix: &[&str], program: &std::path::Path) {
    use std::process::{Command, Stdio};
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env.log_path())
        .unwrap();
    let mut cmd = Command::new(prefix[0]);
    cmd.args(&prefix[1..])
        .arg(program)
        .arg(CAMERA)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("VISDCAM_CONFIG_DIR", &env.etc)
        .env("AWS_SHARED_CREDENTIALS_FILE", &env.creds)
        .env("AWS_CONFIG_FILE", &env.aws_config)
        .env("NOTIFY_SOCKET", &env.notify_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in &env.extra_env {
        cmd.env(k, v);
    }
    env.child = Some(ChildGuard::spawn("uploader", cmd).unwrap());
}

fn stop_quickly(env: &mut Env) -> Duration {
    let t = Instant::now();
    let mut c: ChildGuard = env.child.take().unwrap();
    let st = c.stop(Duration::from_secs(10)).unwrap();
    assert!(st.success(), "uploader exited with {st}\n{}", env.log());
    t.elapsed()
}

#[test]
#[ignore = "takes 40 s (waits out the store's read timeout twice): cargo xtask ci runs it; by hand: cargo test -p uploader --test watchdog -- --ignored"]
fn a_silent_store_is_waited_for_with_pings_then_abandoned_and_retried() {
    let rig = S3Rig::start();
    let seen = Arc::new(Seen::default());
    let port = black_hole_store(seen.clone());
    let mut env = Env::with_endpoint(&rig, &format!("http://127.0.0.1:{port}"), "");
    env.extra_env
        .push(("WATCHDOG_USEC".into(), WATCHDOG_USEC.to_string()));
    let seg = env.place(&real_segment(2000), secs_ago(30));
    env.start();
    let t0 = Instant::now();
    // A third attempt waiting: two were abandoned after 15 s of silence and retried.
    let (lines, until) = watch(&mut env, 60, |l| attempts(l).0 >= 3);
    let (tries, longest) = attempts(&lines);
    let took = t0.elapsed();
    let (gap, pings) = longest_ping_gap(&lines, until);
    let waiting = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("STATUS="))
        .filter(|s| s.contains("waiting for the store"))
        .count();
    let last_waiting = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("STATUS="))
        .rfind(|s| s.contains("waiting for the store"))
        .map(str::to_string);
    let log = env.log();
    eprintln!(
        "{} s: {} HEAD, {} PUT, {tries} attempts seen waiting (longest silence {longest} s); \
         {pings} pings, longest gap {:.2} s; {} STATUS lines waiting, last: {last_waiting:?}",
        took.as_secs(),
        seen.heads.load(Ordering::SeqCst),
        seen.puts.load(Ordering::SeqCst),
        gap.as_secs_f64(),
        waiting
    );
    assert!(
        tries >= 3 && seen.puts.load(Ordering::SeqCst) >= 3,
        "the silent PUT was not retried twice within 60 s\n{log}"
    );
    assert!(
        longest <= 16,
        "a silence of {longest} s: the read timeout is 15 s\n{log}"
    );
    assert!(
        log.contains("upload failed: PUT") && log.contains("timeout"),
        "the PUT was abandoned on its timeout\n{log}"
    );
    assert!(
        pings as u64 >= took.as_secs() * 2 / 5,
        "{pings} pings in {} s",
        took.as_secs()
    );
    assert!(
        gap <= Duration::from_micros(WATCHDOG_USEC / 2) + Duration::from_millis(500),
        "a {:.2} s gap between watchdog pings (WATCHDOG_USEC/2 = {} s)\n{log}",
        gap.as_secs_f64(),
        WATCHDOG_USEC / 2_000_000
    );
    let status = last_waiting.expect("STATUS= said it waits for the store");
    assert!(
        status.contains("uploading seg-") && status.contains("no answer for"),
        "{status}"
    );
    // Nothing was lost or counted as uploaded; SIGTERM is prompt even mid-wait.
    assert!(seg.exists());
    assert_eq!(env.stats().uploaded, 0);
    let stop = stop_quickly(&mut env);
    assert!(stop < Duration::from_secs(3), "stopping took {stop:?}");
}

#[test]
#[ignore = "takes 30 s and needs root (unshare -m, a UDP socket on 127.0.0.2:53): cargo xtask ci runs it; by hand: sudo cargo test -p uploader --test watchdog -- --ignored"]
fn a_silent_dns_server_is_waited_for_with_pings_then_retried() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test bind-mounts a resolv.conf in a mount namespace and needs root"
    );
    // A DNS server that reads every query and never answers.
    let dns = UdpSocket::bind("127.0.0.2:53").expect("binding 127.0.0.2:53");
    let queries = Arc::new(AtomicUsize::new(0));
    {
        let q = queries.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while dns.recv_from(&mut buf).is_ok() {
                q.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let rig = S3Rig::start();
    let mut env = Env::with_endpoint(&rig, "http://store.visdcam-test.example:9000", "");
    let resolv = env.tmp.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "nameserver 127.0.0.2\noptions timeout:30 attempts:5\n",
    )
    .unwrap();
    env.extra_env
        .push(("WATCHDOG_USEC".into(), WATCHDOG_USEC.to_string()));
    let seg = env.place(&real_segment(500), secs_ago(30));
    // The uploader in a private mount namespace whose /etc/resolv.conf is ours.
    let wrapper = env.tmp.path().join("uploader-in-ns");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nmount --bind {} /etc/resolv.conf || exit 99\nexec {} \"$@\"\n",
            resolv.display(),
            env!("CARGO_BIN_EXE_uploader")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    start_in(
        &mut env,
        &["unshare", "-m", "--propagation", "private"],
        &wrapper,
    );
    let t0 = Instant::now();
    // A third attempt waiting: two lookups were cut at 10 s and retried.
    let (lines, until) = watch(&mut env, 60, |l| attempts(l).0 >= 3);
    let (tries, longest) = attempts(&lines);
    let took = t0.elapsed();
    let (gap, pings) = longest_ping_gap(&lines, until);
    let log = env.log();
    let last_waiting = lines
        .iter()
        .filter_map(|(_, l)| l.strip_prefix("STATUS="))
        .rfind(|s| s.contains("waiting for the store"))
        .map(str::to_string);
    eprintln!(
        "{} s: {} DNS queries, {tries} attempts seen waiting (longest silence {longest} s); \
         {pings} pings, longest gap {:.2} s; last waiting STATUS: {last_waiting:?}",
        took.as_secs(),
        queries.load(Ordering::SeqCst),
        gap.as_secs_f64()
    );
    assert!(
        queries.load(Ordering::SeqCst) >= 1,
        "no DNS query reached the black hole\n{log}"
    );
    assert!(
        tries >= 3,
        "two lookups cut at their bound and retried\n{log}"
    );
    assert!(
        longest <= 11,
        "a silence of {longest} s: the lookup bound is 10 s\n{log}"
    );
    assert!(
        log.contains("upload failed: HEAD: timeout: resolve"),
        "the lookup was cut by its bound\n{log}"
    );
    assert!(
        took < Duration::from_secs(40),
        "two bounded lookups took {took:?}"
    );
    assert!(
        gap <= Duration::from_micros(WATCHDOG_USEC / 2) + Duration::from_millis(500),
        "a {:.2} s gap between watchdog pings\n{log}",
        gap.as_secs_f64()
    );
    assert!(
        last_waiting.is_some(),
        "STATUS= said it waits for the store"
    );
    assert!(seg.exists());
    let stop = stop_quickly(&mut env);
    assert!(stop < Duration::from_secs(3), "stopping took {stop:?}");
}
