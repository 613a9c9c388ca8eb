//! What the uploader stores with each segment besides its bytes: `x-amz-meta-visdcam-start-ms`
//! (the first frame's wall time, from the segment's name; the key time is its end) and
//! `x-amz-meta-md5`, read back with the project's own S3 client.

mod common;

use std::time::SystemTime;

use common::*;
use test_rigs::s3::{md5_hex, S3Rig};
use visdcam_core::config::AddressingStyle;
use visdcam_core::segment::SegmentName;
use visdcam_s3::{Locations, Store, StoreConfig};

#[test]
fn segments_carry_their_start_time_and_md5() {
    let rig = S3Rig::start();
    let mut env = Env::new(&rig, "");
    let bytes = real_segment(200);
    let end = secs_ago(1800);
    let placed = env.place(&bytes, end);
    // Started 9.5 s before it ended: the name says so, the mtime is the end.
    let end_ms = end
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let start_ms = end_ms - 9_500;
    let named = env
        .camdir
        .join(SegmentName::new(start_ms, 0x00ff).final_name());
    std::fs::rename(&placed, &named).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&named)
        .unwrap()
        .set_modified(end)
        .unwrap();
    env.start();
    env.wait(60, "uploaded", |e| e.segments_left().is_empty());
    let key = expected_key(end, chrono_tz::Asia::Kolkata);
    assert_bucket(&rig, &[(key.clone(), bytes.clone())]);

    let store = Store::new(
        StoreConfig {
            endpoint: rig.endpoint(),
            bucket: rig.bucket().into(),
            style: AddressingStyle::Path,
            region: Some(rig.region().into()),
            profile: "b2".into(),
            dscp: None,
            object_lock: None,
        },
        Locations {
            credentials: vec![env.creds.clone()],
            config: vec![env.aws_config.clone()],
        },
    );
    let head = store.head(&key).unwrap().expect("the segment's object");
    assert_eq!(
        head.meta.get("visdcam-start-ms"),
        Some(&start_ms.to_string()),
        "{:?}",
        head.meta
    );
    assert_eq!(head.meta.get("md5"), Some(&md5_hex(&bytes)));
    assert_eq!(head.etag, md5_hex(&bytes));
    env.stop();
}
