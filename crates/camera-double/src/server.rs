//! Port `P`, the firmware's port-80 server: `/`, `/status`, `/control`, `/capture`, `/xclk`,
//! plus the double's own `/__double/*` endpoints. One thread per connection, keep-alive.

use std::io::{self, BufReader};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::http::{self, Request};
use crate::sensor::{self, ControlError};
use crate::{frames, Board, Conn, ControlCall, Fault, Shared};

/// ESP-IDF's `send_wait_timeout` default.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an idle keep-alive connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The LED is lit this long before `/capture` grabs a frame (`vTaskDelay(150)` in the sketch).
const LED_WARMUP: Duration = Duration::from_millis(150);

const CORS: (&str, &str) = ("Access-Control-Allow-Origin", "*");
const CLOSE: (&str, &str) = ("Connection", "close");

const INDEX_HTML: &str = "<!doctype html><html><head><title>ESP32 OV2640</title></head>\
<body><h1>ESP32-CAM double</h1><p><a href=\"/status\">/status</a></p></body></html>";

/// What to do with the connection after a response.
enum After {
    KeepAlive,
    Close,
}

/// Serves requests on one port-`P` connection until the client leaves or the double stops.
pub(crate) fn serve_connection(shared: &Arc<Shared>, conn: Conn) {
    let id = conn.id;
    if let Err(e) = serve(shared, id, conn.stream) {
        if !matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
        ) {
            eprintln!("camera-double: port {}: {e}", shared.port);
        }
    }
    shared.unregister(id);
}

fn serve(shared: &Arc<Shared>, id: u64, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(SEND_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                let _ = http::write_error(&mut w, 400, &[CLOSE]);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        match handle(shared, id, &req, &mut w)? {
            After::KeepAlive if !req.wants_close() => {}
            After::KeepAlive | After::Close => return Ok(()),
        }
    }
}

fn handle(shared: &Arc<Shared>, id: u64, req: &Request, w: &mut TcpStream) -> io::Result<After> {
    let known = matches!(
        req.path.as_str(),
        "/" | "/status" | "/control" | "/capture" | "/xclk"
    ) || req.path.starts_with("/__double/");
    if !known {
        http::write_error(w, 404, &[CLOSE])?;
        return Ok(After::Close);
    }
    if req.method != "GET" {
        http::write_error(w, 405, &[CLOSE])?;
        return Ok(After::Close);
    }
    let query = req.query.as_deref().unwrap_or("");
    match req.path.as_str() {
        "/" => http::write_response(w, 200, "text/html", &[], INDEX_HTML.as_bytes())?,
        "/status" => {
            let body = shared.lock().sensor.status_json();
            http::write_response(w, 200, "application/json", &[CORS], body.as_bytes())?;
        }
        "/control" => return control(shared, query, w),
        "/capture" => capture(shared, w)?,
        "/xclk" => {
            let Some(v) = http::query_value(query, "xclk") else {
                http::write_error(w, 404, &[CLOSE])?;
                return Ok(After::Close);
            };
            shared.lock().sensor.set_xclk(http::atoi(v));
            http::write_response(w, 200, "text/html", &[CORS], b"")?;
        }
        "/__double/fault" => return double_fault(shared, id, query, w),
        "/__double/controls" => {
            let mut body = String::new();
            for c in &shared.lock().control_log {
                let line = serde_json::json!({"var": c.var, "val": c.val, "status": c.status});
                body.push_str(&line.to_string());
                body.push('\n');
            }
            http::write_response(w, 200, "application/x-ndjson", &[], body.as_bytes())?;
        }
        "/__double/stats" => {
            let (fault, framesize) = {
                let st = shared.lock();
                (st.fault.mode_name(), st.sensor.framesize())
            };
            let body = serde_json::json!({
                "frames_served": shared.frames_served.load(Ordering::SeqCst),
                "stream_connections": shared.stream_connections.load(Ordering::SeqCst),
                "reboots": shared.reboots.load(Ordering::SeqCst),
                "fault": fault,
                "framesize": framesize,
            })
            .to_string();
            http::write_response(w, 200, "application/json", &[], body.as_bytes())?;
        }
        _ => {
            http::write_error(w, 404, &[CLOSE])?;
            return Ok(After::Close);
        }
    }
    Ok(After::KeepAlive)
}

/// `cmd_handler`: 404 when `var` or `val` is missing, 500 for an unknown var or a value the
/// driver refuses, else 200 with an empty body. Every call lands in the control log.
fn control(shared: &Arc<Shared>, query: &str, w: &mut TcpStream) -> io::Result<After> {
    let var = http::query_value(query, "var");
    let val = http::query_value(query, "val");
    let log = |status: u16| {
        shared.lock().control_log.push(ControlCall {
            var: var.unwrap_or("").to_owned(),
            val: val.unwrap_or("").to_owned(),
            status,
        });
    };
    let (Some(var), Some(raw)) = (var, val) else {
        log(404);
        http::write_error(w, 404, &[CLOSE])?;
        return Ok(After::Close);
    };
    let val = http::atoi(raw);
    let status = match apply_control(shared, var, val) {
        Ok(()) => 200,
        Err(why) => {
            if let Some(why) = why {
                eprintln!("camera-double: /control {var}={val}: {why}");
            }
            500
        }
    };
    log(status);
    if status == 200 {
        http::write_response(w, 200, "text/html", &[CORS], b"")?;
    } else {
        http::write_error(w, 500, &[])?;
    }
    Ok(After::KeepAlive)
}

/// Applies one setting; `Err(Some(msg))` for an internal failure worth logging.
fn apply_control(shared: &Arc<Shared>, var: &str, val: i64) -> Result<(), Option<String>> {
    let range = shared.lock().sensor.range(var);
    let Some((min, max)) = range else {
        return Err(None);
    };
    if !(min..=max).contains(&val) {
        return Err(None);
    }
    // A new frame size needs its frames before the sensor reports it (generated outside the
    // lock: port P keeps answering meanwhile).
    let new_frames = if var == "framesize" {
        let (fw, fh) = sensor::frame_size(val).ok_or(None)?;
        Some(frames::frames_for(fw, fh).map_err(|e| Some(e.to_string()))?)
    } else {
        None
    };
    let mut st = shared.lock();
    st.sensor.set(var, val).map_err(|e| match e {
        ControlError::UnknownVar | ControlError::OutOfRange { .. } => None,
    })?;
    if let Some(f) = new_frames {
        st.frames = f;
    }
    Ok(())
}

/// `capture_handler`: one JPEG with `X-Timestamp`; on an LED board the flash is lit 150 ms first.
fn capture(shared: &Arc<Shared>, w: &mut TcpStream) -> io::Result<()> {
    if shared.board == Board::WithLed {
        std::thread::sleep(LED_WARMUP);
    }
    let (frame, ts) = {
        let st = shared.lock();
        let up = st.booted_at.elapsed();
        let n = st.frames.frames.len();
        let i = (up.as_secs_f64() * shared.fps) as usize % n;
        (Arc::clone(&st.frames.frames[i]), Shared::timestamp(&st))
    };
    http::write_response(
        w,
        200,
        "image/jpeg",
        &[
            ("Content-Disposition", "inline; filename=capture.jpg"),
            CORS,
            ("X-Timestamp", &ts),
        ],
        &frame,
    )
}

/// `/__double/fault?mode=..&secs=..`: the fault is in force when the answer arrives. This
/// connection is spared by close/reboot so that the answer can still leave, then closed.
fn double_fault(
    shared: &Arc<Shared>,
    id: u64,
    query: &str,
    w: &mut TcpStream,
) -> io::Result<After> {
    let mode = http::query_value(query, "mode").unwrap_or("");
    match Fault::from_mode(mode, http::query_value(query, "secs")) {
        Ok(f) => {
            {
                let mut st = shared.lock();
                st.open.remove(&id);
                shared.apply_fault(&mut st, f);
            }
            http::write_response(w, 200, "text/plain", &[CLOSE], b"ok\n")?;
            Ok(After::Close)
        }
        Err(msg) => {
            http::write_response(
                w,
                400,
                "text/plain",
                &[CLOSE],
                format!("{msg}\n").as_bytes(),
            )?;
            Ok(After::Close)
        }
    }
}
