//! Every fault mode, observed from the outside: stall, close-and-refuse, reboot, corrupt JPEG,
//! HTML answer, 404.

mod common;

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use camera_double::{CameraDouble, Fault, Options};
use common::{authority, get, poll_until, StreamClient};

fn start() -> CameraDouble {
    CameraDouble::start(Options {
        width: 320,
        height: 240,
        fps: 20.0,
        ..Options::default()
    })
    .expect("double starts")
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Reads until `quiet` passes with no byte; fails if bytes keep coming for `limit`.
fn drain_until_quiet(s: &TcpStream, quiet: Duration, limit: Duration) {
    s.set_read_timeout(Some(quiet)).expect("timeout");
    let end = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    loop {
        match (&*s).read(&mut buf) {
            Ok(0) => panic!("socket closed, expected it to stay open"),
            Ok(_) => assert!(Instant::now() < end, "bytes kept coming for {limit:?}"),
            Err(e) if is_timeout(&e) => return,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// Stall: the socket stays open and silent (> 1 s), even after clearing; a new connection
/// streams again once the stalled one is closed.
#[test]
fn stall_keeps_the_socket_open_and_silent() {
    let cam = start();
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream");
    c.next_part().expect("a part before the stall");
    cam.set_fault(Fault::Stall);
    // What was in flight may still arrive, then nothing.
    drain_until_quiet(
        &c.socket,
        Duration::from_millis(300),
        Duration::from_secs(3),
    );
    let served = cam.frames_served();
    c.socket
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    match (&c.socket).read(&mut byte) {
        Err(e) if is_timeout(&e) => {}
        other => panic!("stalled socket must stay open and silent, got {other:?}"),
    }
    assert_eq!(cam.frames_served(), served);
    assert_eq!(
        get(&authority(&cam.base_url()), "/status")
            .expect("status")
            .status,
        200
    );

    cam.set_fault(Fault::None);
    c.socket
        .set_read_timeout(Some(Duration::from_millis(400)))
        .expect("timeout");
    match (&c.socket).read(&mut byte) {
        Err(e) if is_timeout(&e) => {}
        other => panic!("a stalled socket stays stalled after clearing, got {other:?}"),
    }
    drop(c);
    let mut fresh = StreamClient::connect(&cam.stream_url()).expect("new stream after the stall");
    fresh.next_part().expect("new connection streams");
    // The counter moves right after the write, which the client may beat: poll.
    poll_until(Duration::from_secs(5), "frames counted again", || {
        (cam.frames_served() > served).then_some(())
    });
}

/// Close and refuse: the stream ends, both ports refuse connections for the duration, then
/// everything is back with settings kept.
#[test]
fn close_and_refuse_then_back() {
    let cam = start();
    let auth = authority(&cam.base_url());
    let stream_auth = authority(&cam.stream_url());
    assert_eq!(
        get(&auth, "/control?var=quality&val=20")
            .expect("control")
            .status,
        200
    );
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream");
    c.next_part().expect("part");

    let d = Duration::from_millis(1500);
    let t0 = Instant::now();
    cam.set_fault(Fault::CloseAndRefuse(d));
    // The stream ends: EOF or reset once the buffered bytes are read.
    c.socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 65536];
    loop {
        match (&c.socket).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("expected the stream to end, got {e}"),
        }
    }
    for a in [&auth, &stream_auth] {
        let err = TcpStream::connect(a).expect_err("refused while down");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{a}");
    }
    poll_until(Duration::from_secs(10), "port P back", || {
        TcpStream::connect(&auth).ok()
    });
    assert!(
        t0.elapsed() >= d,
        "refused for the whole {d:?}, back after {:?}",
        t0.elapsed()
    );
    poll_until(Duration::from_secs(10), "stream port back", || {
        TcpStream::connect(&stream_auth).ok()
    });
    assert_eq!(cam.fault(), Fault::None);
    assert_eq!(cam.status()["quality"], 20, "settings survive a close");
    assert_eq!(cam.reboots(), 0);
    let mut again = StreamClient::connect(&cam.stream_url()).expect("stream again");
    again.next_part().expect("parts again");
}

/// Reboot: refused for the duration, then boot settings, a fresh uptime clock and one more
/// reboot counted.
#[test]
fn reboot_resets_settings_and_uptime() {
    let t_start = Instant::now();
    let cam = start();
    let auth = authority(&cam.base_url());
    for (var, val) in [
        ("quality", "30"),
        ("framesize", "8"),
        ("aec2", "1"),
        ("vflip", "1"),
    ] {
        let r = get(&auth, &format!("/control?var={var}&val={val}")).expect("control");
        assert_eq!(r.status, 200);
    }
    assert_eq!(cam.frame_size(), (640, 480));
    let boot = camera_double::CameraDouble::start(Options {
        width: 320,
        height: 240,
        ..Options::default()
    })
    .expect("reference double")
    .status();

    let d = Duration::from_secs(1);
    cam.set_fault(Fault::Reboot(d));
    assert_eq!(cam.reboots(), 1);
    let err = TcpStream::connect(&auth).expect_err("down while rebooting");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    poll_until(Duration::from_secs(10), "camera back after reboot", || {
        get(&auth, "/status").ok()
    });
    assert_eq!(cam.status(), boot, "every setting back to boot defaults");
    assert_eq!(cam.sensor_value("vflip"), Some(0));
    assert_eq!(
        cam.frame_size(),
        (320, 240),
        "boot frame size from the options"
    );

    let r = get(&auth, "/capture").expect("capture");
    let ts: f64 = r
        .header("X-Timestamp")
        .and_then(|t| t.parse().ok())
        .expect("timestamp");
    let bound = t_start.elapsed().as_secs_f64() - d.as_secs_f64();
    assert!(ts <= bound, "uptime restarted at reboot: {ts} <= {bound}");
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream after reboot");
    let part = c.next_part().expect("part");
    assert_eq!(common::decode_jpeg(&part.body), Ok((320, 240)));
}

/// Corrupt JPEG: framing stays valid, the data does not decode; clearing brings good frames.
#[test]
fn corrupt_parts_keep_framing_but_do_not_decode() {
    let cam = start();
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream");
    let good = c.next_part().expect("part");
    assert_eq!(common::decode_jpeg(&good.body), Ok((320, 240)));
    cam.set_fault(Fault::CorruptJpeg);
    // Parts already buffered are good; the corrupt ones follow within a few parts.
    let bad = poll_until(Duration::from_secs(10), "a corrupt part", || {
        let p = c.next_part().expect("framing stays valid");
        (!p.body.starts_with(&[0xFF, 0xD8])).then_some(p)
    });
    assert_eq!(bad.header("Content-Type"), Some("image/jpeg"));
    assert!(!bad.body.is_empty());
    let err = common::decode_jpeg(&bad.body).expect_err("garbage must not decode");
    assert!(!err.is_empty());
    for _ in 0..3 {
        c.next_part().expect("framing still valid");
    }
    cam.set_fault(Fault::None);
    let ok = poll_until(Duration::from_secs(10), "a good part again", || {
        let p = c.next_part().expect("part");
        p.body.starts_with(&[0xFF, 0xD8]).then_some(p)
    });
    assert_eq!(common::decode_jpeg(&ok.body), Ok((320, 240)));
}

/// Html: `/stream` answers 200 text/html with a page; NotFound: 404. Port P is unaffected,
/// and clearing the fault brings the stream back.
#[test]
fn html_and_not_found_answers() {
    let cam = start();
    let auth = authority(&cam.base_url());
    let stream_auth = authority(&cam.stream_url());

    cam.set_fault(Fault::Html);
    let r = get(&stream_auth, "/stream").expect("stream request");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html"));
    assert!(r.text().contains("<html"), "{}", r.text());
    assert_eq!(get(&auth, "/status").expect("status").status, 200);

    cam.set_fault(Fault::NotFound);
    let r = get(&stream_auth, "/stream").expect("stream request");
    assert_eq!(r.status, 404);
    assert_eq!(get(&auth, "/status").expect("status").status, 200);

    cam.set_fault(Fault::None);
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream");
    assert_eq!(c.status, 200);
    c.next_part().expect("part");
    poll_until(Duration::from_secs(5), "a counted frame", || {
        (cam.frames_served() > 0).then_some(())
    });
}

/// Runs `souphttpsrc ! multipartdemux ! jpegdec ! fakesink` on the double until 3 decoded
/// frames reached the sink.
fn soup_pipeline(cam: &CameraDouble, timeout_s: u32) -> gstreamer::Pipeline {
    use gstreamer::prelude::*;
    gstreamer::init().expect("GStreamer");
    let desc = format!(
        "souphttpsrc location={} is-live=true do-timestamp=true timeout={timeout_s} \
         ! multipartdemux single-stream=true ! jpegdec ! fakesink name=sink sync=false",
        cam.stream_url()
    );
    let p = gstreamer::parse::launch(&desc)
        .expect("pipeline parses")
        .downcast::<gstreamer::Pipeline>()
        .expect("a pipeline");
    let decoded = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&decoded);
    p.by_name("sink")
        .and_then(|s| s.static_pad("sink"))
        .expect("fakesink pad")
        .add_probe(gstreamer::PadProbeType::BUFFER, move |_, _| {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gstreamer::PadProbeReturn::Ok
        })
        .expect("probe");
    p.set_state(gstreamer::State::Playing).expect("plays");
    poll_until(Duration::from_secs(10), "3 decoded frames", || {
        (decoded.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
    });
    p
}

/// How the pipeline ended: `Ok(())` for EOS, else every error posted within a moment of the
/// first one, as `source: message (debug)`.
fn end_of(p: &gstreamer::Pipeline) -> Result<(), Vec<String>> {
    use gstreamer::prelude::*;
    let bus = p.bus().expect("bus");
    let types = [gstreamer::MessageType::Eos, gstreamer::MessageType::Error];
    let first = bus
        .timed_pop_filtered(gstreamer::ClockTime::from_seconds(15), &types)
        .expect("EOS or error within 15 s");
    let describe = |m: &gstreamer::Message| match m.view() {
        gstreamer::MessageView::Error(e) => Some(format!(
            "{}: {} ({})",
            m.src().map(|s| s.name().to_string()).unwrap_or_default(),
            e.error(),
            e.debug().map(|d| d.to_string()).unwrap_or_default()
        )),
        _ => None,
    };
    let result = match describe(&first) {
        None => Ok(()),
        Some(e) => {
            let mut errors = vec![e];
            while let Some(m) =
                bus.timed_pop_filtered(gstreamer::ClockTime::from_mseconds(300), &types)
            {
                errors.extend(describe(&m));
            }
            Err(errors)
        }
    };
    let _ = p.set_state(gstreamer::State::Null);
    result
}

/// souphttpsrc sees what it sees from a real camera (probe-figures.md): a close is an EOS; a
/// stall longer than its `timeout` ends in an error from the source (its retry carries a Range
/// header the camera ignores).
#[test]
fn souphttpsrc_sees_eos_on_close_and_error_on_long_stall() {
    let cam = start();
    let p = soup_pipeline(&cam, 5);
    cam.set_fault(Fault::CloseAndRefuse(Duration::from_millis(500)));
    assert_eq!(end_of(&p), Ok(()), "a closed socket is an EOS");

    poll_until(Duration::from_secs(10), "back after the close", || {
        (cam.fault() == Fault::None).then_some(())
    });
    let p = soup_pipeline(&cam, 1);
    cam.set_fault(Fault::Stall);
    let errors = end_of(&p).expect_err("a long stall is an error");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("souphttpsrc") && e.to_lowercase().contains("seek")),
        "expected souphttpsrc's seek error, got {errors:?}"
    );
}
