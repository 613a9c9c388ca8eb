//! The little HTTP/1.1 the page needs, with every size bounded: a request head of at most
//! [`MAX_HEAD`] bytes and [`MAX_HEADERS`] header lines, only `GET` and `HEAD`, and one request
//! per connection (every answer says `Connection: close`).

use std::io::{self, Read, Write};
use std::net::TcpStream;

use base64::Engine;

/// Largest request head (request line and headers) read.
pub const MAX_HEAD: usize = 8 * 1024;
/// Most header lines read.
pub const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path without the query.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The password of a `Basic` authorization (the user name is ignored).
    pub fn basic_password(&self) -> Option<String> {
        let v = self.header("authorization")?;
        let (scheme, b64) = v.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (_, pass) = text.split_once(':')?;
        Some(pass.to_string())
    }
}

/// Why a request could not be read; the status to answer with, if any.
#[derive(Debug, PartialEq, Eq)]
pub enum BadRequest {
    /// The client went away or was too slow: close without an answer.
    Gone,
    Status(u16, &'static str),
}

/// Parses a request head (the bytes before the blank line).
pub fn parse_head(head: &[u8]) -> Result<Request, BadRequest> {
    let text = std::str::from_utf8(head).map_err(|_| BadRequest::Status(400, "not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(BadRequest::Status(400, "bad request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(BadRequest::Status(505, "HTTP/1.x only"));
    }
    if !target.starts_with('/') {
        return Err(BadRequest::Status(400, "bad target"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if headers.len() == MAX_HEADERS {
            return Err(BadRequest::Status(431, "too many header lines"));
        }
        let (k, v) = line
            .split_once(':')
            .ok_or(BadRequest::Status(400, "bad header line"))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
    })
}

/// Reads a request head from the connection (its read timeout bounds the wait).
pub fn read_request(conn: &mut TcpStream) -> Result<Request, BadRequest> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = find_blank_line(&buf) {
            return parse_head(&buf[..end]);
        }
        if buf.len() >= MAX_HEAD {
            return Err(BadRequest::Status(431, "request head too large"));
        }
        let want = chunk.len().min(MAX_HEAD + 4 - buf.len());
        match conn.read(&mut chunk[..want]) {
            Ok(0) => return Err(BadRequest::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(BadRequest::Gone),
        }
    }
}

fn find_blank_line(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes a complete answer (headers and body; no body for `HEAD`).
pub fn respond(
    conn: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    conn.write_all(out.as_bytes())?;
    if !head_only {
        conn.write_all(body)?;
    }
    conn.flush()
}

/// A plain-text answer.
pub fn text(conn: &mut TcpStream, status: u16, body: &str) -> io::Result<()> {
    respond(
        conn,
        status,
        "text/plain; charset=utf-8",
        &[],
        format!("{body}\n").as_bytes(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_head_parses_and_bad_ones_get_their_status() {
        let r = parse_head(
            b"GET /cam1.mjpg?x=1 HTTP/1.1\r\nHost: pi\r\nAuthorization: Basic dTpzZWNyZXQgcHc=",
        )
        .unwrap();
        assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/cam1.mjpg"));
        assert_eq!(r.query, "x=1");
        assert_eq!(r.header("host"), Some("pi"));
        assert_eq!(r.basic_password().as_deref(), Some("secret pw"));
        assert_eq!(
            parse_head(b"GET / HTTP/2"),
            Err(BadRequest::Status(505, "HTTP/1.x only"))
        );
        assert_eq!(
            parse_head(b"GET /"),
            Err(BadRequest::Status(400, "bad request line"))
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("\r\nX-{i}: y")).collect();
        assert_eq!(
            parse_head(format!("GET / HTTP/1.1{many}").as_bytes()),
            Err(BadRequest::Status(431, "too many header lines"))
        );
    }
}
