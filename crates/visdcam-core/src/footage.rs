//! The bucket as a footage library: time ranges a person types, which key prefixes a range can
//! touch, a timeline of spans and gaps from the objects listed there, and the HLS playlist that
//! plays them. Pure: the `visdcam footage | fetch | play` commands do the listing and the I/O.
//!
//! A segment's key time is its *end* (the file's mtime when the recorder closed it). Its start
//! comes from the end of the segment before it when the two follow each other on the split grid
//! (`end − previous end` equals the usual segment length), and otherwise from the object's
//! `x-amz-meta-visdcam-start-ms` (read with one `HEAD`, only at such irregular boundaries), or,
//! for objects uploaded without it (visdcam-pi), from `end − usual length`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::cli::parse_duration;

/// Missing time between two segments above which the timeline shows a gap.
pub const GAP_MIN: Duration = Duration::from_millis(1500);
/// How far `end − previous end` may stray from the usual segment length and still count as the
/// same recording (key times are whole seconds, and a split lands on a frame).
pub const GRID_SLACK: Duration = Duration::from_millis(1200);
/// Longest segment the listing plans for: a range lists from this much before its start, so the
/// segment that holds the start is found (its key time is its end).
pub const MAX_SEGMENT: Duration = Duration::from_secs(3600);
/// Metadata the uploader stores with every segment: the wall time of its first frame, Unix ms.
pub const META_START_MS: &str = "visdcam-start-ms";

/// What a person may type for a time, for error messages.
pub const WHEN_FORMS: &str = "now, 17:40, 17:40:05, yesterday 17:40, today 17:40, 2026-12-02, \
     2026-12-02 17:40 or 2026-12-02T17:40:00+05:30";
/// What a person may type for an end, for error messages.
pub const END_FORMS: &str = "a time (as for the start) or a length such as 15m, 90s or 1h30m";

/// A time range, start inclusive, end exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Range {
    pub fn length(&self) -> Duration {
        (self.to - self.from).to_std().unwrap_or_default()
    }
}

/// Whether a range's end may be left out, and what it then is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRule {
    /// The end is required (`fetch`).
    Required,
    /// No end means now (`footage`, `play`).
    Now,
}

/// A local date and time in `tz` as an instant; the earlier one when the clocks went back.
fn local(tz: Tz, date: NaiveDate, time: NaiveTime, text: &str) -> Result<DateTime<Utc>, String> {
    match tz.from_local_datetime(&date.and_time(time)) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Ok(first.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "`{text}` does not exist in {tz} (the clocks skipped it)"
        )),
    }
}

fn parse_clock(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M:%S")
        .or_else(|_| NaiveTime::parse_from_str(text, "%H:%M"))
        .ok()
}

fn parse_date(text: &str, today: NaiveDate) -> Option<NaiveDate> {
    match text {
        "today" => Some(today),
        "yesterday" => today.checked_sub_days(Days::new(1)),
        _ => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
    }
}

/// Reads one time from the front of `words`; returns it and how many words it used (a date
/// word may be followed by a clock word: `yesterday 17:40`, `2026-12-02 17:40`).
fn take_when(
    words: &[&str],
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<Option<(DateTime<Utc>, usize)>, String> {
    let Some(first) = words.first() else {
        return Ok(None);
    };
    let today = now.with_timezone(&tz).date_naive();
    if *first == "now" {
        return Ok(Some((now, 1)));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(first) {
        return Ok(Some((t.with_timezone(&Utc), 1)));
    }
    if let Some((d, t)) = first.split_once('T') {
        if let (Some(date), Some(time)) = (parse_date(d, today), parse_clock(t)) {
            return local(tz, date, time, first).map(|t| Some((t, 1)));
        }
    }
    // "2026-12-02 17:40" typed as one quoted argument.
    if let Some((d, t)) = first.split_once(' ') {
        if let (Some(date), Some(time)) = (parse_date(d.trim(), today), parse_clock(t.trim())) {
            return local(tz, date, time, first).map(|t| Some((t, 1)));
        }
    }
    if let Some(time) = parse_clock(first) {
        return local(tz, today, time, first).map(|t| Some((t, 1)));
    }
    if let Some(date) = parse_date(first, today) {
        if let Some(time) = words.get(1).and_then(|w| parse_clock(w)) {
            let text = format!("{first} {}", words[1]);
            return local(tz, date, time, &text).map(|t| Some((t, 2)));
        }
        return local(tz, date, NaiveTime::MIN, first).map(|t| Some((t, 1)));
    }
    Ok(None)
}

/// Parses one time as a person types it (see [`WHEN_FORMS`]); local times are in `tz`.
pub fn parse_when(text: &str, now: DateTime<Utc>, tz: Tz) -> Result<DateTime<Utc>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    match take_when(&words, now, tz)? {
        Some((t, n)) if n == words.len() => Ok(t),
        _ => Err(format!(
            "cannot read `{text}` as a time: use {WHEN_FORMS} (local times in {tz})"
        )),
    }
}

/// Parses `[FROM [TO|LENGTH]]` from the words after the camera. No FROM: from midnight today
/// (in `tz`) to now, unless the end is required.
pub fn parse_range(
    words: &[String],
    now: DateTime<Utc>,
    tz: Tz,
    end_rule: EndRule,
) -> Result<Range, String> {
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let bad_start = |w: &[&str]| {
        format!(
            "cannot read `{}` as a start time: use {WHEN_FORMS} (local times in {tz})",
            w.join(" ")
        )
    };
    let (from, used) = match take_when(&words, now, tz)? {
        Some(found) => found,
        None if words.is_empty() => {
            let today = now.with_timezone(&tz).date_naive();
            (local(tz, today, NaiveTime::MIN, "midnight")?, 0)
        }
        None => return Err(bad_start(&words)),
    };
    let rest = &words[used..];
    let to = if rest.is_empty() {
        match end_rule {
            EndRule::Now => now,
            EndRule::Required => {
                return Err(format!("an end is required after the start: {END_FORMS}"))
            }
        }
    } else if let (1, Some(time)) = (rest.len(), parse_clock(rest[0])) {
        // A bare clock time ends on the start's date: `yesterday 17:40 17:55`.
        local(tz, from.with_timezone(&tz).date_naive(), time, rest[0])?
    } else if let Some((t, n)) = take_when(rest, now, tz)? {
        if n != rest.len() {
            return Err(format!(
                "unexpected `{}` after the end `{}`",
                rest[n..].join(" "),
                rest[..n].join(" ")
            ));
        }
        t
    } else if rest.len() == 1 && !rest[0].contains(':') {
        let d = parse_duration(rest[0])
            .map_err(|_| format!("cannot read `{}` as an end: use {END_FORMS}", rest[0]))?;
        if d.is_zero() {
            return Err(format!("the length `{}` is zero", rest[0]));
        }
        from + chrono::Duration::from_std(d).map_err(|_| format!("`{}` is too long", rest[0]))?
    } else {
        return Err(format!(
            "cannot read `{}` as an end: use {END_FORMS}",
            rest.join(" ")
        ));
    };
    if to <= from {
        return Err(format!(
            "the end ({}) is not after the start ({})",
            format_local(to, tz),
            format_local(from, tz)
        ));
    }
    Ok(Range { from, to })
}

/// `2026-12-02 17:40:05 IST`.
pub fn format_local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// One object listed under a camera's prefixes whose key parsed as a segment key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
    /// The key's time: when the segment ended.
    pub end: DateTime<Utc>,
}

/// The usual segment length in `objects` (sorted by end): the most common whole-second step
/// between consecutive ends, or `fallback` when there are fewer than two steps.
pub fn usual_length(objects: &[Object], fallback: Duration) -> Duration {
    let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
    for w in objects.windows(2) {
        let step = (w[1].end - w[0].end).num_seconds();
        if (1..=MAX_SEGMENT.as_secs() as i64).contains(&step) {
            *counts.entry(step).or_default() += 1;
        }
    }
    // Most common; among equals, the longer (a short step is a segment cut short).
    counts
        .iter()
        .max_by_key(|(step, n)| (**n, **step))
        .map_or(fallback, |(step, _)| Duration::from_secs(*step as u64))
}

/// How a segment's end lies after the previous segment's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// No previous segment.
    First,
    /// One usual length: the same recording, no gap.
    OnGrid,
    /// Shorter: the recording ended with this segment (a split happens only on the grid or
    /// when a recording stops), so the next segment starts a new one.
    Short,
    /// Longer: a gap or a restart lies before this segment.
    Long,
}

fn step(objects: &[Object], i: usize, usual: Duration) -> Step {
    if i == 0 {
        return Step::First;
    }
    let d = (objects[i].end - objects[i - 1].end)
        .to_std()
        .unwrap_or_default();
    if d.abs_diff(usual) <= GRID_SLACK {
        Step::OnGrid
    } else if d < usual {
        Step::Short
    } else {
        Step::Long
    }
}

/// Whether the segment before `objects[i]` ended its recording.
fn after_short(objects: &[Object], i: usize, usual: Duration) -> bool {
    i > 0 && step(objects, i - 1, usual) == Step::Short
}

/// Indexes of the objects whose start should be read from their metadata (one `HEAD` each):
/// those that do not simply continue the previous segment on the split grid.
pub fn starts_to_read(objects: &[Object], usual: Duration) -> Vec<usize> {
    (0..objects.len())
        .filter(|&i| step(objects, i, usual) != Step::OnGrid || after_short(objects, i, usual))
        .collect()
}

/// A segment on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub key: String,
    pub size: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// A recorder restart or a gap lies before it: players must reset (HLS discontinuity).
    pub discontinuity: bool,
}

impl Segment {
    pub fn length(&self) -> Duration {
        (self.end - self.start).to_std().unwrap_or_default()
    }
}

/// Contiguous footage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub segments: usize,
    pub bytes: u64,
}

/// What the bucket holds for a camera in a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeline {
    pub range: Range,
    /// Segments that overlap the range, by time.
    pub segments: Vec<Segment>,
    pub spans: Vec<Span>,
    /// Missing time between spans, within the range.
    pub gaps: Vec<Range>,
    pub usual: Duration,
}

/// Builds the timeline of `objects` (any order) for `range`. `starts` holds the start read from
/// metadata for the indexes [`starts_to_read`] named (after sorting by end); the rest follow
/// their predecessor or, without metadata, are taken as `usual` long.
pub fn timeline(
    objects: &[Object],
    starts: &BTreeMap<usize, DateTime<Utc>>,
    usual: Duration,
    range: Range,
) -> Timeline {
    let usual_c = chrono::Duration::from_std(usual).unwrap_or_else(|_| chrono::Duration::zero());
    let mut all: Vec<Segment> = Vec::with_capacity(objects.len());
    let gap_min = chrono::Duration::from_std(GAP_MIN).unwrap_or_else(|_| chrono::Duration::zero());
    for (i, o) in objects.iter().enumerate() {
        let prev_end = i.checked_sub(1).map(|p| objects[p].end);
        let st = step(objects, i, usual);
        let new_recording = after_short(objects, i, usual);
        // Never before the previous end: a start a little earlier is the same instant seen
        // through whole-second key times.
        let not_before_prev = |t: DateTime<Utc>| match prev_end {
            Some(p) if t < p => p,
            _ => t,
        };
        let read = starts.get(&i).copied().filter(|s| *s <= o.end);
        let start = match (st, read) {
            (Step::OnGrid, _) if !new_recording => prev_end.unwrap_or(o.end - usual_c),
            (_, Some(s)) => not_before_prev(s),
            (Step::Short, None) => not_before_prev(prev_end.unwrap_or(o.end - usual_c)),
            (_, None) => not_before_prev(o.end - usual_c),
        };
        let gap_before = prev_end.is_some_and(|p| start - p >= gap_min);
        let discontinuity = match st {
            Step::First | Step::Long => true,
            Step::OnGrid | Step::Short => new_recording || gap_before,
        };
        all.push(Segment {
            key: o.key.clone(),
            size: o.size,
            start,
            end: o.end,
            discontinuity,
        });
    }
    let segments: Vec<Segment> = all
        .into_iter()
        .filter(|s| s.end > range.from && s.start < range.to)
        .collect();
    let mut spans: Vec<Span> = Vec::new();
    for s in &segments {
        match spans.last_mut() {
            Some(span) if s.start - span.end < gap_min => {
                span.end = span.end.max(s.end);
                span.segments += 1;
                span.bytes += s.size;
            }
            _ => spans.push(Span {
                start: s.start,
                end: s.end,
                segments: 1,
                bytes: s.size,
            }),
        }
    }
    let mut gaps = Vec::new();
    let mut cursor = range.from;
    for span in &spans {
        if span.start - cursor >= gap_min {
            gaps.push(Range {
                from: cursor,
                to: span.start,
            });
        }
        cursor = cursor.max(span.end);
    }
    if !spans.is_empty() && range.to - cursor >= gap_min {
        gaps.push(Range {
            from: cursor,
            to: range.to,
        });
    }
    Timeline {
        range,
        segments,
        spans,
        gaps,
        usual,
    }
}

fn clock(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%H:%M:%S").to_string()
}

/// `34 min`, `42 s`, `2 h 5 min`.
pub fn human_length(d: Duration) -> String {
    let s = d.as_secs_f64().round() as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", (s + 30) / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600 + 30) / 60),
    }
}

/// `41 MB` (decimal, as a bucket's web page counts).
pub fn human_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.0} MB", b / 1e6)
    } else if b >= 1e3 {
        format!("{:.0} kB", b / 1e3)
    } else {
        format!("{bytes} B")
    }
}

/// The timeline for people: a heading, then spans and gaps in time order, one a line, a new
/// date heading whenever the local date changes, and a total.
pub fn render_timeline(camera: &str, t: &Timeline, tz: Tz, unparsed: &[String]) -> String {
    let mut out = format!(
        "{camera}: {} → {} ({tz})\n",
        t.range.from.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
        t.range.to.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
    );
    enum Row<'a> {
        Span(&'a Span),
        Gap(&'a Range),
    }
    let mut rows: Vec<(DateTime<Utc>, Row)> = t
        .spans
        .iter()
        .map(|s| (s.start, Row::Span(s)))
        .chain(t.gaps.iter().map(|g| (g.from, Row::Gap(g))))
        .collect();
    rows.sort_by_key(|(at, _)| *at);
    let mut date = None;
    for (at, row) in rows {
        let d = at.with_timezone(&tz).date_naive();
        if date != Some(d) {
            out.push_str(&format!("{}\n", d.format("%a %Y-%m-%d")));
            date = Some(d);
        }
        match row {
            Row::Span(s) => out.push_str(&format!(
                "  {}–{}  {:>8}  {:>4} segment{}  {}\n",
                clock(s.start, tz),
                clock(s.end, tz),
                human_length((s.end - s.start).to_std().unwrap_or_default()),
                s.segments,
                if s.segments == 1 { " " } else { "s" },
                human_size(s.bytes),
            )),
            Row::Gap(g) => out.push_str(&format!(
                "  {}–{}  {:>8}  no footage\n",
                clock(g.from, tz),
                clock(g.to, tz),
                human_length(g.length()),
            )),
        }
    }
    let recorded: Duration = t
        .spans
        .iter()
        .map(|s| (s.end - s.start).to_std().unwrap_or_default())
        .sum();
    out.push_str(&format!(
        "{} span{}, {} gap{}: {} recorded in {} segment{}, {}\n",
        t.spans.len(),
        if t.spans.len() == 1 { "" } else { "s" },
        t.gaps.len(),
        if t.gaps.len() == 1 { "" } else { "s" },
        human_length(recorded),
        t.segments.len(),
        if t.segments.len() == 1 { "" } else { "s" },
        human_size(t.spans.iter().map(|s| s.bytes).sum()),
    ));
    if !unparsed.is_empty() {
        out.push_str(&format!(
            "{} {} (not counted): {}\n",
            unparsed.len(),
            if unparsed.len() == 1 {
                "object under the listed prefixes is not a segment key of this KEY_TEMPLATE"
            } else {
                "objects under the listed prefixes are not segment keys of this KEY_TEMPLATE"
            },
            unparsed.join(", ")
        ));
    }
    out
}

/// One entry of an HLS playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct PlaylistEntry {
    pub url: String,
    pub start: DateTime<Utc>,
    pub length: Duration,
    pub discontinuity: bool,
}

/// An HLS VOD playlist (RFC 8216): `EXT-X-PROGRAM-DATE-TIME` on every entry (wall-clock time in
/// `tz`), `EXT-X-DISCONTINUITY` where the recording restarted or a gap lies before an entry.
pub fn hls_playlist(entries: &[PlaylistEntry], tz: Tz) -> String {
    let target = entries
        .iter()
        .map(|e| e.length.as_secs_f64().round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:0\n"
    );
    for (i, e) in entries.iter().enumerate() {
        if e.discontinuity && i > 0 {
            out.push_str("#EXT-X-DISCONTINUITY\n");
        }
        out.push_str(&format!(
            "#EXT-X-PROGRAM-DATE-TIME:{}\n#EXTINF:{:.3},\n{}\n",
            e.start
                .with_timezone(&tz)
                .format("%Y-%m-%dT%H:%M:%S%.3f%:z"),
            e.length.as_secs_f64(),
            e.url
        ));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    out
}

#[cfg(test)]
mod tests;
