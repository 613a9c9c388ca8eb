//! The uploader against stores that answer differently from SeaweedFS, simulated by a proxy in
//! front of the real S3 rig: an ETag that is not the MD5 (AWS with SSE-KMS/SSE-C, several
//! S3-compatible servers), and `503` with `Retry-After: 0`.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use test_rigs::s3::{md5_hex, S3Rig};
use visdcam_core::config::AddressingStyle;
use visdcam_s3::{prepare, Locations, Store, StoreConfig, Stored};

/// What the proxy changes on the way.
#[derive(Clone)]
struct Quirks {
    /// Every `ETag` header of every answer is replaced by this value.
    etag: Option<String>,
    /// The first `refuse` connections get `503 SlowDown` with this `Retry-After`.
    refuse: usize,
    retry_after: String,
}

/// A loopback proxy in front of the rig that applies [`Quirks`]; it notes when each connection
/// arrived and each request line.
struct QuirkProxy {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Instant>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl QuirkProxy {
    fn start(upstream: SocketAddr, quirks: Quirks) -> QuirkProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (conns, reqs) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let n = {
                    let mut c = conns.lock().unwrap();
                    c.push(Instant::now());
                    c.len()
                };
                if n <= quirks.refuse {
                    let head = read_head(&mut BufReader::new(client.try_clone().unwrap()));
                    if let Some(line) = head.as_deref().and_then(|h| h.lines().next()) {
                        reqs.lock().unwrap().push(line.to_string());
                    }
                    let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>\
                                <Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {}\r\n\
                         Content-Type: application/xml\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        quirks.retry_after,
                        body.len()
                    );
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let (tx, rx) = mpsc::channel();
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let reqs = reqs.clone();
                std::thread::spawn(move || {
                    let _ = forward_requests(c2, s2, &tx, &reqs);
                });
                let etag = quirks.etag.clone();
                std::thread::spawn(move || {
                    let _ = forward_answers(server, client, &rx, etag.as_deref());
                });
            }
        });
        QuirkProxy {
            addr,
            connections,
            requests,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads one HTTP head (up to and without the blank line); `None` at EOF.
fn read_head(r: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            return Some(head);
        }
        head.push_str(&line);
    }
}

fn content_length(head: &str) -> Option<u64> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
}

/// Client → server: each request head goes through unchanged (its method is passed to the
/// answer side, which needs it to know whether a body follows), then `Content-Length` body
/// bytes (after the server's `100 Continue`, which the answer side forwards).
fn forward_requests(
    client: TcpStream,
    mut server: TcpStream,
    methods: &mpsc::Sender<String>,
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut r = BufReader::new(client);
    while let Some(head) = read_head(&mut r) {
        let first = head.lines().next().unwrap_or_default().to_string();
        seen.lock().unwrap().push(first.clone());
        let _ = methods.send(first.split(' ').next().unwrap_or_default().to_string());
        server.write_all(head.as_bytes())?;
        server.write_all(b"\r\n")?;
        let n = content_length(&head).unwrap_or(0);
        io::copy(&mut (&mut r).take(n), &mut server)?;
    }
    let _ = server.shutdown(Shutdown::Write);
    Ok(())
}

/// Server → client: each answer head with its `ETag` replaced, then its body.
fn forward_answers(
    server: TcpStream,
    mut client: TcpStream,
    methods: &mpsc::Receiver<String>,
    etag: Option<&str>,
) -> io::Result<()> {
    let mut r = BufReader::new(server);
    while let Some(head) = read_head(&mut r) {
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut out = String::new();
        for line in head.lines() {
            match (line.split_once(':'), etag) {
                (Some((k, _)), Some(e)) if k.trim().eq_ignore_ascii_case("etag") => {
                    out.push_str(&format!("ETag: {e}\r\n"))
                }
                _ => {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            }
        }
        out.push_str("\r\n");
        client.write_all(out.as_bytes())?;
        if (100..200).contains(&status) {
            continue;
        }
        let method = methods
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_default();
        if method == "HEAD" || status == 204 || status == 304 {
            continue;
        }
        match content_length(&head) {
            Some(n) => {
                io::copy(&mut (&mut r).take(n), &mut client)?;
            }
            None => {
                io::copy(&mut r, &mut client)?;
                break;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}

fn direct_store(rig: &S3Rig, env: &Env) -> Store {
    Store::new(
        StoreConfig {
            endpoint: rig.endpoint(),
            bucket: rig.bucket().into(),
            style: AddressingStyle::Path,
            region: Some(rig.region().into()),
            profile: "b2".into(),
            dscp: None,
            object_lock: None,
        },
        Locations {
            credentials: vec![env.creds.clone()],
            config: vec![env.aws_config.clone()],
        },
    )
}

#[test]
fn etag_that_is_not_the_md5_stores_each_segment_once() {
    let rig = S3Rig::start();
    let proxy = QuirkProxy::start(
        rig.addr(),
        Quirks {
            etag: Some("\"abc-1\"".into()),
            refuse: 0,
            retry_after: String::new(),
        },
    );
    let mut env = Env::with_endpoint(&rig, &proxy.endpoint(), "");
    let seg = real_segment(200);
    let mut other = seg.clone();
    other.extend([0xff; 188]);
    // `stored` is already in the bucket (an earlier run uploaded it and died before deleting
    // the file): its object carries x-amz-meta-md5, and the proxy hides its MD5 ETag.
    let (t_stored, t_new) = (secs_ago(120), secs_ago(60));
    let placed = env.place(&seg, t_stored);
    let key_stored = expected_key(t_stored, chrono_tz::Asia::Kolkata);
    let key_new = expected_key(t_new, chrono_tz::Asia::Kolkata);
    let up = direct_store(&rig, &env)
        .upload(
            prepare(&placed).unwrap(),
            &key_stored,
            &[("md5", md5_hex(&seg))],
            None,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(
        up,
        Stored::Uploaded {
            key: key_stored.clone()
        }
    );
    let placed_new = env.place(&other, t_new);

    env.start();
    env.wait(30, "both segments deleted from RAM", |e| {
        e.segments_left().is_empty()
    });
    assert!(!placed.exists() && !placed_new.exists());
    assert_bucket(&rig, &[(key_stored, seg), (key_new, other)]);
    let puts: Vec<String> = proxy
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .cloned()
        .collect();
    assert_eq!(puts.len(), 1, "one PUT, for the new segment only: {puts:?}");
    let log = env.log();
    assert!(log.contains("already stored"), "{log}");
    assert!(!log.contains("-2.ts"), "{log}");
    let stats = env.stats();
    assert_eq!(stats.uploaded, 2, "{stats:?}");
    assert!(stats.last_error.is_empty(), "{stats:?}");
    env.stop();
}

#[test]
fn retry_after_zero_waits_the_backoff() {
    let rig = S3Rig::start();
    let proxy = QuirkProxy::start(
        rig.addr(),
        Quirks {
            etag: None,
            refuse: 3,
            retry_after: "0".into(),
        },
    );
    let mut env = Env::with_endpoint(&rig, &proxy.endpoint(), "");
    let seg = real_segment(200);
    let t = secs_ago(15);
    env.place(&seg, t);
    env.start();
    env.wait(60, "uploaded after three 503s", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    let seen = proxy.connections.lock().unwrap().clone();
    assert!(seen.len() >= 4, "{} connections", seen.len());
    // The transient backoff starts at 1 s with jitter down to 75 %: 0.75 s, then 1.5 s, then
    // 3 s at the least. `Retry-After: 0` must not make any retry sooner.
    let floors = [750u64, 1500, 3000];
    for (i, w) in seen.windows(2).take(3).enumerate() {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(floors[i]),
            "retry {} came {gap:?} after the 503 with Retry-After: 0; the backoff is at least \
             {} ms\n{}",
            i + 1,
            floors[i],
            env.log()
        );
    }
    env.stop();
}

/// `chattr +i` on a file (even root cannot delete it) until dropped.
struct Immutable(std::path::PathBuf);

impl Immutable {
    fn set(path: &std::path::Path) -> Immutable {
        let st = std::process::Command::new("chattr")
            .arg("+i")
            .arg(path)
            .status()
            .expect("running chattr (e2fsprogs)");
        assert!(
            st.success(),
            "chattr +i {} failed: the test needs a filesystem with the immutable flag (ext4, \
             xfs, btrfs; TMPDIR elsewhere)",
            path.display()
        );
        Immutable(path.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_segment_that_cannot_be_deleted_is_retried_with_backoff_not_in_a_loop() {
    let rig = S3Rig::start();
    let proxy = test_rigs::proxy::CountingProxy::start(rig.addr());
    let mut env = Env::with_endpoint(&rig, &proxy.endpoint(), "");
    let seg = real_segment(200);
    let t = secs_ago(20);
    let placed = env.place(&seg, t);
    let immutable = Immutable::set(&placed);
    env.start();
    env.wait(30, "the upload and the failed delete", |e| {
        e.log().contains("cannot delete")
    });
    std::thread::sleep(Duration::from_secs(3));
    let heads = proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with("HEAD "))
        .count();
    // The first attempt's HEAD, then retries after at least 0.75 s and 1.5 s.
    assert!(
        heads <= 4,
        "{heads} HEAD requests in the 3 s after a failed delete: a loop without pause\n{}",
        env.log()
    );
    assert!(env.stats().last_error.contains("cannot delete"));
    drop(immutable);
    env.wait(30, "deleted once it can be", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    let puts = proxy
        .request_lines()
        .iter()
        .filter(|l| l.starts_with("PUT "))
        .count();
    assert_eq!(puts, 1, "uploaded once");
    assert_eq!(env.stats().uploaded, 1);
    env.stop();
}
