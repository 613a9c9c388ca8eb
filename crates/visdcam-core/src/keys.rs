//! Object keys: where a segment lands in the bucket, from its time and its camera's name.
//!
//! The default layout is the one visdcam-pi users already have in their buckets:
//! `camN/YYYY/MM/DD/HH/cam_N_YYYY_MM_DD_hh_mm_ss.ts`, local time in `KEY_TZ`.
//!
//! A template mixes `strftime` fields (`%Y %m %d %H %M %S` and the rest of chrono's set) with
//! the camera placeholders `{camera}` (`cam1`), `{camera_}` (`cam_1`: an underscore before the
//! trailing number) and `{number}` (`1`, empty when the name has no trailing number).
//!
//! Daylight-saving time: when the clocks go back, an hour of local times happens twice. The
//! first pass keeps the plain key; the second pass gets the zone's abbreviation before the
//! extension (`..._02_30_00_CET.ts`), so two segments never share a key.

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// visdcam-pi's layout.
pub const DEFAULT_TEMPLATE: &str = "{camera}/%Y/%m/%d/%H/{camera_}_%Y_%m_%d_%H_%M_%S.ts";

/// A validated key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    template: String,
}

impl Default for KeyTemplate {
    fn default() -> Self {
        KeyTemplate {
            template: DEFAULT_TEMPLATE.to_string(),
        }
    }
}

impl KeyTemplate {
    /// Checks a template: valid strftime fields, known placeholders, seconds present (keys must
    /// be unique per segment), no leading `/`, no empty path segment.
    pub fn parse(template: &str) -> Result<KeyTemplate, String> {
        if template.is_empty() {
            return Err("must not be empty".into());
        }
        if template.starts_with('/') {
            return Err("must not start with `/` (object keys are relative to the bucket)".into());
        }
        if template.contains("//") {
            return Err("must not contain an empty path segment (`//`)".into());
        }
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err("has a `{` without a closing `}`".into());
            };
            let name = &after[..close];
            if !matches!(name, "camera" | "camera_" | "number") {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` (known: {{camera}}, {{camera_}}, {{number}})"
                ));
            }
            rest = &after[close + 1..];
        }
        if StrftimeItems::new(template).any(|i| matches!(i, Item::Error)) {
            return Err("has an invalid `%` field (see strftime: %Y %m %d %H %M %S ...)".into());
        }
        if !template.contains("%S") && !template.contains("%T") && !template.contains("%s") {
            return Err(
                "must contain seconds (`%S`) so that every segment gets its own key".into(),
            );
        }
        let t = KeyTemplate {
            template: template.to_string(),
        };
        // Some fields parse but cannot be formatted (`%#z` is a parse-only offset): render a
        // sample so such a template is refused here, not at every upload.
        let sample = DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::seconds(1_760_271_142);
        for tz in [chrono_tz::UTC, chrono_tz::Asia::Kolkata] {
            t.try_render("cam1", sample, tz)?;
        }
        Ok(t)
    }

    pub fn as_str(&self) -> &str {
        &self.template
    }

    /// The key for a segment of `camera` whose time is `at`, in zone `tz`. Never panics: a
    /// template that cannot be rendered (which [`KeyTemplate::parse`] refuses) gives the key of
    /// the default template instead; [`KeyTemplate::try_render`] says so.
    pub fn render(&self, camera: &str, at: DateTime<Utc>, tz: Tz) -> String {
        self.try_render(camera, at, tz).unwrap_or_else(|_| {
            KeyTemplate::default()
                .try_render(camera, at, tz)
                .unwrap_or_default()
        })
    }

    /// The key for a segment of `camera` whose time is `at`, in zone `tz`, or why the template
    /// cannot be rendered (a strftime field chrono parses but cannot format, such as `%#z`).
    pub fn try_render(&self, camera: &str, at: DateTime<Utc>, tz: Tz) -> Result<String, String> {
        use std::fmt::Write as _;
        let local = at.with_timezone(&tz);
        let with_names = self.with_names(camera);
        let mut key = String::new();
        // `format().to_string()` panics when a field fails to format; `write!` returns it.
        if write!(key, "{}", local.format(&with_names)).is_err() {
            return Err(
                "has a `%` field that cannot be formatted (one chrono only parses, such \
                        as `%#z`)"
                    .into(),
            );
        }
        if is_second_pass(local.naive_local(), at, tz) {
            let abbr = local.format("%Z").to_string();
            let insert_at = key
                .rfind('.')
                .filter(|dot| key.rfind('/').is_none_or(|slash| *dot > slash))
                .unwrap_or(key.len());
            key.insert_str(insert_at, &format!("_{abbr}"));
        }
        Ok(key)
    }
}

/// Local times at which [`shared_key`] compares keys: numbers of one and two digits in every
/// field, so an unpadded field (`%-d`) next to a camera's number cannot hide a clash.
const CLASH_SAMPLES: &[(i32, u32, u32, u32, u32, u32)] = &[
    (2025, 1, 1, 1, 1, 1),
    (2025, 1, 1, 1, 1, 11),
    (2025, 1, 1, 1, 11, 1),
    (2025, 1, 1, 11, 1, 1),
    (2025, 1, 11, 1, 1, 1),
    (2025, 11, 1, 1, 1, 1),
    (2025, 11, 11, 11, 11, 11),
    (2025, 1, 11, 11, 11, 11),
    (2025, 11, 1, 11, 11, 11),
    (2025, 11, 11, 1, 11, 11),
    (2025, 11, 11, 11, 1, 11),
    (2025, 11, 11, 11, 11, 1),
];

/// Two of `cameras` (name, template) whose segments could get the same key, with an example
/// key: the same template text once the camera placeholders are filled in (a template without
/// `{camera}`, or with only `{camera_}` or `{number}`, for names such as `cam1` and `cam-1`, or
/// `front1` and `back1`), or the same key at two of a set of sample times (an unpadded field
/// next to a name's digits). Only pairs that include `only` are checked when it is given.
pub fn shared_key<'a>(
    cameras: &[(&'a str, &KeyTemplate)],
    only: Option<&str>,
) -> Option<(&'a str, &'a str, String)> {
    let rendered: Vec<(String, Vec<String>)> = cameras
        .iter()
        .map(|(cam, t)| {
            let keys = CLASH_SAMPLES
                .iter()
                .filter_map(|&(y, mo, d, h, mi, s)| {
                    let at = Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single()?;
                    t.try_render(cam, at, chrono_tz::UTC).ok()
                })
                .collect();
            (t.with_names(cam), keys)
        })
        .collect();
    for i in 0..cameras.len() {
        for j in i + 1..cameras.len() {
            let (a, b) = (cameras[i].0, cameras[j].0);
            if only.is_some_and(|o| o != a && o != b) {
                continue;
            }
            let ((ta, ka), (tb, kb)) = (&rendered[i], &rendered[j]);
            if ta == tb {
                return Some((a, b, ka.first().cloned().unwrap_or_else(|| ta.clone())));
            }
            if let Some(k) = ka.iter().find(|k| kb.contains(k)) {
                return Some((a, b, k.clone()));
            }
        }
    }
    None
}

/// A key parsed back: the instant it names and its `-n` variant (1 for the key itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedKey {
    pub at: DateTime<Utc>,
    pub variant: u32,
}

/// strftime fields no finer than an hour: a key prefix made of these and literals names a set of
/// whole hours, so a time range can be listed by prefix.
const HOUR_OR_COARSER: &[char] = &[
    'Y', 'C', 'y', 'm', 'b', 'B', 'h', 'd', 'e', 'j', 'H', 'k', 'F', 'D', 'x', 'G', 'g', 'U', 'W',
    'V', 'a', 'A', 'w', 'u', '%',
];

impl KeyTemplate {
    fn with_names(&self, camera: &str) -> String {
        self.template
            .replace("{camera_}", &underscored(camera))
            .replace("{camera}", camera)
            .replace("{number}", trailing_number(camera))
    }

    /// The leading part of the template (camera placeholders filled in) up to its first field
    /// finer than an hour, if that part holds at least one date or hour field; otherwise why a
    /// range cannot be listed by prefix.
    pub fn listable_prefix(&self, camera: &str) -> Result<String, String> {
        let t = self.with_names(camera);
        let mut chars = t.char_indices().peekable();
        let mut has_time = false;
        while let Some((i, c)) = chars.next() {
            if c != '%' {
                continue;
            }
            // Padding modifiers (`%-d`, `%_H`, `%0e`) and the field itself.
            let mut field = None;
            for (_, f) in chars.by_ref() {
                if !matches!(f, '-' | '_' | '0' | '.' | ':' | '#' | '3' | '6' | '9') {
                    field = Some(f);
                    break;
                }
            }
            match field {
                Some('%') => {}
                Some(f) if HOUR_OR_COARSER.contains(&f) => has_time = true,
                _ => {
                    return if has_time {
                        Ok(t[..i].to_string())
                    } else {
                        Err(self.unlistable())
                    }
                }
            }
        }
        if has_time {
            Ok(t)
        } else {
            Err(self.unlistable())
        }
    }

    fn unlistable(&self) -> String {
        format!(
            "KEY_TEMPLATE `{}` starts with no date or hour field before its first minute or \
             second field, so a time range cannot be listed by key prefix (it would mean \
             listing every object); put the date and hour first, as in `{DEFAULT_TEMPLATE}`",
            self.template
        )
    }

    /// The key prefixes to list for `camera` between `from` and `to`: the listable prefix
    /// rendered for every local hour in the range, without repeats (a prefix that holds only a
    /// date repeats for every hour of that day).
    pub fn list_prefixes(
        &self,
        camera: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        tz: Tz,
    ) -> Result<Vec<String>, String> {
        let prefix = self.listable_prefix(camera)?;
        let mut out: Vec<String> = Vec::new();
        // Quarter-hour steps from a quarter-hour boundary touch every local hour in the range,
        // in every zone (offsets are whole quarter hours: Asia/Kolkata is +05:30).
        let quarter = chrono::Duration::minutes(15);
        let first = from.timestamp() - from.timestamp().rem_euclid(900);
        let mut at = DateTime::<Utc>::from_timestamp(first, 0).unwrap_or(from);
        while at < to {
            let p = at.with_timezone(&tz).format(&prefix).to_string();
            if !out.contains(&p) {
                out.push(p);
            }
            at += quarter;
        }
        Ok(out)
    }

    /// The instant a key of `camera` names, or `None` when the key is not one this template
    /// makes (for that camera). Accepts the second-pass zone suffix and `-n` variants.
    pub fn parse_key(&self, camera: &str, key: &str, tz: Tz) -> Option<ParsedKey> {
        let fmt = self.with_names(camera);
        let slash = key.rfind('/').map_or(0, |i| i + 1);
        let (stem, ext) = match key[slash..].rfind('.') {
            Some(dot) => key.split_at(slash + dot),
            None => (key, ""),
        };
        let mut candidates = vec![(stem, 1)];
        if let Some((s, n)) = stem.rsplit_once('-') {
            if !n.is_empty() && n.len() <= 3 && !n.starts_with('0') {
                if let Ok(v) = n.parse::<u32>() {
                    if v >= 2 {
                        candidates.push((s, v));
                    }
                }
            }
        }
        let parse = |text: &str| NaiveDateTime::parse_from_str(text, &fmt).ok();
        for (stem, variant) in candidates {
            if let Some(naive) = parse(&format!("{stem}{ext}")) {
                let at = match tz.from_local_datetime(&naive) {
                    LocalResult::Single(t) => t,
                    LocalResult::Ambiguous(first, _) => first,
                    LocalResult::None => continue,
                };
                return Some(ParsedKey {
                    at: at.with_timezone(&Utc),
                    variant,
                });
            }
            // The later pass of a repeated hour: `_<zone abbreviation>` before the extension.
            let Some((base, abbr)) = stem.rsplit_once('_') else {
                continue;
            };
            let Some(naive) = parse(&format!("{base}{ext}")) else {
                continue;
            };
            if let LocalResult::Ambiguous(_, second) = tz.from_local_datetime(&naive) {
                if second.format("%Z").to_string() == abbr {
                    return Some(ParsedKey {
                        at: second.with_timezone(&Utc),
                        variant,
                    });
                }
            }
        }
        None
    }
}

/// Whether `at` is the later of two instants that share the local time `naive` in `tz`.
fn is_second_pass(naive: NaiveDateTime, at: DateTime<Utc>, tz: Tz) -> bool {
    match tz.from_local_datetime(&naive) {
        LocalResult::Ambiguous(first, second) => {
            first.with_timezone(&Utc) != at && second.with_timezone(&Utc) == at
        }
        _ => false,
    }
}

/// The camera's trailing decimal number (`cam12` → `12`), or "" when there is none.
pub fn trailing_number(camera: &str) -> &str {
    let digits = camera
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit())
        .count();
    &camera[camera.len() - digits..]
}

/// `cam1` → `cam_1`; `front-door2` → `front_door_2`; `garage` → `garage`.
pub fn underscored(camera: &str) -> String {
    let number = trailing_number(camera);
    let stem = camera[..camera.len() - number.len()].replace('-', "_");
    match (stem.is_empty(), number.is_empty()) {
        (_, true) => stem,
        (true, false) => number.to_string(),
        (false, false) if stem.ends_with('_') => format!("{stem}{number}"),
        (false, false) => format!("{stem}_{number}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn check(template: &str, camera: &str, at: &str, tz: Tz, expect: &str) {
        let t = KeyTemplate::parse(template).unwrap();
        assert_eq!(
            t.render(camera, utc(at), tz),
            expect,
            "{template} {camera} {at}"
        );
    }

    #[test]
    fn visdcam_pi_example() {
        // 17:42:22 IST is 12:12:22 UTC.
        check(
            DEFAULT_TEMPLATE,
            "cam1",
            "2025-10-12T12:12:22Z",
            chrono_tz::Asia::Kolkata,
            "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts",
        );
    }

    #[test]
    fn ist_crosses_midnight_before_utc() {
        check(
            DEFAULT_TEMPLATE,
            "cam2",
            "2025-12-31T18:30:00Z",
            chrono_tz::Asia::Kolkata,
            "cam2/2026/01/01/00/cam_2_2026_01_01_00_00_00.ts",
        );
    }

    #[test]
    fn berlin_repeated_hour_gets_distinct_keys() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2025-10-26: 02:30 CEST is 00:30Z, 02:30 CET is 01:30Z.
        check(
            DEFAULT_TEMPLATE,
            "cam1",
            "2025-10-26T00:30:00Z",
            berlin,
            "cam1/2025/10/26/02/cam_1_2025_10_26_02_30_00.ts",
        );
        check(
            DEFAULT_TEMPLATE,
            "cam1",
            "2025-10-26T01:30:00Z",
            berlin,
            "cam1/2025/10/26/02/cam_1_2025_10_26_02_30_00_CET.ts",
        );
    }

    #[test]
    fn berlin_spring_forward_and_summer() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2025-03-30 02:00 CET jumps to 03:00 CEST: 01:00Z is 03:00 local.
        check(
            DEFAULT_TEMPLATE,
            "cam3",
            "2025-03-30T01:00:00Z",
            berlin,
            "cam3/2025/03/30/03/cam_3_2025_03_30_03_00_00.ts",
        );
        check(
            DEFAULT_TEMPLATE,
            "cam3",
            "2025-07-01T10:00:05Z",
            berlin,
            "cam3/2025/07/01/12/cam_3_2025_07_01_12_00_05.ts",
        );
    }

    #[test]
    fn every_instant_of_a_repeated_hour_has_a_unique_key() {
        let berlin = chrono_tz::Europe::Berlin;
        let t = KeyTemplate::default();
        let start = utc("2025-10-25T23:00:00Z");
        let mut keys = std::collections::HashSet::new();
        for s in (0..3 * 3600).step_by(7) {
            let at = start + chrono::Duration::seconds(s);
            assert!(
                keys.insert(t.render("cam1", at, berlin)),
                "duplicate at {at}"
            );
        }
    }

    #[test]
    fn templates_for_other_names() {
        let ist = chrono_tz::Asia::Kolkata;
        check(
            "{camera}/%Y-%m-%d/%H%M%S.ts",
            "front-door",
            "2025-10-12T12:12:22Z",
            ist,
            "front-door/2025-10-12/174222.ts",
        );
        check(
            "site/{number}/{camera_}_%Y%m%d_%H%M%S.ts",
            "porch2",
            "2025-10-12T12:12:22Z",
            ist,
            "site/2/porch_2_20251012_174222.ts",
        );
        assert_eq!(
            KeyTemplate::default().render("garage", utc("2025-10-12T12:12:22Z"), ist),
            "garage/2025/10/12/17/garage_2025_10_12_17_42_22.ts"
        );
    }

    #[test]
    fn underscored_names() {
        for (name, expect) in [
            ("cam1", "cam_1"),
            ("cam12", "cam_12"),
            ("front-door2", "front_door_2"),
            ("cam-3", "cam_3"),
            ("garage", "garage"),
            ("42", "42"),
        ] {
            assert_eq!(underscored(name), expect, "{name}");
        }
    }

    #[test]
    fn bad_templates_are_rejected_with_reason() {
        for (t, why) in [
            ("", "empty"),
            ("/x/%S.ts", "start with `/`"),
            ("a//%S.ts", "empty path segment"),
            ("{cam}/%S.ts", "unknown placeholder `{cam}`"),
            ("{camera/%S.ts", "without a closing"),
            ("{camera}/%Q%S.ts", "invalid `%` field"),
            ("{camera}/%Y/%H%M.ts", "must contain seconds"),
        ] {
            let err = KeyTemplate::parse(t).unwrap_err();
            assert!(err.contains(why), "{t:?}: {err}");
        }
    }

    #[test]
    fn fields_that_cannot_be_formatted_are_refused_and_render_never_panics() {
        // chrono parses `%#z` (a parse-only offset) but fails to format it: `to_string()`
        // panicked in the uploader on every upload.
        let err = KeyTemplate::parse("{camera}/%Y/%H%M%S%#z.ts").unwrap_err();
        assert!(err.contains("cannot be formatted"), "{err}");
        let bad = KeyTemplate {
            template: "{camera}/%S%#z.ts".into(),
        };
        let at = utc("2025-10-12T12:12:22Z");
        assert!(bad.try_render("cam1", at, chrono_tz::UTC).is_err());
        assert_eq!(
            bad.render("cam1", at, chrono_tz::UTC),
            KeyTemplate::default().render("cam1", at, chrono_tz::UTC)
        );
        // Every other offset and zone field formats.
        for ok in ["%Z", "%z", "%:z", "%::z", "%:::z", "%+", "%.3f", "%s"] {
            let t = format!("{{camera}}/%Y%m%d%H%M%S{ok}.ts");
            assert!(KeyTemplate::parse(&t).is_ok(), "{t}");
        }
    }

    #[test]
    fn templates_under_which_two_cameras_share_keys() {
        let parse = |t: &str| KeyTemplate::parse(t).unwrap();
        let default = KeyTemplate::default();
        let no_camera = parse("%Y/%m/%d/%H%M%S.ts");
        let number = parse("{number}/%Y%m%d_%H%M%S.ts");
        let underscored = parse("{camera_}/%Y%m%d_%H%M%S.ts");
        let unpadded = parse("{camera}%-d/%H%M%S.ts");
        let clash = |cams: &[(&'static str, &KeyTemplate)]| shared_key(cams, None);

        assert_eq!(clash(&[("cam1", &default), ("cam-1", &default)]), None);
        assert_eq!(clash(&[("cam1", &no_camera)]), None, "one camera");
        let (a, b, key) = clash(&[("cam1", &no_camera), ("cam2", &no_camera)]).unwrap();
        assert_eq!((a, b), ("cam1", "cam2"));
        assert_eq!(key, "2025/01/01/010101.ts");
        assert_eq!(
            clash(&[("cam1", &number), ("front1", &number)]).map(|c| (c.0, c.1)),
            Some(("cam1", "front1"))
        );
        assert!(clash(&[("cam1", &number), ("cam2", &number)]).is_none());
        assert!(clash(&[("cam1", &underscored), ("cam-1", &underscored)]).is_some());
        assert!(clash(&[("cam1", &underscored), ("cam2", &underscored)]).is_none());
        // `cam1` on the 11th and `cam11` on the 1st: `cam111/...`.
        assert!(clash(&[("cam1", &unpadded), ("cam11", &unpadded)]).is_some());
        // Per-camera templates: each camera's own.
        assert!(clash(&[("cam1", &default), ("cam2", &no_camera)]).is_none());
        // Only pairs with the camera asked about.
        let three = [
            ("cam1", &no_camera),
            ("cam2", &no_camera),
            ("cam3", &default),
        ];
        assert!(shared_key(&three, Some("cam3")).is_none());
        assert!(shared_key(&three, Some("cam2")).is_some());
    }

    #[test]
    fn time_zone_is_applied_not_assumed() {
        let t = KeyTemplate::default();
        let at = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            t.render("cam1", at, chrono_tz::UTC),
            "cam1/2025/01/01/00/cam_1_2025_01_01_00_00_00.ts"
        );
        assert_eq!(
            t.render("cam1", at, chrono_tz::America::New_York),
            "cam1/2024/12/31/19/cam_1_2024_12_31_19_00_00.ts"
        );
    }
}
