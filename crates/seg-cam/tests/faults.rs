//! Camera faults injected mid-segment into the camera double while the real `seg-cam`
//! records: every closed segment stays decodable, STATUS= names the fault, and recording
//! resumes within the announced backoff + 2 s of the camera recovering, in the same process.

mod common;

use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault};
use common::{assert_all_decodable, start_ms, Rig};
use test_rigs::process::wait_until;

/// Records until a segment is well under way, then `inject`s; waits until STATUS= shows
/// `first`, and then a retry under the fault that shows `retry`; `recover`s and checks the
/// recorder is recording again within backoff + 2 s and writes a new segment.
fn fault_case(inject: impl FnOnce(&CameraDouble), first: &str, retry: &str) {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_finals(1, Duration::from_secs(30));
    rig.wait_partial(20_000, Duration::from_secs(20));
    let pid = rig.pid();

    let t_inject = Instant::now();
    inject(&rig.cam);
    let (t_first, _) = rig
        .notify
        .wait_status(t_inject, Duration::from_secs(15), |s| s.contains(first))
        .unwrap_or_else(|| panic!("STATUS never said `{first}`"));
    // The loop tries again under the fault and says why it failed.
    let (t_conn, _) = rig
        .notify
        .wait_status(t_first, Duration::from_secs(15), |s| {
            s.starts_with("connecting")
        })
        .expect("a reconnect attempt");
    rig.notify
        .wait_status(t_conn, Duration::from_secs(15), |s| {
            s.contains(retry) && s.contains("retry in")
        })
        .unwrap_or_else(|| panic!("STATUS never said `{retry}, retry in`"));

    rig.cam.set_fault(Fault::None);
    let t_recover = Instant::now();
    let recover_wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (t_rec, _) = rig
        .notify
        .wait_status(t_recover, Duration::from_secs(40), |s| {
            s.starts_with("recording")
        })
        .expect("recording again");
    let backoff = rig.notify.backoff_at(t_recover);
    assert!(
        t_rec - t_recover <= backoff + Duration::from_secs(2),
        "recording again {:?} after recovery, backoff was {backoff:?}",
        t_rec - t_recover
    );
    // A new segment, started after the recovery, is closed.
    wait_until(Instant::now() + Duration::from_secs(20), || {
        rig.finals().iter().any(|p| start_ms(p) >= recover_wall)
    })
    .expect("a segment recorded after the recovery");
    assert!(rig.running(), "no process restart");
    assert_eq!(rig.pid(), pid);
    assert_eq!(rig.notify.count("READY=1"), 1, "READY=1 once");
    assert_eq!(rig.stop().code(), Some(0));
    assert!(rig.partials().is_empty(), "{:?}", rig.partials());
    assert_all_decodable(&rig.dir);
}

#[test]
fn camera_closes_the_socket_then_refuses() {
    fault_case(
        |c| c.set_fault(Fault::CloseAndRefuse(Duration::from_secs(60))),
        "camera closed the stream",
        "camera unreachable (connection refused)",
    );
}

#[test]
fn camera_reboots() {
    fault_case(
        |c| c.set_fault(Fault::Reboot(Duration::from_secs(60))),
        "camera closed the stream",
        "camera unreachable (connection refused)",
    );
}

#[test]
fn camera_answers_404() {
    fault_case(
        |c| {
            // Cut the running stream; new requests get 404.
            c.set_fault(Fault::CloseAndRefuse(Duration::from_secs(60)));
            c.set_fault(Fault::NotFound);
        },
        "camera answered HTTP 404 Not Found",
        "camera answered HTTP 404 Not Found",
    );
}

#[test]
fn camera_answers_html() {
    fault_case(
        |c| {
            c.set_fault(Fault::CloseAndRefuse(Duration::from_secs(60)));
            c.set_fault(Fault::Html);
        },
        "camera sent text/html instead of an MJPEG stream",
        "camera sent text/html instead of an MJPEG stream",
    );
}

#[test]
fn camera_sends_only_corrupt_jpeg() {
    fault_case(
        |c| c.set_fault(Fault::CorruptJpeg),
        "camera sends corrupt JPEG frames (none decoded for 5 s)",
        "corrupt JPEG",
    );
}

#[test]
fn camera_unreachable_at_start() {
    let mut rig = Rig::new("");
    rig.cam
        .set_fault(Fault::CloseAndRefuse(Duration::from_secs(60)));
    rig.start();
    let t0 = Instant::now();
    rig.notify
        .wait_status(t0, Duration::from_secs(20), |s| {
            s.starts_with("camera unreachable (connection refused), retry in")
        })
        .expect("STATUS says unreachable");
    assert_eq!(
        rig.notify.count("READY=1"),
        1,
        "ready while the camera is down"
    );
    rig.cam.set_fault(Fault::None);
    let t_recover = Instant::now();
    let (t_rec, _) = rig
        .notify
        .wait_status(t_recover, Duration::from_secs(40), |s| {
            s.starts_with("recording")
        })
        .expect("recording once the camera is up");
    let backoff = rig.notify.backoff_at(t_recover);
    assert!(t_rec - t_recover <= backoff + Duration::from_secs(2));
    rig.wait_finals(1, Duration::from_secs(20));
    assert_eq!(rig.stop().code(), Some(0));
    assert_all_decodable(&rig.dir);
}

#[test]
fn a_few_corrupt_frames_are_skipped_without_reconnecting() {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_finals(1, Duration::from_secs(30));
    rig.wait_partial(20_000, Duration::from_secs(20));
    let conns = rig.cam.stream_connections();
    let t0 = Instant::now();
    rig.cam.set_fault(Fault::CorruptJpeg);
    let served = rig.cam.frames_served();
    wait_until(t0 + Duration::from_secs(10), || {
        rig.cam.frames_served() >= served + 15
    })
    .expect("corrupt frames served");
    rig.cam.set_fault(Fault::None);
    let n = rig.finals().len();
    rig.wait_finals(n + 2, Duration::from_secs(20));
    assert_eq!(rig.cam.stream_connections(), conns, "no reconnect");
    assert!(
        rig.notify
            .statuses()
            .iter()
            .filter(|(t, _)| *t >= t0)
            .all(|(_, s)| s.starts_with("recording")),
        "never left recording"
    );
    assert_eq!(rig.stop().code(), Some(0));
    assert_all_decodable(&rig.dir);
}

/// Stall timeout 5 s (the default): a camera that stops sending with the socket open is
/// detected within 5 s (+1 s for the loop's tick and the drain), and recording resumes after
/// the first backoff (≤ 1 s) + 2 s.
#[test]
fn stall_with_the_socket_open_is_detected_within_the_stall_timeout() {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_finals(1, Duration::from_secs(30));
    rig.wait_partial(20_000, Duration::from_secs(20));
    let pid = rig.pid();
    rig.cam.set_fault(Fault::Stall);
    // The socket that stalled stays stalled; new connections stream again.
    // Stalled: no frame served for 5 frame intervals.
    let (mut last, mut since) = (rig.cam.frames_served(), Instant::now());
    wait_until(Instant::now() + Duration::from_secs(5), || {
        let now = rig.cam.frames_served();
        if now != last {
            (last, since) = (now, Instant::now());
        }
        since.elapsed() >= Duration::from_millis(500)
    })
    .expect("the stream stalls");
    let t_stall = since;
    rig.cam.set_fault(Fault::None);
    let (t_seen, _) = rig
        .notify
        .wait_status(t_stall, Duration::from_secs(15), |s| {
            s.contains("camera stalled (no frame for 5 s)")
        })
        .expect("STATUS says stalled");
    assert!(
        t_seen - t_stall <= Duration::from_secs(6),
        "stall seen after {:?}",
        t_seen - t_stall
    );
    let (t_rec, _) = rig
        .notify
        .wait_status(t_seen, Duration::from_secs(15), |s| {
            s.starts_with("recording")
        })
        .expect("recording again");
    assert!(
        t_rec - t_stall <= Duration::from_secs(5 + 1 + 1 + 2),
        "recording again {:?} after the stall",
        t_rec - t_stall
    );
    let n = rig.finals().len();
    rig.wait_finals(n + 1, Duration::from_secs(20));
    assert_eq!(rig.pid(), pid);
    assert_eq!(rig.stop().code(), Some(0));
    assert_all_decodable(&rig.dir);
}
