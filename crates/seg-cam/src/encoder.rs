//! The hardware encoder's start probe: before `ENCODER=auto` (or `v4l2`) records with
//! `v4l2h264enc`, the device must exist, be a V4L2 memory-to-memory device, have a GStreamer
//! H.264 encoder element, and encode a few test frames into H.264 that `h264parse` parses
//! (with a keyframe first). Anything less and the recorder uses x264 (the choice itself is
//! `visdcam_core::encoder::choose`).

use std::os::unix::fs::FileTypeExt;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use visdcam_core::encoder::{v4l2_extra_controls, v4l2_output_caps};

/// Frames the probe encodes.
const PROBE_FRAMES: i32 = 10;
/// How long the probe may take (a CMA shortage or a wedged firmware shows here).
const PROBE_LIMIT: Duration = Duration::from_secs(5);

/// `struct v4l2_capability` (linux/videodev2.h).
#[repr(C)]
struct V4l2Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

nix::ioctl_read!(vidioc_querycap, b'V', 0, V4l2Capability);

const V4L2_CAP_VIDEO_M2M_MPLANE: u32 = 0x0000_4000;
const V4L2_CAP_VIDEO_M2M: u32 = 0x0000_8000;
const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;

fn c_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Checks `device` is a V4L2 memory-to-memory device; returns its card name.
fn check_device(device: &Path) -> Result<String, String> {
    let d = device.display();
    let md = match std::fs::metadata(device) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("no {d}")),
        Err(e) => return Err(format!("{d}: {e}")),
    };
    if !md.file_type().is_char_device() {
        return Err(format!("{d} is not a device"));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map_err(|e| format!("opening {d}: {e}"))?;
    // SAFETY: all-zero bytes are a valid v4l2_capability (integers and byte arrays).
    let mut cap: V4l2Capability = unsafe { std::mem::zeroed() };
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is open for the call and `cap` is the struct VIDIOC_QUERYCAP fills.
    if let Err(e) = unsafe { vidioc_querycap(f.as_raw_fd(), &mut cap) } {
        return Err(if e == nix::errno::Errno::ENOTTY {
            format!("{d} is not a V4L2 device")
        } else {
            format!("{d}: VIDIOC_QUERYCAP: {}", e.desc())
        });
    }
    let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        cap.device_caps
    } else {
        cap.capabilities
    };
    let card = c_text(&cap.card);
    if caps & (V4L2_CAP_VIDEO_M2M | V4L2_CAP_VIDEO_M2M_MPLANE) == 0 {
        return Err(format!(
            "{d} ({card}, driver {}) is not a memory-to-memory codec",
            c_text(&cap.driver)
        ));
    }
    Ok(card)
}

/// The GStreamer V4L2 H.264 encoder element bound to `device`. GStreamer registers one per
/// encoder device it finds (`v4l2h264enc` for the first, `v4l2videoNh264enc` for others), and
/// only where such a device exists.
fn element_for(device: &Path) -> Result<gst::Element, String> {
    let want = device.to_string_lossy();
    // By name: the plugin's klass strings are not what identifies its per-device elements.
    let factories =
        gst::ElementFactory::factories_with_type(gst::ElementFactoryType::ANY, gst::Rank::NONE);
    for f in factories {
        let name = f.name();
        if !(name.starts_with("v4l2") && name.ends_with("h264enc")) {
            continue;
        }
        let Ok(el) = f.create().build() else { continue };
        if el.find_property("device").is_some()
            && el.property::<Option<String>>("device").as_deref() == Some(&*want)
        {
            return Ok(el);
        }
    }
    Err(format!(
        "GStreamer has no V4L2 H.264 encoder for {} (gstreamer1.0-plugins-good registers \
         v4l2h264enc only for an encoder device it found when it scanned)",
        device.display()
    ))
}

/// The hardware encoder element for recording, configured: `extra-controls` and the input
/// buffers allocated by the encoder (rows aligned as the driver needs, the frames copied in).
pub fn hardware_element(
    device: &Path,
    bitrate_kbps: u32,
    keyframe_interval: u32,
) -> Result<gst::Element, String> {
    let el = element_for(device)?;
    let controls = gst::Structure::from_str(&v4l2_extra_controls(bitrate_kbps, keyframe_interval))
        .map_err(|e| format!("extra-controls: {e}"))?;
    el.set_property("extra-controls", &controls);
    if el.find_property("output-io-mode").is_some() {
        el.set_property_from_str("output-io-mode", "mmap");
    }
    Ok(el)
}

/// The caps filter after the hardware encoder: profile and level (without a level the driver
/// stays at level 1.0 and fails on real frame sizes).
pub fn output_caps() -> gst::Caps {
    gst::Caps::from_str(&v4l2_output_caps()).expect("the caps string parses")
}

/// Encodes a few test frames with the hardware encoder on `device`: `Ok` when `h264parse`
/// got H.264 it could parse (frame size in its caps, a keyframe first).
pub fn probe(device: &Path, bitrate_kbps: u32, keyframe_interval: u32) -> Result<(), String> {
    let card = check_device(device)?;
    let enc = hardware_element(device, bitrate_kbps, keyframe_interval)?;
    let make = |f: &str| {
        gst::ElementFactory::make(f)
            .build()
            .map_err(|_| format!("no GStreamer element {f}"))
    };
    let src = make("videotestsrc")?;
    src.set_property("num-buffers", PROBE_FRAMES);
    let raw = make("capsfilter")?;
    raw.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "NV12")
            .field("width", 640i32)
            .field("height", 480i32)
            .field("framerate", gst::Fraction::new(10, 1))
            .build(),
    );
    let h264 = make("capsfilter")?;
    h264.set_property("caps", output_caps());
    let parse = make("h264parse")?;
    let sink = make("fakesink")?;
    let pipeline = gst::Pipeline::new();
    pipeline
        .add_many([&src, &raw, &enc, &h264, &parse, &sink])
        .map_err(|e| e.to_string())?;
    gst::Element::link_many([&src, &raw, &enc, &h264, &parse, &sink])
        .map_err(|e| format!("linking the probe: {e}"))?;
    let frames = Arc::new(AtomicU64::new(0));
    let keyframe_first = Arc::new(AtomicBool::new(false));
    let (f, k) = (frames.clone(), keyframe_first.clone());
    parse
        .static_pad("src")
        .expect("h264parse has a src pad")
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                if f.fetch_add(1, Ordering::Relaxed) == 0 {
                    k.store(
                        !b.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        Ordering::Relaxed,
                    );
                }
            }
            gst::PadProbeReturn::Ok
        });
    let result = run_probe(&pipeline, &parse);
    let _ = pipeline.set_state(gst::State::Null);
    result.map_err(|e| format!("{} ({card}): {e}", device.display()))?;
    let n = frames.load(Ordering::Relaxed);
    if n == 0 {
        return Err(format!("{} ({card}) produced no H.264", device.display()));
    }
    if !keyframe_first.load(Ordering::Relaxed) {
        return Err(format!(
            "{} ({card}) did not start with a keyframe",
            device.display()
        ));
    }
    Ok(())
}

fn run_probe(pipeline: &gst::Pipeline, parse: &gst::Element) -> Result<(), String> {
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("starting: {e}"))?;
    let bus = pipeline.bus().expect("a pipeline has a bus");
    let end = Instant::now() + PROBE_LIMIT;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no result within {} s", PROBE_LIMIT.as_secs()));
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => return Err(e.error().to_string()),
            _ => {}
        }
    }
    let caps = parse
        .static_pad("src")
        .and_then(|p| p.current_caps())
        .ok_or("h264parse negotiated no caps")?;
    let s = caps.structure(0).ok_or("empty caps")?;
    if s.get::<i32>("width").is_err() || s.get::<i32>("height").is_err() {
        return Err("h264parse found no sequence header".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_that_are_not_encoders_are_named_as_such() {
        assert_eq!(
            check_device(Path::new("/dev/visdcam-no-such-device")),
            Err("no /dev/visdcam-no-such-device".into())
        );
        let f = std::env::temp_dir().join(format!("seg-cam-probe-{}", std::process::id()));
        std::fs::write(&f, b"x").unwrap();
        assert_eq!(
            check_device(&f),
            Err(format!("{} is not a device", f.display()))
        );
        std::fs::remove_file(&f).unwrap();
        let e = check_device(Path::new("/dev/null")).unwrap_err();
        assert_eq!(e, "/dev/null is not a V4L2 device");
    }
}
