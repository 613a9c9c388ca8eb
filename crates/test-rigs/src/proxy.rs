//! A loopback TCP proxy in front of a server that records every HTTP request line the client
//! sends, so a test can count requests *at the server side* (how many list calls a command
//! made), not by asking the command.
//!
//! Bytes are forwarded unchanged both ways (keep-alive included); the client→server stream is
//! read as a sequence of HTTP/1.1 request heads, each followed by `Content-Length` body bytes.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// A running proxy; it stops accepting when dropped (connections in flight finish).
#[derive(Debug)]
pub struct CountingProxy {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`.
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the counting proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let seen = lines.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let seen = seen.clone();
                let (c2, s2) = match (client.try_clone(), server.try_clone()) {
                    (Ok(c), Ok(s)) => (c, s),
                    _ => continue,
                };
                std::thread::spawn(move || {
                    let _ = forward_requests(c2, s2, &seen);
                });
                std::thread::spawn(move || {
                    let (mut s, mut c) = (server, client);
                    let _ = io::copy(&mut s, &mut c);
                    let _ = c.shutdown(Shutdown::Write);
                });
            }
        });
        CountingProxy { addr, lines }
    }

    /// `http://127.0.0.1:PORT`, to use as the endpoint instead of the server's.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request line seen so far (`GET /bucket?list-type=2&prefix=... HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Forgets the lines seen so far.
    pub fn clear(&self) {
        if let Ok(mut l) = self.lines.lock() {
            l.clear();
        }
    }
}

/// Copies client → server, noting each request head's first line.
fn forward_requests(
    mut client: TcpStream,
    mut server: TcpStream,
    seen: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut body_left: usize = 0;
    loop {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            let _ = server.shutdown(Shutdown::Write);
            return Ok(());
        }
        server.write_all(&chunk[..n])?;
        buf.extend_from_slice(&chunk[..n]);
        loop {
            if body_left > 0 {
                let skip = body_left.min(buf.len());
                buf.drain(..skip);
                body_left -= skip;
                if body_left > 0 {
                    break;
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            if let Some(first) = head.lines().next() {
                if let Ok(mut s) = seen.lock() {
                    s.push(first.to_string());
                }
            }
            body_left = head
                .lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
        }
    }
}
