//! `camera-double`: runs the ESP32-CAM double until SIGTERM/SIGINT; prints
//! `ready http://IP:P` on stdout once both ports listen.
//!
//! ```text
//! camera-double [--bind IP] [--port P] [--size WxH] [--fps F] [--no-led]
//! ```
//! Faults at run time: `GET http://IP:P/__double/fault?mode=none|stall|close|reboot|corrupt|html|notfound&secs=N`.

use std::io::Write;
use std::process::ExitCode;

use camera_double::{Board, CameraDouble, Options};
use nix::sys::signal::{SigSet, Signal};

const USAGE: &str = "usage: camera-double [--bind IP] [--port P] [--size WxH] [--fps F] [--no-led]

Serves an ESP32-CAM (CameraWebServer, OV2640) look-alike: /status /control /capture on port P,
/stream on P+1. --port 0 (default) picks two free adjacent ports. Prints `ready http://IP:P`
when listening; runs until SIGTERM or SIGINT.
Test endpoints on port P: /__double/fault?mode=none|stall|close|reboot|corrupt|html|notfound&secs=N,
/__double/controls (JSON lines), /__double/stats (JSON).";

fn parse_args() -> Result<(Options, Board), String> {
    use lexopt::prelude::*;
    let mut opts = Options::default();
    let mut board = Board::WithLed;
    let mut parser = lexopt::Parser::from_env();
    let err = |e: lexopt::Error| e.to_string();
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Long("bind") => {
                let v = parser.value().map_err(err)?.string().map_err(err)?;
                opts.bind = v.parse().map_err(|e| format!("--bind {v:?}: {e}"))?;
            }
            Long("port") => {
                let v = parser.value().map_err(err)?.string().map_err(err)?;
                opts.port = v.parse().map_err(|e| format!("--port {v:?}: {e}"))?;
            }
            Long("size") => {
                let v = parser.value().map_err(err)?.string().map_err(err)?;
                let (w, h) = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .ok_or_else(|| format!("--size {v:?}: expected WIDTHxHEIGHT, e.g. 800x600"))?;
                opts.width = w;
                opts.height = h;
            }
            Long("fps") => {
                let v = parser.value().map_err(err)?.string().map_err(err)?;
                opts.fps = v.parse().map_err(|e| format!("--fps {v:?}: {e}"))?;
            }
            Long("no-led") => board = Board::NoLed,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok((opts, board))
}

fn main() -> ExitCode {
    let (opts, board) = match parse_args() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("camera-double: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Block the signals before any thread exists so every thread inherits the mask and the
    // main thread can wait for them synchronously.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(e) = signals.thread_block() {
        eprintln!("camera-double: blocking SIGTERM/SIGINT: {e}");
        return ExitCode::FAILURE;
    }
    let double = match CameraDouble::start_with(opts, board) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("camera-double: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    if writeln!(out, "ready {}", double.base_url())
        .and_then(|()| out.flush())
        .is_err()
    {
        eprintln!("camera-double: cannot write the ready line to stdout");
        return ExitCode::FAILURE;
    }
    drop(out);
    match signals.wait() {
        Ok(sig) => eprintln!("camera-double: {sig}, stopping"),
        Err(e) => eprintln!("camera-double: waiting for a signal: {e}"),
    }
    drop(double);
    ExitCode::SUCCESS
}
