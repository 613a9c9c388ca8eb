//! The camera's RAM directory: the recorder's lock, handing segments off to the uploader
//! (`.ts.part` → `.ts` in one rename, with an mtime no other segment has to the second and mode
//! 0640: the uploader's user reads it through the group) and finalising partial segments left
//! by a crash.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use visdcam_core::recorder::{partial_verdict, unique_mtime, PartialVerdict, PARTIAL_HEAD};
use visdcam_core::segment::{classify, EntryKind, SegmentName};

/// The lock file a running recorder holds (a dot-file: the uploader ignores it).
pub const LOCK_FILE: &str = ".seg-cam.lock";

/// An I/O failure with the path it concerns.
#[derive(Debug)]
pub struct IoError {
    pub what: String,
    pub source: io::Error,
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.what)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl IoError {
    pub fn is_no_space(&self) -> bool {
        self.source.raw_os_error() == Some(nix::libc::ENOSPC)
    }
}

fn ctx<T>(r: io::Result<T>, what: impl FnOnce() -> String) -> Result<T, IoError> {
    r.map_err(|source| IoError {
        what: what(),
        source,
    })
}

/// Creates the camera directory (and RAM_DIR) if needed, shared with the uploader's user
/// (`visdcam_daemon::fsutil::ensure_shared_dir`).
pub fn ensure_dir(dir: &Path) -> Result<(), IoError> {
    ctx(visdcam_daemon::fsutil::ensure_shared_dir(dir), || {
        format!("creating {}", dir.display())
    })
}

/// Whether another process holds the directory's lock.
pub enum LockState {
    Held(Flock<File>),
    Busy,
}

/// Takes the recorder's lock on `dir` without waiting. The file is opened for reading only
/// (flock(2) needs no more): a lock file another user made (the single `visdcam` user of
/// earlier versions, mode 0640) still works through the group.
pub fn try_lock(dir: &Path) -> Result<LockState, IoError> {
    use nix::fcntl::OFlag;
    let path = dir.join(LOCK_FILE);
    let fd = ctx(
        nix::fcntl::open(
            &path,
            OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
            nix::sys::stat::Mode::from_bits_truncate(0o640),
        )
        .map_err(io::Error::from),
        || format!("opening {}", path.display()),
    )?;
    let file = File::from(fd);
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(LockState::Held(l)),
        Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(LockState::Busy),
        Err((_, e)) => Err(IoError {
            what: format!("locking {}", path.display()),
            source: e.into(),
        }),
    }
}

/// What happened to one partial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Renamed to this final path.
    HandedOff(PathBuf),
    /// Deleted: nothing decodable.
    Deleted(String),
    /// Gone already.
    Missing,
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    }
}

/// Hands segments off in one directory and remembers the last mtime second it gave out.
pub struct Handoff {
    dir: PathBuf,
    last_mtime: Option<i64>,
}

impl Handoff {
    /// Starts from the newest final segment still in `dir` (not uploaded yet), so a restart
    /// does not give a new segment the same second as one left from before.
    pub fn new(dir: &Path) -> Result<Handoff, IoError> {
        let mut last_mtime = None;
        let entries = ctx(fs::read_dir(dir), || format!("reading {}", dir.display()))?;
        for e in entries.flatten() {
            if let EntryKind::Final(_) = classify(&e.file_name().to_string_lossy()) {
                if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                    last_mtime = last_mtime.max(Some(unix_secs(m)));
                }
            }
        }
        Ok(Handoff {
            dir: dir.into(),
            last_mtime,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every `.part` in the directory, oldest first.
    pub fn partials(&self) -> Result<Vec<PathBuf>, IoError> {
        let entries = ctx(fs::read_dir(&self.dir), || {
            format!("reading {}", self.dir.display())
        })?;
        let mut found: Vec<(SegmentName, PathBuf)> = entries
            .flatten()
            .filter_map(|e| match classify(&e.file_name().to_string_lossy()) {
                EntryKind::Partial(s) => Some((s, e.path())),
                _ => None,
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }

    /// Finalises every partial in the directory (crash leftovers). Errors are logged per
    /// file; the count of handed-off segments is returned.
    pub fn recover_all(&mut self) -> Result<usize, IoError> {
        let mut n = 0;
        for p in self.partials()? {
            match self.hand_off(&p, None) {
                Ok(Outcome::HandedOff(f)) => {
                    log::info!(
                        "finalised {} left by an earlier run as {}",
                        p.display(),
                        f.display()
                    );
                    n += 1;
                }
                Ok(Outcome::Deleted(why)) => {
                    log::warn!("deleted {} left by an earlier run: {why}", p.display())
                }
                Ok(Outcome::Missing) => {}
                Err(e) => log::error!("{}", visdcam_daemon::error_chain(&e)),
            }
        }
        Ok(n)
    }

    /// Hands one `.part` off: cut to whole TS packets, delete it if nothing in it decodes,
    /// else give it a unique mtime second and rename it to its final name.
    ///
    /// `end`: when the segment ended, if known (splitmuxsink closes a fragment up to one
    /// keyframe interval after its end); otherwise the file's own mtime (its last write).
    pub fn hand_off(&mut self, part: &Path, end: Option<SystemTime>) -> Result<Outcome, IoError> {
        let name = part
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(seg) = SegmentName::parse_partial(&name) else {
            return Err(IoError {
                what: format!("{} is not a partial segment name", part.display()),
                source: io::Error::from(io::ErrorKind::InvalidInput),
            });
        };
        let mut file = match OpenOptions::new().read(true).write(true).open(part) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Outcome::Missing),
            Err(source) => {
                return Err(IoError {
                    what: format!("opening {}", part.display()),
                    source,
                })
            }
        };
        let meta = ctx(file.metadata(), || format!("reading {}", part.display()))?;
        let mtime = match end {
            Some(t) => t,
            None => ctx(meta.modified(), || format!("mtime of {}", part.display()))?,
        };
        let mut head = Vec::with_capacity(PARTIAL_HEAD);
        ctx(
            (&mut file).take(PARTIAL_HEAD as u64).read_to_end(&mut head),
            || format!("reading {}", part.display()),
        )?;
        match partial_verdict(meta.len(), &head) {
            PartialVerdict::Delete { why } => {
                drop(file);
                ctx(fs::remove_file(part), || {
                    format!("deleting {}", part.display())
                })?;
                Ok(Outcome::Deleted(why))
            }
            PartialVerdict::Keep { len } => {
                if len != meta.len() {
                    ctx(file.set_len(len), || {
                        format!("cutting {} to whole TS packets", part.display())
                    })?;
                }
                // Truncating moved the mtime; the segment ended when it was last written.
                let secs = unix_secs(mtime);
                let new = match unique_mtime(secs, self.last_mtime) {
                    Some(s) => {
                        log::debug!(
                            "{name}: mtime {secs} taken by the previous segment, using {s}"
                        );
                        UNIX_EPOCH + Duration::from_secs(s as u64)
                    }
                    None => mtime,
                };
                ctx(file.set_modified(new), || {
                    format!("setting the mtime of {}", part.display())
                })?;
                // Written under UMask=0007 (0660); once closed, the uploader's user (same
                // group) only reads it.
                ctx(
                    file.set_permissions(fs::Permissions::from_mode(0o640)),
                    || format!("setting the mode of {}", part.display()),
                )?;
                drop(file);
                self.last_mtime = Some(unix_secs(new).max(self.last_mtime.unwrap_or(i64::MIN)));
                let fin = self.dir.join(seg.final_name());
                ctx(fs::rename(part, &fin), || {
                    format!("renaming {} to {}", part.display(), fin.display())
                })?;
                Ok(Outcome::HandedOff(fin))
            }
        }
    }
}
