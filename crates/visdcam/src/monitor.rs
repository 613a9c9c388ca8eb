//! Gathers one `core::monitor::Snapshot`: the configuration, each camera's counters files and
//! RAM use, the RAM disk, the clock, and (when the system bus answers) the units' states. A
//! part that cannot be read is left out, never fatal: a monitor must report on a broken Pi.

use std::path::Path;
use std::time::Duration;

use visdcam_core::budget::{RecorderStats, RECORDER_STATS_FILE};
use visdcam_core::cli::mount_fstype;
use visdcam_core::monitor::{CameraSnapshot, DiskSnapshot, ShaperClass, Snapshot, UnitState};
use visdcam_core::tcplan::{default_route_v4, default_route_v6, parse_classes};
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

/// The uplink: `SHAPER_DEV`, else the default route's device (as net-shaper picks it).
pub fn uplink_device(shaper_dev: Option<&str>) -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    shaper_dev.map(str::to_string).or_else(|| {
        default_route_v4(&read("/proc/net/route"))
            .or_else(|| default_route_v6(&read("/proc/net/ipv6_route")))
    })
}

/// How long `tc -s class show` may take.
const TC_LIMIT: Duration = Duration::from_secs(2);

/// net-shaper's classes and their counters on `dev` (`tc -s class show`, bounded); empty when
/// tc fails or is slow.
fn shaper_classes(dev: &str) -> Vec<ShaperClass> {
    let Ok(mut child) = std::process::Command::new("tc")
        .args(["-s", "class", "show", "dev", dev])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        return Vec::new();
    };
    let end = std::time::Instant::now() + TC_LIMIT;
    let ok = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.success(),
            Ok(None) if std::time::Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let mut text = String::new();
    if ok {
        if let Some(mut out) = child.stdout.take() {
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
        }
    }
    parse_classes(&text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|c| {
            let n = c.counters?;
            Some(ShaperClass {
                class: c.classid,
                sent_bytes: n.bytes,
                sent_packets: n.packets,
                dropped: n.drops,
                overlimits: n.overlimits,
            })
        })
        .collect()
}

/// One snapshot now. `extra_units` are watched too (the alert checker's own); `shaper`: read
/// net-shaper's class counters (only the metrics show them).
pub fn gather(ctx: &Ctx, extra_units: &[&str], shaper: bool) -> Snapshot {
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
    let other_units: Vec<UnitState> = OTHER_UNITS
        .iter()
        .chain(extra_units)
        .filter_map(|u| unit(u))
        .collect();
    let global = load_global_from(&ctx.dir).ok();
    let disk = global.as_ref().and_then(|g| disk(&g.ram_dir));
    // The shaper's counters while it is installed (its unit active).
    let shaping = shaper
        && other_units
            .iter()
            .any(|u: &UnitState| u.unit == units::SHAPER_SERVICE && u.active_state == "active");
    let shaper_classes = match (shaping, global) {
        (true, Some(g)) => uplink_device(g.shaper_dev.as_deref())
            .map(|dev| shaper_classes(&dev))
            .unwrap_or_default(),
        _ => Vec::new(),
    };
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
        shaper_classes,
    }
}

/// How long `metrics --http` waits for a request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
