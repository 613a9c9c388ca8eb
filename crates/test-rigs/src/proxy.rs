//! A loopback TCP proxy in front of a server that records every HTTP request line the client
//! sends, so a test can count requests *at the server side* (how many list calls a command
//! made), not by asking the command.
//!
//! Bytes are forwarded unchanged both ways (keep-alive included); the client→server stream is
//! read as a sequence of HTTP/1.1 request heads, each followed by `Content-Length` body bytes.
//! [`CountingProxy::hold_object_gets`] holds back object downloads (a `GET` that is not a
//! listing) until released, so a test can act while a client waits on them.

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
