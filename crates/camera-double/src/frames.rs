//! JPEG test frames made with GStreamer, one ring per frame size, cached for the process.
//!
//! ```text
//! {videotestsrc pattern=smpte horizontal-speed=5 num-buffers=N}
//!   - {capsfilter video/x-raw,width=W,height=H,framerate=25/1}
//!   - {jpegenc quality=85} - {appsink sync=false}
//! ```
//!
//! The scrolling test pattern makes every frame different over the whole picture, so the
//! recorder's H.264 encoder does real work.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, OnceLock};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

/// Frames in one ring.
const RING_LEN: usize = 30;

/// One size's ring of distinct JPEG frames.
#[derive(Debug)]
pub struct FrameSet {
    pub width: u32,
    pub height: u32,
    pub frames: Vec<Arc<[u8]>>,
}

type Cache = Mutex<HashMap<(u32, u32), Arc<FrameSet>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The ring for `width` x `height`, generated on first use (a few hundred milliseconds).
pub fn frames_for(width: u32, height: u32) -> io::Result<Arc<FrameSet>> {
    // Holding the lock while generating makes concurrent callers for the same size wait for one
    // generation instead of racing; different sizes are rare enough not to matter.
    let mut cache = cache()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(set) = cache.get(&(width, height)) {
        return Ok(Arc::clone(set));
    }
    let set = Arc::new(generate(width, height, RING_LEN)?);
    cache.insert((width, height), Arc::clone(&set));
    Ok(set)
}

fn generate(width: u32, height: u32, count: usize) -> io::Result<FrameSet> {
    let ctx = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::other(format!(
            "generating {width}x{height} test JPEGs: {what}: {e}"
        ))
    };
    gst::init().map_err(|e| ctx("initialising GStreamer", &e))?;
    let desc = format!(
        "videotestsrc pattern=smpte horizontal-speed=5 num-buffers={count} \
         ! video/x-raw,width={width},height={height},framerate=25/1 \
         ! jpegenc quality=85 ! appsink name=sink sync=false"
    );
    let pipeline = gst::parse::launch(&desc)
        .map_err(|e| {
            ctx(
                "building the pipeline (needs gstreamer1.0-plugins-base and -good)",
                &e,
            )
        })?
        .downcast::<gst::Pipeline>()
        .map_err(|_| ctx("building the pipeline", &"not a pipeline"))?;
    let result = pull_all(&pipeline, count);
    // Always back to Null, whatever happened.
    let _ = pipeline.set_state(gst::State::Null);
    let frames = result.map_err(|e| ctx("running the pipeline", &e))?;
    Ok(FrameSet {
        width,
        height,
        frames,
    })
}

fn pull_all(pipeline: &gst::Pipeline, count: usize) -> Result<Vec<Arc<[u8]>>, String> {
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink in the pipeline")?;
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| format!("cannot start: {e}"))?;
    let mut frames = Vec::with_capacity(count);
    while let Ok(sample) = sink.pull_sample() {
        let buffer = sample.buffer().ok_or("sample without a buffer")?;
        let map = buffer
            .map_readable()
            .map_err(|e| format!("cannot map a buffer: {e}"))?;
        frames.push(Arc::<[u8]>::from(map.as_slice()));
    }
    if frames.len() == count {
        return Ok(frames);
    }
    // Fewer frames than asked: the bus says why.
    let bus = pipeline.bus().ok_or("pipeline without a bus")?;
    let why = bus
        .iter_filtered(&[gst::MessageType::Error])
        .next()
        .and_then(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!(
                "{} ({})",
                e.error(),
                e.debug().map(|d| d.to_string()).unwrap_or_default()
            )),
            _ => None,
        })
        .unwrap_or_else(|| "no error on the bus".to_owned());
    Err(format!("got {} of {count} frames: {why}", frames.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_distinct_jpegs() {
        let set = frames_for(320, 240).expect("GStreamer makes frames");
        assert_eq!(set.frames.len(), RING_LEN);
        for f in &set.frames {
            assert_eq!(&f[..2], &[0xFF, 0xD8], "SOI");
            assert_eq!(&f[f.len() - 2..], &[0xFF, 0xD9], "EOI");
        }
        let distinct: std::collections::HashSet<&[u8]> =
            set.frames.iter().map(|f| &f[..]).collect();
        assert_eq!(distinct.len(), RING_LEN);
        let again = frames_for(320, 240).expect("cached");
        assert!(Arc::ptr_eq(&set, &again));
    }
}
