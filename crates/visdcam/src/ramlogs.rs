//! `ramlogs on|off|status`: the journald drop-in that keeps logs in RAM, and where logs go.

use std::io;
use std::path::Path;

use visdcam_core::cli::{log_storage, LogStorage, RAMLOGS_DROPIN, RAMLOGS_DROPIN_TEXT};
use visdcam_daemon::fsutil::write_atomic;

use crate::args::RamlogsAction;
use crate::fail::{self, Exit, Failure, SUDO_HINT};
use crate::systemd::Systemd;
use crate::units::run_jobs;

const JOURNALD: &str = "systemd-journald.service";

/// journald's configuration texts in the order it applies them (main file, then drop-ins by
/// file name; a name in /etc hides the same name in /run and /usr/lib).
fn journald_texts() -> Vec<String> {
    let mut texts = vec![std::fs::read_to_string("/etc/systemd/journald.conf").unwrap_or_default()];
    let mut dropins: std::collections::BTreeMap<String, String> = Default::default();
    for dir in [
        "/usr/lib/systemd/journald.conf.d",
        "/run/systemd/journald.conf.d",
        "/etc/systemd/journald.conf.d",
    ] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                if let Ok(t) = std::fs::read_to_string(e.path()) {
                    dropins.insert(name, t);
                }
            }
        }
    }
    texts.extend(dropins.into_values());
    texts
}

/// Where journald keeps logs on this machine now (from its configuration).
pub fn current_storage() -> LogStorage {
    let texts = journald_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    log_storage(&refs, Path::new("/var/log/journal").is_dir())
}

fn write_failure(what: &str, e: &io::Error) -> Failure {
    if e.kind() == io::ErrorKind::PermissionDenied {
        Failure::new(
            Exit::Permission,
            format!("cannot {what} {RAMLOGS_DROPIN}: {SUDO_HINT}"),
        )
    } else {
        Failure::failed(format!("cannot {what} {RAMLOGS_DROPIN}: {e}"))
    }
}

pub fn run(action: RamlogsAction) -> fail::Result<()> {
    let path = Path::new(RAMLOGS_DROPIN);
    match action {
        RamlogsAction::Status => {
            println!(
                "logs are kept {}{}",
                current_storage().describe(),
                if path.exists() {
                    format!(" ({RAMLOGS_DROPIN} is installed)")
                } else {
                    String::new()
                }
            );
            return Ok(());
        }
        RamlogsAction::On => {
            if std::fs::read_to_string(path).ok().as_deref() == Some(RAMLOGS_DROPIN_TEXT) {
                println!("already on: {RAMLOGS_DROPIN} is installed");
                return Ok(());
            }
            let dir = path.parent().expect("the drop-in path has a parent");
            std::fs::create_dir_all(dir)
                .map_err(|e| write_failure("create the directory of", &e))?;
            write_atomic(path, RAMLOGS_DROPIN_TEXT.as_bytes())
                .map_err(|e| write_failure("write", &e))?;
            println!("installed {RAMLOGS_DROPIN} (Storage=volatile, RuntimeMaxUse=32M)");
        }
        RamlogsAction::Off => match std::fs::remove_file(path) {
            Ok(()) => println!("removed {RAMLOGS_DROPIN}"),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                println!("already off: {RAMLOGS_DROPIN} is not installed");
                return Ok(());
            }
            Err(e) => return Err(write_failure("remove", &e)),
        },
    }
    let mut sd = Systemd::connect()?;
    run_jobs(&mut sd, "RestartUnit", "restart", &[JOURNALD.to_string()])?;
    println!("logs are now kept {}", current_storage().describe());
    Ok(())
}
