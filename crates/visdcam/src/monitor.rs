//! Gathers one `core::monitor::Snapshot`: the configuration, each camera's counters files and
//! RAM use, the RAM disk, the clock, and (when the system bus answers) the units' states. A
//! part that cannot be read is left out, never fatal: a monitor must report on a broken Pi.

use std::path::Path;
use std::time::Duration;

use visdcam_core::budget::{RecorderStats, RECORDER_STATS_FILE};
use visdcam_core::cli::mount_fstype;
use visdcam_core::monitor::{CameraSnapshot, DiskSnapshot, Snapshot, UnitState};
use visdcam_core::units::{self, camera_units};
use visdcam_core::upload::{Stats, STATS_FILE};
use visdcam_daemon::clock::ClockSource;
use visdcam_daemon::config::{load_camera_from, load_global_from};

use crate::systemd::{Systemd, UnitInfo};
use crate::Ctx;

/// The encoder every recorder uses (seg-cam's pipeline).
const ENCODER: &str = "x264enc";

/// Units watched beside the cameras'.
pub const OTHER_UNITS: &[&str] = &[
    units::SHAPER_SERVICE,
    "daynight.service",
    units::DAYNIGHT_TIMER,
];

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn unit_state(i: UnitInfo) -> UnitState {
    UnitState {
        unit: i.unit,
        load_state: i.load_state,
        active_state: i.active_state,
        sub_state: i.sub_state,
        unit_file_state: i.unit_file_state,
        restarts: i.restarts,
    }
}

/// The bytes of regular files directly in `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn disk(path: &Path) -> Option<DiskSnapshot> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let fstype = mount_fstype(&mounts, &path.display().to_string());
    Some(DiskSnapshot {
        path: path.display().to_string(),
        size_bytes: st.blocks() as u64 * frag,
        free_bytes: st.blocks_available() as u64 * frag,
        mounted: fstype.is_some_and(|t| t == "tmpfs" || t == "ramfs"),
    })
}

/// One snapshot now. `extra_units` are watched too (the alert checker's own).
pub fn gather(ctx: &Ctx, extra_units: &[&str]) -> Snapshot {
    let sd = Systemd::connect().ok();
    let unit = |name: &str| -> Option<UnitState> {
        sd.as_ref()
            .and_then(|sd| sd.unit_info(name).ok())
            .map(unit_state)
    };
    let mut cameras = Vec::new();
    for cam in &ctx.known {
        let names = camera_units(cam);
        let mut c = CameraSnapshot {
            camera: cam.clone(),
            recorder_unit: names.first().and_then(|u| unit(u)),
            uploader_unit: names.get(1).and_then(|u| unit(u)),
            ..CameraSnapshot::default()
        };
        match load_camera_from(&ctx.dir, cam) {
            Ok(settings) => {
                let dir = settings
                    .camera_dir()
                    .expect("camera settings have a camera");
                c.recorder = std::fs::read_to_string(dir.join(RECORDER_STATS_FILE))
                    .ok()
                    .map(|t| RecorderStats::parse(&t));
                c.uploader = std::fs::read_to_string(dir.join(STATS_FILE))
                    .ok()
                    .map(|t| Stats::parse(&t));
                c.ram_bytes = dir_bytes(&dir);
                c.budget_bytes = settings.ram_budget_bytes();
                c.rate_limit_bps = settings.rate_kbps * 1024;
                c.encoder = ENCODER.into();
                c.encoder_preset = settings.x264_preset.clone();
            }
            Err(e) => c.config_error = Some(e.to_string()),
        }
        cameras.push(c);
    }
    let other_units = OTHER_UNITS
        .iter()
        .chain(extra_units)
        .filter_map(|u| unit(u))
        .collect();
    let disk = load_global_from(&ctx.dir)
        .ok()
        .and_then(|g| disk(&g.ram_dir));
    Snapshot {
        now_unix: unix_now(),
        host: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
        cameras,
        disk,
        clock_synced: ClockSource::from_env().read().ok().map(|r| r.synced),
        systemd: sd.is_some(),
        other_units,
        shaper_classes: Vec::new(),
    }
}

/// How long `metrics --http` waits for a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
