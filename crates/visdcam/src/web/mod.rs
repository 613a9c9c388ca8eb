//! `visdcam web`: the live-view page for the house, run by `visdcam-web.service` when
//! `visdcam-web.socket` gets a connection (or by hand, binding `WEB_LISTEN` itself).
//!
//! ```text
//!  browser ──HTTP──▶ accept loop ──thread per connection (≤ WEB_MAX_CONNECTIONS)──▶ route
//!     /                the page (every camera's tile; nothing from elsewhere)
//!     /api/status      each camera's units in `visdcam status` words, RAM queue, live state
//!     /<camera>.mjpg   multipart/x-mixed-replace, ≤ WEB_VIEWERS_PER_CAMERA ──▶ hub::Hub
//!     /<camera>.jpg    the newest frame                                       ──▶ hub::Hub
//!  hub::Hub (one per camera) ──one connection while anyone watches──▶ RUN_DIR/seg-<camera>/live.sock
//! ```
//!
//! Blocking I/O and a thread per connection, like every visdcam binary (no async runtime).
//! It only reads: systemd over D-Bus (as `status`), the RAM directories, the recorders' live
//! sockets. Beyond the loopback address it requires the password `visdcam web-password`
//! stored (HTTP Basic authentication; [`password`]), and refuses to start without one.
//! Socket-activated, it exits after [`IDLE_EXIT`] without a connection; systemd starts it
//! again at the next one.

mod footage;
mod http;
mod hub;
pub mod password;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use visdcam_core::config::Settings;

use crate::fail::{self, Failure};
use crate::ram::now_ms;
use crate::systemd::Systemd;
use crate::Ctx;
use http::{BadRequest, Request};
use hub::{Hub, LiveState};

/// How long a request head may take to arrive, and a write may block, before the
/// connection is dropped (a viewer that stops reading is dropped after this).
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// A live viewer with no new frame gets the last one again this often (and so is noticed
/// when it has gone away).
const RESEND: Duration = Duration::from_secs(5);
/// Socket-activated, the service exits after this long without any connection.
pub const IDLE_EXIT: Duration = Duration::from_secs(600);
/// Most passwords remembered as verified (an Argon2 check per request would cost 19 MiB
/// and tens of milliseconds each).
const VERIFIED_KEPT: usize = 16;

struct Web {
    ctx: Ctx,
    settings: Settings,
    hubs: HashMap<String, Arc<Hub>>,
    password: Option<String>,
    /// `Authorization` values that verified.
    verified: Mutex<Vec<String>>,
    /// One Argon2 check at a time: bounded memory, and a bounded guessing rate.
    verifying: Mutex<()>,
    active: AtomicUsize,
    last_activity: AtomicU64,
    started: Instant,
    /// The page's Content-Security-Policy (with the bucket's origin for footage, if any).
    csp: String,
}

/// The socket systemd passed (`LISTEN_FDS=1` for this process), if any.
fn activated_listener() -> Option<TcpListener> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    let fds_ok = std::env::var("LISTEN_FDS").ok().as_deref() == Some("1");
    if !(pid_ok && fds_ok) {
        return None;
    }
    use std::os::fd::FromRawFd;
    // SAFETY: with LISTEN_PID naming this process and LISTEN_FDS=1, systemd passed exactly one
    // open socket as fd 3 (sd_listen_fds(3)); nothing else in this process owns fd 3.
    #[allow(
        unsafe_code,
        reason = "taking ownership of the socket systemd passed as fd 3"
    )]
    let l = unsafe { TcpListener::from_raw_fd(3) };
    Some(l)
}

/// Whether the page may listen on `addr` with or without a password; the error says what to do.
pub fn listen_check(addr: &SocketAddr, password_set: bool, origin: &str) -> Result<(), String> {
    if addr.ip().is_loopback() || password_set {
        Ok(())
    } else {
        Err(format!(
            "{origin}: WEB_LISTEN={addr} reaches beyond this machine, and no live-view \
             password is set: set one with `visdcam web-password` (or listen on 127.0.0.1)"
        ))
    }
}

/// The generator's name: systemd runs `/usr/lib/systemd/system-generators/visdcam-web-generator`,
/// a link to `visdcam`, at boot and at every daemon-reload.
pub const GENERATOR: &str = "visdcam-web-generator";

/// The generator's drop-in for visdcam-web.socket.
pub const GENERATED_DROPIN: &str = "visdcam-web.socket.d/50-web-listen.conf";

/// Runs as a systemd generator (`visdcam-web-generator NORMAL_DIR [EARLY_DIR LATE_DIR]`):
/// writes a drop-in that makes visdcam-web.socket listen on `WEB_LISTEN`. A configuration error
/// is reported and nothing written (the socket keeps the shipped 127.0.0.1:8088, and the page
/// itself then names the error). Never fails the boot: always exit 0.
pub fn generator(args: &[std::ffi::OsString]) -> std::process::ExitCode {
    let Some(normal) = args.first() else {
        eprintln!("{GENERATOR}: usage: {GENERATOR} NORMAL_DIR [EARLY_DIR LATE_DIR]");
        return std::process::ExitCode::SUCCESS;
    };
    let dir = visdcam_daemon::config::config_dir();
    let settings = match visdcam_daemon::config::load_global_from(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "{GENERATOR}: {}; visdcam-web.socket keeps its shipped address",
                visdcam_daemon::error_chain(&e)
            );
            return std::process::ExitCode::SUCCESS;
        }
    };
    let path = std::path::Path::new(normal).join(GENERATED_DROPIN);
    let text = format!(
        "# Generated by {GENERATOR} from WEB_LISTEN ({}); edit that, not this.\n\
         [Socket]\nListenStream=\nListenStream={}\n",
        settings.origin_of("WEB_LISTEN"),
        settings.web_listen
    );
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&path, text));
    if let Err(e) = written {
        eprintln!("{GENERATOR}: writing {}: {e}", path.display());
    }
    std::process::ExitCode::SUCCESS
}

/// `visdcam web`.
pub fn serve(ctx: Ctx) -> fail::Result<()> {
    let settings = visdcam_daemon::config::load_global_from(&ctx.dir)?;
    visdcam_daemon::logging::init(
        "visdcam-web",
        None,
        visdcam_daemon::logging::level_from(&settings.log_level),
    );
    let origin = format!(
        "{} ({})",
        visdcam_daemon::config::global_path(&ctx.dir).display(),
        settings.origin_of("WEB_LISTEN")
    );
    let password = password::load(&ctx.dir).map_err(Failure::config)?;
    // Checked before binding: a refused address is never listened on, not even briefly.
    listen_check(&settings.web_listen, password.is_some(), &origin).map_err(Failure::config)?;
    let (listener, activated) = match activated_listener() {
        Some(l) => (l, true),
        None => (
            TcpListener::bind(settings.web_listen).map_err(|e| {
                Failure::failed(format!("cannot listen on {}: {e}", settings.web_listen))
            })?,
            false,
        ),
    };
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::failed(format!("the listening socket: {e}")))?;
    if activated && addr != settings.web_listen {
        return Err(Failure::config(format!(
            "{origin}: WEB_LISTEN is {} but visdcam-web.socket listens on {addr}: run \
             `systemctl daemon-reload && systemctl restart visdcam-web.socket` after changing it",
            settings.web_listen
        )));
    }
    listen_check(&addr, password.is_some(), &origin).map_err(Failure::config)?;
    let max_viewers = settings.web_viewers_per_camera as usize;
    let hubs = ctx
        .known
        .iter()
        .map(|c| (c.clone(), Hub::new(settings.live_socket(c), max_viewers)))
        .collect();
    let csp = format!("{CSP}; media-src 'self'");
    let web = Arc::new(Web {
        csp,
        ctx,
        settings,
        hubs,
        password,
        verified: Mutex::new(Vec::new()),
        verifying: Mutex::new(()),
        active: AtomicUsize::new(0),
        last_activity: AtomicU64::new(0),
        started: Instant::now(),
    });
    log::info!(
        "serving the live view of {} camera(s) on http://{addr}/{}",
        web.hubs.len(),
        if web.password.is_some() {
            " (password required)"
        } else {
            ""
        }
    );
    if activated {
        let w = web.clone();
        std::thread::spawn(move || loop {
            std::thread::sleep(Duration::from_secs(10));
            let idle = w.started.elapsed().saturating_sub(Duration::from_millis(
                w.last_activity.load(Ordering::Relaxed),
            ));
            if w.active.load(Ordering::Relaxed) == 0 && idle >= IDLE_EXIT {
                log::info!(
                    "no connection for {} s: exiting (the socket stays)",
                    idle.as_secs()
                );
                std::process::exit(0);
            }
        });
    }
    let max = web.settings.web_max_connections as usize;
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                log::warn!("accepting a connection: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        web.touch();
        let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
        let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
        if web.active.fetch_add(1, Ordering::SeqCst) >= max {
            web.active.fetch_sub(1, Ordering::SeqCst);
            let _ = conn.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = http::text(
                &mut conn,
                503,
                &format!("busy: {max} connections already (WEB_MAX_CONNECTIONS)"),
            );
            continue;
        }
        let w = web.clone();
        let spawned = std::thread::Builder::new()
            .name("web-conn".into())
            .spawn(move || {
                w.handle(conn);
                w.touch();
                w.active.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(e) = spawned {
            web.active.fetch_sub(1, Ordering::SeqCst);
            log::warn!("starting a connection thread: {e}");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct CameraStatus {
    camera: String,
    /// `visdcam status` lines: recorder, uploader, then RAM (or what went wrong).
    lines: Vec<String>,
    queued: Option<usize>,
    queued_bytes: Option<u64>,
    live: LiveState,
}

#[derive(Serialize)]
struct StatusDoc {
    now_ms: u64,
    /// Why systemd could not be asked, if it could not.
    error: Option<String>,
    cameras: Vec<CameraStatus>,
}

impl Web {
    fn touch(&self) {
        self.last_activity
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn authorized(&self, req: &Request) -> bool {
        let Some(stored) = &self.password else {
            return true;
        };
        let Some(value) = req.header("authorization") else {
            return false;
        };
        let known = |v: &Vec<String>| v.iter().any(|k| k.as_bytes() == value.as_bytes());
        if known(&self.verified.lock().unwrap_or_else(|p| p.into_inner())) {
            return true;
        }
        let Some(pass) = req.basic_password() else {
            return false;
        };
        let ok = {
            let _one = self.verifying.lock().unwrap_or_else(|p| p.into_inner());
            password::verify(stored, &pass)
        };
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if v.len() == VERIFIED_KEPT {
                v.remove(0);
            }
            v.push(value.to_string());
        }
        ok
    }

    fn handle(&self, mut conn: TcpStream) {
        let req = match http::read_request(&mut conn) {
            Ok(r) => r,
            Err(BadRequest::Gone) => return,
            Err(BadRequest::Status(code, why)) => {
                let _ = http::text(&mut conn, code, why);
                return;
            }
        };
        let head_only = req.method == "HEAD";
        if req.method != "GET" && !head_only {
            let _ = http::respond(
                &mut conn,
                405,
                "text/plain; charset=utf-8",
                &[("Allow", "GET, HEAD".into())],
                b"only GET and HEAD\n",
                false,
            );
            return;
        }
        if !self.authorized(&req) {
            let _ = http::respond(
                &mut conn,
                401,
                "text/plain; charset=utf-8",
                &[(
                    "WWW-Authenticate",
                    "Basic realm=\"visdcam\", charset=\"UTF-8\"".into(),
                )],
                b"the live view needs its password (visdcam web-password)\n",
                head_only,
            );
            return;
        }
        let path = req.path.as_str();
        let result = if path == "/" {
            let page = page(&self.ctx.known);
            http::respond(
                &mut conn,
                200,
                "text/html; charset=utf-8",
                &[("Content-Security-Policy", self.csp.clone())],
                page.as_bytes(),
                head_only,
            )
        } else if path == "/api/status" {
            let doc = serde_json::to_vec(&self.status()).expect("plain data serialises");
            http::respond(&mut conn, 200, "application/json", &[], &doc, head_only)
        } else if ["/api/footage", "/api/play.m3u8", "/api/segment"].contains(&path) {
            self.footage(&mut conn, &req, head_only)
        } else if let Some((cam, kind)) = path
            .strip_prefix('/')
            .and_then(|p| p.rsplit_once('.'))
            .filter(|(c, k)| self.hubs.contains_key(*c) && (*k == "mjpg" || *k == "jpg"))
        {
            let hub = self.hubs[cam].clone();
            if kind == "mjpg" {
                stream(&mut conn, &hub, head_only)
            } else {
                snapshot(&mut conn, &hub, head_only)
            }
        } else {
            http::text(&mut conn, 404, "no such page")
        };
        if let Err(e) = result {
            log::debug!("{} {}: {e}", req.method, req.path);
        }
    }

    /// `/api/footage?camera=C` (today's spans), `/api/play.m3u8?camera=C&from=MS&to=MS` and
    /// `/api/segment?camera=C&key=K` (one segment from the bucket).
    fn footage(&self, conn: &mut TcpStream, req: &Request, head_only: bool) -> std::io::Result<()> {
        let q = |name: &str| {
            req.query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        let Some(camera) = q("camera").filter(|c| self.hubs.contains_key(c)) else {
            return http::text(conn, 404, "no such camera");
        };
        if req.path == "/api/segment" {
            let Some(key) = q("key").and_then(|k| footage::decode(&k)) else {
                return http::text(conn, 400, "key is needed");
            };
            if head_only {
                return http::text(conn, 405, "GET only");
            }
            return footage::segment(&self.ctx, &camera, &key, conn);
        }
        if req.path == "/api/footage" {
            let doc = footage::today(&self.ctx, &camera, chrono::Utc::now());
            let body = serde_json::to_vec(&doc).expect("plain data serialises");
            return http::respond(conn, 200, "application/json", &[], &body, head_only);
        }
        let ms = |name: &str| q(name).and_then(|v| v.parse::<i64>().ok());
        let (Some(from), Some(to)) = (ms("from"), ms("to")) else {
            return http::text(conn, 400, "from and to (ms since the epoch) are needed");
        };
        match footage::playlist(&self.ctx, &camera, from, to) {
            Ok(text) => http::respond(
                conn,
                200,
                "application/vnd.apple.mpegurl",
                &[],
                text.as_bytes(),
                head_only,
            ),
            Err(e) => http::text(conn, 404, &e),
        }
    }

    fn status(&self) -> StatusDoc {
        let now = now_ms();
        let mut doc = StatusDoc {
            now_ms: now,
            error: None,
            cameras: Vec::new(),
        };
        let sd = match Systemd::connect() {
            Ok(sd) => Some(sd),
            Err(f) => {
                doc.error = Some(f.message);
                None
            }
        };
        for cam in &self.ctx.known {
            let live = self.hubs[cam].state();
            let mut cs = CameraStatus {
                camera: cam.clone(),
                lines: Vec::new(),
                queued: None,
                queued_bytes: None,
                live,
            };
            if let Some(sd) = &sd {
                match crate::status::camera(&self.ctx, sd, cam, now) {
                    Ok((cj, infos)) => {
                        cs.lines = crate::status::camera_lines(&cj, &infos, now)
                            .into_iter()
                            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                            .collect();
                        cs.queued = cj.ram.as_ref().map(|r| r.queued);
                        cs.queued_bytes = cj.ram.as_ref().map(|r| r.queued_bytes);
                    }
                    Err(f) => cs.lines.push(f.message),
                }
            }
            doc.cameras.push(cs);
        }
        doc
    }
}

/// The page allows only itself: no script, style or image from anywhere else.
const CSP: &str = "default-src 'self'; img-src 'self'; style-src 'self' 'unsafe-inline'; \
                   script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'";

fn page(cameras: &[String]) -> String {
    let tiles: String = cameras
        .iter()
        .map(|c| {
            format!(
                "<section class=\"tile\" data-camera=\"{c}\"><h2>{c}</h2>\
                 <div class=\"pic\"><img alt=\"{c} live\" src=\"/{c}.mjpg\">\
                 <p class=\"down\" hidden></p></div>\
                 <ul class=\"words\"><li>…</li></ul>\
                 <details class=\"footage\"><summary>Today's footage</summary>\
                 <div class=\"spans\"></div>\
                 <video controls muted playsinline hidden></video></details></section>\n"
            )
        })
        .collect();
    include_str!("page.html").replace("<!--TILES-->", &tiles)
}

/// Writes one multipart part.
fn part(conn: &mut TcpStream, f: &hub::Frame) -> std::io::Result<()> {
    use std::io::Write;
    let head = format!(
        "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Time: {}\r\n\r\n",
        f.jpeg.len(),
        f.wall_ms
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(&f.jpeg)?;
    conn.write_all(b"\r\n")?;
    conn.flush()
}

/// Whether the peer closed its end (checked without waiting).
fn peer_gone(conn: &TcpStream) -> bool {
    if conn.set_nonblocking(true).is_err() {
        return true;
    }
    let mut b = [0u8; 1];
    let gone = match conn.peek(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    gone || conn.set_nonblocking(false).is_err()
}

fn stream(conn: &mut TcpStream, hub: &Arc<Hub>, head_only: bool) -> std::io::Result<()> {
    let Some(mut viewer) = hub.join() else {
        return http::text(
            conn,
            503,
            "this camera has its maximum of viewers (WEB_VIEWERS_PER_CAMERA)",
        );
    };
    use std::io::Write;
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
          Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
    )?;
    if head_only {
        return Ok(());
    }
    loop {
        match viewer.next(RESEND) {
            Ok(f) => part(conn, &f)?,
            Err(_) => match viewer.latest() {
                Some(f) => part(conn, &f)?,
                None if peer_gone(conn) => return Ok(()),
                None => {}
            },
        }
    }
}

fn snapshot(conn: &mut TcpStream, hub: &Arc<Hub>, head_only: bool) -> std::io::Result<()> {
    let Some(mut viewer) = hub.join() else {
        return http::text(
            conn,
            503,
            "this camera has its maximum of viewers (WEB_VIEWERS_PER_CAMERA)",
        );
    };
    match viewer.next(hub::SNAPSHOT_WAIT) {
        Ok(f) => {
            let age_s = now_ms().saturating_sub(f.wall_ms) / 1000;
            http::respond(
                conn,
                200,
                "image/jpeg",
                &[
                    ("X-Frame-Time", f.wall_ms.to_string()),
                    ("X-Frame-Age-Seconds", age_s.to_string()),
                ],
                &f.jpeg,
                head_only,
            )
        }
        Err(why) => http::text(
            conn,
            503,
            &format!(
                "no picture: {}",
                why.unwrap_or_else(|| "no frame from the recorder yet".into())
            ),
        ),
    }
}
