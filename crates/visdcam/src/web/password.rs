//! The live-view password: `visdcam web-password` stores it as an Argon2id PHC string
//! (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) in `<config dir>/web-password`, owned by root, group
//! `visdcam-web`, mode 0640: the web service's user reads the hash, nobody else does, and the
//! password itself is stored nowhere.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::fail::{self, Failure};
use crate::Ctx;

/// The file's name in the configuration directory.
pub const FILE: &str = "web-password";
/// The group that may read it (the web service's user).
pub const GROUP: &str = "visdcam-web";
/// Shortest password accepted.
pub const MIN_LEN: usize = 8;

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// Hashes a password (Argon2id, the crate's defaults: 19 MiB, 2 passes, a random salt).
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("hashing the password: {e}"))
}

/// Whether `password` matches the stored PHC string.
pub fn verify(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored.trim()).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// The stored hash, `None` when no password is set. A file that is not a PHC string is an
/// error naming it.
pub fn load(dir: &Path) -> Result<Option<String>, String> {
    let p = path(dir);
    match std::fs::read_to_string(&p) {
        Ok(text) => {
            let t = text.trim();
            if t.is_empty() {
                return Ok(None);
            }
            PasswordHash::new(t).map_err(|e| {
                format!(
                    "{}: not a password hash ({e}); set it again with `visdcam web-password`",
                    p.display()
                )
            })?;
            Ok(Some(t.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("reading {}: {e}", p.display())),
    }
}

/// `visdcam web-password`: reads the password twice from stdin (a terminal echoes it; pipe
/// it in, or type it: it is read a line at a time) and stores its hash.
pub fn run(ctx: &Ctx) -> fail::Result<()> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut ask = |prompt: &str| -> fail::Result<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        match lines.next() {
            Some(Ok(l)) => Ok(l.trim_end_matches(['\r', '\n']).to_string()),
            Some(Err(e)) => Err(Failure::failed(format!("reading the password: {e}"))),
            None => Err(Failure::usage("no password given on standard input")),
        }
    };
    let first = ask("new live-view password: ")?;
    if first.chars().count() < MIN_LEN {
        return Err(Failure::usage(format!(
            "the password must be at least {MIN_LEN} characters"
        )));
    }
    let second = ask("again: ")?;
    if first != second {
        return Err(Failure::usage("the two passwords differ; nothing changed"));
    }
    let phc = hash(&first).map_err(Failure::failed)?;
    let p = path(&ctx.dir);
    let gid = nix::unistd::Group::from_name(GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid);
    write_hash(&p, &phc, gid)?;
    println!(
        "stored the password's hash in {}{}; restart the page to use it: systemctl restart \
         visdcam-web.service",
        p.display(),
        match gid {
            Some(_) => format!(" (root:{GROUP}, 0640)"),
            None => format!(" (no group {GROUP}: only root can read it)"),
        }
    );
    Ok(())
}

/// Writes the hash atomically: a temporary file given its owner and mode first, then renamed.
fn write_hash(p: &Path, phc: &str, gid: Option<nix::unistd::Gid>) -> fail::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let what = |e: &dyn std::fmt::Display| Failure::failed(format!("writing {}: {e}", p.display()));
    let dir = p.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{FILE}.tmp-{}", std::process::id()));
    let result = (|| -> Result<(), String> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| e.to_string())?;
        if let Some(gid) = gid {
            nix::unistd::fchown(&f, None, Some(gid)).map_err(|e| e.to_string())?;
            f.set_permissions(std::fs::Permissions::from_mode(0o640))
                .map_err(|e| e.to_string())?;
        }
        f.write_all(format!("{phc}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, p).map_err(|e| e.to_string())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(what(&e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify(&h, "correct horse"));
        assert!(!verify(&h, "correct horsE"));
        assert!(!verify("not a hash", "correct horse"));
        // Salted: the same password hashes differently.
        assert_ne!(h, hash("correct horse").unwrap());
    }
}
