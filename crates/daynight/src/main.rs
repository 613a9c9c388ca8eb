//! `daynight`: keeps each ESP32-CAM on the preset due now (day or night in the configured
//! zone). Command line, configuration and exit codes; the work is in [`run`], the HTTP in
//! [`camera`], the timer drop-in in [`timer`].

mod camera;
mod run;
mod timer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use lexopt::prelude::*;
use visdcam_core::cli::resolve_targets;
use visdcam_core::config::Settings;
use visdcam_core::presets;
use visdcam_daemon::config::{self as files, LoadError};
use visdcam_daemon::{error_chain, logging};

const USAGE: &str = "\
daynight: keeps each ESP32-CAM on its day or night preset

Usage:
  daynight reconcile [CAMERA...|all] [--at TIME] [--timeout SECS]
      Reads each camera's /status, sends only what differs from the preset due now
      (framesize first), reads /status again to confirm. What the timer runs.
  daynight apply CAMERA|all [day|night|auto|PRESET] [--at TIME] [--timeout SECS]
      Sends every variable of the preset (default auto: the one due now), then confirms.
  daynight due [CAMERA...|all] [--at TIME]
      Prints the preset due for each camera.
  daynight timer-dropin [--write] [--dropin-dir DIR] [--no-reload]
      Prints the daynight.timer drop-in for the configured DAY_START, NIGHT_START and
      SCHEDULE_TZ; --write installs it (default dir /etc/systemd/system/daynight.timer.d)
      and runs systemctl daemon-reload.

Options:
  --at TIME       pretend it is TIME (RFC 3339, e.g. 2025-10-12T05:59:00+05:30): what-if, tests
  --timeout SECS  time allowed per camera (default 20); cameras are handled in parallel

Environment: VISDCAM_CONFIG_DIR (default /etc/visdcam), VISDCAM_STATE_DIR (default
/run/visdcam/daynight, or the service's RUNTIME_DIRECTORY).
Exit status: 0 every camera on its preset, 1 a camera answered but is not on its preset (or
the drop-in could not be installed), 2 usage error, 75 a camera could not be reached (and every
camera that answered is on its preset; retried on the next run), 78 configuration error.";

/// Exit codes.
const EXIT_OFF: u8 = 1;
/// `EX_TEMPFAIL` from sysexits.h: a camera could not be reached, the rest are on their preset.
/// daynight.service counts it as success (`SuccessExitStatus=75`): a camera that is down is the
/// recorder's alert, and the timer tries again within 5 minutes; a oneshot left `failed` would
/// only repeat it as a degraded system.
const EXIT_DOWN: u8 = 75;
const EXIT_USAGE: u8 = 2;
/// `EX_CONFIG` from sysexits.h.
const EXIT_CONFIG: u8 = 78;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
enum Cmd {
    Reconcile {
        targets: Vec<String>,
    },
    Apply {
        target: String,
        preset: Option<String>,
    },
    Due {
        targets: Vec<String>,
    },
    TimerDropin {
        write: bool,
        dir: PathBuf,
        reload: bool,
    },
}

#[derive(Debug)]
struct Args {
    cmd: Cmd,
    at: Option<DateTime<FixedOffset>>,
    timeout: Duration,
}

/// A failure that ends the program with a code.
struct Fail {
    code: u8,
    message: String,
}

impl Fail {
    fn usage(message: impl Into<String>) -> Fail {
        Fail {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn load(e: &LoadError) -> Fail {
        use visdcam_core::error::{Classify, ErrorKind};
        Fail {
            code: match e.kind() {
                ErrorKind::Config => EXIT_CONFIG,
                _ => EXIT_OFF,
            },
            message: error_chain(e),
        }
    }
}

fn parse_args() -> Result<Option<Args>, Fail> {
    let usage = |e: lexopt::Error| Fail::usage(e.to_string());
    let mut p = lexopt::Parser::from_env();
    let mut positional: Vec<String> = Vec::new();
    let mut at = None;
    let mut timeout = DEFAULT_TIMEOUT;
    let (mut write, mut reload) = (false, true);
    let mut dropin_dir = PathBuf::from(timer::DEFAULT_DROPIN_DIR);
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(None);
            }
            Long("version") => {
                println!("daynight {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Long("at") => {
                let v: String = p.value().map_err(usage)?.string().map_err(usage)?;
                at = Some(DateTime::parse_from_rfc3339(&v).map_err(|e| {
                    Fail::usage(format!(
                        "--at `{v}`: {e}; use RFC 3339 such as 2025-10-12T05:59:00+05:30"
                    ))
                })?);
            }
            Long("timeout") => {
                let v: String = p.value().map_err(usage)?.string().map_err(usage)?;
                timeout = v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| (0.1..=600.0).contains(s))
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        Fail::usage(format!(
                            "--timeout `{v}`: a number of seconds from 0.1 to 600"
                        ))
                    })?;
            }
            Long("write") => write = true,
            Long("no-reload") => reload = false,
            Long("dropin-dir") => dropin_dir = p.value().map_err(usage)?.into(),
            Value(v) => positional.push(v.string().map_err(usage)?),
            _ => return Err(usage(arg.unexpected())),
        }
    }
    let mut pos = positional.into_iter();
    let Some(sub) = pos.next() else {
        return Err(Fail::usage(
            "a command is needed: reconcile, apply, due or timer-dropin (see --help)",
        ));
    };
    let rest: Vec<String> = pos.collect();
    let cmd = match sub.as_str() {
        "reconcile" => Cmd::Reconcile { targets: rest },
        "due" => Cmd::Due { targets: rest },
        "apply" => match rest.as_slice() {
            [target] => Cmd::Apply {
                target: target.clone(),
                preset: None,
            },
            [target, preset] => Cmd::Apply {
                target: target.clone(),
                preset: (preset != "auto").then(|| preset.clone()),
            },
            _ => {
                return Err(Fail::usage(
                    "apply takes one camera (or all) and optionally a preset: \
                     daynight apply cam1 night",
                ))
            }
        },
        "timer-dropin" => {
            if !rest.is_empty() {
                return Err(Fail::usage("timer-dropin takes no arguments"));
            }
            Cmd::TimerDropin {
                write,
                dir: dropin_dir,
                reload,
            }
        }
        other => {
            return Err(Fail::usage(format!(
                "unknown command `{other}`: reconcile, apply, due or timer-dropin"
            )))
        }
    };
    Ok(Some(Args { cmd, at, timeout }))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("daynight: {}", f.message);
            return ExitCode::from(f.code);
        }
    };
    let dir = files::config_dir();
    let global = files::load_global_from(&dir);
    let level = global
        .as_ref()
        .map(|g| logging::level_from(&g.log_level))
        .unwrap_or(log::LevelFilter::Info);
    logging::init("daynight", None, level);
    let result = global
        .map_err(|e| Fail::load(&e))
        .and_then(|_| run(args, &dir));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            log::error!("{}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// The cameras a command names (none: all), each with its settings.
/// Cameras whose file is broken are left out (and logged); the second value is then the exit
/// code to end with.
type Selected = (Vec<(String, Settings)>, Option<u8>);

fn cameras(dir: &std::path::Path, targets: &[String]) -> Result<Selected, Fail> {
    let known = files::list_cameras(dir).map_err(|e| Fail::load(&e))?;
    if known.is_empty() && (targets.is_empty() || targets == ["all"]) {
        return Ok((Vec::new(), None));
    }
    let all = ["all".to_string()];
    let targets = if targets.is_empty() {
        &all[..]
    } else {
        targets
    };
    let names = resolve_targets(targets, &known, &dir.display().to_string()).map_err(|m| Fail {
        code: EXIT_USAGE,
        message: m,
    })?;
    let mut out = Vec::new();
    let mut first_error = None;
    for name in names {
        match files::load_camera_from(dir, &name) {
            Ok(s) => out.push((name, s)),
            Err(e) => {
                let f = Fail::load(&e);
                log::error!("{name}: {}", f.message);
                first_error.get_or_insert(f);
            }
        }
    }
    // One broken camera file stops nothing else, but the exit status says so.
    match first_error {
        Some(f) if out.is_empty() => Err(f),
        Some(f) => Ok((out, Some(f.code))),
        None => Ok((out, None)),
    }
}

fn run(args: Args, dir: &std::path::Path) -> Result<u8, Fail> {
    let now: DateTime<FixedOffset> = args.at.unwrap_or_else(|| Utc::now().fixed_offset());
    let due = |s: &Settings| presets::due_at(&now, s.schedule_tz, s.day_start, s.night_start);
    let ((cams, broken), preset, force) = match args.cmd {
        Cmd::TimerDropin {
            write,
            dir: d,
            reload,
        } => return timer_dropin(dir, write, &d, reload),
        Cmd::Due { targets } => {
            let (cams, broken) = cameras(dir, &targets)?;
            for (name, s) in cams {
                println!(
                    "{name} {} (day from {}, night from {}, {}; at {})",
                    due(&s),
                    s.day_start,
                    s.night_start,
                    s.schedule_tz.name(),
                    now.with_timezone(&s.schedule_tz)
                        .format("%Y-%m-%d %H:%M:%S %Z")
                );
            }
            return Ok(broken.unwrap_or(0));
        }
        Cmd::Reconcile { targets } => (cameras(dir, &targets)?, None, false),
        Cmd::Apply { target, preset } => (cameras(dir, &[target])?, preset, true),
    };
    // A broken camera file wins over the other outcomes.
    let code = |c: u8| broken.unwrap_or(c);
    if cams.is_empty() {
        log::info!("no cameras configured in {}", dir.join("cameras").display());
        return Ok(code(0));
    }
    let mut jobs = Vec::new();
    let mut missing = Vec::new();
    for (name, s) in cams {
        let preset_name = preset.clone().unwrap_or_else(|| due(&s).to_string());
        let Some(values) = s.presets.get(&preset_name) else {
            let known: Vec<&str> = s.presets.keys().map(String::as_str).collect();
            missing.push(format!("{name} (known: {})", known.join(", ")));
            continue;
        };
        let Some(control) = s.control_url.clone() else {
            unreachable!("a camera's settings always have a control URL");
        };
        jobs.push(run::Job {
            camera: name,
            control,
            preset_name,
            preset: values.clone(),
            force,
        });
    }
    if !missing.is_empty() {
        return Err(Fail::usage(format!(
            "no preset `{}` for {}; nothing was sent",
            preset.unwrap_or_default(),
            missing.join(", ")
        )));
    }
    let reports = run::reconcile_all(jobs, args.timeout, &run::state_dir());
    let off: Vec<String> = reports
        .iter()
        .filter(|(_, r)| !r.ok())
        .map(|(n, r)| format!("{n} ({})", r.short()))
        .collect();
    let sent: usize = reports
        .iter()
        .map(|(_, r)| match r {
            run::Report::OnPreset { sent } => *sent,
            _ => 0,
        })
        .sum();
    if off.is_empty() {
        if sent > 0 {
            log::info!(
                "every camera is on its preset ({} camera(s))",
                reports.len()
            );
        }
        Ok(code(0))
    } else {
        log::warn!(
            "not on their preset: {} (of {} camera(s))",
            off.join("; "),
            reports.len()
        );
        let only_down = reports
            .iter()
            .all(|(_, r)| matches!(r, run::Report::OnPreset { .. } | run::Report::Down(_)));
        Ok(code(if only_down { EXIT_DOWN } else { EXIT_OFF }))
    }
}

fn timer_dropin(
    dir: &std::path::Path,
    write: bool,
    dropin_dir: &std::path::Path,
    reload: bool,
) -> Result<u8, Fail> {
    let text = timer::render(dir).map_err(|e| Fail::load(&e))?;
    if !write {
        print!("{text}");
        return Ok(0);
    }
    let (path, changed) = timer::write(dropin_dir, &text).map_err(|e| Fail {
        code: EXIT_OFF,
        message: format!(
            "cannot write {}: {e}",
            dropin_dir.join(timer::DROPIN_FILE).display()
        ),
    })?;
    if !changed {
        log::info!("{} is up to date", path.display());
        return Ok(0);
    }
    log::info!("wrote {}", path.display());
    if reload {
        timer::reload().map_err(|m| Fail {
            code: EXIT_OFF,
            message: format!("{m}; the new times apply after `systemctl daemon-reload`"),
        })?;
        log::info!("systemd reloaded: daynight.timer follows the new times");
    }
    Ok(0)
}
