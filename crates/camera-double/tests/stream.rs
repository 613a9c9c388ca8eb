//! The `/stream` port: a real GStreamer client, the firmware's bytes on the wire, one viewer at
//! a time, and port P staying usable meanwhile.

mod common;

use std::io::Read;
use std::time::Duration;

use camera_double::{CameraDouble, Options};
use common::{authority, get, poll_until, StreamClient, BOUNDARY};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

fn start(width: u32, height: u32, fps: f64) -> CameraDouble {
    CameraDouble::start(Options {
        width,
        height,
        fps,
        ..Options::default()
    })
    .expect("double starts")
}

fn caps_size(sample: &gst::Sample) -> (i32, i32) {
    let s = sample
        .caps()
        .and_then(|c| c.structure(0).map(|s| s.to_owned()))
        .expect("caps");
    (
        s.get("width").expect("width"),
        s.get("height").expect("height"),
    )
}

/// souphttpsrc ! multipartdemux ! jpegdec decodes the stream at the configured size, and a
/// `framesize` change shows up in the decoded frames.
#[test]
fn gstreamer_decodes_the_stream_and_follows_framesize() {
    let cam = start(640, 480, 25.0);
    gst::init().expect("GStreamer");
    let desc = format!(
        "souphttpsrc location={} is-live=true do-timestamp=true timeout=5 \
         ! multipartdemux single-stream=true ! jpegdec ! appsink name=sink sync=false",
        cam.stream_url()
    );
    let pipeline = gst::parse::launch(&desc)
        .expect("pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .expect("appsink");
    pipeline.set_state(gst::State::Playing).expect("plays");
    let pull = || {
        sink.try_pull_sample(gst::ClockTime::from_seconds(10))
            .unwrap_or_else(|| {
                let bus = pipeline.bus().expect("bus");
                let errors: Vec<String> = bus
                    .iter_filtered(&[gst::MessageType::Error])
                    .map(|m| format!("{m:?}"))
                    .collect();
                panic!("no frame within 10 s; bus errors: {errors:?}")
            })
    };
    let mut pts = Vec::new();
    for _ in 0..20 {
        let sample = pull();
        assert_eq!(caps_size(&sample), (640, 480));
        pts.push(
            sample
                .buffer()
                .and_then(|b| b.pts())
                .expect("do-timestamp sets PTS"),
        );
    }
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "timestamps increase: {pts:?}"
    );
    poll_until(Duration::from_secs(5), "20 frames counted", || {
        (cam.frames_served() >= 20).then_some(())
    });

    let r = get(&authority(&cam.base_url()), "/control?var=framesize&val=5").expect("control");
    assert_eq!(r.status, 200);
    assert_eq!(cam.frame_size(), (320, 240));
    // Frames already in flight are still VGA; the new size must arrive within a few frames.
    let mut seen = 0;
    loop {
        let size = caps_size(&pull());
        if size == (320, 240) {
            break;
        }
        assert_eq!(size, (640, 480));
        seen += 1;
        assert!(seen < 50, "still VGA after {seen} frames");
    }
    pipeline.set_state(gst::State::Null).expect("stops");
}

/// The response head and the part framing are byte for byte the firmware's (chunked transfer
/// encoding, one chunk each for boundary, part head and JPEG).
#[test]
fn wire_format_is_the_firmwares() {
    let cam = start(320, 240, 20.0);
    let mut s = StreamClient::request(&cam.stream_url()).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let head = format!(
        "HTTP/1.1 200 OK\r\n\
         Content-Type: multipart/x-mixed-replace;boundary={BOUNDARY}\r\n\
         Transfer-Encoding: chunked\r\n\
         Access-Control-Allow-Origin: *\r\n\
         X-Framerate: 60\r\n\r\n"
    );
    let boundary_chunk = format!("24\r\n\r\n--{BOUNDARY}\r\n\r\n");
    let mut got = vec![0; head.len() + boundary_chunk.len()];
    s.read_exact(&mut got).expect("head and first chunk");
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("{head}{boundary_chunk}")
    );

    // Part head chunk: "<hex>\r\nContent-Type: image/jpeg\r\nContent-Length: N\r\nX-Timestamp: S.UUUUUU\r\n\r\n\r\n"
    let mut size_line = Vec::new();
    let mut b = [0u8; 1];
    while !size_line.ends_with(b"\r\n") {
        s.read_exact(&mut b).expect("chunk size");
        size_line.push(b[0]);
    }
    let n = usize::from_str_radix(
        std::str::from_utf8(&size_line).expect("ascii").trim_end(),
        16,
    )
    .expect("hex size");
    let mut part_head = vec![0; n + 2];
    s.read_exact(&mut part_head).expect("part head");
    let part_head = String::from_utf8(part_head).expect("ascii part head");
    let lines: Vec<&str> = part_head.split("\r\n").collect();
    assert_eq!(lines[0], "Content-Type: image/jpeg", "{part_head:?}");
    let len: usize = lines[1]
        .strip_prefix("Content-Length: ")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length line");
    let ts = lines[2]
        .strip_prefix("X-Timestamp: ")
        .expect("X-Timestamp line");
    let (sec, usec) = ts.split_once('.').expect("SEC.USEC");
    assert!(
        sec.parse::<u64>().is_ok() && usec.len() == 6 && usec.parse::<u32>().is_ok(),
        "{ts}"
    );
    assert_eq!(&lines[3..], &["", "", ""], "{part_head:?}");

    // JPEG chunk: size line equals Content-Length, data is a whole JPEG.
    let jpeg_chunk_head = format!("{len:x}\r\n");
    let mut got = vec![0; jpeg_chunk_head.len()];
    s.read_exact(&mut got).expect("JPEG chunk size");
    assert_eq!(String::from_utf8_lossy(&got), jpeg_chunk_head);
    let mut jpeg = vec![0; len + 2];
    s.read_exact(&mut jpeg).expect("JPEG");
    assert_eq!(&jpeg[len..], b"\r\n");
    jpeg.truncate(len);
    assert_eq!(common::decode_jpeg(&jpeg), Ok((320, 240)));

    // Then the next part starts with the same boundary chunk.
    let mut got = vec![0; boundary_chunk.len()];
    s.read_exact(&mut got).expect("second boundary");
    assert_eq!(String::from_utf8_lossy(&got), boundary_chunk);
}

/// Successive parts are distinct JPEGs, decodable, with increasing camera timestamps spaced by
/// the frame period.
#[test]
fn parts_are_distinct_decodable_and_timestamped() {
    let cam = start(400, 296, 20.0);
    let mut c = StreamClient::connect(&cam.stream_url()).expect("stream");
    assert_eq!(c.status, 200);
    let parts: Vec<_> = (0..6).map(|_| c.next_part().expect("part")).collect();
    for w in parts.windows(2) {
        assert_ne!(w[0].body, w[1].body, "frames differ");
        assert!(w[1].timestamp() > w[0].timestamp());
    }
    let span = parts[5].timestamp() - parts[0].timestamp();
    assert!(
        span >= 5.0 / 20.0 * 0.9,
        "5 periods at 20 fps take >= 0.225 s, took {span}"
    );
    assert_eq!(common::decode_jpeg(&parts[3].body), Ok((400, 296)));
}

/// A second `/stream` client gets nothing while the first streams; port P answers meanwhile;
/// when the first leaves, the second is served.
#[test]
fn one_viewer_at_a_time_and_port_p_stays_usable() {
    let cam = start(320, 240, 20.0);
    let mut first = StreamClient::connect(&cam.stream_url()).expect("first stream");
    first.next_part().expect("first gets a part");

    let second = StreamClient::request(&cam.stream_url()).expect("second connects (TCP)");
    poll_until(Duration::from_secs(5), "second connection accepted", || {
        (cam.stream_connections() == 2).then_some(())
    });
    second
        .set_read_timeout(Some(Duration::from_millis(1200)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let got = (&second).read(&mut byte);
    assert!(
        matches!(&got, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "second client must get nothing while the first streams, got {got:?}"
    );

    let status = get(&authority(&cam.base_url()), "/status").expect("status while streaming");
    assert_eq!(status.status, 200);
    let served_before = cam.frames_served();
    first.next_part().expect("first still streams");
    poll_until(Duration::from_secs(5), "the first stream to go on", || {
        (cam.frames_served() > served_before).then_some(())
    });

    drop(first);
    let mut second = StreamClient::from_socket(second, Duration::from_secs(10))
        .expect("second is served once the first left");
    assert_eq!(second.status, 200);
    second.next_part().expect("second gets parts");
}

/// `/capture` returns one JPEG of the current size with the firmware's headers; port P keeps a
/// connection alive across requests.
#[test]
fn capture_and_keep_alive() {
    let cam = start(320, 240, 10.0);
    let r = get(&authority(&cam.base_url()), "/capture").expect("capture");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("image/jpeg"));
    assert_eq!(
        r.header("Content-Disposition"),
        Some("inline; filename=capture.jpg")
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    assert!(r
        .header("X-Timestamp")
        .is_some_and(|t| t.parse::<f64>().is_ok()));
    assert_eq!(common::decode_jpeg(&r.body), Ok((320, 240)));

    use std::io::{BufReader, Write};
    let auth = authority(&cam.base_url());
    let mut s = std::net::TcpStream::connect(&auth).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut r = BufReader::new(s.try_clone().expect("clone"));
    for _ in 0..3 {
        write!(s, "GET /status HTTP/1.1\r\nHost: {auth}\r\n\r\n").expect("send");
        let (status, headers, _) = common::read_head(&mut r).expect("head");
        assert_eq!(status, 200);
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .and_then(|(_, v)| v.parse().ok())
            .expect("length");
        let mut body = vec![0; len];
        r.read_exact(&mut body).expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(v["framesize"], 5);
    }

    let r = get(&auth, "/nothing-here").expect("unknown path");
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "This URI does not exist");
    let r = get(&authority(&cam.stream_url()), "/status").expect("status on the stream port");
    assert_eq!(r.status, 404, "the stream port only knows /stream");
}
