//! The S3 rig against a real SeaweedFS: what the uploader relies on (SigV4 enforced on
//! presigned URLs, Content-MD5 signed and verified, missing buckets not auto-created) and the
//! rig's own lifecycle (stop, start again, drop).
//!
//! How Content-MD5 gets verified: rusty-s3 signs every header put in `headers_mut()` along
//! with `host` (`X-Amz-SignedHeaders=content-md5;host` in the presigned URL), so the request
//! must carry exactly that value or the signature fails (403); the server then compares the
//! value with the MD5 of the body it received and answers 400 BadDigest on a mismatch.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use rusty_s3::{Credentials, S3Action};
use test_rigs::s3::{content_md5, md5_hex, S3Options, S3Rig};

const PRESIGN: Duration = Duration::from_secs(300);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A presigned PutObject URL for `key` with `Content-MD5: md5` signed in.
fn presigned_put(rig: &S3Rig, creds: &Credentials, key: &str, md5: &str) -> String {
    let bucket = rig.bucket_handle(rig.bucket());
    let mut action = bucket.put_object(Some(creds), key);
    action.headers_mut().insert("content-md5", md5.to_owned());
    action.sign(PRESIGN).to_string()
}

/// Sends a PUT and returns status and body text.
fn put(url: &str, md5: &str, body: &[u8]) -> (u16, String) {
    let mut response = agent()
        .put(url)
        .header("Content-MD5", md5)
        .send(body)
        .expect("PUT reached the server");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

fn body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn signed_put_with_right_md5_is_stored_and_etag_is_hex_md5() {
    let rig = S3Rig::start();
    let data = body(200_000);
    let key = "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts";
    let md5 = content_md5(&data);
    let url = presigned_put(&rig, &rig.credentials(), key, &md5);
    assert!(
        url.contains("X-Amz-SignedHeaders=content-md5%3Bhost"),
        "Content-MD5 is a signed header: {url}"
    );

    let (status, text) = put(&url, &md5, &data);
    assert_eq!(status, 200, "{text}");

    let (got, etag) = rig.get_object_with_etag(key);
    assert_eq!(got, data);
    assert_eq!(etag, md5_hex(&data));
    assert_eq!(
        rig.list_objects(),
        vec![(key.to_owned(), data.len() as u64)]
    );
}

#[test]
fn put_signed_with_wrong_secret_is_refused_and_nothing_stored() {
    let rig = S3Rig::start();
    let data = body(10_000);
    let md5 = content_md5(&data);
    let wrong = Credentials::new(rig.access_key(), "not-the-secret");
    let url = presigned_put(&rig, &wrong, "cam1/x.ts", &md5);

    let (status, text) = put(&url, &md5, &data);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    assert_eq!(rig.list_objects(), vec![]);

    let unknown = Credentials::new("NOSUCHKEY", rig.secret_key());
    let url = presigned_put(&rig, &unknown, "cam1/x.ts", &md5);
    let (status, text) = put(&url, &md5, &data);
    assert_eq!(status, 403, "{text}");
    assert_eq!(rig.list_objects(), vec![]);
}

#[test]
fn put_with_wrong_content_md5_is_bad_digest_and_nothing_stored() {
    let rig = S3Rig::start();
    let data = body(10_000);
    // The MD5 of other bytes, signed and sent consistently: only the server's check can catch it.
    let wrong_md5 = content_md5(b"other bytes");
    let url = presigned_put(&rig, &rig.credentials(), "cam1/x.ts", &wrong_md5);

    let (status, text) = put(&url, &wrong_md5, &data);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("BadDigest"), "{text}");
    assert_eq!(rig.list_objects(), vec![]);
}

#[test]
fn content_md5_differing_from_the_signed_one_is_refused() {
    let rig = S3Rig::start();
    let data = body(10_000);
    let signed_md5 = content_md5(b"other bytes");
    let url = presigned_put(&rig, &rig.credentials(), "cam1/x.ts", &signed_md5);

    // The header sent is right for the body but is not the value that was signed.
    let (status, text) = put(&url, &content_md5(&data), &data);
    assert_eq!(status, 403, "{text}");
    assert_eq!(rig.list_objects(), vec![]);
}

#[test]
fn unsigned_put_is_refused() {
    let rig = S3Rig::start();
    let url = format!("{}/{}/cam1/x.ts", rig.endpoint(), rig.bucket());
    let (status, text) = put(&url, &content_md5(b"x"), b"x");
    assert_eq!(status, 403, "{text}");
    assert_eq!(rig.list_objects(), vec![]);
}

#[test]
fn put_into_missing_bucket_is_404_and_does_not_create_it() {
    let rig = S3Rig::start();
    rig.put_object("seed.ts", b"seed");
    rig.delete_bucket(rig.bucket());

    let data = body(1000);
    let md5 = content_md5(&data);
    let url = presigned_put(&rig, &rig.credentials(), "cam1/x.ts", &md5);
    let (status, text) = put(&url, &md5, &data);
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("NoSuchBucket"), "{text}");

    rig.create_bucket(rig.bucket());
    assert_eq!(rig.list_objects(), vec![], "the bucket came back empty");
}

#[test]
fn list_follows_continuation_tokens() {
    let rig = S3Rig::start();
    let mut expected = Vec::new();
    for i in 0..7 {
        let key = format!("cam{}/2025/01/01/00/seg_{i}.ts", i % 2 + 1);
        let data = body(100 + i);
        rig.put_object(&key, &data);
        expected.push((key, data.len() as u64));
    }
    expected.sort();
    assert_eq!(rig.list_objects_paged(rig.bucket(), 2), expected);
    assert_eq!(rig.list_objects(), expected);
}

#[test]
fn stop_refuses_connections_and_start_again_keeps_objects() {
    let mut rig = S3Rig::start();
    let endpoint = rig.endpoint();
    let data = body(300_000);
    rig.put_object("cam1/kept.ts", &data);

    rig.stop();
    let err = TcpStream::connect(rig.addr()).expect_err("port closed after stop()");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);

    rig.start_again();
    assert_eq!(rig.endpoint(), endpoint, "same port");
    assert_eq!(
        rig.list_objects(),
        vec![("cam1/kept.ts".to_owned(), data.len() as u64)]
    );
    assert_eq!(rig.get_object("cam1/kept.ts"), data);
    // Still writable, with the same credentials.
    rig.put_object("cam1/after.ts", b"after");
    assert_eq!(rig.get_object("cam1/after.ts"), b"after");
}

#[test]
fn drop_kills_the_server_and_removes_its_data() {
    let rig = S3Rig::start();
    let pid = rig.pid().expect("running");
    let dir = rig.dir().to_owned();
    let addr = rig.addr();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    drop(rig);
    // The rig reaped its child, so the pid is gone at once (not even a zombie).
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
    let err = TcpStream::connect(addr).expect_err("port closed after drop");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn drop_during_a_panic_kills_the_server() {
    let pid = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(|| {
        let rig = S3Rig::start();
        *pid.lock().unwrap() = rig.pid();
        panic!("test failure while the rig runs");
    });
    assert!(result.is_err());
    let pid = pid.lock().unwrap().expect("the rig started");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} still exists"
    );
}

#[test]
fn aws_files_name_the_profile_key_secret_and_region() {
    let rig = S3Rig::start();
    let dir = tempfile::tempdir().unwrap();
    let (credentials, config) = rig.write_aws_files(dir.path(), "b2");
    let credentials = std::fs::read_to_string(credentials).unwrap();
    let config = std::fs::read_to_string(config).unwrap();
    assert_eq!(
        credentials,
        format!(
            "[b2]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            rig.access_key(),
            rig.secret_key()
        )
    );
    assert_eq!(config, "[profile b2]\nregion = us-east-1\n");
}

/// PUTs `data` virtual-host style: signed for `http://<bucket>.<domain>:PORT/<key>`, sent to
/// 127.0.0.1 with that `Host` (nothing resolves the test domain).
fn vhost_put(rig: &S3Rig, domain: &str, key: &str, data: &[u8]) -> (u16, String) {
    let host = format!("{}.{domain}:{}", rig.bucket(), rig.port());
    let bucket = rusty_s3::Bucket::new(
        format!("http://{domain}:{}", rig.port()).parse().unwrap(),
        rusty_s3::UrlStyle::VirtualHost,
        rig.bucket().to_owned(),
        rig.region().to_owned(),
    )
    .unwrap();
    let creds = rig.credentials();
    let md5 = content_md5(data);
    let mut action = bucket.put_object(Some(&creds), key);
    action.headers_mut().insert("content-md5", md5.clone());
    let mut url = action.sign(PRESIGN);
    assert_eq!(url.host_str(), Some(host.split(':').next().unwrap()));
    url.set_host(Some("127.0.0.1")).unwrap();

    let mut response = agent()
        .put(url.as_str())
        .header("Host", &host)
        .header("Content-MD5", &md5)
        .send(data)
        .unwrap();
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, text)
}

#[test]
fn virtual_host_style_needs_and_works_with_domain_name() {
    let domain = "s3.visdcam.test";
    let data = body(5000);

    let rig = S3Rig::start_with(S3Options {
        domain_name: Some(domain.into()),
        ..S3Options::default()
    });
    let (status, text) = vhost_put(&rig, domain, "cam2/vhost.ts", &data);
    assert_eq!(status, 200, "{text}");
    assert_eq!(rig.get_object("cam2/vhost.ts"), data);
    drop(rig);

    // Without the option the server reads the first path segment as the bucket.
    let rig = S3Rig::start();
    let (status, text) = vhost_put(&rig, domain, "cam2/vhost.ts", &data);
    assert_eq!(status, 404, "{text}");
    assert_eq!(rig.list_objects(), vec![]);
}

#[test]
fn server_is_ready_for_writes_as_soon_as_start_returns() {
    // Writes right after start must not need retries: tests rely on it.
    let rig = S3Rig::start();
    let data = body(1000);
    let md5 = content_md5(&data);
    let url = presigned_put(&rig, &rig.credentials(), "first.ts", &md5);
    let (status, text) = put(&url, &md5, &data);
    assert_eq!(status, 200, "{text}");
    assert_eq!(rig.list_objects(), vec![("first.ts".to_owned(), 1000)]);
}

/// A PUT of `data` to `key` in bucket `name` signed with `(id, secret)`, with Object Lock
/// retention headers; returns status and body text.
fn put_with_retention(
    rig: &S3Rig,
    name: &str,
    (id, secret): (&str, &str),
    key: &str,
    data: &[u8],
    until: &str,
) -> (u16, String) {
    let creds = Credentials::new(id, secret);
    let bucket = rig.bucket_handle(name);
    let md5 = content_md5(data);
    let headers = [
        ("content-md5", md5.as_str()),
        ("x-amz-object-lock-mode", "GOVERNANCE"),
        ("x-amz-object-lock-retain-until-date", until),
    ];
    let mut action = bucket.put_object(Some(&creds), key);
    for (k, v) in headers {
        action.headers_mut().insert(k, v.to_owned());
    }
    let mut request = agent().put(action.sign(PRESIGN).as_str());
    for (k, v) in headers {
        request = request.header(k, v);
    }
    let mut response = request.send(data).expect("PUT reached the server");
    let status = response.status().as_u16();
    (
        status,
        response.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn object_lock_bucket_keeps_retention_and_refuses_what_s3_refuses() {
    let rig = S3Rig::start_with(S3Options {
        object_lock: true,
        ..S3Options::default()
    });
    let until = "2099-01-02T03:04:05Z";
    rig.put_object("plain", b"no lock asked");
    assert_eq!(rig.retention("plain", None), None);

    rig.put_locked_object("k", &body(1000), "GOVERNANCE", until);
    assert_eq!(
        rig.retention("k", None),
        Some(("GOVERNANCE".to_string(), until.to_string()))
    );
    let first = rig.versions("k");
    assert_eq!(first.len(), 1);
    // Writing the key again adds a version; the locked one stays, and stays locked.
    rig.put_object("k", b"other bytes");
    let both = rig.versions("k");
    assert_eq!(both.len(), 2, "{both:?}");
    assert_eq!(both[1..], first[..], "newest first");
    assert_eq!(rig.get_object("k"), b"other bytes");
    assert_eq!(
        rig.retention("k", Some(&first[0])),
        Some(("GOVERNANCE".to_string(), until.to_string()))
    );
    assert_eq!(
        rig.delete_version("k", &first[0], false),
        (403, "AccessDenied".to_string())
    );
    assert_eq!(
        rig.delete_version("k", &first[0], true),
        (204, String::new())
    );
    assert_eq!(rig.versions("k").len(), 1);

    // Retention headers need the retention right, and a bucket with Object Lock.
    let data = body(500);
    let (status, text) =
        put_with_retention(&rig, rig.bucket(), rig.lock_writer_key(), "w", &data, until);
    assert_eq!(status, 200, "{text}");
    let (status, text) =
        put_with_retention(&rig, rig.bucket(), rig.write_only_key(), "w", &data, until);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("<Code>AccessDenied</Code>"), "{text}");
    rig.create_bucket("no-lock");
    let full = (rig.access_key().to_owned(), rig.secret_key().to_owned());
    let (status, text) = put_with_retention(&rig, "no-lock", (&full.0, &full.1), "w", &data, until);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("<Code>InvalidRequest</Code>"), "{text}");
    assert!(rig.list_objects_in("no-lock").is_empty());
}
