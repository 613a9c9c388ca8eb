//! `net-shaper`: not yet implemented beyond argument parsing.

fn main() {
    eprintln!("net-shaper: not yet implemented");
    std::process::exit(2);
}
