//! `status`: each camera's units (state, how long, restarts, STATUS= text), its RAM use and the
//! uploader's counters, then net-shaper, the day/night timer and the RAM disk. `--json` prints
//! the same as one stable document (docs/reference/cli.md).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Local, Utc};
use serde::Serialize;
use visdcam_core::cli::{budget_percent, format_duration, format_size, parse_stats};
use visdcam_core::units::{self, camera_units};

use crate::fail::{self, Exit, Failure};
use crate::ram::{camera_ram, fs_info, now_ms, FsInfo};
use crate::systemd::{Systemd, UnitInfo};
use crate::Ctx;

/// The recorder's counters file (segments it dropped over the RAM budget).
use visdcam_core::budget::RECORDER_STATS_FILE as RECORDER_STATS;
/// The uploader's counters file in a camera's RAM directory (`key=value` lines).
use visdcam_core::upload::STATS_FILE as UPLOADER_STATS;

/// Counters-file keys for `metrics`, `alert` and `top` that the text line leaves out (the
/// JSON has every key; the recorder's line shows only its drops, its STATUS= says the rest).
const MONITORING_ONLY: &[&str] = &[
    "retries_transient",
    "retries_refused",
    "retries_config",
    "failing_since_unix",
    "latency_buckets",
    "latency_sum_ms",
];

#[derive(Serialize)]
pub(crate) struct UnitJson {
    unit: String,
    load_state: String,
    active_state: String,
    sub_state: String,
    unit_file_state: String,
    since: Option<String>,
    for_seconds: Option<u64>,
    restarts: Option<u32>,
    status_text: Option<String>,
    result: Option<String>,
    main_pid: Option<u32>,
    next_elapse: Option<String>,
    last_trigger: Option<String>,
}

fn rfc3339(us: u64) -> Option<String> {
    (us > 0)
        .then(|| DateTime::<Utc>::from_timestamp_micros(us as i64))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn for_duration(us: u64, now_ms: u64) -> Option<Duration> {
    (us > 0).then(|| Duration::from_millis(now_ms.saturating_sub(us / 1000)))
}

impl UnitJson {
    fn new(i: &UnitInfo, now: u64) -> UnitJson {
        UnitJson {
            unit: i.unit.clone(),
            load_state: i.load_state.clone(),
            active_state: i.active_state.clone(),
            sub_state: i.sub_state.clone(),
            unit_file_state: i.unit_file_state.clone(),
            since: rfc3339(i.state_change_us),
            for_seconds: for_duration(i.state_change_us, now).map(|d| d.as_secs()),
            restarts: i.restarts,
            status_text: i.status_text.clone(),
            result: i.result.clone(),
            main_pid: i.main_pid,
            next_elapse: i.next_elapse_us.and_then(rfc3339),
            last_trigger: i.last_trigger_us.and_then(rfc3339),
        }
    }
}

#[derive(Serialize)]
pub(crate) struct RamJson {
    dir: String,
    exists: bool,
    recording: usize,
    pub(crate) queued: usize,
    pub(crate) queued_bytes: u64,
    total_bytes: u64,
    budget_bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct CameraJson {
    camera: String,
    config_error: Option<String>,
    units: Vec<UnitJson>,
    pub(crate) ram: Option<RamJson>,
    ram_error: Option<String>,
    uploader_stats: BTreeMap<String, String>,
    recorder_stats: BTreeMap<String, String>,
    /// The recorder's encoder and load (`visdcam_core::encoder::LOAD_FILE`).
    pub(crate) recorder_load: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct StatusJson {
    version: u32,
    cameras: Vec<CameraJson>,
    shaper: Option<UnitJson>,
    daynight_timer: Option<UnitJson>,
    ram_disk: Option<FsInfo>,
}

/// One unit as a line: `seg@cam1.service  active (running) for 3h 12m, 0 restarts — text`.
fn unit_line(i: &UnitInfo, now: u64) -> String {
    if i.load_state != "loaded" {
        return format!("{:<24} {} (unit not installed?)", i.unit, i.load_state);
    }
    let mut out = format!("{:<24} {} ({})", i.unit, i.active_state, i.sub_state);
    if let Some(d) = for_duration(i.state_change_us, now) {
        out.push_str(&format!(" for {}", format_duration(d)));
    }
    if let Some(n) = i.restarts {
        out.push_str(&format!(", {n} restart{}", if n == 1 { "" } else { "s" }));
    }
    if let Some(next) = i.next_elapse_us.filter(|u| *u > 0) {
        if let Some(t) = DateTime::<Utc>::from_timestamp_micros(next as i64) {
            out.push_str(&format!(
                ", next {}",
                t.with_timezone(&Local).format("%Y-%m-%d %H:%M %Z")
            ));
        }
    }
    if i.unit_file_state == "disabled" {
        out.push_str(", not started at boot");
    }
    if let Some(r) = i.result.as_deref().filter(|r| *r != "success") {
        out.push_str(&format!(", last result {r}"));
    }
    if let Some(t) = &i.status_text {
        out.push_str(&format!(" — {t}"));
    }
    out
}

/// One camera's units and RAM directory, as `status` reports them (also the live-view page's
/// status, crate::web).
pub(crate) fn camera(
    ctx: &Ctx,
    sd: &Systemd,
    cam: &str,
    now: u64,
) -> fail::Result<(CameraJson, Vec<UnitInfo>)> {
    let mut units_json = Vec::new();
    let mut infos = Vec::new();
    for u in camera_units(cam) {
        let info = sd.unit_info(&u)?;
        units_json.push(UnitJson::new(&info, now));
        infos.push(info);
    }
    let mut cj = CameraJson {
        camera: cam.to_string(),
        config_error: None,
        units: units_json,
        ram: None,
        ram_error: None,
        uploader_stats: BTreeMap::new(),
        recorder_stats: BTreeMap::new(),
        recorder_load: BTreeMap::new(),
    };
    match camera_ram(ctx, cam) {
        Ok(c) => {
            let l = c
                .listing
                .clone()
                .unwrap_or_else(|| visdcam_core::cli::ram_listing(&[]));
            cj.ram = Some(RamJson {
                dir: c.dir.display().to_string(),
                exists: c.listing.is_some(),
                recording: l.recording,
                queued: l.queued,
                queued_bytes: l.queued_bytes,
                total_bytes: l.total_bytes,
                budget_bytes: c.settings.ram_budget_bytes(),
            });
            if let Ok(text) = std::fs::read_to_string(c.dir.join(UPLOADER_STATS)) {
                cj.uploader_stats = parse_stats(&text).into_iter().collect();
            }
            if let Ok(text) = std::fs::read_to_string(c.dir.join(RECORDER_STATS)) {
                cj.recorder_stats = parse_stats(&text).into_iter().collect();
            }
            if let Ok(text) = std::fs::read_to_string(c.dir.join(visdcam_core::encoder::LOAD_FILE))
            {
                cj.recorder_load = visdcam_core::encoder::parse_load(&text);
            }
        }
        Err(f) if f.exit == Exit::Config => cj.config_error = Some(f.message),
        Err(f) => cj.ram_error = Some(f.message),
    }
    Ok((cj, infos))
}

/// A camera's lines of `status` text (without the camera-name column): one per unit, then
/// the configuration error or the RAM line.
pub(crate) fn camera_lines(cj: &CameraJson, infos: &[UnitInfo], now: u64) -> Vec<String> {
    let mut out: Vec<String> = infos.iter().map(|i| unit_line(i, now)).collect();
    if let Some(e) = &cj.config_error {
        out.push(format!("config: ✘ {e}"));
    }
    if let Some(e) = &cj.ram_error {
        out.push(format!("RAM: {e}"));
    }
    if let Some(r) = &cj.ram {
        let mut line = format!(
            "RAM: {} recording, {} queued, {} of {} budget ({}%)",
            r.recording,
            r.queued,
            format_size(r.total_bytes),
            format_size(r.budget_bytes),
            budget_percent(r.total_bytes, r.budget_bytes)
        );
        if !cj.uploader_stats.is_empty() {
            let stats: Vec<String> = cj
                .uploader_stats
                .iter()
                .filter(|(k, _)| !MONITORING_ONLY.contains(&k.as_str()))
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            line.push_str(&format!("; uploader: {}", stats.join(", ")));
        }
        if !cj.recorder_stats.is_empty() {
            let stats: Vec<String> = cj
                .recorder_stats
                .iter()
                .filter(|(k, _)| k.starts_with("dropped"))
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            line.push_str(&format!("; recorder: {}", stats.join(", ")));
        }
        out.push(line);
    }
    if let Some(line) = load_line(&cj.recorder_load) {
        out.push(line);
    }
    out
}

/// `encoder: x264 (why); frames in N out N dropped N, lag S, CPU P %`, then the recorder's
/// "cannot keep up" sentence when it has one.
fn load_line(load: &BTreeMap<String, String>) -> Option<String> {
    let get = |k: &str| load.get(k).map(String::as_str).unwrap_or("?");
    let enc = load.get("encoder")?;
    let lag_s = load
        .get("encoder_lag_ms")
        .and_then(|v| v.parse::<f64>().ok())
        .map(|ms| format!("{:.1}", ms / 1000.0))
        .unwrap_or_else(|| "?".into());
    let mut line = format!(
        "encoder: {enc} ({}); frames in {} out {} dropped {}, lag {lag_s} s, CPU {} %",
        get("encoder_why"),
        get("frames_in"),
        get("frames_out"),
        get("frames_dropped"),
        get("cpu_percent"),
    );
    if let Some(b) = load.get("behind") {
        line.push_str("; ");
        line.push_str(b);
    }
    Some(line)
}

/// `status [CAMERA...] [--json]`.
pub fn run(ctx: &Ctx, targets: &[String], json: bool) -> fail::Result<()> {
    let cameras = ctx.targets(targets, true)?;
    let sd = Systemd::connect()?;
    let now = now_ms();
    let mut doc = StatusJson {
        version: 1,
        cameras: Vec::new(),
        shaper: None,
        daynight_timer: None,
        ram_disk: None,
    };
    let mut unit_infos = Vec::new();
    for cam in &cameras {
        let (cj, infos) = camera(ctx, &sd, cam, now)?;
        unit_infos.extend(infos);
        doc.cameras.push(cj);
    }
    let shaper = sd.unit_info(units::SHAPER_SERVICE)?;
    let timer = sd.unit_info(units::DAYNIGHT_TIMER)?;
    doc.shaper = Some(UnitJson::new(&shaper, now));
    doc.daynight_timer = Some(UnitJson::new(&timer, now));
    doc.ram_disk = visdcam_daemon::config::load_global_from(&ctx.dir)
        .ok()
        .and_then(|g| fs_info(&g.ram_dir));

    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("plain data serialises")
        );
    } else {
        if cameras.is_empty() {
            println!(
                "no cameras configured: add {}/cameras/<name>.conf",
                ctx.dir_str()
            );
        }
        let mut infos = unit_infos.iter();
        for cj in &doc.cameras {
            let mine: Vec<UnitInfo> = cj
                .units
                .iter()
                .map(|_| infos.next().expect("one info per unit").clone())
                .collect();
            for (n, line) in camera_lines(cj, &mine, now).into_iter().enumerate() {
                let label = if n == 0 { cj.camera.as_str() } else { "" };
                println!("{label:<12} {line}");
            }
        }
        println!("{}", unit_line(&shaper, now));
        println!("{}", unit_line(&timer, now));
        if let Some(fs) = &doc.ram_disk {
            println!(
                "RAM disk {}: {} used, {} free{}",
                fs.path,
                format_size(fs.size_bytes.saturating_sub(fs.free_bytes)),
                format_size(fs.free_bytes),
                match &fs.mounted_fstype {
                    Some(t) => format!(" ({t})"),
                    None => " (NOT MOUNTED: segments would go to the SD card)".into(),
                }
            );
        }
    }
    let broken = doc
        .cameras
        .iter()
        .filter(|c| c.config_error.is_some())
        .count();
    if broken > 0 {
        return Err(Failure::config(format!(
            "{broken} camera configuration(s) invalid; `visdcam doctor` says how to fix them"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use visdcam_core::encoder::{parse_load, Load};

    #[test]
    fn the_encoder_line_names_the_encoder_and_says_when_the_recorder_falls_behind() {
        assert_eq!(load_line(&BTreeMap::new()), None);
        let mut l = Load {
            encoder: "x264".into(),
            encoder_why: "ENCODER=auto: no hardware encoder: no /dev/video11".into(),
            frames_in: 600,
            frames_out: 598,
            lag_ms: 120,
            cpu_percent: 10.6,
            x264_preset: "ultrafast".into(),
            ..Load::default()
        };
        assert_eq!(
            load_line(&parse_load(&l.render())).unwrap(),
            "encoder: x264 (ENCODER=auto: no hardware encoder: no /dev/video11); frames in 600 \
             out 598 dropped 0, lag 0.1 s, CPU 10.6 %"
        );
        l.dropped = 30;
        l.dropped_recent = 30;
        let line = load_line(&parse_load(&l.render())).unwrap();
        assert!(
            line.ends_with(
                "dropped 30, lag 0.1 s, CPU 10.6 %; cannot keep up: 30 frames dropped in the last \
                 minute, encoder 0.1 s behind, recorder at 11 % CPU; fix: a smaller framesize, \
                 ENCODER=v4l2 on a Pi 4"
            ),
            "{line}"
        );
    }
}
