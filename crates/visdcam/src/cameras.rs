//! Per-camera configuration commands: `cameras`, `getdur`, `setdur` (rewrite + restart over
//! D-Bus) and `preset` (handed to `daynight apply`).

use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;
use visdcam_core::units::seg_unit;
use visdcam_daemon::config::{load_camera_from, set_camera_key};

use crate::fail::{self, Exit, Failure};
use crate::systemd::Systemd;
use crate::units::run_jobs;
use crate::Ctx;

#[derive(Serialize)]
struct CameraJson {
    camera: String,
    camera_url: Option<String>,
    control_url: Option<String>,
    seg_seconds: Option<u32>,
    error: Option<String>,
}

/// `cameras [--json]`: every configured camera, with the error if its file is invalid.
pub fn list(ctx: &Ctx, json: bool) -> fail::Result<()> {
    let mut rows = Vec::new();
    for cam in &ctx.known {
        rows.push(match load_camera_from(&ctx.dir, cam) {
            Ok(s) => CameraJson {
                camera: cam.clone(),
                camera_url: s.camera_url.map(|u| u.to_string()),
                control_url: s.control_url.map(|u| u.to_string()),
                seg_seconds: Some(s.seg_seconds),
                error: None,
            },
            Err(e) => CameraJson {
                camera: cam.clone(),
                camera_url: None,
                control_url: None,
                seg_seconds: None,
                error: Some(visdcam_daemon::error_chain(&e)),
            },
        });
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("plain data serialises")
        );
    } else if rows.is_empty() {
        println!(
            "no cameras configured: add {}/cameras/<name>.conf",
            ctx.dir_str()
        );
    } else {
        for r in &rows {
            match (&r.camera_url, &r.error) {
                (Some(url), _) => println!(
                    "{:<12} {url}  {} s segments",
                    r.camera,
                    r.seg_seconds.unwrap_or_default()
                ),
                (None, Some(e)) => println!("{:<12} ✘ {e}", r.camera),
                (None, None) => println!("{}", r.camera),
            }
        }
    }
    let bad = rows.iter().filter(|r| r.error.is_some()).count();
    if bad > 0 {
        return Err(Failure::new(
            Exit::Config,
            format!("{bad} camera configuration(s) invalid"),
        ));
    }
    Ok(())
}

/// `getdur [CAMERA...|all]`: `cam1 60 (where it is set)`.
pub fn getdur(ctx: &Ctx, targets: &[String]) -> fail::Result<()> {
    let cameras = ctx.targets(targets, true)?;
    if cameras.is_empty() {
        println!("no cameras configured in {}", ctx.dir_str());
    }
    for cam in &cameras {
        let s = load_camera_from(&ctx.dir, cam)?;
        println!("{cam} {} ({})", s.seg_seconds, s.origin_of("SEG_SECONDS"));
    }
    Ok(())
}

/// `setdur CAMERA SECONDS`: rewrite the camera's file, then restart its recorder if it runs.
pub fn setdur(ctx: &Ctx, camera: &str, seconds: u32) -> fail::Result<()> {
    let cams = ctx.targets(&[camera.to_string()], false)?;
    let camera = &cams[0];
    let before = load_camera_from(&ctx.dir, camera)?.seg_seconds;
    // Connect first: without systemd the change could not take effect, so nothing is written.
    let mut sd = Systemd::connect()?;
    let path: PathBuf = set_camera_key(&ctx.dir, camera, "SEG_SECONDS", &seconds.to_string())?;
    println!(
        "{camera}: SEG_SECONDS {before} → {seconds} in {}",
        path.display()
    );
    let unit = seg_unit(camera);
    let info = sd.unit_info(&unit)?;
    if matches!(
        info.active_state.as_str(),
        "active" | "activating" | "reloading"
    ) {
        run_jobs(&mut sd, "RestartUnit", "restart", &[unit])
    } else {
        println!(
            "{unit} is {}; the new length applies when it starts",
            info.active_state
        );
        Ok(())
    }
}

/// The daynight binary: `VISDCAM_DAYNIGHT`, else beside this binary, else /usr/bin/daynight.
fn daynight_path() -> PathBuf {
    if let Some(p) = std::env::var_os("VISDCAM_DAYNIGHT").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("daynight")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/daynight"))
}

/// `preset CAMERA|all day|night|auto`: runs `daynight apply` and passes on its result.
pub fn preset(ctx: &Ctx, target: &str, preset: &str) -> fail::Result<()> {
    let target = if target == "all" {
        ctx.targets(&["all".to_string()], false)?;
        "all".to_string()
    } else {
        ctx.targets(&[target.to_string()], false)?.remove(0)
    };
    let bin = daynight_path();
    let status = Command::new(&bin)
        .args(["apply", &target, preset])
        .status()
        .map_err(|e| {
            Failure::failed(format!(
                "cannot run {}: {e} (is the visdcam package installed?)",
                bin.display()
            ))
        })?;
    match status.code() {
        Some(0) => Ok(()),
        // daynight has printed why; keep its status (it uses the same exit codes).
        Some(code) => Err(Failure::new(
            match code {
                2 => Exit::Usage,
                4 => Exit::Permission,
                78 => Exit::Config,
                _ => Exit::Failed,
            },
            String::new(),
        )),
        None => Err(Failure::failed(format!(
            "{} apply {target} {preset} was killed ({status})",
            bin.display()
        ))),
    }
}
