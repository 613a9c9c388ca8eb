//! `visdcam`: not yet implemented beyond argument parsing.

fn main() {
    eprintln!("visdcam: not yet implemented");
    std::process::exit(2);
}
