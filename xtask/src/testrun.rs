//! Running `cargo test` and counting what it really exercised: its output goes to the terminal
//! live, and every libtest `test result:` line (one per test binary and doc-test run) is added
//! up, so a summary can say how many tests passed, failed or were ignored.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::ops::AddAssign;
use std::process::{Command, Stdio};

use crate::util::{describe, root};

/// Tests counted from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
}

impl Totals {
    /// Tests that ran (passed or failed).
    pub fn ran(&self) -> u64 {
        self.passed + self.failed
    }
}

impl AddAssign for Totals {
    fn add_assign(&mut self, o: Totals) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.ignored += o.ignored;
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} ignored",
            self.passed, self.failed, self.ignored
        )
    }
}

/// The counts in one libtest summary line, e.g.
/// `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.02s`
/// (or `test result: FAILED. ...`); `None` for any other line.
pub fn parse_result_line(line: &str) -> Option<Totals> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let (status, counts) = rest.split_once(". ")?;
    if status != "ok" && status != "FAILED" {
        return None;
    }
    let mut t = Totals::default();
    let mut seen = 0;
    for part in counts.split(';') {
        let mut words = part.split_whitespace();
        let (Some(n), Some(what)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else {
            continue;
        };
        match what {
            "passed" => t.passed = n,
            "failed" => t.failed = n,
            "ignored" => t.ignored = n,
            _ => continue,
        }
        seen += 1;
    }
    (seen == 3).then_some(t)
}

/// Runs a `cargo test` command in the workspace root, echoing it and copying its standard
/// output to ours line by line as it comes; returns whether it succeeded and the sum of the
/// `test result:` lines it printed (also when it failed).
pub fn run_tests(cmd: &mut Command) -> (Result<(), String>, Totals) {
    cmd.current_dir(root()).stdout(Stdio::piped());
    eprintln!("$ {}", describe(cmd));
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return (
                Err(format!("cannot run {}: {e}", describe(cmd))),
                Totals::default(),
            )
        }
    };
    let mut totals = Totals::default();
    let mut reader = BufReader::new(child.stdout.take().expect("stdout is piped"));
    let mut out = io::stdout();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // A closed terminal must not stop the tests; the counting goes on regardless.
        let _ = out.write_all(&line).and_then(|()| out.flush());
        if let Some(t) = parse_result_line(&String::from_utf8_lossy(&line)) {
            totals += t;
        }
    }
    let res = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("`{}` failed: {status}", describe(cmd))),
        Err(e) => Err(format!("waiting for {}: {e}", describe(cmd))),
    };
    (res, totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_line() {
        let t = parse_result_line(
            "test result: ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; \
             finished in 0.02s\n",
        );
        assert_eq!(
            t,
            Some(Totals {
                passed: 12,
                failed: 0,
                ignored: 3
            })
        );
    }

    #[test]
    fn failed_line() {
        let t = parse_result_line(
            "test result: FAILED. 40 passed; 2 failed; 1 ignored; 0 measured; 5 filtered out; \
             finished in 31.20s",
        );
        assert_eq!(
            t,
            Some(Totals {
                passed: 40,
                failed: 2,
                ignored: 1
            })
        );
    }

    #[test]
    fn leading_whitespace_and_crlf() {
        let t = parse_result_line(
            "  test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 7 filtered out; finished in 0.00s\r\n",
        );
        assert_eq!(t, Some(Totals::default()));
    }

    #[test]
    fn other_lines_are_not_results() {
        for line in [
            "",
            "running 3 tests",
            "test foo::bar ... ok",
            "test foo::bar ... ignored, needs root",
            "test result: ok.",
            "test result: maybe. 1 passed; 0 failed; 0 ignored",
            "test result: ok. 1 passed; 0 failed",
            "the test result: ok. 1 passed; 0 failed; 0 ignored",
            "   Doc-tests visdcam_core",
        ] {
            assert_eq!(parse_result_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn totals_add_up() {
        let mut t = Totals::default();
        t += Totals {
            passed: 1,
            failed: 2,
            ignored: 3,
        };
        t += Totals {
            passed: 10,
            failed: 0,
            ignored: 1,
        };
        assert_eq!(
            t,
            Totals {
                passed: 11,
                failed: 2,
                ignored: 4
            }
        );
        assert_eq!(t.ran(), 13);
        assert_eq!(t.to_string(), "11 passed, 2 failed, 4 ignored");
    }
}
