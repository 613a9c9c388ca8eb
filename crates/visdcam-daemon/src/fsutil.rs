//! File writes that are all-or-nothing (write a temporary file beside the target, fsync,
//! rename over the target, fsync the directory), and the free space of a filesystem.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replaces `path` with `data` atomically, keeping the old file's permission bits (umask
/// notwithstanding), owner and group (`setdur` run by root on a file owned by
/// `root:visdcam`, mode 0640, must leave it so). A new file gets mode 0644 less the umask.
/// Keeping another user's ownership needs root (`CAP_CHOWN`); without it the new file is the
/// writer's, as a plain rewrite would be (the uploader's own counters file stays writable).
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

    #[test]
    fn failure_leaves_the_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("missing-dir").join("x.conf");
        assert!(write_atomic(&p, b"A=2\n").is_err());
        assert!(!p.exists());
    }
}
