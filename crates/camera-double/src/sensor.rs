//! The OV2640 settings model: boot defaults, the `/control` range table and the `/status` JSON.
//!
//! Ranges follow the OV2640 table in `esp32-cam-api.md`. The double is *stricter* than the real
//! driver on purpose: the real `set_agc_gain`/`set_aec_value` clamp instead of failing and the
//! boolean setters take any non-zero value as 1; here every out-of-range value answers 500 so a
//! client that sends one is caught by its tests.

use std::collections::BTreeMap;

/// OV2640 frame sizes by `framesize` index (esp32-camera `framesize_t`, current numbering).
pub const FRAME_SIZES: [(u32, u32); 14] = [
    (96, 96),     // 0 96X96
    (160, 120),   // 1 QQVGA
    (176, 144),   // 2 QCIF
    (240, 176),   // 3 HQVGA
    (240, 240),   // 4 240X240
    (320, 240),   // 5 QVGA
    (400, 296),   // 6 CIF
    (480, 320),   // 7 HVGA
    (640, 480),   // 8 VGA
    (800, 600),   // 9 SVGA
    (1024, 768),  // 10 XGA
    (1280, 720),  // 11 HD
    (1280, 1024), // 12 SXGA
    (1600, 1200), // 13 UXGA
];

/// Width and height of a framesize index, if it is one.
pub fn frame_size(index: i64) -> Option<(u32, u32)> {
    usize::try_from(index)
        .ok()
        .and_then(|i| FRAME_SIZES.get(i))
        .copied()
}

/// The framesize index whose dimensions are nearest to `width` x `height`.
pub fn nearest_framesize(width: u32, height: u32) -> i64 {
    let dist = |&(w, h): &(u32, u32)| {
        let dw = i64::from(w) - i64::from(width);
        let dh = i64::from(h) - i64::from(height);
        dw * dw + dh * dh
    };
    let (index, _) = FRAME_SIZES
        .iter()
        .enumerate()
        .min_by_key(|(_, s)| dist(s))
        .expect("FRAME_SIZES is not empty");
    index as i64
}

/// Settable variables and their inclusive ranges (OV2640). `led_intensity` is added only when the
/// board has an LED (otherwise the firmware does not know the name: 500).
const CONTROLS: &[(&str, i64, i64)] = &[
    ("framesize", 0, 13),
    ("quality", 0, 63),
    ("brightness", -2, 2),
    ("contrast", -2, 2),
    ("saturation", -2, 2),
    ("ae_level", -2, 2),
    ("special_effect", 0, 6),
    ("wb_mode", 0, 4),
    ("aec_value", 0, 1200),
    ("agc_gain", 0, 30),
    ("gainceiling", 0, 6),
    ("awb", 0, 1),
    ("awb_gain", 0, 1),
    ("aec", 0, 1),
    ("aec2", 0, 1),
    ("agc", 0, 1),
    ("bpc", 0, 1),
    ("wpc", 0, 1),
    ("raw_gma", 0, 1),
    ("lenc", 0, 1),
    ("hmirror", 0, 1),
    ("vflip", 0, 1),
    ("dcw", 0, 1),
    ("colorbar", 0, 1),
];

/// Keys of `/status` in the order the firmware prints them. `vflip` is missing on purpose (the
/// firmware cannot read it back); `led_intensity` is appended last.
const STATUS_KEYS: &[&str] = &[
    "0xd3",
    "0x111",
    "0x132",
    "xclk",
    "pixformat",
    "framesize",
    "quality",
    "brightness",
    "contrast",
    "saturation",
    "sharpness",
    "special_effect",
    "wb_mode",
    "awb",
    "awb_gain",
    "aec",
    "aec2",
    "ae_level",
    "aec_value",
    "agc",
    "agc_gain",
    "gainceiling",
    "bpc",
    "wpc",
    "raw_gma",
    "lenc",
    "hmirror",
    "dcw",
    "colorbar",
    "led_intensity",
];

/// Why a `/control` call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// The firmware does not know this variable (includes `sharpness`, which `/status` reports).
    UnknownVar,
    /// The driver rejected the value.
    OutOfRange { min: i64, max: i64 },
}

/// The sensor's settings as the firmware holds them in RAM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    values: BTreeMap<&'static str, i64>,
    has_led: bool,
}

impl Sensor {
    /// The settings right after boot: CameraWebServer on an OV2640 board with PSRAM (quality 10),
    /// with `framesize` as given.
    pub fn boot(framesize: i64, has_led: bool) -> Sensor {
        let defaults: &[(&'static str, i64)] = &[
            ("0xd3", 8),
            ("0x111", 0),
            ("0x132", 249),
            ("xclk", 20),
            ("pixformat", 4), // PIXFORMAT_JPEG
            ("framesize", framesize),
            ("quality", 10),
            ("brightness", 0),
            ("contrast", 0),
            ("saturation", 0),
            ("sharpness", 0),
            ("special_effect", 0),
            ("wb_mode", 0),
            ("awb", 1),
            ("awb_gain", 1),
            ("aec", 1),
            ("aec2", 0),
            ("ae_level", 0),
            ("aec_value", 168),
            ("agc", 1),
            ("agc_gain", 0),
            ("gainceiling", 0),
            ("bpc", 0),
            ("wpc", 1),
            ("raw_gma", 1),
            ("lenc", 1),
            ("hmirror", 0),
            ("vflip", 0),
            ("dcw", 1),
            ("colorbar", 0),
            ("led_intensity", if has_led { 0 } else { -1 }),
        ];
        Sensor {
            values: defaults.iter().copied().collect(),
            has_led,
        }
    }

    /// The `(min, max)` range of a settable variable, or `None` if `/control` does not know it.
    pub fn range(&self, var: &str) -> Option<(i64, i64)> {
        if var == "led_intensity" {
            return self.has_led.then_some((0, 255));
        }
        CONTROLS
            .iter()
            .find(|(name, _, _)| *name == var)
            .map(|&(_, min, max)| (min, max))
    }

    /// Applies one `/control` call.
    pub fn set(&mut self, var: &str, val: i64) -> Result<(), ControlError> {
        let (min, max) = self.range(var).ok_or(ControlError::UnknownVar)?;
        if !(min..=max).contains(&val) {
            return Err(ControlError::OutOfRange { min, max });
        }
        let key = self
            .values
            .keys()
            .copied()
            .find(|k| *k == var)
            .ok_or(ControlError::UnknownVar)?;
        self.values.insert(key, val);
        Ok(())
    }

    /// Any value the sensor holds, including ones `/status` does not report (`vflip`).
    pub fn get(&self, var: &str) -> Option<i64> {
        self.values.get(var).copied()
    }

    /// The current framesize index.
    pub fn framesize(&self) -> i64 {
        self.values["framesize"]
    }

    /// Sets `xclk` (MHz), as `/xclk?xclk=` does.
    pub fn set_xclk(&mut self, mhz: i64) {
        self.values.insert("xclk", mhz);
    }

    /// What `/status` reports, as a map.
    pub fn status(&self) -> BTreeMap<String, i64> {
        STATUS_KEYS
            .iter()
            .map(|k| ((*k).to_owned(), self.values[k]))
            .collect()
    }

    /// The `/status` body, byte for byte in the firmware's key order and format (no spaces).
    pub fn status_json(&self) -> String {
        let fields: Vec<String> = STATUS_KEYS
            .iter()
            .map(|k| format!("\"{k}\":{}", self.values[k]))
            .collect();
        format!("{{{}}}", fields.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_framesize_maps_common_sizes() {
        for (w, h, want) in [
            (640, 480, 8),
            (800, 600, 9),
            (320, 240, 5),
            (400, 296, 6),
            (1600, 1200, 13),
            (1024, 768, 10),
            (1920, 1080, 13),
            (10, 10, 0),
            (650, 470, 8),
        ] {
            assert_eq!(nearest_framesize(w, h), want, "{w}x{h}");
        }
    }

    #[test]
    fn ranges_follow_the_ov2640_table() {
        let mut s = Sensor::boot(8, true);
        for (var, good, bad) in [
            ("framesize", 13, 14),
            ("quality", 63, 64),
            ("brightness", -2, -3),
            ("ae_level", 2, 3),
            ("special_effect", 6, 7),
            ("wb_mode", 4, 5),
            ("aec_value", 1200, 1201),
            ("agc_gain", 30, 31),
            ("gainceiling", 6, 7),
            ("aec2", 1, 2),
            ("vflip", 1, -1),
            ("led_intensity", 255, 256),
        ] {
            assert_eq!(s.set(var, good), Ok(()), "{var}={good}");
            assert_eq!(s.get(var), Some(good));
            assert!(
                matches!(s.set(var, bad), Err(ControlError::OutOfRange { .. })),
                "{var}={bad}"
            );
            assert_eq!(s.get(var), Some(good), "{var} unchanged after refusal");
        }
        assert_eq!(s.set("sharpness", 1), Err(ControlError::UnknownVar));
        assert_eq!(s.set("xclk", 10), Err(ControlError::UnknownVar));
    }

    #[test]
    fn no_led_board_reports_minus_one_and_refuses_the_var() {
        let mut s = Sensor::boot(5, false);
        assert_eq!(s.status()["led_intensity"], -1);
        assert_eq!(s.set("led_intensity", 10), Err(ControlError::UnknownVar));
    }

    #[test]
    fn status_hides_vflip_and_keeps_firmware_order() {
        let s = Sensor::boot(9, true);
        let json = s.status_json();
        assert!(json.starts_with("{\"0xd3\":8,\"0x111\":0,\"0x132\":249,\"xclk\":20,"));
        assert!(json.ends_with(",\"colorbar\":0,\"led_intensity\":0}"));
        assert!(!json.contains("vflip"));
        assert!(!s.status().contains_key("vflip"));
        assert_eq!(s.status()["framesize"], 9);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed.as_object().map(|o| o.len()), Some(STATUS_KEYS.len()));
    }
}
