//! Just enough HTTP/1.1 to play ESP-IDF's `esp_http_server`: request parsing, its response
//! formats (fixed-length and chunked), its error pages, `httpd_query_key_value` and `atoi`.

use std::io::{self, BufRead, Write};

/// Longest request head accepted (ESP-IDF's limits are 512 bytes of URI and 512 of header line).
const MAX_HEAD: usize = 8 * 1024;

/// One parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Request {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the client asked to close after this request.
    pub fn wants_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads one request head. `Ok(None)` on a clean EOF before the first byte.
/// A request body (`Content-Length`) is read and dropped.
pub fn read_request(r: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    let mut total = 0;
    // Skip empty lines between pipelined requests (RFC 9112 §2.2).
    loop {
        line.clear();
        let n = io::Read::take(&mut *r, MAX_HEAD as u64).read_line(&mut line)?;
        if n == 0 {
            return Ok(None);
        }
        total += n;
        if !line.trim().is_empty() {
            break;
        }
        if total > MAX_HEAD {
            return Err(bad("request head too long"));
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(&format!(
            "malformed request line {:?}",
            line.trim_end()
        )));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad(&format!("unsupported version {version:?}")));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (target.to_owned(), None),
    };
    let mut req = Request {
        method: method.to_owned(),
        path,
        query,
        headers: Vec::new(),
    };
    loop {
        line.clear();
        let n = io::Read::take(&mut *r, MAX_HEAD as u64).read_line(&mut line)?;
        total += n;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside the request head",
            ));
        }
        if total > MAX_HEAD {
            return Err(bad("request head too long"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            return Err(bad(&format!("malformed header line {l:?}")));
        };
        req.headers
            .push((name.trim().to_owned(), value.trim().to_owned()));
    }
    if let Some(len) = req.header("content-length") {
        let len: u64 = len
            .parse()
            .map_err(|_| bad(&format!("bad Content-Length {len:?}")))?;
        io::copy(&mut io::Read::take(&mut *r, len), &mut io::sink())?;
    }
    Ok(Some(req))
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reason phrase for the statuses the double sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Writes a fixed-length response the way `httpd_resp_send` does: status line, `Content-Type`,
/// `Content-Length`, then the handler's extra headers in the order it set them.
pub fn write_response(
    w: &mut impl Write,
    status: u16,
    content_type: &str,
    extra: &[(&str, &str)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}

/// Writes an error page the way `httpd_resp_send_err` does (`text/html`, its fixed messages).
pub fn write_error(w: &mut impl Write, status: u16, extra: &[(&str, &str)]) -> io::Result<()> {
    let msg = match status {
        400 => "Server unable to understand request due to invalid syntax",
        404 => "This URI does not exist",
        405 => "Request method for this URI is not handled by server",
        _ => "Server has encountered an unexpected error",
    };
    write_response(w, status, "text/html", extra, msg.as_bytes())
}

/// Writes the head of a chunked response the way the first `httpd_resp_send_chunk` does.
pub fn write_chunked_head(
    w: &mut impl Write,
    content_type: &str,
    extra: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
    );
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

/// Writes one chunk (`%x\r\n` + data + `\r\n`), as each `httpd_resp_send_chunk` call does.
pub fn write_chunk(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)
}

/// `httpd_query_key_value`: the raw (not URL-decoded) value of `key` in `a=b&c=d`.
/// `None` when the key is absent, has no `=`, or the value would not fit the firmware's 32-byte
/// buffer (the firmware then answers 404 as for a missing parameter).
pub fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .filter(|v| v.len() < 32)
}

/// C `atoi` on a 32-bit target: leading white space, optional sign, digits up to the first
/// non-digit; no digits gives 0; overflow saturates (as `strtol` does on the ESP32).
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut v: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        v = (v * 10 + i64::from(b - b'0')).min(i64::from(i32::MAX) + 1);
    }
    let v = if neg { -v } else { v };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_matches_c() {
        for (s, want) in [
            ("12", 12),
            ("  -2", -2),
            ("+7x", 7),
            ("abc", 0),
            ("", 0),
            ("3.9", 3),
            ("0x10", 0),
            ("99999999999", i64::from(i32::MAX)),
            ("-99999999999", i64::from(i32::MIN)),
            ("- 1", 0),
        ] {
            assert_eq!(atoi(s), want, "atoi({s:?})");
        }
    }

    #[test]
    fn query_value_is_raw_and_exact() {
        let q = "var=quality&val=%31&x&valx=3";
        assert_eq!(query_value(q, "var"), Some("quality"));
        assert_eq!(query_value(q, "val"), Some("%31"));
        assert_eq!(query_value(q, "x"), None);
        assert_eq!(query_value(q, "va"), None);
        assert_eq!(query_value("val=", "val"), Some(""));
        let long = format!("val={}", "1".repeat(32));
        assert_eq!(query_value(&long, "val"), None);
    }

    #[test]
    fn reads_a_request_head() {
        let raw = b"GET /control?var=a&val=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /";
        let mut r = io::BufReader::new(&raw[..]);
        let req = read_request(&mut r).expect("parses").expect("one request");
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/control");
        assert_eq!(req.query.as_deref(), Some("var=a&val=1"));
        assert!(req.wants_close());
        assert!(read_request(&mut r).is_err(), "truncated second request");
        let mut empty = io::BufReader::new(&b""[..]);
        assert!(read_request(&mut empty).expect("clean EOF").is_none());
    }

    #[test]
    fn chunk_framing() {
        let mut out = Vec::new();
        write_chunk(&mut out, &[7u8; 26]).expect("writes");
        assert_eq!(&out[..4], b"1a\r\n");
        assert_eq!(&out[30..], b"\r\n");
    }
}
