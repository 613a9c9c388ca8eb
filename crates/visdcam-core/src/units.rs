//! Camera names and the systemd unit names and D-Bus object paths that belong to them.
//!
//! A camera's name is its config file's stem and its units' instance name. Names are
//! restricted to lowercase letters, digits and `-` (1 to 32 characters, starting with a letter
//! or digit), so they are safe in paths, object keys and unit names. `-` is still escaped in
//! unit names the way `systemd-escape` does (`front-door` → `seg@front\x2ddoor.service`).

/// Checks a camera name; the error says what is allowed.
pub fn validate_camera_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if name.is_empty() || name.len() > 32 || !ok_chars || name.starts_with('-') {
        return Err(format!(
            "invalid camera name `{name}`: use 1 to 32 lowercase letters, digits and `-`, \
             not starting with `-` (e.g. cam1, front-door)"
        ));
    }
    Ok(())
}

/// `systemd-escape` for a single string (not a path).
pub fn systemd_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b':' || b == b'_' || (b == b'.' && i > 0);
        if b == b'/' {
            out.push('-');
        } else if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The recorder's unit: `seg@cam1.service`.
pub fn seg_unit(camera: &str) -> String {
    format!("seg@{}.service", systemd_escape(camera))
}

/// The uploader's unit: `uploader@cam1.service`.
pub fn uploader_unit(camera: &str) -> String {
    format!("uploader@{}.service", systemd_escape(camera))
}

/// Both units of a camera, recorder first.
pub fn camera_units(camera: &str) -> [String; 2] {
    [seg_unit(camera), uploader_unit(camera)]
}

pub const DAYNIGHT_TIMER: &str = "daynight.timer";
pub const DAYNIGHT_SERVICE: &str = "daynight.service";
pub const SHAPER_SERVICE: &str = "net-shaper.service";

/// The D-Bus object path systemd gives a unit (`/org/freedesktop/systemd1/unit/seg_40cam1_2eservice`).
pub fn unit_object_path(unit: &str) -> String {
    let mut out = String::from("/org/freedesktop/systemd1/unit/");
    if unit.is_empty() {
        out.push('_');
        return out;
    }
    for (i, b) in unit.bytes().enumerate() {
        if b.is_ascii_alphabetic() || (b.is_ascii_digit() && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_match_systemd_escape() {
        // Expected values are what `systemd-escape --template=seg@.service NAME` prints.
        for (cam, seg, up) in [
            ("cam1", "seg@cam1.service", "uploader@cam1.service"),
            (
                "front-door",
                "seg@front\\x2ddoor.service",
                "uploader@front\\x2ddoor.service",
            ),
            ("9", "seg@9.service", "uploader@9.service"),
        ] {
            assert_eq!(seg_unit(cam), seg);
            assert_eq!(uploader_unit(cam), up);
        }
        assert_eq!(systemd_escape(".x/y z"), "\\x2ex-y\\x20z");
    }

    #[test]
    fn object_paths_match_systemd() {
        assert_eq!(
            unit_object_path("seg@cam1.service"),
            "/org/freedesktop/systemd1/unit/seg_40cam1_2eservice"
        );
        assert_eq!(
            unit_object_path("daynight.timer"),
            "/org/freedesktop/systemd1/unit/daynight_2etimer"
        );
        assert_eq!(
            unit_object_path("seg@front\\x2ddoor.service"),
            "/org/freedesktop/systemd1/unit/seg_40front_5cx2ddoor_2eservice"
        );
    }

    #[test]
    fn camera_names() {
        for good in ["cam1", "front-door", "9", "a-b-c"] {
            assert!(validate_camera_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Cam1", "cam_1", "-x", "cam.1", "cam 1", &"x".repeat(33)] {
            let e = validate_camera_name(bad).unwrap_err();
            assert!(
                e.contains("lowercase letters, digits and `-`"),
                "{bad}: {e}"
            );
        }
    }
}
