//! Footage decisions with data: typed times and ranges, key prefixes and keys parsed back,
//! timelines with gaps and restarts, and the HLS playlist.

use super::*;
use crate::keys::{KeyTemplate, ParsedKey, DEFAULT_TEMPLATE};
use chrono_tz::Asia::Kolkata;
use chrono_tz::Europe::Berlin;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// 2026-12-02 18:00:00 IST.
fn now() -> DateTime<Utc> {
    utc("2026-12-02T12:30:00Z")
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn check_range(input: &str, rule: EndRule, from: &str, to: &str) {
    let r =
        parse_range(&words(input), now(), Kolkata, rule).unwrap_or_else(|e| panic!("{input}: {e}"));
    assert_eq!((r.from, r.to), (utc(from), utc(to)), "{input}");
}

fn check_range_err(input: &str, rule: EndRule, want: &str) {
    let e = parse_range(&words(input), now(), Kolkata, rule).unwrap_err();
    assert!(e.contains(want), "{input}: {e}");
}

#[test]
fn typed_starts_and_ends() {
    let now_ = "2026-12-02T12:30:00Z";
    check_range("17:40", EndRule::Now, "2026-12-02T12:10:00Z", now_);
    check_range(
        "17:40:05 15m",
        EndRule::Now,
        "2026-12-02T12:10:05Z",
        "2026-12-02T12:25:05Z",
    );
    check_range(
        "yesterday 17:40 17:55",
        EndRule::Required,
        "2026-12-01T12:10:00Z",
        "2026-12-01T12:25:00Z",
    );
    check_range(
        "yesterday 17:40 yesterday 17:55",
        EndRule::Required,
        "2026-12-01T12:10:00Z",
        "2026-12-01T12:25:00Z",
    );
    check_range(
        "2026-12-02 17:40 1h30m",
        EndRule::Required,
        "2026-12-02T12:10:00Z",
        "2026-12-02T13:40:00Z",
    );
    check_range(
        "2026-12-02T17:40:00+05:30 90s",
        EndRule::Required,
        "2026-12-02T12:10:00Z",
        "2026-12-02T12:11:30Z",
    );
    check_range(
        "2026-12-02T17:40 now",
        EndRule::Required,
        "2026-12-02T12:10:00Z",
        now_,
    );
    check_range("2026-12-01", EndRule::Now, "2026-11-30T18:30:00Z", now_);
    check_range(
        "today 06:00 today 07:00",
        EndRule::Now,
        "2026-12-02T00:30:00Z",
        "2026-12-02T01:30:00Z",
    );
    // Nothing: today since midnight.
    check_range("", EndRule::Now, "2026-12-01T18:30:00Z", now_);
    // One quoted argument.
    let r = parse_range(
        &["2026-12-02 17:40".to_string(), "15m".to_string()],
        now(),
        Kolkata,
        EndRule::Required,
    )
    .unwrap();
    assert_eq!(r.from, utc("2026-12-02T12:10:00Z"));
    assert_eq!(r.length(), Duration::from_secs(900));
}

#[test]
fn bad_ranges_say_what_is_accepted() {
    check_range_err(
        "17:4x",
        EndRule::Now,
        "cannot read `17:4x` as a start time: use now, 17:40",
    );
    check_range_err("lunchtime", EndRule::Now, "(local times in Asia/Kolkata)");
    check_range_err(
        "17:40",
        EndRule::Required,
        "an end is required after the start",
    );
    check_range_err(
        "17:40 17:30",
        EndRule::Required,
        "the end (2026-12-02 17:30:00 IST) is not after the start (2026-12-02 17:40:00 IST)",
    );
    check_range_err(
        "17:40 5x",
        EndRule::Required,
        "cannot read `5x` as an end: use a time (as for the start) or a length such as 15m",
    );
    check_range_err("17:40 0m", EndRule::Required, "the length `0m` is zero");
    check_range_err(
        "17:40 17:50 extra",
        EndRule::Required,
        "unexpected `extra` after the end `17:50`",
    );
    check_range_err("25:00", EndRule::Now, "cannot read `25:00`");
    assert!(parse_when("17:40", now(), Kolkata).is_ok());
    assert!(parse_when("soon", now(), Kolkata)
        .unwrap_err()
        .contains("use now, 17:40"));
}

#[test]
fn clocks_going_forward_and_back() {
    // Berlin 2026-03-29 02:30 does not exist.
    let e = parse_when("2026-03-29 02:30", now(), Berlin).unwrap_err();
    assert!(e.contains("does not exist in Europe/Berlin"), "{e}");
    // 2026-10-25 02:30 happens twice: the first pass (CEST, 00:30Z).
    assert_eq!(
        parse_when("2026-10-25 02:30", now(), Berlin).unwrap(),
        utc("2026-10-25T00:30:00Z")
    );
}

#[test]
fn prefixes_follow_the_hour_directories() {
    let t = KeyTemplate::default();
    assert_eq!(
        t.listable_prefix("cam2").unwrap(),
        "cam2/%Y/%m/%d/%H/cam_2_%Y_%m_%d_%H_"
    );
    // 17:40 → 18:40 IST touches two hour directories.
    let p = t
        .list_prefixes(
            "cam2",
            utc("2026-12-02T12:10:00Z"),
            utc("2026-12-02T13:10:00Z"),
            Kolkata,
        )
        .unwrap();
    assert_eq!(
        p,
        [
            "cam2/2026/12/02/17/cam_2_2026_12_02_17_",
            "cam2/2026/12/02/18/cam_2_2026_12_02_18_"
        ]
    );
    // Exactly one hour on the hour: one prefix.
    let p = t
        .list_prefixes(
            "cam2",
            utc("2026-12-02T12:30:00Z"),
            utc("2026-12-02T13:30:00Z"),
            Kolkata,
        )
        .unwrap();
    assert_eq!(p, ["cam2/2026/12/02/18/cam_2_2026_12_02_18_"]);
    // A day-directory template lists one prefix per day.
    let t = KeyTemplate::parse("footage/{camera}/%Y-%m-%d/%T.ts").unwrap();
    let p = t
        .list_prefixes(
            "cam1",
            utc("2026-12-01T10:00:00Z"),
            utc("2026-12-02T20:00:00Z"),
            Kolkata,
        )
        .unwrap();
    assert_eq!(
        p,
        [
            "footage/cam1/2026-12-01/",
            "footage/cam1/2026-12-02/",
            "footage/cam1/2026-12-03/"
        ]
    );
}

#[test]
fn a_template_without_a_leading_date_cannot_be_listed_by_range() {
    for tpl in ["{camera}/%M%S-%Y%m%d.ts", "{camera}/%s.ts"] {
        let e = KeyTemplate::parse(tpl)
            .unwrap()
            .list_prefixes("cam1", now(), now() + chrono::Duration::hours(1), Kolkata)
            .unwrap_err();
        assert!(e.contains("cannot be listed by key prefix"), "{tpl}: {e}");
        assert!(e.contains(DEFAULT_TEMPLATE), "{e}");
    }
}

#[test]
fn keys_parse_back_to_their_instant() {
    let t = KeyTemplate::default();
    for at in ["2025-10-12T12:12:22Z", "2025-12-31T18:30:00Z"] {
        let key = t.render("cam1", utc(at), Kolkata);
        assert_eq!(
            t.parse_key("cam1", &key, Kolkata),
            Some(ParsedKey {
                at: utc(at),
                variant: 1
            }),
            "{key}"
        );
    }
    let p = t
        .parse_key(
            "cam1",
            "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22-3.ts",
            Kolkata,
        )
        .unwrap();
    assert_eq!((p.at, p.variant), (utc("2025-10-12T12:12:22Z"), 3));
    // Not this camera's, not a segment, not this layout.
    for key in [
        "cam10/2025/10/12/17/cam_10_2025_10_12_17_42_22.ts",
        "cam1/2025/10/12/17/notes.txt",
        "cam1/2025/10/12/17/cam_1_2025_10_12_17_42.ts",
        "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts.part",
    ] {
        assert_eq!(t.parse_key("cam1", key, Kolkata), None, "{key}");
    }
    // A template whose seconds follow a dash is not mistaken for a variant.
    let t = KeyTemplate::parse("{camera}/%Y%m%d/%H-%M-%S.ts").unwrap();
    let key = t.render("cam1", utc("2026-12-02T12:10:15Z"), Kolkata);
    assert_eq!(key, "cam1/20261202/17-40-15.ts");
    assert_eq!(
        t.parse_key("cam1", &key, Kolkata).unwrap().at,
        utc("2026-12-02T12:10:15Z")
    );
}

#[test]
fn the_repeated_hour_parses_to_both_passes() {
    let t = KeyTemplate::default();
    for at in ["2025-10-26T00:30:00Z", "2025-10-26T01:30:00Z"] {
        let key = t.render("cam1", utc(at), Berlin);
        assert_eq!(
            t.parse_key("cam1", &key, Berlin).unwrap().at,
            utc(at),
            "{key}"
        );
    }
}

/// Objects ending at `ends` (seconds after 12:00:00Z), 1 MB each.
fn objects(ends: &[i64]) -> Vec<Object> {
    let base = utc("2026-12-02T12:00:00Z");
    ends.iter()
        .map(|s| Object {
            key: format!("k{s}"),
            size: 1_000_000,
            end: base + chrono::Duration::seconds(*s),
        })
        .collect()
}

fn at(s: i64) -> DateTime<Utc> {
    utc("2026-12-02T12:00:00Z") + chrono::Duration::seconds(s)
}

#[test]
fn usual_length_is_the_common_step() {
    let o = objects(&[10, 20, 30, 34, 70, 80, 90, 101, 111]);
    assert_eq!(
        usual_length(&o, Duration::from_secs(60)),
        Duration::from_secs(10)
    );
    assert_eq!(
        usual_length(&o[..1], Duration::from_secs(60)),
        Duration::from_secs(60)
    );
}

#[test]
fn an_outage_is_one_gap_between_two_spans() {
    // 10 s segments; the camera died at 34 s (a short segment), the recorder came back at
    // 74 s (its first segment, full length, ended at 84 s).
    let o = objects(&[10, 20, 30, 34, 84, 94, 104]);
    let usual = usual_length(&o, Duration::from_secs(60));
    assert_eq!(starts_to_read(&o, usual), [0, 3, 4]);
    let mut starts = BTreeMap::new();
    starts.insert(0, at(0));
    starts.insert(3, at(30)); // HEAD says it started where 30 s ended
    starts.insert(4, at(74) + chrono::Duration::milliseconds(400));
    let range = Range {
        from: at(0),
        to: at(104),
    };
    let t = timeline(&o, &starts, usual, range);
    assert_eq!(t.spans.len(), 2);
    assert_eq!((t.spans[0].start, t.spans[0].end), (at(0), at(34)));
    assert_eq!(t.spans[0].segments, 4);
    assert_eq!(t.spans[0].bytes, 4_000_000);
    assert_eq!(
        t.spans[1].start,
        at(74) + chrono::Duration::milliseconds(400)
    );
    assert_eq!(t.spans[1].end, at(104));
    assert_eq!(t.gaps.len(), 1);
    assert_eq!(t.gaps[0].from, at(34));
    let disc: Vec<bool> = t.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(disc, [true, false, false, false, true, false, false]);
    let text = render_timeline("cam1", &t, Kolkata, &[]);
    assert_eq!(
        text,
        "cam1: 2026-12-02 17:30:00 → 2026-12-02 17:31:44 (Asia/Kolkata)\n\
         Wed 2026-12-02\n\
         \x20 17:30:00–17:30:34      34 s     4 segments  4 MB\n\
         \x20 17:30:34–17:31:14      40 s  no footage\n\
         \x20 17:31:14–17:31:44      30 s     3 segments  3 MB\n\
         2 spans, 1 gap: 64 s recorded in 7 segments, 7 MB\n"
    );
}

#[test]
fn without_metadata_a_restart_is_taken_as_one_usual_length() {
    let o = objects(&[10, 20, 30, 34, 84, 94]);
    let t = timeline(
        &o,
        &BTreeMap::new(),
        Duration::from_secs(10),
        Range {
            from: at(0),
            to: at(94),
        },
    );
    assert_eq!(t.spans[1].start, at(74));
    // A restart with no gap (short segment, then straight on): one span, but a discontinuity.
    let o = objects(&[10, 20, 24, 34, 44]);
    let t = timeline(
        &o,
        &BTreeMap::new(),
        Duration::from_secs(10),
        Range {
            from: at(0),
            to: at(44),
        },
    );
    assert_eq!(t.spans.len(), 1, "{:?}", t.spans);
    assert!(t.gaps.is_empty());
    let disc: Vec<bool> = t.segments.iter().map(|s| s.discontinuity).collect();
    assert_eq!(disc, [true, false, false, true, false]);
    assert_eq!(starts_to_read(&o, Duration::from_secs(10)), [0, 2, 3]);
}

#[test]
fn the_range_picks_overlapping_segments_and_edge_gaps() {
    let o = objects(&[10, 20, 30, 40]);
    let t = timeline(
        &o,
        &BTreeMap::new(),
        Duration::from_secs(10),
        Range {
            from: at(15),
            to: at(60),
        },
    );
    let keys: Vec<&str> = t.segments.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["k20", "k30", "k40"]);
    assert_eq!(t.spans[0].start, at(10));
    // Footage stops at 40 s; the range goes on to 60 s.
    assert_eq!(
        t.gaps,
        [Range {
            from: at(40),
            to: at(60)
        }]
    );
    // Nothing in range: no spans, no gaps (the caller says "no footage").
    let t = timeline(
        &o,
        &BTreeMap::new(),
        Duration::from_secs(10),
        Range {
            from: at(100),
            to: at(200),
        },
    );
    assert!(t.spans.is_empty() && t.gaps.is_empty() && t.segments.is_empty());
}

#[test]
fn unparsed_objects_are_named_once() {
    let o = objects(&[10]);
    let t = timeline(
        &o,
        &BTreeMap::new(),
        Duration::from_secs(10),
        Range {
            from: at(0),
            to: at(10),
        },
    );
    let text = render_timeline("cam1", &t, Kolkata, &["cam1/2026/12/02/17/x.txt".into()]);
    assert!(
        text.ends_with(
            "1 object under the listed prefixes is not a segment key of this KEY_TEMPLATE \
             (not counted): cam1/2026/12/02/17/x.txt\n"
        ),
        "{text}"
    );
}

#[test]
fn playlist_marks_time_and_discontinuities() {
    let e = |url: &str, s: i64, len: u64, d: bool| PlaylistEntry {
        url: url.into(),
        start: at(s),
        length: Duration::from_millis(len),
        discontinuity: d,
    };
    let p = hls_playlist(
        &[
            e("https://s/a?X-Amz-Signature=1&b=2", 0, 10_000, true),
            e("https://s/b", 10, 4_000, false),
            e("https://s/c", 54, 10_400, true),
        ],
        Kolkata,
    );
    assert_eq!(
        p,
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXT-X-TARGETDURATION:10\n\
         #EXT-X-MEDIA-SEQUENCE:0\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-02T17:30:00.000+05:30\n#EXTINF:10.000,\n\
         https://s/a?X-Amz-Signature=1&b=2\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-02T17:30:10.000+05:30\n#EXTINF:4.000,\nhttps://s/b\n\
         #EXT-X-DISCONTINUITY\n\
         #EXT-X-PROGRAM-DATE-TIME:2026-12-02T17:30:54.000+05:30\n#EXTINF:10.400,\nhttps://s/c\n\
         #EXT-X-ENDLIST\n"
    );
}

#[test]
fn people_read_lengths_and_sizes() {
    assert_eq!(human_length(Duration::from_secs(42)), "42 s");
    assert_eq!(human_length(Duration::from_secs(34 * 60 + 35)), "35 min");
    assert_eq!(human_length(Duration::from_secs(7500)), "2 h 5 min");
    assert_eq!(human_size(41_200_000), "41 MB");
    assert_eq!(human_size(1_500_000_000), "1.5 GB");
    assert_eq!(human_size(999), "999 B");
}
