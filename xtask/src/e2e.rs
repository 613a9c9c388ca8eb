//! `cargo xtask e2e [TEST FILTER...]`: builds the amd64 `.deb` and the camera double, then runs
//! the end-to-end tests (crates/visdcam/tests/e2e.rs) that install the package on a real
//! systemd in an nspawn container and record two cameras into a local S3 server.
//!
//! The tests are `#[ignore]`d (a plain `cargo test` reports them as ignored): this runs them
//! with `--ignored`, finding the package through `VISDCAM_DEB` and the double through
//! `VISDCAM_CAMERA_DOUBLE`; they run one at a time (each boots its own container, and the
//! machine has two cores).

use crate::testrun::{run_tests, Totals};
use crate::util::{cargo, cargo_target_dir, ignored_tests, run};

pub fn e2e(args: &[String]) -> Result<(), String> {
    let (res, totals) = e2e_tests(args);
    eprintln!("e2e: {totals}");
    if res.is_ok() && totals.ran() == 0 {
        return Err(
            "no test ran: does the filter match a test in crates/visdcam/tests/e2e.rs?".into(),
        );
    }
    res
}

/// Builds what the tests need and runs them; the totals are those of the tests that ran
/// (none if the build failed).
pub fn e2e_tests(args: &[String]) -> (Result<(), String>, Totals) {
    let built = crate::deb::build_deb(None).and_then(|deb| {
        run(cargo().args(["build", "-p", "camera-double", "--bin", "camera-double"]))?;
        Ok(deb)
    });
    let deb = match built {
        Ok(deb) => deb,
        Err(e) => return (Err(e), Totals::default()),
    };
    run_tests(
        ignored_tests("visdcam", "e2e", &["--test-threads=1"])
            .args(args)
            .env("VISDCAM_DEB", &deb)
            .env(
                "VISDCAM_CAMERA_DOUBLE",
                cargo_target_dir().join("debug/camera-double"),
            ),
    )
}
