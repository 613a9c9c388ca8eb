//! `metrics [--http]`: the Prometheus text exposition of one snapshot on stdout. With `--http`
//! it answers one HTTP request read from stdin, as `visdcam-metrics@.service` does for each
//! connection `visdcam-metrics.socket` accepts (`Accept=yes`): nothing runs between scrapes
//! (docs/design/monitoring.md).

use std::io::Write;
use std::os::fd::AsFd;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use visdcam_core::monitor::{http_answer, http_request, render_metrics, METRICS_CONTENT_TYPE};

use crate::fail::{self, Failure};
use crate::monitor::{gather, REQUEST_TIMEOUT};
use crate::Ctx;

/// The most of a request head read.
const MAX_HEAD: usize = 8192;

/// Reads a request head from stdin: up to the blank line, [`MAX_HEAD`] bytes or
/// [`REQUEST_TIMEOUT`], whichever comes first.
fn read_head() -> String {
    // Unbuffered reads of fd 0: a buffered reader could hold bytes that poll() no longer sees.
    let stdin = std::io::stdin();
    let deadline = std::time::Instant::now() + REQUEST_TIMEOUT;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        if ms == 0 {
            break;
        }
        let mut fds = [PollFd::new(stdin.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(ms)) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
        match nix::unistd::read(stdin.as_fd(), &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// `metrics [--http]`.
pub fn run(ctx: &Ctx, http: bool) -> fail::Result<()> {
    let answer = if http {
        match http_request(&read_head()) {
            Ok((head_only, _)) => http_answer(
                200,
                METRICS_CONTENT_TYPE,
                &render_metrics(&gather(ctx, &[], true)),
                head_only,
            ),
            Err(answer) => answer,
        }
    } else {
        render_metrics(&gather(ctx, &[], true))
    };
    let mut out = std::io::stdout().lock();
    out.write_all(answer.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::failed(format!("cannot write the metrics: {e}")))
}
