//! The upload shaper's traffic-control plan, as data: the `tc` commands that install and remove
//! it, and parsers for what `tc` and `/proc` print about the live state. No I/O: `net-shaper`
//! runs the commands and feeds the output back in.
//!
//! The tree, on one device (`7664` is "vd" in ASCII, so an operator reading `tc qdisc show`
//! can tell visdcam's root from anyone else's):
//!
//! ```text
//! root 7664: htb default 10
//!  ├─ class 7664:10  unshaped (10 Gbit/s)  ── leaf 7665: fq_codel | pfifo     everything else
//!  └─ class 7664:20  capped (SHAPER_RATE)   ── leaf 7666: fq_codel | pfifo     DSCP-marked uploads
//! filters on 7664:  u32 ip tos <dscp<<2>/0xfc → 7664:20,  u32 ip6 priority <dscp<<2>/0xfc → 7664:20
//! ```
//!
//! The two classes have no common parent, so neither borrows from the other: the capped class
//! never exceeds its rate, and the unshaped class never waits for it.

use std::fmt;

use crate::error::{Classify, ErrorKind};

/// Rates in bits per second from tc-style text (`3mbit`, `500kbit`, `375kbps` = bytes/s,
/// `64000`). The configuration validates `SHAPER_RATE` with this same function.
pub use crate::config::parse_rate;

/// Major number of visdcam's root qdisc: `0x7664` is "vd".
pub const ROOT_MAJOR: u16 = 0x7664;
/// The root qdisc's handle as `tc` prints it.
pub const ROOT_HANDLE: &str = "7664:";
/// The default class: everything that is not marked.
pub const UNSHAPED_CLASS: &str = "7664:10";
/// The capped class: traffic carrying the upload DSCP mark.
pub const CAPPED_CLASS: &str = "7664:20";
/// Leaf qdisc handles under the two classes.
pub const UNSHAPED_LEAF: &str = "7665:";
pub const CAPPED_LEAF: &str = "7666:";
/// Rate of the "unshaped" class: far above any link a Raspberry Pi has, so it never limits.
pub const UNSHAPED_RATE_BPS: u64 = 10_000_000_000;
/// Largest frame on an Ethernet-like link (1500 + 14 header bytes), in bytes.
pub const FRAME_BYTES: u64 = 1514;
/// DSCP field within the TOS / traffic-class byte (the low two bits are ECN).
pub const DSCP_MASK: u8 = 0xfc;

/// Kernel qdisc kinds this plan can leave as they were (classless, options round-trip
/// through `tc`'s own printing). A root of any other kind is refused rather than lost.
const RESTORABLE_KINDS: &[&str] = &[
    "tbf",
    "pfifo",
    "bfifo",
    "pfifo_fast",
    "fq_codel",
    "codel",
    "sfq",
    "noqueue",
];

/// Why a plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Not a usable interface name.
    BadDevice(String),
    /// The DSCP mark cannot tell uploads apart (0 is every unmarked packet).
    BadDscp(u8),
    /// A rate outside what the plan supports.
    BadRate(u64),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::BadDevice(d) => write!(
                f,
                "`{d}` is not an interface name (1 to 15 printable ASCII characters, no spaces, \
                 `/`, `:`, `#`, quotes or `\\`)"
            ),
            PlanError::BadDscp(0) => write!(
                f,
                "DSCP 0 (cs0) is what every unmarked packet carries, so it cannot single out \
                 uploads; set UPLOAD_DSCP to another class (cs1 is the usual one)"
            ),
            PlanError::BadDscp(d) => write!(f, "DSCP {d} is out of range (1 to 63)"),
            PlanError::BadRate(r) => write!(
                f,
                "rate {r} bit/s is out of range (8kbit to {})",
                format_rate(UNSHAPED_RATE_BPS)
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl Classify for PlanError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// Checks an interface name the way the kernel does (`dev_valid_name`: 1 to 15 bytes, not `.`
/// or `..`, no whitespace, `/` or `:`), and refuses what the kernel allows but a `tc -batch`
/// line would read differently: `#` (the rest of the line is a comment), `"` and `'` (quotes
/// join words), `\` (escapes, line continuation), control characters and non-ASCII.
pub fn validate_device(name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_graphic())
        && !name
            .chars()
            .any(|c| matches!(c, '/' | ':' | '#' | '"' | '\'' | '\\'));
    if ok {
        Ok(())
    } else {
        Err(PlanError::BadDevice(name.to_string()))
    }
}

/// Leaf qdisc kind under both classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    /// Fair queueing with CoDel: the choice wherever the kernel has it.
    FqCodel,
    /// Plain packet FIFO: the fallback for kernels without `fq_codel`.
    Fifo,
}

impl Leaf {
    /// The `tc` kind name.
    pub fn kind(self) -> &'static str {
        match self {
            Leaf::FqCodel => "fq_codel",
            Leaf::Fifo => "pfifo",
        }
    }
}

/// One `tc` invocation's arguments (without the leading `tc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcCommand(pub Vec<String>);

impl TcCommand {
    fn new(args: &[&str]) -> TcCommand {
        TcCommand(args.iter().map(|s| s.to_string()).collect())
    }

    fn push(mut self, args: &[&str]) -> TcCommand {
        self.0.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn args(&self) -> &[String] {
        &self.0
    }

    /// Whether this command creates a leaf qdisc of the given kind.
    pub fn creates_leaf(&self, kind: &str) -> bool {
        self.0.first().map(String::as_str) == Some("qdisc")
            && self.0.iter().any(|a| a == "parent")
            && self.0.iter().any(|a| a == kind)
    }
}

impl fmt::Display for TcCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

/// The text `tc -batch -` reads: one command per line.
pub fn batch_text(cmds: &[TcCommand]) -> String {
    cmds.iter().map(|c| format!("{c}\n")).collect()
}

/// What to shape: marked traffic on one device, capped at one rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaper {
    dev: String,
    rate_bps: u64,
    dscp: u8,
}

impl Shaper {
    pub fn new(dev: &str, rate_bps: u64, dscp: u8) -> Result<Shaper, PlanError> {
        validate_device(dev)?;
        if dscp == 0 || dscp > 63 {
            return Err(PlanError::BadDscp(dscp));
        }
        if !(8_000..=UNSHAPED_RATE_BPS).contains(&rate_bps) {
            return Err(PlanError::BadRate(rate_bps));
        }
        Ok(Shaper {
            dev: dev.to_string(),
            rate_bps,
            dscp,
        })
    }

    pub fn dev(&self) -> &str {
        &self.dev
    }

    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    pub fn dscp(&self) -> u8 {
        self.dscp
    }

    /// The TOS / traffic-class byte value that carries this DSCP.
    pub fn tos(&self) -> u8 {
        self.dscp << 2
    }

    /// Commands that build the tree. `replace_ours`: our root is already installed and is
    /// deleted first (HTB cannot change a root in place), so a second apply yields the same
    /// tree as the first. The root goes in with `replace`, so whatever root was there is
    /// swapped out in one step and traffic never meets a missing qdisc.
    pub fn apply_commands(&self, leaf: Leaf, replace_ours: bool) -> Vec<TcCommand> {
        let dev = self.dev.as_str();
        let tos = format!("{:#04x}", self.tos());
        let mask = format!("{DSCP_MASK:#04x}");
        let mut cmds = Vec::new();
        if replace_ours {
            cmds.push(TcCommand::new(&[
                "qdisc",
                "del",
                "dev",
                dev,
                "root",
                "handle",
                ROOT_HANDLE,
            ]));
        }
        cmds.push(TcCommand::new(&[
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "handle",
            ROOT_HANDLE,
            "htb",
            "default",
            "10",
        ]));
        for (class, rate) in [
            (UNSHAPED_CLASS, UNSHAPED_RATE_BPS),
            (CAPPED_CLASS, self.rate_bps),
        ] {
            let rate_s = format!("{rate}bit");
            let burst = burst_bytes(rate).to_string();
            let quantum = FRAME_BYTES.to_string();
            cmds.push(TcCommand::new(&[
                "class",
                "add",
                "dev",
                dev,
                "parent",
                ROOT_HANDLE,
                "classid",
                class,
                "htb",
                "rate",
                &rate_s,
                "burst",
                &burst,
                "cburst",
                &burst,
                "quantum",
                &quantum,
            ]));
        }
        for (class, handle, capped) in [
            (UNSHAPED_CLASS, UNSHAPED_LEAF, false),
            (CAPPED_CLASS, CAPPED_LEAF, true),
        ] {
            let base = TcCommand::new(&[
                "qdisc", "add", "dev", dev, "parent", class, "handle", handle,
            ]);
            cmds.push(match (leaf, capped) {
                (Leaf::FqCodel, false) => base.push(&["fq_codel"]),
                (Leaf::FqCodel, true) => {
                    let (target, interval) = codel_times_us(self.rate_bps);
                    base.push(&[
                        "fq_codel",
                        "target",
                        &format!("{target}us"),
                        "interval",
                        &format!("{interval}us"),
                    ])
                }
                (Leaf::Fifo, false) => base.push(&["pfifo"]),
                (Leaf::Fifo, true) => {
                    base.push(&["pfifo", "limit", &fifo_limit(self.rate_bps).to_string()])
                }
            });
        }
        cmds.push(TcCommand::new(&[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            ROOT_HANDLE,
            "protocol",
            "ip",
            "prio",
            "1",
            "u32",
            "match",
            "ip",
            "tos",
            &tos,
            &mask,
            "flowid",
            CAPPED_CLASS,
        ]));
        cmds.push(TcCommand::new(&[
            "filter",
            "add",
            "dev",
            dev,
            "parent",
            ROOT_HANDLE,
            "protocol",
            "ipv6",
            "prio",
            "2",
            "u32",
            "match",
            "ip6",
            "priority",
            &tos,
            &mask,
            "flowid",
            CAPPED_CLASS,
        ]));
        cmds
    }

    /// One paragraph saying what the plan does, for `status` and logs.
    pub fn describe(&self) -> String {
        format!(
            "dev {}: traffic marked DSCP {} ({}, TOS {:#04x}/{:#04x}) goes to class {} capped \
             at {}; everything else goes to class {} (unshaped)",
            self.dev,
            self.dscp,
            dscp_name(self.dscp),
            self.tos(),
            DSCP_MASK,
            CAPPED_CLASS,
            format_rate(self.rate_bps),
            UNSHAPED_CLASS,
        )
    }
}

/// HTB burst: one millisecond at the rate, but never less than two full frames.
pub fn burst_bytes(rate_bps: u64) -> u64 {
    (rate_bps / 8 / 1000).max(2 * FRAME_BYTES)
}

/// Packet limit of the fallback FIFO under the capped class: about 250 ms of traffic at the
/// rate (a deeper queue only adds delay to the uploads), 16 to 1000 packets.
pub fn fifo_limit(rate_bps: u64) -> u64 {
    let bytes = rate_bps / 8 / 4;
    bytes.div_ceil(FRAME_BYTES).clamp(16, 1000)
}

/// CoDel target and interval (µs) for the capped class: the default 5 ms target is shorter
/// than one frame's transmission time at low rates, so stretch it to 1.5 frame times there and
/// lengthen the interval by the same amount.
pub fn codel_times_us(rate_bps: u64) -> (u64, u64) {
    let frame_us = (FRAME_BYTES * 8 * 1_000_000).div_ceil(rate_bps.max(1));
    let target = (frame_us * 3 / 2).max(5_000);
    (target, 100_000 + (target - 5_000))
}

/// `cs1`, `af41`, `ef` or the number.
pub fn dscp_name(dscp: u8) -> String {
    match dscp {
        46 => "ef".to_string(),
        d if d % 8 == 0 => format!("cs{}", d / 8),
        d if (1..=4).contains(&(d / 8)) && d % 2 == 0 && (1..=3).contains(&((d % 8) / 2)) => {
            format!("af{}{}", d / 8, (d % 8) / 2)
        }
        d => d.to_string(),
    }
}

/// `3mbit`, `500kbit`, `10gbit`, `64123bit`.
pub fn format_rate(bps: u64) -> String {
    for (div, unit) in [
        (1_000_000_000, "gbit"),
        (1_000_000, "mbit"),
        (1_000, "kbit"),
    ] {
        if bps >= div && bps.is_multiple_of(div) {
            return format!("{}{unit}", bps / div);
        }
    }
    format!("{bps}bit")
}

/// The root qdisc that was on the device before `apply`, kept so `clear` can put it back:
/// its handle, kind and options in `tc` argument form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorRoot {
    pub handle: String,
    pub kind: String,
    pub options: Vec<String>,
}

impl PriorRoot {
    /// One line for the state file: `handle kind options...`.
    pub fn to_line(&self) -> String {
        let mut parts = vec![self.handle.clone(), self.kind.clone()];
        parts.extend(self.options.iter().cloned());
        parts.join(" ") + "\n"
    }

    pub fn from_line(text: &str) -> Result<PriorRoot, String> {
        let mut it = text.split_whitespace();
        let (Some(handle), Some(kind)) = (it.next(), it.next()) else {
            return Err("expected `handle kind [options]`".to_string());
        };
        if !handle.ends_with(':') || !RESTORABLE_KINDS.contains(&kind) {
            return Err(format!("`{handle} {kind}` is not a restorable root qdisc"));
        }
        Ok(PriorRoot {
            handle: handle.to_string(),
            kind: kind.to_string(),
            options: it.map(str::to_string).collect(),
        })
    }

    /// `tc` arguments that put this root back.
    pub fn restore_command(&self, dev: &str) -> TcCommand {
        TcCommand::new(&[
            "qdisc",
            "replace",
            "dev",
            dev,
            "root",
            "handle",
            &self.handle,
            &self.kind,
        ])
        .push(&self.options.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

impl fmt::Display for PriorRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.handle)?;
        for o in &self.options {
            write!(f, " {o}")?;
        }
        Ok(())
    }
}

/// Command that removes visdcam's root (and with it every class, leaf and filter). The kernel
/// checks the handle, so this never deletes someone else's root.
pub fn remove_command(dev: &str) -> TcCommand {
    TcCommand::new(&["qdisc", "del", "dev", dev, "root", "handle", ROOT_HANDLE])
}

/// Commands that take the device back to the root it had before `apply`, given what is there
/// now. Used by `clear` and to roll back a failed `apply`. A prior root goes back with
/// `replace`, which swaps ours out in one step; someone else's root installed meanwhile is
/// left alone.
pub fn restore_commands(dev: &str, live: &RootState, prior: Option<&PriorRoot>) -> Vec<TcCommand> {
    match (live, prior) {
        (RootState::Ours, Some(p)) => vec![p.restore_command(dev)],
        (RootState::Ours, None) => vec![remove_command(dev)],
        (RootState::KernelDefault { .. }, Some(p)) => vec![p.restore_command(dev)],
        _ => Vec::new(),
    }
}

/// Packet and byte counters as `tc -s` prints them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes: u64,
    pub packets: u64,
    pub drops: u64,
    pub overlimits: u64,
    pub requeues: u64,
}

/// One line of `tc [-s] qdisc show dev D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub kind: String,
    pub handle: String,
    /// `None` for the root qdisc.
    pub parent: Option<String>,
    /// Everything after `refcnt N` on the first line.
    pub options: Vec<String>,
    pub counters: Option<Counters>,
}

/// One entry of `tc [-s] class show dev D`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub kind: String,
    pub classid: String,
    pub parent: Option<String>,
    pub leaf: Option<String>,
    /// The `rate` option as printed (`3Mbit`).
    pub rate: Option<String>,
    pub counters: Option<Counters>,
}

/// Output of `tc` that does not look the way it has for many years.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub text: String,
    pub why: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unexpected tc output at line {}: {} (`{}`)",
            self.line, self.why, self.text
        )
    }
}

impl std::error::Error for ParseError {}

impl Classify for ParseError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Fatal
    }
}

/// Parses ` Sent 123 bytes 4 pkt (dropped 0, overlimits 7 requeues 0)`.
fn parse_sent(line: &str) -> Option<Counters> {
    let t: Vec<&str> = line
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|s| !s.is_empty())
        .collect();
    if t.first() != Some(&"Sent") {
        return None;
    }
    let after = |key: &str| -> Option<u64> {
        let i = t.iter().position(|w| *w == key)?;
        t.get(i + 1)?.parse().ok()
    };
    Some(Counters {
        bytes: t.get(1)?.parse().ok()?,
        packets: t.get(3)?.parse().ok()?,
        drops: after("dropped")?,
        overlimits: after("overlimits")?,
        requeues: after("requeues").unwrap_or(0),
    })
}

/// One entry of `tc` output: the header line (1-based number and text) and its indented
/// continuation lines.
struct Entry<'a> {
    lineno: usize,
    line: &'a str,
    more: Vec<&'a str>,
}

impl Entry<'_> {
    fn counters(&self) -> Option<Counters> {
        self.more.iter().find_map(|l| parse_sent(l))
    }
}

/// Splits `tc` output into entries whose header line starts with `word`.
fn entries<'a>(text: &'a str, word: &str) -> Result<Vec<Entry<'a>>, ParseError> {
    let mut out: Vec<Entry<'a>> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let bad = |why| ParseError {
            line: i + 1,
            text: line.to_string(),
            why,
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            match out.last_mut() {
                Some(e) => e.more.push(line),
                None => return Err(bad("continuation line before any entry")),
            }
        } else if line.split_whitespace().next() == Some(word) {
            out.push(Entry {
                lineno: i + 1,
                line,
                more: Vec::new(),
            });
        } else {
            return Err(bad("expected an entry line"));
        }
    }
    Ok(out)
}

/// Header fields shared by qdisc and class lines.
struct Header<'a> {
    kind: &'a str,
    id: &'a str,
    parent: Option<String>,
    rest: Vec<&'a str>,
}

fn header<'a>(e: &Entry<'a>) -> Result<Header<'a>, ParseError> {
    let bad = |why| ParseError {
        line: e.lineno,
        text: e.line.to_string(),
        why,
    };
    let t: Vec<&'a str> = e.line.split_whitespace().collect();
    if t.len() < 4 {
        return Err(bad("too few fields"));
    }
    let (kind, id) = (t[1], t[2]);
    if !id.contains(':') {
        return Err(bad("the id is not `major:minor`"));
    }
    let (parent, rest) = match t[3] {
        "root" => (None, &t[4..]),
        "parent" => {
            let p = t.get(4).ok_or_else(|| bad("`parent` without a value"))?;
            (Some(p.to_string()), &t[5..])
        }
        _ => return Err(bad("expected `root` or `parent`")),
    };
    Ok(Header {
        kind,
        id,
        parent,
        rest: rest.to_vec(),
    })
}

/// Parses `tc [-s] qdisc show dev D` (text; iproute2 prints the same since Linux 2.6).
pub fn parse_qdiscs(text: &str) -> Result<Vec<Qdisc>, ParseError> {
    entries(text, "qdisc")?
        .into_iter()
        .map(|e| {
            let mut h = header(&e)?;
            if h.rest.first() == Some(&"refcnt") {
                h.rest.drain(..h.rest.len().min(2));
            }
            Ok(Qdisc {
                kind: h.kind.to_string(),
                handle: h.id.to_string(),
                parent: h.parent,
                options: h.rest.iter().map(|s| s.to_string()).collect(),
                counters: e.counters(),
            })
        })
        .collect()
}

/// Parses `tc [-s] class show dev D`. (iproute2 6.1 prints HTB classes as text even with `-j`,
/// so text is the one format parsed here.)
pub fn parse_classes(text: &str) -> Result<Vec<Class>, ParseError> {
    entries(text, "class")?
        .into_iter()
        .map(|e| {
            let h = header(&e)?;
            let after = |key: &str| {
                let i = h.rest.iter().position(|w| *w == key)?;
                h.rest.get(i + 1).map(|s| s.to_string())
            };
            Ok(Class {
                kind: h.kind.to_string(),
                classid: h.id.to_string(),
                leaf: after("leaf"),
                rate: after("rate"),
                parent: h.parent.clone(),
                counters: e.counters(),
            })
        })
        .collect()
}

/// What is at the root of the device now, and what `apply` may do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootState {
    /// visdcam's tree is installed.
    Ours,
    /// The kernel's own default (handle `0:`): deleting ours brings it back by itself.
    KernelDefault { kind: String },
    /// Someone's classless root that `clear` can put back as it was.
    Restorable(PriorRoot),
    /// Someone's root that `clear` could not put back (classful, or a kind whose options do not
    /// round-trip): `apply` refuses to replace it.
    Foreign { kind: String, handle: String },
}

/// Classifies the device's root qdisc from its parsed qdisc list.
pub fn classify_root(qdiscs: &[Qdisc]) -> RootState {
    let Some(root) = qdiscs.iter().find(|q| q.parent.is_none()) else {
        // Devices always have a root; none listed means the kernel's implicit default.
        return RootState::KernelDefault {
            kind: "noqueue".to_string(),
        };
    };
    if root.kind == "htb" && root.handle == ROOT_HANDLE {
        return RootState::Ours;
    }
    if root.handle == "0:" {
        return RootState::KernelDefault {
            kind: root.kind.clone(),
        };
    }
    let major = root.handle.trim_end_matches(':');
    let has_children = qdiscs.iter().any(|q| {
        q.parent
            .as_deref()
            .and_then(|p| p.split_once(':'))
            .is_some_and(|(m, _)| m == major)
    });
    if has_children || !RESTORABLE_KINDS.contains(&root.kind.as_str()) {
        return RootState::Foreign {
            kind: root.kind.clone(),
            handle: root.handle.clone(),
        };
    }
    let options = match root.kind.as_str() {
        // Read-only parameters: the kind alone recreates it.
        "pfifo_fast" | "noqueue" => Vec::new(),
        _ => restorable_options(&root.options),
    };
    RootState::Restorable(PriorRoot {
        handle: root.handle.clone(),
        kind: root.kind.clone(),
        options,
    })
}

/// `tc` prints packet limits as `1000p` but parses them as plain numbers.
fn restorable_options(printed: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(printed.len());
    let mut prev_limit = false;
    for o in printed {
        let v = match o.strip_suffix('p') {
            Some(n) if prev_limit && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                n.to_string()
            }
            _ => o.clone(),
        };
        prev_limit = o == "limit";
        out.push(v);
    }
    out
}

/// The live shaper as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveState {
    pub root: RootState,
    /// Leaf qdisc kinds under the unshaped and the capped class, if installed.
    pub leaves: Vec<(String, String)>,
    /// visdcam's HTB classes, in classid order.
    pub classes: Vec<Class>,
}

/// Combines parsed qdiscs and classes into what `status` shows.
pub fn live_state(qdiscs: &[Qdisc], classes: &[Class]) -> LiveState {
    let root = classify_root(qdiscs);
    let ours = root == RootState::Ours;
    let mut mine: Vec<Class> = if ours {
        classes
            .iter()
            .filter(|c| c.kind == "htb" && c.classid.starts_with(ROOT_HANDLE))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    mine.sort_by(|a, b| a.classid.cmp(&b.classid));
    let leaves = if ours {
        qdiscs
            .iter()
            .filter_map(|q| {
                let p = q.parent.as_deref()?;
                (p == UNSHAPED_CLASS || p == CAPPED_CLASS).then(|| (p.to_string(), q.kind.clone()))
            })
            .collect()
    } else {
        Vec::new()
    };
    LiveState {
        root,
        leaves,
        classes: mine,
    }
}

/// Renders `status`: the plan, whether it is installed, the leaf kind and per-class counters.
pub fn render_status(plan: &Shaper, live: &LiveState, leaf_plan: &[TcCommand]) -> String {
    let mut s = String::new();
    s.push_str(&format!("plan: {}\n", plan.describe()));
    match &live.root {
        RootState::Ours => {
            let mut kinds: Vec<&str> = live.leaves.iter().map(|(_, k)| k.as_str()).collect();
            kinds.dedup();
            let leaf = match kinds.as_slice() {
                [] => "none".to_string(),
                ["fq_codel"] => "fq_codel".to_string(),
                [k] if *k == Leaf::Fifo.kind() => {
                    format!("{k} (fallback: this kernel has no fq_codel)")
                }
                ks => ks.join(", "),
            };
            s.push_str(&format!(
                "state: installed on {} (root {ROOT_HANDLE} htb), leaf qdisc: {leaf}\n",
                plan.dev()
            ));
            if let Some(c) = live.classes.iter().find(|c| c.classid == CAPPED_CLASS) {
                let live_rate = c.rate.as_deref().and_then(|r| parse_rate(r).ok());
                if live_rate.is_some_and(|r| r != plan.rate_bps()) {
                    s.push_str(&format!(
                        "note: the installed cap is {} but the configured one is {}; run \
                         `net-shaper apply`\n",
                        c.rate.as_deref().unwrap_or("?"),
                        format_rate(plan.rate_bps())
                    ));
                }
            }
            s.push_str(&format!(
                "{:<9} {:<9} {:>10} {:>14} {:>10} {:>8} {:>11}\n",
                "class", "role", "rate", "bytes", "packets", "drops", "overlimits"
            ));
            for c in &live.classes {
                let role = match c.classid.as_str() {
                    UNSHAPED_CLASS => "unshaped",
                    CAPPED_CLASS => "uploads",
                    _ => "?",
                };
                let k = c.counters.unwrap_or_default();
                s.push_str(&format!(
                    "{:<9} {:<9} {:>10} {:>14} {:>10} {:>8} {:>11}\n",
                    c.classid,
                    role,
                    c.rate.as_deref().unwrap_or("-"),
                    k.bytes,
                    k.packets,
                    k.drops,
                    k.overlimits
                ));
            }
        }
        RootState::KernelDefault { kind } => s.push_str(&format!(
            "state: not installed on {} (root: kernel default {kind})\n",
            plan.dev()
        )),
        RootState::Restorable(p) => s.push_str(&format!(
            "state: not installed on {} (root: {p})\n",
            plan.dev()
        )),
        RootState::Foreign { kind, handle } => s.push_str(&format!(
            "state: not installed on {} (root: {kind} {handle}, not visdcam's; apply would \
             refuse to replace it)\n",
            plan.dev()
        )),
    }
    s.push_str("commands (tc -batch):\n");
    for c in leaf_plan {
        s.push_str(&format!("  {c}\n"));
    }
    s
}

/// Where `tc -batch` stopped: the 1-based line from `Command failed -:N`, and the error text.
pub fn batch_failure(stderr: &str) -> (Option<usize>, String) {
    let mut line = None;
    let mut msg = Vec::new();
    for l in stderr.lines() {
        if let Some(n) = l.trim().strip_prefix("Command failed ") {
            line = n.rsplit(':').next().and_then(|n| n.trim().parse().ok());
        } else if !l.trim().is_empty() {
            msg.push(l.trim());
        }
    }
    (line, msg.join("; "))
}

/// Whether `tc`'s error says the qdisc kind does not exist (kernel without the scheduler, or
/// an old `tc` without its parser).
pub fn is_missing_kind(msg: &str) -> bool {
    msg.contains("kind is unknown")
        || msg.contains("Unknown qdisc")
        || msg.contains("No such file or directory")
}

/// The interface of the IPv4 default route with the lowest metric, from `/proc/net/route`.
pub fn default_route_v4(proc_net_route: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    proc_net_route
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, flags, metric, mask) =
                (f.first()?, f.get(1)?, f.get(3)?, f.get(6)?, f.get(7)?);
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            (*dest == "00000000" && *mask == "00000000" && flags & RTF_UP != 0)
                .then(|| (metric, iface.to_string()))
        })
        .min()
        .map(|(_, i)| i)
}

/// The interface of the IPv6 default route with the lowest metric, from
/// `/proc/net/ipv6_route` (reject routes and `lo` skipped).
pub fn default_route_v6(proc_net_ipv6_route: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    const RTF_REJECT: u32 = 0x200;
    proc_net_ipv6_route
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let flags = u32::from_str_radix(f[8], 16).ok()?;
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            let default = f[0].bytes().all(|b| b == b'0') && f[1] == "00";
            (default && flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && f[9] != "lo")
                .then(|| (metric, f[9].to_string()))
        })
        .min()
        .map(|(_, i)| i)
}

#[cfg(test)]
mod tests;
