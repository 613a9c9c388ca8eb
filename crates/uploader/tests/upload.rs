//! The uploader binary against a real S3 server (SeaweedFS) with real MPEG-TS segments: keys,
//! bytes, deletion, and each fault on its own.

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::*;
use test_rigs::s3::S3Rig;

#[test]
fn five_segments_land_with_ist_keys_and_leave_ram() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let seg = real_segment(300);
    let mut expect = Vec::new();
    for i in 0..5u64 {
        let mtime = secs_ago(3600 - i * 7);
        // Different bytes per segment, so a mix-up would show.
        let mut bytes = seg.clone();
        bytes.extend(std::iter::repeat_n(0xffu8, 188 * i as usize));
        env.place(&bytes, mtime);
        expect.push((expected_key(mtime, chrono_tz::Asia::Kolkata), bytes));
    }
    env.start();
    env.wait(60, "all 5 uploaded", |e| e.segments_left().is_empty());
    assert_bucket(&rig, &expect);
    let stats = env.stats();
    assert_eq!(stats.uploaded, 5);
    assert_eq!(
        stats.last_key, expect[4].0,
        "oldest first, so the newest is last"
    );
    assert!(stats.last_error.is_empty());
    env.wait(10, "STATUS with the last key", |e| {
        e.status().contains(&expect[4].0)
    });
    env.stop();
}

#[test]
fn dst_zone_repeated_hour_gets_two_keys() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "KEY_TZ=Europe/Berlin\n");
    let seg = real_segment(200);
    // 2025-10-26 02:30 local happens twice in Berlin: 00:30Z (CEST) and 01:30Z (CET).
    let first = SystemTime::UNIX_EPOCH + Duration::from_secs(1_761_438_600);
    let second = first + Duration::from_secs(3600);
    let mut other = seg.clone();
    other.push(0);
    env.place(&seg, first);
    env.place(&other, second);
    env.start();
    env.wait(60, "both uploaded", |e| e.segments_left().is_empty());
    assert_bucket(
        &rig,
        &[
            (
                "cam1/2025/10/26/02/cam_1_2025_10_26_02_30_00.ts".into(),
                seg,
            ),
            (
                "cam1/2025/10/26/02/cam_1_2025_10_26_02_30_00_CET.ts".into(),
                other,
            ),
        ],
    );
    env.stop();
}

#[test]
fn same_second_segments_get_distinct_keys() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let seg = real_segment(200);
    let t = secs_ago(100);
    let mut other = seg.clone();
    other.extend([0xff; 188]);
    env.place(&seg, t);
    env.place(&other, t);
    env.start();
    env.wait(60, "both uploaded", |e| e.segments_left().is_empty());
    let k = expected_key(t, chrono_tz::Asia::Kolkata);
    let k2 = k.replace(".ts", "-2.ts");
    let listed: Vec<String> = rig.list_objects().into_iter().map(|(k, _)| k).collect();
    let mut want_keys = vec![k.clone(), k2.clone()];
    want_keys.sort();
    assert_eq!(listed, want_keys);
    let mut got = [rig.get_object(&k), rig.get_object(&k2)];
    got.sort();
    let mut want = [seg, other];
    want.sort();
    assert_eq!(got, want);
    env.stop();
}

#[test]
fn server_down_at_start_then_up() {
    let mut rig = S3Rig::start();
    rig.stop();
    let mut env = Env::new(&rig, "");
    let seg = real_segment(200);
    let t = secs_ago(50);
    env.place(&seg, t);
    env.start();
    env.wait(30, "an error in the counters", |e| {
        !e.stats().last_error.is_empty()
    });
    assert_eq!(env.segments_left().len(), 1, "kept while the store is down");
    assert!(env.status().contains("error:"), "{}", env.status);
    rig.start_again();
    env.wait(90, "uploaded after the store came back", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    assert!(env.stats().last_error.is_empty());
    env.stop();
}

#[test]
fn server_killed_mid_put() {
    let mut rig = S3Rig::start();
    // ~500 KiB at 64 KiB/s: about 8 s of body.
    let mut env = Env::new(&rig, "RATE_KBPS=64\n");
    let seg = real_segment(2000);
    assert!(seg.len() > 400 * 1024, "{}", seg.len());
    let t = secs_ago(40);
    env.place(&seg, t);
    env.start();
    env.wait(30, "a third of the body sent", |e| {
        let s = e.stats();
        s.uploading_size > 0 && s.uploading_sent * 3 > s.uploading_size
    });
    rig.stop();
    env.wait(60, "the cut noticed", |e| !e.stats().last_error.is_empty());
    assert_eq!(env.segments_left().len(), 1);
    rig.start_again();
    assert!(
        rig.list_objects().is_empty(),
        "no partial object after the cut"
    );
    env.wait(120, "uploaded after restart", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    env.stop();
}

#[test]
fn uploader_kill9_mid_put_then_restart() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "RATE_KBPS=64\n");
    let seg = real_segment(2000);
    let t = secs_ago(30);
    env.place(&seg, t);
    env.start();
    env.wait(30, "a third of the body sent", |e| {
        let s = e.stats();
        s.uploading_size > 0 && s.uploading_sent * 3 > s.uploading_size
    });
    env.child.as_mut().unwrap().kill();
    env.child = None;
    assert_eq!(env.segments_left().len(), 1);
    assert!(rig.list_objects().is_empty(), "no partial object");
    // Restart without the cap.
    let conf = env.etc.join("visdcam.conf");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("RATE_KBPS=64\n", "");
    std::fs::write(&conf, text).unwrap();
    env.start();
    env.wait(60, "uploaded by the new process", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    env.stop();
}

#[test]
fn wrong_secret_keeps_file_then_fixed_credentials_upload() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let good = std::fs::read_to_string(&env.creds).unwrap();
    std::fs::write(
        &env.creds,
        format!(
            "[b2]\naws_access_key_id = {}\naws_secret_access_key = wrongwrongwrong\n",
            rig.access_key()
        ),
    )
    .unwrap();
    let seg = real_segment(200);
    let t = secs_ago(20);
    env.place(&seg, t);
    env.start();
    env.wait(30, "a 403 in the counters", |e| {
        e.stats().last_error.contains("403")
    });
    env.wait(10, "STATUS says why", |e| e.status().contains("403"));
    assert_eq!(env.segments_left().len(), 1, "nothing deleted");
    assert!(rig.list_objects().is_empty());
    assert!(
        !env.log().contains("wrongwrongwrong"),
        "the secret is never logged"
    );
    std::fs::write(&env.creds, good).unwrap();
    env.wait(30, "uploaded with fixed credentials", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    env.stop();
}

#[test]
fn missing_bucket_keeps_file_until_created() {
    let rig = S3Rig::start();
    rig.delete_bucket(rig.bucket());
    let mut env = Env::new(&rig, "");
    let seg = real_segment(200);
    let t = secs_ago(25);
    env.place(&seg, t);
    env.start();
    env.wait(30, "a 404 in the counters", |e| {
        e.stats().last_error.contains("404")
    });
    assert!(env.status().contains("B2_BUCKET"), "{}", env.status);
    assert_eq!(env.segments_left().len(), 1);
    rig.create_bucket(rig.bucket());
    env.wait(60, "uploaded once the bucket exists", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    env.stop();
}

#[test]
fn ram_budget_drops_oldest_when_store_down() {
    let mut rig = S3Rig::start();
    rig.stop();
    // Budget 1 MiB; segments of ~300 KiB: three fit, a fourth does not.
    let mut env = Env::new(&rig, "RAM_BUDGET_MB=1\nRAM_MIN_FREE_MB=0\n");
    let seg = real_segment(1200);
    assert!(
        seg.len() * 3 <= 1 << 20 && seg.len() * 4 > 1 << 20,
        "{}",
        seg.len()
    );
    env.start();
    let mut names = Vec::new();
    for i in 0..3u64 {
        names.push(env.place(&seg, secs_ago(300 - i)));
    }
    env.wait(30, "three queued", |e| e.stats().queue == 3);
    assert_eq!(env.stats().dropped, 0);
    names.push(env.place(&seg, secs_ago(200)));
    env.wait(30, "one dropped", |e| e.stats().dropped == 1);
    assert!(!names[0].exists(), "the oldest was dropped");
    for n in &names[1..] {
        assert!(n.exists(), "{} kept", n.display());
    }
    let stats = env.stats();
    assert_eq!(stats.dropped_bytes, seg.len() as u64);
    assert_eq!(stats.queue, 3);
    assert!(env.log().contains(&format!(
        "dropped {}",
        names[0].file_name().unwrap().to_string_lossy()
    )));
    env.wait(10, "STATUS counts the drop", |e| {
        e.status().contains("dropped 1")
    });
    env.stop();
}

#[test]
fn symlinks_fifos_dirs_and_foreign_names_are_never_uploaded() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let outside = env.tmp.path().join("secret.ts");
    std::fs::write(&outside, b"not a segment").unwrap();
    let link = env.camdir.join("seg-1700000000000-aaaa.ts");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    nix::unistd::mkfifo(
        &env.camdir.join("seg-1700000001000-bbbb.ts"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::fs::create_dir(env.camdir.join("seg-1700000002000-cccc.ts")).unwrap();
    std::fs::write(env.camdir.join("home-cam-1-00001.ts"), b"old style").unwrap();
    std::fs::write(
        env.camdir.join("seg-1700000003000-dddd.ts.part"),
        b"partial",
    )
    .unwrap();
    let seg = real_segment(200);
    let t = secs_ago(10);
    let real = env.place(&seg, t);
    env.start();
    env.wait(60, "the real segment uploaded", |_| !real.exists());
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    assert!(
        std::fs::symlink_metadata(&link).is_ok(),
        "symlink left alone"
    );
    assert_eq!(std::fs::read(&outside).unwrap(), b"not a segment");
    let log = env.log();
    assert_eq!(
        log.matches("seg-1700000000000-aaaa.ts").count(),
        1,
        "logged once:\n{log}"
    );
    assert!(log.contains("home-cam-1-00001.ts"));
    assert!(!log.contains("dddd.ts.part"), "partials are not foreign");
    env.stop();
}

/// A proxy in front of the real store that answers `503 SlowDown` with `Retry-After` to the
/// first `refuse` connections, then forwards bytes both ways.
struct SlowDownProxy {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
}

impl SlowDownProxy {
    fn start(upstream: std::net::SocketAddr, refuse: usize, retry_after: u64) -> SlowDownProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                let n = {
                    let mut s = seen2.lock().unwrap();
                    s.push(Instant::now());
                    s.len()
                };
                if n <= refuse {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && client.read(&mut b).unwrap_or(0) == 1 {
                        head.push(b[0]);
                    }
                    let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                    let _ = write!(
                        client,
                        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: {retry_after}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c2, &mut s2);
                    let _ = s2.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let (mut s, mut c) = (server, client);
                    let _ = std::io::copy(&mut s, &mut c);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        SlowDownProxy { port, seen }
    }
}

#[test]
fn slowdown_503_honours_retry_after() {
    let rig = S3Rig::start();
    let proxy = SlowDownProxy::start(rig.addr(), 2, 3);
    let mut env = Env::with_endpoint(&rig, &format!("http://127.0.0.1:{}", proxy.port), "");
    let seg = real_segment(200);
    let t = secs_ago(15);
    env.place(&seg, t);
    env.start();
    env.wait(60, "uploaded through the proxy", |e| {
        e.segments_left().is_empty()
    });
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), seg)]);
    let seen = proxy.seen.lock().unwrap().clone();
    assert!(seen.len() >= 3, "{} connections", seen.len());
    for w in seen.windows(2).take(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(2900),
            "retried after {gap:?}, Retry-After said 3 s"
        );
    }
    // The first request of an upload is a HEAD, whose 503 has no body (so no `SlowDown` code).
    assert!(env.log().contains("HTTP 503"), "{}", env.log());
    env.stop();
}

#[test]
#[ignore = "takes 31 s (RATE_KBPS accuracy): cargo xtask ci runs it; by hand: cargo test -p uploader --test upload -- --ignored"]
fn rate_cap_100_kibps_on_3_mib_takes_30_s() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "RATE_KBPS=100\n");
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let t = secs_ago(5);
    env.place(&body, t);
    let started = Instant::now();
    env.start();
    env.wait(120, "uploaded", |e| e.segments_left().is_empty());
    let took = started.elapsed().as_secs_f64();
    let expect = 3.0 * 1024.0 / 100.0;
    assert!(
        (took / expect - 1.0).abs() <= 0.05,
        "took {took:.2} s, expected {expect:.2} s ±5 %"
    );
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), body)]);
    env.stop();
}
