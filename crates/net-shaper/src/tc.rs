//! Running iproute2's `tc`: reading a device's qdiscs and classes, and installing a list of
//! commands in one `tc -batch -` process. Arguments are passed explicitly (no shell) and
//! stderr is kept for the error message.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use visdcam_core::tcplan::{self, Class, Qdisc, TcCommand};

use crate::error::Error;

/// Where Debian installs `tc`; the plain name (PATH) is the last resort. A user's PATH often
/// lacks /usr/sbin, and `status` works unprivileged.
const CANDIDATES: &[&str] = &["/usr/sbin/tc", "/sbin/tc"];

/// The `tc` program.
pub struct Tc {
    program: String,
}

/// Where a batch stopped.
pub struct BatchFailure {
    /// The command that failed, when `tc` said which line.
    pub command: Option<TcCommand>,
    /// `tc`'s error text.
    pub message: String,
}

impl Tc {
    pub fn find() -> Tc {
        let program = CANDIDATES
            .iter()
            .find(|p| Path::new(p).exists())
            .copied()
            .unwrap_or("tc");
        Tc {
            program: program.to_string(),
        }
    }

    fn output(&self, args: &[&str], stdin: Option<&str>) -> Result<Output, Error> {
        let spawn_err = |source: io::Error| Error::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_err)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // tc reads the whole batch before it exits; a write error means it died early,
            // and its exit status and stderr say why.
            let _ = pipe.write_all(text.as_bytes());
        }
        child.wait_with_output().map_err(spawn_err)
    }

    /// `tc [-s] <what> show dev D`, with the device named in any error.
    fn show(&self, what: &str, dev: &str, stats: bool) -> Result<String, Error> {
        let mut args = Vec::new();
        if stats {
            args.push("-s");
        }
        args.extend([what, "show", "dev", dev]);
        let out = self.output(&args, None)?;
        if !out.status.success() {
            return Err(Error::Device {
                dev: dev.to_string(),
                what: format!("cannot list its {what} entries"),
                message: stderr_text(&out),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn qdiscs(&self, dev: &str, stats: bool) -> Result<Vec<Qdisc>, Error> {
        let text = self.show("qdisc", dev, stats)?;
        tcplan::parse_qdiscs(&text).map_err(|source| Error::Parse {
            dev: dev.to_string(),
            source,
        })
    }

    pub fn classes(&self, dev: &str, stats: bool) -> Result<Vec<Class>, Error> {
        let text = self.show("class", dev, stats)?;
        tcplan::parse_classes(&text).map_err(|source| Error::Parse {
            dev: dev.to_string(),
            source,
        })
    }

    /// Runs the commands in one `tc -batch -`, which stops at the first failure.
    /// The outer error is for "tc could not run at all".
    pub fn batch(&self, cmds: &[TcCommand]) -> Result<Result<(), BatchFailure>, Error> {
        if cmds.is_empty() {
            return Ok(Ok(()));
        }
        for c in cmds {
            log::debug!("tc {c}");
        }
        let out = self.output(&["-batch", "-"], Some(&tcplan::batch_text(cmds)))?;
        if out.status.success() {
            return Ok(Ok(()));
        }
        let (line, message) = tcplan::batch_failure(&String::from_utf8_lossy(&out.stderr));
        let command = line.and_then(|n| cmds.get(n.checked_sub(1)?)).cloned();
        let message = if message.is_empty() {
            format!("tc exited with {}", out.status)
        } else {
            message
        };
        Ok(Err(BatchFailure { command, message }))
    }
}

fn stderr_text(out: &Output) -> String {
    let s = String::from_utf8_lossy(&out.stderr)
        .trim()
        .replace('\n', "; ");
    if s.is_empty() {
        format!("tc exited with {}", out.status)
    } else {
        s
    }
}
