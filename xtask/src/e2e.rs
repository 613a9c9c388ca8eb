//! `cargo xtask e2e` (being written).

pub fn e2e(_args: &[String]) -> Result<(), String> {
    Err("not yet implemented".into())
}
