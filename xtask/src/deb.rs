//! `cargo xtask deb` (being written).

pub fn deb(_args: &[String]) -> Result<(), String> {
    Err("not yet implemented".into())
}
