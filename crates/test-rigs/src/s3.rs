//! A real S3 server (SeaweedFS) on a free loopback port.
//!
//! [`S3Rig::start`] runs `weed mini` with SigV4 authentication enforced (one identity with
//! Admin/Read/Write/List rights), its data in a temporary directory, on ports that were free,
//! and creates the bucket. The rig's own requests (create/delete bucket, list, get, put) are
//! presigned with rusty-s3 and sent with ureq, like the uploader's. Dropping the rig kills the
//! server's process group and deletes its data, even when the test panics.
//!
//! Why `weed mini` and these flags (measured on a 2-core Debian 12 VM, SeaweedFS 4.48):
//! - `weed mini` answers S3 about 0.8 s after spawn; `weed server -s3` takes about 3.2 s (its
//!   master waits ~1.8 s for raft peers before electing itself). Both idle at ~110 MB RSS.
//! - Every listener gets an explicit port, gRPC ones included: the defaults (HTTP port + 10000,
//!   admin 23646) are fixed or overflow for ports above 55535, and would clash between rigs.
//!   Iceberg and Lance endpoints are disabled (`=0`), as are WebDAV and the admin UI.
//! - `-s3.autoCreateBucket=false`: otherwise an admin identity's PUT into a missing bucket
//!   silently creates it, and "bucket missing" tests would pass for the wrong reason.
//! - `-master.telemetry=false`: no traffic off the machine.
//! - `-volume.max=8 -master.volumeSizeLimitMB=64`: room for 512 MB of objects in sparse files
//!   instead of volumes sized from the free disk space (`S3Options::capacity_mb` for more; a
//!   full store answers PUTs with 500 InternalError).
//! - `TMPDIR` points into the rig's directory, so SeaweedFS's glog files land there. Its unix
//!   sockets are hard-wired to `/tmp/seaweedfs-*-<port>.sock`; the rig removes those of its own
//!   ports when it stops the server.
//!
//! Stopping: the rig sends SIGKILL rather than SIGTERM. A graceful stop takes ~3.6 s (`weed
//! server`: ~17 s, its filer waits 15 s for gRPC streams), and acknowledged writes survive a
//! SIGKILL (volume data and the filer's leveldb journal are written before the reply), which
//! `tests/s3_rig.rs` checks (`stop_refuses_connections_and_start_again_keeps_objects`). If the
//! test process itself is SIGKILLed, `PR_SET_PDEATHSIG` still kills the server, but its
//! temporary directory and sockets stay behind.
//!
//! Object Lock: with [`S3Options::object_lock`] the bucket is created with Object Lock (and
//! so versioning) enabled. SeaweedFS 4.48 stores the retention a PUT asks for
//! (`x-amz-object-lock-mode`, `-retain-until-date`), answers `GET ?retention` with it, refuses
//! a versioned `DELETE` of a locked version (403 AccessDenied; governance may be bypassed by
//! the admin key with `x-amz-bypass-governance-retention`, compliance by nobody), keeps the
//! locked version when the key is written again, and answers a PUT with retention headers to a
//! bucket without Object Lock with 400 InvalidRequest, as S3 does.
//!
//! Virtual-host style: with [`S3Options::domain_name`] the server also serves
//! `Host: <bucket>.<domain>:PORT`. Nothing resolves that name, so a client signs for
//! `http://<bucket>.<domain>:PORT/<key>` (rusty-s3 `UrlStyle::VirtualHost`), then sends the
//! request to `127.0.0.1:PORT` with that `Host` header (ureq keeps a given `Host`).

use std::collections::BTreeMap;
use std::env;
use std::fs;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::process::{free_ports, wait_until, ChildGuard};

/// Bucket the rig creates unless told otherwise (the one visdcam-pi users have).
pub const DEFAULT_BUCKET: &str = "visd-cctv";
/// Region the rig's signatures use. SeaweedFS accepts any region in the credential scope.
pub const DEFAULT_REGION: &str = "us-east-1";

/// How long the server may take to answer after spawn (0.8 s here; CI machines are slower).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Validity of the rig's own presigned URLs.
const PRESIGN: Duration = Duration::from_secs(600);

/// Where to find the `weed` binary: `$VISDCAM_WEED`, then
/// `<workspace>/target/tools/venv/bin/weed` (made by `cargo xtask deps`), then `PATH`.
///
/// # Panics
/// If none of them has it, with a message saying to run `cargo xtask deps`.
pub fn weed_path() -> PathBuf {
    if let Some(path) = env::var_os("VISDCAM_WEED") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VISDCAM_WEED={} is not a file; unset it or run `cargo xtask deps`",
            path.display()
        );
        return path;
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = workspace.join("target/tools/venv/bin/weed");
    if venv.is_file() {
        return venv;
    }
    if let Some(found) = env::var_os("PATH")
        .iter()
        .flat_map(env::split_paths)
        .map(|dir| dir.join("weed"))
        .find(|p| p.is_file())
    {
        return found;
    }
    panic!(
        "SeaweedFS `weed` not found (not in $VISDCAM_WEED, {}, nor PATH): run `cargo xtask deps`",
        venv.display()
    );
}

/// Options for [`S3Rig::start_with`].
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Bucket created at start.
    pub bucket: String,
    /// Region used in signatures and in the aws config file.
    pub region: String,
    /// Also serve virtual-host style requests for `Host: <bucket>.<domain>`
    /// (SeaweedFS `-s3.domainName`). Path style keeps working.
    pub domain_name: Option<String>,
    /// Room for objects, in MiB (volumes of 64 MiB in sparse files; SeaweedFS answers
    /// 500 InternalError once they are full).
    pub capacity_mb: u32,
    /// Create the bucket with Object Lock enabled (`x-amz-bucket-object-lock-enabled: true`,
    /// which also turns versioning on), as a B2 bucket with File Lock.
    pub object_lock: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            bucket: DEFAULT_BUCKET.into(),
            region: DEFAULT_REGION.into(),
            domain_name: None,
            capacity_mb: 512,
            object_lock: false,
        }
    }
}

/// Every port one `weed mini` listens on.
#[derive(Debug, Clone, Copy)]
struct Ports {
    s3: u16,
    s3_grpc: u16,
    master: u16,
    master_grpc: u16,
    volume: u16,
    volume_grpc: u16,
    filer: u16,
    filer_grpc: u16,
    admin: u16,
    admin_grpc: u16,
}

impl Ports {
    fn pick() -> Ports {
        let p = free_ports(10);
        Ports {
            s3: p[0],
            s3_grpc: p[1],
            master: p[2],
            master_grpc: p[3],
            volume: p[4],
            volume_grpc: p[5],
            filer: p[6],
            filer_grpc: p[7],
            admin: p[8],
            admin_grpc: p[9],
        }
    }

    fn all(&self) -> [u16; 10] {
        [
            self.s3,
            self.s3_grpc,
            self.master,
            self.master_grpc,
            self.volume,
            self.volume_grpc,
            self.filer,
            self.filer_grpc,
            self.admin,
            self.admin_grpc,
        ]
    }
}

/// A running SeaweedFS S3 server with one bucket, stopped and deleted on drop.
///
/// Methods panic with a descriptive message on any unexpected answer: this is test support.
#[derive(Debug)]
pub struct S3Rig {
    weed: PathBuf,
    /// Holds the identities file, `data/`, and the server's logs; removed on drop, after the
    /// server is dead (see `Drop`).
    dir: tempfile::TempDir,
    ports: Ports,
    opts: S3Options,
    access_key: String,
    secret_key: String,
    /// A key that may only write (no list, no read).
    writer: (String, String),
    /// A key that may only write, with retention headers too (no list, no read).
    lock_writer: (String, String),
    server: Option<ChildGuard>,
    agent: ureq::Agent,
}

impl S3Rig {
    /// Starts a server with bucket [`DEFAULT_BUCKET`] and waits until it answers.
    pub fn start() -> S3Rig {
        S3Rig::start_with(S3Options::default())
    }

    /// Starts a server with `opts` and waits until it answers, then creates `opts.bucket`.
    pub fn start_with(opts: S3Options) -> S3Rig {
        let dir = tempfile::Builder::new()
            .prefix("visdcam-s3rig-")
            .tempdir()
            .expect("creating the S3 rig's temporary directory");
        let access_key = format!("VISDTEST{}", random_alnum(12).to_uppercase());
        let secret_key = random_alnum(40);
        // Only these identities exist: anonymous and wrongly signed requests get 403. The
        // second key may only write (B2's writeFiles alone): listing or reading with it is
        // refused with 403 AccessDenied.
        let writer_key = format!("VISDWRITE{}", random_alnum(11).to_uppercase());
        let writer_secret = random_alnum(40);
        // A third key may write and put retention headers on what it writes (B2's writeFiles
        // with writeFileRetentions): SeaweedFS refuses a PUT with Object Lock headers from a
        // key without `PutObjectRetention`, as B2 and S3 do. It may not bypass governance.
        let lock_key = format!("VISDLOCK{}", random_alnum(12).to_uppercase());
        let lock_secret = random_alnum(40);
        let identities = format!(
            r#"{{"identities":[{{"name":"visdcam-test","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","Write","List","Tagging"]}},{{"name":"visdcam-writer","credentials":[{{"accessKey":"{writer_key}","secretKey":"{writer_secret}"}}],"actions":["Write"]}},{{"name":"visdcam-lock-writer","credentials":[{{"accessKey":"{lock_key}","secretKey":"{lock_secret}"}}],"actions":["Write","PutObjectRetention"]}}]}}"#
        );
        fs::write(dir.path().join("s3.json"), identities).expect("writing the S3 identities file");
        fs::create_dir(dir.path().join("data")).expect("creating the S3 data directory");

        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            // A pooled connection to a server stopped by `stop()` would fail the next request.
            .max_idle_connections(0)
            .build()
            .new_agent();

        let mut rig = S3Rig {
            weed: weed_path(),
            dir,
            ports: Ports::pick(),
            opts,
            access_key,
            secret_key,
            writer: (writer_key, writer_secret),
            lock_writer: (lock_key, lock_secret),
            server: None,
            agent,
        };
        // Another process may bind one of the ten ports between `free_ports` and `weed`'s own
        // check, which makes it exit at once ("Port allocation failed"): pick new ports then.
        let mut attempt = 1;
        while let Err(failure) = rig.spawn_and_wait() {
            if attempt == 3 || !failure.contains("Port allocation failed") {
                panic!("{failure}");
            }
            attempt += 1;
            rig.ports = Ports::pick();
            fs::remove_file(rig.dir.path().join("weed.log")).expect("removing weed.log");
        }
        let bucket = rig.opts.bucket.clone();
        if rig.opts.object_lock {
            rig.create_locked_bucket(&bucket);
        } else {
            rig.create_bucket(&bucket);
        }
        rig
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint (path style).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// The S3 port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.ports.s3
    }

    /// Region to sign with.
    pub fn region(&self) -> &str {
        &self.opts.region
    }

    /// The bucket created at start.
    pub fn bucket(&self) -> &str {
        &self.opts.bucket
    }

    /// The only access key the server accepts.
    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    /// The secret of [`S3Rig::access_key`].
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The domain given in [`S3Options::domain_name`], if any.
    pub fn domain_name(&self) -> Option<&str> {
        self.opts.domain_name.as_deref()
    }

    /// The server's pid while it runs (for tests that check it is gone).
    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(ChildGuard::pid)
    }

    /// The directory holding the server's data and logs (`weed.log`), kept until drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the server (SIGKILL, like a crash): its port refuses connections when this returns.
    /// Data already acknowledged is kept for [`S3Rig::start_again`]. No-op if already stopped.
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
            self.remove_sockets();
        }
    }

    /// Starts the server again on the same ports with the same data, and waits until it answers.
    ///
    /// # Panics
    /// If it is already running.
    pub fn start_again(&mut self) {
        assert!(
            self.server.is_none(),
            "start_again: the S3 server is already running"
        );
        if let Err(failure) = self.spawn_and_wait() {
            panic!("start_again: {failure}");
        }
    }

    /// Creates bucket `name` (path style, signed). Panics unless the server says 200.
    pub fn create_bucket(&self, name: &str) {
        let bucket = self.bucket_handle(name);
        let creds = self.credentials();
        let action = bucket.create_bucket(&creds);
        let body = action.body();
        let url = action.sign(PRESIGN);
        let response = self.agent.put(url.as_str()).send(body.as_bytes());
        let (status, text) = read_text(response, "CreateBucket");
        assert_eq!(status, 200, "CreateBucket {name}: {text}");
    }

    /// Creates bucket `name` with Object Lock enabled (and so versioning). Panics unless 200.
    pub fn create_locked_bucket(&self, name: &str) {
        let bucket = self.bucket_handle(name);
        let creds = self.credentials();
        let mut action = bucket.create_bucket(&creds);
        action
            .headers_mut()
            .insert("x-amz-bucket-object-lock-enabled", "true");
        let body = action.body();
        let url = action.sign(PRESIGN);
        let response = self
            .agent
            .put(url.as_str())
            .header("x-amz-bucket-object-lock-enabled", "true")
            .send(body.as_bytes());
        let (status, text) = read_text(response, "CreateBucket (Object Lock)");
        assert_eq!(status, 200, "CreateBucket {name} with Object Lock: {text}");
    }

    /// The retention of `key`'s latest version (or of `version_id`) in the rig's bucket, as
    /// the server stored it: `(mode, retain-until date)` as written in its answer, `None` when
    /// the object has none. Panics on any other answer.
    pub fn retention(&self, key: &str, version_id: Option<&str>) -> Option<(String, String)> {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let mut action = bucket.get_object(Some(&creds), key);
        action.query_mut().insert("retention", "");
        if let Some(v) = version_id {
            action.query_mut().insert("versionId", v.to_owned());
        }
        let url = action.sign(PRESIGN);
        let (status, text) = read_text(self.agent.get(url.as_str()).call(), "GetObjectRetention");
        // AWS says NoSuchObjectLockConfiguration, SeaweedFS ObjectLockConfigurationNotFoundError.
        if status == 404
            && (text.contains("NoSuchObjectLockConfiguration")
                || text.contains("ObjectLockConfigurationNotFoundError"))
        {
            return None;
        }
        assert_eq!(status, 200, "GetObjectRetention {key}: {text}");
        let mode = xml_tag(&text, "Mode").unwrap_or_default();
        let until = xml_tag(&text, "RetainUntilDate").unwrap_or_default();
        Some((mode, until))
    }

    /// The version ids of `key` in the rig's bucket, newest first (`ListObjectVersions`; delete
    /// markers are left out). Panics unless 200.
    pub fn versions(&self, key: &str) -> Vec<String> {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let mut action = bucket.get_object(Some(&creds), "");
        action.query_mut().insert("versions", "");
        action.query_mut().insert("prefix", key.to_owned());
        let url = action.sign(PRESIGN);
        let (status, text) = read_text(self.agent.get(url.as_str()).call(), "ListObjectVersions");
        assert_eq!(status, 200, "ListObjectVersions {key}: {text}");
        text.split("<Version>")
            .skip(1)
            .filter(|v| xml_tag(v, "Key").as_deref() == Some(key))
            .filter_map(|v| xml_tag(v, "VersionId"))
            .collect()
    }

    /// Deletes one version of `key` with the rig's full-rights key, asking to bypass
    /// governance retention when `bypass_governance`; returns the status and the S3 error code
    /// (empty on success), whatever they are.
    pub fn delete_version(
        &self,
        key: &str,
        version_id: &str,
        bypass_governance: bool,
    ) -> (u16, String) {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let mut action = bucket.delete_object(Some(&creds), key);
        action
            .query_mut()
            .insert("versionId", version_id.to_owned());
        if bypass_governance {
            action
                .headers_mut()
                .insert("x-amz-bypass-governance-retention", "true");
        }
        let url = action.sign(PRESIGN);
        let mut request = self.agent.delete(url.as_str());
        if bypass_governance {
            request = request.header("x-amz-bypass-governance-retention", "true");
        }
        let (status, text) = read_text(request.call(), "DeleteObject (version)");
        (status, xml_tag(&text, "Code").unwrap_or_default())
    }

    /// Stores `body` under `key` with Object Lock retention `mode` (`GOVERNANCE`,
    /// `COMPLIANCE`) until `until` (ISO 8601), as an earlier upload would have (to seed a
    /// test). Panics unless 200.
    pub fn put_locked_object(&self, key: &str, body: &[u8], mode: &str, until: &str) {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let md5 = content_md5(body);
        let mut action = bucket.put_object(Some(&creds), key);
        let headers = [
            ("content-md5", md5.as_str()),
            ("x-amz-object-lock-mode", mode),
            ("x-amz-object-lock-retain-until-date", until),
        ];
        for (k, v) in headers {
            action.headers_mut().insert(k, v.to_owned());
        }
        let url = action.sign(PRESIGN);
        let mut request = self.agent.put(url.as_str());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let (status, text) = read_text(request.send(body), "PutObject (locked)");
        assert_eq!(status, 200, "PutObject {key} with retention: {text}");
    }

    /// Deletes bucket `name` and everything in it (the server runs with
    /// `-s3.allowDeleteBucketNotEmpty`, SeaweedFS mini's default). Panics unless 204.
    pub fn delete_bucket(&self, name: &str) {
        let bucket = self.bucket_handle(name);
        let creds = self.credentials();
        let url = bucket.delete_bucket(&creds).sign(PRESIGN);
        let (status, text) = read_text(self.agent.delete(url.as_str()).call(), "DeleteBucket");
        assert_eq!(status, 204, "DeleteBucket {name}: {text}");
    }

    /// Every key in the rig's bucket with its size, sorted by key (follows continuation tokens).
    pub fn list_objects(&self) -> Vec<(String, u64)> {
        self.list_objects_in(self.bucket())
    }

    /// Every key in bucket `name` with its size, sorted by key.
    pub fn list_objects_in(&self, name: &str) -> Vec<(String, u64)> {
        self.list_objects_paged(name, 1000)
    }

    /// Like [`S3Rig::list_objects_in`], asking for `page_size` keys per request (to exercise
    /// continuation tokens with few objects).
    pub fn list_objects_paged(&self, name: &str, page_size: usize) -> Vec<(String, u64)> {
        let bucket = self.bucket_handle(name);
        let creds = self.credentials();
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&bucket, Some(&creds));
            action.with_max_keys(page_size);
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let url = action.sign(PRESIGN);
            let (status, text) = read_text(self.agent.get(url.as_str()).call(), "ListObjectsV2");
            assert_eq!(status, 200, "ListObjectsV2 {name}: {text}");
            let page = ListObjectsV2::parse_response(&text)
                .unwrap_or_else(|e| panic!("parsing ListObjectsV2 response ({e}): {text}"));
            for object in page.contents {
                let size = object
                    .size
                    .unwrap_or_else(|| panic!("ListObjectsV2: no size for {}", object.key));
                objects.push((object.key, size));
            }
            match page.next_continuation_token {
                Some(next) => token = Some(next),
                None => break,
            }
        }
        objects.sort();
        objects
    }

    /// The bytes of `key` in the rig's bucket. Panics unless 200.
    pub fn get_object(&self, key: &str) -> Vec<u8> {
        self.get_object_with_etag(key).0
    }

    /// The bytes of `key` and its ETag header, quotes removed. Panics unless 200.
    pub fn get_object_with_etag(&self, key: &str) -> (Vec<u8>, String) {
        let (body, headers) = self.get_object_and_headers(key);
        let etag = headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned();
        (body, etag)
    }

    /// The bytes of `key` and its user metadata (`x-amz-meta-NAME` headers, as `NAME` →
    /// value). Panics unless 200.
    pub fn get_object_with_meta(&self, key: &str) -> (Vec<u8>, BTreeMap<String, String>) {
        let (body, headers) = self.get_object_and_headers(key);
        let meta = headers
            .iter()
            .filter_map(|(name, value)| {
                let name = name.as_str().to_ascii_lowercase();
                let short = name.strip_prefix("x-amz-meta-")?.to_owned();
                Some((short, value.to_str().ok()?.to_owned()))
            })
            .collect();
        (body, meta)
    }

    /// One signed GET of `key`: its bytes and the response headers. Panics unless 200.
    fn get_object_and_headers(&self, key: &str) -> (Vec<u8>, ureq::http::HeaderMap) {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let url = bucket.get_object(Some(&creds), key).sign(PRESIGN);
        let mut response = self
            .agent
            .get(url.as_str())
            .call()
            .unwrap_or_else(|e| panic!("GetObject {key}: {e}"));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()
            .unwrap_or_else(|e| panic!("GetObject {key}: reading the body: {e}"));
        assert_eq!(
            status,
            200,
            "GetObject {key}: {}",
            String::from_utf8_lossy(&body)
        );
        (body, headers)
    }

    /// Stores `body` under `key` in the rig's bucket (to seed a test). Panics unless 200.
    pub fn put_object(&self, key: &str, body: &[u8]) {
        let bucket = self.bucket_handle(self.bucket());
        let creds = self.credentials();
        let url = bucket.put_object(Some(&creds), key).sign(PRESIGN);
        let (status, text) = read_text(self.agent.put(url.as_str()).send(body), "PutObject");
        assert_eq!(status, 200, "PutObject {key}: {text}");
    }

    /// Writes aws-cli style `credentials` and `config` files into `dir` with one `profile`
    /// holding the rig's key, secret and region; returns their paths.
    pub fn write_aws_files(&self, dir: &Path, profile: &str) -> (PathBuf, PathBuf) {
        let credentials = dir.join("credentials");
        let config = dir.join("config");
        fs::write(
            &credentials,
            format!(
                "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                self.access_key, self.secret_key
            ),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", credentials.display()));
        // In aws-cli's config file, profiles other than `default` are `[profile NAME]`.
        let section = if profile == "default" {
            "default".to_owned()
        } else {
            format!("profile {profile}")
        };
        fs::write(
            &config,
            format!("[{section}]\nregion = {}\n", self.opts.region),
        )
        .unwrap_or_else(|e| panic!("writing {}: {e}", config.display()));
        (credentials, config)
    }

    /// A rusty-s3 handle on bucket `name` at this server, path style.
    pub fn bucket_handle(&self, name: &str) -> Bucket {
        let endpoint = self
            .endpoint()
            .parse()
            .expect("the rig's endpoint is a URL");
        Bucket::new(
            endpoint,
            UrlStyle::Path,
            name.to_owned(),
            self.opts.region.clone(),
        )
        .unwrap_or_else(|e| panic!("bucket handle for {name}: {e:?}"))
    }

    /// The rig's credentials for rusty-s3.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.access_key.clone(), self.secret_key.clone())
    }

    /// A second key (id, secret) that may only write objects: list and read answer 403
    /// AccessDenied, like a B2 application key with `writeFiles` alone.
    pub fn write_only_key(&self) -> (&str, &str) {
        (&self.writer.0, &self.writer.1)
    }

    /// A third key (id, secret) that may write objects with Object Lock retention headers
    /// (SeaweedFS `PutObjectRetention`), but not list, read or bypass governance: like a B2
    /// key with `writeFiles` and `writeFileRetentions`. [`S3Rig::write_only_key`]'s PUTs with
    /// retention headers are refused with 403 AccessDenied.
    pub fn lock_writer_key(&self) -> (&str, &str) {
        (&self.lock_writer.0, &self.lock_writer.1)
    }

    /// The last `max` bytes of the server's output, for failure messages.
    pub fn log_tail(&self, max: usize) -> String {
        log_tail(&self.dir.path().join("weed.log"), max)
    }

    fn command(&self) -> Command {
        let p = &self.ports;
        let dir = self.dir.path();
        let mut cmd = Command::new(&self.weed);
        cmd.arg("mini")
            .arg(format!("-dir={}", dir.join("data").display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-s3.port={}", p.s3))
            .arg(format!("-s3.port.grpc={}", p.s3_grpc))
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            .arg(format!("-s3.config={}", dir.join("s3.json").display()))
            .arg("-s3.autoCreateBucket=false")
            .arg("-s3.allowDeleteBucketNotEmpty=true")
            .arg(format!("-master.port={}", p.master))
            .arg(format!("-master.port.grpc={}", p.master_grpc))
            .arg("-master.telemetry=false")
            .arg("-master.volumeSizeLimitMB=64")
            .arg(format!("-volume.port={}", p.volume))
            .arg(format!("-volume.port.grpc={}", p.volume_grpc))
            .arg(format!(
                "-volume.max={}",
                self.opts.capacity_mb.div_ceil(64).max(1)
            ))
            .arg(format!("-filer.port={}", p.filer))
            .arg(format!("-filer.port.grpc={}", p.filer_grpc))
            .arg(format!("-admin.port={}", p.admin))
            .arg(format!("-admin.port.grpc={}", p.admin_grpc))
            .arg("-admin.ui=false")
            .arg("-webdav=false");
        if let Some(domain) = &self.opts.domain_name {
            cmd.arg(format!("-s3.domainName={domain}"));
        }
        cmd.env("TMPDIR", dir).stdin(Stdio::null());
        cmd
    }

    /// Spawns the server and waits until it answers; on failure, stops it and returns why,
    /// with its log.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let log_path = self.dir.path().join("weed.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("duplicating the log file handle");
        let mut cmd = self.command();
        cmd.stdout(log).stderr(log2);
        let started = Instant::now();
        let server = ChildGuard::spawn("weed mini", cmd)
            .map_err(|e| format!("{e} ({})", self.weed.display()))?;
        self.server = Some(server);

        // Ready when a signed HeadBucket gets an S3 answer (200, or 404 before the bucket
        // exists): the S3 gateway is up, has our identities, and reaches its filer.
        let bucket = self.bucket_handle(&self.opts.bucket);
        let creds = self.credentials();
        let mut last = String::from("no answer yet");
        let mut exited = false;
        let ready = wait_until(started + START_DEADLINE, || {
            if self.server.as_ref().is_none_or(ChildGuard::has_exited) {
                exited = true;
                return true;
            }
            let url = bucket.head_bucket(Some(&creds)).sign(PRESIGN);
            match self.agent.head(url.as_str()).call() {
                Ok(r) if matches!(r.status().as_u16(), 200 | 404) => true,
                Ok(r) => {
                    last = format!("HTTP {}", r.status());
                    false
                }
                Err(e) => {
                    last = e.to_string();
                    false
                }
            }
        });
        if exited || ready.is_err() {
            let why = if exited {
                "exited".to_owned()
            } else {
                format!("did not answer within {START_DEADLINE:?} (last: {last})")
            };
            self.stop();
            return Err(format!(
                "SeaweedFS ({} {:?}) {why}; its log:\n{}",
                self.weed.display(),
                self.command().get_args().collect::<Vec<_>>(),
                self.log_tail(4000)
            ));
        }
        Ok(())
    }

    /// Removes the unix sockets SeaweedFS made for our ports (it hard-codes them in /tmp).
    fn remove_sockets(&self) {
        let Ok(entries) = fs::read_dir("/tmp") else {
            return;
        };
        let suffixes: Vec<String> = self
            .ports
            .all()
            .iter()
            .map(|p| format!("-{p}.sock"))
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("seaweedfs-") && suffixes.iter().any(|s| name.ends_with(s)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// The S3 listener's address.
    pub fn addr(&self) -> SocketAddr {
        ([127, 0, 0, 1], self.ports.s3).into()
    }
}

impl Drop for S3Rig {
    fn drop(&mut self) {
        // Kill before `dir` is removed, so the server never writes into a deleted directory.
        self.stop();
    }
}

/// Status and body text of a rig request; panics on a transport error.
fn read_text(
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    what: &str,
) -> (u16, String) {
    let mut response = response.unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| format!("(unreadable body: {e})"));
    (status, text)
}

/// The text of the first `<name>…</name>` in `xml`.
fn xml_tag(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim().to_owned())
}

fn random_alnum(n: usize) -> String {
    (0..n).map(|_| fastrand::alphanumeric()).collect()
}

fn log_tail(path: &Path, max: usize) -> String {
    let mut text = String::new();
    if let Ok(mut f) = fs::File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let cut = text.len().saturating_sub(max);
    let cut = (cut..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[cut..].to_owned()
}

/// The `Content-MD5` header value for `body`: base64 of its raw MD5 digest.
pub fn content_md5(body: &[u8]) -> String {
    use base64::Engine as _;
    use md5::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(body))
}

/// Lowercase hex MD5 of `body`: the ETag S3 gives a single-part PUT.
pub fn md5_hex(body: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
