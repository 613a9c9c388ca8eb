//! The fault proxy in front of the real S3 server: each `StoreFault` does to a signed PUT what
//! its name says, and `Pass` afterwards stores again on the same proxy.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rusty_s3::S3Action;
use test_rigs::proxy::{FaultProxy, StoreFault};
use test_rigs::s3::{content_md5, S3Rig};

const PRESIGN: Duration = Duration::from_secs(300);

/// Sends a signed PUT of `body` to `key` through `endpoint` on a raw socket (as the uploader
/// does: `Content-Length`, `Content-MD5`, `Expect: 100-continue`, body sent at once) and
/// returns what came back before the connection ended or `wait` passed (`None`: silence).
fn raw_put(rig: &S3Rig, endpoint: &str, key: &str, body: &[u8], wait: Duration) -> Option<String> {
    let bucket = rig.bucket_handle(rig.bucket());
    let md5 = content_md5(body);
    let creds = rig.credentials();
    let mut action = bucket.put_object(Some(&creds), key);
    action.headers_mut().insert("content-md5", md5.clone());
    let url = action.sign(PRESIGN);
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    // Host: the server's, which the signature covers.
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nContent-MD5: {md5}\r\n\r\n",
        url.host_str().unwrap_or_default().to_owned()
            + &url.port().map(|p| format!(":{p}")).unwrap_or_default(),
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body);
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&chunk[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") && got.starts_with(b"HTTP/1.1 200") {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (!got.is_empty()).then(|| String::from_utf8_lossy(&got).into_owned());
            }
            Err(_) => break,
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[test]
fn each_store_fault_does_what_it_says_and_pass_stores_again() {
    let rig = S3Rig::start();
    let proxy = FaultProxy::start(rig.addr());
    let body: Vec<u8> = (0..300_000).map(|i| (i % 251) as u8).collect();
    let stored = |key: &str| rig.list_objects().iter().any(|(k, _)| k == key);
    let wait = Duration::from_secs(3);

    let answer = raw_put(&rig, &proxy.endpoint(), "a.ts", &body, wait).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(stored("a.ts"));

    proxy.set_fault(StoreFault::SlowDown);
    let answer = raw_put(&rig, &proxy.endpoint(), "b.ts", &body, wait).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1") && answer.contains("<Code>SlowDown</Code>"));

    proxy.set_fault(StoreFault::InternalError);
    let answer = raw_put(&rig, &proxy.endpoint(), "c.ts", &body, wait).unwrap();
    assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");

    proxy.set_fault(StoreFault::CutBody);
    let answer = raw_put(&rig, &proxy.endpoint(), "d.ts", &body, wait);
    assert_eq!(
        answer.as_deref().unwrap_or(""),
        "",
        "a cut upload gets no answer"
    );

    proxy.set_fault(StoreFault::BlackHole);
    let answer = raw_put(&rig, &proxy.endpoint(), "e.ts", &body, wait);
    assert_eq!(
        answer, None,
        "the black hole answers nothing and keeps the connection"
    );

    // Down: the connection held in the black hole is closed, new ones are closed at once.
    let held = TcpStream::connect(proxy.endpoint().trim_start_matches("http://")).unwrap();
    held.set_read_timeout(Some(wait)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    proxy.set_fault(StoreFault::Down);
    let mut byte = [0u8; 1];
    assert_eq!(
        (&held).read(&mut byte).unwrap_or(0),
        0,
        "closed by the outage"
    );
    let answer = raw_put(&rig, &proxy.endpoint(), "g.ts", &body, wait);
    assert_eq!(answer.as_deref().unwrap_or(""), "", "the store is down");

    proxy.set_fault(StoreFault::Pass);
    let answer = raw_put(&rig, &proxy.endpoint(), "f.ts", &body, wait).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    for (key, want) in [
        ("b.ts", false),
        ("c.ts", false),
        ("d.ts", false),
        ("e.ts", false),
        ("g.ts", false),
        ("f.ts", true),
    ] {
        assert_eq!(stored(key), want, "{key}");
    }
    let n = proxy.counts();
    assert_eq!(
        (
            n.passed,
            n.slow_down,
            n.internal_error,
            n.cut,
            n.black_holed,
            n.down
        ),
        (2, 1, 1, 1, 1, 1),
        "{n:?}"
    );
}
