//! `cargo xtask ci`: everything CI checks, in the order that fails fastest; the arm64 `.deb`
//! (a cross build of every binary, the slowest step) comes last, after every test.
//!
//! Tests that need what a plain `cargo test --workspace` does not have (root and a container,
//! or a long run) are `#[ignore = "..."]`d, so that run reports them as ignored; each target
//! holding them then gets its own step running exactly those with `--ignored`. At the end (also
//! when a step fails) it prints one line per step with its time, ok/FAILED and, for a test
//! step, the passed/failed/ignored totals from cargo test's `test result:` lines, then a grand
//! total: what the run really exercised.

use std::time::{Duration, Instant};

use crate::testrun::{run_tests, Totals};
use crate::util::{cargo, ignored_tests, run};

/// Test targets with `#[ignore]`d long tests that need nothing but time (run with `--ignored`).
const LONG_TESTS: &[(&str, &str)] = &[
    ("uploader", "upload"),
    ("uploader", "watchdog"),
    ("seg-cam", "contain"),
    // The recorder under a 4 % CPU quota at 1600×1200 (root: a cgroup of its own).
    ("seg-cam", "slow"),
    // Five live viewers for a minute against the recording (needs seg-cam, built by the
    // workspace test step).
    ("visdcam", "web"),
    ("seg-cam", "memory"),
];

/// Test targets with `#[ignore]`d tests that boot systemd in a container (root,
/// systemd-nspawn, debootstrap); run with `--ignored`, one at a time. The end-to-end test of
/// the installed package (visdcam/e2e) is the `e2e` step, its soak (visdcam/soak) the `soak`
/// step.
const CONTAINER_TESTS: &[(&str, &str)] = &[
    ("test-rigs", "container_rig"),
    ("visdcam", "cli_systemd"),
    ("visdcam", "doctor"),
    ("daynight", "e2e_systemd"),
    // The live-view page's units under systemd, in a real headless Chromium (also needs
    // seg-cam and uploader, built by the workspace test step).
    ("visdcam", "web_systemd"),
    ("visdcam", "monitoring_systemd"),
];

/// Minutes of the soak CI runs (`cargo xtask soak`; docs/reliability.md records longer runs).
/// Its seed is new each run and printed, so a failure can be replayed with `--seed`.
const CI_SOAK_MINUTES: u64 = 10;

/// One step of the run as the summary shows it.
struct Step {
    name: String,
    took: Duration,
    ok: bool,
    /// `Some` for a step that ran tests.
    tests: Option<Totals>,
    /// Whether the step ran `#[ignore]`d tests (`--ignored`).
    ignored_run: bool,
}

/// What the run did so far.
#[derive(Default)]
struct Run {
    steps: Vec<Step>,
}

impl Run {
    /// A step that runs no tests (fmt, clippy, a build).
    fn plain(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        let started = Instant::now();
        let res = f();
        self.steps.push(Step {
            name: name.into(),
            took: started.elapsed(),
            ok: res.is_ok(),
            tests: None,
            ignored_run: false,
        });
        res
    }

    /// A step that runs tests and reports their totals. A step meant to run `#[ignore]`d tests
    /// fails if it ran none (an `#[ignore]` removed or a test renamed would otherwise pass it
    /// silently).
    fn tests(
        &mut self,
        name: &str,
        ignored_run: bool,
        f: impl FnOnce() -> (Result<(), String>, Totals),
    ) -> Result<(), String> {
        let started = Instant::now();
        let (mut res, totals) = f();
        if ignored_run && res.is_ok() && totals.ran() == 0 {
            res = Err(format!(
                "{name}: ran no test (expected #[ignore]d tests to run with --ignored)"
            ));
        }
        self.steps.push(Step {
            name: name.into(),
            took: started.elapsed(),
            ok: res.is_ok(),
            tests: Some(totals),
            ignored_run,
        });
        res
    }

    fn summary(&self, failed: bool) -> String {
        let mut s = String::from("ci: summary\n");
        s += &format!(
            "  {:<44} {:>6}  {:<6} {:>7} {:>7} {:>7}\n",
            "step", "time", "result", "passed", "failed", "ignored"
        );
        let mut total = Totals::default();
        let mut took = Duration::ZERO;
        let mut ran_ignored = 0;
        for step in &self.steps {
            took += step.took;
            let result = if step.ok { "ok" } else { "FAILED" };
            let mut line = format!(
                "  {:<44} {:>5.0}s  {:<6}",
                step.name,
                step.took.as_secs_f64(),
                result
            );
            if let Some(t) = step.tests {
                line += &format!(" {:>7} {:>7} {:>7}", t.passed, t.failed, t.ignored);
                total += t;
                if step.ignored_run {
                    ran_ignored += t.ran();
                }
            }
            s += line.trim_end();
            s.push('\n');
        }
        let ok = !failed && self.steps.iter().all(|st| st.ok);
        s += &format!(
            "  {:<44} {:>5.0}s  {:<6} {:>7} {:>7} {:>7}\n",
            "total",
            took.as_secs_f64(),
            if ok { "ok" } else { "FAILED" },
            total.passed,
            total.failed,
            total.ignored
        );
        // Every test an `--ignored` step ran was counted as ignored by `test --workspace`.
        let never = total.ignored.saturating_sub(ran_ignored);
        s += &format!(
            "  ignored tests run by a later --ignored step: {ran_ignored}; not run at all: {never}\n"
        );
        if failed {
            s += "  (stopped at the failed step: the steps after it did not run)\n";
        }
        s
    }
}

pub fn ci(args: &[String]) -> Result<(), String> {
    let e2e = !args.iter().any(|a| a == "--no-e2e");
    let arm64 = !args.iter().any(|a| a == "--no-arm64");
    let mut r = Run::default();
    let res = (|| {
        r.plain("deps", || crate::deps::deps(&[]))?;
        r.plain("fmt", || run(cargo().args(["fmt", "--all", "--check"])))?;
        r.plain("clippy", || {
            run(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
        r.tests("test --workspace", false, || {
            run_tests(cargo().args(["test", "--workspace", "--no-fail-fast"]))
        })?;
        for (package, test) in LONG_TESTS {
            r.tests(&format!("long {package}/{test} --ignored"), true, || {
                run_tests(&mut ignored_tests(package, test, &[]))
            })?;
        }
        if e2e {
            // The tests that need a real systemd in a container (reported as ignored above),
            // then the installed-package test itself.
            for (package, test) in CONTAINER_TESTS {
                r.tests(
                    &format!("container {package}/{test} --ignored"),
                    true,
                    || run_tests(&mut ignored_tests(package, test, &["--test-threads=1"])),
                )?;
            }
            r.tests("e2e (amd64 .deb + tests) --ignored", true, || {
                crate::e2e::e2e_tests(&[])
            })?;
            r.tests(
                &format!("soak {CI_SOAK_MINUTES} min (visdcam/soak) --ignored"),
                true,
                || crate::soak::soak_test(CI_SOAK_MINUTES, None),
            )?;
        } else {
            eprintln!("ci: container and end-to-end tests skipped (--no-e2e)");
        }
        // Keeps the benchmark harness from rotting; the full run is `cargo xtask bench`.
        r.plain("bench --quick", || {
            crate::bench::bench(&["--quick".to_string()])
        })?;
        if arm64 {
            r.plain("deb arm64 (cross build)", || {
                crate::deb::build_deb(Some("aarch64-unknown-linux-gnu")).map(drop)
            })?;
            // The package installed and run under qemu-user is `cargo xtask arm64`: some eight
            // minutes from nothing on two cores, which would take CI past its hour; its last
            // result is in docs/guide/install-pi.md.
        } else {
            eprintln!("ci: arm64 package skipped (--no-arm64)");
        }
        Ok(())
    })();
    eprint!("{}", r.summary(res.is_err()));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(passed: u64, failed: u64, ignored: u64) -> Totals {
        Totals {
            passed,
            failed,
            ignored,
        }
    }

    #[test]
    fn summary_lines_and_totals() {
        let mut r = Run::default();
        r.plain("fmt", || Ok(())).unwrap();
        r.tests("test --workspace", false, || (Ok(()), t(100, 0, 3)))
            .unwrap();
        r.tests("long u/upload --ignored", true, || (Ok(()), t(1, 0, 0)))
            .unwrap();
        let s = r.summary(false);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 7, "{s}");
        assert!(
            lines[2].starts_with("  fmt ") && lines[2].ends_with("ok"),
            "{s}"
        );
        let words = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(words(lines[3])[3..], ["ok", "100", "0", "3"], "{s}");
        assert_eq!(words(lines[5])[1..], ["0s", "ok", "101", "0", "3"], "{s}");
        assert!(lines[6].ends_with("step: 1; not run at all: 2"), "{s}");
    }

    #[test]
    fn a_failed_step_shows_and_an_empty_ignored_run_fails() {
        let mut r = Run::default();
        assert!(r
            .tests("container x/y --ignored", true, || (Ok(()), t(0, 0, 0)))
            .is_err());
        assert!(r
            .tests("test --workspace", false, || (
                Err("boom".into()),
                t(5, 1, 0)
            ))
            .is_err());
        let s = r.summary(true);
        assert!(s.contains("FAILED"), "{s}");
        let total = s
            .lines()
            .find(|l| l.trim_start().starts_with("total"))
            .unwrap();
        assert!(total.contains("FAILED"), "{s}");
        assert!(s.contains("did not run"), "{s}");
    }
}
