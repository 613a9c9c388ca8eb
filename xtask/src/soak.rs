//! `cargo xtask soak [--minutes N] [--seed S]`: builds the amd64 `.deb`, then runs the soak
//! (crates/visdcam/tests/soak.rs): the installed package in a container with three cameras and
//! the S3 rig under a seeded random schedule of faults, ending with the ledger of every
//! segment. The test is `#[ignore]`d; this runs it with `--ignored`, passing the package and
//! the run's length and seed through `VISDCAM_DEB`, `VISDCAM_SOAK_MINUTES` and
//! `VISDCAM_SOAK_SEED`. docs/reliability.md says what it checks.

use crate::testrun::{run_tests, Totals};
use crate::util::ignored_tests;

/// The soak's length when `--minutes` is not given (CI's; docs/reliability.md records longer).
pub const DEFAULT_MINUTES: u64 = 10;

/// `--minutes N` and `--seed S` (a random seed, printed, when not given).
fn parse(args: &[String]) -> Result<(u64, Option<u64>), String> {
    let mut minutes = DEFAULT_MINUTES;
    let mut seed = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            v.parse()
                .map_err(|_| format!("{name} {v:?}: not a whole number"))
        };
        match a.as_str() {
            "--minutes" => minutes = value("--minutes")?,
            "--seed" => seed = Some(value("--seed")?),
            other => return Err(format!("soak: unknown argument {other:?}")),
        }
    }
    if minutes < 5 {
        return Err(format!("--minutes {minutes}: the soak needs at least 5"));
    }
    Ok((minutes, seed))
}

pub fn soak(args: &[String]) -> Result<(), String> {
    let (minutes, seed) = parse(args)?;
    let (res, totals) = soak_test(minutes, seed);
    eprintln!("soak: {totals}");
    if res.is_ok() && totals.ran() == 0 {
        return Err("the soak test did not run".into());
    }
    res
}

/// Builds the package and runs the soak; the totals are those of the test run (none if the
/// build failed).
pub fn soak_test(minutes: u64, seed: Option<u64>) -> (Result<(), String>, Totals) {
    let deb = match crate::deb::build_deb(None) {
        Ok(deb) => deb,
        Err(e) => return (Err(e), Totals::default()),
    };
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    eprintln!("soak: {minutes} min, seed {seed} (again: cargo xtask soak --minutes {minutes} --seed {seed})");
    run_tests(
        ignored_tests("visdcam", "soak", &["--nocapture", "--test-threads=1"])
            .env("VISDCAM_DEB", &deb)
            .env("VISDCAM_SOAK_MINUTES", minutes.to_string())
            .env("VISDCAM_SOAK_SEED", seed.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn minutes_and_seed() {
        assert_eq!(parse(&args(&[])), Ok((DEFAULT_MINUTES, None)));
        assert_eq!(
            parse(&args(&["--minutes", "60", "--seed", "7"])),
            Ok((60, Some(7)))
        );
        assert!(parse(&args(&["--minutes", "2"])).is_err());
        assert!(parse(&args(&["--minutes"])).is_err());
        assert!(parse(&args(&["--seed", "x"])).is_err());
        assert!(parse(&args(&["--fast"])).is_err());
    }
}
