//! `top [--once]`: a snapshot every [`REFRESH`], drawn by `core::top::render`. On a terminal
//! it draws on the alternate screen in place and reads keys unbuffered (q, Q or Ctrl-C quit;
//! the terminal's mode and screen are restored on the way out); otherwise it prints each view
//! as plain lines.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, LocalFlags, SetArg, Termios};
use visdcam_core::monitor::Snapshot;
use visdcam_core::top::{render, OpenAlert, Uplink, View};
use visdcam_daemon::config::load_global_from;

use crate::alert::{load_state, state_dir, ALERT_UNITS, STATE_FILE};
use crate::fail;
use crate::monitor::{gather, uplink_device};
use crate::Ctx;

pub const REFRESH: Duration = Duration::from_secs(2);

/// The uplink and its transmit counter.
fn uplink(dev: Option<&str>) -> Option<Uplink> {
    let device = uplink_device(dev)?;
    let tx = std::fs::read_to_string(format!("/sys/class/net/{device}/statistics/tx_bytes"))
        .unwrap_or_default();
    Some(Uplink {
        device,
        tx_bytes: tx.trim().parse().ok()?,
    })
}

/// The raised alerts from the checker's state; `None` when it cannot be read.
fn alerts() -> Option<Vec<OpenAlert>> {
    let dir = state_dir();
    match std::fs::metadata(dir.join(STATE_FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
        Ok(_) => {}
    }
    std::fs::read_to_string(dir.join(STATE_FILE)).ok()?;
    Some(
        load_state(&dir)
            .raised()
            .into_iter()
            .map(|(kind, subject, o)| OpenAlert {
                kind,
                subject: subject.to_string(),
                since: o.since,
            })
            .collect(),
    )
}

/// Puts the terminal in no-echo, unbuffered mode until dropped.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut t = saved.clone();
        t.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO | LocalFlags::ISIG);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &t).ok()?;
        Some(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// The terminal's alternate screen (and a hidden cursor) until dropped, like `top` and
/// `less`: what was on the screen before comes back at the end.
struct AltScreen;

impl AltScreen {
    fn enter() -> AltScreen {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J");
        let _ = out.flush();
        AltScreen
    }
}

impl Drop for AltScreen {
    fn drop(&mut self) {
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?25h\x1b[?1049l");
        let _ = out.flush();
    }
}

/// Waits up to `d` for a key; true when it says quit (q, Q, Ctrl-C, Ctrl-D or end of input).
fn quit_key_within(d: Duration) -> bool {
    let stdin = std::io::stdin();
    let end = Instant::now() + d;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {
                let mut b = [0u8; 16];
                // Unbuffered: a buffered reader could keep keys poll() no longer sees.
                match nix::unistd::read(stdin.as_fd(), &mut b) {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => {
                        if b[..n].iter().any(|c| matches!(c, b'q' | b'Q' | 3 | 4)) {
                            return true;
                        }
                    }
                }
            }
            Ok(_) => {}
            Err(_) => return false,
        }
    }
}

pub fn run(ctx: &Ctx, once: bool) -> fail::Result<()> {
    let g = load_global_from(&ctx.dir)?;
    let tty = std::io::stdout().is_terminal() && !once;
    let _raw = if tty && std::io::stdin().is_terminal() {
        RawMode::enter()
    } else {
        None
    };
    let _screen = tty.then(AltScreen::enter);
    let mut prev: Option<(Snapshot, Instant, Option<Uplink>)> = None;
    let mut out = std::io::stdout();
    loop {
        let snap = gather(ctx, ALERT_UNITS, false);
        let at = Instant::now();
        let up = uplink(g.shaper_dev.as_deref());
        let open = alerts();
        let lines = render(&View {
            now: &snap,
            prev: prev.as_ref().map(|p| &p.0),
            elapsed_s: prev
                .as_ref()
                .map_or(0.0, |p| at.duration_since(p.1).as_secs_f64()),
            uplink: up
                .as_ref()
                .map(|u| (u, prev.as_ref().and_then(|p| p.2.as_ref()))),
            alerts: open.as_deref(),
            tz: g.key_tz,
        });
        let text = if tty {
            // Home, each line cleared to its end, then the rest of the screen cleared.
            let mut t = String::from("\x1b[H");
            for l in &lines {
                t.push_str(l);
                t.push_str("\x1b[K\r\n");
            }
            t.push_str("\x1b[J");
            t
        } else {
            let mut t = lines.join("\n");
            t.push_str("\n\n");
            t
        };
        if out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader went away (a closed pipe): nothing more to show.
            return Ok(());
        }
        if once {
            return Ok(());
        }
        prev = Some((snap, at, up));
        let quit = if tty {
            quit_key_within(REFRESH)
        } else {
            std::thread::sleep(REFRESH);
            false
        };
        if quit {
            return Ok(());
        }
    }
}
