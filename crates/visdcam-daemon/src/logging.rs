//! Logging set-up: the journal (with `CAMERA=` and `SYSLOG_IDENTIFIER=`) when run by systemd,
//! plain stderr lines otherwise. Libraries' own chatter (HTTP, TLS, D-Bus) is capped at `warn`
//! whatever `LOG_LEVEL` says, so `LOG_LEVEL=debug` shows visdcam's decisions, not every socket
//! read.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

/// Targets of third-party crates whose debug output is not ours to show.
const QUIET_TARGETS: &[&str] = &["ureq", "rustls", "zbus", "tracing", "async_io", "polling"];

/// Whether a record from `target` at `level` is shown.
fn shown(target: &str, level: Level) -> bool {
    level <= Level::Warn
        || !QUIET_TARGETS
            .iter()
            .any(|q| target == *q || target.starts_with(&format!("{q}::")))
}

struct StderrLog {
    prefix: String,
}

impl Log for StderrLog {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        shown(m.target(), m.level())
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "{}{}: {}",
                self.prefix,
                record.level().as_str().to_ascii_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// The journal logger behind the same target filter.
struct Filtered(JournalLog);

impl Log for Filtered {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        shown(m.target(), m.level()) && self.0.enabled(m)
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// Parses `LOG_LEVEL` values (`error` .. `trace`), defaulting to info.
pub fn level_from(name: &str) -> LevelFilter {
    name.parse().unwrap_or(LevelFilter::Info)
}

/// Installs the logger once. `camera` adds a `CAMERA=` journal field.
pub fn init(program: &str, camera: Option<&str>, level: LevelFilter) {
    let journal = systemd_journal_logger::connected_to_journal()
        .then(|| JournalLog::new().ok())
        .flatten()
        .map(|j| {
            let j = j.with_syslog_identifier(program.to_string());
            match camera {
                Some(c) => j.with_extra_fields(vec![("CAMERA", c.to_string())]),
                None => j,
            }
        });
    let installed = match journal {
        Some(j) => log::set_boxed_logger(Box::new(Filtered(j))).is_ok(),
        None => false,
    };
    if !installed {
        let prefix = match camera {
            Some(c) => format!("{program}[{c}] "),
            None => format!("{program}: "),
        };
        let _ = log::set_boxed_logger(Box::new(StderrLog { prefix }));
    }
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_debug_is_hidden_but_their_warnings_and_our_debug_are_shown() {
        assert!(!shown("ureq::unversioned::transport", Level::Debug));
        assert!(!shown("rustls", Level::Trace));
        assert!(shown("ureq::pool", Level::Warn));
        assert!(shown("uploader", Level::Debug));
        assert!(
            shown("ureqx", Level::Debug),
            "prefix match is by module path"
        );
    }
}
