//! The `daynight.timer` drop-in that makes the timer fire at the configured switch times:
//! collects DAY_START/NIGHT_START/SCHEDULE_TZ from the global file and every camera's file,
//! renders it (in core), writes it atomically and asks systemd to reload.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono_tz::Tz;
use visdcam_core::config::ClockTime;
use visdcam_core::presets;
use visdcam_daemon::config::{self as files, LoadError};

/// Where the drop-in goes on a running system.
pub const DEFAULT_DROPIN_DIR: &str = "/etc/systemd/system/daynight.timer.d";
/// The drop-in's file name.
pub const DROPIN_FILE: &str = "schedule.conf";

/// Every switch time configured, with its zone: the global file's and each camera's.
pub fn switches(dir: &Path) -> Result<Vec<(ClockTime, Tz)>, LoadError> {
    let mut all = Vec::new();
    let mut add = |s: &visdcam_core::config::Settings| {
        all.push((s.day_start, s.schedule_tz));
        all.push((s.night_start, s.schedule_tz));
    };
    add(&files::load_global_from(dir)?);
    for cam in files::list_cameras(dir)? {
        add(&files::load_camera_from(dir, &cam)?);
    }
    Ok(all)
}

/// The drop-in's text for the configuration in `dir`.
pub fn render(dir: &Path) -> Result<String, LoadError> {
    Ok(presets::timer_dropin(
        &switches(dir)?,
        &dir.display().to_string(),
    ))
}

/// Writes `text` to `<dropin_dir>/schedule.conf` unless it is already there. Returns the path
/// and whether it changed.
pub fn write(dropin_dir: &Path, text: &str) -> io::Result<(PathBuf, bool)> {
    let path = dropin_dir.join(DROPIN_FILE);
    if std::fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok((path, false));
    }
    std::fs::create_dir_all(dropin_dir)?;
    visdcam_daemon::fsutil::write_atomic(&path, text.as_bytes())?;
    Ok((path, true))
}

/// `systemctl daemon-reload`: systemd re-reads the timer and re-arms it with the new times.
pub fn reload() -> Result<(), String> {
    let out = Command::new("systemctl")
        .arg("daemon-reload")
        .output()
        .map_err(|e| format!("cannot run systemctl daemon-reload: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "systemctl daemon-reload failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
