//! `visdcam migrate`: reading a visdcam-pi install (its unit files, scripts, `/etc/default`
//! files and root's aws-cli files, all as texts) into one [`Plan`] that `--dry-run` prints and
//! the real run executes. No I/O: the CLI reads the files and unit states, this module decides.
//!
//! visdcam-pi's layout (docs/guide/migrate-from-visdcam-pi.md): units `seg-camN.service`,
//! `uploader-camN.service`, `visdcam-daynight.timer` (and its service), optionally
//! `net-shaper.service`, all in /etc/systemd/system; the scripts they run in /usr/local/bin;
//! the helper /usr/local/bin/visdcam; /etc/tmpfiles.d/ramcam.conf; per-camera knobs in
//! /etc/default/uploader-camN; the `b2` profile in root's ~/.aws/credentials and ~/.aws/config;
//! segments `home-cam-N-00000.ts` in /mnt/ramcam/camN keyed by their mtime.
//!
//! The scripts' contents are not documented, so they are read as text: variable assignments
//! (with `${X:-default}`), sourced files, and the values a value can only be (an `http://`
//! stream URL, `s3://BUCKET/`, `max-size-time=`, `--endpoint-url`, `tc ... dev X ... rate R`).
//! A value that cannot be found is named, and comes from a flag; nothing is guessed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::{self, HttpUrl, Source};
use crate::envfile;
use crate::segment::SegmentName;
use crate::upload::{access_key, AwsFile};

/// Where visdcam-pi's unit files are (copied there by hand).
pub const OLD_UNIT_DIR: &str = "/etc/systemd/system";
/// visdcam-pi's helper; it comes before /usr/bin in PATH and would shadow ours.
pub const OLD_HELPER: &str = "/usr/local/bin/visdcam";
/// visdcam-pi's tmpfiles.d entry for its RAM-side directories.
pub const OLD_TMPFILES: &str = "/etc/tmpfiles.d/ramcam.conf";
/// visdcam-pi's day/night timer and its service.
pub const OLD_DAYNIGHT_TIMER: &str = "visdcam-daynight.timer";
pub const OLD_DAYNIGHT_SERVICE: &str = "visdcam-daynight.service";
/// visdcam-pi's shaper: same name as ours, but in /etc/systemd/system, where it hides ours.
pub const OLD_SHAPER: &str = "net-shaper.service";
/// Root's aws-cli files, where visdcam-pi's uploader scripts (run as root) read profile `b2`.
pub const ROOT_AWS_CREDENTIALS: &str = "/root/.aws/credentials";
pub const ROOT_AWS_CONFIG: &str = "/root/.aws/config";
/// Where visdcam-pi's gst-launch wrote segments, one directory per camera.
pub const OLD_RAM_DIR: &str = "/mnt/ramcam";
/// Where a plain /mnt/ramcam goes while the RAM disk is mounted on its name (emptied into the
/// RAM disk, then removed).
pub const OLD_RAM_ASIDE: &str = "/mnt/ramcam.visdcam-pi";
/// Where visdcam-pi's uploader knobs are, per camera.
pub const DEFAULTS_DIR: &str = "/etc/default";
/// The package's credential file (uploader@ loads it).
pub const CREDENTIALS_FILE: &str = "/etc/visdcam/aws-credentials";
/// Where dated backup directories go.
pub const BACKUP_PARENT: &str = "/var/backups";
/// visdcam-pi's default profile name.
pub const DEFAULT_PROFILE: &str = "b2";

/// What kind of visdcam-pi unit a file name in /etc/systemd/system is, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OldUnit {
    /// `seg-CAMERA.service`: gst-launch recording a camera.
    Recorder(String),
    /// `uploader-CAMERA.service`: aws-cli uploading a camera's segments.
    Uploader(String),
    DaynightTimer,
    DaynightService,
    Shaper,
}

/// Classifies a unit file name; `None` for anything that is not visdcam-pi's.
pub fn old_unit(name: &str) -> Option<OldUnit> {
    let camera = |rest: &str| {
        let cam = rest.strip_suffix(".service")?;
        crate::units::validate_camera_name(cam).ok()?;
        // seg@ and uploader@ templates are ours; visdcam-pi's names have no `@`.
        Some(cam.to_string())
    };
    match name {
        OLD_DAYNIGHT_TIMER => Some(OldUnit::DaynightTimer),
        OLD_DAYNIGHT_SERVICE => Some(OldUnit::DaynightService),
        OLD_SHAPER => Some(OldUnit::Shaper),
        _ => {
            if let Some(rest) = name.strip_prefix("seg-") {
                camera(rest).map(OldUnit::Recorder)
            } else if let Some(rest) = name.strip_prefix("uploader-") {
                camera(rest).map(OldUnit::Uploader)
            } else {
                None
            }
        }
    }
}

/// A unit's state as systemd reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `ActiveState` is active, activating or reloading.
    pub active: bool,
    /// `UnitFileState` is enabled (or enabled-runtime).
    pub enabled: bool,
}

/// A visdcam-pi segment left in a camera directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldSegment {
    pub name: String,
    /// Modification time, Unix nanoseconds: what visdcam-pi keyed the object by.
    pub mtime_ns: i64,
}

/// What the old RAM directory is: the new RAM disk (mnt-ramcam.mount) mounts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RamRoot {
    /// No /mnt/ramcam at all.
    Missing,
    /// Already a mount point (an fstab tmpfs, or the package's mount): segments are renamed
    /// where they are.
    MountPoint,
    /// A plain directory: the package's tmpfs would hide it, so it is first moved aside.
    PlainDir,
    /// A symlink (to `target`): systemd cannot mount on it, so it goes into the backup and
    /// the segments are copied from `target`.
    Symlink { target: String },
}

/// Everything the CLI read, as texts and facts.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// visdcam-pi unit files in /etc/systemd/system, by name (see [`old_unit`]).
    pub units: BTreeMap<String, String>,
    /// Texts of the files the units and scripts refer to, by path (see [`referenced_files`]).
    /// A path asked for and missing is absent.
    pub files: BTreeMap<String, String>,
    /// /usr/local/bin/visdcam exists.
    pub helper: bool,
    /// /etc/tmpfiles.d/ramcam.conf exists.
    pub tmpfiles: bool,
    /// Root's ~/.aws/credentials and ~/.aws/config.
    pub aws_credentials: Option<String>,
    pub aws_config: Option<String>,
    /// The old units' states, by name.
    pub states: BTreeMap<String, UnitState>,
    /// The package's own units' states (`daynight.timer`, `net-shaper.service`...).
    pub new_states: BTreeMap<String, UnitState>,
    /// `home-cam-*.ts` left per camera directory name under /mnt/ramcam (or the symlink's
    /// target).
    pub segments: BTreeMap<String, Vec<OldSegment>>,
    pub ram_root: Option<RamRoot>,
    /// The package's configuration now: /etc/visdcam/visdcam.conf, cameras/CAMERA.conf and the
    /// credentials file, by path (absent when missing).
    pub config: BTreeMap<String, String>,
    /// The root qdisc kind on the old shaper's device now (`htb`, `tbf`, `noqueue`...), when
    /// the CLI could read it.
    pub root_qdisc: Option<String>,
}

/// Values given on the command line for what the old install does not say (or to override it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `--camera CAMERA=URL`.
    pub cameras: BTreeMap<String, String>,
}

/// A value and the file (or flag) it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    pub value: String,
    pub from: String,
}

/// A file the migration writes (only when its text changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub path: String,
    pub text: String,
    pub mode: u32,
    /// What it holds, for the plan (never a secret).
    pub what: String,
    /// The file exists now (its old text goes into the backup first).
    pub replaces: bool,
}

/// One camera's hand-over of old segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    pub camera: String,
    /// How many `home-cam-*.ts` there are now (more may close before the recorder stops).
    pub count: usize,
}

/// The whole migration. `Display` is what `--dry-run` prints; the CLI executes the fields in
/// the order they are printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// What was found, one line each (values with their origin; secrets hidden).
    pub found: Vec<String>,
    /// Things the migration cannot carry over, said once.
    pub notes: Vec<String>,
    /// Cameras, by name.
    pub cameras: Vec<String>,
    /// The store the uploads go to, checked with the key before anything old is stopped.
    pub store: Option<StoreTarget>,
    pub writes: Vec<Write>,
    /// Old units to stop, in order (recorders first: their last segment closes before the
    /// uploaders go).
    pub stop: Vec<String>,
    /// Old units to disable.
    pub disable: Vec<String>,
    /// A device whose root qdisc the old shaper left behind.
    pub clear_qdisc: Option<String>,
    /// Files moved into the backup directory, by original path.
    pub backup: Vec<String>,
    /// The dated backup directory.
    pub backup_dir: String,
    pub handovers: Vec<Handover>,
    pub ram_root: RamRoot,
    /// Keep the journal in RAM (`ramlogs on`), as visdcam-pi kept its logs in /run.
    pub ramlogs: bool,
    /// Package units to enable and start, in order.
    pub enable: Vec<String>,
    pub start: Vec<String>,
    /// Units the old setup had enabled and running, to bring back if the migration fails.
    pub restore_enable: Vec<String>,
    pub restore_start: Vec<String>,
}

/// Where uploads go, as the uploader will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreTarget {
    pub endpoint: String,
    pub bucket: String,
    pub region: Option<String>,
    pub profile: String,
    pub path_style: bool,
    /// Which credentials file holds the key now (root's, before the copy; or the package's).
    pub credentials: String,
}

impl Plan {
    /// Nothing of visdcam-pi is left and nothing needs writing.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
            && self.stop.is_empty()
            && self.disable.is_empty()
            && self.clear_qdisc.is_none()
            && self.backup.is_empty()
            && self.handovers.iter().all(|h| h.count == 0)
    }
}

/// Why no plan could be made: a value that was not found, or a file that is not valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

// ---------------------------------------------------------------------------------------------
// Unit files and shell scripts as text.

/// The `[Service]`/`[Unit]`/`[Timer]` settings of a unit file that matter here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UnitFile {
    /// Every `Exec*=` command line, as words (prefixes `-@:+!` removed).
    execs: Vec<Vec<String>>,
    /// `Environment=` assignments in order.
    environment: Vec<(String, String)>,
    /// `EnvironmentFile=` paths (a leading `-` removed).
    environment_files: Vec<String>,
}

/// Splits a command line into words: white space separates, double and single quotes group
/// (and are removed), a backslash escapes the next character outside single quotes.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn parse_unit(text: &str) -> UnitFile {
    let mut u = UnitFile::default();
    // Continuation lines (trailing `\`) joined, comments skipped.
    let mut logical = Vec::new();
    let mut acc = String::new();
    for raw in text.lines() {
        let t = raw.trim();
        if acc.is_empty() && (t.starts_with('#') || t.starts_with(';')) {
            continue;
        }
        if let Some(s) = t.strip_suffix('\\') {
            acc.push_str(s);
            acc.push(' ');
            continue;
        }
        acc.push_str(t);
        logical.push(std::mem::take(&mut acc));
    }
    for line in logical {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.starts_with("Exec") {
            let v = v.trim_start_matches(['-', '@', ':', '+', '!']);
            let w = words(v);
            if !w.is_empty() {
                u.execs.push(w);
            }
        } else if k == "Environment" {
            for w in words(v) {
                if let Some((name, value)) = w.split_once('=') {
                    u.environment.push((name.to_string(), value.to_string()));
                }
            }
        } else if k == "EnvironmentFile" {
            u.environment_files
                .push(v.trim_start_matches('-').to_string());
        }
    }
    u
}

/// The script a command line runs: the first word that is a path under /usr/local/ (the
/// scripts were copied to /usr/local/bin), with the words after it as its arguments.
fn script_of(exec: &[String]) -> Option<(String, Vec<String>)> {
    let i = exec.iter().position(|w| w.starts_with("/usr/local/"))?;
    Some((exec[i].clone(), exec[i + 1..].to_vec()))
}

/// Shell variables with the file each came from.
#[derive(Debug, Clone, Default)]
struct Vars {
    map: BTreeMap<String, Sourced>,
    args: Vec<String>,
}

impl Vars {
    fn get(&self, k: &str) -> Option<&str> {
        self.map.get(k).map(|s| s.value.as_str())
    }

    fn set(&mut self, k: &str, v: String, from: &str) {
        self.map.insert(
            k.to_string(),
            Sourced {
                value: v,
                from: from.to_string(),
            },
        );
    }

    /// Expands `$X`, `${X}`, `${X:-d}`, `${X-d}`, `${X:=d}` (which also assigns) and `$1`..`$9`
    /// in `s`; quotes are removed. A variable that is not known (set at run time, such as a
    /// loop's) is left as it is written.
    fn expand(&mut self, s: &str, from: &str) -> String {
        let mut out = String::new();
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        let mut single = false;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                single = !single;
                i += 1;
                continue;
            }
            if single {
                out.push(c);
                i += 1;
                continue;
            }
            if c == '"' {
                i += 1;
                continue;
            }
            if c == '\\' && i + 1 < chars.len() {
                out.push(chars[i + 1]);
                i += 2;
                continue;
            }
            if c != '$' || i + 1 >= chars.len() {
                out.push(c);
                i += 1;
                continue;
            }
            let next = chars[i + 1];
            if next == '{' {
                // The matching `}`: defaults may hold `${...}` themselves.
                let mut depth = 0;
                let mut close = None;
                for (j, ch) in chars.iter().enumerate().skip(i + 1) {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                close = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(close) = close else {
                    out.extend(&chars[i..]);
                    break;
                };
                let inner: String = chars[i + 2..close].iter().collect();
                let literal: String = chars[i..=close].iter().collect();
                i = close + 1;
                let name_end = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, rest) = inner.split_at(name_end);
                let (op, default) = if let Some(d) = rest.strip_prefix(":-") {
                    ("-", Some(d))
                } else if let Some(d) = rest.strip_prefix(":=") {
                    ("=", Some(d))
                } else if let Some(d) = rest.strip_prefix('-') {
                    ("-", Some(d))
                } else if let Some(d) = rest.strip_prefix('=') {
                    ("=", Some(d))
                } else if rest.is_empty() {
                    ("", None)
                } else {
                    out.push_str(&literal);
                    continue;
                };
                match (self.lookup(name), default) {
                    (Some(v), _) if !v.is_empty() => out.push_str(&v),
                    (_, Some(d)) => {
                        let d = self.expand(d, from);
                        if op == "=" {
                            self.set(name, d.clone(), from);
                        }
                        out.push_str(&d);
                    }
                    (Some(v), None) => out.push_str(&v),
                    (None, None) => out.push_str(&literal),
                }
            } else if next.is_ascii_digit() {
                match self.lookup(&next.to_string()) {
                    Some(v) => out.push_str(&v),
                    None => out.extend([c, next]),
                }
                i += 2;
            } else if next.is_ascii_alphabetic() || next == '_' {
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                    .map_or(chars.len(), |p| p + i + 1);
                let name: String = chars[i + 1..end].iter().collect();
                match self.lookup(&name) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push('$');
                        out.push_str(&name);
                    }
                }
                i = end;
            } else {
                out.push(c);
                i += 1;
            }
        }
        out
    }

    fn lookup(&self, name: &str) -> Option<String> {
        if let Ok(n) = name.parse::<usize>() {
            return n.checked_sub(1).and_then(|i| self.args.get(i)).cloned();
        }
        self.get(name).map(str::to_string)
    }
}

/// Reads a shell file's assignments (`X=v`, `export X=v`, `: "${X:=v}"`) and `.`/`source`
/// lines, in order, into `vars`; returns each line with the variables known there expanded.
fn eval_shell(
    path: &str,
    text: &str,
    files: &BTreeMap<String, String>,
    vars: &mut Vars,
    depth: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let w = words_raw(line);
        // `. FILE` / `source FILE`, anywhere on the line (`[ -r F ] && . F`).
        for pair in w.windows(2) {
            if (pair[0] == "." || pair[0] == "source") && depth < 4 {
                let p = vars.expand(&pair[1], path);
                if let Some(t) = files.get(&p) {
                    lines.extend(eval_shell(&p, t, files, vars, depth + 1));
                }
            }
        }
        let mut first = w.first().map(String::as_str).unwrap_or("");
        let mut rest_words = &w[..];
        if matches!(first, "export" | "readonly" | "local" | "declare") {
            rest_words = &w[1..];
            first = rest_words.first().map(String::as_str).unwrap_or("");
        }
        if first == ":" {
            for arg in &rest_words[1..] {
                vars.expand(arg, path);
            }
        } else if let Some((name, value)) = first.split_once('=') {
            if envfile::valid_key(name) && rest_words.len() == 1 {
                let v = vars.expand(value, path);
                // `X="${X:-default}"` keeps X where it was set.
                if vars.get(name) != Some(v.as_str()) {
                    vars.set(name, v, path);
                }
            }
        }
        lines.push(vars.expand(line, path));
    }
    lines
}

/// Like [`words`] but keeps quotes (so [`Vars::expand`] sees them).
fn words_raw(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => {
                cur.push(c);
                quote = Some(c);
            }
            None if c.is_whitespace() || c == ';' => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            None => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The files the CLI should read for [`plan`]: the scripts and `EnvironmentFile=`s the unit
/// files name, /etc/default/uploader-CAMERA (and seg-CAMERA), and the files those scripts
/// source (call again with what was read until nothing new is asked).
pub fn referenced_files(
    units: &BTreeMap<String, String>,
    files: &BTreeMap<String, String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (name, text) in units {
        let u = parse_unit(text);
        out.extend(u.environment_files.iter().cloned());
        for e in &u.execs {
            if let Some((script, _)) = script_of(e) {
                out.insert(script);
            }
        }
        match old_unit(name) {
            Some(OldUnit::Uploader(c)) => {
                out.insert(format!("{DEFAULTS_DIR}/uploader-{c}"));
            }
            Some(OldUnit::Recorder(c)) => {
                out.insert(format!("{DEFAULTS_DIR}/seg-{c}"));
            }
            _ => {}
        }
    }
    for text in files.values() {
        for line in text.lines() {
            let w = words(line);
            for pair in w.windows(2) {
                if (pair[0] == "." || pair[0] == "source") && pair[1].starts_with('/') {
                    out.insert(pair[1].clone());
                }
            }
        }
    }
    out
}

/// One old unit evaluated: its variables (environment, default files, script) and the
/// lines of its command and script with variables expanded.
struct Evaluated {
    vars: Vars,
    lines: Vec<String>,
    script: Option<String>,
}

fn evaluate(name: &str, text: &str, found: &Found, defaults: &[String]) -> Evaluated {
    let unit = parse_unit(text);
    let unit_path = format!("{OLD_UNIT_DIR}/{name}");
    let mut vars = Vars::default();
    for (k, v) in &unit.environment {
        vars.set(k, v.clone(), &unit_path);
    }
    let mut env_files: Vec<String> = unit.environment_files.clone();
    env_files.extend(defaults.iter().cloned());
    for f in &env_files {
        if let Some(t) = found.files.get(f) {
            if let Ok(assignments) = envfile::parse(t) {
                for a in assignments {
                    vars.set(&a.key, a.value, f);
                }
            }
        }
    }
    let mut lines = Vec::new();
    let mut script = None;
    // The main command (ExecStart, the first Exec line systemd runs for the service's work).
    let main = unit
        .execs
        .iter()
        .find(|e| script_of(e).is_some())
        .or(unit.execs.first());
    if let Some(exec) = main {
        lines.push(exec.join(" "));
        if let Some((path, args)) = script_of(exec) {
            let args: Vec<String> = args.iter().map(|a| vars.expand(a, &unit_path)).collect();
            vars.args = args;
            if let Some(t) = found.files.get(&path) {
                lines.extend(eval_shell(&path, t, &found.files, &mut vars, 0));
            }
            script = Some(path);
        }
    }
    for exec in &unit.execs {
        lines.push(vars.expand(&exec.join(" "), &unit_path));
    }
    Evaluated {
        vars,
        lines,
        script,
    }
}

/// The value following `flag` (`--flag VALUE` or `--flag=VALUE`, or `flag=VALUE` for
/// gst-launch properties) on any line, first match.
fn after(lines: &[String], flag: &str) -> Option<String> {
    for l in lines {
        let w = words(l);
        for (i, word) in w.iter().enumerate() {
            if word == flag {
                if let Some(v) = w.get(i + 1) {
                    return Some(v.clone());
                }
            }
            if let Some(v) = word.strip_prefix(&format!("{flag}=")) {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// Tokens starting with `prefix` on any line (up to white space, a quote or `!`).
fn tokens_with(lines: &[String], prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for l in lines {
        let mut rest = l.as_str();
        while let Some(p) = rest.find(prefix) {
            let tail = &rest[p..];
            let end = tail
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '!' | ';' | ')'))
                .unwrap_or(tail.len());
            out.push(tail[..end].to_string());
            rest = &tail[end..];
        }
    }
    out
}

/// The stream URL among what a recorder's command and script say: an `http://` URL whose path
/// is `/stream` first; else any `http://` URL on the camera (the stream is on port 81 at
/// /stream: CameraWebServer firmware); else an IPv4 address in a variable whose name says
/// it is the camera's.
fn stream_url(ev: &Evaluated) -> Option<Sourced> {
    let from = ev
        .script
        .clone()
        .unwrap_or_else(|| "the unit's command".into());
    let urls: Vec<HttpUrl> = tokens_with(&ev.lines, "http://")
        .iter()
        .filter_map(|t| HttpUrl::parse(t).ok())
        .collect();
    if let Some(u) = urls.iter().find(|u| u.path.starts_with("/stream")) {
        return Some(Sourced {
            value: render_url(u),
            from,
        });
    }
    if let Some(u) = urls.first() {
        return Some(Sourced {
            value: format!("http://{}:81/stream", u.host),
            from,
        });
    }
    for (k, v) in &ev.vars.map {
        let up = k.to_ascii_uppercase();
        let named = up.contains("IP") || up.contains("HOST") || up.contains("ADDR");
        let ipv4 =
            v.value.split('.').count() == 4 && v.value.split('.').all(|p| p.parse::<u8>().is_ok());
        if named && ipv4 {
            return Some(Sourced {
                value: format!("http://{}:81/stream", v.value),
                from: v.from.clone(),
            });
        }
    }
    None
}

fn render_url(u: &HttpUrl) -> String {
    match u.port {
        Some(p) => format!("http://{}:{p}{}", u.host, u.path),
        None => format!("http://{}{}", u.host, u.path),
    }
}

/// The segment length: gst-launch's `max-size-time=` (nanoseconds) or splitmuxsink's, or a
/// variable named SEG_SECONDS / SEG_DUR / DURATION.
fn seg_seconds(ev: &Evaluated) -> Option<Sourced> {
    let from = ev.script.clone().unwrap_or_default();
    if let Some(ns) = after(&ev.lines, "max-size-time") {
        if let Ok(ns) = ns.parse::<u64>() {
            if ns % 1_000_000_000 == 0 {
                return Some(Sourced {
                    value: (ns / 1_000_000_000).to_string(),
                    from,
                });
            }
        }
    }
    for k in [
        "SEG_SECONDS",
        "SEG_DUR",
        "SEGMENT_SECONDS",
        "DURATION",
        "DUR",
    ] {
        if let Some(v) = ev.vars.map.get(k) {
            if v.value.parse::<u32>().is_ok() {
                return Some(v.clone());
            }
        }
    }
    None
}

/// An uploader's knobs: variables first, then the aws-cli command's own flags.
struct UploaderKnobs {
    rate_kbps: Option<Sourced>,
    profile: Option<Sourced>,
    region: Option<Sourced>,
    endpoint: Option<Sourced>,
    bucket: Option<Sourced>,
    tz: Option<Sourced>,
}

fn uploader_knobs(ev: &Evaluated) -> UploaderKnobs {
    let from = ev.script.clone().unwrap_or_default();
    let var = |k: &str| ev.vars.map.get(k).filter(|s| !s.value.is_empty()).cloned();
    let flag = |f: &str| {
        after(&ev.lines, f)
            .filter(|v| !v.contains('$'))
            .map(|v| Sourced {
                value: v,
                from: from.clone(),
            })
    };
    let bucket = var("B2_BUCKET").or_else(|| var("BUCKET")).or_else(|| {
        tokens_with(&ev.lines, "s3://").iter().find_map(|t| {
            let b = t.trim_start_matches("s3://").split('/').next()?;
            (!b.is_empty() && !b.contains('$')).then(|| Sourced {
                value: b.to_string(),
                from: from.clone(),
            })
        })
    });
    UploaderKnobs {
        rate_kbps: var("RATE_KBPS"),
        profile: var("B2_PROFILE").or_else(|| flag("--profile")),
        region: var("B2_REGION").or_else(|| flag("--region")),
        endpoint: var("B2_ENDPOINT").or_else(|| flag("--endpoint-url")),
        bucket,
        tz: var("TZ"),
    }
}

/// A nested setting of aws-cli's config file: `[profile P]` → `s3 =` → `  key = value`.
pub fn nested_setting(config: &str, profile: &str, parent: &str, key: &str) -> Option<String> {
    let wanted = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let mut in_profile = false;
    let mut in_parent = false;
    for raw in config.lines() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        if let Some(h) = t.strip_prefix('[') {
            in_profile = h.trim_end_matches(']').trim() == wanted;
            in_parent = false;
            continue;
        }
        if !in_profile {
            continue;
        }
        let indented = raw.starts_with([' ', '\t']);
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if !indented {
            in_parent = k == parent && v.is_empty();
        } else if in_parent && k == key {
            return Some(v.to_string());
        }
    }
    None
}

/// The cameras' segment-directory name for visdcam-pi's file names: `home-cam-N-00042.ts`
/// → counter 42. `None` for anything else.
pub fn old_segment_counter(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("home-cam-")?.strip_suffix(".ts")?;
    let (_, n) = rest.rsplit_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.parse().ok()
}

/// Whether a file name is a visdcam-pi segment (`home-cam-*.ts`).
pub fn is_old_segment(name: &str) -> bool {
    name.starts_with("home-cam-") && name.ends_with(".ts")
}

/// The new names of a camera's old segments. The uploader keys a segment by its mtime
/// (visdcam-pi did the same, so keys do not change); the name's start time is the previous
/// segment's mtime when the counters follow each other (gst-launch opened the next file as it
/// closed one), else the mtime minus `seg_seconds`. The tag is the counter's low 16 bits, so
/// the same file gets the same name on a second run.
pub fn handover_names(segments: &[OldSegment], seg_seconds: u32) -> Vec<(String, SegmentName)> {
    let mut v: Vec<&OldSegment> = segments
        .iter()
        .filter(|s| is_old_segment(&s.name))
        .collect();
    v.sort_by_key(|s| (s.mtime_ns, s.name.clone()));
    let by_counter: BTreeMap<u32, i64> = v
        .iter()
        .filter_map(|s| Some((old_segment_counter(&s.name)?, s.mtime_ns)))
        .collect();
    v.iter()
        .enumerate()
        .map(|(i, s)| {
            let end_ms = s.mtime_ns.div_euclid(1_000_000);
            let counter = old_segment_counter(&s.name);
            let prev = counter
                .and_then(|c| c.checked_sub(1))
                .and_then(|p| by_counter.get(&p))
                .map(|ns| ns.div_euclid(1_000_000))
                .filter(|p| *p <= end_ms);
            let start = prev
                .unwrap_or(end_ms - i64::from(seg_seconds) * 1000)
                .max(0);
            let tag = counter.map_or(i as u16, |c| (c & 0xffff) as u16);
            (s.name.clone(), SegmentName::new(start as u64, tag))
        })
        .collect()
}

/// Whether a unit file with one of visdcam-pi's names is really the package's own (a
/// `systemctl edit --full` copy of net-shaper.service runs /usr/bin/net-shaper): left alone.
pub fn is_package_unit(text: &str) -> bool {
    parse_unit(text)
        .execs
        .iter()
        .any(|e| e.iter().any(|w| w.starts_with("/usr/bin/")))
}

/// The device visdcam-pi's shaper puts its root qdisc on (`tc ... dev X` in its unit or
/// script), when its unit is there.
pub fn old_shaper_device(found: &Found) -> Option<String> {
    let text = found.units.get(OLD_SHAPER)?;
    let ev = evaluate(OLD_SHAPER, text, found, &[]);
    let tc = tc_lines(&ev);
    after(&tc, "dev").filter(|d| !d.contains('$'))
}

fn tc_lines(ev: &Evaluated) -> Vec<String> {
    ev.lines
        .iter()
        .filter(|l| words(l).iter().any(|w| w == "tc" || w.ends_with("/tc")))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The plan.

struct CameraFound {
    name: String,
    url: Sourced,
    seg_seconds: Option<Sourced>,
    rate_kbps: Option<Sourced>,
}

/// Builds the plan from what was found. `stamp` names the backup directory
/// (`/var/backups/visdcam-pi-STAMP`), `global_path`, `camera_dir` where the configuration goes.
pub fn plan(
    found: &Found,
    over: &Overrides,
    stamp: &str,
    config_dir: &str,
) -> Result<Plan, PlanError> {
    let global_path = format!("{config_dir}/visdcam.conf");
    let mut p = Plan {
        found: Vec::new(),
        notes: Vec::new(),
        cameras: Vec::new(),
        store: None,
        writes: Vec::new(),
        stop: Vec::new(),
        disable: Vec::new(),
        clear_qdisc: None,
        backup: Vec::new(),
        backup_dir: format!("{BACKUP_PARENT}/visdcam-pi-{stamp}"),
        handovers: Vec::new(),
        ram_root: found.ram_root.clone().unwrap_or(RamRoot::Missing),
        ramlogs: false,
        enable: Vec::new(),
        start: Vec::new(),
        restore_enable: Vec::new(),
        restore_start: Vec::new(),
    };

    // Cameras: a recorder unit each (or only an uploader unit, with --camera).
    let mut names: BTreeSet<String> = BTreeSet::new();
    for n in found.units.keys() {
        match old_unit(n) {
            Some(OldUnit::Recorder(c)) | Some(OldUnit::Uploader(c)) => {
                names.insert(c);
            }
            _ => {}
        }
    }
    let mut cameras = Vec::new();
    let mut uploaders: BTreeMap<String, UploaderKnobs> = BTreeMap::new();
    for cam in &names {
        let seg = found.units.get(&format!("seg-{cam}.service")).map(|t| {
            evaluate(
                &format!("seg-{cam}.service"),
                t,
                found,
                &[format!("{DEFAULTS_DIR}/seg-{cam}")],
            )
        });
        let up = found
            .units
            .get(&format!("uploader-{cam}.service"))
            .map(|t| {
                evaluate(
                    &format!("uploader-{cam}.service"),
                    t,
                    found,
                    &[format!("{DEFAULTS_DIR}/uploader-{cam}")],
                )
            });
        let url = match over.cameras.get(cam) {
            Some(u) => Sourced {
                value: u.clone(),
                from: "--camera".into(),
            },
            None => seg.as_ref().and_then(stream_url).ok_or_else(|| {
                PlanError(format!(
                    "camera {cam}: no stream address found in {} or its script; give it with \
                     --camera {cam}=http://ADDRESS:81/stream",
                    if seg.is_some() {
                        format!("{OLD_UNIT_DIR}/seg-{cam}.service")
                    } else {
                        format!("{OLD_UNIT_DIR}/seg-{cam}.service (missing)")
                    }
                ))
            })?,
        };
        HttpUrl::parse(&url.value)
            .map_err(|e| PlanError(format!("camera {cam}: {e} (from {})", url.from)))?;
        let knobs = up.as_ref().map(uploader_knobs);
        cameras.push(CameraFound {
            name: cam.clone(),
            url,
            seg_seconds: seg.as_ref().and_then(seg_seconds),
            rate_kbps: knobs.as_ref().and_then(|k| k.rate_kbps.clone()),
        });
        if let Some(k) = knobs {
            uploaders.insert(cam.clone(), k);
        }
    }
    for c in &cameras {
        p.found.push(format!(
            "camera {}: stream {} (from {})",
            c.name, c.url.value, c.url.from
        ));
        match &c.seg_seconds {
            Some(s) => p.found.push(format!(
                "camera {}: segments of {} s (from {})",
                c.name, s.value, s.from
            )),
            None => p.notes.push(format!(
                "camera {}: the segment length was not found in its recorder script; the \
                 default (SEG_SECONDS, 60 s) applies; change it with `visdcam setdur {} SECONDS`",
                c.name, c.name
            )),
        }
        if let Some(r) = &c.rate_kbps {
            p.found.push(format!(
                "camera {}: upload cap RATE_KBPS={} KiB/s (from {})",
                c.name, r.value, r.from
            ));
        }
    }
    p.cameras = cameras.iter().map(|c| c.name.clone()).collect();

    // The store: the same for every camera in visdcam-pi's layout; per camera otherwise.
    let pick = |f: fn(&UploaderKnobs) -> &Option<Sourced>| -> Vec<Sourced> {
        let mut v: Vec<Sourced> = Vec::new();
        for k in uploaders.values() {
            if let Some(s) = f(k) {
                if !v.iter().any(|x| x.value == s.value) {
                    v.push(s.clone());
                }
            }
        }
        v
    };
    let one = |what: &str, v: Vec<Sourced>| -> Result<Option<Sourced>, PlanError> {
        match v.len() {
            0 => Ok(None),
            1 => Ok(v.into_iter().next()),
            _ => Err(PlanError(format!(
                "the cameras' uploaders use different {what}s ({}); migrate them by hand \
                 (docs/guide/migrate-from-visdcam-pi.md, appendix)",
                v.iter()
                    .map(|s| format!("{} in {}", s.value, s.from))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    let have_uploaders = !uploaders.is_empty();
    let flag = |v: &Option<String>, name: &str| {
        v.clone().map(|value| Sourced {
            value,
            from: format!("--{name}"),
        })
    };
    let profile = one("profile", pick(|k| &k.profile))?.unwrap_or(Sourced {
        value: DEFAULT_PROFILE.into(),
        from: "visdcam-pi's default".into(),
    });
    let bucket = flag(&over.bucket, "bucket").or(one("bucket", pick(|k| &k.bucket))?);
    let aws_region = found.aws_config.as_deref().and_then(|t| {
        let f = AwsFile::parse(t).ok()?;
        crate::upload::profile_region(&f, &profile.value)
    });
    let region = flag(&over.region, "region")
        .or(one("region", pick(|k| &k.region))?)
        .or(aws_region.map(|r| Sourced {
            value: r,
            from: ROOT_AWS_CONFIG.into(),
        }));
    let endpoint = flag(&over.endpoint, "endpoint")
        .or(one("endpoint", pick(|k| &k.endpoint))?)
        .or(region.as_ref().map(|r| Sourced {
            value: format!("https://s3.{}.backblazeb2.com", r.value),
            from: format!("B2's endpoint for region {}", r.value),
        }));
    let style = found.aws_config.as_deref().and_then(|t| {
        nested_setting(t, &profile.value, "s3", "addressing_style").map(|v| Sourced {
            value: v,
            from: ROOT_AWS_CONFIG.into(),
        })
    });
    let tz = one("time zone", pick(|k| &k.tz))?;
    let existing_global = found.config.get(&global_path).cloned().unwrap_or_default();

    // The global file: the store and the shaper.
    let mut global_keys: Vec<(&str, Sourced)> = Vec::new();
    if have_uploaders {
        let bucket = bucket.clone().ok_or_else(|| {
            PlanError(format!(
                "no bucket found in the uploader scripts or {DEFAULTS_DIR}/uploader-CAMERA \
                 (no s3://BUCKET/ and no B2_BUCKET); give it with --bucket NAME"
            ))
        })?;
        let region_s = region.clone().ok_or_else(|| {
            PlanError(format!(
                "no region found for profile [{}] (B2_REGION, --region in the scripts, or \
                 region = in {ROOT_AWS_CONFIG}); give it with --region NAME",
                profile.value
            ))
        })?;
        let endpoint = endpoint
            .clone()
            .expect("derived from the region when not set");
        global_keys.push(("B2_PROFILE", profile.clone()));
        global_keys.push(("B2_REGION", region_s));
        global_keys.push(("B2_ENDPOINT", endpoint));
        global_keys.push(("B2_BUCKET", bucket));
        if let Some(s) = style.clone() {
            global_keys.push(("B2_ADDRESSING_STYLE", s));
        }
        if let Some(tz) = tz {
            global_keys.push(("KEY_TZ", tz));
        }
    }
    let shaper = found
        .units
        .get(OLD_SHAPER)
        .map(|t| evaluate(OLD_SHAPER, t, found, &[]));
    let mut shaper_dev = None;
    if let Some(ev) = &shaper {
        let from = ev
            .script
            .clone()
            .unwrap_or_else(|| format!("{OLD_UNIT_DIR}/{OLD_SHAPER}"));
        let tc = tc_lines(ev);
        if let Some(dev) = after(&tc, "dev").filter(|d| !d.contains('$')) {
            shaper_dev = Some(dev.clone());
            global_keys.push((
                "SHAPER_DEV",
                Sourced {
                    value: dev,
                    from: from.clone(),
                },
            ));
        }
        if let Some(rate) = after(&tc, "rate").filter(|r| config::parse_rate(r).is_ok()) {
            global_keys.push((
                "SHAPER_RATE",
                Sourced {
                    value: rate,
                    from: from.clone(),
                },
            ));
        }
        p.notes.push(
            "net-shaper: visdcam-pi shaped all traffic on the uplink; visdcam's caps only the \
             uploads (DSCP-marked), so the cameras' other traffic is no longer slowed"
                .into(),
        );
    }
    let mut global_text = existing_global.clone();
    for (k, s) in &global_keys {
        p.found.push(format!("{k}={} (from {})", s.value, s.from));
        global_text = envfile::set_key(&global_text, k, &s.value)
            .map_err(|e| PlanError(format!("{global_path}: {e}")))?;
    }
    if global_text != existing_global {
        p.writes.push(Write {
            path: global_path.clone(),
            text: global_text.clone(),
            mode: 0o644,
            what: format!(
                "set {}",
                global_keys
                    .iter()
                    .map(|(k, _)| *k)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            replaces: found.config.contains_key(&global_path),
        });
    }

    // Camera files.
    for c in &cameras {
        let path = format!("{config_dir}/cameras/{}.conf", c.name);
        let existing = found.config.get(&path).cloned();
        let mut text = existing.clone().unwrap_or_else(|| {
            format!(
                "# {}: migrated from visdcam-pi (seg-{}.service) by `visdcam migrate`\n",
                c.name, c.name
            )
        });
        let mut keys = vec![("CAMERA_URL", c.url.value.clone())];
        if let Some(s) = &c.seg_seconds {
            keys.push(("SEG_SECONDS", s.value.clone()));
        }
        if let Some(r) = &c.rate_kbps {
            keys.push(("RATE_KBPS", r.value.clone()));
        }
        for (k, v) in &keys {
            text = envfile::set_key(&text, k, v).map_err(|e| PlanError(format!("{path}: {e}")))?;
        }
        config::load(
            Some(Source {
                path: &global_path,
                text: &global_text,
            }),
            Some((
                &c.name,
                Source {
                    path: &path,
                    text: &text,
                },
            )),
            &global_path,
        )
        .map_err(|e| PlanError(format!("the migrated configuration is not valid: {e}")))?;
        if existing.as_deref() != Some(text.as_str()) {
            p.writes.push(Write {
                path,
                text,
                mode: 0o644,
                what: format!(
                    "set {}",
                    keys.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(", ")
                ),
                replaces: existing.is_some(),
            });
        }
    }

    // Credentials: the profile's key from root's file, unless the package's file has it.
    if have_uploaders {
        let existing = found.config.get(CREDENTIALS_FILE);
        let existing_key = existing
            .and_then(|t| AwsFile::parse(t).ok())
            .and_then(|f| access_key(&f, &profile.value).ok());
        let credentials = match existing_key {
            Some(k) => {
                p.found.push(format!(
                    "credentials: {CREDENTIALS_FILE} already holds profile [{}] (key {}); kept",
                    profile.value, k.id
                ));
                CREDENTIALS_FILE.to_string()
            }
            None => {
                let text = found.aws_credentials.as_deref().ok_or_else(|| {
                    PlanError(format!(
                        "no {ROOT_AWS_CREDENTIALS} (visdcam-pi's profile [{}]) and no \
                         {CREDENTIALS_FILE}: write the key there (docs/guide/b2-credentials.md) \
                         and run migrate again",
                        profile.value
                    ))
                })?;
                let file = AwsFile::parse(text)
                    .map_err(|e| PlanError(format!("{ROOT_AWS_CREDENTIALS}: {e}")))?;
                let key = access_key(&file, &profile.value)
                    .map_err(|e| PlanError(format!("{ROOT_AWS_CREDENTIALS}: {e}")))?;
                let mut out = format!(
                    "# Profile [{}] from {ROOT_AWS_CREDENTIALS} (visdcam-pi), copied by \
                     `visdcam migrate`.\n[{}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                    profile.value, profile.value, key.id, key.secret
                );
                if let Some(t) = &key.session_token {
                    out.push_str(&format!("aws_session_token = {t}\n"));
                }
                p.found.push(format!(
                    "credentials: profile [{}] in {ROOT_AWS_CREDENTIALS} (key {}, secret hidden)",
                    profile.value, key.id
                ));
                p.writes.push(Write {
                    path: CREDENTIALS_FILE.into(),
                    text: out,
                    mode: 0o600,
                    what: format!(
                        "profile [{}] (key {}, secret hidden), root's, mode 0600",
                        profile.value, key.id
                    ),
                    replaces: existing.is_some(),
                });
                ROOT_AWS_CREDENTIALS.to_string()
            }
        };
        let g = global_keys
            .iter()
            .map(|(k, s)| (*k, s.value.clone()))
            .collect::<BTreeMap<_, _>>();
        let existing_style = envfile::parse(&global_text)
            .ok()
            .and_then(|a| a.into_iter().rev().find(|a| a.key == "B2_ADDRESSING_STYLE"))
            .map(|a| a.value);
        p.store = Some(StoreTarget {
            endpoint: g["B2_ENDPOINT"].clone(),
            bucket: g["B2_BUCKET"].clone(),
            region: g.get("B2_REGION").cloned(),
            profile: profile.value.clone(),
            path_style: existing_style.as_deref() == Some("path"),
            credentials,
        });
    }

    // Old units: stop (recorders first), disable, back up with their scripts.
    let order = |n: &str| match old_unit(n) {
        Some(OldUnit::Recorder(_)) => 0,
        Some(OldUnit::Uploader(_)) => 1,
        Some(OldUnit::DaynightTimer) => 2,
        Some(OldUnit::DaynightService) => 3,
        _ => 4,
    };
    let mut unit_names: Vec<&String> = found.units.keys().collect();
    unit_names.sort_by_key(|n| (order(n), n.to_string()));
    let mut scripts = BTreeSet::new();
    for n in &unit_names {
        let st = found.states.get(n.as_str()).cloned().unwrap_or_default();
        if st.active {
            p.stop.push(n.to_string());
            if !matches!(old_unit(n), Some(OldUnit::DaynightService)) {
                p.restore_start.push(n.to_string());
            }
        }
        if st.enabled {
            p.disable.push(n.to_string());
            p.restore_enable.push(n.to_string());
        }
        p.backup.push(format!("{OLD_UNIT_DIR}/{n}"));
        for e in &parse_unit(&found.units[n.as_str()]).execs {
            if let Some((s, _)) = script_of(e) {
                if found.files.contains_key(&s) && s != OLD_HELPER {
                    scripts.insert(s);
                }
            }
        }
        // Drop-in directories made with `systemctl edit`.
        let dropins = format!("{OLD_UNIT_DIR}/{n}.d");
        if found.files.contains_key(&dropins) {
            p.backup.push(dropins);
        }
    }
    p.backup.extend(scripts);
    if found.helper {
        p.backup.push(OLD_HELPER.into());
    }
    if found.tmpfiles {
        p.backup.push(OLD_TMPFILES.into());
    }
    if let (Some(dev), Some(q)) = (&shaper_dev, &found.root_qdisc) {
        if !matches!(
            q.as_str(),
            "noqueue" | "pfifo_fast" | "fq_codel" | "mq" | "fq" | "noop"
        ) {
            p.clear_qdisc = Some(dev.clone());
        }
    }

    // Segments left by gst-launch.
    for c in &p.cameras {
        let count = found
            .segments
            .get(c)
            .map_or(0, |v| v.iter().filter(|s| is_old_segment(&s.name)).count());
        p.handovers.push(Handover {
            camera: c.clone(),
            count,
        });
    }
    for (dir, segs) in &found.segments {
        if !p.cameras.contains(dir) && !segs.is_empty() {
            p.notes.push(format!(
                "{OLD_RAM_DIR}/{dir} holds {} visdcam-pi segments but no camera {dir} was \
                 found: they stay where they are",
                segs.len()
            ));
        }
    }

    // The new units: only when something old was found (a second run finds nothing).
    let anything_old = !found.units.is_empty() || found.helper || found.tmpfiles;
    if anything_old {
        p.ramlogs = true;
        for c in &p.cameras {
            for u in crate::units::camera_units(c) {
                p.enable.push(u.clone());
                p.start.push(u);
            }
        }
        let timer_on = found
            .new_states
            .get(crate::units::DAYNIGHT_TIMER)
            .cloned()
            .unwrap_or_default();
        if found.units.contains_key(OLD_DAYNIGHT_TIMER) || !timer_on.enabled {
            p.enable.push(crate::units::DAYNIGHT_TIMER.into());
        }
        if found.units.contains_key(OLD_DAYNIGHT_TIMER) || !timer_on.active {
            p.start.push(crate::units::DAYNIGHT_TIMER.into());
        }
        let old_shaper = found.states.get(OLD_SHAPER).cloned().unwrap_or_default();
        if old_shaper.enabled {
            p.enable.push(crate::units::SHAPER_SERVICE.into());
        }
        if old_shaper.active {
            p.start.push(crate::units::SHAPER_SERVICE.into());
        }
    }
    Ok(p)
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return writeln!(
                f,
                "No visdcam-pi install found (no seg-CAMERA/uploader-CAMERA units in \
                 {OLD_UNIT_DIR}, no {OLD_HELPER}, no {OLD_TMPFILES}, no home-cam-*.ts in \
                 {OLD_RAM_DIR}): nothing to migrate."
            );
        }
        writeln!(f, "Found visdcam-pi:")?;
        for l in &self.found {
            writeln!(f, "  {l}")?;
        }
        for l in &self.notes {
            writeln!(f, "  note: {l}")?;
        }
        writeln!(f, "Plan:")?;
        let mut n = 0;
        let mut step = |f: &mut fmt::Formatter<'_>, text: String| {
            n += 1;
            writeln!(f, "  {n:>2}. {text}")
        };
        if let Some(s) = &self.store {
            step(
                f,
                format!(
                    "check that bucket {} at {} accepts profile [{}] of {} (before anything \
                     old is stopped)",
                    s.bucket, s.endpoint, s.profile, s.credentials
                ),
            )?;
        }
        step(
            f,
            format!(
                "make the backup directory {} (with undo.sh, which puts visdcam-pi back)",
                self.backup_dir
            ),
        )?;
        for w in &self.writes {
            step(
                f,
                format!(
                    "write {} (mode {:04o}): {}{}",
                    w.path,
                    w.mode,
                    w.what,
                    if w.replaces {
                        "; the current file is kept in the backup"
                    } else {
                        ""
                    }
                ),
            )?;
        }
        if !self.stop.is_empty() {
            step(f, format!("stop {}", self.stop.join(", ")))?;
        }
        if !self.disable.is_empty() {
            step(f, format!("disable {}", self.disable.join(", ")))?;
        }
        if let Some(dev) = &self.clear_qdisc {
            step(
                f,
                format!(
                    "remove the old shaper's root qdisc on {dev} (tc qdisc del dev {dev} root)"
                ),
            )?;
        }
        if !self.backup.is_empty() {
            step(
                f,
                format!(
                    "move into {}: {}; then reload systemd",
                    self.backup_dir,
                    self.backup.join(", ")
                ),
            )?;
        }
        let total: usize = self.handovers.iter().map(|h| h.count).sum();
        if !self.handovers.is_empty() {
            let how = match &self.ram_root {
                RamRoot::PlainDir => format!(
                    "; {OLD_RAM_DIR} is a plain directory, which the RAM disk would hide: it is \
                     moved to {OLD_RAM_ASIDE} first and emptied into the RAM disk"
                ),
                RamRoot::Symlink { target } => format!(
                    "; {OLD_RAM_DIR} is a symlink to {target}, on which systemd cannot mount: it \
                     goes into the backup and the segments are copied from {target}"
                ),
                _ => String::new(),
            };
            step(
                f,
                format!(
                    "hand the home-cam-*.ts segments left in {OLD_RAM_DIR}/CAMERA (now {}) to the \
                     uploaders as seg-<ms>-<tag>.ts with their mtimes, so their keys are the ones \
                     visdcam-pi would have used{how}",
                    if total == 0 {
                        "none".to_string()
                    } else {
                        self.handovers
                            .iter()
                            .map(|h| format!("{}: {}", h.camera, h.count))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                ),
            )?;
        }
        if self.ramlogs {
            step(
                f,
                "keep the journal in RAM as visdcam-pi kept its logs in /run/visdcam \
                 (`visdcam ramlogs on`; `visdcam logs CAMERA` reads it; `ramlogs off` keeps it \
                 on the SD card)"
                    .into(),
            )?;
        }
        if !self.enable.is_empty() {
            step(f, format!("enable {}", self.enable.join(", ")))?;
        }
        if !self.start.is_empty() {
            step(f, format!("start {}", self.start.join(", ")))?;
        }
        step(f, "run `visdcam doctor`".into())
    }
}

/// A shell script that puts visdcam-pi back from the backup directory: stops and disables
/// what the migration enabled, moves every file back, restores replaced configuration files,
/// and enables and starts the old units again. Segments already handed over stay with the new
/// uploaders (they are uploaded under the same keys either way).
pub fn undo_script(p: &Plan) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut out = String::from(
        "#!/bin/sh\n# Puts visdcam-pi back as it was before `visdcam migrate` (written by it).\n\
         # Run as root: sh undo.sh\nset -e\ncd \"$(dirname \"$0\")\"\n",
    );
    if !p.start.is_empty() || !p.enable.is_empty() {
        let units: BTreeSet<&String> = p.start.iter().chain(&p.enable).collect();
        let list: Vec<String> = units.iter().map(|u| q(u)).collect();
        out.push_str(&format!(
            "systemctl disable --now {} || true\n",
            list.join(" ")
        ));
    }
    for path in &p.backup {
        let saved = q(&format!(".{path}"));
        out.push_str(&format!(
            "if [ -e {saved} ] || [ -L {saved} ]; then mkdir -p {}; mv {saved} {}; fi\n",
            q(parent(path)),
            q(path),
        ));
    }
    for w in &p.writes {
        if w.replaces {
            let saved = q(&format!(".{}", w.path));
            out.push_str(&format!(
                "if [ -e {saved} ]; then cp -p {saved} {}; fi\n",
                q(&w.path)
            ));
        }
    }
    out.push_str("systemctl daemon-reload\n");
    if p.backup.iter().any(|b| b == OLD_TMPFILES) {
        out.push_str(&format!("systemd-tmpfiles --create {OLD_TMPFILES}\n"));
    }
    if !p.restore_enable.is_empty() {
        let list: Vec<String> = p.restore_enable.iter().map(|u| q(u)).collect();
        out.push_str(&format!("systemctl enable {}\n", list.join(" ")));
    }
    if !p.restore_start.is_empty() {
        let list: Vec<String> = p.restore_start.iter().map(|u| q(u)).collect();
        out.push_str(&format!("systemctl start {}\n", list.join(" ")));
    }
    out.push_str("echo 'visdcam-pi is back; /etc/visdcam keeps the migrated configuration'\n");
    out
}

fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

#[cfg(test)]
#[path = "migrate/tests.rs"]
mod tests;
