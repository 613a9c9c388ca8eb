//! The recorder's memory across camera reconnects: GStreamer starts new streaming threads for
//! every connection, and glibc gives threads their own malloc arenas (up to 8 per core), which
//! the threads of earlier connections leave fragmented. Found by the soak (docs/reliability.md):
//! a recorder reconnecting every 3 s went from 27 MB to 46 MB RSS over 170 reconnects, while
//! one that never reconnected stayed at 27.6 MB. seg-cam now uses one arena. Before that fix
//! this test failed: 29.1 MB before, 34.2 MB after 40 reconnects (+18 %).

mod common;

use std::time::{Duration, Instant};

use camera_double::Fault;
use common::Rig;

/// Reconnects the test forces.
const RECONNECTS: usize = 40;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in {status}"))
}

/// The median of a few RSS samples over `d` (one reading can catch a passing peak).
fn rss_over(pid: u32, d: Duration) -> u64 {
    let end = Instant::now() + d;
    let mut v = Vec::new();
    while Instant::now() < end {
        v.push(rss_kib(pid));
        // Spacing between samples of a steady process, not a wait for a condition.
        std::thread::sleep(Duration::from_millis(500));
    }
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
#[ignore = "long: forty camera reconnects (about 2 minutes); cargo xtask ci runs it with --ignored"]
fn rss_stays_flat_across_camera_reconnects() {
    let mut rig = Rig::new("");
    rig.start();
    rig.wait_finals(1, Duration::from_secs(30));
    let pid = rig.pid();
    let base = rss_over(pid, Duration::from_secs(5));

    for i in 0..RECONNECTS {
        let t = Instant::now();
        rig.cam
            .set_fault(Fault::CloseAndRefuse(Duration::from_millis(300)));
        let (t_retry, _) = rig
            .notify
            .wait_status(t, Duration::from_secs(20), |s| s.contains("retry in"))
            .unwrap_or_else(|| panic!("reconnect {i}: no retry after the close"));
        rig.notify
            .wait_status(t_retry, Duration::from_secs(30), |s| {
                s.starts_with("recording")
            })
            .unwrap_or_else(|| panic!("reconnect {i}: not recording again"));
    }
    assert!(rig.running() && rig.pid() == pid, "no process restart");
    let after = rss_over(pid, Duration::from_secs(5));
    eprintln!("RSS {base} KiB before, {after} KiB after {RECONNECTS} reconnects");
    assert!(
        after as f64 <= base as f64 * 1.10,
        "RSS {base} KiB before, {after} KiB after {RECONNECTS} reconnects"
    );
    assert_eq!(rig.stop().code(), Some(0));
}
