//! Finding and reading the aws-cli credentials and config files: systemd's credential
//! directory first (`LoadCredential=`: `$CREDENTIALS_DIRECTORY/aws-credentials` and the optional
//! `aws-config`), then `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE`, then `~/.aws/`.
//!
//! The files are read again before every request, so fixing a wrong key needs no restart.
//! Secrets never reach a log line: errors name files and profiles only. The parsing itself is
//! `visdcam_core::upload` (`AwsFile`, `access_key`, `profile_region`); this module only finds
//! and reads the files.
//!
//! A person's commands (`visdcam doctor`, `visdcam footage`) use [`Locations::for_cli`]: the
//! file `VISDCAM_CREDENTIALS` names, or else the package's credential file (the one
//! uploader@.service loads) and the systemd credential stores, then the aws-cli places.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::PathBuf;

use visdcam_core::upload::{access_key, profile_region, AccessKey, AwsFile};

/// Where the files are, in order of preference.
#[derive(Debug, Clone)]
pub struct Locations {
    pub credentials: Vec<PathBuf>,
    pub config: Vec<PathBuf>,
}

/// The package's credentials file and systemd's credential stores, as
/// `LoadCredential=aws-credentials:visdcam-aws-credentials` in uploader@.service finds them
/// (/usr/lib/credstore/ links to /etc/visdcam/aws-credentials).
pub const CREDSTORE: &[&str] = &[
    "/etc/visdcam/aws-credentials",
    "/etc/credstore/visdcam-aws-credentials",
    "/run/credstore/visdcam-aws-credentials",
    "/usr/lib/credstore/visdcam-aws-credentials",
];

/// Environment variable naming the one credentials file a person's command reads.
pub const CREDENTIALS_ENV: &str = "VISDCAM_CREDENTIALS";

impl Locations {
    /// For a command a person runs: only the file `VISDCAM_CREDENTIALS` names when it is set;
    /// otherwise [`CREDSTORE`], then `AWS_SHARED_CREDENTIALS_FILE` and `~/.aws/credentials`
    /// (and `AWS_CONFIG_FILE`, `~/.aws/config` for the region).
    pub fn for_cli() -> Locations {
        let env = Locations::from_env();
        if let Some(p) = std::env::var_os(CREDENTIALS_ENV).filter(|v| !v.is_empty()) {
            return Locations {
                credentials: vec![PathBuf::from(p)],
                config: env.config,
            };
        }
        let mut credentials: Vec<PathBuf> = CREDSTORE.iter().map(PathBuf::from).collect();
        credentials.extend(env.credentials);
        Locations {
            credentials,
            config: env.config,
        }
    }

    /// From the process environment.
    pub fn from_env() -> Locations {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut credentials = Vec::new();
        let mut config = Vec::new();
        if let Some(dir) = var("CREDENTIALS_DIRECTORY") {
            credentials.push(dir.join("aws-credentials"));
            config.push(dir.join("aws-config"));
        }
        credentials.extend(var("AWS_SHARED_CREDENTIALS_FILE"));
        config.extend(var("AWS_CONFIG_FILE"));
        if let Some(home) = var("HOME") {
            credentials.push(home.join(".aws/credentials"));
            config.push(home.join(".aws/config"));
        }
        Locations {
            credentials,
            config,
        }
    }
}

/// What was read: the key, the profile's region (if the config file sets one), and the
/// file the key came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub key: AccessKey,
    pub region: Option<String>,
    pub source: PathBuf,
}

/// Why no key could be loaded. `Display` gives one line naming files and the profile, never
/// a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredError {
    /// None of the candidate credentials files exists.
    NoFile { tried: Vec<PathBuf> },
    /// A file exists but cannot be read.
    Unreadable {
        path: PathBuf,
        kind: io::ErrorKind,
        error: String,
    },
    /// The file is not an aws-cli INI file, or lacks the profile or one of its keys.
    Invalid { path: PathBuf, why: String },
}

impl fmt::Display for CredError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredError::NoFile { tried } if tried.is_empty() => f.write_str(
                "no credentials file (looked for none: no CREDENTIALS_DIRECTORY, \
                 AWS_SHARED_CREDENTIALS_FILE nor HOME)",
            ),
            CredError::NoFile { tried } => {
                let tried: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(f, "no credentials file (looked for {})", tried.join(", "))
            }
            CredError::Unreadable { path, error, .. } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            CredError::Invalid { path, why } => write!(f, "{}: {why}", path.display()),
        }
    }
}

impl std::error::Error for CredError {}

/// Reads the first file that exists; `Ok(None)` when none does.
fn read_first(paths: &[PathBuf]) -> Result<Option<(PathBuf, String)>, CredError> {
    for p in paths {
        match std::fs::read_to_string(p) {
            Ok(text) => return Ok(Some((p.clone(), text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(CredError::Unreadable {
                    path: p.clone(),
                    kind: e.kind(),
                    error: e.to_string(),
                })
            }
        }
    }
    Ok(None)
}

/// Loads `profile`'s key (and region) from the first credentials (and config) file found.
pub fn load(loc: &Locations, profile: &str) -> Result<Loaded, CredError> {
    let Some((source, text)) = read_first(&loc.credentials)? else {
        return Err(CredError::NoFile {
            tried: loc.credentials.clone(),
        });
    };
    let invalid = |path: &PathBuf, why: String| CredError::Invalid {
        path: path.clone(),
        why,
    };
    let file = AwsFile::parse(&text).map_err(|e| invalid(&source, e))?;
    let key = access_key(&file, profile).map_err(|e| invalid(&source, e))?;
    let region = match read_first(&loc.config)? {
        Some((cpath, ctext)) => {
            let cfile = AwsFile::parse(&ctext).map_err(|e| invalid(&cpath, e))?;
            profile_region(&cfile, profile)
        }
        None => None,
    };
    Ok(Loaded {
        key,
        region,
        source,
    })
}

/// A hash of every candidate file's contents (or absence), to notice a change.
pub fn fingerprint(loc: &Locations) -> u64 {
    let mut h = DefaultHasher::new();
    for p in loc.credentials.iter().chain(&loc.config) {
        std::fs::read(p).ok().hash(&mut h);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_existing_file_wins_and_config_gives_region() {
        let d = tempfile::tempdir().unwrap();
        let creddir = d.path().join("creds");
        std::fs::create_dir(&creddir).unwrap();
        std::fs::write(
            creddir.join("aws-credentials"),
            "[b2]\naws_access_key_id=A\naws_secret_access_key=S\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("shared"),
            "[b2]\naws_access_key_id=B\naws_secret_access_key=T\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("config"),
            "[profile b2]\nregion=ca-east-006\n",
        )
        .unwrap();
        let loc = Locations {
            credentials: vec![creddir.join("aws-credentials"), d.path().join("shared")],
            config: vec![creddir.join("aws-config"), d.path().join("config")],
        };
        let l = load(&loc, "b2").unwrap();
        assert_eq!(l.key.id, "A");
        assert_eq!(l.region.as_deref(), Some("ca-east-006"));
        let before = fingerprint(&loc);
        std::fs::remove_file(creddir.join("aws-credentials")).unwrap();
        assert_eq!(load(&loc, "b2").unwrap().key.id, "B");
        assert_ne!(fingerprint(&loc), before);
        let e = load(&loc, "other").unwrap_err().to_string();
        assert!(e.contains("no [other] profile"), "{e}");
    }

    #[test]
    fn missing_files_are_named() {
        let loc = Locations {
            credentials: vec![PathBuf::from("/nonexistent/credentials")],
            config: vec![],
        };
        let e = load(&loc, "b2").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no credentials file (looked for /nonexistent/credentials)"
        );
    }
}
