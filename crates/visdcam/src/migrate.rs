//! `visdcam migrate [--dry-run]`: reads a visdcam-pi install, prints the plan
//! (`visdcam_core::migrate`) and, unless `--dry-run`, carries it out in the order printed.
//!
//! Safety: the bucket is asked to accept the key before anything old is stopped; files are
//! moved (never deleted) into a dated backup directory holding `undo.sh`; a failure after the
//! old units were stopped puts their files back and starts them again. A second run finds
//! nothing of visdcam-pi and changes nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use visdcam_core::config::AddressingStyle;
use visdcam_core::migrate::{
    self as core, Found, OldSegment, Overrides, Plan, RamRoot, UnitState, CREDENTIALS_FILE,
    OLD_HELPER, OLD_RAM_DIR, OLD_TMPFILES, OLD_UNIT_DIR, ROOT_AWS_CONFIG, ROOT_AWS_CREDENTIALS,
};
use visdcam_core::segment::FINAL_SUFFIX;
use visdcam_daemon::config::load_camera_from;
use visdcam_daemon::fsutil::write_atomic;
use visdcam_s3::{Locations, Store, StoreConfig, Timeouts};

use crate::args::{MigrateArgs, RamlogsAction};
use crate::fail::{self, Exit, Failure, SUDO_HINT};
use crate::systemd::Systemd;
use crate::units::run_jobs;
use crate::Ctx;

/// The package's RAM disk unit (mounted on [`OLD_RAM_DIR`]).
const RAM_MOUNT: &str = "mnt-ramcam.mount";
const ASIDE: &str = core::OLD_RAM_ASIDE;
/// Largest text file read (scripts, units): anything bigger is not visdcam-pi's.
const MAX_TEXT: u64 = 1 << 20;

fn read_text(path: &Path) -> Option<String> {
    let m = fs::metadata(path).ok()?;
    if !m.is_file() || m.len() > MAX_TEXT {
        return None;
    }
    fs::read_to_string(path).ok()
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

fn state(sd: &Systemd, unit: &str) -> UnitState {
    match sd.unit_info(unit) {
        Ok(i) => UnitState {
            active: matches!(
                i.active_state.as_str(),
                "active" | "activating" | "reloading"
            ),
            enabled: i.unit_file_state.starts_with("enabled"),
        },
        Err(_) => UnitState::default(),
    }
}

/// Whether `path` is a mount point now.
fn is_mount_point(path: &str) -> bool {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(path))
}

fn old_segments(dir: &Path) -> Vec<OldSegment> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<OldSegment> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let m = fs::symlink_metadata(e.path()).ok()?;
            (core::is_old_segment(&name) && m.file_type().is_file()).then(|| OldSegment {
                name,
                mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Where the old segments are: /mnt/ramcam (or what its symlink points to), or the directory
/// an interrupted run moved it to.
fn segments_root(ram: &RamRoot) -> Option<PathBuf> {
    if Path::new(ASIDE).is_dir() {
        return Some(PathBuf::from(ASIDE));
    }
    match ram {
        RamRoot::Missing => None,
        RamRoot::Symlink { target } => Some(PathBuf::from(target)),
        RamRoot::MountPoint | RamRoot::PlainDir => Some(PathBuf::from(OLD_RAM_DIR)),
    }
}

/// Reads everything the plan needs.
fn discover(sd: &Systemd, config_dir: &Path) -> Found {
    let mut f = Found::default();
    if let Ok(rd) = fs::read_dir(OLD_UNIT_DIR) {
        for e in rd.flatten() {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if core::old_unit(&name).is_none() {
                continue;
            }
            let path = e.path();
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file()) {
                if let Some(text) = read_text(&path) {
                    if !core::is_package_unit(&text) {
                        f.units.insert(name.clone(), text);
                    }
                }
            }
        }
    }
    for name in f.units.keys() {
        let d = format!("{OLD_UNIT_DIR}/{name}.d");
        if Path::new(&d).is_dir() {
            f.files.insert(d, String::new());
        }
    }
    loop {
        let want = core::referenced_files(&f.units, &f.files);
        let before = f.files.len();
        for p in want {
            if let std::collections::btree_map::Entry::Vacant(e) = f.files.entry(p) {
                if let Some(t) = read_text(Path::new(e.key())) {
                    e.insert(t);
                }
            }
        }
        if f.files.len() == before {
            break;
        }
    }
    f.helper = fs::symlink_metadata(OLD_HELPER).is_ok();
    f.tmpfiles = fs::symlink_metadata(OLD_TMPFILES).is_ok();
    f.aws_credentials = read_text(Path::new(ROOT_AWS_CREDENTIALS));
    f.aws_config = read_text(Path::new(ROOT_AWS_CONFIG));
    for n in f.units.keys() {
        f.states.insert(n.clone(), state(sd, n));
    }
    for n in [
        visdcam_core::units::DAYNIGHT_TIMER,
        visdcam_core::units::SHAPER_SERVICE,
    ] {
        f.new_states.insert(n.to_string(), state(sd, n));
    }
    let ram = match fs::symlink_metadata(OLD_RAM_DIR) {
        Err(_) => RamRoot::Missing,
        Ok(m) if m.file_type().is_symlink() => RamRoot::Symlink {
            target: fs::canonicalize(OLD_RAM_DIR)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| {
                    fs::read_link(OLD_RAM_DIR)
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                }),
        },
        Ok(_) if is_mount_point(OLD_RAM_DIR) => RamRoot::MountPoint,
        Ok(_) => RamRoot::PlainDir,
    };
    if let Some(root) = segments_root(&ram) {
        if let Ok(rd) = fs::read_dir(&root) {
            for e in rd.flatten() {
                if let Ok(name) = e.file_name().into_string() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        let segs = old_segments(&e.path());
                        if !segs.is_empty() {
                            f.segments.insert(name, segs);
                        }
                    }
                }
            }
        }
    }
    f.ram_root = Some(ram);
    let mut config_files = vec![
        config_dir.join("visdcam.conf"),
        PathBuf::from(CREDENTIALS_FILE),
    ];
    if let Ok(rd) = fs::read_dir(config_dir.join("cameras")) {
        config_files.extend(rd.flatten().map(|e| e.path()));
    }
    for p in config_files {
        if let Some(t) = read_text(&p) {
            f.config.insert(p.display().to_string(), t);
        }
    }
    if let Some(dev) = core::old_shaper_device(&f) {
        f.root_qdisc = root_qdisc(&dev);
    }
    f
}

/// The kind of `dev`'s root qdisc (`tc qdisc show dev DEV root`), when tc answers.
fn root_qdisc(dev: &str) -> Option<String> {
    let out = Command::new("tc")
        .args(["qdisc", "show", "dev", dev, "root"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut w = text.split_whitespace();
    (w.next() == Some("qdisc")).then(|| w.next().map(str::to_string))?
}

/// `migrate [--dry-run]`.
pub fn run(ctx: &Ctx, args: &MigrateArgs) -> fail::Result<()> {
    // Even --dry-run reads root's ~/.aws: without root it would report them missing.
    if !nix::unistd::geteuid().is_root() {
        return Err(Failure::new(
            Exit::Permission,
            format!("migrate reads root's files and changes the system: {SUDO_HINT}"),
        ));
    }
    let mut sd = Systemd::connect()?;
    let found = discover(&sd, &ctx.dir);
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let over = Overrides {
        bucket: args.bucket.clone(),
        endpoint: args.endpoint.clone(),
        region: args.region.clone(),
        cameras: args.cameras.iter().cloned().collect(),
    };
    let plan = core::plan(&found, &over, &stamp, &ctx.dir_str())
        .map_err(|e| Failure::config(format!("cannot migrate: {e}; nothing was changed")))?;
    print!("{plan}");
    if plan.is_empty() {
        return Ok(());
    }
    if args.dry_run {
        println!("--dry-run: nothing was changed.");
        return Ok(());
    }
    if let Some(store) = &plan.store {
        check_store(store)?;
    }
    let backup = PathBuf::from(&plan.backup_dir);
    make_backup_dir(&backup, &plan)?;
    println!(
        "backup: {} (sh {}/undo.sh puts visdcam-pi back)",
        backup.display(),
        backup.display()
    );
    for w in &plan.writes {
        write_file(&backup, w)?;
        println!("wrote {}", w.path);
    }

    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = retire_old(&mut sd, &plan, &backup, &mut moved)
        .and_then(|()| handover(&mut sd, ctx, &plan, &found, &backup, &mut moved));
    if let Err(f) = result {
        eprintln!("visdcam: {}", f.message);
        let back = restore_old(&mut sd, &plan, &moved);
        return Err(Failure::failed(format!(
            "the migration stopped midway; {back}; the backup {} remains (sh {}/undo.sh puts \
             visdcam-pi back from it)",
            backup.display(),
            backup.display()
        )));
    }

    let undo = format!(
        "to go back to visdcam-pi: sudo sh {}/undo.sh",
        backup.display()
    );
    let rest = (|| -> fail::Result<()> {
        if plan.ramlogs {
            crate::ramlogs::run(RamlogsAction::On)?;
        }
        if !plan.enable.is_empty() {
            let changes = sd.enable(&plan.enable)?;
            for (_, file, dest) in &changes {
                println!("created symlink {file} → {dest}");
            }
        }
        if !plan.start.is_empty() {
            run_jobs(&mut sd, "StartUnit", "start", &plan.start)?;
        }
        Ok(())
    })();
    if let Err(f) = rest {
        return Err(Failure::new(f.exit, format!("{}; {undo}", f.message)));
    }
    println!("visdcam-pi is migrated; {undo}");
    println!("--- visdcam doctor");
    if let Err(f) = crate::doctor::run(&Ctx::load()?) {
        println!(
            "doctor found problems ({}); the migration itself is complete",
            f.message
        );
    }
    Ok(())
}

/// Asks the bucket to accept the key (a `HEAD` of the bucket) before anything old changes.
fn check_store(t: &core::StoreTarget) -> fail::Result<()> {
    let cfg = StoreConfig {
        endpoint: t.endpoint.clone(),
        bucket: t.bucket.clone(),
        style: if t.path_style {
            AddressingStyle::Path
        } else {
            AddressingStyle::VirtualHost
        },
        region: t.region.clone(),
        profile: t.profile.clone(),
        dscp: None,
        object_lock: None,
    };
    let locations = Locations {
        credentials: vec![PathBuf::from(&t.credentials)],
        config: vec![PathBuf::from(ROOT_AWS_CONFIG)],
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(10),
        per_read: Duration::from_secs(20),
        per_write: Duration::from_secs(20),
        global: Some(Duration::from_secs(30)),
    };
    let store = Store::with_timeouts(cfg, locations, timeouts);
    match store.probe_bucket() {
        Ok(()) => {
            println!(
                "bucket {} at {} accepts profile [{}] of {}",
                t.bucket, t.endpoint, t.profile, t.credentials
            );
            Ok(())
        }
        Err(e) => Err(Failure::failed(format!(
            "bucket {} at {} does not accept profile [{}] of {}: {}; nothing was changed, \
             visdcam-pi keeps running (fix the key, or give --bucket/--endpoint/--region, and \
             run migrate again)",
            t.bucket,
            t.endpoint,
            t.profile,
            t.credentials,
            visdcam_s3::Failure::from(e).why()
        ))),
    }
}

fn make_backup_dir(backup: &Path, plan: &Plan) -> fail::Result<()> {
    let parent = backup.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, &e))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(backup)
        .map_err(|e| io_failure("create the backup directory", backup, &e))?;
    let undo = backup.join("undo.sh");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&undo)
        .and_then(|mut f| io::Write::write_all(&mut f, core::undo_script(plan).as_bytes()))
        .map_err(|e| io_failure("write", &undo, &e))
}

/// Where `path` goes in the backup directory.
fn in_backup(backup: &Path, path: &str) -> PathBuf {
    backup.join(path.trim_start_matches('/'))
}

/// Writes one configuration file (its current version copied into the backup first).
fn write_file(backup: &Path, w: &core::Write) -> fail::Result<()> {
    let path = Path::new(&w.path);
    if w.replaces {
        let saved = in_backup(backup, &w.path);
        let parent = saved.parent().expect("inside the backup directory");
        fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, &e))?;
        fs::copy(path, &saved).map_err(|e| io_failure("back up", path, &e))?;
    }
    let parent = path.parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| io_failure("create", parent, &e))?;
    // The mode first (the credential's secret is never readable by others, not even in the
    // temporary file write_atomic makes with the old file's mode).
    match fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o7777 != w.mode => {
            fs::set_permissions(path, fs::Permissions::from_mode(w.mode))
                .map_err(|e| io_failure("change the mode of", path, &e))?;
        }
        Ok(_) => {}
        Err(_) => {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(w.mode)
                .open(path)
                .map_err(|e| io_failure("create", path, &e))?;
            fs::set_permissions(path, fs::Permissions::from_mode(w.mode))
                .map_err(|e| io_failure("change the mode of", path, &e))?;
        }
    }
    write_atomic(path, w.text.as_bytes()).map_err(|e| io_failure("write", path, &e))
}

/// Moves `from` to `to` (made parents). Across file systems (or where overlayfs will not
/// rename a directory) a directory is moved entry by entry and a regular file is copied (with
/// its mode and mtime) and removed.
fn move_path(from: &Path, to: &Path) -> io::Result<()> {
    if let Some(p) = to.parent() {
        fs::create_dir_all(p)?;
    }
    match fs::rename(from, to) {
        Err(e) if e.raw_os_error() == Some(nix::libc::EXDEV) => {
            let m = fs::symlink_metadata(from)?;
            if m.file_type().is_dir() {
                fs::create_dir_all(to)?;
                fs::set_permissions(to, m.permissions())?;
                for entry in fs::read_dir(from)? {
                    let entry = entry?;
                    move_path(&entry.path(), &to.join(entry.file_name()))?;
                }
                return fs::remove_dir(from);
            }
            if !m.file_type().is_file() {
                return Err(e);
            }
            fs::copy(from, to)?;
            fs::File::options()
                .write(true)
                .open(to)?
                .set_modified(m.modified()?)?;
            fs::remove_file(from)
        }
        r => r,
    }
}

/// Stops and disables the old units, clears the old qdisc, moves the old files into the
/// backup and reloads systemd.
fn retire_old(
    sd: &mut Systemd,
    plan: &Plan,
    backup: &Path,
    moved: &mut Vec<(PathBuf, PathBuf)>,
) -> fail::Result<()> {
    if !plan.stop.is_empty() {
        run_jobs(sd, "StopUnit", "stop", &plan.stop)?;
    }
    if !plan.disable.is_empty() {
        for (_, file, _) in sd.disable(&plan.disable)? {
            println!("removed {file}");
        }
    }
    if let Some(dev) = &plan.clear_qdisc {
        let out = Command::new("tc")
            .args(["qdisc", "del", "dev", dev, "root"])
            .output();
        match out {
            Ok(o) if o.status.success() => println!("removed the old root qdisc on {dev}"),
            Ok(o) => println!(
                "note: tc qdisc del dev {dev} root: {} (nothing left to remove?)",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => println!("note: cannot run tc to remove the old qdisc on {dev}: {e}"),
        }
    }
    for p in &plan.backup {
        let from = PathBuf::from(p);
        let to = in_backup(backup, p);
        move_path(&from, &to).map_err(|e| io_failure("move into the backup", &from, &e))?;
        moved.push((from, to));
    }
    if !plan.backup.is_empty() {
        println!(
            "moved {} files into {}",
            plan.backup.len(),
            backup.display()
        );
        sd.reload()?;
    }
    Ok(())
}

/// Puts moved files back, reloads systemd, enables and starts the old units again; a line
/// saying what happened.
fn restore_old(sd: &mut Systemd, plan: &Plan, moved: &[(PathBuf, PathBuf)]) -> String {
    let mut problems = Vec::new();
    for (orig, saved) in moved.iter().rev() {
        if let Err(e) = move_path(saved, orig) {
            problems.push(format!("{} not put back: {e}", orig.display()));
        }
    }
    if let Err(f) = sd.reload() {
        problems.push(f.message);
    }
    if !plan.restore_enable.is_empty() {
        if let Err(f) = sd.enable(&plan.restore_enable) {
            problems.push(f.message);
        }
    }
    if !plan.restore_start.is_empty() {
        if let Err(f) = run_jobs(sd, "StartUnit", "start", &plan.restore_start) {
            problems.push(f.message);
        }
    }
    if problems.is_empty() {
        "visdcam-pi's files are back and its units started again".into()
    } else {
        format!("putting visdcam-pi back: {}", problems.join("; "))
    }
}

/// The package's users: the uploader's (owns the RAM directories) and the recorder's (owns
/// the segments, as if it had recorded them).
struct Owners {
    visdcam: (u32, u32),
    rec: u32,
}

fn owners() -> fail::Result<Owners> {
    let user = |n: &str| {
        nix::unistd::User::from_name(n)
            .ok()
            .flatten()
            .ok_or_else(|| {
                Failure::failed(format!(
                    "no user {n}: is the visdcam package installed (it makes the users)?"
                ))
            })
    };
    let v = user("visdcam")?;
    let r = user("visdcam-rec")?;
    Ok(Owners {
        visdcam: (v.uid.as_raw(), v.gid.as_raw()),
        rec: r.uid.as_raw(),
    })
}

/// A camera directory both daemons can use: the uploader's user and group, mode 2770.
fn camera_dir(dir: &Path, o: &Owners) -> fail::Result<()> {
    if !dir.is_dir() {
        fs::create_dir(dir).map_err(|e| io_failure("create", dir, &e))?;
    }
    std::os::unix::fs::chown(dir, Some(o.visdcam.0), Some(o.visdcam.1))
        .map_err(|e| io_failure("give visdcam", dir, &e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o2770))
        .map_err(|e| io_failure("change the mode of", dir, &e))
}

/// Hands the old segments to the new uploaders: in place when /mnt/ramcam is already a
/// mount point, else (after mounting the RAM disk) copied from where they were.
fn handover(
    sd: &mut Systemd,
    ctx: &Ctx,
    plan: &Plan,
    found: &Found,
    backup: &Path,
    moved: &mut Vec<(PathBuf, PathBuf)>,
) -> fail::Result<()> {
    let ram = found.ram_root.clone().unwrap_or(RamRoot::Missing);
    let aside = Path::new(ASIDE);
    let source_root: Option<PathBuf> = match &ram {
        RamRoot::Missing if !aside.is_dir() => None,
        RamRoot::MountPoint if !aside.is_dir() => Some(PathBuf::from(OLD_RAM_DIR)),
        RamRoot::Symlink { target } => {
            let to = in_backup(backup, OLD_RAM_DIR);
            move_path(Path::new(OLD_RAM_DIR), &to)
                .map_err(|e| io_failure("move into the backup", Path::new(OLD_RAM_DIR), &e))?;
            moved.push((PathBuf::from(OLD_RAM_DIR), to));
            Some(PathBuf::from(target))
        }
        _ => {
            if !aside.is_dir() {
                move_path(Path::new(OLD_RAM_DIR), aside)
                    .map_err(|e| io_failure("move aside", Path::new(OLD_RAM_DIR), &e))?;
                println!("moved {OLD_RAM_DIR} to {ASIDE} (the RAM disk mounts on {OLD_RAM_DIR})");
            }
            Some(aside.to_path_buf())
        }
    };
    if !is_mount_point(OLD_RAM_DIR) {
        run_jobs(sd, "StartUnit", "start", &[RAM_MOUNT.to_string()])?;
    }
    let Some(source_root) = source_root else {
        return Ok(());
    };
    let o = owners()?;
    let in_place = source_root == Path::new(OLD_RAM_DIR);
    if in_place {
        // An fstab tmpfs of visdcam-pi's: the daemons' users must be able to use it.
        camera_dir(Path::new(OLD_RAM_DIR), &o)?;
    }
    for cam in &plan.cameras {
        let from_dir = source_root.join(cam);
        let segs = old_segments(&from_dir);
        let to_dir = Path::new(OLD_RAM_DIR).join(cam);
        camera_dir(&to_dir, &o)?;
        let seg_seconds = load_camera_from(&ctx.dir, cam).map_or(60, |s| s.seg_seconds);
        let names = core::handover_names(&segs, seg_seconds);
        let by_name: BTreeMap<&str, &OldSegment> =
            segs.iter().map(|s| (s.name.as_str(), s)).collect();
        for (old, new) in &names {
            let from = from_dir.join(old);
            let to = to_dir.join(new.final_name());
            let mtime = UNIX_EPOCH + Duration::from_nanos(by_name[old.as_str()].mtime_ns as u64);
            hand_one(&from, &to, mtime, in_place, o.rec, o.visdcam.1)?;
        }
        if !names.is_empty() {
            println!(
                "{cam}: {} visdcam-pi segments handed to uploader@{cam} (keys from their mtimes)",
                names.len()
            );
        }
    }
    if !in_place {
        let root = if matches!(ram, RamRoot::Symlink { .. }) {
            source_root.clone()
        } else {
            aside.to_path_buf()
        };
        remove_if_empty(&root);
    }
    Ok(())
}

/// One segment: renamed (in place) or copied under a dot name (which the uploader ignores),
/// given the recorder's owner, mode 0640 and the old mtime, renamed to its final name, and
/// the original removed.
fn hand_one(
    from: &Path,
    to: &Path,
    mtime: std::time::SystemTime,
    in_place: bool,
    uid: u32,
    gid: u32,
) -> fail::Result<()> {
    let dir = to.parent().expect("a camera directory");
    let name = to.file_name().expect("a segment name").to_string_lossy();
    debug_assert!(name.ends_with(FINAL_SUFFIX));
    let fix = |p: &Path| -> io::Result<()> {
        std::os::unix::fs::chown(p, Some(uid), Some(gid))?;
        fs::set_permissions(p, fs::Permissions::from_mode(0o640))?;
        fs::File::options().write(true).open(p)?.set_modified(mtime)
    };
    if in_place {
        fix(from).map_err(|e| io_failure("hand over", from, &e))?;
        fs::rename(from, to).map_err(|e| io_failure("rename", from, &e))?;
        return Ok(());
    }
    let tmp = dir.join(format!(".migrate-{name}"));
    (|| -> io::Result<()> {
        fs::copy(from, &tmp)?;
        fix(&tmp)?;
        fs::rename(&tmp, to)?;
        fs::remove_file(from)
    })()
    .map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_failure("copy into the RAM disk", from, &e)
    })
}

/// Removes a directory tree of empty directories; says what is left otherwise.
fn remove_if_empty(root: &Path) {
    let mut left = Vec::new();
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) && fs::remove_dir(&p).is_ok() {
                continue;
            }
            left.push(p.display().to_string());
        }
    }
    if left.is_empty() {
        let _ = fs::remove_dir(root);
    } else {
        println!(
            "note: {} keeps what is not a visdcam-pi segment: {}",
            root.display(),
            left.join(", ")
        );
    }
}
