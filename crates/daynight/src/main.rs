//! `daynight`: not yet implemented beyond argument parsing.

fn main() {
    eprintln!("daynight: not yet implemented");
    std::process::exit(2);
}
