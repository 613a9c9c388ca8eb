//! `/control` and `/status`: the OV2640 ranges, atoi parsing, missing parameters, unknown names,
//! hidden `vflip`, the LED-less board, and the control log.

mod common;

use camera_double::{Board, CameraDouble, ControlCall, Options};
use common::{authority, get};

fn start(board: Board) -> (CameraDouble, String) {
    let cam = CameraDouble::start_with(
        Options {
            width: 320,
            height: 240,
            ..Options::default()
        },
        board,
    )
    .expect("double starts");
    let auth = authority(&cam.base_url());
    (cam, auth)
}

fn status_json(auth: &str) -> serde_json::Value {
    let r = get(auth, "/status").expect("status");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("application/json"));
    serde_json::from_slice(&r.body).expect("status is JSON")
}

fn call(var: &str, val: &str, status: u16) -> ControlCall {
    ControlCall {
        var: var.to_owned(),
        val: val.to_owned(),
        status,
    }
}

/// Good values answer 200 with an empty body and show in `/status` and `status()`; values
/// outside the OV2640 table answer 500 and change nothing.
#[test]
fn ranges_of_the_ov2640_table() {
    let (cam, auth) = start(Board::WithLed);
    let cases: &[(&str, i64, i64)] = &[
        ("quality", 12, 64),
        ("brightness", -2, 3),
        ("contrast", 2, -3),
        ("saturation", 1, 9),
        ("ae_level", -1, -3),
        ("special_effect", 2, 7),
        ("wb_mode", 4, 5),
        ("aec_value", 1200, 1201),
        ("agc_gain", 30, 31),
        ("gainceiling", 6, 7),
        ("aec2", 1, 2),
        ("awb", 0, 2),
        ("dcw", 0, -1),
        ("led_intensity", 255, 256),
        ("framesize", 6, 14),
    ];
    for &(var, good, bad) in cases {
        let r = get(&auth, &format!("/control?var={var}&val={good}")).expect("control");
        assert_eq!(r.status, 200, "{var}={good}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
        assert_eq!(status_json(&auth)[var], good, "{var} in /status");
        assert_eq!(cam.status()[var], good);

        let r = get(&auth, &format!("/control?var={var}&val={bad}")).expect("control");
        assert_eq!(r.status, 500, "{var}={bad}");
        assert_eq!(status_json(&auth)[var], good, "{var} unchanged after 500");
    }
    assert_eq!(cam.frame_size(), (400, 296), "framesize 6 is CIF");
    let log = cam.control_log();
    assert_eq!(log.len(), cases.len() * 2);
    for (pair, &(var, good, bad)) in log.chunks(2).zip(cases) {
        assert_eq!(pair[0], call(var, &good.to_string(), 200));
        assert_eq!(pair[1], call(var, &bad.to_string(), 500));
    }
}

/// Missing parameters answer 404, unknown names 500 (`sharpness` is reported but not settable),
/// values go through C atoi, and everything lands in the log with the raw strings.
#[test]
fn parameters_names_and_atoi() {
    let (cam, auth) = start(Board::WithLed);
    let expect = |target: &str, status: u16| {
        let r = get(&auth, target).expect("control");
        assert_eq!(r.status, status, "{target}");
    };
    expect("/control?var=quality", 404);
    expect("/control?val=3", 404);
    expect("/control", 404);
    expect("/control?var=quality&val", 404);
    expect("/control?var=sharpness&val=1", 500);
    expect("/control?var=nonsense&val=1", 500);
    expect("/control?var=xclk&val=10", 500);
    expect("/control?var=quality&val=15abc", 200);
    assert_eq!(cam.status()["quality"], 15);
    expect("/control?var=brightness&val=", 200);
    assert_eq!(cam.status()["brightness"], 0);
    expect("/control?var=brightness&val=%2D1", 200);
    assert_eq!(
        cam.status()["brightness"],
        0,
        "no URL decoding: atoi(\"%2D1\") is 0"
    );
    expect("/control?var=brightness&val=-1", 200);
    assert_eq!(cam.status()["brightness"], -1);

    assert_eq!(
        cam.control_log(),
        vec![
            call("quality", "", 404),
            call("", "3", 404),
            call("", "", 404),
            call("quality", "", 404),
            call("sharpness", "1", 500),
            call("nonsense", "1", 500),
            call("xclk", "10", 500),
            call("quality", "15abc", 200),
            call("brightness", "", 200),
            call("brightness", "%2D1", 200),
            call("brightness", "-1", 200),
        ]
    );
    cam.clear_control_log();
    assert!(cam.control_log().is_empty());
    get(&auth, "/status").expect("status");
    assert!(
        cam.control_log().is_empty(),
        "/status is not a control call"
    );
}

/// `/status` has the firmware's keys and integer types, raw registers, no `vflip`; setting
/// `vflip` works but cannot be read back.
#[test]
fn status_keys_and_hidden_vflip() {
    let (cam, auth) = start(Board::WithLed);
    let v = status_json(&auth);
    let obj = v.as_object().expect("object");
    for key in [
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
    ] {
        assert!(
            obj.get(key).is_some_and(|x| x.is_i64()),
            "{key} is an integer"
        );
    }
    assert_eq!(obj.len(), 30);
    assert_eq!(v["pixformat"], 4, "JPEG");
    assert_eq!(v["framesize"], 5, "320x240 maps to QVGA");
    assert_eq!(v["led_intensity"], 0);
    assert!(obj.get("vflip").is_none());

    assert_eq!(
        get(&auth, "/control?var=vflip&val=1")
            .expect("control")
            .status,
        200
    );
    assert!(status_json(&auth).get("vflip").is_none());
    assert!(!cam.status().contains_key("vflip"));
    assert_eq!(cam.sensor_value("vflip"), Some(1));
}

/// A board without the LED reports -1 and does not know `led_intensity`.
#[test]
fn board_without_led() {
    let (cam, auth) = start(Board::NoLed);
    assert_eq!(status_json(&auth)["led_intensity"], -1);
    let r = get(&auth, "/control?var=led_intensity&val=0").expect("control");
    assert_eq!(r.status, 500);
    assert_eq!(cam.status()["led_intensity"], -1);
}

/// A framesize change takes effect for `/capture` too, for every framesize of the table that
/// tests use.
#[test]
fn framesize_changes_frames() {
    let (cam, auth) = start(Board::NoLed);
    for (fs, w, h) in [
        (8, 640, 480),
        (9, 800, 600),
        (10, 1024, 768),
        (13, 1600, 1200),
        (5, 320, 240),
    ] {
        let r = get(&auth, &format!("/control?var=framesize&val={fs}")).expect("control");
        assert_eq!(r.status, 200);
        assert_eq!(cam.frame_size(), (w as u32, h as u32));
        let jpeg = get(&auth, "/capture").expect("capture").body;
        assert_eq!(common::decode_jpeg(&jpeg), Ok((w, h)), "framesize {fs}");
    }
}
