//! The `visdcam` command's pure decisions: which cameras a target names, durations and sizes in
//! and out, the RAM-disk listing against the budget, which segments `clean` may delete, the
//! journald drop-in behind `ramlogs`, where the journal goes, and whether the RAM directories
//! and the credentials file have the modes the two daemon users need. Callers do the I/O.

use std::fmt;
use std::time::Duration;

use crate::config;
use crate::segment::{classify, EntryKind, SegmentName};
use crate::units::validate_camera_name;

/// Expands command-line targets (`cam1`, `cam1 cam2`, `all`) against the configured cameras.
///
/// `all` means every camera with a config file; it may not be mixed with names. Names keep
/// their order, duplicates are dropped. `config_dir` only appears in messages.
pub fn resolve_targets(
    targets: &[String],
    known: &[String],
    config_dir: &str,
) -> Result<Vec<String>, String> {
    if targets.iter().any(|t| t == "all") {
        if targets.len() > 1 {
            return Err("`all` cannot be combined with camera names".into());
        }
        if known.is_empty() {
            return Err(no_cameras(config_dir));
        }
        return Ok(known.to_vec());
    }
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        validate_camera_name(t)?;
        if !known.contains(t) {
            return Err(unknown_camera(t, known, config_dir));
        }
        if !out.contains(t) {
            out.push(t.clone());
        }
    }
    Ok(out)
}

/// `unknown camera `cam9`: no /etc/visdcam/cameras/cam9.conf (known: cam1, cam2)`.
pub fn unknown_camera(name: &str, known: &[String], config_dir: &str) -> String {
    let list = if known.is_empty() {
        "no cameras configured yet".to_string()
    } else {
        format!("known: {}", known.join(", "))
    };
    format!("unknown camera `{name}`: no {config_dir}/cameras/{name}.conf ({list})")
}

/// The error for `all` when no camera is configured.
pub fn no_cameras(config_dir: &str) -> String {
    format!(
        "no cameras configured: add {config_dir}/cameras/<name>.conf \
         (copy cam1.conf.example and set CAMERA_URL)"
    )
}

/// Parses an age such as `90s`, `15m`, `2h`, `1d`, `1h30m` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{s}`: use a number with s, m, h or d, such as 90s, 15m, 2h or 1h30m"
        )
    };
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().map(Duration::from_secs).map_err(|_| bad());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// Checks a `setdur` value: a whole number of seconds within `SEG_SECONDS`' range.
pub fn parse_seg_seconds(s: &str) -> Result<u32, String> {
    config::check_value("SEG_SECONDS", s)
        .map_err(|m| format!("invalid segment length `{s}`: {m} (seconds)"))?;
    s.parse()
        .map_err(|_| format!("invalid segment length `{s}`"))
}

/// A span for people: `45s`, `12m 5s`, `3h 12m`, `2d 4h`.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {mins}m")
    } else if mins > 0 {
        format!("{mins}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// A size for people in binary units: `812 B`, `1.4 KiB`, `95.0 MiB`, `1.2 GiB`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for u in &UNITS[1..] {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// What a segment on the RAM disk is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentState {
    /// `.ts.part`: the recorder is writing it (or crashed while writing it).
    Recording,
    /// `.ts`: closed, waiting for the uploader.
    Queued,
}

impl SegmentState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SegmentState::Recording => "recording",
            SegmentState::Queued => "queued",
        }
    }
}

impl fmt::Display for SegmentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A directory entry as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub size: u64,
    /// Modification time, Unix milliseconds.
    pub mtime_ms: u64,
}

/// One segment file in a camera's RAM directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub name: String,
    pub segment: SegmentName,
    pub size: u64,
    pub mtime_ms: u64,
    pub state: SegmentState,
}

impl Segment {
    /// Time since the file was last written (for a queued segment: since it was closed).
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.mtime_ms))
    }
}

/// A camera's RAM directory, sorted by segment start, with totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamListing {
    pub segments: Vec<Segment>,
    /// Files that are neither segments nor visdcam's dot-files (never uploaded or deleted).
    pub foreign: Vec<String>,
    pub total_bytes: u64,
    pub queued_bytes: u64,
    pub queued: usize,
    pub recording: usize,
}

/// Sorts a camera directory's entries into segments (oldest first) and the rest.
pub fn ram_listing(entries: &[DirEntry]) -> RamListing {
    let mut segments = Vec::new();
    let mut foreign = Vec::new();
    for e in entries {
        let (segment, state) = match classify(&e.name) {
            EntryKind::Final(s) => (s, SegmentState::Queued),
            EntryKind::Partial(s) => (s, SegmentState::Recording),
            EntryKind::Internal => continue,
            EntryKind::Foreign => {
                foreign.push(e.name.clone());
                continue;
            }
        };
        segments.push(Segment {
            name: e.name.clone(),
            segment,
            size: e.size,
            mtime_ms: e.mtime_ms,
            state,
        });
    }
    segments.sort_by(|a, b| (a.segment, &a.name).cmp(&(b.segment, &b.name)));
    foreign.sort();
    let queued: Vec<&Segment> = segments
        .iter()
        .filter(|s| s.state == SegmentState::Queued)
        .collect();
    RamListing {
        total_bytes: segments.iter().map(|s| s.size).sum(),
        queued_bytes: queued.iter().map(|s| s.size).sum(),
        queued: queued.len(),
        recording: segments.len() - queued.len(),
        segments,
        foreign,
    }
}

/// The segments `clean` deletes: queued ones (never one being recorded), only those at least
/// `older_than` old when given.
pub fn clean_selection(
    listing: &RamListing,
    now_ms: u64,
    older_than: Option<Duration>,
) -> Vec<&Segment> {
    listing
        .segments
        .iter()
        .filter(|s| s.state == SegmentState::Queued)
        .filter(|s| older_than.is_none_or(|min| s.age(now_ms) >= min))
        .collect()
}

/// Share of the budget in use, in whole percent (rounded down; over 100 when over budget).
pub fn budget_percent(used: u64, budget: u64) -> u64 {
    if budget == 0 {
        return 0;
    }
    (u128::from(used) * 100 / u128::from(budget)) as u64
}

/// Where `ramlogs on` installs its journald drop-in.
pub const RAMLOGS_DROPIN: &str = "/etc/systemd/journald.conf.d/visdcam-ramlogs.conf";

/// The drop-in's contents.
pub const RAMLOGS_DROPIN_TEXT: &str = "\
# Installed by `visdcam ramlogs on`; `visdcam ramlogs off` removes it.
# Keeps the journal in RAM (/run/log/journal) so logging does not wear the SD card.
# Logs are lost at reboot.
[Journal]
Storage=volatile
RuntimeMaxUse=32M
";

/// Where journald keeps the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStorage {
    /// Only in RAM (`/run/log/journal`), lost at reboot.
    Volatile,
    /// On disk (`/var/log/journal`).
    Persistent,
    /// Not kept at all (`Storage=none`).
    Discarded,
}

impl LogStorage {
    pub fn describe(&self) -> &'static str {
        match self {
            LogStorage::Volatile => "in RAM only (/run/log/journal; lost at reboot)",
            LogStorage::Persistent => "on disk (/var/log/journal; written to the SD card)",
            LogStorage::Discarded => "nowhere (journald Storage=none)",
        }
    }
}

/// The `Storage=` value of the `[Journal]` section of one journald config text, if set.
pub fn journald_storage_setting(text: &str) -> Option<String> {
    let mut in_journal = false;
    let mut found = None;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_journal = t == "[Journal]";
        } else if in_journal {
            if let Some((k, v)) = t.split_once('=') {
                if k.trim() == "Storage" {
                    found = Some(v.trim().to_string());
                }
            }
        }
    }
    found
}

/// Where logs go, given the journald config texts in the order journald reads them
/// (`journald.conf`, then drop-ins sorted by name; the last setting wins) and whether
/// `/var/log/journal` exists (what `Storage=auto`, the default, depends on).
pub fn log_storage(config_texts: &[&str], var_log_journal_exists: bool) -> LogStorage {
    let setting = config_texts
        .iter()
        .filter_map(|t| journald_storage_setting(t))
        .next_back();
    match setting.as_deref() {
        Some("volatile") => LogStorage::Volatile,
        Some("persistent") => LogStorage::Persistent,
        Some("none") => LogStorage::Discarded,
        _ if var_log_journal_exists => LogStorage::Persistent,
        _ => LogStorage::Volatile,
    }
}

/// Whether `path` is a mount point in a `/proc/self/mounts` text, and its file-system type.
pub fn mount_fstype(mounts: &str, path: &str) -> Option<String> {
    let path = path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let _src = f.next()?;
            let target = f.next()?.replace("\\040", " ");
            let fstype = f.next()?;
            (target == path).then(|| fstype.to_string())
        })
        .next_back()
}

/// The uploader's user: the only one that can read the B2 credential.
pub const UPLOADER_USER: &str = "visdcam";
/// The recorder's user (also daynight's and net-shaper's): everything that talks to a camera.
pub const RECORDER_USER: &str = "visdcam-rec";
/// The group both users have (the recorder's primary group), through which they share the RAM
/// disk.
pub const SHARED_GROUP: &str = "visdcam";

/// What keeps the recorder's and the uploader's users, who share only the group
/// [`SHARED_GROUP`] (`shared_gid`), from using a RAM directory with this `mode` and group `gid`;
/// `None` when nothing does. In `RAM_DIR` the recorder must create its camera directory; in a
/// `camera` directory each side creates files and deletes the other's segments, which a
/// sticky bit would forbid.
pub fn shared_dir_problem(mode: u32, gid: u32, shared_gid: u32, camera: bool) -> Option<String> {
    let group_rwx = gid == shared_gid && mode & 0o070 == 0o070;
    let other_rwx = mode & 0o007 == 0o007;
    if !group_rwx && !other_rwx {
        return Some(format!(
            "the group {SHARED_GROUP} cannot create files in it, and the recorder \
             ({RECORDER_USER}) and the uploader ({UPLOADER_USER}) share it through that group"
        ));
    }
    if camera && mode & 0o1000 != 0 {
        return Some(format!(
            "its sticky bit keeps the uploader ({UPLOADER_USER}) from deleting the recorder's \
             ({RECORDER_USER}) segments"
        ));
    }
    None
}

/// What is wrong with a credentials file systemd hands to the uploader, owned by `uid` with
/// `mode`: only root may read it (systemd gives uploader@ its own copy), never the group, which
/// the recorder's user shares. `None` when it is root's alone.
pub fn credentials_file_problem(uid: u32, mode: u32) -> Option<&'static str> {
    if uid != 0 {
        Some("it does not belong to root")
    } else if mode & 0o077 != 0 {
        Some("users other than root can read it")
    } else {
        None
    }
}

/// Reads the uploader's counters file leniently: `key=value` or `key: value` or `key value`
/// lines (or one JSON object of numbers, flattened); anything else is skipped.
pub fn parse_stats(text: &str) -> Vec<(String, String)> {
    let t = text.trim();
    if t.starts_with('{') && t.ends_with('}') {
        return t[1..t.len() - 1]
            .split(',')
            .filter_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                let k = k.trim().trim_matches('"');
                let v = v.trim().trim_matches('"');
                (!k.is_empty()).then(|| (k.to_string(), v.to_string()))
            })
            .collect();
    }
    t.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let (k, v) = l
                .split_once('=')
                .or_else(|| l.split_once(':'))
                .or_else(|| l.split_once(char::is_whitespace))?;
            let k = k.trim();
            (!k.is_empty() && !k.contains(char::is_whitespace))
                .then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn targets() {
        let known = s(&["cam1", "cam2", "front-door"]);
        let dir = "/etc/visdcam";
        for (args, expect) in [
            (&["all"][..], Ok(s(&["cam1", "cam2", "front-door"]))),
            (&["cam2"], Ok(s(&["cam2"]))),
            (&["cam2", "cam1", "cam2"], Ok(s(&["cam2", "cam1"]))),
            (
                &["cam9"],
                Err("unknown camera `cam9`: no /etc/visdcam/cameras/cam9.conf \
                     (known: cam1, cam2, front-door)"
                    .to_string()),
            ),
            (
                &["cam1", "all"],
                Err("`all` cannot be combined with camera names".to_string()),
            ),
            (
                &["Cam1"],
                Err(
                    "invalid camera name `Cam1`: use 1 to 32 lowercase letters, digits and `-`, \
                     not starting with `-` (e.g. cam1, front-door)"
                        .to_string(),
                ),
            ),
        ] {
            assert_eq!(resolve_targets(&s(args), &known, dir), expect, "{args:?}");
        }
        assert_eq!(
            resolve_targets(&s(&["all"]), &[], dir),
            Err(
                "no cameras configured: add /etc/visdcam/cameras/<name>.conf \
                 (copy cam1.conf.example and set CAMERA_URL)"
                    .to_string()
            )
        );
        assert_eq!(
            resolve_targets(&s(&["cam1"]), &[], dir),
            Err(
                "unknown camera `cam1`: no /etc/visdcam/cameras/cam1.conf (no cameras configured yet)"
                    .to_string()
            )
        );
    }

    #[test]
    fn durations_in() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("15m", 900),
            ("2h", 7200),
            ("1d", 86_400),
            ("1h30m", 5400),
            ("0", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in [
            "",
            "h",
            "2x",
            "1.5h",
            "-3m",
            "2h ",
            "m5",
            "99999999999999999999d",
        ] {
            assert_eq!(
                parse_duration(bad),
                Err(format!(
                    "invalid duration `{bad}`: use a number with s, m, h or d, such as 90s, 15m, \
                     2h or 1h30m"
                )),
                "{bad}"
            );
        }
    }

    #[test]
    fn segment_lengths() {
        assert_eq!(parse_seg_seconds("180"), Ok(180));
        assert_eq!(parse_seg_seconds("2"), Ok(2));
        assert_eq!(
            parse_seg_seconds("1"),
            Err(
                "invalid segment length `1`: 1 is out of range; allowed: an integer from 2 to \
                 3600 (seconds)"
                    .into()
            )
        );
        assert_eq!(
            parse_seg_seconds("3m"),
            Err(
                "invalid segment length `3m`: `3m` is not a whole number; allowed: an integer \
                 from 2 to 3600 (seconds)"
                    .into()
            )
        );
        assert_eq!(
            parse_seg_seconds("7200"),
            Err(
                "invalid segment length `7200`: 7200 is out of range; allowed: an integer from \
                 2 to 3600 (seconds)"
                    .into()
            )
        );
    }

    #[test]
    fn human_formats() {
        for (secs, text) in [
            (0, "0s"),
            (45, "45s"),
            (725, "12m 5s"),
            (11_520, "3h 12m"),
            (187_200, "2d 4h"),
        ] {
            assert_eq!(format_duration(Duration::from_secs(secs)), text);
        }
        for (bytes, text) in [
            (0, "0 B"),
            (812, "812 B"),
            (1434, "1.4 KiB"),
            (96 * 1024 * 1024, "96.0 MiB"),
            (1_288_490_189, "1.2 GiB"),
        ] {
            assert_eq!(format_size(bytes), text);
        }
        assert_eq!(budget_percent(48, 96), 50);
        assert_eq!(budget_percent(200, 100), 200);
        assert_eq!(budget_percent(5, 0), 0);
    }

    fn entry(name: &str, size: u64, mtime_ms: u64) -> DirEntry {
        DirEntry {
            name: name.into(),
            size,
            mtime_ms,
        }
    }

    #[test]
    fn listing_and_clean_selection() {
        let entries = [
            entry("seg-1760271202000-00bb.ts", 200, 1_760_271_262_000),
            entry("seg-1760271142000-00aa.ts", 100, 1_760_271_202_000),
            entry("seg-1760271262000-00cc.ts.part", 50, 1_760_271_290_000),
            entry(".uploader-stats", 10, 0),
            entry("notes.txt", 5, 0),
        ];
        let l = ram_listing(&entries);
        assert_eq!(
            l.segments
                .iter()
                .map(|s| (s.name.as_str(), s.state))
                .collect::<Vec<_>>(),
            [
                ("seg-1760271142000-00aa.ts", SegmentState::Queued),
                ("seg-1760271202000-00bb.ts", SegmentState::Queued),
                ("seg-1760271262000-00cc.ts.part", SegmentState::Recording),
            ]
        );
        assert_eq!(l.foreign, ["notes.txt"]);
        assert_eq!(
            (l.total_bytes, l.queued_bytes, l.queued, l.recording),
            (350, 300, 2, 1)
        );

        let now = 1_760_271_300_000;
        let names = |v: Vec<&Segment>| v.into_iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(clean_selection(&l, now, None)),
            ["seg-1760271142000-00aa.ts", "seg-1760271202000-00bb.ts"]
        );
        // aa closed 98 s ago, bb 38 s ago; the recording one is never selected.
        assert_eq!(
            names(clean_selection(&l, now, Some(Duration::from_secs(60)))),
            ["seg-1760271142000-00aa.ts"]
        );
        assert!(clean_selection(&l, now, Some(Duration::from_secs(3600))).is_empty());
        assert_eq!(l.segments[0].age(now), Duration::from_secs(98));
    }

    #[test]
    fn where_logs_go() {
        let default = "[Journal]\n#Storage=auto\n";
        assert_eq!(log_storage(&[default], true), LogStorage::Persistent);
        assert_eq!(log_storage(&[default], false), LogStorage::Volatile);
        assert_eq!(
            log_storage(&[default, RAMLOGS_DROPIN_TEXT], true),
            LogStorage::Volatile
        );
        assert_eq!(
            log_storage(
                &[RAMLOGS_DROPIN_TEXT, "[Journal]\nStorage=persistent\n"],
                false
            ),
            LogStorage::Persistent
        );
        assert_eq!(
            log_storage(&["[Other]\nStorage=none\n"], false),
            LogStorage::Volatile
        );
        assert_eq!(
            journald_storage_setting(RAMLOGS_DROPIN_TEXT).as_deref(),
            Some("volatile")
        );
    }

    #[test]
    fn mounts() {
        let m = "sysfs /sys sysfs rw 0 0\n\
                 tmpfs /mnt/ramcam tmpfs rw,size=262144k 0 0\n\
                 /dev/sda1 / ext4 rw 0 0\n\
                 tmpfs /mnt/ram\\040cam tmpfs rw 0 0\n";
        assert_eq!(mount_fstype(m, "/mnt/ramcam/").as_deref(), Some("tmpfs"));
        assert_eq!(mount_fstype(m, "/").as_deref(), Some("ext4"));
        assert_eq!(mount_fstype(m, "/mnt/ram cam").as_deref(), Some("tmpfs"));
        assert_eq!(mount_fstype(m, "/mnt"), None);
    }

    #[test]
    fn ram_directories_must_be_shared_through_the_group() {
        const G: u32 = 999;
        // RAM_DIR: the recorder creates its camera directory through the group.
        assert_eq!(shared_dir_problem(0o2770, G, G, false), None);
        assert_eq!(shared_dir_problem(0o0770, G, G, false), None);
        // The mode of earlier versions (one user), and a root-owned fstab mount.
        let no = shared_dir_problem(0o0750, G, G, false).unwrap();
        assert!(no.contains("group visdcam cannot create files"), "{no}");
        assert!(no.contains("visdcam-rec"), "{no}");
        assert!(shared_dir_problem(0o2770, 0, G, false).is_some());
        // Anyone may: /dev/shm-like, sticky is fine above the camera directories.
        assert_eq!(shared_dir_problem(0o1777, 0, G, false), None);
        // A camera directory: each side deletes the other's segments.
        assert_eq!(shared_dir_problem(0o2770, G, G, true), None);
        let sticky = shared_dir_problem(0o1777, 0, G, true).unwrap();
        assert!(sticky.contains("sticky"), "{sticky}");
    }

    #[test]
    fn only_root_may_read_the_credentials_file() {
        assert_eq!(credentials_file_problem(0, 0o600), None);
        assert_eq!(credentials_file_problem(0, 0o400), None);
        assert!(credentials_file_problem(0, 0o640).is_some());
        assert!(credentials_file_problem(0, 0o604).is_some());
        assert!(credentials_file_problem(998, 0o600).is_some());
    }

    #[test]
    fn stats_files_read_leniently() {
        let want = vec![
            ("dropped".to_string(), "3".to_string()),
            ("dropped_bytes".to_string(), "1200".to_string()),
        ];
        assert_eq!(parse_stats("dropped=3\ndropped_bytes=1200\n"), want);
        assert_eq!(parse_stats("# c\ndropped: 3\n\ndropped_bytes 1200"), want);
        assert_eq!(
            parse_stats("{\"dropped\": 3, \"dropped_bytes\": 1200}"),
            want
        );
        assert!(parse_stats("garbage line here").len() <= 1);
    }
}
