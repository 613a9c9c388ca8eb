//! Helpers shared by the integration tests: raw HTTP over TcpStream, a de-chunking multipart
//! reader, polling with deadlines and a GStreamer one-JPEG decoder.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

pub const BOUNDARY: &str = "123456789000000000000987654321";

/// `host:port` of an `http://host:port/...` URL.
pub fn authority(url: &str) -> String {
    let rest = url.strip_prefix("http://").expect("http URL");
    rest.split('/').next().expect("authority").to_owned()
}

/// Polls `f` until it returns `Some` or `timeout` passes.
pub fn poll_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < end,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Header name/value pairs in order.
pub type Headers = Vec<(String, String)>;

/// Reads a status line and headers; returns status, headers and the raw head bytes.
pub fn read_head(r: &mut impl BufRead) -> io::Result<(u16, Headers, Vec<u8>)> {
    let mut raw = Vec::new();
    let mut line = String::new();
    r.read_line(&mut line)?;
    raw.extend_from_slice(line.as_bytes());
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("status line {line:?}"))
        })?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.extend_from_slice(line.as_bytes());
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (n, v) = l.split_once(':').expect("header line");
        headers.push((n.trim().to_owned(), v.trim().to_owned()));
    }
    Ok((status, headers, raw))
}

/// One GET with `Connection: close`, body read by Content-Length.
pub fn get(authority: &str, target: &str) -> io::Result<Response> {
    let mut s = TcpStream::connect(authority)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    let mut r = BufReader::new(s);
    let (status, headers, _) = read_head(&mut r)?;
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("numeric Content-Length"))
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Removes chunked transfer encoding from a reader.
pub struct Dechunk<R> {
    inner: R,
    left: usize,
    done: bool,
}

impl<R: BufRead> Dechunk<R> {
    pub fn new(inner: R) -> Self {
        Dechunk {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Dechunk<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                return Ok(0);
            }
            self.left = usize::from_str_radix(line.trim_end(), 16).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("chunk size {line:?}: {e}"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                return Ok(0);
            }
        }
        let n = self.inner.by_ref().take(self.left as u64).read(buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.left -= n;
        if self.left == 0 {
            let mut crlf = [0; 2];
            self.inner.read_exact(&mut crlf)?;
            if &crlf != b"\r\n" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not ended by CRLF",
                ));
            }
        }
        Ok(n)
    }
}

/// One multipart part.
#[derive(Debug)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `X-Timestamp` in seconds.
    pub fn timestamp(&self) -> f64 {
        self.header("X-Timestamp")
            .and_then(|t| t.parse().ok())
            .expect("numeric X-Timestamp")
    }
}

/// A raw `/stream` client.
pub struct StreamClient {
    pub socket: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub raw_head: Vec<u8>,
    body: BufReader<Dechunk<BufReader<TcpStream>>>,
}

impl StreamClient {
    /// Connects and sends the request without reading anything.
    pub fn request(stream_url: &str) -> io::Result<TcpStream> {
        let auth = authority(stream_url);
        let mut s = TcpStream::connect(&auth)?;
        write!(
            s,
            "GET /stream HTTP/1.1\r\nHost: {auth}\r\nAccept: */*\r\n\r\n"
        )?;
        Ok(s)
    }

    /// Reads the response head on a socket from [`StreamClient::request`].
    pub fn from_socket(socket: TcpStream, timeout: Duration) -> io::Result<StreamClient> {
        socket.set_read_timeout(Some(timeout))?;
        let mut r = BufReader::new(socket.try_clone()?);
        let (status, headers, raw_head) = read_head(&mut r)?;
        Ok(StreamClient {
            socket,
            status,
            headers,
            raw_head,
            body: BufReader::new(Dechunk::new(r)),
        })
    }

    pub fn connect(stream_url: &str) -> io::Result<StreamClient> {
        StreamClient::from_socket(StreamClient::request(stream_url)?, Duration::from_secs(10))
    }

    /// Reads the next part, checking the firmware's framing on the way.
    pub fn next_part(&mut self) -> io::Result<Part> {
        let mut line = String::new();
        self.body.read_line(&mut line)?;
        if line != "\r\n" {
            return Err(bad(format!(
                "expected CRLF before the boundary, got {line:?}"
            )));
        }
        line.clear();
        self.body.read_line(&mut line)?;
        if line != format!("--{BOUNDARY}\r\n") {
            return Err(bad(format!("expected the boundary, got {line:?}")));
        }
        let mut headers = Vec::new();
        loop {
            line.clear();
            if self.body.read_line(&mut line)? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (n, v) = l
                .split_once(": ")
                .ok_or_else(|| bad(format!("header {l:?}")))?;
            headers.push((n.to_owned(), v.to_owned()));
        }
        let len: usize = headers
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .and_then(|(_, v)| v.parse().ok())
            .ok_or_else(|| bad(format!("no Content-Length in {headers:?}")))?;
        let mut body = vec![0; len];
        self.body.read_exact(&mut body)?;
        Ok(Part { headers, body })
    }
}

fn bad(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Decodes one JPEG with GStreamer (`appsrc ! jpegdec ! appsink`): its width and height, or why
/// no picture came out.
pub fn decode_jpeg(jpeg: &[u8]) -> Result<(i32, i32), String> {
    gst::init().map_err(|e| e.to_string())?;
    let pipeline =
        gst::parse::launch("appsrc name=src caps=image/jpeg ! jpegdec ! appsink name=sink")
            .map_err(|e| e.to_string())?
            .downcast::<gst::Pipeline>()
            .map_err(|_| "not a pipeline".to_owned())?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or("no appsrc")?;
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let result = (|| {
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| e.to_string())?;
        src.push_buffer(gst::Buffer::from_slice(jpeg.to_vec()))
            .map_err(|e| e.to_string())?;
        src.end_of_stream().map_err(|e| e.to_string())?;
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(10))
            .ok_or("no decoded picture")?;
        let caps = sample.caps().ok_or("sample without caps")?;
        let s = caps.structure(0).ok_or("empty caps")?;
        let w = s.get::<i32>("width").map_err(|e| e.to_string())?;
        let h = s.get::<i32>("height").map_err(|e| e.to_string())?;
        Ok((w, h))
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}
