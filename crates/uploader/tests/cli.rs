//! The binary's command line and configuration errors (no store needed).

use std::process::Command;

fn uploader(etc: &std::path::Path, args: &[&str]) -> std::process::Output {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_uploader"))
        .args(args)
        .env("VISDCAM_CONFIG_DIR", etc)
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each case here must exit at start; one that runs instead is killed after 10 s (and
    // then fails its exit-status check) rather than hanging the test.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
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

#[test]
fn key_templates_that_break_or_share_keys_exit_78_with_file_and_line() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path();
    std::fs::create_dir(etc.join("cameras")).unwrap();
    for cam in ["cam1", "front1"] {
        std::fs::write(
            etc.join(format!("cameras/{cam}.conf")),
            "CAMERA_URL=http://127.0.0.1:9/stream\n",
        )
        .unwrap();
    }
    let global = etc.join("visdcam.conf");
    let ram = d.path().join("ram");
    let head = format!(
        "RAM_DIR={}\nB2_ENDPOINT=http://127.0.0.1:9\nB2_BUCKET=b\nB2_ADDRESSING_STYLE=path\n",
        ram.display()
    );
    let cases = [
        // chrono parses `%#z` but cannot format it: the uploader panicked on every upload.
        (
            "KEY_TEMPLATE={camera}/%Y%m%d_%H%M%S%#z.ts\n",
            "cam1",
            "visdcam.conf:5: KEY_TEMPLATE: has a `%` field that cannot be formatted",
        ),
        // `{number}` is 1 for both cam1 and front1.
        (
            "KEY_TEMPLATE=site/{number}/%Y%m%d_%H%M%S.ts\n",
            "cam1",
            "visdcam.conf:5: KEY_TEMPLATE: `site/{number}/%Y%m%d_%H%M%S.ts` can give cameras \
             cam1 and front1 the same object key",
        ),
        (
            "KEY_TEMPLATE=%Y/%m/%d/%H%M%S.ts\n",
            "front1",
            "visdcam.conf:5: KEY_TEMPLATE: `%Y/%m/%d/%H%M%S.ts` can give cameras front1 and \
             cam1 the same object key",
        ),
    ];
    for (conf, cam, why) in cases {
        std::fs::write(&global, format!("{head}{conf}")).unwrap();
        let out = uploader(etc, &[cam]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{conf}: {err}");
        assert!(
            err.contains(&format!("{}/{why}", etc.display())),
            "{conf}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn unreadable_or_non_utf8_configuration_exits_78() {
    let d = tempfile::tempdir().unwrap();
    let etc = d.path();
    std::fs::create_dir(etc.join("cameras")).unwrap();
    let cam = etc.join("cameras/cam1.conf");
    std::fs::write(&cam, b"# porch\nCAMERA_URL=http://127.0.0.1:9/str\xffeam\n").unwrap();
    std::fs::write(etc.join("visdcam.conf"), "RAM_DIR=/tmp/x\n").unwrap();
    let out = uploader(etc, &["cam1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains(&format!("{}:2: not UTF-8 text (byte 0xff)", cam.display())),
        "{err}"
    );
    // A global file that cannot be read (here a directory: the tests may run as root, who
    // reads any file) is as much a configuration error.
    std::fs::write(&cam, "CAMERA_URL=http://127.0.0.1:9/stream\n").unwrap();
    std::fs::remove_file(etc.join("visdcam.conf")).unwrap();
    std::fs::create_dir(etc.join("visdcam.conf")).unwrap();
    let out = uploader(etc, &["cam1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}
