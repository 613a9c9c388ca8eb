//! `OBJECT_LOCK_DAYS` end to end: the real uploader against the S3 rig (SeaweedFS, which
//! implements S3 Object Lock). Every PUT carries the retention headers, the store keeps the
//! mode and date, and a versioned delete of a locked segment is refused; a segment uploaded
//! again under its own key (a write-only key cannot see it is there) leaves the locked copy in
//! place. A bucket without Object Lock is a configuration error said once, retried rarely, and
//! nothing leaves the RAM directory; a key without the retention right is told so.

mod common;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::*;
use test_rigs::proxy::CountingProxy;
use test_rigs::s3::{S3Options, S3Rig};

fn locked_rig() -> S3Rig {
    S3Rig::start_with(S3Options {
        object_lock: true,
        ..S3Options::default()
    })
}

/// Points the uploader's credentials file at `(id, secret)`.
fn use_key(env: &Env, (id, secret): (&str, &str)) {
    std::fs::write(
        &env.creds,
        format!("[b2]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("retain-until `{s}`: {e}"))
        .with_timezone(&Utc)
}

/// Uploads three segments with `OBJECT_LOCK_DAYS=30` in `mode` (set in the camera's file, in
/// upper case) through the key that may write with retention but not read; the first segment
/// is already stored, locked, by an "earlier run". Checks what the store kept, and returns the
/// rig and the keys with the time window of the uploads.
fn upload_locked(mode: &str) -> (S3Rig, Vec<String>) {
    let rig = locked_rig();
    let mut env = Env::new(&rig, "OBJECT_LOCK_DAYS=30\n");
    std::fs::write(
        env.etc.join("cameras").join(format!("{CAMERA}.conf")),
        format!(
            "CAMERA_URL=http://127.0.0.1:9/stream\nOBJECT_LOCK_MODE={}\n",
            mode.to_uppercase()
        ),
    )
    .unwrap();
    use_key(&env, rig.lock_writer_key());
    let seg = real_segment(200);
    let mut expect = Vec::new();
    for i in 0..3u64 {
        let mtime = secs_ago(600 - i * 11);
        let mut bytes = seg.clone();
        bytes.extend(std::iter::repeat_n(0xa5u8, 188 * i as usize));
        env.place(&bytes, mtime);
        expect.push((expected_key(mtime, chrono_tz::Asia::Kolkata), bytes));
    }
    // An earlier run stored the first segment, locked, and died before deleting the file.
    let earlier_until = (Utc::now() + chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    rig.put_locked_object(
        &expect[0].0,
        &expect[0].1,
        &mode.to_uppercase(),
        &earlier_until,
    );
    let first_version = rig.versions(&expect[0].0);
    assert_eq!(first_version.len(), 1);

    let before = Utc::now();
    env.start();
    env.wait(60, "all 3 uploaded and deleted", |e| {
        e.segments_left().is_empty()
    });
    let after = Utc::now();
    assert_bucket(&rig, &expect);
    let stats = env.stats();
    assert_eq!(stats.uploaded, 3, "{stats:?}");
    assert!(stats.last_error.is_empty(), "{stats:?}");
    let log = env.log();
    assert!(
        log.contains(&format!(
            "OBJECT_LOCK_DAYS=30: every upload is locked against deletion and overwriting for 30 \
             days from its upload ({mode} mode)"
        )),
        "{log}"
    );
    env.stop();

    // Each segment is locked in the mode asked, 30 days from its upload, to the second.
    let lo = before + chrono::Duration::days(30);
    let hi = after + chrono::Duration::days(30) + chrono::Duration::seconds(1);
    for (key, _) in &expect {
        let (got_mode, until) = rig
            .retention(key, None)
            .unwrap_or_else(|| panic!("{key} has no retention"));
        assert_eq!(got_mode, mode.to_uppercase(), "{key}");
        let until = parse_time(&until);
        assert!(
            lo <= until && until <= hi,
            "{key}: {until} not in {lo}..{hi}"
        );
        assert_eq!(until.timestamp_subsec_nanos(), 0, "whole seconds: {until}");
    }
    // The first key was written again (this key cannot read, so it could not know): a second
    // version on top, and the earlier locked version untouched.
    let versions = rig.versions(&expect[0].0);
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert!(versions.contains(&first_version[0]), "{versions:?}");
    for v in &versions {
        assert_eq!(
            rig.retention(&expect[0].0, Some(v)).map(|r| r.0),
            Some(mode.to_uppercase()),
            "version {v}"
        );
    }
    for (key, _) in &expect[1..] {
        assert_eq!(rig.versions(key).len(), 1, "{key} stored once");
    }
    // Not even the bucket's full-rights key deletes a locked version without bypassing.
    for (key, bytes) in &expect {
        let v = rig.versions(key).remove(0);
        assert_eq!(
            rig.delete_version(key, &v, false),
            (403, "AccessDenied".to_string()),
            "versioned DELETE of {key}"
        );
        assert!(rig.get_object(key) == *bytes, "{key} still there");
    }
    let keys = expect.into_iter().map(|(k, _)| k).collect();
    (rig, keys)
}

#[test]
fn governance_locked_uploads_keep_their_retention_and_only_a_bypass_deletes_them() {
    let (rig, keys) = upload_locked("governance");
    // Governance: the owner's key, asking to bypass, may delete early.
    let v = rig.versions(&keys[2]).remove(0);
    assert_eq!(rig.delete_version(&keys[2], &v, true), (204, String::new()));
    assert!(rig.versions(&keys[2]).is_empty());
}

#[test]
fn compliance_locked_uploads_cannot_be_deleted_even_with_a_bypass() {
    let (rig, keys) = upload_locked("compliance");
    let v = rig.versions(&keys[2]).remove(0);
    assert_eq!(
        rig.delete_version(&keys[2], &v, true),
        (403, "AccessDenied".to_string())
    );
    assert_eq!(rig.versions(&keys[2]), vec![v]);
}

/// Watches the uploader for `window` after the first refused PUT: no second PUT, both
/// segments still in the RAM directory, the bucket empty.
fn assert_quiet_for(env: &mut Env, rig: &S3Rig, proxy: &CountingProxy, window: Duration) {
    let puts = |p: &CountingProxy| {
        p.request_lines()
            .iter()
            .filter(|l| l.starts_with("PUT "))
            .count()
    };
    let end = Instant::now() + window;
    while Instant::now() < end {
        env.status();
        assert_eq!(
            puts(proxy),
            1,
            "no retry storm:\n{:#?}",
            proxy.request_lines()
        );
        assert_eq!(
            env.segments_left().len(),
            2,
            "nothing leaves the RAM directory"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(rig.list_objects().is_empty(), "{:?}", rig.list_objects());
}

#[test]
fn bucket_without_object_lock_is_a_config_error_said_once_and_nothing_is_lost() {
    let rig = S3Rig::start();
    let proxy = CountingProxy::start(rig.addr());
    let mut env = Env::with_endpoint(&rig, &proxy.endpoint(), "OBJECT_LOCK_DAYS=7\n");
    let seg = real_segment(200);
    let mut names = Vec::new();
    for i in 0..2u64 {
        let mut bytes = seg.clone();
        bytes.push(i as u8);
        names.push(env.place(&bytes, secs_ago(300 - i * 11)));
    }
    env.start();
    env.wait(30, "the refusal in STATUS", |e| {
        e.status().contains("error: HTTP 400 InvalidRequest")
    });
    let status = env.status();
    assert!(
        status.contains(
            "it has no Object Lock; enable Object Lock (B2: File Lock) on the bucket, or unset \
             OBJECT_LOCK_DAYS"
        ),
        "{status}"
    );
    // The refused backoff would try again within 10 s; a configuration refusal waits minutes.
    assert_quiet_for(&mut env, &rig, &proxy, Duration::from_secs(12));
    let stats = env.stats();
    assert_eq!(stats.uploaded, 0);
    assert_eq!(stats.dropped, 0);
    assert!(stats.last_error.contains("OBJECT_LOCK_DAYS"), "{stats:?}");
    for n in &names {
        assert!(n.exists(), "{} kept", n.display());
    }
    let log = env.log();
    let said = log
        .lines()
        .filter(|l| l.contains("it has no Object Lock"))
        .collect::<Vec<_>>();
    assert_eq!(said.len(), 1, "said once:\n{log}");
    assert!(
        said[0].contains("Nothing is uploaded until then")
            && said[0].contains("tried again every 5 min"),
        "{}",
        said[0]
    );
    env.stop();
}

#[test]
fn a_key_without_the_retention_right_is_told_which_capability_it_lacks() {
    let rig = locked_rig();
    let mut env = Env::new(&rig, "OBJECT_LOCK_DAYS=1\nOBJECT_LOCK_MODE=compliance\n");
    use_key(&env, rig.write_only_key());
    let seg = env.place(&real_segment(200), secs_ago(120));
    env.start();
    env.wait(30, "the refusal in STATUS", |e| {
        e.status().contains("error: HTTP 403 AccessDenied")
    });
    let status = env.status();
    assert!(
        status.contains(
            "the key lacks B2's writeFiles and writeFileRetentions capabilities (s3:PutObject \
             and s3:PutObjectRetention)"
        ),
        "{status}"
    );
    assert!(seg.exists());
    assert!(rig.list_objects().is_empty());
    env.stop();
}
