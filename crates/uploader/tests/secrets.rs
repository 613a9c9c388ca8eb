//! No log level prints a credential, a signature or a body: the real uploader at
//! `LOG_LEVEL=trace` (stderr, not under systemd) uploads a segment to the S3 rig.

mod common;

use common::*;
use test_rigs::s3::S3Rig;

#[test]
fn trace_level_logs_no_signature_credential_secret_or_body() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let conf = env.etc.join("visdcam.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, text.replace("LOG_LEVEL=info", "LOG_LEVEL=trace")).unwrap();
    // A body with a marker that any dump of its bytes would show: every 16-byte window of a
    // text repeating with period 8 holds the whole period.
    let mut body = real_segment(200);
    body.extend("BODYBYTE".repeat(256).bytes());
    let t = secs_ago(30);
    env.place(&body, t);
    env.start();
    env.wait(60, "uploaded", |e| e.segments_left().is_empty());
    assert_bucket(&rig, &[(expected_key(t, chrono_tz::Asia::Kolkata), body)]);
    env.stop();
    let log = env.log();
    assert!(
        log.contains("uploaded seg-"),
        "the uploader logged at all:\n{log}"
    );
    let lower = log.to_ascii_lowercase();
    for secret in [
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "authorization:",
    ] {
        assert!(!lower.contains(secret), "the log shows {secret}:\n{log}");
    }
    assert!(
        !log.contains(rig.secret_key()),
        "the log shows the secret key"
    );
    assert!(!log.contains("BODYBYTE"), "the log shows body bytes");
    // Nor the upload's signed URL in any other form (the key's name alone is fine).
    assert!(!log.contains("X-Amz-"), "{log}");
}
