//! The camera's RAM directory: the recorder's lock, handing segments off to the uploader
//! (`.ts.part` → `.ts` in one rename, with an mtime no other segment has to the second and mode
//! 0640: the uploader's user reads it through the group), finalising partial segments left by a
//! crash, and the clock notes: while the clock is unsynchronised (and `REQUIRE_CLOCK_SYNC=yes`),
//! each hand-off first notes the segment's `CLOCK_REALTIME − CLOCK_BOOTTIME` offset in
//! `.seg-cam-clock` (written atomically, with the boot id, pruned of segments that are gone), so
//! the uploader can date the segment once the clock is synchronised even if it never saw it
//! before (`visdcam_core::clock`).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use visdcam_core::clock::{ClockNotes, RECORDER_NOTES_FILE};
use visdcam_core::recorder::{partial_verdict, unique_mtime, PartialVerdict, PARTIAL_HEAD};
use visdcam_core::segment::{classify, EntryKind, SegmentName};
use visdcam_daemon::clock::{boot_id, load_notes, ClockSource};
use visdcam_daemon::fsutil::write_atomic;

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
    clock: ClockSource,
    /// Note clock offsets while unsynchronised (`REQUIRE_CLOCK_SYNC=yes`: the uploader only
    /// corrects key times then).
    note_offsets: bool,
    notes: ClockNotes,
    /// The notes file's text as last written ("" when there is none).
    notes_written: String,
    /// The sync state seen at the last hand-off (changes are logged).
    last_synced: Option<bool>,
}

impl Handoff {
    /// Starts from the newest final segment still in `dir` (not uploaded yet), so a restart
    /// does not give a new segment the same second as one left from before, and from the clock
    /// notes of this boot for the segments still there (notes of another boot are dropped).
    pub fn new(dir: &Path, clock: ClockSource, note_offsets: bool) -> Result<Handoff, IoError> {
        let mut last_mtime = None;
        let mut finals = HashSet::new();
        let entries = ctx(fs::read_dir(dir), || format!("reading {}", dir.display()))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let EntryKind::Final(_) = classify(&name) {
                if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                    last_mtime = last_mtime.max(Some(unix_secs(m)));
                }
                finals.insert(name);
            }
        }
        let path = dir.join(RECORDER_NOTES_FILE);
        let mut notes = load_notes(&path, &boot_id());
        notes.offsets.retain(|n, _| finals.contains(n));
        let mut h = Handoff {
            dir: dir.into(),
            last_mtime,
            clock,
            note_offsets,
            notes,
            notes_written: fs::read_to_string(&path).unwrap_or_default(),
            last_synced: None,
        };
        h.save_notes();
        Ok(h)
    }

    /// Before a hand-off of `final_name`: drops the notes of segments that are gone (uploaded
    /// or dropped), notes this one's clock offset if the clock is unsynchronised, and writes
    /// the notes file when it changed. A failure is logged and the hand-off goes on: the
    /// uploader then notes the segment itself when it sees it before the clock is synchronised.
    fn note_clock(&mut self, final_name: &str) {
        let dir = &self.dir;
        self.notes.offsets.retain(|n, _| dir.join(n).exists());
        if self.note_offsets {
            match self.clock.read() {
                Ok(r) => {
                    if self.last_synced != Some(r.synced) {
                        if r.synced {
                            if self.last_synced.is_some() {
                                log::info!("system clock synchronised");
                            }
                        } else {
                            log::info!(
                                "system clock not synchronised: segments are noted in {} so \
                                 the uploader keys them by their real time once it is",
                                RECORDER_NOTES_FILE
                            );
                        }
                        self.last_synced = Some(r.synced);
                    }
                    if !r.synced {
                        self.notes
                            .offsets
                            .insert(final_name.to_string(), r.offset_ns());
                    }
                }
                Err(e) => log::error!("reading the clock state: {e}"),
            }
        }
        self.save_notes();
    }

    /// Writes the notes file atomically when its text changed; removes it when empty.
    fn save_notes(&mut self) {
        let text = if self.notes.offsets.is_empty() {
            String::new()
        } else {
            self.notes.render()
        };
        if text == self.notes_written {
            return;
        }
        let path = self.dir.join(RECORDER_NOTES_FILE);
        let r = if text.is_empty() {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            write_atomic(&path, text.as_bytes())
        };
        match r {
            Ok(()) => self.notes_written = text,
            Err(e) => log::error!("cannot write {}: {e}", path.display()),
        }
    }

    /// Segments with a clock note (tests).
    #[cfg(test)]
    fn noted(&self) -> Vec<String> {
        self.notes.offsets.keys().cloned().collect()
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
    /// keyframe interval after its end); otherwise the file's own mtime (its last write, moved
    /// by a test clock's offset like every other wall time the recorder uses).
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
            None => {
                let written = ctx(meta.modified(), || format!("mtime of {}", part.display()))?;
                self.clock.read().map_or(written, |r| r.shifted(written))
            }
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
                // The note is on disk before the final name appears: an uploader that lists
                // the segment and then reads the notes finds it.
                self.note_clock(&seg.final_name());
                let fin = self.dir.join(seg.final_name());
                ctx(fs::rename(part, &fin), || {
                    format!("renaming {} to {}", part.display(), fin.display())
                })?;
                Ok(Outcome::HandedOff(fin))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use visdcam_core::clock::TestClock;

    /// One TS packet that starts a video PES: the least the crash triage keeps.
    fn video_packet() -> Vec<u8> {
        let mut p = vec![0x47, 0x40, 0x00, 0x10, 0, 0, 1, 0xE0];
        p.resize(188, 0xFF);
        p
    }

    struct Dir {
        tmp: tempfile::TempDir,
        clock: PathBuf,
        next: u64,
    }

    impl Dir {
        fn new() -> Dir {
            let tmp = tempfile::tempdir().unwrap();
            let clock = tmp.path().join("test-clock");
            let d = Dir {
                clock,
                tmp,
                next: 1_760_271_142_000,
            };
            d.set_clock(false, -18_000);
            fs::create_dir(d.ram()).unwrap();
            d
        }

        fn ram(&self) -> PathBuf {
            self.tmp.path().join("cam1")
        }

        fn source(&self) -> ClockSource {
            ClockSource::Test(self.clock.clone())
        }

        fn set_clock(&self, synced: bool, offset_s: i64) {
            fs::write(&self.clock, TestClock { synced, offset_s }.render()).unwrap();
        }

        /// Writes a partial and hands it off; the final name.
        fn hand_off(&mut self, h: &mut Handoff) -> String {
            self.next += 2000;
            let seg = SegmentName::new(self.next, 0x0a3f);
            let part = self.ram().join(seg.partial_name());
            fs::write(&part, video_packet()).unwrap();
            let out = h.hand_off(&part, None).unwrap();
            assert_eq!(out, Outcome::HandedOff(self.ram().join(seg.final_name())));
            seg.final_name()
        }

        fn notes_on_disk(&self) -> Option<ClockNotes> {
            fs::read_to_string(self.ram().join(RECORDER_NOTES_FILE))
                .ok()
                .map(|t| ClockNotes::parse(&t))
        }
    }

    #[test]
    fn notes_each_unsynced_hand_off_and_prunes_segments_that_are_gone() {
        let mut d = Dir::new();
        let mut h = Handoff::new(&d.ram(), d.source(), true).unwrap();
        let before = d.source().read().unwrap().offset_ns();
        let a = d.hand_off(&mut h);
        let b = d.hand_off(&mut h);
        let after = d.source().read().unwrap().offset_ns();
        let notes = d.notes_on_disk().expect("notes written");
        assert_eq!(notes.boot_id, boot_id());
        assert_eq!(notes.offsets.keys().collect::<Vec<_>>(), [&a, &b]);
        for off in notes.offsets.values() {
            // The test clock's −5 h is in the offset; the step back to 0 undoes it.
            assert!(
                (before - 1_000_000..=after + 1_000_000).contains(off),
                "{off}"
            );
        }

        // `a` is uploaded, then the clock is synchronised: `c` needs no note, `a`'s goes.
        fs::remove_file(d.ram().join(&a)).unwrap();
        d.set_clock(true, 0);
        let c = d.hand_off(&mut h);
        assert_eq!(h.noted(), [b.as_str()]);
        assert_eq!(d.notes_on_disk().unwrap().offsets.len(), 1);
        assert!(d.ram().join(&c).exists());

        // Nothing left to note: the file goes.
        fs::remove_file(d.ram().join(&b)).unwrap();
        d.hand_off(&mut h);
        assert!(d.notes_on_disk().is_none());
        // Only the segments and the (absent) notes: no temporary file is left behind.
        let names: Vec<String> = fs::read_dir(d.ram())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn a_restart_keeps_this_boots_notes_and_drops_another_boots() {
        let mut d = Dir::new();
        let mut h = Handoff::new(&d.ram(), d.source(), true).unwrap();
        let a = d.hand_off(&mut h);
        let b = d.hand_off(&mut h);
        drop(h);
        fs::remove_file(d.ram().join(&a)).unwrap();
        let h = Handoff::new(&d.ram(), d.source(), true).unwrap();
        assert_eq!(h.noted(), [b.as_str()]);
        assert_eq!(
            d.notes_on_disk()
                .unwrap()
                .offsets
                .keys()
                .collect::<Vec<_>>(),
            [&b]
        );
        drop(h);

        // Notes of another boot never apply: removed at start.
        let mut other = d.notes_on_disk().unwrap();
        other.boot_id = "another-boot".into();
        fs::write(d.ram().join(RECORDER_NOTES_FILE), other.render()).unwrap();
        let h = Handoff::new(&d.ram(), d.source(), true).unwrap();
        assert!(h.noted().is_empty());
        assert!(d.notes_on_disk().is_none());
    }

    #[test]
    fn no_notes_without_the_clock_gate() {
        let mut d = Dir::new();
        let mut h = Handoff::new(&d.ram(), d.source(), false).unwrap();
        d.hand_off(&mut h);
        assert!(h.noted().is_empty());
        assert!(d.notes_on_disk().is_none());
    }
}
