//! `cargo xtask e2e [TEST FILTER...]`: builds the amd64 `.deb` and the camera double, then runs
//! the end-to-end tests (crates/visdcam/tests/e2e.rs) that install the package on a real
//! systemd in an nspawn container and record two cameras into a local S3 server.
//!
//! The tests find the package through `VISDCAM_DEB` and the double through
//! `VISDCAM_CAMERA_DOUBLE`, and are enabled by `VISDCAM_E2E=1`; they run one at a time (each
//! boots its own container, and the machine has two cores).

use crate::util::{cargo, root, run};

pub fn e2e(args: &[String]) -> Result<(), String> {
    let deb = crate::deb::build_deb(None)?;
    run(cargo().args(["build", "-p", "camera-double", "--bin", "camera-double"]))?;
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
        .env("VISDCAM_DEB", &deb)
        .env(
            "VISDCAM_CAMERA_DOUBLE",
            root().join("target/debug/camera-double"),
        ))
}
