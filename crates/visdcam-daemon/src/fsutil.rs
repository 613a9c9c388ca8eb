//! File writes that are all-or-nothing (write a temporary file beside the target, fsync,
//! rename over the target, fsync the directory), the camera directory the recorder's and the
//! uploader's users share, and the free space of a filesystem.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `data` atomically, keeping the old file's permission bits (umask
/// notwithstanding), owner and group (`setdur` run by root on a file owned by
/// `root:visdcam`, mode 0640, must leave it so). A new file gets mode 0644 less the umask.
/// Keeping another user's ownership needs root (`CAP_CHOWN`) and an owner mapped in the
/// writer's user namespace; without them the new file is the writer's, as a plain rewrite
/// would be (the uploader's own counters file stays writable).
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let old = fs::metadata(path).ok();
    let mode = old
        .as_ref()
        .map_or(0o644, |m| m.permissions().mode() & 0o7777);
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        if let Some(old) = &old {
            let new = f.metadata()?;
            if (new.uid(), new.gid()) != (old.uid(), old.gid()) {
                match std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid())) {
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
                    // An owner this user namespace does not map (shown as 65534, as another
                    // user's file is under PrivateUsers=yes) cannot be kept either.
                    Err(e) if e.raw_os_error() == Some(nix::libc::EINVAL) => {}
                    r => r?,
                }
            }
            // After fchown (which clears set-id bits) and without the umask.
            f.set_permissions(fs::Permissions::from_mode(mode))?;
        }
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes `dir` (a camera's RAM directory, and `RAM_DIR` above it if missing) unless it exists,
/// so that the recorder (`visdcam-rec`) and the uploader (`visdcam`), who share only the group
/// `visdcam`, may both create and delete files in it: group `rwx`. Under the units'
/// `UMask=0007` mkdir(2) gives that already, and the setgid bit of the RAM disk's root
/// (`mode=2770`) is inherited: 2770. Under a stricter umask the group's `rwx` is added by
/// chmod(2), without set-id bits: `RestrictSUIDSGID=yes` refuses any chmod carrying them (even
/// one keeping an inherited bit), and the group is right anyway, being both users' primary
/// group.
///
/// The directory is made under a temporary name and renamed into place once its mode is right,
/// so the other daemon never finds it half set up; when both make it at once, one rename wins
/// and the other's directory is removed. An existing directory is left as it is (the package's
/// postinst gives those of older versions their mode).
pub fn ensure_shared_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    let name = dir
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no directory name"))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    fs::create_dir(&tmp)?;
    place_shared_dir(&tmp, dir)
}

/// Gives the new directory `tmp` the group's `rwx` and renames it to `dir`, unless `dir` exists
/// by then (the other daemon made it first): then `tmp` is removed and `dir` kept.
fn place_shared_dir(tmp: &Path, dir: &Path) -> io::Result<()> {
    let result = (|| {
        let mode = fs::metadata(tmp)?.permissions().mode();
        if mode & 0o070 != 0o070 {
            fs::set_permissions(tmp, fs::Permissions::from_mode((mode & 0o777) | 0o070))?;
        }
        // RENAME_NOREPLACE: a plain rename(2) would replace a directory the other daemon made
        // meanwhile while still empty, and with it the inode the uploader's inotify watch is on.
        nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            tmp,
            nix::fcntl::AT_FDCWD,
            dir,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        )
        .map_err(io::Error::from)
    })();
    match result {
        Ok(()) => Ok(()),
        Err(_) if dir.is_dir() => {
            let _ = fs::remove_dir(tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir(tmp);
            Err(e)
        }
    }
}

/// Free bytes for an unprivileged writer on the filesystem holding `dir`; `None` when it
/// cannot be read.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    #[allow(
        clippy::unnecessary_cast,
        reason = "fsblkcnt_t and c_ulong are narrower than u64 on 32-bit targets"
    )]
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_keeps_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cam1.conf");
        fs::write(&p, "A=1\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        write_atomic(&p, b"A=2\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "A=2\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left behind");
    }

    #[test]
    fn keeps_owner_group_and_mode_despite_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cam1.conf");
        fs::write(&p, "A=1\n").unwrap();
        // Root (the CLI under sudo) gives the file to another owner and group; anyone else
        // keeps their own uid and a group of theirs.
        let root = nix::unistd::geteuid().is_root();
        let (uid, gid) = if root {
            (1234, 5678)
        } else {
            let me = fs::metadata(&p).unwrap();
            (me.uid(), me.gid())
        };
        std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        // Group-writable: a 022 umask would drop the group's w.
        fs::set_permissions(&p, fs::Permissions::from_mode(0o664)).unwrap();
        write_atomic(&p, b"A=2\n").unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "A=2\n");
        assert_eq!((m.uid(), m.gid()), (uid, gid), "owner and group kept");
        assert_eq!(m.permissions().mode() & 0o7777, 0o664);
    }

    /// Runs `f` under `umask` (process-wide: these tests are the only ones here that make
    /// files with the umask deciding, and they take this lock).
    fn with_umask<T>(umask: u32, f: impl FnOnce() -> T) -> T {
        static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = UMASK.lock().unwrap_or_else(|e| e.into_inner());
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(umask));
        let r = f();
        nix::sys::stat::umask(old);
        r
    }

    #[test]
    fn a_shared_dir_under_the_units_umask_inherits_setgid() {
        // The RAM disk's root: mode=2770. The units' UMask=0007.
        let root = tempfile::tempdir().unwrap();
        let ram = root.path().join("ramcam");
        fs::create_dir(&ram).unwrap();
        fs::set_permissions(&ram, fs::Permissions::from_mode(0o2770)).unwrap();
        let dir = ram.join("cam1");
        with_umask(0o007, || ensure_shared_dir(&dir)).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o2770, "{mode:o}");
        let names: Vec<_> = fs::read_dir(&ram)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["cam1"], "no temporary directory left behind");
    }

    #[test]
    fn a_shared_dir_is_group_writable_despite_a_stricter_umask() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ramcam").join("cam1");
        with_umask(0o027, || ensure_shared_dir(&dir)).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
        // No set-id bit in the chmod (RestrictSUIDSGID=yes): the group's rwx only.
        assert_eq!(mode, 0o770, "{mode:o}");
    }

    #[test]
    fn an_existing_dir_and_its_files_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cam1");
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(dir.join("seg-1-0000.ts"), b"x").unwrap();
        ensure_shared_dir(&dir).unwrap();
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o7777,
            0o750
        );
        assert!(dir.join("seg-1-0000.ts").exists());
    }

    #[test]
    fn a_dir_made_meanwhile_by_the_other_daemon_is_kept() {
        // The other daemon's directory appears between the check and the rename, still empty
        // (only its inotify watch on it) or holding a file: it survives, nothing is left over.
        for with_file in [false, true] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("cam1");
            fs::create_dir(&dir).unwrap();
            if with_file {
                fs::write(dir.join(".seg-cam.lock"), b"").unwrap();
            }
            let before = fs::metadata(&dir).unwrap().ino();
            let tmp = root.path().join(".cam1.tmp-1");
            fs::create_dir(&tmp).unwrap();
            place_shared_dir(&tmp, &dir).unwrap();
            assert_eq!(fs::metadata(&dir).unwrap().ino(), before, "{with_file}");
            assert!(!tmp.exists(), "{with_file}");
        }
    }

    #[test]
    fn failure_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("x.conf");
        assert!(write_atomic(&p, b"A=2\n").is_err());
        assert!(!p.exists());
    }
}
