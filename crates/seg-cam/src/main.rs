//! `seg-cam`: not yet implemented beyond argument parsing.

fn main() {
    eprintln!("seg-cam: not yet implemented");
    std::process::exit(2);
}
