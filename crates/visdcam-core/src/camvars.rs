//! The ESP32-CAM (OV2640, CameraWebServer firmware) `/control` variables and their ranges,
//! and the default day and night presets.

/// A `/control` variable: name and inclusive range the firmware accepts on an OV2640.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlVar {
    pub name: &'static str,
    pub min: i32,
    pub max: i32,
    /// Whether `/status` reports it (`vflip` cannot be read back).
    pub readable: bool,
}

const fn var(name: &'static str, min: i32, max: i32) -> ControlVar {
    ControlVar {
        name,
        min,
        max,
        readable: true,
    }
}

/// Every settable variable, `framesize` first (it must be applied before the rest).
pub const CONTROL_VARS: &[ControlVar] = &[
    var("framesize", 0, 13),
    var("quality", 0, 63),
    var("brightness", -2, 2),
    var("contrast", -2, 2),
    var("saturation", -2, 2),
    var("ae_level", -2, 2),
    var("special_effect", 0, 6),
    var("wb_mode", 0, 4),
    var("aec_value", 0, 1200),
    var("agc_gain", 0, 30),
    var("gainceiling", 0, 6),
    var("awb", 0, 1),
    var("awb_gain", 0, 1),
    var("aec", 0, 1),
    var("aec2", 0, 1),
    var("agc", 0, 1),
    var("bpc", 0, 1),
    var("wpc", 0, 1),
    var("raw_gma", 0, 1),
    var("lenc", 0, 1),
    var("hmirror", 0, 1),
    ControlVar {
        name: "vflip",
        min: 0,
        max: 1,
        readable: false,
    },
    var("dcw", 0, 1),
    var("colorbar", 0, 1),
    var("led_intensity", 0, 255),
];

/// Looks a variable up by its lowercase name.
pub fn control_var(name: &str) -> Option<&'static ControlVar> {
    CONTROL_VARS.iter().find(|v| v.name == name)
}

/// Default `day` preset (community tuning advice for the OV2640).
pub const DEFAULT_DAY: &[(&str, i32)] = &[
    ("framesize", 9),
    ("quality", 12),
    ("awb", 1),
    ("awb_gain", 1),
    ("wb_mode", 0),
    ("aec", 1),
    ("aec2", 0),
    ("ae_level", 0),
    ("agc", 1),
    ("gainceiling", 2),
    ("bpc", 1),
    ("wpc", 1),
    ("raw_gma", 1),
    ("lenc", 1),
    ("dcw", 1),
    ("special_effect", 0),
    ("led_intensity", 0),
];

/// Default `night` preset: night-mode exposure, high gain ceiling, grayscale.
pub const DEFAULT_NIGHT: &[(&str, i32)] = &[
    ("framesize", 8),
    ("quality", 14),
    ("aec", 1),
    ("aec2", 1),
    ("ae_level", 1),
    ("agc", 1),
    ("gainceiling", 5),
    ("raw_gma", 1),
    ("special_effect", 2),
    ("led_intensity", 0),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_range() {
        for (name, value) in DEFAULT_DAY.iter().chain(DEFAULT_NIGHT) {
            let v = control_var(name).unwrap_or_else(|| panic!("{name} unknown"));
            assert!((v.min..=v.max).contains(value), "{name}={value}");
        }
        assert_eq!(CONTROL_VARS[0].name, "framesize");
    }
}
