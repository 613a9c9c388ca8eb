//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use crate::util::{cargo, run};

/// Integration tests gated by `VISDCAM_E2E=1` because they boot systemd in a container.
const CONTAINER_TESTS: &[(&str, &str)] = &[
    ("test-rigs", "container_rig"),
    ("visdcam", "cli_systemd"),
    ("daynight", "e2e_systemd"),
];

pub fn ci(args: &[String]) -> Result<(), String> {
    let e2e = !args.iter().any(|a| a == "--no-e2e");
    crate::deps::deps(&[])?;
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    run(cargo().args(["test", "--workspace", "--no-fail-fast"]))?;
    if e2e {
        // The other tests that need a real systemd in a container (skipped above without
        // VISDCAM_E2E=1), then the installed-package test itself.
        for (package, test) in CONTAINER_TESTS {
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
                .env("VISDCAM_E2E", "1"))?;
        }
        crate::e2e::e2e(&[])?;
    } else {
        eprintln!("ci: container and end-to-end tests skipped (--no-e2e)");
    }
    // Keeps the benchmark harness from rotting; the full run is `cargo xtask bench`.
    crate::bench::bench(&["--quick".to_string()])?;
    Ok(())
}
