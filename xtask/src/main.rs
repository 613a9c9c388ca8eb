//! `cargo xtask`: the project's automation in Rust instead of shell scripts.
//!
//! `ci` is what CI runs (via `.ci/run`); green locally means green in CI.

mod arm64;
mod bench;
mod ci;
mod deb;
mod demo;
mod deps;
mod e2e;
mod soak;
mod testrun;
mod util;

const HELP: &str = "\
cargo xtask <command> [args]

Commands:
  ci [--no-e2e] [--no-arm64]
                  install what is missing (deps), then fmt check, clippy -D warnings,
                  every test, then the #[ignore]d ones with --ignored: the long ones, the
                  container tests, the end-to-end test on a real systemd (e2e) and a
                  10-minute soak;
                  `bench --quick`, and last the arm64 .deb; prints each step's time and
                  passed/failed/ignored tests, and the totals
  deps [--check]  install the Debian packages and the Python venv (SeaweedFS) the build and
                  tests need; says exactly what it installs (--check: only report)
  demo            install what is missing (deps), then run the main job on the embedded
                  default: camera double + local S3 server, seg-cam and uploader for one
                  camera for about a minute, printing each object as it lands
  deb [--target aarch64-unknown-linux-gnu]
                  build release binaries and the .deb into target/dist
  e2e [FILTER]    build the .deb and test it installed on systemd in a container
                  (the #[ignore]d tests of crates/visdcam/tests/e2e.rs, with --ignored)
  arm64           the arm64 .deb installed with apt in an arm64 Debian 12 root (debootstrap,
                  qemu-user via binfmt_misc), then --version of every binary, a recording
                  uploaded to a local S3 server, doctor (not in ci, which only cross-builds
                  the arm64 .deb: ~8 min from nothing; last result in docs/guide/install-pi.md)
  soak [--minutes N] [--seed S]
                  build the .deb, then run it in a container with three cameras and the S3
                  rig under a seeded random schedule of faults for N minutes (default 10);
                  ends with the ledger of every segment (docs/reliability.md)
  bench [--quick] [--only=recorder|uploader|per-frame]
                  seg-cam vs gst-launch vs ffmpeg, uploader vs aws-cli: CPU, RSS, ratios;
                  writes docs/benchmarks.md (full run) and target/bench/results.json
  help            this text
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "ci" => ci::ci(rest),
        "deps" => deps::deps(rest),
        "demo" => deps::deps(&[]).and_then(|()| demo::demo(rest)),
        "deb" => deb::deb(rest),
        "e2e" => e2e::e2e(rest),
        "soak" => soak::soak(rest),
        "bench" => bench::bench(rest),
        "arm64" => arm64::arm64(rest),
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n\n{HELP}")),
    };
    if let Err(e) = result {
        eprintln!("xtask {cmd}: error: {e}");
        std::process::exit(1);
    }
}
