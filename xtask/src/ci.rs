//! `cargo xtask ci`: everything CI checks, in the order that fails fastest.

use crate::util::{cargo, run};

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
        crate::e2e::e2e(&[])?;
    } else {
        eprintln!("ci: end-to-end test skipped (--no-e2e)");
    }
    Ok(())
}
