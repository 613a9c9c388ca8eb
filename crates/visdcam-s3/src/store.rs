//! The object store: presigned SigV4 requests (rusty-s3) sent with ureq over the marked TCP
//! connector (and rustls for https).
//!
//! A segment goes up as one `PUT` with `Content-Length`, `Content-MD5` (signed) and
//! `Expect: 100-continue` (a store that refuses us answers before the body is sent, instead of
//! a `BrokenPipe` mid-body), its body streamed from the file in small paced chunks, with any
//! `x-amz-meta-*` headers signed too. No flexible-checksum headers, no `aws-chunked` bodies (B2
//! rejects them). Before the PUT, a `HEAD` of the key: an object with our MD5 (as its ETag, or
//! as its `x-amz-meta-md5` where the ETag is not the MD5) means an earlier run stored it and
//! died before deleting the file; an object with other bytes means the key is taken, and the
//! next [`key_variant`] is tried. A 2xx answer to the PUT means stored: the store checked the
//! signed `Content-MD5` before storing, whatever ETag it returns.
//!
//! A least-privilege key (B2's `writeFiles` alone) may not read, so that `HEAD` answers 403:
//! the segment is then PUT under its own key without the check ([`Stored::UploadedUnchecked`]),
//! and a caller may skip the `HEAD` altogether ([`DuplicateCheck::Skip`]). Without the check
//! an object already under the key is replaced (B2 keeps the older one as a hidden version);
//! variants exist only to avoid replacing *other* bytes, which such a key cannot see.
//!
//! With [`StoreConfig::object_lock`] every PUT also carries the signed Object Lock headers
//! (`x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`, dated from the moment the
//! PUT is signed); a bucket without Object Lock refuses them, which is a
//! [`Failure::Config`] naming the fix. Writing a key that holds a locked object adds a version
//! and leaves the locked one in place (Object Lock implies versioning), so neither a variant
//! nor a repeated PUT can lose locked footage. `GET ?object-lock` reads the bucket's setting.
//!
//! Reading: `ListObjectsV2` page by page, `HEAD` with the object's metadata, `GET` streamed to
//! a writer with its size and MD5 checked, and presigned `GET` URLs for players.
//!
//! Every answer that is not a success goes through `visdcam_core::upload::classify_error_for`
//! with the operation, so a refusal names the capability the key lacks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use rusty_s3::actions::ListObjectsV2;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, RustlsConnector};
use visdcam_core::config::AddressingStyle;
use visdcam_core::objectlock::{BucketLock, ObjectLock};
use visdcam_core::rate::Pacer;
use visdcam_core::upload::{
    classify_error_for, classify_put_success, holds_same_bytes, key_variant, parse_retry_after,
    s3_error, Failure, Op, PutOutcome,
};

use crate::creds::{self, CredError, Loaded, Locations};
use crate::net::MarkedTcpConnector;

/// Validity of each presigned URL the store sends itself: long enough for a slow,
/// rate-capped body to start.
const PRESIGN: Duration = Duration::from_secs(3600);
/// How many `-n` variants of a key are tried before giving up on the segment for now.
const MAX_VARIANTS: u32 = 100;
/// Region when neither `B2_REGION` nor the profile sets one.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Keys per `ListObjectsV2` page (the S3 maximum).
pub const LIST_PAGE: usize = 1000;
/// Largest `ListObjectsV2` page body read (1000 keys are about 300 KiB of XML).
const LIST_BODY_LIMIT: u64 = 32 << 20;
/// Prefix of user metadata headers.
const META_PREFIX: &str = "x-amz-meta-";

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub endpoint: String,
    pub bucket: String,
    pub style: AddressingStyle,
    pub region: Option<String>,
    pub profile: String,
    /// DSCP mark of every connection (`UPLOAD_DSCP`); `None` leaves the socket's default.
    pub dscp: Option<u8>,
    /// Every PUT carries Object Lock retention headers for this lock (`OBJECT_LOCK_DAYS`,
    /// `OBJECT_LOCK_MODE`), its date counted from the moment the PUT is signed.
    pub object_lock: Option<ObjectLock>,
}

/// How long any one network wait may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening the TCP connection (each address in turn); also the bound on the name lookup
    /// (ureq then resolves on a helper thread: `getaddrinfo` with a silent DNS server would
    /// block for minutes).
    pub connect: Duration,
    /// No byte received for this long: the connection is dead.
    pub per_read: Duration,
    /// No byte accepted by the socket for this long: the connection is dead.
    pub per_write: Duration,
    /// A bound on each whole request, body included; `None` for none (a rate-capped body may
    /// take many minutes).
    pub global: Option<Duration>,
}

impl Timeouts {
    /// The uploader's: 10 s to resolve and 10 s to connect, 15 s without progress on one read
    /// or write, no overall limit. Each is well under the uploader's `WatchdogSec=60`, and the
    /// uploader pings its watchdog while a call is within these bounds (it waits for the call
    /// on another thread), so a silent network costs a retry, not a watchdog kill.
    pub const TRANSFER: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        per_read: Duration::from_secs(15),
        per_write: Duration::from_secs(15),
        global: None,
    };

    /// The longest one request can go without a byte moving: name lookup, connect, sending
    /// the request, waiting for the answer.
    pub fn request_silence(&self) -> Duration {
        self.connect * 2 + self.per_write + self.per_read
    }
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts::TRANSFER
    }
}

/// A client for one bucket. Cloning is cheap and clones share the connection pool; a `Store`
/// may be used from several threads at once.
#[derive(Debug, Clone)]
pub struct Store {
    cfg: StoreConfig,
    locations: Locations,
    agent: ureq::Agent,
}

/// One segment file, opened and hashed.
pub struct Prepared {
    pub file: File,
    pub size: u64,
    pub md5_hex: String,
    pub md5_b64: String,
}

/// What happened to a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// Uploaded now under `key`.
    Uploaded { key: String },
    /// Already in the bucket with the same MD5 (an earlier run died before deleting the file).
    AlreadyThere { key: String },
    /// Uploaded now under `key` (the base key, never a variant) without looking for the same
    /// bytes first: the `HEAD` was refused (401/403: a key that may write but not read), or
    /// the caller asked for [`DuplicateCheck::Skip`]. An object already under `key` was
    /// replaced.
    UploadedUnchecked { key: String },
}

/// What a key may do in the bucket besides writing, found without writing anything
/// ([`Store::probe_access`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// A one-key `ListObjectsV2` was answered (B2 `listFiles`).
    pub list: bool,
    /// A `HEAD` of a key that does not exist answered 404, not 403 (B2 `readFiles`).
    pub read: bool,
}

/// The key [`Store::probe_access`] looks at: nothing is ever stored under it.
const ACCESS_PROBE_KEY: &str = "visdcam-doctor-probe/no-such-object";

/// Where [`Store::choose_key`] says to put a segment.
enum Choice {
    /// PUT under `key`; `checked` is false when the `HEAD` was refused.
    Put { key: String, checked: bool },
    /// `key` already holds the bytes.
    Same { key: String },
}

/// Whether [`Store::upload`] first looks, with a `HEAD`, for the same bytes already under
/// the key (and for other bytes, which make it try the next variant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateCheck {
    /// `HEAD` first; a refused `HEAD` (401/403) uploads unchecked.
    Head,
    /// No `HEAD`: PUT under the base key (for a key known not to read).
    Skip,
}

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Quotes removed.
    pub etag: String,
}

/// What a `HEAD` of an object says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Quotes removed.
    pub etag: String,
    pub size: u64,
    /// `x-amz-meta-*` headers: names lower-case without the prefix.
    pub meta: BTreeMap<String, String>,
}

/// What a `GET` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    pub size: u64,
    /// The bytes' MD5 was checked (against a plain-MD5 ETag or `x-amz-meta-md5`); `false`
    /// when the store gave nothing to check it against (only the size was checked).
    pub verified: bool,
}

/// A failed request with what the store answered, for callers that word the problem
/// themselves (`visdcam doctor`). `Failure::from` gives the plain classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// No usable key: no file, an unreadable one, or no such profile.
    Credentials(CredError),
    /// The endpoint, bucket and addressing style do not make a bucket URL.
    Config(String),
    /// No answer: connection refused, timeout, TLS, DNS.
    Transport(Failure),
    /// The store answered `status` (≥ 300), with its S3 error `code` and `message` when the
    /// answer had a body.
    Answer {
        status: u16,
        code: Option<String>,
        message: Option<String>,
        failure: Failure,
    },
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        match e {
            StoreError::Credentials(c) => Failure::Refused { why: c.to_string() },
            StoreError::Config(why) => Failure::Refused { why },
            StoreError::Transport(f) | StoreError::Answer { failure: f, .. } => f,
        }
    }
}

/// Checks an endpoint/style pair the way the store will use it (for start-up errors).
pub fn check_config(cfg: &StoreConfig) -> Result<(), String> {
    bucket_handle(cfg, DEFAULT_REGION).map(|_| ())
}

fn bucket_handle(cfg: &StoreConfig, region: &str) -> Result<Bucket, String> {
    let style = match cfg.style {
        AddressingStyle::VirtualHost => UrlStyle::VirtualHost,
        AddressingStyle::Path => UrlStyle::Path,
    };
    let endpoint = cfg
        .endpoint
        .parse()
        .map_err(|e| format!("B2_ENDPOINT `{}`: {e}", cfg.endpoint))?;
    Bucket::new(endpoint, style, cfg.bucket.clone(), region.to_string()).map_err(|e| {
        format!(
            "B2_ENDPOINT `{}` with B2_BUCKET `{}` and B2_ADDRESSING_STYLE={}: {e} \
             (virtual-host style needs a host name, not an IP address; use path style)",
            cfg.endpoint,
            cfg.bucket,
            match cfg.style {
                AddressingStyle::VirtualHost => "virtual",
                AddressingStyle::Path => "path",
            }
        )
    })
}

fn transport_failure(what: &str, e: &ureq::Error) -> Failure {
    let why = format!("{what}: {}", visdcam_daemon::error_chain(e));
    match e {
        ureq::Error::BadUri(_) | ureq::Error::RequireHttpsOnly(_) => Failure::Refused { why },
        _ => Failure::Transient {
            why,
            retry_after: None,
        },
    }
}

type Response = ureq::http::Response<ureq::Body>;

fn header(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn etag_of(r: &Response) -> String {
    header(r, "etag")
        .unwrap_or_default()
        .trim()
        .trim_matches('"')
        .to_string()
}

fn meta_of(r: &Response) -> BTreeMap<String, String> {
    r.headers()
        .iter()
        .filter_map(|(name, value)| {
            let name = name.as_str().to_ascii_lowercase();
            let rest = name.strip_prefix(META_PREFIX)?;
            Some((rest.to_string(), value.to_str().ok()?.to_string()))
        })
        .collect()
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Reads at most 64 KiB of an error body (S3 error XML is small).
fn error_text(r: &mut Response) -> String {
    r.body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default()
}

/// The error for a non-success answer to `op` (reads the error body).
fn answer_error(op: Op, r: &mut Response) -> StoreError {
    let status = r.status().as_u16();
    let retry_after = header(r, "retry-after").and_then(|v| parse_retry_after(&v, now_unix()));
    let text = error_text(r);
    let (code, message) = s3_error(&text);
    StoreError::Answer {
        status,
        code,
        message,
        failure: classify_error_for(op, status, retry_after, &text),
    }
}

/// Whether `etag` is a plain MD5 (32 hex digits): a single-part upload's ETag.
fn is_plain_md5(etag: &str) -> bool {
    etag.len() == 32 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A signed request target: bucket handle and credentials, loaded afresh.
struct Target {
    bucket: Bucket,
    creds: Credentials,
}

impl Store {
    /// A store with the uploader's timeouts ([`Timeouts::TRANSFER`]).
    pub fn new(cfg: StoreConfig, locations: Locations) -> Store {
        Store::with_timeouts(cfg, locations, Timeouts::TRANSFER)
    }

    /// A store whose every network wait is bounded by `t`.
    pub fn with_timeouts(cfg: StoreConfig, locations: Locations, t: Timeouts) -> Store {
        let connector =
            ().chain(MarkedTcpConnector { dscp: cfg.dscp })
                .chain(RustlsConnector::default());
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(t.connect))
            .timeout_connect(Some(t.connect))
            .timeout_per_read(Some(t.per_read))
            .timeout_per_write(Some(t.per_write))
            .timeout_global(t.global)
            .user_agent(concat!("visdcam/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        Store {
            cfg,
            locations,
            agent,
        }
    }

    /// See [`check_config`].
    pub fn check_config(cfg: &StoreConfig) -> Result<(), String> {
        check_config(cfg)
    }

    pub fn config(&self) -> &StoreConfig {
        &self.cfg
    }

    pub fn locations(&self) -> &Locations {
        &self.locations
    }

    /// Loads the credentials as the next request will (for a caller that reports where the
    /// key came from).
    pub fn credentials(&self) -> Result<Loaded, CredError> {
        creds::load(&self.locations, &self.cfg.profile)
    }

    /// Loads the credentials afresh and builds the bucket handle.
    fn target(&self) -> Result<Target, StoreError> {
        let loaded = self.credentials().map_err(StoreError::Credentials)?;
        log::debug!(
            "profile [{}] key {} from {}",
            self.cfg.profile,
            loaded.key.id,
            loaded.source.display()
        );
        let region = self
            .cfg
            .region
            .clone()
            .or(loaded.region)
            .unwrap_or_else(|| DEFAULT_REGION.to_string());
        let bucket = bucket_handle(&self.cfg, &region).map_err(StoreError::Config)?;
        let k = loaded.key;
        let creds = match k.session_token {
            Some(t) => Credentials::new_with_token(k.id, k.secret, t),
            None => Credentials::new(k.id, k.secret),
        };
        Ok(Target { bucket, creds })
    }

    /// `HEAD` of `key` with `t`: `None` if there is no such object.
    fn head_with(&self, t: &Target, key: &str) -> Result<Option<Head>, StoreError> {
        let url = t.bucket.head_object(Some(&t.creds), key).sign(PRESIGN);
        let mut r = self
            .agent
            .head(url.as_str())
            .call()
            .map_err(|e| StoreError::Transport(transport_failure("HEAD", &e)))?;
        match r.status().as_u16() {
            200..=299 => Ok(Some(Head {
                etag: etag_of(&r),
                size: header(&r, "content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0),
                meta: meta_of(&r),
            })),
            404 => Ok(None),
            _ => Err(answer_error(Op::Head, &mut r)),
        }
    }

    /// `HEAD` of `key`: its ETag, size and metadata, or `None` if there is no such object.
    pub fn head(&self, key: &str) -> Result<Option<Head>, Failure> {
        let t = self.target()?;
        Ok(self.head_with(&t, key)?)
    }

    /// Uploads `prep` under `base_key` (or its first free variant), with each `(name, value)`
    /// of `meta` as a signed `x-amz-meta-<name>` header. `tick` is called about every 200 ms
    /// while the body is sent, with the bytes sent so far; returning `false` from it aborts the
    /// upload. Same as [`Store::upload_checked`] with [`DuplicateCheck::Head`].
    pub fn upload(
        &self,
        prep: Prepared,
        base_key: &str,
        meta: &[(&str, String)],
        pacer: Option<Pacer>,
        tick: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Stored, Failure> {
        self.upload_checked(prep, base_key, meta, DuplicateCheck::Head, pacer, tick)
    }

    /// [`Store::upload`], with or without the `HEAD` that looks for the same bytes first.
    pub fn upload_checked(
        &self,
        prep: Prepared,
        base_key: &str,
        meta: &[(&str, String)],
        check: DuplicateCheck,
        pacer: Option<Pacer>,
        tick: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Stored, Failure> {
        let t = self.target()?;
        let (key, checked) = match check {
            DuplicateCheck::Skip => (base_key.to_string(), false),
            DuplicateCheck::Head => match self.choose_key(&t, base_key, &prep.md5_hex)? {
                Choice::Put { key, checked } => (key, checked),
                Choice::Same { key } => return Ok(Stored::AlreadyThere { key }),
            },
        };

        let meta: Vec<(String, &str)> = meta
            .iter()
            .map(|(name, value)| {
                (
                    format!("{META_PREFIX}{}", name.to_ascii_lowercase()),
                    value.as_str(),
                )
            })
            .collect();
        let retention = self
            .cfg
            .object_lock
            .map(|lock| lock.retention_at(chrono::Utc::now()).headers());
        let mut action = t.bucket.put_object(Some(&t.creds), &key);
        action
            .headers_mut()
            .insert("content-md5", prep.md5_b64.clone());
        for (name, value) in &meta {
            action.headers_mut().insert(name.clone(), value.to_string());
        }
        for (name, value) in retention.iter().flatten() {
            action.headers_mut().insert(*name, value.clone());
        }
        let url = action.sign(PRESIGN);
        let size = prep.size;
        let mut body = PacedFile {
            file: prep.file,
            remaining: size,
            sent: 0,
            started: None,
            last_tick: Instant::now(),
            pacer,
            tick,
        };
        let mut request = self
            .agent
            .put(url.as_str())
            .header("content-length", size.to_string())
            .header("content-md5", &prep.md5_b64)
            .header("content-type", "video/mp2t")
            .header("expect", "100-continue");
        for (name, value) in &meta {
            request = request.header(name.as_str(), *value);
        }
        for (name, value) in retention.iter().flatten() {
            request = request.header(*name, value.as_str());
        }
        let result = request.send(ureq::SendBody::from_reader(&mut body));
        let mut r = match result {
            Ok(r) => r,
            Err(e) => return Err(transport_failure("PUT", &e)),
        };
        let status = r.status().as_u16();
        if (200..300).contains(&status) {
            let etag = header(&r, "etag");
            let _ = error_text(&mut r);
            return match classify_put_success(etag.as_deref(), &prep.md5_hex, true) {
                PutOutcome::Stored { etag_is_md5 } => {
                    if !etag_is_md5 {
                        log::debug!(
                            "{key}: the ETag {} is not the MD5; the accepted Content-MD5 proves the bytes",
                            etag.as_deref().unwrap_or("(none)")
                        );
                    }
                    Ok(if checked {
                        Stored::Uploaded { key }
                    } else {
                        Stored::UploadedUnchecked { key }
                    })
                }
                PutOutcome::Failed(f) => Err(f),
            };
        }
        let op = if retention.is_some() {
            Op::PutLocked
        } else {
            Op::Put
        };
        Err(answer_error(op, &mut r).into())
    }

    /// The key to PUT under, from `HEAD`s of `base_key` and its variants: the first with no
    /// object, or the one that already holds these bytes.
    fn choose_key(&self, t: &Target, base_key: &str, md5_hex: &str) -> Result<Choice, Failure> {
        for n in 1..=MAX_VARIANTS {
            let key = key_variant(base_key, n);
            let head = match self.head_with(t, &key) {
                // A key that may write but not read (B2's writeFiles alone). A wrong key or
                // secret gets here too (a HEAD answer has no body to tell them apart): its
                // PUT is then refused with the store's error code, which says what is wrong.
                Err(StoreError::Answer {
                    status: 401 | 403, ..
                }) if n == 1 => {
                    return Ok(Choice::Put {
                        key,
                        checked: false,
                    })
                }
                r => r?,
            };
            match head {
                None => return Ok(Choice::Put { key, checked: true }),
                Some(h)
                    if holds_same_bytes(
                        &h.etag,
                        h.meta.get("md5").map(String::as_str),
                        md5_hex,
                    ) =>
                {
                    return Ok(Choice::Same { key });
                }
                Some(_) => log::info!("{key} holds other bytes; trying the next variant"),
            }
        }
        Err(Failure::Refused {
            why: format!("{base_key} and its {MAX_VARIANTS} variants all hold other bytes"),
        })
    }

    /// `ListObjectsV2` of every key under `prefix`, all pages (continuation tokens),
    /// [`LIST_PAGE`] keys a page; calls `on_page` after each page with the count so far. Keys
    /// come in the store's order.
    pub fn list(
        &self,
        prefix: &str,
        on_page: &mut dyn FnMut(usize),
    ) -> Result<Vec<Listed>, Failure> {
        self.list_with_page_size(prefix, LIST_PAGE, on_page)
    }

    /// [`Store::list`] with `page_size` keys a page (1..=1000).
    pub fn list_with_page_size(
        &self,
        prefix: &str,
        page_size: usize,
        on_page: &mut dyn FnMut(usize),
    ) -> Result<Vec<Listed>, Failure> {
        let t = self.target()?;
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut action = ListObjectsV2::new(&t.bucket, Some(&t.creds));
            action.with_max_keys(page_size.clamp(1, LIST_PAGE));
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(token) = &token {
                action.with_continuation_token(token.clone());
            }
            let url = action.sign(PRESIGN);
            let mut r = self
                .agent
                .get(url.as_str())
                .call()
                .map_err(|e| transport_failure("LIST", &e))?;
            if !r.status().is_success() {
                return Err(answer_error(Op::List, &mut r).into());
            }
            let text = r
                .body_mut()
                .with_config()
                .limit(LIST_BODY_LIMIT)
                .read_to_string()
                .map_err(|e| transport_failure("LIST (reading the answer)", &e))?;
            let page = ListObjectsV2::parse_response(&text).map_err(|e| Failure::Transient {
                why: format!("LIST {prefix}: the store's answer is not a listing: {e}"),
                retry_after: None,
            })?;
            for o in page.contents {
                out.push(Listed {
                    size: o.size.unwrap_or(0),
                    etag: o
                        .etag
                        .unwrap_or_default()
                        .trim()
                        .trim_matches('"')
                        .to_string(),
                    key: o.key,
                });
            }
            on_page(out.len());
            match page.next_continuation_token {
                // A store that hands back the token it was given would loop forever.
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                Some(_) => {
                    return Err(Failure::Transient {
                        why: format!("LIST {prefix}: the store repeated its continuation token"),
                        retry_after: None,
                    })
                }
                None => return Ok(out),
            }
        }
    }

    /// `GET` of `key` into `dest`, calling `progress(bytes so far)` as it goes. The body is
    /// verified: its size must equal `Content-Length`, and its MD5 the ETag when that is a
    /// plain MD5 (a single-part upload), else the object's `x-amz-meta-md5` when present, else
    /// it is unverified (`Got::verified` is false). A mismatch is `Failure::Transient` (the
    /// caller retries, rewriting `dest`).
    pub fn get(
        &self,
        key: &str,
        dest: &mut dyn Write,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Got, Failure> {
        use md5::Digest as _;
        let t = self.target()?;
        let url = t.bucket.get_object(Some(&t.creds), key).sign(PRESIGN);
        let mut r = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| transport_failure("GET", &e))?;
        if !r.status().is_success() {
            return Err(answer_error(Op::Get, &mut r).into());
        }
        let length: Option<u64> = header(&r, "content-length").and_then(|v| v.trim().parse().ok());
        let etag = etag_of(&r);
        let expected_md5 = if is_plain_md5(&etag) {
            Some((etag.to_ascii_lowercase(), "ETag"))
        } else {
            meta_of(&r)
                .get("md5")
                .filter(|m| is_plain_md5(m))
                .map(|m| (m.to_ascii_lowercase(), "x-amz-meta-md5"))
        };
        let mut hasher = md5::Md5::new();
        let mut reader = r.body_mut().as_reader();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        let mut last = Instant::now();
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Failure::Transient {
                        why: format!("GET {key}: the body broke after {size} bytes: {e}"),
                        retry_after: None,
                    })
                }
            };
            hasher.update(&buf[..n]);
            dest.write_all(&buf[..n]).map_err(|e| Failure::Refused {
                why: format!("GET {key}: writing the bytes: {e}"),
            })?;
            size += n as u64;
            if last.elapsed() >= TICK {
                last = Instant::now();
                progress(size);
            }
        }
        progress(size);
        if let Some(len) = length {
            if len != size {
                return Err(Failure::Transient {
                    why: format!("GET {key}: got {size} bytes of {len}"),
                    retry_after: None,
                });
            }
        }
        let md5 = hex(&hasher.finalize());
        match expected_md5 {
            Some((want, from)) if want != md5 => Err(Failure::Transient {
                why: format!("GET {key}: the bytes' MD5 {md5} is not the {from} {want}"),
                retry_after: None,
            }),
            Some(_) => Ok(Got {
                size,
                verified: true,
            }),
            None => Ok(Got {
                size,
                verified: false,
            }),
        }
    }

    /// A presigned `GET` URL of `key`, valid for `expires` (for players and other tools).
    pub fn presign_get(&self, key: &str, expires: Duration) -> Result<String, Failure> {
        let t = self.target()?;
        Ok(t.bucket
            .get_object(Some(&t.creds), key)
            .sign(expires)
            .to_string())
    }

    /// `HEAD` of the bucket: the key is accepted and the bucket exists.
    pub fn head_bucket(&self) -> Result<(), Failure> {
        Ok(self.probe_bucket()?)
    }

    /// [`Store::head_bucket`] with the store's answer kept. A `HEAD` answer has no body, so on
    /// a refusal a one-key listing fetches the S3 error code (`NoSuchBucket`,
    /// `SignatureDoesNotMatch`, `RequestTimeTooSkewed`...); the status stays the HEAD's.
    pub fn probe_bucket(&self) -> Result<(), StoreError> {
        let t = self.target()?;
        let url = t.bucket.head_bucket(Some(&t.creds)).sign(PRESIGN);
        let mut r = self
            .agent
            .head(url.as_str())
            .call()
            .map_err(|e| StoreError::Transport(transport_failure("HEAD bucket", &e)))?;
        if r.status().is_success() {
            return Ok(());
        }
        let head_error = answer_error(Op::HeadBucket, &mut r);
        let StoreError::Answer { status, .. } = head_error else {
            return Err(head_error);
        };
        let mut list = t.bucket.list_objects_v2(Some(&t.creds));
        list.with_max_keys(1);
        let url = list.sign(PRESIGN);
        let text = match self.agent.get(url.as_str()).call() {
            Ok(mut lr) if !lr.status().is_success() => error_text(&mut lr),
            _ => return Err(head_error),
        };
        let (code, message) = s3_error(&text);
        if code.is_none() {
            return Err(head_error);
        }
        let retry_after = header(&r, "retry-after").and_then(|v| parse_retry_after(&v, now_unix()));
        Err(StoreError::Answer {
            status,
            code,
            message,
            failure: classify_error_for(Op::HeadBucket, status, retry_after, &text),
        })
    }

    /// The bucket's Object Lock configuration (`GET /<bucket>/?object-lock`). A bucket that
    /// never had Object Lock answers 404 `ObjectLockConfigurationNotFoundError`: not enabled.
    /// A key that may not read it (B2 without `readBucketRetentions`) is refused with 403.
    pub fn object_lock_configuration(&self) -> Result<BucketLock, StoreError> {
        let t = self.target()?;
        let mut action = t.bucket.get_object(Some(&t.creds), "");
        action.query_mut().insert("object-lock", "");
        let url = action.sign(PRESIGN);
        let mut r = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| StoreError::Transport(transport_failure("GET ?object-lock", &e)))?;
        if r.status().is_success() {
            return Ok(BucketLock::parse(&error_text(&mut r)));
        }
        match answer_error(Op::GetBucketLock, &mut r) {
            StoreError::Answer {
                status: 404,
                code: Some(c),
                ..
            } if c == "ObjectLockConfigurationNotFoundError" => Ok(BucketLock {
                enabled: false,
                default: None,
            }),
            e => Err(e),
        }
    }

    /// Which capabilities the key has besides writing (which cannot be probed without writing):
    /// a one-key `ListObjectsV2`, and a `HEAD` of a key nobody stores (404: may read; 403: may
    /// not). A refusal that is not `AccessDenied` (a wrong key or secret, clock skew, no such
    /// bucket) or any other failure is an error.
    pub fn probe_access(&self) -> Result<Access, StoreError> {
        let t = self.target()?;
        let mut list = t.bucket.list_objects_v2(Some(&t.creds));
        list.with_max_keys(1);
        let url = list.sign(PRESIGN);
        let mut r = self
            .agent
            .get(url.as_str())
            .call()
            .map_err(|e| StoreError::Transport(transport_failure("LIST", &e)))?;
        let can_list = if r.status().is_success() {
            let _ = error_text(&mut r);
            true
        } else {
            match answer_error(Op::List, &mut r) {
                StoreError::Answer {
                    status: 403,
                    code: Some(c),
                    ..
                } if c == "AccessDenied" => false,
                e => return Err(e),
            }
        };
        let read = match self.head_with(&t, ACCESS_PROBE_KEY) {
            Ok(_) => true,
            Err(StoreError::Answer { status: 403, .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(Access {
            list: can_list,
            read,
        })
    }
}

/// Opens a segment without following symlinks, checks it is a regular file, and computes its
/// MD5 in a first pass with a fixed buffer.
pub fn prepare(path: &Path) -> io::Result<Prepared> {
    use md5::Digest as _;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let mut hasher = md5::Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let digest = hasher.finalize();
    use std::io::Seek as _;
    file.seek(io::SeekFrom::Start(0))?;
    use base64::Engine as _;
    Ok(Prepared {
        file,
        size,
        md5_hex: digest.iter().map(|b| format!("{b:02x}")).collect(),
        md5_b64: base64::engine::general_purpose::STANDARD.encode(digest),
    })
}

/// The request body: the file, read in chunks and paced to the rate cap.
struct PacedFile<'a> {
    file: File,
    remaining: u64,
    sent: u64,
    started: Option<Instant>,
    last_tick: Instant,
    pacer: Option<Pacer>,
    tick: &'a mut dyn FnMut(u64) -> bool,
}

/// How often the body calls back while it is being sent.
const TICK: Duration = Duration::from_millis(200);

impl PacedFile<'_> {
    fn tick(&mut self) -> io::Result<()> {
        self.last_tick = Instant::now();
        if (self.tick)(self.sent) {
            Ok(())
        } else {
            // Not `Interrupted`: writers retry that.
            Err(io::Error::other("upload aborted (shutting down)"))
        }
    }
}

impl Read for PacedFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        let mut max = buf.len().min(64 * 1024);
        if let Some(p) = self.pacer {
            loop {
                let wait = p.wait(self.sent, started.elapsed());
                if wait.is_zero() {
                    break;
                }
                std::thread::sleep(wait.min(TICK));
                self.tick()?;
            }
            max = max.min(p.chunk());
        }
        if self.last_tick.elapsed() >= TICK {
            self.tick()?;
        }
        let max = max.min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the segment file shrank during the upload",
            ));
        }
        self.sent += n as u64;
        self.remaining -= n as u64;
        Ok(n)
    }
}
