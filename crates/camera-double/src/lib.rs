//! ESP32-CAM double (test support, never shipped): an HTTP server on two adjacent loopback
//! ports that behaves like the stock Arduino `CameraWebServer` firmware on an OV2640, quirks
//! included, with faults that tests switch on while it runs.
//!
//! # What it speaks
//! - Port `P` ([`CameraDouble::base_url`]): `/` (a small page), `/status`, `/control`,
//!   `/capture`, `/xclk`; every other path 404. One thread per connection, HTTP/1.1 keep-alive
//!   as ESP-IDF's server does, so `P` keeps answering while a stream runs.
//! - Port `P+1` ([`CameraDouble::stream_url`]): `/stream`. The body is `Transfer-Encoding:
//!   chunked` like the firmware's (`httpd_resp_send_chunk`: one chunk for the boundary, one
//!   for the part header, one for the JPEG); HTTP clients such as souphttpsrc remove the
//!   chunking, a raw-socket client sees it.
//! - **One viewer at a time**, modelled on the firmware's single server task: connections to
//!   `P+1` are accepted at once (the TCP handshake completes) but served strictly one after
//!   another. A second client gets *no byte at all* (not even response headers) until the
//!   first one leaves; then its request is read and answered.
//! - Test-only endpoints (not in any firmware) under `/__double/` on port `P`:
//!   `fault?mode=none|stall|close|reboot|corrupt|html|notfound&secs=N` (secs required for close
//!   and reboot, fractions allowed), `controls` (the control log as JSON lines) and `stats`
//!   (counters as one JSON object). They are not recorded in the control log.
//!
//! # Deviations from the firmware, on purpose
//! - `/control` is strict: any value outside the OV2640 table answers 500, where the real
//!   driver clamps some (`agc_gain`, `aec_value`) and takes any non-zero boolean as 1.
//! - Responses after which the connection is closed (404, 405, non-stream answers on `P+1`)
//!   carry `Connection: close`, so pooling clients do not reuse a dead socket.
//! - The boot frame size is the one nearest to [`Options`]' width and height (the firmware's
//!   sketch boots in QVGA); a reboot returns to it.
//!
//! # Faults
//! See [`Fault`]. Each is switched with [`CameraDouble::set_fault`] or `/__double/fault`.

mod frames;
mod http;
mod sensor;
mod server;
mod stream;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use frames::FrameSet;
use sensor::Sensor;
pub use sensor::{frame_size, nearest_framesize, FRAME_SIZES};

/// How to start a double.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Address to listen on (loopback in tests).
    pub bind: IpAddr,
    /// Port `P` for `/status` etc.; the stream is on `P+1`. 0 picks two adjacent free ports.
    pub port: u16,
    /// Wanted frame width; the nearest OV2640 framesize is used.
    pub width: u32,
    /// Wanted frame height; the nearest OV2640 framesize is used.
    pub height: u32,
    /// Stream pacing in frames per second.
    pub fps: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            width: 640,
            height: 480,
            fps: 10.0,
        }
    }
}

/// Which board the firmware runs on: it decides `led_intensity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Board {
    /// AI-Thinker ESP32-CAM: flash LED on GPIO 4, `led_intensity` 0..255, boots at 0.
    #[default]
    WithLed,
    /// A board built without the LED illuminator: `/status` reports `led_intensity` -1 and
    /// `/control?var=led_intensity` answers 500 (unknown variable).
    NoLed,
}

/// A misbehaviour to play. Switch it while the double runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Stream sockets stop sending (no FIN, no RST) at the next frame. A socket that stalled
    /// stays stalled for good, even after the fault is cleared; it is released only when the
    /// client closes it (or on close/reboot/drop). While stalled, the single stream task is
    /// busy, so newer `/stream` connections wait. After clearing to `None` and the client
    /// closing the stalled socket, new connections stream again. Port `P` keeps working.
    Stall,
    /// Close every open connection on both ports (FIN), drop queued stream connections and
    /// close both listening sockets (connects are refused) for the duration; then listen again
    /// and go back to `None` by itself. Settings are kept. Setting another fault meanwhile
    /// (even `None`) ends the refusal at once.
    CloseAndRefuse(Duration),
    /// Like `CloseAndRefuse`, and the camera comes back with boot settings (framesize from the
    /// options, everything else the sensor's defaults), a fresh uptime clock (`X-Timestamp`
    /// restarts near 0) and [`CameraDouble::reboots`] one higher.
    Reboot(Duration),
    /// Stream parts carry garbage (the first half of a real frame, every byte XOR 0x5A, so no
    /// JPEG markers) with a correct `Content-Length`: multipart framing stays intact.
    CorruptJpeg,
    /// New `/stream` requests answer `200 text/html` with a small HTML page (a captive portal
    /// or wrong firmware). A stream already running is not affected.
    Html,
    /// New `/stream` requests answer 404. A stream already running is not affected.
    NotFound,
}

impl Fault {
    /// The name `/__double/fault?mode=` uses.
    pub fn mode_name(&self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Stall => "stall",
            Fault::CloseAndRefuse(_) => "close",
            Fault::Reboot(_) => "reboot",
            Fault::CorruptJpeg => "corrupt",
            Fault::Html => "html",
            Fault::NotFound => "notfound",
        }
    }

    /// Parses `mode` (and `secs` for close/reboot) as `/__double/fault` takes them.
    pub fn from_mode(mode: &str, secs: Option<&str>) -> Result<Fault, String> {
        let dur = || -> Result<Duration, String> {
            let s = secs.ok_or_else(|| format!("mode={mode} needs secs=N"))?;
            s.parse::<f64>()
                .ok()
                .and_then(|v| Duration::try_from_secs_f64(v).ok())
                .ok_or_else(|| format!("secs={s:?} is not a non-negative number of seconds"))
        };
        Ok(match mode {
            "none" => Fault::None,
            "stall" => Fault::Stall,
            "close" => Fault::CloseAndRefuse(dur()?),
            "reboot" => Fault::Reboot(dur()?),
            "corrupt" => Fault::CorruptJpeg,
            "html" => Fault::Html,
            "notfound" => Fault::NotFound,
            other => {
                return Err(format!(
                    "unknown mode {other:?} (none|stall|close|reboot|corrupt|html|notfound)"
                ))
            }
        })
    }
}

/// One `/control` call as the double answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCall {
    /// `var` as sent (raw, not URL-decoded); empty when missing.
    pub var: String,
    /// `val` as sent (raw); empty when missing.
    pub val: String,
    /// HTTP status answered: 200, 404 (parameter missing) or 500 (unknown var, bad value).
    pub status: u16,
}

/// State shared by every thread of one double.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Woken on fault changes, queued stream connections and shutdown.
    pub(crate) wake: Condvar,
    pub(crate) frames_served: AtomicU64,
    pub(crate) stream_connections: AtomicU64,
    pub(crate) reboots: AtomicU64,
    pub(crate) ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) fps: f64,
    pub(crate) board: Board,
    pub(crate) boot_framesize: i64,
    pub(crate) boot_frames: Arc<FrameSet>,
}

pub(crate) struct State {
    pub(crate) fault: Fault,
    /// Bumped by every close/reboot: connections from an older epoch are gone.
    pub(crate) epoch: u64,
    /// While `Some` and in the future, the listeners stay closed.
    pub(crate) refuse_until: Option<Instant>,
    pub(crate) listeners: Option<(TcpListener, TcpListener)>,
    pub(crate) sensor: Sensor,
    pub(crate) frames: Arc<FrameSet>,
    pub(crate) booted_at: Instant,
    pub(crate) control_log: Vec<ControlCall>,
    pub(crate) stream_queue: VecDeque<Conn>,
    /// Clones of every open connection, to shut them down from outside.
    pub(crate) open: HashMap<u64, TcpStream>,
    pub(crate) next_id: u64,
    pub(crate) workers: Vec<JoinHandle<()>>,
    pub(crate) shutdown: bool,
}

/// An accepted connection and the epoch it belongs to.
pub(crate) struct Conn {
    pub(crate) id: u64,
    pub(crate) epoch: u64,
    pub(crate) stream: TcpStream,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Camera uptime as `X-Timestamp` prints it: `SEC.USEC`.
    pub(crate) fn timestamp(st: &State) -> String {
        let up = Instant::now().saturating_duration_since(st.booted_at);
        format!("{}.{:06}", up.as_secs(), up.subsec_micros())
    }

    /// Registers an accepted connection so faults and drop can shut it down.
    fn register(&self, st: &mut State, stream: &TcpStream) -> io::Result<Conn> {
        let id = st.next_id;
        st.next_id += 1;
        st.open.insert(id, stream.try_clone()?);
        Ok(Conn {
            id,
            epoch: st.epoch,
            stream: stream.try_clone()?,
        })
    }

    pub(crate) fn unregister(&self, id: u64) {
        self.lock().open.remove(&id);
    }

    /// Applies a fault (under the lock).
    fn apply_fault(&self, st: &mut State, fault: Fault) {
        match fault {
            Fault::CloseAndRefuse(d) | Fault::Reboot(d) => {
                let now = Instant::now();
                st.listeners = None;
                st.epoch += 1;
                st.refuse_until = Some(now + d);
                for s in st.open.values() {
                    let _ = s.shutdown(Shutdown::Both);
                }
                st.open.clear();
                st.stream_queue.clear();
                if matches!(fault, Fault::Reboot(_)) {
                    st.sensor = Sensor::boot(self.boot_framesize, self.board == Board::WithLed);
                    st.frames = Arc::clone(&self.boot_frames);
                    st.booted_at = now + d;
                    self.reboots.fetch_add(1, Ordering::SeqCst);
                }
            }
            // Any other fault ends a refusal early: the acceptor listens again at once.
            _ => st.refuse_until = None,
        }
        st.fault = fault;
        self.wake.notify_all();
    }
}

/// A running ESP32-CAM double. Dropping it stops every thread and closes every socket.
pub struct CameraDouble {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    streamer: Option<JoinHandle<()>>,
}

impl CameraDouble {
    /// Starts a double on an AI-Thinker-like board (with flash LED).
    pub fn start(opts: Options) -> io::Result<CameraDouble> {
        CameraDouble::start_with(opts, Board::WithLed)
    }

    /// Starts a double on the given board. Returns once both ports listen and the first frames
    /// exist.
    pub fn start_with(opts: Options, board: Board) -> io::Result<CameraDouble> {
        if !(opts.fps.is_finite() && opts.fps > 0.0 && opts.fps <= 1000.0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fps {} is not in (0, 1000]", opts.fps),
            ));
        }
        if opts.width == 0 || opts.height == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame size {}x{} is empty", opts.width, opts.height),
            ));
        }
        let boot_framesize = nearest_framesize(opts.width, opts.height);
        let (w, h) = FRAME_SIZES[boot_framesize as usize];
        let boot_frames = frames::frames_for(w, h)?;
        let (control, stream) = bind_pair(opts.bind, opts.port)?;
        let port = control.local_addr()?.port();
        let now = Instant::now();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                fault: Fault::None,
                epoch: 0,
                refuse_until: None,
                listeners: Some((control, stream)),
                sensor: Sensor::boot(boot_framesize, board == Board::WithLed),
                frames: Arc::clone(&boot_frames),
                booted_at: now,
                control_log: Vec::new(),
                stream_queue: VecDeque::new(),
                open: HashMap::new(),
                next_id: 0,
                workers: Vec::new(),
                shutdown: false,
            }),
            wake: Condvar::new(),
            frames_served: AtomicU64::new(0),
            stream_connections: AtomicU64::new(0),
            reboots: AtomicU64::new(0),
            ip: opts.bind,
            port,
            fps: opts.fps,
            board,
            boot_framesize,
            boot_frames,
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("cam-double-accept-{port}"))
                .spawn(move || accept_loop(&shared))?
        };
        let streamer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("cam-double-stream-{port}"))
                .spawn(move || stream::stream_task(&shared))?
        };
        Ok(CameraDouble {
            shared,
            acceptor: Some(acceptor),
            streamer: Some(streamer),
        })
    }

    /// `http://IP:P`: the firmware's port-80 server.
    pub fn base_url(&self) -> String {
        format!(
            "http://{}",
            SocketAddr::new(self.shared.ip, self.shared.port)
        )
    }

    /// `http://IP:{P+1}/stream`.
    pub fn stream_url(&self) -> String {
        format!(
            "http://{}/stream",
            SocketAddr::new(self.shared.ip, self.shared.port + 1)
        )
    }

    /// Port `P`.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// Switches the fault. Close/reboot take effect before this returns (sockets shut, ports
    /// refusing).
    pub fn set_fault(&self, f: Fault) {
        let mut st = self.shared.lock();
        self.shared.apply_fault(&mut st, f);
    }

    /// The fault now in force (close/reboot turn back into `None` once over).
    pub fn fault(&self) -> Fault {
        self.shared.lock().fault
    }

    /// Every `/control` call so far.
    pub fn control_log(&self) -> Vec<ControlCall> {
        self.shared.lock().control_log.clone()
    }

    /// Forgets the control log.
    pub fn clear_control_log(&self) {
        self.shared.lock().control_log.clear();
    }

    /// The settings as `/status` reports them (no `vflip`).
    pub fn status(&self) -> BTreeMap<String, i64> {
        self.shared.lock().sensor.status()
    }

    /// Any sensor value, including ones `/status` hides (`vflip`).
    pub fn sensor_value(&self, var: &str) -> Option<i64> {
        self.shared.lock().sensor.get(var)
    }

    /// Width and height of the frames the stream sends now.
    pub fn frame_size(&self) -> (u32, u32) {
        let st = self.shared.lock();
        (st.frames.width, st.frames.height)
    }

    /// JPEG parts fully written to stream clients.
    pub fn frames_served(&self) -> u64 {
        self.shared.frames_served.load(Ordering::SeqCst)
    }

    /// TCP connections accepted on the stream port so far (served or still waiting).
    pub fn stream_connections(&self) -> u64 {
        self.shared.stream_connections.load(Ordering::SeqCst)
    }

    /// Reboots played so far.
    pub fn reboots(&self) -> u64 {
        self.shared.reboots.load(Ordering::SeqCst)
    }
}

impl Drop for CameraDouble {
    fn drop(&mut self) {
        let workers = {
            let mut st = self.shared.lock();
            st.shutdown = true;
            st.listeners = None;
            for s in st.open.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
            st.open.clear();
            st.stream_queue.clear();
            self.shared.wake.notify_all();
            std::mem::take(&mut st.workers)
        };
        for h in self
            .acceptor
            .take()
            .into_iter()
            .chain(self.streamer.take())
            .chain(workers)
        {
            let _ = h.join();
        }
    }
}

/// Binds `P` and `P+1` (listening sockets non-blocking, polled by the acceptor). With port 0,
/// tries ephemeral ports until the next one up is free too.
fn bind_pair(ip: IpAddr, port: u16) -> io::Result<(TcpListener, TcpListener)> {
    let bind_one = |p: u16| {
        let l = TcpListener::bind(SocketAddr::new(ip, p))
            .map_err(|e| io::Error::new(e.kind(), format!("binding {ip}:{p}: {e}")))?;
        l.set_nonblocking(true)?;
        Ok::<_, io::Error>(l)
    };
    if port != 0 {
        let next = port.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "port 65535 leaves no room for P+1",
            )
        })?;
        return Ok((bind_one(port)?, bind_one(next)?));
    }
    let mut last = None;
    for _ in 0..64 {
        let a = bind_one(0)?;
        let p = a.local_addr()?.port();
        let Some(next) = p.checked_add(1) else {
            continue;
        };
        match bind_one(next) {
            Ok(b) => return Ok((a, b)),
            Err(e) => last = Some(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no two adjacent free ports on {ip} after 64 tries (last: {})",
            last.map(|e| e.to_string()).unwrap_or_default()
        ),
    ))
}

/// How often the acceptor polls its non-blocking listeners.
const ACCEPT_POLL: Duration = Duration::from_millis(5);

/// Accepts on both ports; closes and reopens the listeners around close/reboot faults.
fn accept_loop(shared: &Arc<Shared>) {
    let mut bind_error_logged = false;
    loop {
        let mut accepted: Vec<(bool, TcpStream)> = Vec::new();
        {
            let mut st = shared.lock();
            if st.shutdown {
                return;
            }
            if st.listeners.is_none() && st.refuse_until.is_none_or(|t| Instant::now() >= t) {
                match bind_pair(shared.ip, shared.port) {
                    Ok(pair) => {
                        st.listeners = Some(pair);
                        st.refuse_until = None;
                        if matches!(st.fault, Fault::CloseAndRefuse(_) | Fault::Reboot(_)) {
                            st.fault = Fault::None;
                        }
                        bind_error_logged = false;
                        shared.wake.notify_all();
                    }
                    Err(e) if !bind_error_logged => {
                        eprintln!("camera-double: cannot listen again, retrying: {e}");
                        bind_error_logged = true;
                    }
                    Err(_) => {}
                }
            }
            if let Some((control, stream)) = &st.listeners {
                while let Ok((s, _)) = control.accept() {
                    accepted.push((false, s));
                }
                while let Ok((s, _)) = stream.accept() {
                    accepted.push((true, s));
                }
            }
            for (is_stream, s) in accepted.drain(..) {
                if s.set_nonblocking(false).is_err() {
                    continue;
                }
                let conn = match shared.register(&mut st, &s) {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("camera-double: cannot register a connection: {e}");
                        continue;
                    }
                };
                if is_stream {
                    shared.stream_connections.fetch_add(1, Ordering::SeqCst);
                    st.stream_queue.push_back(conn);
                    shared.wake.notify_all();
                } else {
                    let sh = Arc::clone(shared);
                    match std::thread::Builder::new()
                        .name("cam-double-conn".to_owned())
                        .spawn(move || server::serve_connection(&sh, conn))
                    {
                        Ok(h) => {
                            st.workers.retain(|h| !h.is_finished());
                            st.workers.push(h);
                        }
                        Err(e) => eprintln!("camera-double: cannot spawn a connection thread: {e}"),
                    }
                }
            }
            // Sleep on the condvar so drop and faults wake us at once.
            let _ = shared.wake.wait_timeout(st, ACCEPT_POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_double_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CameraDouble>();
    }

    #[test]
    fn fault_modes_round_trip_and_bad_ones_are_explained() {
        for f in [
            Fault::None,
            Fault::Stall,
            Fault::CloseAndRefuse(Duration::from_millis(1500)),
            Fault::Reboot(Duration::from_secs(2)),
            Fault::CorruptJpeg,
            Fault::Html,
            Fault::NotFound,
        ] {
            let secs = match f {
                Fault::CloseAndRefuse(d) | Fault::Reboot(d) => Some(d.as_secs_f64().to_string()),
                _ => None,
            };
            assert_eq!(Fault::from_mode(f.mode_name(), secs.as_deref()), Ok(f));
        }
        assert!(Fault::from_mode("reboot", None).is_err_and(|e| e.contains("needs secs")));
        assert!(Fault::from_mode("close", Some("-1")).is_err_and(|e| e.contains("secs")));
        assert!(Fault::from_mode("melt", None).is_err_and(|e| e.contains("unknown mode")));
    }

    #[test]
    fn bad_options_are_refused() {
        for opts in [
            Options {
                fps: 0.0,
                ..Options::default()
            },
            Options {
                fps: f64::NAN,
                ..Options::default()
            },
            Options {
                width: 0,
                ..Options::default()
            },
            Options {
                port: 65535,
                ..Options::default()
            },
        ] {
            let err = CameraDouble::start(opts.clone()).err().expect("refused");
            assert!(!err.to_string().is_empty(), "{opts:?}");
        }
    }
}
