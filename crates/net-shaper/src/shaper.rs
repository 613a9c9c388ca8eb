//! `apply`, `clear` and `status`: reads the live state, asks `visdcam_core::tcplan` what to do,
//! runs it with `tc`, and rolls back to the previous root qdisc when anything fails halfway.
//! Also owns the small state file that remembers a non-default previous root for `clear`.

use std::fs;
use std::io;
use std::path::PathBuf;

use visdcam_core::tcplan::{self, Leaf, PriorRoot, RootState, Shaper};
use visdcam_daemon::fsutil::write_atomic;

use crate::error::Error;
use crate::tc::Tc;

/// Outcome of `status`: installed or not (the exit code differs).
pub enum Status {
    Installed,
    NotInstalled,
}

/// tc converts sizes through the clock figures in /proc/net/psched; without them (a unit with
/// `ProcSubset=pid`) it silently computes bursts 16 times too small, so refuse instead.
fn check_psched() -> Result<(), Error> {
    fs::read_to_string("/proc/net/psched")
        .map(|_| ())
        .map_err(Error::Psched)
}

/// The interface of the default route (IPv4, else IPv6) of this process's network namespace.
pub fn default_device() -> Result<String, Error> {
    // /proc/self/net: /proc/net is hidden when /proc is mounted with subset=pid.
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    tcplan::default_route_v4(&read("/proc/self/net/route"))
        .or_else(|| tcplan::default_route_v6(&read("/proc/self/net/ipv6_route")))
        .ok_or(Error::NoDefaultRoute)
}

/// Where the previous root of `dev` is remembered: `$RUNTIME_DIRECTORY` (systemd's
/// `RuntimeDirectory=`, which lives exactly as long as the service is active), else
/// /run/net-shaper. The network namespace is part of the name, as device names repeat
/// across namespaces.
fn state_path(dev: &str) -> PathBuf {
    let dir = std::env::var("RUNTIME_DIRECTORY")
        .ok()
        .and_then(|v| {
            v.split(':')
                .next()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from("/run/net-shaper"));
    let ns = fs::read_link("/proc/self/ns/net")
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            (!digits.is_empty()).then_some(digits)
        })
        .unwrap_or_else(|| "0".to_string());
    dir.join(format!("{dev}.{ns}.prior-root"))
}

fn read_prior(dev: &str) -> Result<Option<PriorRoot>, Error> {
    let path = state_path(dev);
    match fs::read_to_string(&path) {
        Ok(text) => PriorRoot::from_line(&text)
            .map(Some)
            .map_err(|m| Error::State {
                dev: dev.to_string(),
                path,
                what: "use",
                source: io::Error::new(io::ErrorKind::InvalidData, m),
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::State {
            dev: dev.to_string(),
            path,
            what: "read",
            source,
        }),
    }
}

fn write_prior(dev: &str, prior: &PriorRoot) -> Result<(), Error> {
    let path = state_path(dev);
    let err = |source| Error::State {
        dev: dev.to_string(),
        path: path.clone(),
        what: "write",
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(err)?;
    }
    write_atomic(&path, prior.to_line().as_bytes()).map_err(err)
}

fn forget_prior(dev: &str) -> Result<(), Error> {
    let path = state_path(dev);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::State {
            dev: dev.to_string(),
            path,
            what: "remove",
            source,
        }),
    }
}

/// Takes the device back to `prior` (or the kernel default) from whatever is there now.
/// Returns whether that worked and a sentence describing the result, for error messages.
fn roll_back(tc: &Tc, dev: &str, prior: Option<&PriorRoot>) -> (bool, String) {
    let live = match tc.qdiscs(dev, false) {
        Ok(q) => tcplan::classify_root(&q),
        Err(e) => return (false, format!("could not check what is left: {e}")),
    };
    let cmds = tcplan::restore_commands(dev, &live, prior);
    let back_to = match prior {
        Some(p) => format!("the previous root `{p}`"),
        None => "the kernel's default qdisc".to_string(),
    };
    match tc.batch(&cmds) {
        Ok(Ok(())) => (true, format!("rolled back to {back_to}")),
        Ok(Err(f)) => (
            false,
            format!("rolling back to {back_to} failed too: {}", f.message),
        ),
        Err(e) => (false, format!("rolling back failed: {e}")),
    }
}

/// Installs the plan; returns the leaf kind that went in.
pub fn apply(tc: &Tc, plan: &Shaper) -> Result<Leaf, Error> {
    check_psched()?;
    let dev = plan.dev();
    let root = tcplan::classify_root(&tc.qdiscs(dev, false)?);
    let prior = match &root {
        RootState::Foreign { kind, handle } => {
            return Err(Error::Refused {
                dev: dev.to_string(),
                kind: kind.clone(),
                handle: handle.clone(),
            })
        }
        // Re-apply: whatever was remembered the first time still stands.
        RootState::Ours => read_prior(dev)?,
        RootState::KernelDefault { .. } => {
            forget_prior(dev)?;
            None
        }
        RootState::Restorable(p) => {
            write_prior(dev, p)?;
            Some(p.clone())
        }
    };
    let mut replace_ours = root == RootState::Ours;
    for leaf in [Leaf::FqCodel, Leaf::Fifo] {
        let mut cmds = plan.apply_commands(leaf, replace_ours);
        break_for_test(&mut cmds, dev);
        let failure = match tc.batch(&cmds)? {
            Ok(()) => {
                log::info!("{}; leaf qdiscs: {}", plan.describe(), leaf.kind());
                return Ok(leaf);
            }
            Err(f) => f,
        };
        let (rolled_back, rollback) = roll_back(tc, dev, prior.as_ref());
        let missing_fq_codel = leaf == Leaf::FqCodel
            && failure
                .command
                .as_ref()
                .is_some_and(|c| c.creates_leaf(Leaf::FqCodel.kind()))
            && tcplan::is_missing_kind(&failure.message)
            && rolled_back;
        if missing_fq_codel {
            log::info!(
                "dev {dev}: this kernel has no fq_codel ({}); using {} leaves",
                failure.message,
                Leaf::Fifo.kind()
            );
            replace_ours = false;
            continue;
        }
        if rolled_back && prior.is_some() {
            forget_prior(dev)?;
        }
        return Err(Error::Apply {
            dev: dev.to_string(),
            command: failure.command,
            message: failure.message,
            rollback,
        });
    }
    unreachable!("the FIFO attempt either returns or fails")
}

/// Test seam: `NET_SHAPER_BREAK_AT=N` puts a command the kernel must refuse (a leaf under a
/// class that does not exist) before the N-th command of the plan, so tests can watch a real
/// failure halfway through and the rollback after it.
fn break_for_test(cmds: &mut Vec<tcplan::TcCommand>, dev: &str) {
    let Some(n) = std::env::var("NET_SHAPER_BREAK_AT")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return;
    };
    let bad = tcplan::TcCommand(
        [
            "qdisc", "add", "dev", dev, "parent", "7664:99", "handle", "7667:", "pfifo",
        ]
        .map(String::from)
        .to_vec(),
    );
    cmds.insert(n.saturating_sub(1).min(cmds.len()), bad);
}

/// Removes visdcam's tree and puts back the root that was there before `apply`. Returns what
/// the device was left with.
pub fn clear(tc: &Tc, dev: &str) -> Result<String, Error> {
    check_psched()?;
    let root = tcplan::classify_root(&tc.qdiscs(dev, false)?);
    let prior = read_prior(dev)?;
    let cmds = tcplan::restore_commands(dev, &root, prior.as_ref());
    if cmds.is_empty() {
        forget_prior(dev)?;
        return Ok(format!(
            "dev {dev}: no visdcam shaper installed; left as it is"
        ));
    }
    if let Err(f) = tc.batch(&cmds)? {
        return Err(Error::Restore {
            dev: dev.to_string(),
            command: f.command,
            message: f.message,
        });
    }
    forget_prior(dev)?;
    Ok(match prior {
        Some(p) => format!("dev {dev}: shaper removed; root back to `{p}`"),
        None => format!("dev {dev}: shaper removed; root back to the kernel default"),
    })
}

/// Prints the plan, the live state and the per-class counters.
pub fn status(tc: &Tc, plan: &Shaper) -> Result<Status, Error> {
    let dev = plan.dev();
    let qdiscs = tc.qdiscs(dev, true)?;
    let classes = tc.classes(dev, true)?;
    let live = tcplan::live_state(&qdiscs, &classes);
    let leaf = match live.leaves.first() {
        Some((_, k)) if k == Leaf::Fifo.kind() => Leaf::Fifo,
        _ => Leaf::FqCodel,
    };
    let cmds = plan.apply_commands(leaf, false);
    print!("{}", tcplan::render_status(plan, &live, &cmds));
    Ok(if live.root == RootState::Ours {
        Status::Installed
    } else {
        Status::NotInstalled
    })
}
