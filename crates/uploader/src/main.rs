//! `uploader`: not yet implemented beyond argument parsing.

fn main() {
    eprintln!("uploader: not yet implemented");
    std::process::exit(2);
}
