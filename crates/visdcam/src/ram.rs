//! The RAM disk: reading each camera's directory (`lsram`, `status`), deleting queued segments
//! by hand (`clean`), and the file system's size and free space.

use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use visdcam_core::cli::{
    budget_percent, clean_selection, format_duration, format_size, mount_fstype, ram_listing,
    DirEntry, RamListing,
};
use visdcam_core::config::Settings;
use visdcam_daemon::config::load_camera_from;

use crate::fail::{self, Exit, Failure, SUDO_HINT};
use crate::Ctx;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn io_failure(what: &str, path: &Path, e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::PermissionDenied {
        Failure::new(
            Exit::Permission,
            format!("cannot {what} {}: {SUDO_HINT}", path.display()),
        )
    } else {
        Failure::failed(format!("cannot {what} {}: {e}", path.display()))
    }
}

/// Reads a camera's RAM directory; `None` if it does not exist (nothing recorded yet).
pub fn read_camera_dir(dir: &Path) -> fail::Result<Option<Vec<DirEntry>>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_failure("read", dir, &e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_failure("read", dir, &e))?;
        // A segment uploaded (and removed) between readdir and stat is simply gone.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        out.push(DirEntry {
            name: entry.file_name().to_string_lossy().into_owned(),
            size: meta.len(),
            mtime_ms,
        });
    }
    Ok(Some(out))
}

/// The file system under a path: type (if it is a mount point), size and free bytes.
#[derive(Debug, Clone, Serialize)]
pub struct FsInfo {
    pub path: String,
    /// The file-system type when `path` is a mount point (`tmpfs` on a Pi), else null.
    pub mounted_fstype: Option<String>,
    pub size_bytes: u64,
    pub free_bytes: u64,
}

pub fn fs_info(path: &Path) -> Option<FsInfo> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frag = st.fragment_size() as u64;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    Some(FsInfo {
        path: path.display().to_string(),
        mounted_fstype: mount_fstype(&mounts, &path.display().to_string()),
        size_bytes: st.blocks() as u64 * frag,
        free_bytes: st.blocks_available() as u64 * frag,
    })
}

#[derive(Serialize)]
struct SegmentJson {
    name: String,
    size_bytes: u64,
    age_seconds: u64,
    state: &'static str,
}

#[derive(Serialize)]
struct CameraRamJson {
    camera: String,
    dir: String,
    exists: bool,
    segments: Vec<SegmentJson>,
    recording: usize,
    queued: usize,
    queued_bytes: u64,
    total_bytes: u64,
    budget_bytes: u64,
    foreign_files: Vec<String>,
}

#[derive(Serialize)]
struct LsramJson {
    cameras: Vec<CameraRamJson>,
    filesystem: Option<FsInfo>,
}

/// One camera's settings and RAM directory listing.
pub struct CameraRam {
    pub camera: String,
    pub settings: Settings,
    pub dir: PathBuf,
    pub listing: Option<RamListing>,
}

pub fn camera_ram(ctx: &Ctx, camera: &str) -> fail::Result<CameraRam> {
    let settings = load_camera_from(&ctx.dir, camera)?;
    let dir = settings
        .camera_dir()
        .expect("camera settings have a camera");
    let listing = read_camera_dir(&dir)?.map(|e| ram_listing(&e));
    Ok(CameraRam {
        camera: camera.to_string(),
        settings,
        dir,
        listing,
    })
}

/// `lsram [CAMERA...|all] [--json]`.
pub fn lsram(ctx: &Ctx, targets: &[String], json: bool) -> fail::Result<()> {
    let cameras = ctx.targets(targets, true)?;
    let now = now_ms();
    let mut all = Vec::new();
    for cam in &cameras {
        all.push(camera_ram(ctx, cam)?);
    }
    let ram_dir = all.first().map(|c| c.settings.ram_dir.clone()).or_else(|| {
        visdcam_daemon::config::load_global_from(&ctx.dir)
            .ok()
            .map(|s| s.ram_dir)
    });
    let fs = ram_dir.as_deref().and_then(fs_info);
    if json {
        let doc = LsramJson {
            cameras: all
                .iter()
                .map(|c| {
                    let l = c.listing.clone().unwrap_or_else(|| ram_listing(&[]));
                    CameraRamJson {
                        camera: c.camera.clone(),
                        dir: c.dir.display().to_string(),
                        exists: c.listing.is_some(),
                        segments: l
                            .segments
                            .iter()
                            .map(|s| SegmentJson {
                                name: s.name.clone(),
                                size_bytes: s.size,
                                age_seconds: s.age(now).as_secs(),
                                state: s.state.as_str(),
                            })
                            .collect(),
                        recording: l.recording,
                        queued: l.queued,
                        queued_bytes: l.queued_bytes,
                        total_bytes: l.total_bytes,
                        budget_bytes: c.settings.ram_budget_bytes(),
                        foreign_files: l.foreign.clone(),
                    }
                })
                .collect(),
            filesystem: fs,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("plain data serialises")
        );
        return Ok(());
    }
    if cameras.is_empty() {
        println!("no cameras configured in {}", ctx.dir_str());
    }
    for c in &all {
        println!("{}  {}", c.camera, c.dir.display());
        let Some(l) = &c.listing else {
            println!("  no segments ({} does not exist yet)", c.dir.display());
            continue;
        };
        for s in &l.segments {
            println!(
                "  {:<34} {:>10}  {:>8}  {}",
                s.name,
                format_size(s.size),
                format_duration(s.age(now)),
                s.state
            );
        }
        for f in &l.foreign {
            println!("  {f:<34} (not a segment; never uploaded)");
        }
        let budget = c.settings.ram_budget_bytes();
        println!(
            "  {} segments ({} recording, {} queued), {} of {} budget ({}%)",
            l.segments.len(),
            l.recording,
            l.queued,
            format_size(l.total_bytes),
            format_size(budget),
            budget_percent(l.total_bytes, budget)
        );
    }
    if let Some(fs) = fs {
        println!(
            "file system {}: {} free of {}{}",
            fs.path,
            format_size(fs.free_bytes),
            format_size(fs.size_bytes),
            match &fs.mounted_fstype {
                Some(t) => format!(" ({t})"),
                None => " (not a mount point: segments are on the SD card!)".into(),
            }
        );
    }
    Ok(())
}

/// Asks a yes/no question on the terminal; anything but y/yes (or end of input) is no.
fn confirm(question: &str) -> bool {
    print!("{question} [y/N] ");
    let _ = io::stdout().flush();
    let mut answer = String::new();
    if io::stdin().lock().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

/// `clean CAMERA...|all [--older-than DUR] [--yes]`.
pub fn clean(
    ctx: &Ctx,
    targets: &[String],
    older_than: Option<Duration>,
    yes: bool,
) -> fail::Result<()> {
    let cameras = ctx.targets(targets, false)?;
    let now = now_ms();
    let mut plan: Vec<(String, PathBuf, u64)> = Vec::new();
    for cam in &cameras {
        let c = camera_ram(ctx, cam)?;
        let Some(listing) = &c.listing else { continue };
        for s in clean_selection(listing, now, older_than) {
            plan.push((cam.clone(), c.dir.join(&s.name), s.size));
        }
    }
    let age = older_than
        .map(|d| format!(" closed at least {} ago", format_duration(d)))
        .unwrap_or_default();
    if plan.is_empty() {
        println!(
            "nothing to delete: no queued segments{age} for {}",
            cameras.join(", ")
        );
        return Ok(());
    }
    let total: u64 = plan.iter().map(|p| p.2).sum();
    if !yes {
        for (cam, path, size) in &plan {
            println!("{cam}  {}  {}", path.display(), format_size(*size));
        }
        let q = format!(
            "Delete these {} queued segments{age} ({})? They will not be uploaded.",
            plan.len(),
            format_size(total)
        );
        if !confirm(&q) {
            println!("nothing deleted (answer y, or pass --yes)");
            return Ok(());
        }
    }
    let (mut deleted, mut bytes) = (0usize, 0u64);
    for (cam, path, size) in &plan {
        match std::fs::remove_file(path) {
            Ok(()) => {
                deleted += 1;
                bytes += size;
                println!("{cam}: deleted {} ({})", path.display(), format_size(*size));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!(
                    "{cam}: {} already gone (uploaded meanwhile)",
                    path.display()
                );
            }
            Err(e) => return Err(io_failure("delete", path, &e)),
        }
    }
    println!("deleted {deleted} segments, {}", format_size(bytes));
    Ok(())
}
