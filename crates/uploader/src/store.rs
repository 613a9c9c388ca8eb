//! The object store: presigned SigV4 requests (rusty-s3) sent with ureq over the marked TCP
//! connector (and rustls for https).
//!
//! A segment goes up as one `PUT` with `Content-Length`, `Content-MD5` (signed) and
//! `Expect: 100-continue` (a store that refuses us answers before the body is sent, instead of
//! a `BrokenPipe` mid-body), its body streamed from the file in small paced chunks. No
//! flexible-checksum headers, no `aws-chunked` bodies (B2 rejects them). Before the PUT, a
//! `HEAD` of the key: an object with our MD5 means an earlier run stored it and died before
//! deleting the file; an object with other bytes means the key is taken, and the next
//! [`key_variant`] is tried.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{Connector, RustlsConnector};
use visdcam_core::config::AddressingStyle;
use visdcam_core::rate::Pacer;
use visdcam_core::upload::{
    classify_error, classify_put_success, key_variant, parse_retry_after, Failure, PutOutcome,
};

use crate::creds::{self, Locations};
use crate::net::MarkedTcpConnector;

/// Validity of each presigned URL: long enough for a slow, rate-capped body to start.
const PRESIGN: Duration = Duration::from_secs(3600);
/// How many `-n` variants of a key are tried before giving up on the segment for now.
const MAX_VARIANTS: u32 = 100;
/// Region when neither `B2_REGION` nor the profile sets one.
const DEFAULT_REGION: &str = "us-east-1";

/// Where and how to upload.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub endpoint: String,
    pub bucket: String,
    pub style: AddressingStyle,
    pub region: Option<String>,
    pub profile: String,
    pub dscp: Option<u8>,
}

/// A client for one bucket.
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
}

/// Checks an endpoint/style pair the way the uploader will use it (for start-up errors).
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

fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Reads at most 64 KiB of an error body (S3 error XML is small).
fn error_text(r: &mut ureq::http::Response<ureq::Body>) -> String {
    r.body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default()
}

impl Store {
    pub fn new(cfg: StoreConfig, locations: Locations) -> Store {
        let connector =
            ().chain(MarkedTcpConnector { dscp: cfg.dscp })
                .chain(RustlsConnector::default());
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            // No progress for a minute on one read or one write: the connection is dead. No
            // overall limit: a rate-capped body may take many minutes.
            .timeout_per_read(Some(Duration::from_secs(60)))
            .timeout_per_write(Some(Duration::from_secs(60)))
            .user_agent(concat!("visdcam-uploader/", env!("CARGO_PKG_VERSION")))
            .build();
        let agent = ureq::Agent::with_parts(config, connector, DefaultResolver::default());
        Store {
            cfg,
            locations,
            agent,
        }
    }

    pub fn locations(&self) -> &Locations {
        &self.locations
    }

    /// Loads the credentials afresh and builds the bucket handle.
    fn target(&self) -> Result<(Bucket, Credentials), Failure> {
        let loaded = creds::load(&self.locations, &self.cfg.profile)
            .map_err(|why| Failure::Refused { why })?;
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
        let bucket = bucket_handle(&self.cfg, &region).map_err(|why| Failure::Refused { why })?;
        let k = loaded.key;
        let creds = match k.session_token {
            Some(t) => Credentials::new_with_token(k.id, k.secret, t),
            None => Credentials::new(k.id, k.secret),
        };
        Ok((bucket, creds))
    }

    /// `HEAD` of `key`: its ETag (quotes removed) if it exists, `None` if not.
    fn head(
        &self,
        bucket: &Bucket,
        creds: &Credentials,
        key: &str,
    ) -> Result<Option<String>, Failure> {
        let url = bucket.head_object(Some(creds), key).sign(PRESIGN);
        let r = self
            .agent
            .head(url.as_str())
            .call()
            .map_err(|e| transport_failure("HEAD", &e))?;
        match r.status().as_u16() {
            200..=299 => Ok(Some(
                header(&r, "etag")
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string(),
            )),
            404 => Ok(None),
            s => Err(classify_error(
                s,
                header(&r, "retry-after").and_then(|v| parse_retry_after(&v, now_unix())),
                "",
            )),
        }
    }

    /// Uploads `prep` under `base_key` (or its first free variant). `tick` is called about
    /// every 200 ms while the body is sent, with the bytes sent so far; returning `false` from
    /// it aborts the upload.
    pub fn upload(
        &self,
        prep: Prepared,
        base_key: &str,
        pacer: Option<Pacer>,
        tick: &mut dyn FnMut(u64) -> bool,
    ) -> Result<Stored, Failure> {
        let (bucket, creds) = self.target()?;
        let mut chosen = None;
        for n in 1..=MAX_VARIANTS {
            let key = key_variant(base_key, n);
            match self.head(&bucket, &creds, &key)? {
                None => {
                    chosen = Some(key);
                    break;
                }
                Some(etag) if etag.eq_ignore_ascii_case(&prep.md5_hex) => {
                    return Ok(Stored::AlreadyThere { key });
                }
                Some(_) => log::info!("{key} holds other bytes; trying the next variant"),
            }
        }
        let Some(key) = chosen else {
            return Err(Failure::Refused {
                why: format!("{base_key} and its {MAX_VARIANTS} variants all hold other bytes"),
            });
        };

        let mut action = bucket.put_object(Some(&creds), &key);
        action
            .headers_mut()
            .insert("content-md5", prep.md5_b64.clone());
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
        let result = self
            .agent
            .put(url.as_str())
            .header("content-length", size.to_string())
            .header("content-md5", &prep.md5_b64)
            .header("content-type", "video/mp2t")
            .header("expect", "100-continue")
            .send(ureq::SendBody::from_reader(&mut body));
        let mut r = match result {
            Ok(r) => r,
            Err(e) => return Err(transport_failure("PUT", &e)),
        };
        let status = r.status().as_u16();
        if (200..300).contains(&status) {
            let etag = header(&r, "etag");
            let _ = error_text(&mut r);
            return match classify_put_success(etag.as_deref(), &prep.md5_hex) {
                PutOutcome::Stored => Ok(Stored::Uploaded { key }),
                PutOutcome::Failed(f) => Err(f),
            };
        }
        let retry_after = header(&r, "retry-after").and_then(|v| parse_retry_after(&v, now_unix()));
        let text = error_text(&mut r);
        Err(classify_error(status, retry_after, &text))
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
