//! Day/night presets: which preset is due at a moment, what to send to bring a camera from its
//! `/status` onto a preset (`framesize` first), what the `/status` read afterwards confirms,
//! the small memory a run leaves for the next one (to notice a camera that rebooted), and the
//! `daynight.timer` drop-in for the configured switch times. Pure: callers pass `/status` as a
//! map, the time, and the memory file's text.
//!
//! The firmware cannot report every variable (`vflip`): such a variable is sent when the preset
//! changes, when the camera seems to have rebooted (a value the previous run confirmed is no
//! longer there), when the previous run did not get it accepted, and on a forced apply.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveTime, TimeZone, Timelike};
use chrono_tz::Tz;

use crate::camvars::{self, ControlVar};
use crate::config::ClockTime;

/// The preset due during the day.
pub const DAY: &str = "day";
/// The preset due during the night.
pub const NIGHT: &str = "night";

/// A camera's `/status`: every integer field by name.
pub type Status = BTreeMap<String, i64>;
/// A preset: `/control` variable → value (as [`crate::config::Settings::presets`] holds them).
pub type Preset = BTreeMap<String, i32>;

/// The preset due at local time `t`: `day` from `day_start` (inclusive) to `night_start`
/// (exclusive), `night` otherwise. Works when the day starts after the night, too (the day
/// then wraps over midnight).
pub fn due_preset(t: NaiveTime, day_start: ClockTime, night_start: ClockTime) -> &'static str {
    let minute = |c: ClockTime| u32::from(c.hour) * 60 + u32::from(c.minute);
    let now = t.hour() * 60 + t.minute();
    let (day, night) = (minute(day_start), minute(night_start));
    let is_day = if day < night {
        (day..night).contains(&now)
    } else {
        now >= day || now < night
    };
    if is_day {
        DAY
    } else {
        NIGHT
    }
}

/// The preset due at instant `at`, reading the switch times in `zone`.
pub fn due_at<Z: TimeZone>(
    at: &DateTime<Z>,
    zone: Tz,
    day_start: ClockTime,
    night_start: ClockTime,
) -> &'static str {
    due_preset(at.with_timezone(&zone).time(), day_start, night_start)
}

/// Why a variable is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `/status` reports another value.
    Differs,
    /// `/status` does not report it (an older firmware): sent like an unreadable variable.
    NotReported,
    /// The firmware cannot report it (`vflip`); sent because the preset changed, the camera
    /// seems to have rebooted or the last attempt was not accepted.
    Unreadable,
    /// A forced apply sends every variable of the preset.
    Forced,
}

/// One `/control` call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub var: &'static str,
    /// The value `/status` reports, `None` when it cannot tell.
    pub old: Option<i64>,
    pub new: i32,
    pub reason: Reason,
}

impl fmt::Display for Change {
    /// `framesize 9 → 8`, `vflip ? → 1`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.old {
            Some(old) => write!(f, "{} {old} → {}", self.var, self.new),
            None => write!(f, "{} ? → {}", self.var, self.new),
        }
    }
}

/// What a run knows is on a camera, kept between runs (under `/run`, so a Pi's reboot forgets
/// it, as the cameras' own reboots do).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Memory {
    /// The preset the run applied.
    pub preset: String,
    /// Readable variables of that preset: the value `/status` confirmed after the run.
    pub seen: BTreeMap<String, i64>,
    /// Unreadable (or unreported) variables the camera accepted (HTTP 200), with the value.
    pub accepted: BTreeMap<String, i64>,
}

impl Memory {
    /// The file format: `preset=NAME`, then `seen.VAR=N` and `accepted.VAR=N` lines.
    pub fn render(&self) -> String {
        let mut out = format!("preset={}\n", self.preset);
        for (k, v) in &self.seen {
            out.push_str(&format!("seen.{k}={v}\n"));
        }
        for (k, v) in &self.accepted {
            out.push_str(&format!("accepted.{k}={v}\n"));
        }
        out
    }

    /// Parses [`Memory::render`]'s output; the error names the line.
    pub fn parse(text: &str) -> Result<Memory, String> {
        let mut m = Memory::default();
        for (i, line) in text.lines().enumerate() {
            let bad = || format!("line {}: `{line}` is not KEY=VALUE", i + 1);
            let (k, v) = line.split_once('=').ok_or_else(bad)?;
            if k == "preset" {
                m.preset = v.to_string();
                continue;
            }
            let value: i64 = v.parse().map_err(|_| bad())?;
            let map = if let Some(var) = k.strip_prefix("seen.") {
                (&mut m.seen, var)
            } else if let Some(var) = k.strip_prefix("accepted.") {
                (&mut m.accepted, var)
            } else {
                return Err(format!("line {}: unknown key `{k}`", i + 1));
            };
            map.0.insert(map.1.to_string(), value);
        }
        if m.preset.is_empty() {
            return Err("no preset= line".into());
        }
        Ok(m)
    }
}

/// What to send to a camera, and why.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// In [`camvars::CONTROL_VARS`] order: `framesize` first.
    pub changes: Vec<Change>,
    /// A value the previous run confirmed is gone: the camera rebooted (or someone changed it).
    pub reboot_suspected: bool,
    /// Variables left alone on purpose, with the reason (e.g. `led_intensity` on a board
    /// without LED when the preset wants it off).
    pub skipped: Vec<(&'static str, String)>,
}

/// How a preset's variable relates to what `/status` shows.
enum Seen {
    /// `/status` reports it.
    Value(i64),
    /// The firmware cannot tell (unreadable or not reported).
    Unknown,
    /// Nothing to do (e.g. no LED and the preset wants it off).
    Moot(String),
}

fn seen(var: &ControlVar, want: i32, status: &Status) -> Seen {
    match status.get(var.name) {
        // The firmware reports -1 when the board has no flash LED: "off" is then satisfied.
        Some(-1) if var.name == "led_intensity" && want == 0 => {
            Seen::Moot("the board has no flash LED (/status reports -1)".into())
        }
        Some(v) if var.readable => Seen::Value(*v),
        _ => Seen::Unknown,
    }
}

/// The preset's variables in firmware order (`framesize` first).
fn ordered(preset: &Preset) -> impl Iterator<Item = (&'static ControlVar, i32)> + '_ {
    camvars::CONTROL_VARS
        .iter()
        .filter_map(|v| preset.get(v.name).map(|want| (v, *want)))
}

/// Decides what to send to put a camera showing `status` on preset `name`.
///
/// `memory` is what the previous run left (`None` when there is none); `force` sends every
/// variable of the preset (an explicit apply).
pub fn plan(
    name: &str,
    preset: &Preset,
    status: &Status,
    memory: Option<&Memory>,
    force: bool,
) -> Plan {
    let reboot_suspected = memory.is_some_and(|m| {
        m.seen
            .iter()
            .any(|(k, v)| status.get(k).is_some_and(|now| now != v))
    });
    let resend_unknown = force || reboot_suspected || memory.is_none_or(|m| m.preset != name);
    let mut out = Plan {
        reboot_suspected,
        ..Plan::default()
    };
    for (var, want) in ordered(preset) {
        let change = |old, reason| Change {
            var: var.name,
            old,
            new: want,
            reason,
        };
        match seen(var, want, status) {
            Seen::Moot(why) => out.skipped.push((var.name, why)),
            Seen::Value(v) if force => out.changes.push(change(Some(v), Reason::Forced)),
            Seen::Value(v) if v != i64::from(want) => {
                out.changes.push(change(Some(v), Reason::Differs))
            }
            Seen::Value(_) => {}
            Seen::Unknown => {
                let accepted_before = memory
                    .and_then(|m| m.accepted.get(var.name))
                    .is_some_and(|v| *v == i64::from(want));
                if resend_unknown || !accepted_before {
                    let reason = if force {
                        Reason::Forced
                    } else if var.readable {
                        Reason::NotReported
                    } else {
                        Reason::Unreadable
                    };
                    out.changes.push(change(None, reason));
                }
            }
        }
    }
    out
}

/// How one `/control` call went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub var: &'static str,
    pub value: i32,
    /// HTTP status (200 = accepted).
    pub status: u16,
}

/// A variable that is not on the preset after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// The camera refused the value (`/control` answered `status`).
    Refused {
        var: &'static str,
        want: i32,
        status: u16,
    },
    /// Accepted, or not sent, but `/status` reports another value.
    Reports {
        var: &'static str,
        want: i32,
        reports: i64,
    },
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Refused { var, want, status } => {
                write!(f, "{var}={want} refused (HTTP {status})")
            }
            Miss::Reports { var, want, reports } => {
                write!(f, "{var}: wanted {want}, /status reports {reports}")
            }
        }
    }
}

/// What the run achieved: the variables not on the preset (empty = on the preset) and the
/// memory for the next run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub misses: Vec<Miss>,
    pub memory: Memory,
}

/// Checks `after` (the `/status` read once the calls in `sent` were made) against the preset.
pub fn confirm(
    name: &str,
    preset: &Preset,
    after: &Status,
    sent: &[Sent],
    memory: Option<&Memory>,
    plan: &Plan,
) -> Outcome {
    let mut misses = Vec::new();
    let mut next = Memory {
        preset: name.to_string(),
        ..Memory::default()
    };
    let sent_now: BTreeSet<&str> = sent.iter().map(|s| s.var).collect();
    for s in sent.iter().filter(|s| s.status != 200) {
        misses.push(Miss::Refused {
            var: s.var,
            want: s.value,
            status: s.status,
        });
    }
    let refused = |var: &str| sent.iter().any(|s| s.var == var && s.status != 200);
    for (var, want) in ordered(preset) {
        match seen(var, want, after) {
            Seen::Moot(_) => {}
            Seen::Value(v) => {
                next.seen.insert(var.name.to_string(), v);
                if v != i64::from(want) && !refused(var.name) {
                    misses.push(Miss::Reports {
                        var: var.name,
                        want,
                        reports: v,
                    });
                }
            }
            Seen::Unknown => {
                let accepted = if sent_now.contains(var.name) {
                    !refused(var.name)
                } else {
                    // Not sent: still there unless the previous run had not placed it or the
                    // camera was reset since (then it would have been sent).
                    !plan.reboot_suspected
                        && memory
                            .and_then(|m| m.accepted.get(var.name))
                            .is_some_and(|v| *v == i64::from(want))
                };
                if accepted {
                    next.accepted.insert(var.name.to_string(), i64::from(want));
                }
            }
        }
    }
    // Keep the firmware's order: framesize first.
    let rank = |var: &str| {
        camvars::CONTROL_VARS
            .iter()
            .position(|v| v.name == var)
            .unwrap_or(usize::MAX)
    };
    misses.sort_by_key(|m| match m {
        Miss::Refused { var, .. } | Miss::Reports { var, .. } => rank(var),
    });
    Outcome {
        misses,
        memory: next,
    }
}

/// How often the timer runs between the switch times, in minutes.
pub const TIMER_EVERY_MINUTES: u32 = 5;

/// The `OnCalendar=` expression for a daily switch at `t` in `zone`.
pub fn on_calendar(t: ClockTime, zone: Tz) -> String {
    format!("*-*-* {:02}:{:02}:00 {}", t.hour, t.minute, zone.name())
}

/// The `daynight.timer.d/schedule.conf` drop-in: the switch times (every distinct time and zone
/// given; cameras may override the schedule), then the periodic run. It replaces the unit's
/// `OnCalendar=` list (the empty assignment resets it).
pub fn timer_dropin(switches: &[(ClockTime, Tz)], source: &str) -> String {
    let mut lines: Vec<String> = switches
        .iter()
        .map(|(t, z)| on_calendar(*t, *z))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    lines.push(format!("*:00/{TIMER_EVERY_MINUTES}"));
    let mut out = format!(
        "# Written by `daynight timer-dropin --write` from DAY_START, NIGHT_START and \
         SCHEDULE_TZ\n# in {source}. Do not edit: change the configuration and run it again.\n\
         [Timer]\nOnCalendar=\n"
    );
    for l in lines {
        out.push_str(&format!("OnCalendar={l}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ct(s: &str) -> ClockTime {
        ClockTime::parse(s).unwrap()
    }

    fn status(pairs: &[(&str, i64)]) -> Status {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn preset(pairs: &[(&str, i32)]) -> Preset {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn due_by_local_time() {
        let (d, n) = (ct("06:00"), ct("18:00"));
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M:%S").unwrap();
        assert_eq!(due_preset(t("05:59:59"), d, n), NIGHT);
        assert_eq!(due_preset(t("06:00:00"), d, n), DAY);
        assert_eq!(due_preset(t("17:59:59"), d, n), DAY);
        assert_eq!(due_preset(t("18:00:00"), d, n), NIGHT);
        assert_eq!(due_preset(t("00:00:00"), d, n), NIGHT);
        // A day that starts after the night (wraps over midnight).
        let (d, n) = (ct("20:00"), ct("04:00"));
        assert_eq!(due_preset(t("23:00:00"), d, n), DAY);
        assert_eq!(due_preset(t("03:59:00"), d, n), DAY);
        assert_eq!(due_preset(t("04:00:00"), d, n), NIGHT);
        assert_eq!(due_preset(t("19:59:00"), d, n), NIGHT);
    }

    #[test]
    fn due_reads_times_in_the_zone() {
        let ist = chrono_tz::Asia::Kolkata;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap();
        let (d, n) = (ct("06:00"), ct("18:00"));
        assert_eq!(due_at(&at("2025-10-12T05:59:00+05:30"), ist, d, n), NIGHT);
        assert_eq!(due_at(&at("2025-10-12T06:00:00+05:30"), ist, d, n), DAY);
        // 00:30 UTC is 06:00 IST.
        assert_eq!(due_at(&at("2025-10-12T00:29:00Z"), ist, d, n), NIGHT);
        assert_eq!(due_at(&at("2025-10-12T00:30:00Z"), ist, d, n), DAY);
        let utc_noon = Utc.with_ymd_and_hms(2025, 10, 12, 12, 0, 0).unwrap();
        // 12:00 UTC is 17:30 IST, 12:30 UTC is 18:00 IST.
        assert_eq!(due_at(&utc_noon, ist, d, n), DAY);
        let later = utc_noon + chrono::Duration::minutes(30);
        assert_eq!(due_at(&later, ist, d, n), NIGHT);
    }

    #[test]
    fn sends_only_differences_framesize_first() {
        let p = preset(&[("quality", 14), ("framesize", 8), ("aec2", 1)]);
        let s = status(&[("framesize", 9), ("quality", 14), ("aec2", 0)]);
        let m = Memory {
            preset: "night".into(),
            ..Memory::default()
        };
        let plan = plan("night", &p, &s, Some(&m), false);
        let got: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["framesize 9 → 8", "aec2 0 → 1"]);
        assert!(!plan.reboot_suspected);
    }

    #[test]
    fn forced_apply_sends_everything() {
        let p = preset(&[("quality", 14), ("framesize", 8), ("vflip", 1)]);
        let s = status(&[("framesize", 8), ("quality", 14)]);
        let plan = plan("night", &p, &s, None, true);
        let got: Vec<String> = plan.changes.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["framesize 8 → 8", "quality 14 → 14", "vflip ? → 1"]);
        assert!(plan.changes.iter().all(|c| c.reason == Reason::Forced));
    }

    #[test]
    fn unreadable_sent_on_preset_change_reboot_or_first_run_only() {
        let p = preset(&[("framesize", 8), ("vflip", 1)]);
        let s = status(&[("framesize", 8)]);
        let vars = |plan: Plan| plan.changes.iter().map(|c| c.var).collect::<Vec<_>>();
        // First run (no memory): vflip goes out.
        assert_eq!(vars(plan("night", &p, &s, None, false)), ["vflip"]);
        // Confirmed by the previous run: nothing.
        let m = Memory {
            preset: "night".into(),
            seen: [("framesize".to_string(), 8)].into(),
            accepted: [("vflip".to_string(), 1)].into(),
        };
        assert!(vars(plan("night", &p, &s, Some(&m), false)).is_empty());
        // The preset changed (the memory is of `day`): vflip again.
        let day = Memory {
            preset: "day".into(),
            ..m.clone()
        };
        assert_eq!(vars(plan("night", &p, &s, Some(&day), false)), ["vflip"]);
        // The camera lost a confirmed value (rebooted): everything that differs, and vflip.
        let rebooted = status(&[("framesize", 5)]);
        let pl = plan("night", &p, &rebooted, Some(&m), false);
        assert!(pl.reboot_suspected);
        assert_eq!(vars(pl), ["framesize", "vflip"]);
        // The previous run's vflip was refused (not in `accepted`): sent again.
        let refused = Memory {
            accepted: BTreeMap::new(),
            ..m.clone()
        };
        assert_eq!(
            vars(plan("night", &p, &s, Some(&refused), false)),
            ["vflip"]
        );
        // The config changed vflip's value: sent again.
        let p0 = preset(&[("framesize", 8), ("vflip", 0)]);
        assert_eq!(vars(plan("night", &p0, &s, Some(&m), false)), ["vflip"]);
    }

    #[test]
    fn no_led_board_and_off_is_satisfied() {
        let off = preset(&[("led_intensity", 0)]);
        let on = preset(&[("led_intensity", 10)]);
        let s = status(&[("led_intensity", -1)]);
        let pl = plan("night", &off, &s, None, true);
        assert!(pl.changes.is_empty());
        assert_eq!(pl.skipped.len(), 1);
        let pl = plan("night", &on, &s, None, false);
        assert_eq!(pl.changes[0].to_string(), "led_intensity -1 → 10");
    }

    #[test]
    fn confirm_reports_refusals_and_mismatches_and_remembers() {
        let p = preset(&[("framesize", 8), ("quality", 14), ("vflip", 1), ("aec2", 1)]);
        let before = status(&[("framesize", 9), ("quality", 10), ("aec2", 0)]);
        let pl = plan("night", &p, &before, None, false);
        let sent = [
            Sent {
                var: "framesize",
                value: 8,
                status: 200,
            },
            Sent {
                var: "quality",
                value: 14,
                status: 500,
            },
            Sent {
                var: "vflip",
                value: 1,
                status: 200,
            },
            Sent {
                var: "aec2",
                value: 1,
                status: 200,
            },
        ];
        // aec2 accepted but the camera still reports 0.
        let after = status(&[("framesize", 8), ("quality", 10), ("aec2", 0)]);
        let out = confirm("night", &p, &after, &sent, None, &pl);
        let misses: Vec<String> = out.misses.iter().map(ToString::to_string).collect();
        assert_eq!(
            misses,
            [
                "quality=14 refused (HTTP 500)",
                "aec2: wanted 1, /status reports 0"
            ]
        );
        assert_eq!(out.memory.preset, "night");
        assert_eq!(
            out.memory.seen,
            [
                ("framesize".to_string(), 8),
                ("quality".to_string(), 10),
                ("aec2".to_string(), 0)
            ]
            .into()
        );
        assert_eq!(out.memory.accepted, [("vflip".to_string(), 1)].into());
        // Round trip through the file format.
        assert_eq!(Memory::parse(&out.memory.render()).unwrap(), out.memory);
    }

    #[test]
    fn confirm_keeps_unreadables_from_a_good_previous_run() {
        let p = preset(&[("framesize", 8), ("vflip", 1)]);
        let s = status(&[("framesize", 8)]);
        let m = Memory {
            preset: "night".into(),
            seen: [("framesize".to_string(), 8)].into(),
            accepted: [("vflip".to_string(), 1)].into(),
        };
        let pl = plan("night", &p, &s, Some(&m), false);
        let out = confirm("night", &p, &s, &[], Some(&m), &pl);
        assert!(out.misses.is_empty());
        assert_eq!(out.memory, m);
    }

    #[test]
    fn memory_parse_errors_name_the_line() {
        assert_eq!(
            Memory::parse("preset=day\nseen.framesize=x\n").unwrap_err(),
            "line 2: `seen.framesize=x` is not KEY=VALUE"
        );
        assert_eq!(
            Memory::parse("preset=day\nbogus.x=1\n").unwrap_err(),
            "line 2: unknown key `bogus.x`"
        );
        assert_eq!(Memory::parse("").unwrap_err(), "no preset= line");
    }

    #[test]
    fn timer_dropin_lists_distinct_switch_times() {
        let ist = chrono_tz::Asia::Kolkata;
        let text = timer_dropin(
            &[
                (ct("06:00"), ist),
                (ct("18:30"), ist),
                (ct("06:00"), ist),
                (ct("07:00"), chrono_tz::Europe::Berlin),
            ],
            "/etc/visdcam",
        );
        let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            lines,
            [
                "[Timer]",
                "OnCalendar=",
                "OnCalendar=*-*-* 06:00:00 Asia/Kolkata",
                "OnCalendar=*-*-* 07:00:00 Europe/Berlin",
                "OnCalendar=*-*-* 18:30:00 Asia/Kolkata",
                "OnCalendar=*:00/5",
            ]
        );
    }
}
