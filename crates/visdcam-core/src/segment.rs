//! Segment file names on the RAM disk: the contract between the recorder and the uploader.
//!
//! The recorder writes `<RAM_DIR>/<camera>/seg-<start ms>-<tag>.ts.part` and, once the
//! segment is closed, renames it to `seg-<start ms>-<tag>.ts` in one `rename(2)`. The uploader
//! only ever looks at final names. `<start ms>` is the wall-clock start in Unix milliseconds
//! (13+ digits), `<tag>` four lowercase hex digits chosen at random per segment, so names never
//! repeat across restarts even when the clock is wrong or steps back.

/// Suffix of a segment that is still being written (or was left by a crash).
pub const PARTIAL_SUFFIX: &str = ".ts.part";
/// Suffix of a closed segment.
pub const FINAL_SUFFIX: &str = ".ts";
const PREFIX: &str = "seg-";

/// A segment's identity, as encoded in its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Wall-clock start, Unix milliseconds.
    pub start_ms: u64,
    /// Random tag.
    pub tag: u16,
}

impl SegmentName {
    pub fn new(start_ms: u64, tag: u16) -> SegmentName {
        SegmentName { start_ms, tag }
    }

    /// `seg-1760271142000-0a3f.ts`
    pub fn final_name(&self) -> String {
        format!(
            "{PREFIX}{:013}-{:04x}{FINAL_SUFFIX}",
            self.start_ms, self.tag
        )
    }

    /// `seg-1760271142000-0a3f.ts.part`
    pub fn partial_name(&self) -> String {
        format!(
            "{PREFIX}{:013}-{:04x}{PARTIAL_SUFFIX}",
            self.start_ms, self.tag
        )
    }

    /// Parses a final name; `None` for anything else (partials included).
    pub fn parse_final(name: &str) -> Option<SegmentName> {
        Self::parse_with(name, FINAL_SUFFIX)
    }

    /// Parses a partial name; `None` for anything else.
    pub fn parse_partial(name: &str) -> Option<SegmentName> {
        Self::parse_with(name, PARTIAL_SUFFIX)
    }

    fn parse_with(name: &str, suffix: &str) -> Option<SegmentName> {
        let body = name.strip_prefix(PREFIX)?.strip_suffix(suffix)?;
        let (ms, tag) = body.split_once('-')?;
        let digits_ok = ms.len() >= 13 && ms.bytes().all(|b| b.is_ascii_digit());
        let tag_ok = tag.len() == 4 && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !digits_ok || !tag_ok {
            return None;
        }
        Some(SegmentName {
            start_ms: ms.parse().ok()?,
            tag: u16::from_str_radix(tag, 16).ok()?,
        })
    }
}

/// What a directory entry in a camera's RAM directory is, by name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A closed segment, ready to upload.
    Final(SegmentName),
    /// Being written, or left by a crash (the recorder finalises those).
    Partial(SegmentName),
    /// visdcam's own bookkeeping (dot-files such as counters and temporary files).
    Internal,
    /// Anything else: never uploaded, logged once.
    Foreign,
}

pub fn classify(name: &str) -> EntryKind {
    if let Some(s) = SegmentName::parse_final(name) {
        EntryKind::Final(s)
    } else if let Some(s) = SegmentName::parse_partial(name) {
        EntryKind::Partial(s)
    } else if name.starts_with('.') {
        EntryKind::Internal
    } else {
        EntryKind::Foreign
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let s = SegmentName::new(1_760_271_142_000, 0x0a3f);
        assert_eq!(s.final_name(), "seg-1760271142000-0a3f.ts");
        assert_eq!(s.partial_name(), "seg-1760271142000-0a3f.ts.part");
        assert_eq!(SegmentName::parse_final(&s.final_name()), Some(s));
        assert_eq!(SegmentName::parse_partial(&s.partial_name()), Some(s));
        assert_eq!(SegmentName::parse_final(&s.partial_name()), None);
    }

    #[test]
    fn classifies_entries() {
        for (name, expect) in [
            ("seg-1760271142000-0a3f.ts", "final"),
            ("seg-1760271142000-0a3f.ts.part", "partial"),
            (".uploader-state", "internal"),
            ("seg-1760271142000-0A3F.ts", "foreign"),
            ("seg-176027114200-0a3f.ts", "foreign"),
            ("seg-1760271142000-0a3.ts", "foreign"),
            ("home-cam-1-00000.ts", "foreign"),
            ("seg-1760271142000-0a3f.mp4", "foreign"),
            ("", "foreign"),
        ] {
            let got = match classify(name) {
                EntryKind::Final(_) => "final",
                EntryKind::Partial(_) => "partial",
                EntryKind::Internal => "internal",
                EntryKind::Foreign => "foreign",
            };
            assert_eq!(got, expect, "{name}");
        }
    }

    #[test]
    fn order_is_by_start_time() {
        let mut v = [
            SegmentName::new(3, 0),
            SegmentName::new(1, 9),
            SegmentName::new(2, 1),
        ];
        v.sort();
        assert_eq!(v.map(|s| s.start_ms), [1, 2, 3]);
    }
}
