//! `cargo xtask demo` (being written).

pub fn demo(_args: &[String]) -> Result<(), String> {
    Err("not yet implemented".into())
}
