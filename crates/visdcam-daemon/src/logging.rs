//! Logging set-up: the journal (with `CAMERA=` and `SYSLOG_IDENTIFIER=`) when run by systemd,
//! plain stderr lines otherwise.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

struct StderrLog {
    prefix: String,
}

impl Log for StderrLog {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
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

/// Parses `LOG_LEVEL` values (`error` .. `trace`), defaulting to info.
pub fn level_from(name: &str) -> LevelFilter {
    name.parse().unwrap_or(LevelFilter::Info)
}

/// Installs the logger once. `camera` adds a `CAMERA=` journal field.
pub fn init(program: &str, camera: Option<&str>, level: LevelFilter) {
    let installed = if systemd_journal_logger::connected_to_journal() {
        JournalLog::new().map(|j| {
            let j = j.with_syslog_identifier(program.to_string());
            let j = match camera {
                Some(c) => j.with_extra_fields(vec![("CAMERA", c.to_string())]),
                None => j,
            };
            j.install().is_ok()
        })
    } else {
        Ok(false)
    };
    if !matches!(installed, Ok(true)) {
        let prefix = match camera {
            Some(c) => format!("{program}[{c}] "),
            None => format!("{program}: "),
        };
        let _ = log::set_boxed_logger(Box::new(StderrLog { prefix }));
    }
    log::set_max_level(level);
}
