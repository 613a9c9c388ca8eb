//! The command line: every command, its options and its help text. Parsing only; no I/O.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use lexopt::prelude::*;
use visdcam_core::cli::{parse_duration, parse_seg_seconds};

/// What unit control to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitAction {
    Start,
    Stop,
    Restart,
}

impl UnitAction {
    pub fn verb(&self) -> &'static str {
        match self {
            UnitAction::Start => "start",
            UnitAction::Stop => "stop",
            UnitAction::Restart => "restart",
        }
    }
}

/// `ramlogs on|off|status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RamlogsAction {
    On,
    Off,
    Status,
}

/// `alert check|test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Check,
    Test,
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `visdcam help [COMMAND]`, `visdcam COMMAND --help`, `visdcam` alone.
    Help(Option<&'static str>),
    Version,
    Status {
        cameras: Vec<String>,
        json: bool,
    },
    Units {
        action: UnitAction,
        targets: Vec<String>,
    },
    Logs {
        target: String,
        follow: bool,
        lines: Option<u32>,
    },
    Lsram {
        targets: Vec<String>,
        json: bool,
    },
    Clean {
        targets: Vec<String>,
        older_than: Option<Duration>,
        yes: bool,
    },
    Getdur {
        targets: Vec<String>,
    },
    Setdur {
        camera: String,
        seconds: u32,
    },
    Enable {
        enable: bool,
        targets: Vec<String>,
        now: bool,
    },
    Cameras {
        json: bool,
    },
    Preset {
        target: String,
        preset: String,
    },
    Doctor,
    Ramlogs(RamlogsAction),
    Migrate(MigrateArgs),
    /// `web`: serve the live-view page (visdcam-web.service).
    Web,
    /// `web-password`: store the live-view password's hash.
    WebPassword,
    /// `footage`, `fetch`, `play`: the bucket as a footage library.
    Footage(FootageArgs),
    Metrics {
        http: bool,
    },
    Alert(AlertAction),
    Top {
        once: bool,
    },
}

/// `migrate`'s options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateArgs {
    pub dry_run: bool,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// `--camera CAMERA=URL`, in order.
    pub cameras: Vec<(String, String)>,
}

/// Which footage command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FootageCmd {
    Footage,
    Fetch,
    Play,
}

/// The footage commands' arguments. `range` holds the words after the camera, read at run
/// time (they need the configured time zone and the clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FootageArgs {
    pub cmd: FootageCmd,
    pub camera: String,
    pub range: Vec<String>,
    pub json: bool,
    pub output: Option<PathBuf>,
    pub open: bool,
    pub expires: Option<Duration>,
    pub store: StoreArgs,
}

/// Where the footage is, overriding the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreArgs {
    pub profile: Option<String>,
    pub bucket: Option<String>,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

/// One command's name, synopsis and help.
pub struct CommandHelp {
    pub name: &'static str,
    pub synopsis: &'static str,
    pub summary: &'static str,
    pub details: &'static str,
}

/// The footage commands' time forms, for their help.
macro_rules! footage_times {
    () => {
        "FROM is now, 17:40, 17:40:05, yesterday 17:40, 2026-12-02, 2026-12-02 17:40 or \
2026-12-02T17:40:00+05:30 (local times in KEY_TZ); TO is a time too, or a length such as 15m, \
90s or 1h30m."
    };
}

/// The footage commands' store options, for their help.
macro_rules! footage_store_options {
    () => {
        "  --profile NAME    credentials profile (default: B2_PROFILE, b2); a read-capable key on
                    a desktop while the Pi keeps a write-only one
  --bucket NAME     bucket (default: B2_BUCKET)
  --endpoint URL    S3 endpoint (default: B2_ENDPOINT)
  --region NAME     region (default: B2_REGION, or the profile's)"
    };
}

/// Every command, in the order `visdcam help` lists them.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        name: "status",
        synopsis: "status [CAMERA...] [--json]",
        summary: "state of every camera's units, RAM disk, shaper and day/night timer",
        details:
            "One line per unit: active state, for how long, how often systemd restarted it, and \
the daemon's own status text (the recorder's frame rate and segment, the uploader's queue, last \
upload and drops). Then the RAM disk's use, net-shaper and the day/night timer. Without CAMERA, \
every configured camera.

  --json   print one JSON document instead (stable; see docs/reference/cli.md)",
    },
    CommandHelp {
        name: "start",
        synopsis: "start CAMERA...|all",
        summary: "start the recorder and uploader of cameras",
        details: "Starts seg@CAMERA and uploader@CAMERA over D-Bus, waits for systemd to finish \
and reports each unit's result. Needs root (sudo) or a polkit rule.",
    },
    CommandHelp {
        name: "stop",
        synopsis: "stop CAMERA...|all",
        summary: "stop the recorder and uploader of cameras",
        details: "Stops seg@CAMERA and uploader@CAMERA over D-Bus and waits until they are down. \
Needs root (sudo) or a polkit rule.",
    },
    CommandHelp {
        name: "restart",
        synopsis: "restart CAMERA...|all",
        summary: "restart the recorder and uploader of cameras",
        details: "Restarts seg@CAMERA and uploader@CAMERA over D-Bus (re-reading their \
configuration) and reports each unit's result. Needs root (sudo) or a polkit rule.",
    },
    CommandHelp {
        name: "logs",
        synopsis: "logs CAMERA|all [-f|--follow] [-n|--lines N]",
        summary: "the journal of a camera's units (or of every visdcam unit)",
        details: "Runs journalctl with -u seg@CAMERA.service -u uploader@CAMERA.service (for all: \
every visdcam unit, net-shaper and daynight included).

  -f, --follow     keep printing new lines
  -n, --lines N    show the last N lines (default: journalctl's)",
    },
    CommandHelp {
        name: "lsram",
        synopsis: "lsram [CAMERA...|all] [--json]",
        summary: "segments on the RAM disk: name, size, age, recording/queued, budget",
        details: "Lists each camera's segments in RAM_DIR/CAMERA (oldest first) with size, age \
(time since last written) and state: recording (.ts.part) or queued (.ts, waiting for the \
uploader), then the camera's total against RAM_BUDGET_MB and the file system's free space. \
Without CAMERA, every configured camera.

  --json   print one JSON document instead (stable; see docs/reference/cli.md)",
    },
    CommandHelp {
        name: "clean",
        synopsis: "clean CAMERA...|all [--older-than DURATION] [-y|--yes]",
        summary: "delete queued segments from the RAM disk",
        details: "Deletes queued segments (never the one being recorded) so they are not \
uploaded. Lists what it will delete and asks first, unless --yes.

  --older-than DURATION   only segments closed at least this long ago (90s, 15m, 2h, 1d, 1h30m)
  -y, --yes               do not ask",
    },
    CommandHelp {
        name: "getdur",
        synopsis: "getdur [CAMERA...|all]",
        summary: "print each camera's segment length (SEG_SECONDS) and where it is set",
        details:
            "Prints `CAMERA SECONDS (where)`, where is the file:line that sets SEG_SECONDS or \
`default`. Without CAMERA, every configured camera.",
    },
    CommandHelp {
        name: "setdur",
        synopsis: "setdur CAMERA SECONDS",
        summary: "set a camera's segment length and restart its recorder",
        details:
            "Rewrites SEG_SECONDS in /etc/visdcam/cameras/CAMERA.conf atomically (comments and \
order kept; an invalid value leaves the file untouched), then restarts seg@CAMERA over D-Bus so \
the next segments have the new length. SECONDS: 2 to 3600. Needs root (sudo).",
    },
    CommandHelp {
        name: "enable",
        synopsis: "enable CAMERA...|all [--now]",
        summary: "start cameras' units at boot",
        details: "Enables seg@CAMERA and uploader@CAMERA (into visdcam.target) over D-Bus.

  --now   start them now too",
    },
    CommandHelp {
        name: "disable",
        synopsis: "disable CAMERA...|all [--now]",
        summary: "no longer start cameras' units at boot",
        details: "Disables seg@CAMERA and uploader@CAMERA over D-Bus.

  --now   stop them now too",
    },
    CommandHelp {
        name: "cameras",
        synopsis: "cameras [--json]",
        summary: "list configured cameras with their stream URLs",
        details: "One line per /etc/visdcam/cameras/*.conf: name, CAMERA_URL, segment length, and \
the configuration error if the file is invalid.

  --json   print one JSON document instead",
    },
    CommandHelp {
        name: "preset",
        synopsis: "preset CAMERA|all day|night|auto",
        summary: "apply a camera preset now",
        details:
            "Runs `daynight apply CAMERA PRESET`: day or night (or any PRESET_<NAME>_* preset \
in the configuration), or auto for whichever the schedule says now.",
    },
    CommandHelp {
        name: "footage",
        synopsis: "footage CAMERA [FROM [TO|LENGTH]] [--json] [--profile NAME] [--bucket NAME] [--endpoint URL] [--region NAME]",
        summary: "the timeline of a camera's footage in the bucket: spans and gaps",
        details: concat!("Lists the bucket's segments of CAMERA between FROM and TO (default: today \
since midnight, to now) and prints the recorded spans (start–end, length, segments, size) and \
the gaps between them (camera down, Pi off, segments dropped). Only the key prefixes the range \
can touch are listed (one hour directory each), so the cost follows the range, not the bucket. \
", footage_times!(), " Objects under those prefixes that are not segment keys are counted and named.

  --json            print one JSON document instead (stable; see docs/reference/cli.md)
", footage_store_options!()),
    },
    CommandHelp {
        name: "fetch",
        synopsis: "fetch CAMERA FROM TO|LENGTH [-o FILE] [--profile NAME] [--bucket NAME] [--endpoint URL] [--region NAME]",
        summary: "download a time range of footage as one video file (no re-encoding)",
        details: concat!("Downloads the segments that overlap the range (a few at once, each verified \
against its MD5) and joins them without re-encoding into one file that starts at the keyframe \
at or before FROM and ends with the last frame before TO, with the real start time as its \
creation time. A gap \
in the recording stays a gap in time and is listed. The file is written as FILE.part and \
renamed when complete; Ctrl-C leaves nothing behind. ", footage_times!(), "

  -o, --output FILE   where to write; .mp4 (default), .mkv or .ts (default name:
                      CAMERA_YYYY-MM-DD_HH-MM-SS.mp4 in the current directory)
", footage_store_options!()),
    },
    CommandHelp {
        name: "play",
        synopsis: "play CAMERA FROM [TO|LENGTH] [--open] [--expires DURATION] [-o FILE] [--profile NAME] [--bucket NAME] [--endpoint URL] [--region NAME]",
        summary: "an HLS playlist that plays a range straight from the bucket",
        details: concat!("Writes an HLS playlist (.m3u8) of the range whose entries are presigned GET \
URLs into the bucket, with the wall-clock time of every segment and a discontinuity at every gap \
or recorder restart: VLC, mpv, ffplay and Safari play the footage straight from the bucket, \
nothing copied. Without TO, up to now. ", footage_times!(), "

  --open              hand the playlist to the first player found (mpv, vlc, ffplay)
  --expires DURATION  how long the URLs stay valid (default 1h, at most 7d: B2's limit)
  -o, --output FILE   where to write (default: CAMERA_YYYY-MM-DD_HH-MM-SS.m3u8; - for stdout)
", footage_store_options!()),
    },
    CommandHelp {
        name: "doctor",
        synopsis: "doctor",
        summary: "check configuration, credentials, clock, cameras, RAM disk, plugins and units",
        details: "Runs every check in one go and prints one line per check, ✔ or ✘ with the fix: \
configuration valid, bucket credentials present and accepted (a HEAD request against the \
bucket) and readable by root only, Object Lock on the bucket when OBJECT_LOCK_DAYS asks for it, \
clock synchronised, each camera reachable and streaming MJPEG, RAM disk mounted with room and \
shared by the recorder's and the uploader's users (group visdcam), GStreamer plugins present, \
units enabled and not failed, and where logs go. A check that cannot be made \
here (units without a system bus) is marked – and does not fail. Every check has a timeout; \
the whole run ends within 25 s. Exits 1 if any check fails.",
    },
    CommandHelp {
        name: "ramlogs",
        synopsis: "ramlogs on|off|status",
        summary: "keep the journal in RAM only (saves the SD card), or undo it",
        details:
            "on: installs /etc/systemd/journald.conf.d/visdcam-ramlogs.conf (Storage=volatile, \
RuntimeMaxUse=32M) and restarts systemd-journald over D-Bus; logs are then lost at reboot.
off: removes the drop-in and restarts systemd-journald.
status: says where logs go now.",
    },
    CommandHelp {
        name: "migrate",
        synopsis: "migrate [--dry-run] [--bucket NAME] [--endpoint URL] [--region NAME] [--camera CAMERA=URL]...",
        summary: "move a visdcam-pi install over to visdcam in one go, losing no footage",
        details: "Reads visdcam-pi's units (seg-CAMERA, uploader-CAMERA, visdcam-daynight.timer, \
net-shaper.service in /etc/systemd/system), the scripts they run, /etc/default/uploader-CAMERA \
and root's ~/.aws/credentials and ~/.aws/config (profile b2, its key and region), prints the \
plan, and carries it out: writes /etc/visdcam/cameras/CAMERA.conf (CAMERA_URL, SEG_SECONDS, \
RATE_KBPS), the B2_* keys in visdcam.conf and /etc/visdcam/aws-credentials (0600); checks that \
the bucket accepts the key before anything old is stopped; stops and disables the old units \
(and removes the old shaper's qdisc); moves their files, their scripts, /usr/local/bin/visdcam \
(which shadows this command in PATH) and /etc/tmpfiles.d/ramcam.conf into \
/var/backups/visdcam-pi-DATE, with an undo.sh that puts them back; hands the home-cam-*.ts \
segments left in /mnt/ramcam to the new uploaders with their mtimes, so their keys are the ones \
visdcam-pi would have used; keeps the journal in RAM (ramlogs on); enables and starts the new \
units; runs doctor. A failure after the old units stopped puts them back and starts them again. \
Run again, it finds nothing to do. Needs root (sudo).

  --dry-run          print the plan, change nothing
  --bucket NAME      the bucket, when the uploader scripts do not name it (s3://NAME/)
  --endpoint URL     the S3 endpoint (default: the scripts' B2_ENDPOINT or --endpoint-url,
                     else https://s3.REGION.backblazeb2.com)
  --region NAME      the region (default: the scripts' B2_REGION, else the profile's)
  --camera CAMERA=URL  a camera's stream URL, when its recorder script does not say",
    },
    CommandHelp {
        name: "web",
        synopsis: "web",
        summary: "serve the live-view page (what visdcam-web.service runs)",
        details: "Serves every camera live (multipart MJPEG at /CAMERA.mjpg, the newest frame at \
/CAMERA.jpg) and a page at / with each camera's recorder and uploader state in the words of \
`status` and the segments waiting in RAM. The frames are the ones the recorder receives (its \
live socket under RUN_DIR): watching costs the camera nothing. Listens on WEB_LISTEN (default \
127.0.0.1:8088), or on the socket systemd passes (visdcam-web.socket, not enabled by the \
package: `systemctl enable --now visdcam-web.socket`). Beyond the loopback address it needs the \
password set with `web-password`, and refuses to start without one (exit 78).",
    },
    CommandHelp {
        name: "web-password",
        synopsis: "web-password",
        summary: "set the live-view page's password (stored as an Argon2id hash)",
        details: "Reads the new password twice from standard input (at least 8 characters) and \
stores its Argon2id hash in /etc/visdcam/web-password (root, group visdcam-web, mode 0640). \
The page asks for it (HTTP Basic authentication; any user name) whenever it listens beyond the \
loopback address. Restart visdcam-web.service to use a new one.",
    },
    CommandHelp {
        name: "metrics",
        synopsis: "metrics [--http]",
        summary: "Prometheus metrics of every camera, the units and the RAM disk",
        details: "Prints the Prometheus text exposition of what the recorders and uploaders \
count (frames, segments closed, uploaded and dropped, bytes, upload latency, queue, retries by \
cause, reconnects), the units' states and restarts, the RAM disk and the clock. Read-only; \
counters come from the daemons' files on the RAM disk. visdcam-metrics.socket serves it on \
127.0.0.1:9464 (not enabled by the package; see docs/guide/monitoring.md).

  --http   answer one HTTP request read from stdin (what visdcam-metrics@.service runs for \
each connection)",
    },
    CommandHelp {
        name: "alert",
        synopsis: "alert check|test",
        summary: "check for problems and send alerts (ALERT_URL, ALERT_EMAIL), or send a test",
        details: "check: looks at every camera, the units and the Pi once; raises an alert when \
a camera is down longer than ALERT_CAMERA_DOWN, uploads fail longer than ALERT_UPLOAD_FAILING, \
segments are dropped over the RAM budget, the clock is not synchronised for ALERT_CLOCK_UNSYNCED, \
a unit failed or the \
RAM disk is fuller than ALERT_RAM_DISK_PERCENT, and a \"resolved\" when it clears: once each, \
the alerts of one check in one message. Its state is in /run/visdcam-alert \
(VISDCAM_ALERT_STATE_DIR); visdcam-alert.timer runs it every minute. Delivery: a JSON POST to \
ALERT_URL and a mail to ALERT_EMAIL through sendmail; a failed delivery is retried at the next \
check for a day.
test: sends one test message to every destination now and says how each went (exit 1 if one \
failed).",
    },
    CommandHelp {
        name: "top",
        synopsis: "top [--once]",
        summary: "live view of every camera: fps, segment, queue, upload and uplink rates, alerts",
        details: "Refreshes every 2 s: per camera whether frames arrive and at what rate, \
segments closed, the upload queue, the upload rate against RATE_KBPS, retries; the uplink's \
transmit rate (/sys/class/net), the RAM disk and the open alerts. q quits. When stdout is not \
a terminal it prints plain lines instead of redrawing.

  --once   print one view and exit",
    },
    CommandHelp {
        name: "help",
        synopsis: "help [COMMAND]",
        summary: "show help for visdcam or one command",
        details: "",
    },
];

pub const EXIT_CODES: &str = "Exit status:
  0   success
  1   the operation failed (a unit failed, a check failed, a file could not be written)
  2   usage error (unknown command or option, bad value, unknown camera)
  4   permission denied: run with sudo (or allow it with a polkit rule)
  78  configuration error (a file in /etc/visdcam is invalid, or no camera is configured)
  130 interrupted (Ctrl-C) before it finished; nothing half-written is left";

pub fn command_help(name: &str) -> Option<&'static CommandHelp> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// `visdcam help`.
pub fn main_help() -> String {
    let mut out = String::from(
        "visdcam — control and inspect the visdcam camera recorders\n\n\
         Usage: visdcam COMMAND [ARGS...]\n\nCommands:\n",
    );
    for c in COMMANDS {
        out.push_str(&format!("  {:<9} {}\n", c.name, c.summary));
    }
    out.push_str(
        "\nCAMERA is a file name in /etc/visdcam/cameras/ without .conf; `all` means every one.\n\
         `visdcam help COMMAND` shows a command's options.\n\n",
    );
    out.push_str(EXIT_CODES);
    out.push('\n');
    out
}

/// `visdcam help COMMAND`.
pub fn help_for(c: &CommandHelp) -> String {
    let mut out = format!("Usage: visdcam {}\n\n{}.\n", c.synopsis, c.summary);
    if !c.details.is_empty() {
        out.push('\n');
        out.push_str(c.details);
        out.push('\n');
    }
    out
}

/// A usage error: the message and the command it concerns (for the hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub command: Option<&'static str>,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        match self.command {
            Some(c) => write!(f, "\nUsage: visdcam {}\nTry `visdcam help {c}`.", {
                command_help(c).map_or("", |h| h.synopsis)
            }),
            None => write!(f, "\nTry `visdcam help`."),
        }
    }
}

/// Parses everything after the program name.
pub fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut p = lexopt::Parser::from_args(args);
    let first = p.next().map_err(|e| usage(None, e.to_string()))?;
    let name = match first {
        None => return Ok(Command::Help(None)),
        Some(Short('h') | Long("help")) => return Ok(Command::Help(None)),
        Some(Short('V') | Long("version")) => return Ok(Command::Version),
        Some(Value(v)) => v.string().map_err(|e| usage(None, e.to_string()))?,
        Some(other) => {
            return Err(usage(
                None,
                format!("{} before the command", other.unexpected()),
            ))
        }
    };
    let Some(help) = command_help(&name) else {
        let hint = closest_command(&name)
            .map(|c| format!(" (did you mean `{c}`?)"))
            .unwrap_or_default();
        return Err(usage(None, format!("unknown command `{name}`{hint}")));
    };
    let cmd = help.name;
    let mut c = Collected::default();
    while let Some(arg) = p.next().map_err(|e| usage(Some(cmd), e.to_string()))? {
        let bad = |e: lexopt::Error| usage(Some(cmd), e.to_string());
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help(Some(cmd))),
            Long("json") if matches!(cmd, "status" | "lsram" | "cameras" | "footage") => {
                c.json = true
            }
            Short('o') | Long("output") if matches!(cmd, "fetch" | "play") => {
                c.output = Some(PathBuf::from(p.value().map_err(bad)?));
            }
            Long("open") if cmd == "play" => c.open = true,
            Long("expires") if cmd == "play" => {
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                let d = parse_duration(&v).map_err(|m| usage(Some(cmd), m))?;
                if d.is_zero() || d > MAX_EXPIRES {
                    return Err(usage(
                        Some(cmd),
                        format!("invalid --expires `{v}`: from 1s to 7d (B2's limit for presigned URLs)"),
                    ));
                }
                c.expires = Some(d);
            }
            Long("dry-run") if cmd == "migrate" => c.migrate.dry_run = true,
            Long(name @ ("bucket" | "endpoint" | "region")) if cmd == "migrate" => {
                let name = name.to_string();
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                if v.is_empty() {
                    return Err(usage(Some(cmd), format!("--{name} needs a value")));
                }
                match name.as_str() {
                    "bucket" => c.migrate.bucket = Some(v),
                    "endpoint" => c.migrate.endpoint = Some(v),
                    _ => c.migrate.region = Some(v),
                }
            }
            Long("camera") if cmd == "migrate" => {
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                match v.split_once('=') {
                    Some((cam, url)) if !cam.is_empty() && !url.is_empty() => {
                        c.migrate.cameras.push((cam.to_string(), url.to_string()))
                    }
                    _ => {
                        return Err(usage(
                            Some(cmd),
                            format!("invalid --camera `{v}`: use CAMERA=URL, e.g. cam1=http://192.168.1.33:81/stream"),
                        ))
                    }
                }
            }
            Long(name @ ("profile" | "bucket" | "endpoint" | "region"))
                if matches!(cmd, "footage" | "fetch" | "play") =>
            {
                let name = name.to_string();
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                if v.is_empty() {
                    return Err(usage(Some(cmd), format!("--{name} needs a value")));
                }
                match name.as_str() {
                    "profile" => c.store.profile = Some(v),
                    "bucket" => c.store.bucket = Some(v),
                    "endpoint" => c.store.endpoint = Some(v),
                    _ => c.store.region = Some(v),
                }
            }
            Short('f') | Long("follow") if cmd == "logs" => c.follow = true,
            Short('n') | Long("lines") if cmd == "logs" => {
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                c.lines = Some(v.parse().map_err(|_| {
                    usage(
                        Some(cmd),
                        format!("invalid value `{v}` for --lines: use a whole number"),
                    )
                })?);
            }
            Long("older-than") if cmd == "clean" => {
                let v = p.value().map_err(bad)?.string().map_err(bad)?;
                c.older_than = Some(parse_duration(&v).map_err(|m| usage(Some(cmd), m))?);
            }
            Short('y') | Long("yes") if cmd == "clean" => c.yes = true,
            Long("now") if matches!(cmd, "enable" | "disable") => c.now = true,
            Long("http") if cmd == "metrics" => c.http = true,
            Long("once") if cmd == "top" => c.once = true,
            Value(v) => c
                .positional
                .push(v.string().map_err(|e| usage(Some(cmd), e.to_string()))?),
            other => {
                return Err(usage(
                    Some(cmd),
                    format!("{} for `{cmd}`", other.unexpected()),
                ))
            }
        }
    }
    c.build(cmd)
}

#[derive(Default)]
struct Collected {
    positional: Vec<String>,
    json: bool,
    follow: bool,
    lines: Option<u32>,
    older_than: Option<Duration>,
    yes: bool,
    now: bool,
    output: Option<PathBuf>,
    open: bool,
    expires: Option<Duration>,
    store: StoreArgs,
    migrate: MigrateArgs,
    http: bool,
    once: bool,
}

/// B2's (and S3's) longest validity of a presigned URL.
pub const MAX_EXPIRES: Duration = Duration::from_secs(7 * 86_400);

fn usage(command: Option<&'static str>, message: impl Into<String>) -> UsageError {
    UsageError {
        message: message.into(),
        command,
    }
}

impl Collected {
    fn build(self, cmd: &'static str) -> Result<Command, UsageError> {
        let pos = self.positional;
        let need_targets = |what: &str| -> Result<Vec<String>, UsageError> {
            if pos.is_empty() {
                Err(usage(
                    Some(cmd),
                    format!("`{cmd}` needs {what} (a camera name, several, or `all`)"),
                ))
            } else {
                Ok(pos.clone())
            }
        };
        let too_many = |max: usize| -> Result<(), UsageError> {
            match pos.get(max) {
                Some(extra) => Err(usage(
                    Some(cmd),
                    format!("unexpected argument `{extra}` for `{cmd}`"),
                )),
                None => Ok(()),
            }
        };
        Ok(match cmd {
            "help" => {
                too_many(1)?;
                match pos.first() {
                    None => Command::Help(None),
                    Some(n) => Command::Help(Some(
                        command_help(n)
                            .ok_or_else(|| usage(None, format!("unknown command `{n}`")))?
                            .name,
                    )),
                }
            }
            "status" => Command::Status {
                cameras: pos,
                json: self.json,
            },
            "start" | "stop" | "restart" => Command::Units {
                action: match cmd {
                    "start" => UnitAction::Start,
                    "stop" => UnitAction::Stop,
                    _ => UnitAction::Restart,
                },
                targets: need_targets("cameras")?,
            },
            "logs" => {
                too_many(1)?;
                Command::Logs {
                    target: need_targets("a camera")?.remove(0),
                    follow: self.follow,
                    lines: self.lines,
                }
            }
            "lsram" => Command::Lsram {
                targets: pos,
                json: self.json,
            },
            "clean" => Command::Clean {
                targets: need_targets("cameras")?,
                older_than: self.older_than,
                yes: self.yes,
            },
            "getdur" => Command::Getdur { targets: pos },
            "setdur" => {
                too_many(2)?;
                let (Some(camera), Some(secs)) = (pos.first(), pos.get(1)) else {
                    return Err(usage(
                        Some(cmd),
                        "`setdur` needs a camera and a length in seconds, e.g. `visdcam setdur cam1 180`",
                    ));
                };
                if camera == "all" {
                    return Err(usage(
                        Some(cmd),
                        "`setdur` changes one camera at a time; name it (e.g. cam1)",
                    ));
                }
                Command::Setdur {
                    camera: camera.clone(),
                    seconds: parse_seg_seconds(secs).map_err(|m| usage(Some(cmd), m))?,
                }
            }
            "enable" | "disable" => Command::Enable {
                enable: cmd == "enable",
                targets: need_targets("cameras")?,
                now: self.now,
            },
            "cameras" => {
                too_many(0)?;
                Command::Cameras { json: self.json }
            }
            "preset" => {
                too_many(2)?;
                let (Some(target), Some(preset)) = (pos.first(), pos.get(1)) else {
                    return Err(usage(
                        Some(cmd),
                        "`preset` needs a camera (or `all`) and a preset: day, night or auto",
                    ));
                };
                let ok = !preset.is_empty()
                    && preset
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
                if !ok {
                    return Err(usage(
                        Some(cmd),
                        format!("invalid preset `{preset}`: use day, night, auto or a preset name in lowercase letters and digits"),
                    ));
                }
                Command::Preset {
                    target: target.clone(),
                    preset: preset.clone(),
                }
            }
            "doctor" => {
                too_many(0)?;
                Command::Doctor
            }
            "web" => {
                too_many(0)?;
                Command::Web
            }
            "web-password" => {
                too_many(0)?;
                Command::WebPassword
            }
            "ramlogs" => {
                too_many(1)?;
                Command::Ramlogs(match pos.first().map(String::as_str) {
                    Some("on") => RamlogsAction::On,
                    Some("off") => RamlogsAction::Off,
                    Some("status") | None => RamlogsAction::Status,
                    Some(other) => {
                        return Err(usage(
                            Some(cmd),
                            format!(
                                "invalid argument `{other}` for `ramlogs`: use on, off or status"
                            ),
                        ))
                    }
                })
            }
            "migrate" => {
                too_many(0)?;
                Command::Migrate(self.migrate)
            }
            "footage" | "fetch" | "play" => {
                let Some(camera) = pos.first() else {
                    return Err(usage(
                        Some(cmd),
                        match cmd {
                            "footage" => "`footage` needs a camera, e.g. `visdcam footage cam1 yesterday 17:40 1h`",
                            "fetch" => "`fetch` needs a camera, a start and an end, e.g. `visdcam fetch cam2 yesterday 17:40 15m`",
                            _ => "`play` needs a camera and a start, e.g. `visdcam play cam2 17:40 15m`",
                        },
                    ));
                };
                if camera == "all" {
                    return Err(usage(
                        Some(cmd),
                        format!("`{cmd}` works on one camera at a time; name it (e.g. cam1)"),
                    ));
                }
                Command::Footage(FootageArgs {
                    cmd: match cmd {
                        "footage" => FootageCmd::Footage,
                        "fetch" => FootageCmd::Fetch,
                        _ => FootageCmd::Play,
                    },
                    camera: camera.clone(),
                    range: pos[1..].to_vec(),
                    json: self.json,
                    output: self.output,
                    open: self.open,
                    expires: self.expires,
                    store: self.store,
                })
            }
            "metrics" => {
                too_many(0)?;
                Command::Metrics { http: self.http }
            }
            "alert" => {
                too_many(1)?;
                Command::Alert(match pos.first().map(String::as_str) {
                    Some("check") => AlertAction::Check,
                    Some("test") => AlertAction::Test,
                    Some(other) => {
                        return Err(usage(
                            Some(cmd),
                            format!("invalid argument `{other}` for `alert`: use check or test"),
                        ))
                    }
                    None => return Err(usage(Some(cmd), "`alert` needs check or test")),
                })
            }
            "top" => {
                too_many(0)?;
                Command::Top { once: self.once }
            }
            _ => unreachable!("every command in COMMANDS is handled: {cmd}"),
        })
    }
}

/// A command whose name is one edit away, for typos.
fn closest_command(name: &str) -> Option<&'static str> {
    COMMANDS.iter().map(|c| c.name).find(|c| {
        let (a, b): (Vec<char>, Vec<char>) = (name.chars().collect(), c.chars().collect());
        if a.len().abs_diff(b.len()) > 1 {
            return false;
        }
        let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let suffix = a
            .iter()
            .rev()
            .zip(b.iter().rev())
            .take_while(|(x, y)| x == y)
            .count();
        prefix + suffix + 1 >= a.len().max(b.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Result<Command, String> {
        parse(line.split_whitespace()).map_err(|e| e.to_string())
    }

    fn v(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn monitoring_commands() {
        assert_eq!(p("metrics"), Ok(Command::Metrics { http: false }));
        assert_eq!(p("metrics --http"), Ok(Command::Metrics { http: true }));
        assert_eq!(p("alert check"), Ok(Command::Alert(AlertAction::Check)));
        assert_eq!(p("alert test"), Ok(Command::Alert(AlertAction::Test)));
        assert_eq!(p("top"), Ok(Command::Top { once: false }));
        assert_eq!(p("top --once"), Ok(Command::Top { once: true }));
        assert!(p("alert")
            .unwrap_err()
            .starts_with("`alert` needs check or test\nUsage: visdcam alert check|test"));
        assert!(p("alert send")
            .unwrap_err()
            .starts_with("invalid argument `send` for `alert`: use check or test"));
        assert!(p("top --http")
            .unwrap_err()
            .starts_with("invalid option '--http' for `top`"));
        assert!(p("metrics cam1")
            .unwrap_err()
            .starts_with("unexpected argument `cam1`"));
    }

    #[test]
    fn visdcam_pi_habits_parse() {
        for (line, expect) in [
            (
                "status",
                Command::Status {
                    cameras: vec![],
                    json: false,
                },
            ),
            (
                "status cam2 --json",
                Command::Status {
                    cameras: v(&["cam2"]),
                    json: true,
                },
            ),
            (
                "setdur cam1 180",
                Command::Setdur {
                    camera: "cam1".into(),
                    seconds: 180,
                },
            ),
            (
                "restart cam1",
                Command::Units {
                    action: UnitAction::Restart,
                    targets: v(&["cam1"]),
                },
            ),
            (
                "start cam1 cam2",
                Command::Units {
                    action: UnitAction::Start,
                    targets: v(&["cam1", "cam2"]),
                },
            ),
            (
                "stop all",
                Command::Units {
                    action: UnitAction::Stop,
                    targets: v(&["all"]),
                },
            ),
            (
                "logs cam2 --follow",
                Command::Logs {
                    target: "cam2".into(),
                    follow: true,
                    lines: None,
                },
            ),
            (
                "logs cam2 -f -n 50",
                Command::Logs {
                    target: "cam2".into(),
                    follow: true,
                    lines: Some(50),
                },
            ),
            (
                "logs all --lines=5",
                Command::Logs {
                    target: "all".into(),
                    follow: false,
                    lines: Some(5),
                },
            ),
            (
                "lsram all",
                Command::Lsram {
                    targets: v(&["all"]),
                    json: false,
                },
            ),
            (
                "lsram --json",
                Command::Lsram {
                    targets: vec![],
                    json: true,
                },
            ),
            (
                "clean cam1 --older-than 2h --yes",
                Command::Clean {
                    targets: v(&["cam1"]),
                    older_than: Some(Duration::from_secs(7200)),
                    yes: true,
                },
            ),
            (
                "clean all -y",
                Command::Clean {
                    targets: v(&["all"]),
                    older_than: None,
                    yes: true,
                },
            ),
            ("getdur", Command::Getdur { targets: vec![] }),
            (
                "getdur all",
                Command::Getdur {
                    targets: v(&["all"]),
                },
            ),
            (
                "enable cam1 --now",
                Command::Enable {
                    enable: true,
                    targets: v(&["cam1"]),
                    now: true,
                },
            ),
            (
                "disable all",
                Command::Enable {
                    enable: false,
                    targets: v(&["all"]),
                    now: false,
                },
            ),
            ("cameras", Command::Cameras { json: false }),
            (
                "preset all night",
                Command::Preset {
                    target: "all".into(),
                    preset: "night".into(),
                },
            ),
            ("doctor", Command::Doctor),
            ("web", Command::Web),
            ("web-password", Command::WebPassword),
            ("ramlogs on", Command::Ramlogs(RamlogsAction::On)),
            ("ramlogs off", Command::Ramlogs(RamlogsAction::Off)),
            ("ramlogs", Command::Ramlogs(RamlogsAction::Status)),
            ("migrate", Command::Migrate(MigrateArgs::default())),
            (
                "migrate --dry-run --bucket visd-cctv --camera cam2=http://10.0.0.2:81/stream",
                Command::Migrate(MigrateArgs {
                    dry_run: true,
                    bucket: Some("visd-cctv".into()),
                    cameras: vec![("cam2".into(), "http://10.0.0.2:81/stream".into())],
                    ..MigrateArgs::default()
                }),
            ),
            ("", Command::Help(None)),
            ("--help", Command::Help(None)),
            ("help", Command::Help(None)),
            ("help setdur", Command::Help(Some("setdur"))),
            ("setdur --help", Command::Help(Some("setdur"))),
            ("clean -h", Command::Help(Some("clean"))),
            ("--version", Command::Version),
        ] {
            assert_eq!(p(line), Ok(expect), "{line}");
        }
    }

    #[test]
    fn footage_commands_parse() {
        let fa = |cmd, camera: &str, range: &[&str]| FootageArgs {
            cmd,
            camera: camera.into(),
            range: v(range),
            json: false,
            output: None,
            open: false,
            expires: None,
            store: StoreArgs::default(),
        };
        assert_eq!(
            p("footage cam2"),
            Ok(Command::Footage(fa(FootageCmd::Footage, "cam2", &[])))
        );
        let mut want = fa(FootageCmd::Footage, "cam2", &["yesterday", "17:40", "1h"]);
        want.json = true;
        assert_eq!(
            p("footage cam2 yesterday 17:40 1h --json"),
            Ok(Command::Footage(want))
        );
        let mut want = fa(FootageCmd::Fetch, "cam1", &["17:40", "15m"]);
        want.output = Some(PathBuf::from("clip.mkv"));
        want.store = StoreArgs {
            profile: Some("b2-read".into()),
            bucket: Some("b".into()),
            endpoint: Some("https://s3.example".into()),
            region: Some("r".into()),
        };
        assert_eq!(
            p("fetch cam1 17:40 15m -o clip.mkv --profile b2-read --bucket b --endpoint https://s3.example --region r"),
            Ok(Command::Footage(want))
        );
        let mut want = fa(FootageCmd::Play, "cam1", &["17:40"]);
        want.open = true;
        want.expires = Some(Duration::from_secs(600));
        assert_eq!(
            p("play cam1 17:40 --open --expires 10m"),
            Ok(Command::Footage(want))
        );
    }

    #[test]
    fn footage_usage_errors() {
        for (line, expect) in [
            ("fetch", "`fetch` needs a camera, a start and an end, e.g. `visdcam fetch cam2 yesterday 17:40 15m`"),
            ("footage all", "`footage` works on one camera at a time; name it (e.g. cam1)"),
            ("play cam1 17:40 --expires 8d", "invalid --expires `8d`: from 1s to 7d (B2's limit for presigned URLs)"),
            ("play cam1 17:40 --expires 0s", "invalid --expires `0s`: from 1s to 7d (B2's limit for presigned URLs)"),
            ("footage cam1 --open", "invalid option '--open' for `footage`"),
            ("footage cam1 -o x.mp4", "invalid option '-o' for `footage`"),
        ] {
            let e = p(line).unwrap_err();
            assert!(e.starts_with(expect), "{line}: {e}");
        }
    }

    #[test]
    fn usage_errors_say_exactly_what_is_wrong() {
        for (line, expect) in [
            (
                "stats",
                "unknown command `stats` (did you mean `status`?)\nTry `visdcam help`.",
            ),
            ("frobnicate", "unknown command `frobnicate`\nTry `visdcam help`."),
            (
                "setdur cam1 abc",
                "invalid segment length `abc`: `abc` is not a whole number; allowed: an integer \
                 from 2 to 3600 (seconds)\nUsage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.",
            ),
            (
                "setdur cam1 1",
                "invalid segment length `1`: 1 is out of range; allowed: an integer from 2 to \
                 3600 (seconds)\nUsage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.",
            ),
            (
                "setdur cam1",
                "`setdur` needs a camera and a length in seconds, e.g. `visdcam setdur cam1 180`\n\
                 Usage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.",
            ),
            (
                "setdur all 60",
                "`setdur` changes one camera at a time; name it (e.g. cam1)\n\
                 Usage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.",
            ),
            (
                "setdur cam1 60 70",
                "unexpected argument `70` for `setdur`\n\
                 Usage: visdcam setdur CAMERA SECONDS\nTry `visdcam help setdur`.",
            ),
            (
                "restart",
                "`restart` needs cameras (a camera name, several, or `all`)\n\
                 Usage: visdcam restart CAMERA...|all\nTry `visdcam help restart`.",
            ),
            (
                "logs",
                "`logs` needs a camera (a camera name, several, or `all`)\n\
                 Usage: visdcam logs CAMERA|all [-f|--follow] [-n|--lines N]\nTry `visdcam help logs`.",
            ),
            (
                "logs cam1 -n many",
                "invalid value `many` for --lines: use a whole number\n\
                 Usage: visdcam logs CAMERA|all [-f|--follow] [-n|--lines N]\nTry `visdcam help logs`.",
            ),
            (
                "logs cam1 cam2",
                "unexpected argument `cam2` for `logs`\n\
                 Usage: visdcam logs CAMERA|all [-f|--follow] [-n|--lines N]\nTry `visdcam help logs`.",
            ),
            (
                "clean cam1 --older-than soon",
                "invalid duration `soon`: use a number with s, m, h or d, such as 90s, 15m, 2h or 1h30m\n\
                 Usage: visdcam clean CAMERA...|all [--older-than DURATION] [-y|--yes]\nTry `visdcam help clean`.",
            ),
            (
                "clean cam1 --older-than",
                "missing argument for option '--older-than'\n\
                 Usage: visdcam clean CAMERA...|all [--older-than DURATION] [-y|--yes]\nTry `visdcam help clean`.",
            ),
            (
                "status --follow",
                "invalid option '--follow' for `status`\n\
                 Usage: visdcam status [CAMERA...] [--json]\nTry `visdcam help status`.",
            ),
            (
                "getdur --json",
                "invalid option '--json' for `getdur`\n\
                 Usage: visdcam getdur [CAMERA...|all]\nTry `visdcam help getdur`.",
            ),
            (
                "ramlogs maybe",
                "invalid argument `maybe` for `ramlogs`: use on, off or status\n\
                 Usage: visdcam ramlogs on|off|status\nTry `visdcam help ramlogs`.",
            ),
            (
                "preset cam1 Dusk!",
                "invalid preset `Dusk!`: use day, night, auto or a preset name in lowercase letters and digits\n\
                 Usage: visdcam preset CAMERA|all day|night|auto\nTry `visdcam help preset`.",
            ),
            (
                "migrate --camera cam2",
                "invalid --camera `cam2`: use CAMERA=URL, e.g. cam1=http://192.168.1.33:81/stream\n\
                 Usage: visdcam migrate [--dry-run] [--bucket NAME] [--endpoint URL] [--region NAME] [--camera CAMERA=URL]...\n\
                 Try `visdcam help migrate`.",
            ),
            ("help nothing", "unknown command `nothing`\nTry `visdcam help`."),
            ("--json status", "invalid option '--json' before the command\nTry `visdcam help`."),
        ] {
            assert_eq!(p(line), Err(expect.to_string()), "{line}");
        }
    }

    #[test]
    fn every_command_has_help_and_appears_in_the_overview() {
        let overview = main_help();
        for c in COMMANDS {
            assert!(overview.contains(&format!("  {:<9} {}", c.name, c.summary)));
            let h = help_for(c);
            assert!(h.starts_with(&format!("Usage: visdcam {}", c.name)), "{h}");
            assert_eq!(
                p(&format!("help {}", c.name)),
                Ok(Command::Help(Some(c.name)))
            );
        }
        assert!(overview.contains("4   permission denied"));
        assert!(overview.contains("78  configuration error"));
    }
}

#[cfg(test)]
/// Escapes text for roff: backslashes, and a leading `.` or `'` that would start a request.
fn roff(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The man page (docs/man/visdcam.1), rendered from the same help texts as `visdcam help`
/// by the test below, so the page cannot drift from the binary.
#[cfg(test)]
pub fn man_page() -> String {
    let mut out = String::from(
        ".\\\" Generated from crates/visdcam/src/args.rs by\n\
         .\\\" `VISDCAM_BLESS=1 cargo test -p visdcam --bin visdcam man_page`; do not edit by hand.\n\
         .TH VISDCAM 1 \"\" \"visdcam\" \"User Commands\"\n\
         .SH NAME\nvisdcam \\- control and inspect the visdcam camera recorders\n\
         .SH SYNOPSIS\n.B visdcam\n.I COMMAND\n[\\fIARGS\\fR...]\n\
         .SH DESCRIPTION\n\
         visdcam records ESP32\\-CAM cameras on a Raspberry Pi: seg@\\fICAMERA\\fR.service \
         records a camera's MJPEG stream into MPEG\\-TS segments on a RAM disk, \
         uploader@\\fICAMERA\\fR.service uploads them to Backblaze B2. This command starts, stops \
         and inspects them. It talks to systemd over the system D\\-Bus only (never through \
         systemctl); DBUS_SYSTEM_BUS_ADDRESS overrides the bus address.\n.PP\n\
         \\fICAMERA\\fR is a file name in /etc/visdcam/cameras/ without .conf; \\fBall\\fR means \
         every configured camera. Commands that start, stop or change something need root \
         (sudo) or a polkit rule.\n.SH COMMANDS\n",
    );
    for c in COMMANDS {
        out.push_str(&format!(
            ".TP\n.B visdcam {}\n{}.\n",
            roff(c.synopsis),
            roff(c.summary)
        ));
        if !c.details.is_empty() {
            for para in c.details.split("\n\n") {
                if para.trim_start().starts_with('-') {
                    out.push_str(".RS\n.nf\n");
                    out.push_str(&roff(para));
                    out.push_str("\n.fi\n.RE\n");
                } else {
                    out.push_str(".IP\n");
                    out.push_str(&roff(para));
                    out.push('\n');
                }
            }
        }
    }
    out.push_str(
        ".SH ENVIRONMENT\n\
         .TP\n.B VISDCAM_CONFIG_DIR\nThe configuration directory (default /etc/visdcam).\n\
         .TP\n.B DBUS_SYSTEM_BUS_ADDRESS\nThe system bus (default unix:path=/run/dbus/system_bus_socket).\n\
         .TP\n.B VISDCAM_DAYNIGHT\nThe daynight binary \\fBpreset\\fR runs (default: beside visdcam, else /usr/bin/daynight).\n\
         .SH EXIT STATUS\n.nf\n",
    );
    for line in EXIT_CODES.lines().skip(1) {
        out.push_str(&roff(line.trim_start()));
        out.push('\n');
    }
    out.push_str(
        ".fi\n.SH FILES\n\
         /etc/visdcam/visdcam.conf, /etc/visdcam/cameras/\\fICAMERA\\fR.conf, \
         /etc/visdcam/aws\\-credentials, /etc/systemd/journald.conf.d/visdcam\\-ramlogs.conf\n\
         .SH SEE ALSO\n\\fBjournalctl\\fR(1), \\fBsystemctl\\fR(1), \
         /usr/share/doc/visdcam/reference/cli.md, /usr/share/doc/visdcam/reference/config.md\n",
    );
    out
}

#[cfg(test)]
mod man_tests {
    use super::*;

    #[test]
    fn man_page_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/man/visdcam.1");
        let want = man_page();
        if std::env::var("VISDCAM_BLESS").is_ok_and(|v| v == "1") {
            std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/man/visdcam.1 is out of date: run VISDCAM_BLESS=1 cargo test -p visdcam --bin visdcam man_page"
        );
        for c in COMMANDS {
            assert!(want.contains(&format!(".B visdcam {}", roff(c.synopsis))));
        }
    }

    #[test]
    fn reference_documents_every_command() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/reference/cli.md");
        let doc = std::fs::read_to_string(path).unwrap();
        for c in COMMANDS {
            assert!(
                doc.contains(&format!("`visdcam {}`", c.synopsis.replace('|', "\\|"))),
                "docs/reference/cli.md lacks `visdcam {}`",
                c.synopsis
            );
        }
        for code in ["| 0 |", "| 1 |", "| 2 |", "| 4 |", "| 78 |", "| 130 |"] {
            assert!(doc.contains(code), "exit code {code} undocumented");
        }
    }
}
