//! What kind of failure an error is: the one question every retry loop asks.

/// How a caller should react to an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient (network, camera, store, disk full): retry with backoff.
    Retry,
    /// The configuration is wrong: nothing will work until a person fixes it.
    Config,
    /// A bug or a broken installation: stop and say so.
    Fatal,
}

/// Errors that know their kind.
pub trait Classify {
    fn kind(&self) -> ErrorKind;
}
