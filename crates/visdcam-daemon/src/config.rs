//! Reading visdcam's configuration files from disk (`VISDCAM_CONFIG_DIR`, default
//! `/etc/visdcam`) and rewriting one key of a camera's file atomically.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use visdcam_core::config::{self, ConfigError, Settings, Source};
use visdcam_core::envfile;
use visdcam_core::error::{Classify, ErrorKind};
use visdcam_core::units::validate_camera_name;

use crate::fsutil::write_atomic;

pub const DEFAULT_DIR: &str = "/etc/visdcam";
pub const GLOBAL_FILE: &str = "visdcam.conf";
pub const CAMERAS_DIR: &str = "cameras";

/// The configuration directory.
pub fn config_dir() -> PathBuf {
    std::env::var_os("VISDCAM_CONFIG_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

pub fn global_path(dir: &Path) -> PathBuf {
    dir.join(GLOBAL_FILE)
}

pub fn camera_path(dir: &Path, camera: &str) -> PathBuf {
    dir.join(CAMERAS_DIR).join(format!("{camera}.conf"))
}

/// Why configuration could not be loaded.
#[derive(Debug)]
pub enum LoadError {
    Io {
        path: PathBuf,
        source: io::Error,
    },
    Config(ConfigError),
    UnknownCamera {
        name: String,
        known: Vec<String>,
        dir: PathBuf,
    },
    BadName(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
            LoadError::Config(e) => write!(f, "{e}"),
            LoadError::UnknownCamera { name, known, dir } => {
                write!(
                    f,
                    "unknown camera `{name}`: no {}",
                    camera_path(dir, name).display()
                )?;
                if known.is_empty() {
                    write!(f, " (no cameras configured yet)")
                } else {
                    write!(f, " (known: {})", known.join(", "))
                }
            }
            LoadError::BadName(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Classify for LoadError {
    fn kind(&self) -> ErrorKind {
        // An unreadable file (permissions, an I/O error) is fixed by a person like any other
        // configuration error; restarting would not help: 78, not 1.
        ErrorKind::Config
    }
}

/// A configuration file's text, `None` when it does not exist. Text that is not UTF-8 is a
/// configuration error at the line of the first bad byte.
fn read_optional(path: &Path) -> Result<Option<String>, LoadError> {
    match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
            let good = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let line = bytes[..good].iter().filter(|b| **b == b'\n').count() + 1;
            LoadError::Config(ConfigError {
                path: path.display().to_string(),
                line: Some(line),
                key: None,
                message: format!(
                    "not UTF-8 text (byte 0x{:02x}); allowed: plain UTF-8 text",
                    bytes[good]
                ),
            })
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LoadError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Every configured camera (`cameras/*.conf` with a valid name), sorted.
pub fn list_cameras(dir: &Path) -> Result<Vec<String>, LoadError> {
    let cams = dir.join(CAMERAS_DIR);
    let entries = match std::fs::read_dir(&cams) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(LoadError::Io { path: cams, source }),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| LoadError::Io {
            path: cams.clone(),
            source,
        })?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".conf")) else {
            continue;
        };
        if validate_camera_name(stem).is_ok() {
            out.push(stem.to_string());
        }
    }
    out.sort();
    Ok(out)
}

/// Global settings only (no camera).
pub fn load_global_from(dir: &Path) -> Result<Settings, LoadError> {
    let gpath = global_path(dir);
    let gtext = read_optional(&gpath)?;
    let gname = gpath.display().to_string();
    config::load(
        gtext.as_deref().map(|text| Source { path: &gname, text }),
        None,
        &gname,
    )
    .map_err(LoadError::Config)
}

/// Global settings from [`config_dir`].
pub fn load_global() -> Result<Settings, LoadError> {
    load_global_from(&config_dir())
}

/// A camera's settings: global file overridden by the camera's file. Refused when its
/// `KEY_TEMPLATE` could give one of its keys to another configured camera (whose file loads)
/// under that camera's template: the two uploaders would overwrite each other's objects.
pub fn load_camera_from(dir: &Path, camera: &str) -> Result<Settings, LoadError> {
    let settings = load_camera_alone(dir, camera)?;
    let others: Vec<(String, Settings)> = list_cameras(dir)?
        .into_iter()
        .filter(|c| c != camera)
        .filter_map(|c| load_camera_alone(dir, &c).ok().map(|s| (c, s)))
        .collect();
    let mut all: Vec<(&str, &visdcam_core::keys::KeyTemplate)> =
        vec![(camera, &settings.key_template)];
    all.extend(others.iter().map(|(c, s)| (c.as_str(), &s.key_template)));
    if let Some((a, b, key)) = visdcam_core::keys::shared_key(&all, Some(camera)) {
        let other = if a == camera { b } else { a };
        let (path, line) = match settings.origins.get("KEY_TEMPLATE") {
            Some(o) => (o.path.clone(), Some(o.line)),
            None => (global_path(dir).display().to_string(), None),
        };
        return Err(LoadError::Config(ConfigError {
            path,
            line,
            key: Some("KEY_TEMPLATE".into()),
            message: format!(
                "`{}` can give cameras {camera} and {other} the same object key (e.g. `{key}`), \
                 so their uploads would overwrite each other; allowed: a template that puts \
                 {{camera}} (the unique camera name) in every key, as the default `{}` does",
                settings.key_template.as_str(),
                visdcam_core::keys::DEFAULT_TEMPLATE
            ),
        }));
    }
    Ok(settings)
}

/// [`load_camera_from`] without the check against the other cameras.
fn load_camera_alone(dir: &Path, camera: &str) -> Result<Settings, LoadError> {
    validate_camera_name(camera).map_err(LoadError::BadName)?;
    let cpath = camera_path(dir, camera);
    let Some(ctext) = read_optional(&cpath)? else {
        return Err(LoadError::UnknownCamera {
            name: camera.into(),
            known: list_cameras(dir)?,
            dir: dir.into(),
        });
    };
    let gpath = global_path(dir);
    let gtext = read_optional(&gpath)?;
    let (gname, cname) = (gpath.display().to_string(), cpath.display().to_string());
    config::load(
        gtext.as_deref().map(|text| Source { path: &gname, text }),
        Some((
            camera,
            Source {
                path: &cname,
                text: &ctext,
            },
        )),
        &gname,
    )
    .map_err(LoadError::Config)
}

/// A camera's settings from [`config_dir`].
pub fn load_camera(camera: &str) -> Result<Settings, LoadError> {
    load_camera_from(&config_dir(), camera)
}

/// Sets `key=value` in a camera's file, keeping comments and order, atomically. The new file
/// is fully validated first; on any error the file is untouched.
pub fn set_camera_key(
    dir: &Path,
    camera: &str,
    key: &str,
    value: &str,
) -> Result<PathBuf, LoadError> {
    // Fails for unknown cameras and for files that are already invalid.
    load_camera_from(dir, camera)?;
    let cpath = camera_path(dir, camera);
    let cname = cpath.display().to_string();
    config::check_value(key, value).map_err(|message| {
        LoadError::Config(ConfigError {
            path: cname.clone(),
            line: None,
            key: Some(key.into()),
            message,
        })
    })?;
    let old = std::fs::read_to_string(&cpath).map_err(|source| LoadError::Io {
        path: cpath.clone(),
        source,
    })?;
    let new = envfile::set_key(&old, key, value).map_err(|e| {
        LoadError::Config(ConfigError {
            path: cname.clone(),
            line: Some(e.line),
            key: None,
            message: e.message,
        })
    })?;
    let gpath = global_path(dir);
    let gtext = read_optional(&gpath)?;
    let gname = gpath.display().to_string();
    config::load(
        gtext.as_deref().map(|text| Source { path: &gname, text }),
        Some((
            camera,
            Source {
                path: &cname,
                text: &new,
            },
        )),
        &gname,
    )
    .map_err(LoadError::Config)?;
    write_atomic(&cpath, new.as_bytes()).map_err(|source| LoadError::Io {
        path: cpath.clone(),
        source,
    })?;
    Ok(cpath)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn setup() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join(CAMERAS_DIR)).unwrap();
        fs::write(global_path(d.path()), "# global\nSEG_SECONDS=120\n").unwrap();
        fs::write(
            camera_path(d.path(), "cam1"),
            "# Porch camera\nCAMERA_URL=http://10.0.0.5:81/stream\n\n# length\nSEG_SECONDS=60\nRATE_KBPS=100\n",
        )
        .unwrap();
        fs::write(
            camera_path(d.path(), "cam2"),
            "CAMERA_URL=http://10.0.0.6:81/stream\n",
        )
        .unwrap();
        fs::write(d.path().join(CAMERAS_DIR).join("cam1.conf.example"), "x").unwrap();
        d
    }

    #[test]
    fn loads_and_lists() {
        let d = setup();
        assert_eq!(list_cameras(d.path()).unwrap(), ["cam1", "cam2"]);
        assert_eq!(load_camera_from(d.path(), "cam1").unwrap().seg_seconds, 60);
        assert_eq!(load_camera_from(d.path(), "cam2").unwrap().seg_seconds, 120);
        let e = load_camera_from(d.path(), "cam3").unwrap_err().to_string();
        assert!(e.starts_with("unknown camera `cam3`: no "), "{e}");
        assert!(e.ends_with("(known: cam1, cam2)"), "{e}");
    }

    #[test]
    fn set_key_keeps_comments_and_order() {
        let d = setup();
        set_camera_key(d.path(), "cam1", "SEG_SECONDS", "180").unwrap();
        assert_eq!(
            fs::read_to_string(camera_path(d.path(), "cam1")).unwrap(),
            "# Porch camera\nCAMERA_URL=http://10.0.0.5:81/stream\n\n# length\nSEG_SECONDS=180\nRATE_KBPS=100\n"
        );
        set_camera_key(d.path(), "cam2", "SEG_SECONDS", "30").unwrap();
        assert_eq!(
            fs::read_to_string(camera_path(d.path(), "cam2")).unwrap(),
            "CAMERA_URL=http://10.0.0.6:81/stream\nSEG_SECONDS=30\n"
        );
    }

    #[test]
    fn template_that_lets_two_cameras_share_keys_is_refused_for_both() {
        let d = setup();
        fs::write(
            global_path(d.path()),
            "# global\nSEG_SECONDS=120\nKEY_TEMPLATE=site/{number}/%Y%m%d_%H%M%S.ts\n",
        )
        .unwrap();
        // cam1 and cam2 differ in their number: fine.
        load_camera_from(d.path(), "cam1").unwrap();
        fs::write(
            camera_path(d.path(), "front1"),
            "CAMERA_URL=http://10.0.0.7:81/stream\n",
        )
        .unwrap();
        for (cam, other) in [("cam1", "front1"), ("front1", "cam1")] {
            let e = load_camera_from(d.path(), cam).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Config);
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!(
                    "{}:3: KEY_TEMPLATE: `site/{{number}}/%Y%m%d_%H%M%S.ts` can give cameras \
                     {cam} and {other} the same object key (e.g. `site/1/20250101_010101.ts`)",
                    global_path(d.path()).display()
                )),
                "{msg}"
            );
        }
        load_camera_from(d.path(), "cam2").unwrap();
        // The camera's own template with its name in it ends the clash.
        fs::write(
            camera_path(d.path(), "front1"),
            "CAMERA_URL=http://10.0.0.7:81/stream\nKEY_TEMPLATE={camera}/%Y%m%d_%H%M%S.ts\n",
        )
        .unwrap();
        load_camera_from(d.path(), "cam1").unwrap();
        load_camera_from(d.path(), "front1").unwrap();
    }

    #[test]
    fn invalid_value_leaves_file_untouched() {
        let d = setup();
        let before = fs::read(camera_path(d.path(), "cam1")).unwrap();
        let e = set_camera_key(d.path(), "cam1", "SEG_SECONDS", "1").unwrap_err();
        assert!(
            e.to_string().ends_with(
                "cam1.conf: SEG_SECONDS: 1 is out of range; allowed: an integer from 2 to 3600"
            ),
            "{e}"
        );
        assert_eq!(fs::read(camera_path(d.path(), "cam1")).unwrap(), before);
    }
}
