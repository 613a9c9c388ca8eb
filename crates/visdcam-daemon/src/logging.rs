//! Logging set-up: the journal (with `CAMERA=` and `SYSLOG_IDENTIFIER=`) when run by systemd,
//! plain stderr lines otherwise.
//!
//! Only visdcam's own crates log below `warn`: every library (HTTP, its protocol layer, TLS,
//! D-Bus) is capped at `warn` whatever `LOG_LEVEL` says. `LOG_LEVEL=debug` shows visdcam's
//! decisions, not every socket read, and no level shows what a library's protocol trace would:
//! signed URLs (a credential and a signature valid for an hour) and body bytes. As a second
//! guard every message, at every level, has the values of SigV4 query parameters
//! (`X-Amz-Signature=`, `X-Amz-Credential=`, `X-Amz-Security-Token=`) and of `Authorization:`
//! headers replaced by `REDACTED`.

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};
use systemd_journal_logger::JournalLog;

/// Targets (crate names) whose debug and trace records are shown: visdcam's own.
const OWN_TARGETS: &[&str] = &[
    "visdcam",
    "visdcam_core",
    "visdcam_daemon",
    "visdcam_s3",
    "uploader",
    "seg_cam",
    "daynight",
    "net_shaper",
];

/// Whether a record from `target` at `level` is shown.
fn shown(target: &str, level: Level) -> bool {
    level <= Level::Warn
        || OWN_TARGETS
            .iter()
            .any(|q| target == *q || target.starts_with(&format!("{q}::")))
}

/// Names whose values are secret: SigV4 presigned-URL parameters and the HTTP header.
const SECRET_NAMES: &[&str] = &[
    "x-amz-signature=",
    "x-amz-credential=",
    "x-amz-security-token=",
    "authorization:",
    "authorization=",
];

/// `text` with the value after each [`SECRET_NAMES`] occurrence (any case) replaced by
/// `REDACTED`; a value ends at `&`, whitespace, a quote, `,`, `;`, `>` or the end.
pub fn redact(text: &str) -> std::borrow::Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !SECRET_NAMES.iter().any(|n| lower.contains(n)) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = SECRET_NAMES.iter().find(|n| lower[i..].starts_with(*n));
        match hit {
            Some(name) => {
                let start = i + name.len();
                out.push_str(&text[i..start]);
                // `Authorization: AWS4-HMAC-SHA256 Credential=...`: the whole line's rest.
                let header = name.starts_with("authorization");
                let rest = &text[start..];
                let skip = rest.len() - rest.trim_start().len();
                let end = rest[skip..]
                    .find(|c: char| {
                        if header {
                            c == '\n' || c == '\r' || c == '"'
                        } else {
                            c.is_whitespace() || matches!(c, '&' | '"' | '\'' | ',' | ';' | '>')
                        }
                    })
                    .map_or(rest.len(), |e| e + skip);
                out.push_str(&rest[..skip]);
                out.push_str("REDACTED");
                i = start + end;
            }
            None => {
                let c = text[i..].chars().next().expect("i is on a char boundary");
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    std::borrow::Cow::Owned(out)
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
                redact(&record.args().to_string())
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
            let text = record.args().to_string();
            self.0.log(
                &Record::builder()
                    .args(format_args!("{}", redact(&text)))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            );
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
        assert!(
            !shown("ureq_proto::util", Level::Trace),
            "the protocol dump"
        );
        assert!(!shown("rustls", Level::Trace));
        assert!(!shown("some_new_library", Level::Debug));
        assert!(shown("ureq::pool", Level::Warn));
        assert!(shown("ureq_proto::util", Level::Error));
        assert!(shown("uploader", Level::Debug));
        assert!(shown("uploader::run", Level::Trace));
        assert!(shown("visdcam_s3::store", Level::Debug));
        assert!(
            !shown("uploaderx", Level::Debug),
            "prefix match is by module path"
        );
    }

    #[test]
    fn signatures_credentials_and_authorization_are_redacted() {
        let url = "PUT http://127.0.0.1:9000/b/k.ts?X-Amz-Algorithm=AWS4-HMAC-SHA256\
                   &X-Amz-Credential=AKID%2F20250101%2Fus-east-1%2Fs3%2Faws4_request\
                   &X-Amz-Date=20250101T000000Z&x-amz-signature=0123abcd HTTP/1.1";
        assert_eq!(
            redact(url),
            "PUT http://127.0.0.1:9000/b/k.ts?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=REDACTED&X-Amz-Date=20250101T000000Z&x-amz-signature=REDACTED \
             HTTP/1.1"
        );
        assert_eq!(
            redact("\"X-Amz-Security-Token=tok\", 1"),
            "\"X-Amz-Security-Token=REDACTED\", 1"
        );
        assert_eq!(
            redact("authorization: AWS4-HMAC-SHA256 Credential=AKID/x, Signature=ff\nnext"),
            "authorization: REDACTED\nnext"
        );
        assert!(matches!(
            redact("uploaded seg-1-0001.ts as cam1/x.ts"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(redact("é x-amz-signature=é"), "é x-amz-signature=REDACTED");
    }
}
