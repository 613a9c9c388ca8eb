//! Runtime glue shared by the visdcam daemons and the CLI: systemd notification, logging,
//! shutdown signals, reading configuration files from disk, atomic file writes, name
//! resolution with a bound and the clock state (sync, boot id, clock notes).
//!
//! Everything that decides lives in `visdcam-core`; this crate only does the I/O around it.

pub mod clock;
pub mod config;
pub mod fsutil;
pub mod logging;
pub mod net;
pub mod notify;
pub mod shutdown;

/// Formats an error with its whole `source()` chain on one line: `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
