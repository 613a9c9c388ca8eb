//! The binary's command line and configuration errors (no store needed).

use std::process::Command;

fn uploader(etc: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uploader"))
        .args(args)
        .env("VISDCAM_CONFIG_DIR", etc)
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

#[test]
fn configuration_errors_exit_78_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path();
    std::fs::create_dir(etc.join("cameras")).unwrap();
    std::fs::write(
        etc.join("cameras/cam1.conf"),
        "CAMERA_URL=http://127.0.0.1:9/stream\n",
    )
    .unwrap();
    let ram = d.path().join("ram");
    let cases = [
        ("B2_BUCKET=visd-cctv\n", "B2_ENDPOINT is not set"),
        ("B2_ENDPOINT=http://127.0.0.1:9\n", "B2_BUCKET is not set"),
        (
            "B2_ENDPOINT=http://127.0.0.1:9\nB2_BUCKET=visd-cctv\n",
            "virtual-host style needs a host name",
        ),
        ("RATE_KBPS=fast\n", "RATE_KBPS"),
    ];
    for (conf, why) in cases {
        std::fs::write(
            etc.join("visdcam.conf"),
            format!("RAM_DIR={}\n{conf}", ram.display()),
        )
        .unwrap();
        let out = uploader(etc, &["cam1"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{conf}: {err}");
        assert!(err.contains(why), "{conf}: {err}");
    }
    let out = uploader(etc, &["cam9"]);
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown camera `cam9`"));
}

#[test]
fn usage_errors_exit_64() {
    let d = tempfile::tempdir().unwrap();
    for args in [&[][..], &["cam1", "cam2"][..], &["--bogus"][..]] {
        let out = uploader(d.path(), args);
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage: uploader <camera>"));
    }
    let out = uploader(d.path(), &["--help"]);
    assert!(out.status.success());
}
