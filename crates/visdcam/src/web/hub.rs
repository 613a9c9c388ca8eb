//! One camera's frames for every viewer of the page: while anyone watches, one reader thread
//! holds the recorder's live socket (`RUN_DIR/seg-<camera>/live.sock`) and keeps only the
//! newest frame; each viewer's thread waits for a newer one and writes it out. A slow viewer
//! therefore skips frames (it always takes the newest), never delays the others, and holds
//! at most one frame (shared, not copied). The reader leaves the socket when the last viewer
//! does, and reconnects by itself while the recorder restarts.

use std::io::{self, Read};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use visdcam_core::live::{FrameHeader, HEADER_LEN};

/// A frame as the recorder received it.
#[derive(Debug)]
pub struct Frame {
    pub jpeg: Vec<u8>,
    /// Arrival at the recorder, ms since the Unix epoch.
    pub wall_ms: u64,
}

/// What the page says about the live feed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LiveState {
    /// The recorder's socket is connected (someone watches).
    pub connected: bool,
    /// The last frame's arrival, ms since the Unix epoch.
    pub last_frame_ms: Option<u64>,
    /// Why the socket could not be read, in words.
    pub error: Option<String>,
    pub viewers: usize,
}

#[derive(Default)]
struct State {
    frame: Option<Arc<Frame>>,
    seq: u64,
    viewers: usize,
    reader: bool,
    connected: bool,
    error: Option<String>,
}

pub struct Hub {
    socket: PathBuf,
    max_viewers: usize,
    state: Mutex<State>,
    cv: Condvar,
}

/// How long the reader waits between attempts when the recorder's socket is missing.
const RETRY: Duration = Duration::from_secs(1);
/// The reader's read timeout: how often it sees that nobody watches any more.
const READ_TICK: Duration = Duration::from_millis(500);
/// How long a snapshot waits for its frame.
pub const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);

/// A viewer's place; leaving (drop) lets the reader go when it was the last one.
pub struct Viewer {
    hub: Arc<Hub>,
    seen: u64,
}

impl Hub {
    pub fn new(socket: PathBuf, max_viewers: usize) -> Arc<Hub> {
        Arc::new(Hub {
            socket,
            max_viewers,
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn state(&self) -> LiveState {
        let s = self.lock();
        LiveState {
            connected: s.connected,
            last_frame_ms: s.frame.as_ref().map(|f| f.wall_ms),
            error: s.error.clone(),
            viewers: s.viewers,
        }
    }

    /// Joins as a viewer; `None` when the camera has its maximum of viewers.
    pub fn join(self: &Arc<Hub>) -> Option<Viewer> {
        let mut s = self.lock();
        if s.viewers >= self.max_viewers {
            return None;
        }
        s.viewers += 1;
        if !s.reader {
            // Nobody watched: what the hub holds may be old; the recorder sends its last
            // frame as soon as the reader connects.
            s.frame = None;
            s.reader = true;
            let hub = self.clone();
            let spawned = std::thread::Builder::new()
                .name("live-reader".into())
                .spawn(move || hub.read_loop());
            if let Err(e) = spawned {
                s.reader = false;
                s.error = Some(format!("starting a thread: {e}"));
            }
        }
        Some(Viewer {
            hub: self.clone(),
            seen: 0,
        })
    }

    fn read_loop(self: Arc<Hub>) {
        loop {
            if self.lock().viewers == 0 {
                break;
            }
            match UnixStream::connect(&self.socket) {
                Ok(stream) => {
                    self.lock().connected = true;
                    let why = self.read_frames(stream);
                    let mut s = self.lock();
                    s.connected = false;
                    if let Some(why) = why {
                        s.error = Some(why);
                    }
                }
                Err(e) => {
                    let mut s = self.lock();
                    s.error = Some(if e.kind() == io::ErrorKind::NotFound {
                        "the recorder is not running (no live socket)".into()
                    } else {
                        format!("cannot connect to {}: {e}", self.socket.display())
                    });
                    // Wake viewers so they can tell their page (snapshots give up).
                    self.cv.notify_all();
                    let _ = self.cv.wait_timeout(s, RETRY);
                }
            }
        }
        let mut s = self.lock();
        s.reader = false;
        s.connected = false;
    }

    /// Reads frames until the socket ends (`Some(why)`) or nobody watches (`None`).
    fn read_frames(&self, mut stream: UnixStream) -> Option<String> {
        if let Err(e) = stream.set_read_timeout(Some(READ_TICK)) {
            return Some(e.to_string());
        }
        let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => return Some("the recorder closed its live socket".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Some(format!("reading the live socket: {e}")),
            }
            // Every complete frame in the buffer; only the newest is kept.
            let mut newest = None;
            loop {
                if buf.len() < HEADER_LEN {
                    break;
                }
                let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("16 bytes");
                let h = match FrameHeader::decode(&header) {
                    Ok(h) => h,
                    Err(e) => return Some(format!("the live socket sent garbage: {e}")),
                };
                let end = HEADER_LEN + h.len as usize;
                if buf.len() < end {
                    break;
                }
                newest = Some(Frame {
                    jpeg: buf[HEADER_LEN..end].to_vec(),
                    wall_ms: h.wall_ms,
                });
                buf.drain(..end);
            }
            let mut s = self.lock();
            if let Some(f) = newest {
                s.frame = Some(Arc::new(f));
                s.seq += 1;
                s.error = None;
                self.cv.notify_all();
            }
            if s.viewers == 0 {
                return None;
            }
        }
    }
}

impl Viewer {
    /// The next frame newer than the last one this viewer took, waiting up to `timeout`;
    /// `Err` with the reader's error when there is none.
    pub fn next(&mut self, timeout: Duration) -> Result<Arc<Frame>, Option<String>> {
        let deadline = Instant::now() + timeout;
        let mut s = self.hub.lock();
        loop {
            if s.seq != self.seen {
                if let Some(f) = &s.frame {
                    self.seen = s.seq;
                    return Ok(f.clone());
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(s.error.clone());
            }
            s = self
                .hub
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// The newest frame (maybe one this viewer already took), if any.
    pub fn latest(&self) -> Option<Arc<Frame>> {
        self.hub.lock().frame.clone()
    }
}

impl Drop for Viewer {
    fn drop(&mut self) {
        let mut s = self.hub.lock();
        s.viewers = s.viewers.saturating_sub(1);
        self.hub.cv.notify_all();
    }
}
