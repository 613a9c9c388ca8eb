//! `alert check|test`: one look at the Pi (`monitor::gather`), the state machine of
//! `core::alerts` over the state file in `VISDCAM_ALERT_STATE_DIR` (default
//! `/run/visdcam-alert`, the unit's `RuntimeDirectory=`), and delivery of what changed: a JSON
//! POST to `ALERT_URL`, a mail through `sendmail` to `ALERT_EMAIL`. Messages are queued in the
//! state file before any delivery, so a failed or interrupted one is tried again at the next
//! check (for a day); every attempt is bounded, and the checker is its own process, so nothing
//! here can hold up recording or uploading.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use visdcam_core::alerts::{
    enqueue, messages, observe, step, test_message, State, Thresholds, OUTBOX_MAX_AGE_S,
};
use visdcam_core::config::Settings;
use visdcam_daemon::config::load_global_from;
use visdcam_daemon::fsutil::write_atomic;

use crate::args::AlertAction;
use crate::fail::{self, Failure};
use crate::monitor::{gather, unix_now};
use crate::Ctx;

/// Where the state lives unless `VISDCAM_ALERT_STATE_DIR` says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/run/visdcam-alert";
pub const STATE_FILE: &str = "state";
/// The checker's own units, watched like the others.
pub const ALERT_UNITS: &[&str] = &["visdcam-alert.service"];
/// One webhook request, all of it (connect, send, answer).
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// One sendmail run.
const SENDMAIL_TIMEOUT: Duration = Duration::from_secs(30);
/// Reading the journal for the alerts open before a reboot.
const JOURNAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries stop for this check once this much time went on them (the rest wait).
const DELIVERY_BUDGET: Duration = Duration::from_secs(40);

pub fn state_dir() -> PathBuf {
    std::env::var_os("VISDCAM_ALERT_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_STATE_DIR), PathBuf::from)
}

/// The state as the last check left it (empty when there is none).
pub fn load_state(dir: &Path) -> State {
    std::fs::read_to_string(dir.join(STATE_FILE))
        .map(|t| State::parse(&t))
        .unwrap_or_default()
}

fn sendmail() -> Option<PathBuf> {
    ["/usr/sbin/sendmail", "/usr/lib/sendmail"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// The channels configured (and usable) now.
fn channels(g: &Settings) -> Vec<&'static str> {
    let mut ch = Vec::new();
    if g.alert_url.is_some() {
        ch.push("webhook");
    }
    if g.alert_email.is_some() {
        ch.push("email");
    }
    ch
}

fn post(url: &str, body: &str) -> Result<(), String> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("visdcam/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent();
    let r = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(body)
        .map_err(|e| e.to_string())?;
    let code = r.status().as_u16();
    if (200..300).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP {code}"))
    }
}

fn mail(to: &str, body: &str) -> Result<(), String> {
    let prog = sendmail().ok_or("no sendmail installed (apt-get install a mail transfer agent)")?;
    let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let subject = v["title"].as_str().unwrap_or("visdcam alert");
    let text = v["message"].as_str().unwrap_or("");
    let mail = format!(
        "To: {to}\nSubject: {}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n",
        subject.replace(['\r', '\n'], " ")
    );
    let mut child = Command::new(&prog)
        .args(["-t", "-oi"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", prog.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(mail.as_bytes())
            .map_err(|e| format!("{}: {e}", prog.display()))?;
    }
    let end = Instant::now() + SENDMAIL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(()),
            Ok(Some(st)) => return Err(format!("{} exited with {st}", prog.display())),
            Ok(None) if Instant::now() >= end => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} did not finish within 30 s", prog.display()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn deliver(g: &Settings, channel: &str, body: &str) -> Result<(), String> {
    match (channel, &g.alert_url, &g.alert_email) {
        ("webhook", Some(url), _) => post(url, body),
        ("email", _, Some(to)) => mail(to, body),
        _ => Err(format!("{channel} is no longer configured")),
    }
}

/// Tries every queued message once (oldest first, within [`DELIVERY_BUDGET`]); drops those
/// delivered, no longer configured, or older than a day.
fn flush(g: &Settings, state: &mut State, now: i64) {
    let started = Instant::now();
    let mut keep = Vec::new();
    for mut m in std::mem::take(&mut state.outbox) {
        if started.elapsed() >= DELIVERY_BUDGET {
            keep.push(m);
            continue;
        }
        let title = serde_json::from_str::<serde_json::Value>(&m.body)
            .ok()
            .and_then(|v| v["title"].as_str().map(str::to_string))
            .unwrap_or_default();
        match deliver(g, &m.channel, &m.body) {
            Ok(()) => println!("sent by {}: {title}", m.channel),
            Err(e) => {
                m.attempts += 1;
                let configured = channels(g).contains(&m.channel.as_str());
                if !configured || now - m.created >= OUTBOX_MAX_AGE_S {
                    eprintln!(
                        "visdcam: giving up on sending by {} after {} attempts ({e}): {title}",
                        m.channel, m.attempts
                    );
                } else {
                    eprintln!(
                        "visdcam: sending by {} failed ({e}); retried at the next check: {title}",
                        m.channel
                    );
                    keep.push(m);
                }
            }
        }
    }
    state.outbox = keep;
}

/// The alert unit's newest journal lines, newest first (empty when there is no journal or it
/// cannot be read: a volatile journal, `visdcam ramlogs on`, forgets across a reboot).
fn journal_tail() -> String {
    let Ok(mut child) = Command::new("journalctl")
        .args([
            "-u",
            ALERT_UNITS[0],
            "-o",
            "cat",
            "-r",
            "-n",
            "500",
            "-q",
            "--no-pager",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return String::new();
    };
    let mut out = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut out, &mut text);
        text
    });
    let end = Instant::now() + JOURNAL_TIMEOUT;
    while Instant::now() < end {
        if let Ok(Some(_)) = child.try_wait() {
            return reader.join().unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    String::new()
}

fn save(dir: &Path, state: &State) -> fail::Result<()> {
    write_atomic(&dir.join(STATE_FILE), state.render().as_bytes()).map_err(|e| {
        Failure::failed(format!(
            "cannot write {}: {e}",
            dir.join(STATE_FILE).display()
        ))
    })
}

/// Holds the state directory's lock: one check at a time (the timer's and a person's).
fn lock(dir: &Path) -> fail::Result<nix::fcntl::Flock<File>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::failed(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("lock");
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Failure::failed(format!("cannot open {}: {e}", path.display())))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Failure::failed(format!("cannot lock {}: {e}", path.display())))
}

pub fn run(ctx: &Ctx, action: AlertAction) -> fail::Result<()> {
    let g = load_global_from(&ctx.dir)?;
    let dir = state_dir();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    match action {
        AlertAction::Test => {
            let ch = channels(&g);
            if ch.is_empty() {
                return Err(Failure::config(format!(
                    "no destination: set ALERT_URL and/or ALERT_EMAIL in {}/visdcam.conf",
                    ctx.dir_str()
                )));
            }
            let body = test_message(&host, unix_now()).json();
            let mut failed = 0;
            for c in ch {
                match deliver(&g, c, &body) {
                    Ok(()) => println!("✔ {c}: sent"),
                    Err(e) => {
                        failed += 1;
                        println!("✘ {c}: {e}");
                    }
                }
            }
            if failed > 0 {
                return Err(Failure::failed(format!("{failed} destination(s) failed")));
            }
            Ok(())
        }
        AlertAction::Check => {
            let _lock = lock(&dir)?;
            // No state file: a fresh /run (a reboot). The alerts raised before it come back
            // from the journal line the unit printed last, so they are neither repeated nor
            // left without their "resolved".
            let mut state = if dir.join(STATE_FILE).exists() {
                load_state(&dir)
            } else {
                State::from_open_line(&journal_tail())
            };
            let open_before = state.open_line();
            let snap = gather(ctx, ALERT_UNITS, false);
            let t = Thresholds {
                camera_down_s: g.alert_camera_down_s as i64,
                upload_failing_s: g.alert_upload_failing_s as i64,
                clock_unsynced_s: g.alert_clock_unsynced_s as i64,
                ram_disk_percent: g.alert_ram_disk_percent,
            };
            let conds = observe(&snap, &mut state, &t);
            let changes = step(&mut state, conds, snap.now_unix, &t);
            let ch = channels(&g);
            for m in messages(&changes, &snap.host, snap.now_unix, g.key_tz) {
                println!("{}: {}", m.event.id(), m.title);
                enqueue(&mut state, &ch, &m.json(), snap.now_unix);
            }
            // Queued before any attempt: an interrupted delivery is retried, never lost.
            save(&dir, &state)?;
            let open_now = state.open_line();
            if open_now != open_before {
                println!("{open_now}");
            }
            if !state.outbox.is_empty() {
                flush(&g, &mut state, snap.now_unix);
                save(&dir, &state)?;
            }
            Ok(())
        }
    }
}
