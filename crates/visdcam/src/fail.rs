//! How a command fails: a message for people and the exit status scripts see.

use std::fmt;

use visdcam_daemon::config::LoadError;

/// The documented exit statuses (also in `visdcam help` and docs/reference/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operation failed: a unit failed, a check failed, a file could not be written.
    Failed = 1,
    /// Unknown command or option, bad value, unknown camera.
    Usage = 2,
    /// Permission denied: run with sudo (or allow it with polkit).
    Permission = 4,
    /// A configuration file is invalid, or no camera is configured (`EX_CONFIG`).
    Config = 78,
    /// Stopped by Ctrl-C or SIGTERM before it finished (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure {
            exit,
            message: message.into(),
        }
    }

    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Failed, message)
    }

    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Config, message)
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The hint every permission error ends with.
pub const SUDO_HINT: &str = "permission denied: run it with sudo (or allow it with a polkit rule)";

impl From<LoadError> for Failure {
    fn from(e: LoadError) -> Failure {
        let message = visdcam_daemon::error_chain(&e);
        match e {
            LoadError::UnknownCamera { .. } | LoadError::BadName(_) => Failure::usage(message),
            LoadError::Config(_) => Failure::config(message),
            LoadError::Io { ref source, .. }
                if source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                Failure::new(Exit::Permission, format!("{message}; {SUDO_HINT}"))
            }
            LoadError::Io { .. } => Failure::failed(message),
        }
    }
}

pub type Result<T> = std::result::Result<T, Failure>;
