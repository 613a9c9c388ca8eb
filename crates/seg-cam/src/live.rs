//! The live feed: every JPEG the camera sends, as received (before decoding), to whoever
//! connects to the camera's unix socket (`RUN_DIR/seg-<camera>/live.sock`, in the wire
//! format of [`visdcam_core::live`]). `visdcam web` is the client; it fans the frames out to
//! browsers.
//!
//! ```text
//! multipartdemux src pad ──probe: Buffer ref + arrival time, try_send──▶ channel (4 frames)
//!                                       (full: the frame is not offered)      │
//!   accept thread ──new client──────────────────────────────────────────────▶ │
//!                                                                             ▼
//!                          live thread: keeps the last frame, writes to each client
//!                          non-blocking; a client still busy with an earlier frame
//!                          skips this one
//! ```
//!
//! What the recording path pays: in the streaming thread, one buffer reference (no copy) and
//! one `try_send` on a bounded channel per frame; never a wait, whatever the clients do. Each
//! client holds at most one frame in progress, so a client that stops reading costs one frame
//! of memory until it is dropped ([`STUCK_LIMIT`]); there are at most [`MAX_CLIENTS`].

use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gstreamer as gst;
use visdcam_core::live::{FrameHeader, HEADER_LEN};

/// Most clients at once (`visdcam web` holds one per camera while anyone watches, plus a
/// short one per snapshot); more are closed at once.
pub const MAX_CLIENTS: usize = 16;
/// A client that has not taken a frame for this long is dropped.
pub const STUCK_LIMIT: Duration = Duration::from_secs(20);
/// Frames waiting for the live thread; past this, frames are not offered (the thread is
/// behind, and the newest frame it has is good enough).
const QUEUE: usize = 4;
/// How often the live thread looks at its clients when none is mid-frame (closed ones).
const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often it retries a client that is mid-frame.
const BUSY_TICK: Duration = Duration::from_millis(5);

enum Msg {
    Frame(gst::Buffer, u64),
    Client(UnixStream),
}

/// The streaming thread's end: cheap to clone, never blocks.
#[derive(Clone)]
pub struct LiveFeed {
    tx: SyncSender<Msg>,
}

impl std::fmt::Debug for LiveFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveFeed")
    }
}

impl LiveFeed {
    /// Binds `socket` (replacing a stale one; the directory is made if missing), mode 0660
    /// so the group (visdcam) can connect, and starts the accept and live threads.
    pub fn start(socket: &Path) -> io::Result<LiveFeed> {
        let what = |e: io::Error, doing: &str| {
            io::Error::new(e.kind(), format!("{doing} {}: {e}", socket.display()))
        };
        if let Some(dir) = socket.parent() {
            std::fs::create_dir_all(dir).map_err(|e| what(e, "creating the directory of"))?;
        }
        match std::fs::remove_file(socket) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(what(e, "removing the old"))
            }
            _ => {}
        }
        let listener = UnixListener::bind(socket).map_err(|e| what(e, "binding"))?;
        std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| what(e, "setting the mode of"))?;
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let accept_tx = tx.clone();
        std::thread::Builder::new()
            .name("live-accept".into())
            .spawn(move || accept(listener, accept_tx))?;
        std::thread::Builder::new()
            .name("live".into())
            .spawn(move || serve(rx))?;
        Ok(LiveFeed { tx })
    }

    /// Offers a frame (called from the streaming thread: a reference, never a wait).
    pub fn offer(&self, buffer: &gst::Buffer) {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        match self.tx.try_send(Msg::Frame(buffer.clone(), ms)) {
            Ok(()) | Err(TrySendError::Full(_)) => {}
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

fn accept(listener: UnixListener, tx: SyncSender<Msg>) {
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                if tx.send(Msg::Client(s)).is_err() {
                    return;
                }
            }
            Err(e) => {
                log::warn!("live socket: accepting a client: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// A frame as it goes out: header and the JPEG (the camera's bytes, mapped, not copied).
struct Encoded {
    header: [u8; HEADER_LEN],
    jpeg: gst::MappedBuffer<gst::buffer::Readable>,
}

impl Encoded {
    fn len(&self) -> usize {
        HEADER_LEN + self.jpeg.len()
    }

    /// The bytes from `off` to the end of the part `off` is in.
    fn rest(&self, off: usize) -> &[u8] {
        if off < HEADER_LEN {
            &self.header[off..]
        } else {
            &self.jpeg[off - HEADER_LEN..]
        }
    }
}

struct Client {
    stream: UnixStream,
    /// The frame being written and how far.
    pending: Option<(Arc<Encoded>, usize)>,
    /// When it last finished a frame (or connected).
    last_done: Instant,
}

impl Client {
    /// Writes what it can without waiting. False when the client is gone.
    fn flush(&mut self) -> bool {
        while let Some((frame, off)) = &mut self.pending {
            match self.stream.write(frame.rest(*off)) {
                Ok(0) => return false,
                Ok(n) => {
                    *off += n;
                    if *off == frame.len() {
                        self.pending = None;
                        self.last_done = Instant::now();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }

    /// False when the client closed its end (it never sends anything; bytes are discarded).
    fn alive(&mut self) -> bool {
        let mut buf = [0u8; 64];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

fn encode(buffer: gst::Buffer, wall_ms: u64) -> Option<Arc<Encoded>> {
    let jpeg = buffer.into_mapped_buffer_readable().ok()?;
    let header = FrameHeader {
        wall_ms,
        len: u32::try_from(jpeg.len()).ok()?,
    }
    .encode();
    Some(Arc::new(Encoded { header, jpeg }))
}

fn serve(rx: Receiver<Msg>) {
    let mut clients: Vec<Client> = Vec::new();
    let mut last: Option<Arc<Encoded>> = None;
    loop {
        let wait = if clients.is_empty() {
            None
        } else if clients.iter().any(|c| c.pending.is_some()) {
            Some(BUSY_TICK)
        } else {
            Some(IDLE_TICK)
        };
        let first = match wait {
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
            Some(t) => match rx.recv_timeout(t) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
        };
        let mut fresh: Option<Arc<Encoded>> = None;
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match msg {
                Msg::Frame(buffer, ms) => {
                    if let Some(e) = encode(buffer, ms) {
                        fresh = Some(e);
                    }
                }
                Msg::Client(stream) => {
                    if clients.len() >= MAX_CLIENTS {
                        log::warn!("live socket: {MAX_CLIENTS} clients already; closing a new one");
                        continue;
                    }
                    if stream.set_nonblocking(true).is_err() {
                        continue;
                    }
                    clients.push(Client {
                        stream,
                        pending: last.clone().map(|f| (f, 0)),
                        last_done: Instant::now(),
                    });
                }
            }
        }
        if let Some(f) = fresh {
            for c in clients.iter_mut().filter(|c| c.pending.is_none()) {
                c.pending = Some((f.clone(), 0));
            }
            last = Some(f);
        }
        let now = Instant::now();
        clients.retain_mut(|c| {
            c.alive()
                && c.flush()
                && (c.pending.is_none() || now.duration_since(c.last_done) < STUCK_LIMIT)
        });
    }
}
