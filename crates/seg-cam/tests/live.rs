//! The live feed of the real `seg-cam` recording the camera double: the camera's JPEGs on the
//! unix socket as received, the last frame at once to a new client (also while the camera is
//! down), clients that resume by themselves, and a client that stops reading dropped without
//! slowing the recording or the other clients and without memory growth.

mod common;

use std::io::{ErrorKind, Read};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use camera_double::Fault;
use common::{probe_clean, Rig};
use test_rigs::process::wait_until;
use visdcam_core::live::{FrameHeader, HEADER_LEN};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Reads one frame (header and JPEG); `None` on timeout or EOF.
fn read_frame(s: &mut UnixStream) -> Option<(FrameHeader, Vec<u8>)> {
    let mut h = [0u8; HEADER_LEN];
    s.read_exact(&mut h).ok()?;
    let header = FrameHeader::decode(&h).expect("a valid header");
    let mut jpeg = vec![0u8; header.len as usize];
    s.read_exact(&mut jpeg).ok()?;
    Some((header, jpeg))
}

fn connect(rig: &Rig) -> UnixStream {
    let path = rig.live_socket();
    wait_until(Instant::now() + Duration::from_secs(20), || path.exists())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let s = UnixStream::connect(&path).expect("connecting to the live socket");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

fn assert_jpeg(jpeg: &[u8]) {
    assert!(jpeg.len() > 1000, "a {} byte frame", jpeg.len());
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "starts with SOI");
    assert_eq!(&jpeg[jpeg.len() - 2..], &[0xFF, 0xD9], "ends with EOI");
}

/// Frames received in `window`, each checked.
fn count_for(s: &mut UnixStream, window: Duration) -> usize {
    let end = Instant::now() + window;
    let mut n = 0;
    while Instant::now() < end {
        let (h, jpeg) = read_frame(s).expect("a frame within 10 s");
        assert_jpeg(&jpeg);
        assert_eq!(h.len as usize, jpeg.len());
        n += 1;
    }
    n
}

#[test]
fn the_live_socket_carries_the_cameras_jpegs_and_gives_the_last_one_while_the_camera_is_down() {
    let mut rig = Rig::new("");
    rig.start();
    let mut viewer = connect(&rig);
    // The double sends 10 fps: 50 frames in 5 s, within 10 %.
    let (h, jpeg) = read_frame(&mut viewer).expect("a first frame");
    assert_jpeg(&jpeg);
    assert!(now_ms().abs_diff(h.wall_ms) < 2000, "arrival time is now");
    let n = count_for(&mut viewer, Duration::from_secs(5));
    assert!((45..=55).contains(&n), "{n} frames in 5 s at 10 fps");

    // A new client gets the last frame at once.
    let t = Instant::now();
    let mut snap = connect(&rig);
    let (_, jpeg) = read_frame(&mut snap).expect("the last frame");
    assert_jpeg(&jpeg);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    drop(snap);

    // Camera down: no new frames, but a new client still gets the last one, with its age.
    rig.cam.set_fault(Fault::Stall);
    let down = now_ms();
    viewer
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // Drain what was sent before the stall, then nothing comes.
    let mut last_ms = 0;
    let quiet = wait_until(
        Instant::now() + Duration::from_secs(10),
        || match read_frame(&mut viewer) {
            Some((h, _)) => {
                last_ms = h.wall_ms;
                false
            }
            None => true,
        },
    );
    assert!(quiet.is_ok(), "frames stop while the camera is down");
    std::thread::sleep(Duration::from_secs(2)); // the frame's age below must be real
    let mut snap = connect(&rig);
    let (h, jpeg) = read_frame(&mut snap).expect("the last frame while the camera is down");
    assert_jpeg(&jpeg);
    assert!(
        h.wall_ms <= down + 500,
        "the last frame is from before the stall"
    );
    assert!(now_ms() - h.wall_ms >= 2000, "its age shows");
    drop(snap);

    // The camera comes back: the same client gets frames again without reconnecting.
    rig.cam.set_fault(Fault::None);
    viewer
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (h, jpeg) = read_frame(&mut viewer).expect("frames again after the camera is back");
    assert_jpeg(&jpeg);
    assert!(h.wall_ms > last_ms, "a new frame");
    let n = count_for(&mut viewer, Duration::from_secs(3));
    assert!((25..=35).contains(&n), "{n} frames in 3 s after recovery");
    assert!(rig.running());
    assert_eq!(rig.stop().code(), Some(0));
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_slows_nothing() {
    let mut rig = Rig::new("");
    rig.start();
    let mut reader = connect(&rig);
    read_frame(&mut reader).expect("a first frame");
    // A client that never reads, and five more that connect and leave at once, repeatedly.
    let stuck = connect(&rig);
    let pid = rig.pid();
    let started = Instant::now();
    let mut frames = 0;
    // Memory once warmed up (x264's lookahead, the first segments, the stuck client's
    // socket buffer full), then its peak while the stuck client is held and after its drop.
    let mut rss_start = None;
    let mut rss_max = 0;
    while started.elapsed() < seg_cam_stuck_limit() + Duration::from_secs(6) {
        frames += count_for(&mut reader, Duration::from_secs(1));
        for _ in 0..5 {
            drop(connect(&rig));
        }
        let rss = rss_kib(pid);
        if started.elapsed() >= Duration::from_secs(6) {
            rss_start.get_or_insert(rss);
            rss_max = rss_max.max(rss);
        }
    }
    let rss_start = rss_start.expect("sampled");
    let secs = started.elapsed().as_secs_f64();
    let rate = frames as f64 / secs;
    eprintln!("reading client: {frames} frames in {secs:.1} s ({rate:.2} fps)");
    assert!(
        (9.0..=11.0).contains(&rate),
        "{frames} frames in {secs:.1} s for the reading client ({rate:.2} fps)"
    );
    // The stuck client was dropped: after what the socket buffer held, EOF.
    let mut stuck = stuck;
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let eof = loop {
        match stuck.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    assert!(eof, "the client that stopped reading was dropped");
    eprintln!("seg-cam RSS: {rss_start} KiB warmed up, {rss_max} KiB at most after");
    assert!(
        rss_max <= rss_start + 2048,
        "seg-cam's RSS grew from {rss_start} KiB to {rss_max} KiB"
    );
    // The recording: every full 4 s segment holds 10 frames a second, within 5 %.
    let finals = rig.finals();
    assert!(finals.len() >= 4, "{finals:?}");
    for p in &finals[1..finals.len() - 1] {
        let pr = probe_clean(p);
        let expected = pr.duration * 10.0;
        assert!(
            (pr.frames as f64 - expected).abs() <= expected * 0.05,
            "{}: {} frames for {} s",
            p.display(),
            pr.frames,
            pr.duration
        );
    }
    assert_eq!(rig.stop().code(), Some(0));
}

/// seg-cam drops a client that has not taken a frame for 20 s (`live::STUCK_LIMIT`).
fn seg_cam_stuck_limit() -> Duration {
    Duration::from_secs(20)
}
