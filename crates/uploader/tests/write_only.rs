//! The uploader with a least-privilege key (B2's `writeFiles` alone: no read, list or delete),
//! against the S3 rig's write-only identity, whose `HEAD`, `GET` and `LIST` answer 403: every
//! segment is uploaded once under its own key (never a `-2` variant), verified by the signed
//! Content-MD5, and deleted; the duplicate check is probed once, then off, and STATUS says so.

mod common;

use common::*;
use test_rigs::s3::S3Rig;

#[test]
fn write_only_key_uploads_each_segment_once_and_status_says_the_duplicate_check_is_off() {
    let rig = S3Rig::start();
    let proxy = test_rigs::proxy::CountingProxy::start(rig.addr());
    let mut env = Env::with_endpoint(&rig, &proxy.endpoint(), "");
    let (id, secret) = rig.write_only_key();
    std::fs::write(
        &env.creds,
        format!("[b2]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let seg = real_segment(200);
    let mut expect = Vec::new();
    for i in 0..3u64 {
        let mtime = secs_ago(600 - i * 11);
        let mut bytes = seg.clone();
        bytes.extend(std::iter::repeat_n(0xffu8, 188 * i as usize));
        env.place(&bytes, mtime);
        expect.push((expected_key(mtime, chrono_tz::Asia::Kolkata), bytes));
    }
    // The first segment is already stored (an earlier run died after its PUT, before the
    // delete): without read access the uploader cannot know, so it stores it again under the
    // same key, never under `-2`.
    rig.put_object(&expect[0].0, &expect[0].1);

    env.start();
    env.wait(60, "all 3 uploaded and deleted", |e| {
        e.segments_left().is_empty()
    });
    // Each key once, with its bytes (read with the rig's full-rights key), nothing else.
    assert_bucket(&rig, &expect);
    let stats = env.stats();
    assert_eq!(stats.uploaded, 3);
    assert!(stats.last_error.is_empty(), "{stats:?}");
    env.wait(10, "STATUS says the duplicate check is off", |e| {
        e.status().contains("duplicate check off")
    });
    assert!(
        !env.status().contains("error:"),
        "no error in STATUS: {}",
        env.status
    );

    let lines = proxy.request_lines();
    let count = |m: &str| lines.iter().filter(|l| l.starts_with(m)).count();
    assert_eq!(
        count("HEAD "),
        1,
        "one probe, not a HEAD per segment:\n{lines:#?}"
    );
    assert_eq!(count("PUT "), 3, "one PUT per segment:\n{lines:#?}");
    let log = env.log();
    assert_eq!(
        log.matches("duplicate check is off").count(),
        1,
        "said once in the log:\n{log}"
    );
    env.stop();
}
