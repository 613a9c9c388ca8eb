//! `visdcam alert`'s decisions: which problems a [`Snapshot`] shows ([`observe`]), the alert
//! state machine that raises each problem once after its threshold and resolves it once when it
//! clears ([`step`]), coalescing what changed in one check into one message per event, the
//! messages' stable JSON body, and the state file (open alerts, drop counters, undelivered
//! messages) that lets the checker run as a fresh process each time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::monitor::Snapshot;

/// What can be wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    CameraDown,
    UploadFailing,
    RamBudgetDrops,
    ClockUnsynced,
    UnitFailed,
    RamDiskFull,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::CameraDown,
        Kind::UploadFailing,
        Kind::RamBudgetDrops,
        Kind::ClockUnsynced,
        Kind::UnitFailed,
        Kind::RamDiskFull,
    ];

    /// The stable name in the JSON body and the state file.
    pub fn id(self) -> &'static str {
        match self {
            Kind::CameraDown => "camera_down",
            Kind::UploadFailing => "upload_failing",
            Kind::RamBudgetDrops => "ram_budget_drops",
            Kind::ClockUnsynced => "clock_unsynced",
            Kind::UnitFailed => "unit_failed",
            Kind::RamDiskFull => "ram_disk_full",
        }
    }

    pub fn from_id(id: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.id() == id)
    }

    /// `camera cam1 down`, for one subject.
    fn phrase(self, subject: &str) -> String {
        match self {
            Kind::CameraDown => format!("camera {subject} down"),
            Kind::UploadFailing => format!("uploads of {subject} failing"),
            Kind::RamBudgetDrops => format!("{subject}: segments dropped (RAM budget)"),
            Kind::ClockUnsynced => "clock not synchronised".into(),
            Kind::UnitFailed => format!("{subject} failed"),
            Kind::RamDiskFull => format!("RAM disk {subject} nearly full"),
        }
    }

    /// `cameras cam1, cam2 down`, for several.
    fn phrase_many(self, subjects: &[&str]) -> String {
        if subjects.len() == 1 {
            return self.phrase(subjects[0]);
        }
        let list = subjects.join(", ");
        match self {
            Kind::CameraDown => format!("cameras {list} down"),
            Kind::UploadFailing => format!("uploads of {list} failing"),
            Kind::RamBudgetDrops => format!("{list}: segments dropped (RAM budget)"),
            Kind::ClockUnsynced => "clock not synchronised".into(),
            Kind::UnitFailed => format!("{list} failed"),
            Kind::RamDiskFull => format!("RAM disks {list} nearly full"),
        }
    }
}

/// When a condition becomes an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub camera_down_s: i64,
    pub upload_failing_s: i64,
    /// How long the clock may stay unsynchronised (a Pi without a real-time clock boots at an
    /// old time and waits for NTP) before it is an alert.
    pub clock_unsynced_s: i64,
    pub ram_disk_percent: u64,
}
/// Drops stop being a problem this long after the last one.
pub const DROPS_QUIET_S: i64 = 900;
/// Alerts of the same kind due within this long (one timer period) are raised together with
/// one that is due now, so cameras failing together make one message.
pub const COALESCE_S: i64 = 60;
/// A raised alert is resolved once its condition has been gone this long, or its threshold if
/// shorter.
pub const RESOLVE_AFTER_MAX_S: i64 = 60;
/// An undelivered message is retried at each check for this long, then given up (logged).
pub const OUTBOX_MAX_AGE_S: i64 = 86_400;
/// The journal line's prefix ([`State::open_line`]).
pub const OPEN_LINE: &str = "open alerts v1: ";
/// At most this many undelivered messages are kept (the oldest go first).
pub const OUTBOX_MAX: usize = 50;

impl Thresholds {
    fn of(&self, kind: Kind) -> i64 {
        match kind {
            Kind::CameraDown => self.camera_down_s,
            Kind::UploadFailing => self.upload_failing_s,
            Kind::ClockUnsynced => self.clock_unsynced_s,
            Kind::RamBudgetDrops | Kind::UnitFailed | Kind::RamDiskFull => 0,
        }
    }
}

/// A problem seen now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: Kind,
    /// The camera, unit or path it concerns (the host for the clock).
    pub subject: String,
    /// Since when, if the data says (else since the checker first saw it).
    pub since: Option<i64>,
    pub detail: String,
}

/// One alert the checker knows: pending (not yet past its threshold) or raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub since: i64,
    pub raised: bool,
    pub detail: String,
    /// A raised alert whose condition is gone: since when (resolved once it stays gone).
    pub clear_since: Option<i64>,
}

/// A message waiting for delivery on one channel (`webhook`, `email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub channel: String,
    pub created: i64,
    pub attempts: u32,
    /// The JSON body ([`Message::json`]).
    pub body: String,
}

/// Everything the checker keeps between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub alerts: BTreeMap<(Kind, String), Open>,
    /// Per camera: drops counted (recorder + uploader) and when they last grew.
    pub drops: BTreeMap<String, (u64, i64)>,
    pub outbox: Vec<Outgoing>,
}

/// Problems a snapshot shows; updates the drop counters kept in `state`.
pub fn observe(s: &Snapshot, state: &mut State, t: &Thresholds) -> Vec<Condition> {
    let now = s.now_unix;
    let mut out = Vec::new();
    for c in &s.cameras {
        if c.config_error.is_some() || !c.watched() {
            continue;
        }
        if let Some(since) = c.down_since(now) {
            let detail = match since {
                Some(t) => format!("no frames since {}", iso(t)),
                None => "the recorder has not reported (is seg@ running?)".to_string(),
            };
            out.push(Condition {
                kind: Kind::CameraDown,
                subject: c.camera.clone(),
                since,
                detail,
            });
        }
        if let Some(u) = c.uploader.as_ref().filter(|u| u.failing_since_unix > 0) {
            out.push(Condition {
                kind: Kind::UploadFailing,
                subject: c.camera.clone(),
                since: Some(u.failing_since_unix),
                detail: u.last_error.clone(),
            });
        }
        let (n, bytes) = [
            c.recorder.map(|r| (r.dropped, r.dropped_bytes)),
            c.uploader.as_ref().map(|u| (u.dropped, u.dropped_bytes)),
        ]
        .into_iter()
        .flatten()
        .fold((0, 0), |(n, b), (dn, db)| (n + dn, b + db));
        let entry = state.drops.entry(c.camera.clone()).or_insert((n, 0));
        // Fewer than before: the counters restarted (the RAM disk was emptied).
        let grew = if n < entry.0 { n > 0 } else { n > entry.0 };
        if grew {
            entry.1 = now;
        }
        entry.0 = n;
        if entry.1 > 0 && now - entry.1 < DROPS_QUIET_S {
            out.push(Condition {
                kind: Kind::RamBudgetDrops,
                subject: c.camera.clone(),
                since: Some(entry.1),
                detail: format!(
                    "{n} segments ({}) dropped unuploaded so far; the last at {}",
                    crate::upload::human_bytes(bytes),
                    iso(entry.1)
                ),
            });
        }
    }
    state
        .drops
        .retain(|cam, _| s.cameras.iter().any(|c| &c.camera == cam));
    if s.clock_synced == Some(false) {
        out.push(Condition {
            kind: Kind::ClockUnsynced,
            subject: s.host.clone(),
            since: None,
            detail: "NTP has not synchronised the clock; uploads wait for it (REQUIRE_CLOCK_SYNC)"
                .into(),
        });
    }
    for u in s.units().filter(|u| u.failed()) {
        out.push(Condition {
            kind: Kind::UnitFailed,
            subject: u.unit.clone(),
            since: None,
            detail: format!("{} ({})", u.active_state, u.sub_state),
        });
    }
    if let Some(d) = s
        .disk
        .as_ref()
        .filter(|d| d.used_percent() >= t.ram_disk_percent)
    {
        out.push(Condition {
            kind: Kind::RamDiskFull,
            subject: d.path.clone(),
            since: None,
            detail: format!(
                "{} % used, {} free",
                d.used_percent(),
                crate::upload::human_bytes(d.free_bytes)
            ),
        });
    }
    out
}

/// An alert in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub kind: Kind,
    pub subject: String,
    pub since: i64,
    pub detail: String,
}

/// What one check changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub raised: Vec<Alert>,
    pub resolved: Vec<Alert>,
}

/// Advances the state machine by one check at `now`: a condition is pending from when it
/// started (or was first seen) and raised once past its threshold, together with pending ones
/// of its kind due within [`COALESCE_S`]; a raised alert whose condition has been gone for its
/// threshold (at most [`RESOLVE_AFTER_MAX_S`]) is resolved once, together with the other
/// raised alerts of its kind whose conditions are gone; a pending one that clears is forgotten
/// silently. The wait before a resolve keeps a flapping camera from raising and resolving
/// over and over, and lets cameras that come back together resolve in one message.
pub fn step(state: &mut State, conditions: Vec<Condition>, now: i64, t: &Thresholds) -> Changes {
    let mut changes = Changes::default();
    let mut seen = std::collections::BTreeSet::new();
    for c in conditions {
        let key = (c.kind, c.subject.clone());
        seen.insert(key.clone());
        let open = state.alerts.entry(key).or_insert(Open {
            since: c.since.unwrap_or(now),
            raised: false,
            detail: String::new(),
            clear_since: None,
        });
        open.clear_since = None;
        if let Some(since) = c.since {
            if !open.raised {
                open.since = since;
            }
        }
        open.detail = c.detail;
    }
    let gone: Vec<(Kind, String)> = state
        .alerts
        .keys()
        .filter(|k| !seen.contains(*k))
        .cloned()
        .collect();
    for key in gone {
        let open = state.alerts.get_mut(&key).expect("listed above");
        if open.raised {
            open.clear_since.get_or_insert(now);
        } else {
            state.alerts.remove(&key);
        }
    }
    let resolve_kinds: Vec<Kind> = state
        .alerts
        .iter()
        .filter(|(k, o)| {
            o.clear_since
                .is_some_and(|c| now - c >= t.of(k.0).min(RESOLVE_AFTER_MAX_S))
        })
        .map(|(k, _)| k.0)
        .collect();
    let resolving: Vec<(Kind, String)> = state
        .alerts
        .iter()
        .filter(|(k, o)| o.clear_since.is_some() && resolve_kinds.contains(&k.0))
        .map(|(k, _)| k.clone())
        .collect();
    for key in resolving {
        let open = state.alerts.remove(&key).expect("listed above");
        changes.resolved.push(Alert {
            kind: key.0,
            subject: key.1,
            since: open.since,
            detail: open.detail,
        });
    }
    let due_kinds: Vec<Kind> = state
        .alerts
        .iter()
        .filter(|(k, o)| !o.raised && now - o.since >= t.of(k.0))
        .map(|(k, _)| k.0)
        .collect();
    for ((kind, subject), open) in state.alerts.iter_mut() {
        if open.raised || !due_kinds.contains(kind) {
            continue;
        }
        if now - open.since + COALESCE_S >= t.of(*kind) {
            open.raised = true;
            changes.raised.push(Alert {
                kind: *kind,
                subject: subject.clone(),
                since: open.since,
                detail: open.detail.clone(),
            });
        }
    }
    changes
}

/// Which event a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Raised,
    Resolved,
    Test,
}

impl Event {
    pub fn id(self) -> &'static str {
        match self {
            Event::Raised => "raised",
            Event::Resolved => "resolved",
            Event::Test => "test",
        }
    }
}

/// One message to deliver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub event: Event,
    pub host: String,
    pub time: i64,
    pub title: String,
    pub text: String,
    pub alerts: Vec<Alert>,
}

fn iso(t: i64) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn local(t: i64, tz: Tz) -> String {
    DateTime::<Utc>::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

fn summary(alerts: &[Alert]) -> String {
    let mut by_kind: BTreeMap<Kind, Vec<&str>> = BTreeMap::new();
    for a in alerts {
        by_kind.entry(a.kind).or_default().push(&a.subject);
    }
    by_kind
        .into_iter()
        .map(|(k, subjects)| k.phrase_many(&subjects))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The messages for one check's changes: at most one for what was raised and one for what
/// was resolved, each listing every alert it concerns. Times in the text are in `tz`.
pub fn messages(changes: &Changes, host: &str, now: i64, tz: Tz) -> Vec<Message> {
    let mut out = Vec::new();
    if !changes.raised.is_empty() {
        let mut text = String::new();
        for a in &changes.raised {
            let _ = writeln!(
                text,
                "{} since {} ({} min): {}",
                a.kind.phrase(&a.subject),
                local(a.since, tz),
                (now - a.since).max(0) / 60,
                a.detail
            );
        }
        out.push(Message {
            event: Event::Raised,
            host: host.into(),
            time: now,
            title: format!("visdcam on {host}: {}", summary(&changes.raised)),
            text: text.trim_end().into(),
            alerts: changes.raised.clone(),
        });
    }
    if !changes.resolved.is_empty() {
        let mut text = String::new();
        for a in &changes.resolved {
            let _ = writeln!(
                text,
                "resolved: {} (since {}, {} min)",
                a.kind.phrase(&a.subject),
                local(a.since, tz),
                (now - a.since).max(0) / 60
            );
        }
        out.push(Message {
            event: Event::Resolved,
            host: host.into(),
            time: now,
            title: format!(
                "visdcam on {host}: resolved: {}",
                summary(&changes.resolved)
            ),
            text: text.trim_end().into(),
            alerts: changes.resolved.clone(),
        });
    }
    out
}

/// The message `visdcam alert test` sends.
pub fn test_message(host: &str, now: i64) -> Message {
    Message {
        event: Event::Test,
        host: host.into(),
        time: now,
        title: format!("visdcam on {host}: test alert"),
        text: "This is a test from `visdcam alert test`: alerts reach you.".into(),
        alerts: Vec::new(),
    }
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Message {
    /// The stable JSON body (docs/guide/monitoring.md): `version`, `event`, `host`, `time`,
    /// `title`, `message`, `alerts` (`kind`, `subject`, `since`, `detail`). Fields may be added,
    /// never renamed or removed.
    pub fn json(&self) -> String {
        let alerts: Vec<String> = self
            .alerts
            .iter()
            .map(|a| {
                format!(
                    "{{\"kind\":{},\"subject\":{},\"since\":{},\"detail\":{}}}",
                    json_str(a.kind.id()),
                    json_str(&a.subject),
                    json_str(&iso(a.since)),
                    json_str(&a.detail)
                )
            })
            .collect();
        format!(
            "{{\"version\":1,\"event\":{},\"host\":{},\"time\":{},\"title\":{},\"message\":{},\"alerts\":[{}]}}",
            json_str(self.event.id()),
            json_str(&self.host),
            json_str(&iso(self.time)),
            json_str(&self.title),
            json_str(&self.text),
            alerts.join(",")
        )
    }
}

/// Queues `body` for each channel, keeping the outbox within [`OUTBOX_MAX`].
pub fn enqueue(state: &mut State, channels: &[&str], body: &str, now: i64) {
    for ch in channels {
        state.outbox.push(Outgoing {
            channel: (*ch).into(),
            created: now,
            attempts: 0,
            body: body.into(),
        });
    }
    let excess = state.outbox.len().saturating_sub(OUTBOX_MAX);
    state.outbox.drain(..excess);
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn unesc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some(o) => out.push(o),
            None => {}
        }
    }
    out
}

impl State {
    /// The state file: one tab-separated record a line (`alert`, `drops`, `outbox`).
    pub fn render(&self) -> String {
        let mut out = String::from("# visdcam alert state v1\n");
        for ((kind, subject), o) in &self.alerts {
            let _ = writeln!(
                out,
                "alert\t{}\t{}\t{}\t{}\t{}\t{}",
                kind.id(),
                esc(subject),
                o.since,
                u8::from(o.raised),
                esc(&o.detail),
                o.clear_since.unwrap_or(0)
            );
        }
        for (cam, (n, last)) in &self.drops {
            let _ = writeln!(out, "drops\t{}\t{n}\t{last}", esc(cam));
        }
        for m in &self.outbox {
            let _ = writeln!(
                out,
                "outbox\t{}\t{}\t{}\t{}",
                esc(&m.channel),
                m.created,
                m.attempts,
                esc(&m.body)
            );
        }
        out
    }

    /// Reads a state file back; lines it cannot read are skipped (a damaged file loses those
    /// records, never the checker).
    pub fn parse(text: &str) -> State {
        let mut s = State::default();
        for line in text.lines() {
            let f: Vec<&str> = line.split('\t').collect();
            match f.as_slice() {
                ["alert", kind, subject, since, raised, detail, rest @ ..] if rest.len() <= 1 => {
                    if let (Some(kind), Ok(since)) = (Kind::from_id(kind), since.parse()) {
                        let clear_since = rest
                            .first()
                            .and_then(|c| c.parse().ok())
                            .filter(|c: &i64| *c > 0);
                        s.alerts.insert(
                            (kind, unesc(subject)),
                            Open {
                                since,
                                raised: *raised == "1",
                                detail: unesc(detail),
                                clear_since,
                            },
                        );
                    }
                }
                ["drops", cam, n, last] => {
                    if let (Ok(n), Ok(last)) = (n.parse(), last.parse()) {
                        s.drops.insert(unesc(cam), (n, last));
                    }
                }
                ["outbox", channel, created, attempts, body] => {
                    if let (Ok(created), Ok(attempts)) = (created.parse(), attempts.parse()) {
                        s.outbox.push(Outgoing {
                            channel: unesc(channel),
                            created,
                            attempts,
                            body: unesc(body),
                        });
                    }
                }
                _ => {}
            }
        }
        s
    }

    /// The journal line that carries the raised alerts across a reboot (`/run` is emptied):
    /// the checker prints it whenever the set changes, and a checker without a state file
    /// starts from the newest one ([`State::from_open_line`]).
    pub fn open_line(&self) -> String {
        let raised = State {
            alerts: self
                .alerts
                .iter()
                .filter(|(_, o)| o.raised)
                .map(|(k, o)| (k.clone(), o.clone()))
                .collect(),
            ..State::default()
        };
        let text = raised.render();
        let body = text
            .lines()
            .filter(|l| l.starts_with("alert\t"))
            .collect::<Vec<_>>()
            .join("\n");
        format!("{OPEN_LINE}{}", esc(&body))
    }

    /// The state a fresh checker starts from: the raised alerts of the newest [`open_line`]
    /// among `journal` lines (newest first); empty without one.
    ///
    /// [`open_line`]: State::open_line
    pub fn from_open_line(journal: &str) -> State {
        journal
            .lines()
            .find_map(|l| l.strip_prefix(OPEN_LINE))
            .map(|rest| State::parse(&unesc(rest)))
            .unwrap_or_default()
    }

    /// Raised alerts, for `visdcam top`.
    pub fn raised(&self) -> Vec<(Kind, &str, &Open)> {
        self.alerts
            .iter()
            .filter(|(_, o)| o.raised)
            .map(|((k, s), o)| (*k, s.as_str(), o))
            .collect()
    }
}

#[cfg(test)]
mod tests;
