//! A loopback TCP proxy in front of a server that records every HTTP request line the client
//! sends, so a test can count requests *at the server side* (how many list calls a command
//! made), not by asking the command.
//!
//! Bytes are forwarded unchanged both ways (keep-alive included); the client→server stream is
//! read as a sequence of HTTP/1.1 request heads, each followed by `Content-Length` body bytes.
//! [`CountingProxy::hold_object_gets`] holds back object downloads (a `GET` that is not a
//! listing) until released, so a test can act while a client waits on them.
//!
//! [`FaultProxy`] sits between clients and an S3 server and plays a switchable [`StoreFault`]
//! (503 storms, 500s, cut uploads, a silent black hole, the store down) on each request it
//! reads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running proxy; it stops accepting when dropped (connections in flight finish).
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    hold: Arc<AtomicBool>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the counting proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let seen = seen.clone();
                let held = held.clone();
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || {
                    let _ = forward_requests(c2, s2, &seen, &held);
                });
                std::thread::spawn(move || {
                    let (mut s, mut c) = (server, client);
                    let _ = io::copy(&mut s, &mut c);
                    let _ = c.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy { addr, lines, hold }
    }

    /// `http://127.0.0.1:PORT`, to use as the endpoint instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request line seen so far (`GET /bucket?list-type=2&prefix=... HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// While `true`, object `GET`s (not listings) wait in the proxy before reaching the server.
    pub fn hold_object_gets(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }

    /// Forgets the lines seen so far.
    pub fn clear(&self) {
        if let Ok(mut l) = self.lines.lock() {
            l.clear();
        }
    }
}

/// Copies client → server, noting each request head's first line; a held object `GET` waits
/// before its head is forwarded.
fn forward_requests(
    mut client: TcpStream,
    mut server: TcpStream,
    seen: &Mutex<Vec<String>>,
    hold: &AtomicBool,
) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut body_left: usize = 0;
    loop {
        // Forward what is complete: body bytes, then whole heads.
        loop {
            if body_left > 0 {
                let n = body_left.min(buf.len());
                server.write_all(&buf[..n])?;
                buf.drain(..n);
                body_left -= n;
                if body_left > 0 {
                    break;
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let first = head.lines().next().unwrap_or_default().to_string();
            if let Ok(mut s) = seen.lock() {
                s.push(first.clone());
            }
            if first.starts_with("GET ") && !first.contains("list-type") {
                while hold.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            server.write_all(&buf[..end + 4])?;
            buf.drain(..end + 4);
            body_left = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            let _ = server.shutdown(Shutdown::Write);
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A fault [`FaultProxy`] plays on every request head it reads from now on (a connection
/// kept alive from before gets it at its next request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StoreFault {
    /// Forward unchanged.
    #[default]
    Pass,
    /// Answer `503 SlowDown` (with `Retry-After: 1`) without asking the server, then close.
    SlowDown,
    /// Answer `500 InternalError` without asking the server, then close.
    InternalError,
    /// Forward the request head and half of its body, then close both connections: the
    /// server never gets the whole body, the client never gets an answer (a cut upload).
    CutBody,
    /// Accept and read everything, answer nothing, close nothing (a network gone silent: Wi-Fi
    /// dropped under an open connection). Connections held this way stay silent until the
    /// client gives up, whatever the fault is later.
    BlackHole,
    /// The store is down: every open connection is closed when this is set, and each new one
    /// is closed as soon as it is accepted, before any byte (a crashed server; the real
    /// server behind stays up, so its ports stay its own on a machine shared with other tests).
    Down,
}

impl StoreFault {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            StoreFault::Pass => "pass",
            StoreFault::SlowDown => "503",
            StoreFault::InternalError => "500",
            StoreFault::CutBody => "cut",
            StoreFault::BlackHole => "blackhole",
            StoreFault::Down => "down",
        }
    }
}

/// How many requests [`FaultProxy`] treated each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub passed: u64,
    pub slow_down: u64,
    pub internal_error: u64,
    pub cut: u64,
    pub black_holed: u64,
    /// Connections closed because the store was down.
    pub down: u64,
    /// Requests that found the server down (connection refused): the client's connection is
    /// closed without an answer.
    pub upstream_down: u64,
}

/// A loopback HTTP/1.1 proxy in front of an S3 server whose fault ([`StoreFault`]) a test
/// switches while clients use it. Requests are read head by head (`Content-Length` bodies,
/// `Expect: 100-continue` answered by the server when forwarded); the server's answers are
/// copied back unchanged. The server may also be stopped behind it (an outage: the proxy
/// closes the client's connection when it cannot connect). Stops accepting when dropped.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    fault: Arc<Mutex<StoreFault>>,
    counts: Arc<Mutex<FaultCounts>>,
    stop: Arc<AtomicBool>,
    open: Arc<OpenConns>,
}

/// Clones of every open connection's sockets (client's and server's), by connection number,
/// so [`StoreFault::Down`] can close them from outside.
#[derive(Debug, Default)]
struct OpenConns {
    next: std::sync::atomic::AtomicU64,
    socks: Mutex<std::collections::HashMap<u64, Vec<TcpStream>>>,
}

impl OpenConns {
    fn add(&self, id: u64, s: &TcpStream) {
        if let (Ok(mut m), Ok(c)) = (self.socks.lock(), s.try_clone()) {
            m.entry(id).or_default().push(c);
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut m) = self.socks.lock() {
            m.remove(&id);
        }
    }

    fn close_all(&self) {
        if let Ok(mut m) = self.socks.lock() {
            for (_, socks) in m.drain() {
                for s in socks {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (connecting per client
    /// connection when its first request is forwarded).
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fault proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let fault = Arc::new(Mutex::new(StoreFault::Pass));
        let counts = Arc::new(Mutex::new(FaultCounts::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(OpenConns::default());
        let (f, n, s, o) = (fault.clone(), counts.clone(), stop.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = conn else { continue };
                if f.lock().map(|f| *f).unwrap_or_default() == StoreFault::Down {
                    count(&n, |c| c.down += 1);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let (f, n, o) = (f.clone(), n.clone(), o.clone());
                std::thread::spawn(move || {
                    let id = o.next.fetch_add(1, Ordering::SeqCst);
                    o.add(id, &client);
                    let _ = serve_faulty(id, client, upstream, &f, &n, &o);
                    o.remove(id);
                });
            }
        });
        FaultProxy {
            addr,
            fault,
            counts,
            stop,
            open,
        }
    }

    /// `http://127.0.0.1:PORT`, to use as the endpoint instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the fault for every request head read from now on.
    pub fn set_fault(&self, fault: StoreFault) {
        if let Ok(mut f) = self.fault.lock() {
            *f = fault;
        }
        if fault == StoreFault::Down {
            self.open.close_all();
        }
    }

    /// The fault in force.
    pub fn fault(&self) -> StoreFault {
        self.fault.lock().map(|f| *f).unwrap_or_default()
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> FaultCounts {
        self.counts.lock().map(|c| *c).unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn count(counts: &Mutex<FaultCounts>, f: impl FnOnce(&mut FaultCounts)) {
    if let Ok(mut c) = counts.lock() {
        f(&mut c);
    }
}

/// Reads from `client` into `buf` until it holds a whole request head; `false` at EOF.
fn read_head(client: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<Option<usize>> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(end + 4));
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Moves `n` body bytes from `buf` (then the client) to `sink` (`None`: discarded).
fn pass_body(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut n: usize,
    mut sink: Option<&mut TcpStream>,
) -> io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let take = n.min(buf.len());
        if let Some(s) = sink.as_deref_mut() {
            s.write_all(&buf[..take])?;
        }
        buf.drain(..take);
        n -= take;
        if n == 0 {
            return Ok(());
        }
        let got = client.read(&mut chunk)?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..got]);
    }
}

/// One client connection of [`FaultProxy`]: each request head meets the fault in force.
fn serve_faulty(
    id: u64,
    mut client: TcpStream,
    upstream: SocketAddr,
    fault: &Mutex<StoreFault>,
    counts: &Mutex<FaultCounts>,
    open: &OpenConns,
) -> io::Result<()> {
    let mut server: Option<TcpStream> = None;
    let mut buf: Vec<u8> = Vec::new();
    let close_both = |client: &TcpStream, server: &Option<TcpStream>| {
        let _ = client.shutdown(Shutdown::Both);
        if let Some(s) = server {
            let _ = s.shutdown(Shutdown::Both);
        }
    };
    loop {
        let Some(head_len) = read_head(&mut client, &mut buf)? else {
            if let Some(s) = &server {
                let _ = s.shutdown(Shutdown::Write);
            }
            return Ok(());
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
        let body = content_length(&head);
        let now = fault.lock().map(|f| *f).unwrap_or_default();
        match now {
            StoreFault::Down => {
                count(counts, |c| c.down += 1);
                close_both(&client, &server);
                return Ok(());
            }
            StoreFault::BlackHole => {
                count(counts, |c| c.black_holed += 1);
                // Read and forget whatever comes, answer nothing, until the client leaves.
                let mut sink = [0u8; 16 * 1024];
                while client.read(&mut sink)? > 0 {}
                close_both(&client, &server);
                return Ok(());
            }
            StoreFault::SlowDown | StoreFault::InternalError => {
                let (status, code, retry) = if now == StoreFault::SlowDown {
                    count(counts, |c| c.slow_down += 1);
                    ("503 Slow Down", "SlowDown", "Retry-After: 1\r\n")
                } else {
                    count(counts, |c| c.internal_error += 1);
                    ("500 Internal Server Error", "InternalError", "")
                };
                let xml = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                     <Message>injected by the fault proxy</Message></Error>"
                );
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\n{retry}\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
                // The answer comes instead of `100 Continue`: the client sends no body.
                let _ = client.write_all(answer.as_bytes());
                close_both(&client, &server);
                return Ok(());
            }
            StoreFault::Pass | StoreFault::CutBody => {
                if server.is_none() {
                    match TcpStream::connect(upstream) {
                        Ok(s) => {
                            let (mut from, mut to) = (s.try_clone()?, client.try_clone()?);
                            std::thread::spawn(move || {
                                let _ = io::copy(&mut from, &mut to);
                                let _ = to.shutdown(Shutdown::Both);
                            });
                            open.add(id, &s);
                            server = Some(s);
                        }
                        Err(_) => {
                            count(counts, |c| c.upstream_down += 1);
                            close_both(&client, &server);
                            return Ok(());
                        }
                    }
                }
                let s = server.as_mut().expect("connected above");
                s.write_all(&buf[..head_len])?;
                buf.drain(..head_len);
                if now == StoreFault::CutBody {
                    count(counts, |c| c.cut += 1);
                    let _ = pass_body(&mut client, &mut buf, body / 2, Some(s));
                    close_both(&client, &server);
                    return Ok(());
                }
                count(counts, |c| c.passed += 1);
                pass_body(&mut client, &mut buf, body, Some(s))?;
            }
        }
    }
}
