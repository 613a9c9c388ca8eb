//! A real headless Chromium (Debian's `chromium`) driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: commands in on fd 3, answers and events out on fd 4, each a JSON
//! text ending in a NUL byte), so a test can load a page, run JavaScript in it, and take
//! screenshots of the whole page or of one element, without a WebDriver or a WebSocket client.
//!
//! ```text
//!  test ──{"id":N,"method":…,"sessionId":…}\0──▶ fd 3 ┐
//!                                                    chromium --headless (one tab)
//!  test ◀──{"id":N,"result":…}\0 / events\0──── fd 4 ┘
//! ```

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use serde_json::{json, Value};

use crate::process::ChildGuard;

/// The browser binary (Debian's package `chromium`).
pub const BINARY: &str = "/usr/bin/chromium";

/// How long one DevTools command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium with one tab, killed when dropped.
pub struct Chromium {
    _child: ChildGuard,
    _profile: tempfile::TempDir,
    to_browser: File,
    from_browser: mpsc::Receiver<Value>,
    session: String,
    next_id: u64,
    log: PathBuf,
}

/// A rectangle on the page, in CSS pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

fn high_fd(fd: &OwnedFd) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    let n = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, owned by nobody else.
    #[allow(unsafe_code, reason = "wrapping the descriptor fcntl just created")]
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

impl Chromium {
    /// Starts Chromium with a window of `width` x `height` and attaches to its tab. Its
    /// stderr goes to `log_dir/chromium.log`.
    pub fn start(width: u32, height: u32, log_dir: &Path) -> io::Result<Chromium> {
        if !Path::new(BINARY).exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{BINARY} is missing: apt-get install chromium (cargo xtask deps)"),
            ));
        }
        let profile = tempfile::tempdir()?;
        // Pipe A: the test writes commands, the browser reads them on fd 3.
        // Pipe B: the browser writes answers on fd 4, the test reads them.
        let (a_read, a_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let (b_read, b_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        // Above 4, so the dup2s below cannot overwrite each other's source.
        let (child_in, child_out) = (high_fd(&a_read)?, high_fd(&b_write)?);
        drop((a_read, b_write));
        let log = log_dir.join("chromium.log");
        let mut cmd = Command::new(BINARY);
        cmd.args([
            "--headless=new",
            // As root (the test runs as root) Chromium refuses its sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log)?);
        let (cin, cout) = (child_in.as_raw_fd(), child_out.as_raw_fd());
        // SAFETY: runs between fork and exec; dup2 is async-signal-safe and allocates nothing.
        #[allow(
            unsafe_code,
            reason = "placing the DevTools pipes on fds 3 and 4 in the child"
        )]
        unsafe {
            cmd.pre_exec(move || {
                if nix::libc::dup2(cin, 3) < 0 || nix::libc::dup2(cout, 4) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = ChildGuard::spawn("chromium", cmd)?;
        drop((child_in, child_out));
        let (tx, rx) = mpsc::channel();
        let reader = File::from(b_read);
        std::thread::spawn(move || {
            let mut r = BufReader::new(reader);
            loop {
                let mut msg = Vec::new();
                match r.read_until(0, &mut msg) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        msg.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&msg) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut c = Chromium {
            _child: child,
            _profile: profile,
            to_browser: File::from(a_write),
            from_browser: rx,
            session: String::new(),
            next_id: 0,
            log,
        };
        let target = c.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target_id = target["targetId"].as_str().unwrap_or_default().to_string();
        let attached = c.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
        )?;
        c.session = attached["sessionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        c.call("Page.enable", json!({}))?;
        c.call("Runtime.enable", json!({}))?;
        c.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        Ok(c)
    }

    /// Sends a command (to the tab once attached) and waits for its result.
    pub fn call(&mut self, method: &str, params: Value) -> io::Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("JSON");
        bytes.push(0);
        self.to_browser.write_all(&bytes)?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self.from_browser.recv_timeout(left).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "{method}: no answer from Chromium within {} s; its log:\n{}",
                        COMMAND_TIMEOUT.as_secs(),
                        self.log_tail()
                    ),
                )
            })?;
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    return Err(io::Error::other(format!("{method}: {e}")));
                }
                return Ok(v["result"].clone());
            }
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Sets headers sent with every request of the tab (e.g. `Authorization`).
    pub fn set_headers(&mut self, headers: Value) -> io::Result<()> {
        self.call("Network.enable", json!({}))?;
        self.call("Network.setExtraHTTPHeaders", json!({"headers": headers}))?;
        Ok(())
    }

    /// Opens `url` in the tab (returns once the navigation is committed).
    pub fn navigate(&mut self, url: &str) -> io::Result<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(e) = r.get("errorText").and_then(Value::as_str) {
            return Err(io::Error::other(format!("navigating to {url}: {e}")));
        }
        Ok(())
    }

    /// Evaluates a JavaScript expression (promises awaited) and returns its value.
    pub fn eval(&mut self, expression: &str) -> io::Result<Value> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        )?;
        if let Some(e) = r.get("exceptionDetails") {
            return Err(io::Error::other(format!("{expression}: {e}")));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Polls `expression` until it is `true`, or fails with its last value at the deadline.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let v = self.eval(expression)?;
            if v == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("`{expression}` still {v} after {} s", timeout.as_secs()),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bounding box of the first element matching `selector`.
    pub fn rect(&mut self, selector: &str) -> io::Result<Rect> {
        let sel = serde_json::to_string(selector).expect("JSON");
        let v = self.eval(&format!(
            "(() => {{ const r = document.querySelector({sel}).getBoundingClientRect(); \
             return [r.x, r.y, r.width, r.height]; }})()"
        ))?;
        let n = |i: usize| v[i].as_f64().unwrap_or(0.0);
        Ok(Rect {
            x: n(0),
            y: n(1),
            width: n(2),
            height: n(3),
        })
    }

    /// A PNG screenshot of the viewport, or of `clip` only.
    pub fn screenshot(&mut self, clip: Option<Rect>) -> io::Result<Vec<u8>> {
        let mut params = json!({"format": "png"});
        if let Some(r) = clip {
            params["clip"] =
                json!({"x": r.x, "y": r.y, "width": r.width, "height": r.height, "scale": 1});
        }
        let r = self.call("Page.captureScreenshot", params)?;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .map_err(|e| io::Error::other(format!("screenshot data: {e}")))
    }
}
