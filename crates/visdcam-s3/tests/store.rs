//! The store client against a real S3 server (test-rigs' SeaweedFS, which checks SigV4 and
//! Content-MD5): listing across pages and within a prefix, HEAD with metadata, verified GET
//! (plain-MD5 ETag, a multipart ETag checked through `x-amz-meta-md5`, a lying `md5`, no MD5
//! at all), presigned URLs and their expiry, and refusals that say what is wrong.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload};
use rusty_s3::S3Action;
use test_rigs::s3::{md5_hex, S3Rig};
use visdcam_core::config::AddressingStyle;
use visdcam_s3::{prepare, Failure, Locations, Store, StoreConfig, Stored};

const PRESIGN: Duration = Duration::from_secs(600);

fn config(rig: &S3Rig) -> StoreConfig {
    StoreConfig {
        endpoint: rig.endpoint(),
        bucket: rig.bucket().to_string(),
        style: AddressingStyle::Path,
        region: Some(rig.region().to_string()),
        profile: "b2".into(),
        dscp: None,
        object_lock: None,
    }
}

/// A store with the rig's key in aws-cli files written into `dir`.
fn store(rig: &S3Rig, dir: &Path) -> Store {
    let (credentials, config_file) = rig.write_aws_files(dir, "b2");
    Store::new(
        config(rig),
        Locations {
            credentials: vec![credentials],
            config: vec![config_file],
        },
    )
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn refused(r: Result<impl std::fmt::Debug, Failure>) -> String {
    match r {
        Err(Failure::Refused { why }) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn store_is_shareable_between_threads() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    shareable::<Store>();
}

#[test]
fn list_follows_continuation_tokens_and_keeps_to_the_prefix() {
    let rig = S3Rig::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&rig, tmp.path());
    let mut want = Vec::new();
    for i in 0..250 {
        let key = format!("cam1/2025/10/12/{:02}/seg_{i:04}.ts", i / 60);
        let body = format!("segment {i}").into_bytes();
        rig.put_object(&key, &body);
        want.push((key, body.len() as u64, md5_hex(&body)));
    }
    // Neighbours the prefix must leave out.
    rig.put_object("cam10/2025/10/12/00/seg_0000.ts", b"other camera");
    rig.put_object("cam2/2025/10/12/00/seg_0000.ts", b"other camera");
    rig.put_object("cam1x", b"not under cam1/");

    let mut pages = Vec::new();
    let got = store
        .list_with_page_size("cam1/", 100, &mut |n| pages.push(n))
        .unwrap();
    assert_eq!(
        pages,
        [100, 200, 250],
        "a call per page with the count so far"
    );
    let got: Vec<(String, u64, String)> =
        got.into_iter().map(|l| (l.key, l.size, l.etag)).collect();
    assert_eq!(
        got, want,
        "every key once, in the store's (lexicographic) order"
    );

    let mut pages = Vec::new();
    let all = store.list("cam1/", &mut |n| pages.push(n)).unwrap();
    assert_eq!(all.len(), 250);
    assert_eq!(pages, [250], "page size 1000: one page");

    let hour = store
        .list("cam1/2025/10/12/04/", &mut |_| {})
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect::<Vec<_>>();
    assert_eq!(hour.len(), 10, "{hour:?}");
    assert!(hour.iter().all(|k| k.starts_with("cam1/2025/10/12/04/")));
    assert!(store.list("cam9/", &mut |_| {}).unwrap().is_empty());
}

#[test]
fn upload_sends_signed_metadata_that_head_reads_back() {
    let rig = S3Rig::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&rig, tmp.path());
    let file = tmp.path().join("seg-1760271142000-0a3f.ts");
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &body).unwrap();
    let md5 = md5_hex(&body);
    let meta = [
        ("visdcam-start-ms", "1760271142000".to_string()),
        ("md5", md5.clone()),
    ];
    let key = "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts";
    let mut last = 0;
    let stored = store
        .upload(prepare(&file).unwrap(), key, &meta, None, &mut |n| {
            last = n;
            true
        })
        .unwrap();
    assert_eq!(stored, Stored::Uploaded { key: key.into() });
    assert_eq!(rig.get_object(key), body);

    let head = store.head(key).unwrap().expect("the object exists");
    assert_eq!(head.etag, md5);
    assert_eq!(head.size, body.len() as u64);
    let want: BTreeMap<String, String> = [
        ("md5".to_string(), md5.clone()),
        ("visdcam-start-ms".to_string(), "1760271142000".to_string()),
    ]
    .into();
    assert_eq!(head.meta, want);
    assert_eq!(store.head("cam1/no/such/key.ts").unwrap(), None);

    // The same bytes again: already there, not stored twice.
    let again = store
        .upload(prepare(&file).unwrap(), key, &meta, None, &mut |_| true)
        .unwrap();
    assert_eq!(again, Stored::AlreadyThere { key: key.into() });
    assert_eq!(rig.list_objects().len(), 1);
}

/// Stores `body` as a two-part multipart upload (ETag `<md5 of md5s>-2`, not an MD5 of the
/// bytes) with `x-amz-meta-md5: md5` when given.
fn put_multipart(rig: &S3Rig, key: &str, body: &[u8], md5: Option<&str>) {
    let agent = agent();
    let bucket = rig.bucket_handle(rig.bucket());
    let creds = rig.credentials();
    let mut create = CreateMultipartUpload::new(&bucket, Some(&creds), key);
    if let Some(m) = md5 {
        create.headers_mut().insert("x-amz-meta-md5", m.to_string());
    }
    let mut req = agent.post(create.sign(PRESIGN).as_str());
    if let Some(m) = md5 {
        req = req.header("x-amz-meta-md5", m);
    }
    let mut r = req.send_empty().unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status(), 200, "{text}");
    let created = CreateMultipartUpload::parse_response(&text).unwrap();
    let id = created.upload_id();
    // Every part but the last must be at least 5 MiB.
    let (a, b) = body.split_at(5 << 20);
    let mut etags = Vec::new();
    for (n, part) in [(1u16, a), (2, b)] {
        let url = bucket.upload_part(Some(&creds), key, n, id).sign(PRESIGN);
        let r = agent.put(url.as_str()).send(part).unwrap();
        assert_eq!(r.status(), 200);
        let etag = r.headers().get("etag").unwrap().to_str().unwrap();
        etags.push(etag.to_string());
    }
    let complete = CompleteMultipartUpload::new(
        &bucket,
        Some(&creds),
        key,
        id,
        etags.iter().map(String::as_str),
    );
    let url = complete.sign(PRESIGN);
    let mut r = agent.post(url.as_str()).send(complete.body()).unwrap();
    let text = r.body_mut().read_to_string().unwrap();
    assert_eq!(r.status(), 200, "{text}");
}

#[test]
fn get_verifies_size_and_md5() {
    let rig = S3Rig::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&rig, tmp.path());

    // A single PUT: the ETag is the MD5.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    rig.put_object("cam1/a.ts", &body);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    let got = store
        .get("cam1/a.ts", &mut out, &mut |n| seen.push(n))
        .unwrap();
    assert_eq!(out, body);
    assert_eq!(got.size, body.len() as u64);
    assert!(got.verified, "ETag is a plain MD5");
    assert_eq!(seen.last(), Some(&(body.len() as u64)));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");

    // Multipart: the ETag is not an MD5; x-amz-meta-md5 is checked instead.
    let big: Vec<u8> = (0..(6u32 << 20)).map(|i| (i % 253) as u8).collect();
    let big_md5 = md5_hex(&big);
    put_multipart(&rig, "cam1/multi.ts", &big, Some(&big_md5));
    let head = store.head("cam1/multi.ts").unwrap().unwrap();
    assert!(head.etag.contains('-'), "multipart ETag: {}", head.etag);
    let mut out = Vec::new();
    let got = store.get("cam1/multi.ts", &mut out, &mut |_| {}).unwrap();
    assert!(got.verified, "checked against x-amz-meta-md5");
    assert_eq!(got.size, big.len() as u64);
    assert!(out == big);

    // A wrong x-amz-meta-md5 is a transient failure (the caller retries).
    put_multipart(&rig, "cam1/lying.ts", &big, Some(&md5_hex(b"other bytes")));
    match store.get("cam1/lying.ts", &mut Vec::new(), &mut |_| {}) {
        Err(Failure::Transient { why, .. }) => {
            assert!(why.contains("x-amz-meta-md5"), "{why}");
            assert!(why.contains(&big_md5), "{why}");
        }
        other => panic!("a lying md5 must fail: {other:?}"),
    }

    // Nothing to check the bytes against: delivered, but unverified.
    put_multipart(&rig, "cam1/bare.ts", &big, None);
    let got = store
        .get("cam1/bare.ts", &mut Vec::new(), &mut |_| {})
        .unwrap();
    assert!(!got.verified);
    assert_eq!(got.size, big.len() as u64);

    let why = refused(store.get("cam1/missing.ts", &mut Vec::new(), &mut |_| {}));
    assert!(why.starts_with("HTTP 404 NoSuchKey"), "{why}");
    assert!(why.contains("no object with that key"), "{why}");
}

#[test]
fn presigned_get_works_until_it_expires() {
    let rig = S3Rig::start();
    let tmp = tempfile::tempdir().unwrap();
    let store = store(&rig, tmp.path());
    rig.put_object("cam1/p.ts", b"playable bytes");
    let agent = agent();

    let url = store
        .presign_get("cam1/p.ts", Duration::from_secs(300))
        .unwrap();
    assert!(url.contains("X-Amz-Signature="), "{url}");
    let mut r = agent.get(&url).call().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.body_mut().read_to_vec().unwrap(), b"playable bytes");

    let short = store
        .presign_get("cam1/p.ts", Duration::from_secs(1))
        .unwrap();
    // Real time must pass for a URL to expire.
    std::thread::sleep(Duration::from_secs(2));
    let r = agent.get(&short).call().unwrap();
    assert_eq!(r.status(), 403, "an expired URL is refused");
}

#[test]
fn refusals_say_what_is_wrong() {
    let rig = S3Rig::start();
    let tmp = tempfile::tempdir().unwrap();
    rig.put_object("cam1/a.ts", b"x");
    let creds = tmp.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[b2]\naws_access_key_id = {}\naws_secret_access_key = {}x\n",
            rig.access_key(),
            rig.secret_key()
        ),
    )
    .unwrap();
    let wrong = Store::new(
        config(&rig),
        Locations {
            credentials: vec![creds.clone()],
            config: vec![],
        },
    );
    let why = refused(wrong.list("cam1/", &mut |_| {}));
    assert!(why.starts_with("HTTP 403 SignatureDoesNotMatch"), "{why}");
    assert!(why.contains("wrong secret key"), "{why}");
    let why = refused(wrong.get("cam1/a.ts", &mut Vec::new(), &mut |_| {}));
    assert!(why.contains("wrong secret key"), "{why}");
    // A HEAD answer has no body: every cause is named, the capability among them.
    let why = refused(wrong.head("cam1/a.ts"));
    assert!(why.starts_with("HTTP 403"), "{why}");
    assert!(why.contains("wrong key or secret"), "{why}");
    assert!(why.contains("readFiles"), "{why}");
    let why = refused(wrong.head_bucket());
    assert!(why.contains("SignatureDoesNotMatch"), "{why}");
    assert!(
        !why.contains(rig.secret_key()),
        "never the secret in a message"
    );

    // No credentials file, or no such profile.
    let gone = tmp.path().join("nothing-here");
    let none = Store::new(
        config(&rig),
        Locations {
            credentials: vec![gone.clone()],
            config: vec![],
        },
    );
    let why = refused(none.list("", &mut |_| {}));
    assert_eq!(
        why,
        format!("no credentials file (looked for {})", gone.display())
    );
    let mut other = config(&rig);
    other.profile = "wasabi".into();
    let why = refused(
        Store::new(
            other,
            Locations {
                credentials: vec![creds],
                config: vec![],
            },
        )
        .presign_get("cam1/a.ts", PRESIGN),
    );
    assert!(why.contains("no [wasabi] profile"), "{why}");

    // A bucket that does not exist.
    let good = store(&rig, tmp.path());
    good.head_bucket().unwrap();
    let mut missing = config(&rig);
    missing.bucket = "no-such-bucket".into();
    let (c, f) = rig.write_aws_files(tmp.path(), "b2");
    let missing = Store::new(
        missing,
        Locations {
            credentials: vec![c],
            config: vec![f],
        },
    );
    let why = refused(missing.head_bucket());
    assert!(why.contains("404"), "{why}");
    assert!(why.contains("B2_BUCKET"), "{why}");
}

#[test]
fn no_server_is_transient() {
    let tmp = tempfile::tempdir().unwrap();
    let rig = S3Rig::start();
    let (c, f) = rig.write_aws_files(tmp.path(), "b2");
    let mut cfg = config(&rig);
    // A port nothing listens on: the rig's, after it is stopped.
    drop(rig);
    cfg.region = Some("us-east-1".into());
    let store = Store::new(
        cfg,
        Locations {
            credentials: vec![c],
            config: vec![f],
        },
    );
    match store.list("", &mut |_| {}) {
        Err(Failure::Transient { why, .. }) => assert!(why.starts_with("LIST: "), "{why}"),
        other => panic!("connection refused must be transient: {other:?}"),
    }
}
