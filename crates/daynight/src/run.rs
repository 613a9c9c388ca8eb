//! One pass over the cameras: each in its own thread with its own deadline (a slow or dead
//! camera never holds up the others), read `/status`, send what the plan says (`framesize`
//! first), read `/status` again to confirm, remember the result for the next run, and log
//! every change as `camera: var old → new`.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use visdcam_core::config::HttpUrl;
use visdcam_core::presets::{self, Memory, Miss, Preset, Sent};
use visdcam_daemon::error_chain;

use crate::camera::{Camera, HttpError};

/// What to do for one camera.
#[derive(Debug, Clone)]
pub struct Job {
    pub camera: String,
    pub control: HttpUrl,
    pub preset_name: String,
    pub preset: Preset,
    /// Send every variable (an explicit `apply`), not only the differences.
    pub force: bool,
}

/// How a camera ended up.
#[derive(Debug)]
pub enum Report {
    /// On its preset; `sent` calls were needed.
    OnPreset { sent: usize },
    /// Reachable but not (fully) on its preset.
    Off { misses: Vec<Miss> },
    /// Unreachable, or it stopped answering part-way.
    Down(HttpError),
    /// The thread did not report within the deadline (should not happen: every request is
    /// bounded by it).
    Overdue,
}

impl Report {
    pub fn ok(&self) -> bool {
        matches!(self, Report::OnPreset { .. })
    }

    /// A few words for the run's summary line.
    pub fn short(&self) -> String {
        match self {
            Report::OnPreset { .. } => "on its preset".into(),
            Report::Off { misses } => {
                let vars: Vec<String> = misses.iter().map(ToString::to_string).collect();
                vars.join(", ")
            }
            Report::Down(_) => "down".into(),
            Report::Overdue => "no answer in time".into(),
        }
    }
}

/// Where memories live: `VISDCAM_STATE_DIR`, else the service's `RUNTIME_DIRECTORY`, else
/// `/run/visdcam/daynight`.
pub fn state_dir() -> PathBuf {
    let env = |k| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(d) = env("VISDCAM_STATE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = env("RUNTIME_DIRECTORY") {
        // systemd lists several directories separated by `:`; the unit asks for one.
        let s = d.to_string_lossy();
        return PathBuf::from(s.split(':').next().unwrap_or(&s));
    }
    PathBuf::from("/run/visdcam/daynight")
}

fn read_memory(dir: &Path, camera: &str) -> Option<Memory> {
    let path = dir.join(camera);
    match std::fs::read_to_string(&path) {
        Ok(text) => match Memory::parse(&text) {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn!(
                    "{camera}: ignoring {}: {e} (everything is checked afresh)",
                    path.display()
                );
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            log::warn!(
                "{camera}: cannot read {}: {e} (everything is checked afresh)",
                path.display()
            );
            None
        }
    }
}

fn write_memory(dir: &Path, camera: &str, memory: Option<&Memory>) {
    let path = dir.join(camera);
    let result = match memory {
        Some(m) => std::fs::create_dir_all(dir)
            .and_then(|()| visdcam_daemon::fsutil::write_atomic(&path, m.render().as_bytes())),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r,
        },
    };
    if let Err(e) = result {
        // Only costs resending unreadable variables next time.
        log::warn!("{camera}: cannot update {}: {e}", path.display());
    }
}

/// Brings one camera onto its preset and says how it went.
pub fn reconcile_one(job: &Job, deadline: Instant, dir: &Path) -> Report {
    let cam = &job.camera;
    let camera = Camera::new(job.control.clone(), deadline);
    let before = match camera.status() {
        Ok(s) => s,
        Err(e) => return Report::Down(e),
    };
    let memory = read_memory(dir, cam);
    let plan = presets::plan(
        &job.preset_name,
        &job.preset,
        &before,
        memory.as_ref(),
        job.force,
    );
    match &memory {
        _ if job.force => log::info!("{cam}: applying {} (every variable)", job.preset_name),
        Some(m) if m.preset != job.preset_name => {
            log::info!("{cam}: switching from {} to {}", m.preset, job.preset_name)
        }
        Some(_) if plan.reboot_suspected => log::warn!(
            "{cam}: settings confirmed earlier are gone (the camera rebooted?): restoring {}",
            job.preset_name
        ),
        None if !plan.changes.is_empty() => {
            log::info!("{cam}: bringing onto {}", job.preset_name)
        }
        _ => {}
    }
    for (var, why) in &plan.skipped {
        log::debug!("{cam}: {var} left alone: {why}");
    }
    let mut sent = Vec::new();
    for change in &plan.changes {
        let status = match camera.control(change.var, change.new) {
            Ok(status) => status,
            Err(e) => {
                // Whatever was sent may or may not be in place: check everything next time.
                write_memory(dir, cam, None);
                return Report::Down(e);
            }
        };
        if status == 200 && change.old == Some(i64::from(change.new)) {
            log::debug!("{cam}: {change} (unchanged, sent anyway)");
        } else if status == 200 {
            log::info!("{cam}: {change}");
        } else {
            log::warn!("{cam}: {change} refused: HTTP {status}");
        }
        sent.push(Sent {
            var: change.var,
            value: change.new,
            status,
        });
    }
    let after = if sent.is_empty() {
        before
    } else {
        match camera.status() {
            Ok(s) => s,
            Err(e) => {
                write_memory(dir, cam, None);
                return Report::Down(e);
            }
        }
    };
    let outcome = presets::confirm(
        &job.preset_name,
        &job.preset,
        &after,
        &sent,
        memory.as_ref(),
        &plan,
    );
    write_memory(dir, cam, Some(&outcome.memory));
    if outcome.misses.is_empty() {
        if sent.is_empty() {
            log::debug!("{cam}: on {}, nothing to change", job.preset_name);
        } else {
            log::info!(
                "{cam}: on {} ({} variable(s) sent, /status confirms)",
                job.preset_name,
                sent.len()
            );
        }
        Report::OnPreset { sent: sent.len() }
    } else {
        let list: Vec<String> = outcome.misses.iter().map(ToString::to_string).collect();
        log::warn!(
            "{cam}: not on {}: {}; retried on the next run",
            job.preset_name,
            list.join("; ")
        );
        Report::Off {
            misses: outcome.misses,
        }
    }
}

/// Time allowed after the deadline for a thread to hand in its report.
const GRACE: Duration = Duration::from_secs(2);

/// Runs every job in parallel, each with `budget`; reports in the jobs' order.
pub fn reconcile_all(jobs: Vec<Job>, budget: Duration, dir: &Path) -> Vec<(String, Report)> {
    let deadline = Instant::now() + budget;
    let (tx, rx) = mpsc::channel();
    let names: Vec<String> = jobs.iter().map(|j| j.camera.clone()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        let tx = tx.clone();
        let dir = dir.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name(format!("daynight-{}", job.camera))
            .spawn(move || {
                let report = reconcile_one(&job, deadline, &dir);
                let _ = tx.send((i, report));
            });
        if let Err(e) = spawned {
            log::error!("{}: cannot start a thread: {e}", names[i]);
        }
    }
    drop(tx);
    let mut reports: Vec<Option<Report>> = names.iter().map(|_| None).collect();
    while reports.iter().any(Option::is_none) {
        let left = (deadline + GRACE).saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((i, r)) => reports[i] = Some(r),
            Err(_) => break,
        }
    }
    names
        .into_iter()
        .zip(reports)
        .map(|(name, r)| {
            let r = r.unwrap_or(Report::Overdue);
            match &r {
                Report::Down(e) => log::warn!(
                    "{name}: camera down: {}; skipped, retried on the next run",
                    error_chain(e)
                ),
                Report::Overdue => log::warn!(
                    "{name}: no answer within {} s; skipped, retried on the next run",
                    budget.as_secs()
                ),
                _ => {}
            }
            (name, r)
        })
        .collect()
}
