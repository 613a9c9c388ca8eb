//! `cargo xtask e2e [TEST FILTER...]`: builds the amd64 `.deb`, then runs the end-to-end test
//! (crates/visdcam/tests/e2e.rs) that installs it on a real systemd in an nspawn container.
//!
//! The test finds the package through `VISDCAM_DEB` and is enabled by `VISDCAM_E2E=1`; tests
//! run one at a time (each boots its own container, and the machine has two cores).

use crate::util::{cargo, run};

pub fn e2e(args: &[String]) -> Result<(), String> {
    let deb = crate::deb::build_deb(None)?;
    run(cargo()
        .args([
            "test",
            "-p",
            "visdcam",
            "--test",
            "e2e",
            "--",
            "--test-threads=1",
        ])
        .args(args)
        .env("VISDCAM_E2E", "1")
        .env("VISDCAM_DEB", &deb))
}
