//! Port `P+1`, the firmware's stream server: one task serving queued connections one after
//! another, each `/stream` an endless paced multipart/x-mixed-replace of JPEG parts in chunked
//! transfer encoding, with the stall/corrupt/html/404 faults.

use std::io::{self, BufReader, Read};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http;
use crate::{Conn, Fault, Shared};

pub(crate) const BOUNDARY: &str = "123456789000000000000987654321";
/// ESP-IDF's `recv_wait_timeout` and `send_wait_timeout` defaults.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a stalled stream looks whether its client left.
const STALL_POLL: Duration = Duration::from_millis(50);

const HTML_PAGE: &str = "<!DOCTYPE html><html><head><title>Not a camera</title></head>\
<body><h1>Portal</h1><p>This network requires sign-in.</p></body></html>";

/// The single stream task: waits for a queued connection, serves it to the end, repeats.
pub(crate) fn stream_task(shared: &Arc<Shared>) {
    loop {
        let conn = {
            let mut st = shared.lock();
            loop {
                if st.shutdown {
                    return;
                }
                if let Some(c) = st.stream_queue.pop_front() {
                    break c;
                }
                st = shared
                    .wake
                    .wait_timeout(st, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
        };
        let id = conn.id;
        if let Err(e) = serve(shared, conn) {
            if !matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::NotConnected
                    | io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
            ) {
                eprintln!("camera-double: stream port {}: {e}", shared.port + 1);
            }
        }
        shared.unregister(id);
    }
}

fn serve(shared: &Arc<Shared>, conn: Conn) -> io::Result<()> {
    let Conn { epoch, stream, .. } = conn;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let Some(req) = http::read_request(&mut reader)? else {
        return Ok(()); // the client gave up while waiting its turn
    };
    let mut w = stream;
    let close = [("Connection", "close")];
    if req.path != "/stream" {
        return http::write_error(&mut w, 404, &close);
    }
    if req.method != "GET" {
        return http::write_error(&mut w, 405, &close);
    }
    match shared.lock().fault {
        Fault::NotFound => return http::write_error(&mut w, 404, &close),
        Fault::Html => {
            return http::write_response(&mut w, 200, "text/html", &close, HTML_PAGE.as_bytes())
        }
        _ => {}
    }
    stream_parts(shared, epoch, &mut w)
}

/// What the pacing wait decided.
enum Next {
    Send(Part),
    Stall,
    Stop,
}

struct Part {
    jpeg: Arc<[u8]>,
    corrupt: bool,
    timestamp: String,
}

fn stream_parts(shared: &Arc<Shared>, epoch: u64, w: &mut TcpStream) -> io::Result<()> {
    let content_type = format!("multipart/x-mixed-replace;boundary={BOUNDARY}");
    http::write_chunked_head(
        w,
        &content_type,
        &[("Access-Control-Allow-Origin", "*"), ("X-Framerate", "60")],
    )?;
    let period = Duration::from_secs_f64(1.0 / shared.fps);
    let mut due = Instant::now();
    let mut index = 0usize;
    loop {
        match wait_for_frame(shared, epoch, due, &mut index) {
            Next::Stop => return Ok(()),
            Next::Stall => return stall_forever(shared, epoch, w),
            Next::Send(part) => {
                let data: std::borrow::Cow<'_, [u8]> = if part.corrupt {
                    corrupt(&part.jpeg).into()
                } else {
                    (&part.jpeg[..]).into()
                };
                let head = format!(
                    "Content-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\r\n",
                    data.len(),
                    part.timestamp
                );
                let mut out = Vec::with_capacity(data.len() + 256);
                http::write_chunk(&mut out, format!("\r\n--{BOUNDARY}\r\n").as_bytes())?;
                http::write_chunk(&mut out, head.as_bytes())?;
                http::write_chunk(&mut out, &data)?;
                io::Write::write_all(w, &out)?;
                shared.frames_served.fetch_add(1, Ordering::SeqCst);
            }
        }
        let now = Instant::now();
        due += period;
        if due + period < now {
            // Fell behind (slow client): do not burst to catch up.
            due = now;
        }
    }
}

/// Waits until the next frame is due, or something stops or stalls the stream.
fn wait_for_frame(shared: &Arc<Shared>, epoch: u64, due: Instant, index: &mut usize) -> Next {
    let mut st = shared.lock();
    loop {
        if st.shutdown || st.epoch != epoch {
            return Next::Stop;
        }
        if st.fault == Fault::Stall {
            return Next::Stall;
        }
        let now = Instant::now();
        if now >= due {
            let frames = &st.frames.frames;
            let jpeg = Arc::clone(&frames[*index % frames.len()]);
            *index = index.wrapping_add(1);
            return Next::Send(Part {
                jpeg,
                corrupt: st.fault == Fault::CorruptJpeg,
                timestamp: Shared::timestamp(&st),
            });
        }
        st = shared
            .wake
            .wait_timeout(st, due - now)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0);
    }
}

/// A stalled socket sends nothing more, ever; the task is released only when the client
/// closes it or the double closes it (close/reboot/drop).
fn stall_forever(shared: &Arc<Shared>, epoch: u64, w: &mut TcpStream) -> io::Result<()> {
    w.set_read_timeout(Some(STALL_POLL))?;
    let mut scratch = [0u8; 512];
    loop {
        {
            let st = shared.lock();
            if st.shutdown || st.epoch != epoch {
                return Ok(());
            }
        }
        match w.read(&mut scratch) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Garbage with no JPEG markers: the first half of a real frame, every byte XOR 0x5A.
fn corrupt(jpeg: &[u8]) -> Vec<u8> {
    jpeg[..jpeg.len() / 2].iter().map(|b| b ^ 0x5A).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_parts_lose_the_jpeg_markers() {
        let fake = [0xFF, 0xD8, 1, 2, 3, 4, 0xFF, 0xD9];
        let bad = corrupt(&fake);
        assert_eq!(bad.len(), 4);
        assert_ne!(&bad[..2], &[0xFF, 0xD8]);
    }
}
