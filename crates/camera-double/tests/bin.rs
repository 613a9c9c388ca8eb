//! The `camera-double` binary: ready line, run-time faults and the control log over HTTP,
//! clean exit on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{authority, get, poll_until, StreamClient};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// The child process, killed if a test fails half-way.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_camera-double"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let running = Running(child);
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("ready line within 60 s");
    let url = line
        .trim_end()
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("expected `ready URL`, got {line:?}"))
        .to_owned();
    (running, url)
}

#[test]
fn runs_serves_takes_faults_and_stops_on_sigterm() {
    let (mut child, url) = spawn(&["--size", "800x600", "--fps", "15"]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let auth = authority(&url);
    let port: u16 = auth
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    let stream_url = format!("http://127.0.0.1:{}/stream", port + 1);

    let status: serde_json::Value =
        serde_json::from_slice(&get(&auth, "/status").expect("status").body).expect("JSON");
    assert_eq!(status["framesize"], 9, "800x600 is SVGA");

    assert_eq!(
        get(&auth, "/control?var=quality&val=14").expect("c").status,
        200
    );
    assert_eq!(
        get(&auth, "/control?var=quality&val=99").expect("c").status,
        500
    );
    let log = get(&auth, "/__double/controls").expect("controls").text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        lines,
        vec![
            serde_json::json!({"var": "quality", "val": "14", "status": 200}),
            serde_json::json!({"var": "quality", "val": "99", "status": 500}),
        ]
    );

    let mut c = StreamClient::connect(&stream_url).expect("stream");
    assert_eq!(
        common::decode_jpeg(&c.next_part().expect("part").body),
        Ok((800, 600))
    );
    drop(c);

    let r = get(&auth, "/__double/fault?mode=notfound").expect("fault");
    assert_eq!(r.status, 200);
    // The stream task may still be finishing the previous client: poll.
    poll_until(Duration::from_secs(10), "404 on /stream", || {
        get(&authority(&stream_url), "/stream")
            .ok()
            .filter(|r| r.status == 404)
    });
    let r = get(&auth, "/__double/fault?mode=bogus").expect("fault");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("unknown mode"), "{}", r.text());
    let r = get(&auth, "/__double/fault?mode=close").expect("fault");
    assert_eq!(r.status, 400, "close needs secs");

    let r = get(&auth, "/__double/fault?mode=reboot&secs=0.5").expect("fault");
    assert_eq!(r.status, 200);
    let stats: serde_json::Value = poll_until(Duration::from_secs(10), "back after reboot", || {
        get(&auth, "/__double/stats")
            .ok()
            .and_then(|r| serde_json::from_slice(&r.body).ok())
    });
    assert_eq!(stats["reboots"], 1);
    assert_eq!(
        stats["fault"], "none",
        "reboot ends by itself, and clears notfound"
    );
    let status: serde_json::Value =
        serde_json::from_slice(&get(&auth, "/status").expect("status").body).expect("JSON");
    assert_eq!(status["quality"], 10, "reboot forgot quality 14");

    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGTERM).expect("SIGTERM");
    let exit = poll_until(Duration::from_secs(10), "exit after SIGTERM", || {
        child.0.try_wait().expect("wait")
    });
    assert!(exit.success(), "exit status {exit:?}");
}

#[test]
fn bad_arguments_are_refused_clearly() {
    for (args, needle) in [
        (&["--size", "800by600"][..], "expected WIDTHxHEIGHT"),
        (&["--fps", "0"][..], "fps 0 is not in (0, 1000]"),
        (&["--port", "x"][..], "--port"),
        (&["--bogus"][..], "bogus"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_camera-double"))
            .args(args)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "no ready line for {args:?}");
    }
}
