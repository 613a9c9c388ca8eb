//! Unit control for cameras: start, stop, restart, enable, disable (over D-Bus), and `logs`
//! (handed over to journalctl).

use std::os::unix::process::CommandExt;

use visdcam_core::units::{self, camera_units};

use crate::args::UnitAction;
use crate::fail::{self, Failure};
use crate::systemd::{job_outcome, Systemd, JOB_TIMEOUT};
use crate::Ctx;

/// Queues one job per unit, waits for all of them, prints each outcome. Fails if any failed.
pub fn run_jobs(sd: &mut Systemd, method: &str, verb: &str, units: &[String]) -> fail::Result<()> {
    let mut jobs = Vec::new();
    for u in units {
        jobs.push(sd.queue(method, u)?);
    }
    let results = sd.wait(&jobs, JOB_TIMEOUT);
    let mut failed = 0;
    for (unit, done) in units.iter().zip(&results) {
        let info = sd.unit_info(unit).ok();
        match job_outcome(verb, unit, done.as_ref(), info.as_ref()) {
            Ok(line) => println!("{line}"),
            Err(line) => {
                failed += 1;
                eprintln!("{line}");
            }
        }
    }
    if failed > 0 {
        return Err(Failure::failed(format!(
            "{failed} of {} units failed to {verb}",
            units.len()
        )));
    }
    Ok(())
}

fn all_units(cameras: &[String]) -> Vec<String> {
    cameras.iter().flat_map(|c| camera_units(c)).collect()
}

/// `start|stop|restart CAMERA...|all`.
pub fn control(ctx: &Ctx, action: UnitAction, targets: &[String]) -> fail::Result<()> {
    let cameras = ctx.targets(targets, false)?;
    let mut sd = Systemd::connect()?;
    let method = match action {
        UnitAction::Start => "StartUnit",
        UnitAction::Stop => "StopUnit",
        UnitAction::Restart => "RestartUnit",
    };
    run_jobs(&mut sd, method, action.verb(), &all_units(&cameras))
}

/// `enable|disable CAMERA...|all [--now]`.
pub fn enable(ctx: &Ctx, enable: bool, targets: &[String], now: bool) -> fail::Result<()> {
    let cameras = ctx.targets(targets, false)?;
    let units = all_units(&cameras);
    let mut sd = Systemd::connect()?;
    let changes = if enable {
        sd.enable(&units)?
    } else {
        sd.disable(&units)?
    };
    for (kind, file, dest) in &changes {
        match kind.as_str() {
            "symlink" => println!("created symlink {file} → {dest}"),
            "unlink" => println!("removed {file}"),
            _ => println!("{kind} {file} {dest}"),
        }
    }
    if changes.is_empty() {
        let state = if enable { "enabled" } else { "disabled" };
        println!("{}: already {state}", units.join(", "));
    }
    if now {
        let (method, verb) = if enable {
            ("StartUnit", "start")
        } else {
            ("StopUnit", "stop")
        };
        run_jobs(&mut sd, method, verb, &units)?;
    } else if enable {
        println!(
            "they start at boot; start them now with `visdcam start {}`",
            cameras.join(" ")
        );
    }
    Ok(())
}

/// The journalctl arguments for `logs`.
pub fn journalctl_args(
    cameras: Option<&[String]>,
    follow: bool,
    lines: Option<u32>,
) -> Vec<String> {
    let mut out = Vec::new();
    match cameras {
        Some(cams) => {
            for u in all_units(cams) {
                out.push("-u".into());
                out.push(u);
            }
        }
        None => {
            for u in [
                "seg@*.service",
                "uploader@*.service",
                units::DAYNIGHT_SERVICE,
                units::DAYNIGHT_TIMER,
                units::SHAPER_SERVICE,
            ] {
                out.push("-u".into());
                out.push(u.into());
            }
        }
    }
    if let Some(n) = lines {
        out.push("-n".into());
        out.push(n.to_string());
    }
    if follow {
        out.push("--follow".into());
    }
    out
}

/// `logs CAMERA|all [--follow] [-n N]`: hands over to journalctl (it pages and follows).
pub fn logs(ctx: &Ctx, target: &str, follow: bool, lines: Option<u32>) -> fail::Result<()> {
    let args = if target == "all" {
        journalctl_args(None, follow, lines)
    } else {
        let cams = ctx.targets(&[target.to_string()], false)?;
        journalctl_args(Some(&cams), follow, lines)
    };
    let err = std::process::Command::new("journalctl").args(&args).exec();
    Err(Failure::failed(format!(
        "cannot run journalctl {}: {err}",
        args.join(" ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journalctl_filters() {
        let cams = vec!["cam2".to_string(), "front-door".to_string()];
        assert_eq!(
            journalctl_args(Some(&cams), true, Some(50)).join(" "),
            "-u seg@cam2.service -u uploader@cam2.service -u seg@front\\x2ddoor.service \
             -u uploader@front\\x2ddoor.service -n 50 --follow"
        );
        assert_eq!(
            journalctl_args(None, false, None).join(" "),
            "-u seg@*.service -u uploader@*.service -u daynight.service -u daynight.timer \
             -u net-shaper.service"
        );
    }
}
