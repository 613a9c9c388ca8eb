//! `seg-cam <camera>`: records one ESP32-CAM MJPEG stream into H.264 MPEG-TS segments in
//! `RAM_DIR/<camera>/`, forever, whatever the camera does. `seg-cam finalize <camera>` hands
//! off a partial segment left by a crash (for `ExecStopPost=`).
//!
//! Exit codes: 0 after SIGTERM/SIGINT (or a finished `finalize`), 1 when the RAM directory
//! cannot be used or another seg-cam records the camera, 64 usage error, 69 missing GStreamer
//! elements (the message names the Debian package), 78 (EX_CONFIG) configuration error.

mod budget;
mod encoder;
mod handoff;
mod live;
mod pipeline;
mod run;

use std::process::ExitCode;

use gstreamer as gst;
use visdcam_core::config::Settings;
use visdcam_core::error::{Classify, ErrorKind};
use visdcam_daemon::clock::ClockSource;

const USAGE: &str = "usage: seg-cam <camera>
       seg-cam finalize <camera>

Records the camera's MJPEG stream (CAMERA_URL) into H.264 MPEG-TS segments of SEG_SECONDS in
RAM_DIR/<camera>/: each is written as seg-<start ms>-<tag>.ts.part and renamed to
seg-<start ms>-<tag>.ts once closed. Reconnects by itself when the camera fails. Run as
seg@<camera>.service.

`finalize` renames a .ts.part left by a crash so the uploader takes it (deletes it when
nothing in it decodes); the recorder does the same when it starts.

Configuration: /etc/visdcam/visdcam.conf and /etc/visdcam/cameras/<camera>.conf
(VISDCAM_CONFIG_DIR overrides the directory).

options:
  -h, --help     this text
  -V, --version  the version";

const EX_USAGE: u8 = 64;
const EX_UNAVAILABLE: u8 = 69;
const EX_CONFIG: u8 = 78;

enum Command {
    Record(String),
    Finalize(String),
}

fn parse_args() -> Result<Option<Command>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut values = Vec::new();
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("seg-cam {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Value(v) => values.push(
                v.into_string()
                    .map_err(|v| format!("`{}` is not UTF-8", v.to_string_lossy()))?,
            ),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    match values.as_slice() {
        [] => Err("missing the camera name".into()),
        [camera] => Ok(Some(Command::Record(camera.clone()))),
        [cmd, camera] if cmd == "finalize" => Ok(Some(Command::Finalize(camera.clone()))),
        [cmd, _] => Err(format!(
            "unknown command `{cmd}` (the only one is finalize)"
        )),
        [_, _, extra, ..] => Err(format!("unexpected argument `{extra}`")),
    }
}

fn load(camera: &str) -> Result<Settings, ExitCode> {
    visdcam_daemon::config::load_camera(camera).map_err(|e| {
        eprintln!(
            "seg-cam: {}",
            visdcam_daemon::error_chain(&e as &dyn std::error::Error)
        );
        ExitCode::from(match e.kind() {
            ErrorKind::Config => EX_CONFIG,
            _ => 1,
        })
    })
}

/// malloc arenas seg-cam allows. GStreamer starts new streaming threads at every camera
/// connection and glibc gives threads their own arenas (up to 8 per core), which the threads of
/// earlier connections leave fragmented: with glibc's default RSS grew by 18 % over 40
/// reconnects and by 70 % over 170, still growing; with two arenas by 15 % over 130; with one it
/// levels off within 8 % (tests/memory.rs, docs/reliability.md). The pipeline's threads do
/// little allocation per frame (buffer pools), so one arena costs no measurable CPU.
const MALLOC_ARENAS: i32 = 1;

/// Caps glibc's malloc arenas at [`MALLOC_ARENAS`]; first thing in `main`, before any thread.
#[cfg(target_env = "gnu")]
fn limit_malloc_arenas() {
    // SAFETY: mallopt sets one allocator parameter and touches no Rust state; it runs before
    // any other thread exists.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, MALLOC_ARENAS);
    }
}

#[cfg(not(target_env = "gnu"))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cmd = match parse_args() {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seg-cam: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let (camera, finalize_only) = match cmd {
        Command::Record(c) => (c, false),
        Command::Finalize(c) => (c, true),
    };
    let settings = match load(&camera) {
        Ok(s) => s,
        Err(code) => return code,
    };
    visdcam_daemon::logging::init(
        "seg-cam",
        Some(&camera),
        visdcam_daemon::logging::level_from(&settings.log_level),
    );
    let dir = settings
        .camera_dir()
        .expect("a camera's settings have a camera");
    let clock = ClockSource::from_env();
    clock.warn_if_test();
    if finalize_only {
        return finalize(&dir, clock, settings.require_clock_sync);
    }
    record(&settings, dir, clock)
}

fn finalize(dir: &std::path::Path, clock: ClockSource, notes: bool) -> ExitCode {
    if !dir.exists() {
        log::debug!("{} does not exist: nothing to finalise", dir.display());
        return ExitCode::SUCCESS;
    }
    let result = (|| -> Result<usize, handoff::IoError> {
        let _lock = match handoff::try_lock(dir)? {
            handoff::LockState::Held(l) => l,
            handoff::LockState::Busy => {
                log::warn!(
                    "a seg-cam is recording into {}: its .part is in use, nothing finalised",
                    dir.display()
                );
                return Ok(0);
            }
        };
        handoff::Handoff::new(dir, clock, notes)?.recover_all()
    })();
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{}", visdcam_daemon::error_chain(&e));
            ExitCode::from(1)
        }
    }
}

fn record(settings: &Settings, dir: std::path::PathBuf, clock: ClockSource) -> ExitCode {
    if let Err(e) = gst::init() {
        log::error!("initialising GStreamer: {e}");
        return ExitCode::from(EX_UNAVAILABLE);
    }
    let missing = pipeline::missing_elements();
    if !missing.is_empty() {
        log::error!("{}", pipeline::missing_message(&missing));
        return ExitCode::from(EX_UNAVAILABLE);
    }
    if let Err(e) = visdcam_daemon::shutdown::install() {
        log::error!("installing signal handlers: {e}");
        return ExitCode::from(1);
    }
    let setup = (|| -> Result<_, handoff::IoError> {
        handoff::ensure_dir(&dir)?;
        let lock = handoff::try_lock(&dir)?;
        Ok(lock)
    })();
    let _lock = match setup {
        Ok(handoff::LockState::Held(l)) => l,
        Ok(handoff::LockState::Busy) => {
            log::error!(
                "another seg-cam is already recording into {} ({} is locked)",
                dir.display(),
                dir.join(handoff::LOCK_FILE).display()
            );
            return ExitCode::from(1);
        }
        Err(e) => {
            log::error!("{}", visdcam_daemon::error_chain(&e));
            return ExitCode::from(1);
        }
    };
    let mut handoff = match handoff::Handoff::new(&dir, clock.clone(), settings.require_clock_sync)
    {
        Ok(h) => h,
        Err(e) => {
            log::error!("{}", visdcam_daemon::error_chain(&e));
            return ExitCode::from(1);
        }
    };
    if let Err(e) = handoff.recover_all() {
        log::error!("{}", visdcam_daemon::error_chain(&e));
    }
    let mut recorder = run::Recorder::new(settings, dir, handoff, clock);
    match recorder.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(EX_UNAVAILABLE)
        }
    }
}
