//! `cargo xtask ci`: everything CI checks, in the order that fails fastest; the arm64 `.deb`
//! (a cross build of every binary, the slowest step) comes last, after every test. Prints
//! each step's time at the end, also when a step fails.

use std::time::{Duration, Instant};

use crate::util::{cargo, run};

/// Integration tests gated by `VISDCAM_E2E=1` because they boot systemd in a container.
const CONTAINER_TESTS: &[(&str, &str)] = &[
    ("test-rigs", "container_rig"),
    ("visdcam", "cli_systemd"),
    ("visdcam", "doctor"),
    ("daynight", "e2e_systemd"),
];

pub fn ci(args: &[String]) -> Result<(), String> {
    let e2e = !args.iter().any(|a| a == "--no-e2e");
    let arm64 = !args.iter().any(|a| a == "--no-arm64");
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let mut step = |name: String, f: &mut dyn FnMut() -> Result<(), String>| {
        let started = Instant::now();
        let res = f();
        timings.push((name, started.elapsed()));
        res
    };
    let res = (|| {
        step("deps".into(), &mut || crate::deps::deps(&[]))?;
        step("fmt".into(), &mut || {
            run(cargo().args(["fmt", "--all", "--check"]))
        })?;
        step("clippy".into(), &mut || {
            run(cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]))
        })?;
        step("test --workspace".into(), &mut || {
            run(cargo().args(["test", "--workspace", "--no-fail-fast"]))
        })?;
        if e2e {
            // The other tests that need a real systemd in a container (skipped above without
            // VISDCAM_E2E=1), then the installed-package test itself.
            for (package, test) in CONTAINER_TESTS {
                step(format!("container {package}/{test}"), &mut || {
                    run(cargo()
                        .args([
                            "test",
                            "-p",
                            package,
                            "--test",
                            test,
                            "--",
                            "--test-threads=1",
                        ])
                        .env("VISDCAM_E2E", "1"))
                })?;
            }
            step("e2e (amd64 .deb + tests)".into(), &mut || {
                crate::e2e::e2e(&[])
            })?;
        } else {
            eprintln!("ci: container and end-to-end tests skipped (--no-e2e)");
        }
        // Keeps the benchmark harness from rotting; the full run is `cargo xtask bench`.
        step("bench --quick".into(), &mut || {
            crate::bench::bench(&["--quick".to_string()])
        })?;
        if arm64 {
            step("deb arm64 (cross build)".into(), &mut || {
                crate::deb::build_deb(Some("aarch64-unknown-linux-gnu")).map(drop)
            })?;
        } else {
            eprintln!("ci: arm64 package skipped (--no-arm64)");
        }
        Ok(())
    })();
    eprintln!("ci: step timings");
    for (name, d) in &timings {
        eprintln!("  {name:<36} {:>5.0}s", d.as_secs_f64());
    }
    res
}
