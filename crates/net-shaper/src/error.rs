//! Everything `net-shaper` can fail with; every message names the device and what failed.

use std::fmt;
use std::io;
use std::path::PathBuf;

use visdcam_core::error::{Classify, ErrorKind};
use visdcam_core::tcplan::{ParseError, PlanError, TcCommand};

#[derive(Debug)]
pub enum Error {
    /// Bad command line.
    Usage(String),
    /// The configuration files (message carries `file:line`).
    Config(String),
    /// The settings make no usable plan.
    Plan(PlanError),
    /// No `--dev`, no `SHAPER_DEV`, and no default route to take the device from.
    NoDefaultRoute,
    /// `tc` could not be started.
    Spawn { program: String, source: io::Error },
    /// `tc` refused to show the device (typically: no such device). Nothing was changed.
    Device {
        dev: String,
        what: String,
        message: String,
    },
    /// `tc` printed something the parser does not understand.
    Parse { dev: String, source: ParseError },
    /// A root qdisc that is not ours and that `clear` could not put back.
    Refused {
        dev: String,
        kind: String,
        handle: String,
    },
    /// A command of the plan failed; `rollback` says what happened to the device after.
    Apply {
        dev: String,
        command: Option<TcCommand>,
        message: String,
        rollback: String,
    },
    /// Putting the previous root back failed.
    Restore {
        dev: String,
        command: Option<TcCommand>,
        message: String,
    },
    /// The file that remembers the previous root.
    State {
        dev: String,
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    /// `/proc/net/psched` is unreadable: tc would compute wrong burst sizes.
    Psched(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (try --help)"),
            Error::Config(m) => write!(f, "{m}"),
            Error::Plan(e) => write!(f, "{e}"),
            Error::NoDefaultRoute => write!(
                f,
                "no default route to take the interface from; set SHAPER_DEV in visdcam.conf or \
                 pass --dev"
            ),
            Error::Spawn { program, .. } => {
                write!(f, "cannot run `{program}` (package iproute2)")
            }
            Error::Device { dev, what, message } => {
                write!(f, "dev {dev}: {what}: {message}; nothing was changed")
            }
            Error::Parse { dev, .. } => write!(f, "dev {dev}: cannot read tc's answer"),
            Error::Refused { dev, kind, handle } => write!(
                f,
                "dev {dev}: its root qdisc `{kind} {handle}` was not installed by visdcam and \
                 `net-shaper clear` could not put it back as it is, so it is left alone; remove \
                 it first (tc qdisc del dev {dev} root) or shape another interface"
            ),
            Error::Apply {
                dev,
                command,
                message,
                rollback,
            } => {
                write!(f, "dev {dev}: applying the shaper failed")?;
                if let Some(c) = command {
                    write!(f, " at `tc {c}`")?;
                }
                write!(f, ": {message}; {rollback}")
            }
            Error::Restore {
                dev,
                command,
                message,
            } => {
                write!(f, "dev {dev}: cannot put the previous root qdisc back")?;
                if let Some(c) = command {
                    write!(f, " with `tc {c}`")?;
                }
                write!(f, ": {message}")
            }
            Error::State {
                dev, path, what, ..
            } => write!(
                f,
                "dev {dev}: cannot {what} {} (it remembers the root qdisc to put back on clear)",
                path.display()
            ),
            Error::Psched(_) => write!(
                f,
                "cannot read /proc/net/psched, which tc needs to convert burst sizes (is the \
                 service running with ProcSubset=pid?)"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn { source, .. } | Error::State { source, .. } | Error::Psched(source) => {
                Some(source)
            }
            Error::Parse { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Usage(_)
            | Error::Config(_)
            | Error::Plan(_)
            | Error::NoDefaultRoute
            | Error::Device { .. }
            | Error::Refused { .. } => ErrorKind::Config,
            Error::Apply { .. } | Error::Restore { .. } | Error::State { .. } => ErrorKind::Retry,
            Error::Spawn { .. } | Error::Parse { .. } | Error::Psched(_) => ErrorKind::Fatal,
        }
    }
}
