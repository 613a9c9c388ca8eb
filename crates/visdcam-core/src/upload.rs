//! The uploader's decisions, as pure functions: reading aws-cli credential files, what an S3
//! answer means (stored, retry, retry slowly), `Retry-After`, key variants when a key is taken,
//! which pending segments to drop over the RAM budget, and the counters file and STATUS text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use chrono::DateTime;

/// An aws-cli style INI file (`credentials` or `config`): sections of `key = value`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsFile {
    pub sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl AwsFile {
    /// Parses the INI dialect aws-cli reads: `[section]`, `key = value`, `#`/`;` comments.
    /// Continuation lines (indented, used for nested `s3 =` settings) are skipped.
    /// Errors name the line, never its value (it may hold a secret).
    pub fn parse(text: &str) -> Result<AwsFile, String> {
        let mut file = AwsFile::default();
        let mut current: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if raw.starts_with([' ', '\t']) && current.is_some() {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {}: a section header needs a closing `]`", i + 1))?
                    .trim();
                current = Some(name.to_string());
                file.sections.entry(name.to_string()).or_default();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(format!("line {}: expected `key = value`", i + 1));
            };
            let Some(section) = &current else {
                return Err(format!("line {}: a setting before any [section]", i + 1));
            };
            file.sections
                .get_mut(section)
                .expect("section inserted when its header was read")
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        Ok(file)
    }

    /// A profile's settings in a `credentials` file (`[NAME]`).
    pub fn credentials_section(&self, profile: &str) -> Option<&BTreeMap<String, String>> {
        self.sections.get(profile)
    }

    /// A profile's settings in a `config` file (`[profile NAME]`, or `[default]`).
    pub fn config_section(&self, profile: &str) -> Option<&BTreeMap<String, String>> {
        self.sections
            .get(&format!("profile {profile}"))
            .or_else(|| (profile == "default").then(|| self.sections.get("default"))?)
    }
}

/// An access key and its secret. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessKey({}, secret hidden)", self.id)
    }
}

/// The key of `profile` in a parsed credentials file.
pub fn access_key(file: &AwsFile, profile: &str) -> Result<AccessKey, String> {
    let Some(section) = file.credentials_section(profile) else {
        let known: Vec<&str> = file.sections.keys().map(String::as_str).collect();
        return Err(format!(
            "no [{profile}] profile (profiles: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    let get = |k: &str| {
        section
            .get(k)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| format!("profile [{profile}] has no {k}"))
    };
    Ok(AccessKey {
        id: get("aws_access_key_id")?,
        secret: get("aws_secret_access_key")?,
        session_token: section.get("aws_session_token").cloned(),
    })
}

/// The region of `profile` in a parsed config file, if set.
pub fn profile_region(file: &AwsFile, profile: &str) -> Option<String> {
    file.config_section(profile)?
        .get("region")
        .filter(|r| !r.is_empty())
        .cloned()
}

/// How hard to retry after a failed upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Network trouble, 5xx, throttling: retry with backoff (or after `retry_after`).
    Transient {
        why: String,
        retry_after: Option<Duration>,
    },
    /// The store refuses us (bad key, no bucket, clock skew, bad request): nothing will work
    /// until a person acts. Retry slowly and say so loudly.
    Refused { why: String },
    /// The store refuses what the configuration asks of it (`OBJECT_LOCK_DAYS` on a bucket
    /// without Object Lock); `why` names the fix. Nothing changes until the bucket or the
    /// configuration does: check again rarely, and say it once.
    Config { why: String },
}

impl Failure {
    pub fn why(&self) -> &str {
        match self {
            Failure::Transient { why, .. } | Failure::Refused { why } | Failure::Config { why } => {
                why
            }
        }
    }
}

/// What a PUT's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored: the store accepted the signed `Content-MD5` (it checks the bytes against it
    /// before storing), or, without one, the ETag is the MD5. `etag_is_md5` says whether the
    /// ETag also was our MD5 (it is not on AWS with SSE-KMS/SSE-C and on some S3-compatible
    /// servers).
    Stored {
        etag_is_md5: bool,
    },
    Failed(Failure),
}

/// `<Code>` and `<Message>` from an S3 error body, if present.
pub fn s3_error(body: &str) -> (Option<String>, Option<String>) {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].trim().to_string())
    };
    (tag("Code"), tag("Message"))
}

/// The S3 operation an answer belongs to: it decides which key capability a refusal names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `PutObject` (B2 `writeFiles`).
    Put,
    /// `PutObject` with Object Lock retention headers (B2 `writeFiles` and
    /// `writeFileRetentions`).
    PutLocked,
    /// `ListObjectsV2` (B2 `listFiles`).
    List,
    /// `GetObject` (B2 `readFiles`).
    Get,
    /// `HeadObject` (B2 `readFiles`).
    Head,
    /// `HeadBucket` (any key allowed on the bucket).
    HeadBucket,
    /// `GetObjectLockConfiguration` (B2 `readBucketRetentions`).
    GetBucketLock,
}

impl Op {
    /// The capability (B2 name, then the S3 permission) a key needs for this operation.
    pub fn capability(self) -> &'static str {
        match self {
            Op::Put => "B2's writeFiles capability (s3:PutObject)",
            Op::PutLocked => {
                "B2's writeFiles and writeFileRetentions capabilities (s3:PutObject and \
                 s3:PutObjectRetention)"
            }
            Op::List => "B2's listFiles capability (s3:ListBucket)",
            Op::Get | Op::Head => "B2's readFiles capability (s3:GetObject)",
            Op::HeadBucket => "access to this bucket (a B2 key restricted to another bucket?)",
            Op::GetBucketLock => {
                "B2's readBucketRetentions capability (s3:GetBucketObjectLockConfiguration)"
            }
        }
    }
}

/// Classifies any S3 answer to a `PUT` that is not a success (`status` ≥ 300); see
/// [`classify_error_for`].
pub fn classify_error(status: u16, retry_after: Option<Duration>, body: &str) -> Failure {
    classify_error_for(Op::Put, status, retry_after, body)
}

/// Classifies any S3 answer to `op` that is not a success (`status` ≥ 300): 408, 429 and 5xx
/// are transient (with the store's `Retry-After`), everything else a refusal. `why` holds the
/// status, the S3 `<Code>` and `<Message>` of `body` when present, and a hint: a 403 that is
/// not a signature, key or clock problem names the capability the key lacks for `op`.
pub fn classify_error_for(
    op: Op,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> Failure {
    let (code, message) = s3_error(body);
    let mut why = format!("HTTP {status}");
    if let Some(c) = &code {
        why.push_str(&format!(" {c}"));
    }
    if let Some(m) = &message {
        why.push_str(&format!(": {m}"));
    }
    if op == Op::PutLocked && crate::objectlock::bucket_lacks_lock(status, code.as_deref()) {
        why.push_str(&format!(
            " (the bucket refuses the retention headers OBJECT_LOCK_DAYS asks for: it has no \
             Object Lock; {})",
            crate::objectlock::FIX_NO_LOCK
        ));
        return Failure::Config { why };
    }
    let cap = op.capability();
    let hint = match (status, code.as_deref()) {
        (_, Some("RequestTimeTooSkewed")) => {
            " (the system clock is off by more than 15 minutes)".to_string()
        }
        (_, Some("SignatureDoesNotMatch")) => {
            " (wrong secret key in the credentials file?)".to_string()
        }
        (_, Some("InvalidAccessKeyId")) => {
            " (unknown access key in the credentials file?)".to_string()
        }
        (_, Some("NoSuchBucket")) => " (does the bucket exist? check B2_BUCKET)".to_string(),
        (_, Some("NoSuchKey")) => " (no object with that key)".to_string(),
        (403, Some("AccessDenied" | "AllAccessDisabled" | "UnauthorizedAccess")) => {
            format!(" (the key lacks {cap})")
        }
        (403, _) => format!(" (wrong key or secret, a key without {cap}, or clock skew)"),
        (404, _) if matches!(op, Op::Get | Op::Head) => {
            " (no such object, or no such bucket: check B2_BUCKET and B2_ENDPOINT)".to_string()
        }
        (404, _) => " (no such bucket? check B2_BUCKET and B2_ENDPOINT)".to_string(),
        _ => String::new(),
    };
    why.push_str(&hint);
    match status {
        408 | 429 | 500..=599 => Failure::Transient { why, retry_after },
        _ => Failure::Refused { why },
    }
}

/// A 2xx PUT answer. With a `Content-MD5` header sent (and signed), a 2xx already proves the
/// bytes: S3 refuses a body whose MD5 differs (400 `BadDigest`) before storing anything, so the
/// object is stored whatever its ETag looks like. Without one, only an ETag equal to our MD5
/// (hex, any case, quotes optional) proves it.
pub fn classify_put_success(
    etag: Option<&str>,
    md5_hex: &str,
    content_md5_sent: bool,
) -> PutOutcome {
    let etag = etag.map(|e| e.trim().trim_matches('"'));
    let etag_is_md5 = etag.is_some_and(|e| e.eq_ignore_ascii_case(md5_hex));
    if etag_is_md5 || content_md5_sent {
        return PutOutcome::Stored { etag_is_md5 };
    }
    PutOutcome::Failed(Failure::Transient {
        why: match etag {
            Some(e) => format!("the store's ETag {e} is not the file's MD5 {md5_hex}"),
            None => "the store answered without an ETag, so the upload is unverified".into(),
        },
        retry_after: None,
    })
}

/// Whether an object already in the bucket holds the bytes whose MD5 is `md5_hex`: its ETag
/// is that MD5 (a single-part upload to a store whose ETag is the MD5), or its `md5` metadata
/// (`x-amz-meta-md5`, sent with every segment) is. An ETag that is not our MD5 proves nothing
/// by itself: with SSE-KMS/SSE-C it is 32 hex digits that are not the MD5.
pub fn holds_same_bytes(etag: &str, meta_md5: Option<&str>, md5_hex: &str) -> bool {
    let same = |v: &str| v.trim().trim_matches('"').eq_ignore_ascii_case(md5_hex);
    same(etag) || meta_md5.is_some_and(same)
}

/// Longest `Retry-After` honoured; a longer one is cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait before retrying after a transient failure: the store's `Retry-After` when it asks
/// for longer than our backoff, else the backoff. `Retry-After: 0` or a date in the past never
/// makes a retry immediate (that would be a tight loop against a store that keeps refusing).
pub fn retry_delay(retry_after: Option<Duration>, backoff: Duration) -> Duration {
    retry_after.map_or(backoff, |r| r.max(backoff))
}

/// Parses `Retry-After`: delta-seconds or an HTTP date, relative to `now_unix` seconds. A date
/// in the past is zero; callers wait at least their backoff anyway ([`retry_delay`]).
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let v = value.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?.timestamp();
        Duration::from_secs(u64::try_from(at - now_unix).unwrap_or(0))
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// The `n`th variant of a key that is already taken by different bytes: `-n` before the
/// extension (`.../cam_1_2025_10_12_17_42_22-2.ts`). `n` = 1 is the key itself.
pub fn key_variant(key: &str, n: u32) -> String {
    if n <= 1 {
        return key.to_string();
    }
    let slash = key.rfind('/').map_or(0, |i| i + 1);
    match key[slash..].rfind('.') {
        Some(dot) => format!("{}-{n}{}", &key[..slash + dot], &key[slash + dot..]),
        None => format!("{key}-{n}"),
    }
}

/// Indexes (into `pending`, oldest first) of the segments to drop so that the pending total is
/// at most `budget` bytes and the filesystem keeps `min_free` bytes free. `pending` holds
/// sizes, oldest first; `protect` is the index of a segment being uploaded (never dropped).
pub fn plan_drops(
    pending: &[u64],
    protect: Option<usize>,
    budget: u64,
    free: u64,
    min_free: u64,
) -> Vec<usize> {
    let mut total: u64 = pending.iter().sum();
    let mut free = free;
    let mut drops = Vec::new();
    for (i, &size) in pending.iter().enumerate() {
        if total <= budget && free >= min_free {
            break;
        }
        if Some(i) == protect {
            continue;
        }
        drops.push(i);
        total -= size;
        free = free.saturating_add(size);
    }
    drops
}

/// File name of the counters file in a camera's RAM directory.
pub const STATS_FILE: &str = ".uploader-stats";

/// The uploader's counters, kept across restarts in [`STATS_FILE`] as `key=value` lines:
/// `uploaded`, `uploaded_bytes`, `dropped`, `dropped_bytes`, `queue`, `queue_bytes`,
/// `last_key`, `last_size`, `last_speed_bps`, `last_upload_unix`, `last_error` (empty when the
/// last attempt succeeded), `clock` (`synced` or `waiting`), `duplicate_check` (`on`, or
/// `off` while the key may not read, so no `HEAD` looks for the same bytes first), and while a
/// body is being sent `uploading` (file name), `uploading_sent` and `uploading_size` (bytes);
/// failed attempts by cause (`retries_transient`, `retries_refused`, `retries_config`), the
/// first failure since the last success (`failing_since_unix`, 0 while uploads work) and the
/// time from a segment's close to its being stored ([`LATENCY_BUCKETS_S`]: `latency_buckets`,
/// comma-separated counts per bucket plus one past the last, and `latency_sum_ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub uploaded: u64,
    pub uploaded_bytes: u64,
    pub dropped: u64,
    pub dropped_bytes: u64,
    pub queue: u64,
    pub queue_bytes: u64,
    pub last_key: String,
    pub last_size: u64,
    pub last_speed_bps: u64,
    pub last_upload_unix: i64,
    pub last_error: String,
    pub clock_waiting: bool,
    /// The key may write but not read: segments are uploaded without first looking for the
    /// same bytes under their key.
    pub duplicate_check_off: bool,
    pub uploading: String,
    pub uploading_sent: u64,
    pub uploading_size: u64,
    pub retries_transient: u64,
    pub retries_refused: u64,
    pub retries_config: u64,
    pub failing_since_unix: i64,
    /// Uploads by close-to-stored time: one count per [`LATENCY_BUCKETS_S`] bound (not
    /// cumulative), the last for longer ones.
    pub latency: [u64; LATENCY_BUCKETS_S.len() + 1],
    pub latency_sum_ms: u64,
}

/// Upper bounds (seconds) of the close-to-stored histogram: a segment normally goes up within
/// seconds; minutes mean a backlog, hours an outage.
pub const LATENCY_BUCKETS_S: [u64; 10] = [2, 5, 10, 30, 60, 120, 300, 900, 3600, 21600];

impl Stats {
    /// Counts one upload that took `ms` from the segment's close to its being stored.
    pub fn note_latency(&mut self, ms: u64) {
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|b| ms <= b * 1000)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.latency[i] += 1;
        self.latency_sum_ms += ms;
    }

    /// Counts a failed attempt and starts the failing clock if it is not running.
    pub fn note_failure(&mut self, f: &Failure, now_unix: i64) {
        match f {
            Failure::Transient { .. } => self.retries_transient += 1,
            Failure::Refused { .. } => self.retries_refused += 1,
            Failure::Config { .. } => self.retries_config += 1,
        }
        if self.failing_since_unix == 0 {
            self.failing_since_unix = now_unix;
        }
        self.last_error = f.why().to_string();
    }

    pub fn render(&self) -> String {
        let one_line = |s: &str| s.replace(['\n', '\r'], " ");
        format!(
            "uploaded={}\nuploaded_bytes={}\ndropped={}\ndropped_bytes={}\nqueue={}\n\
             queue_bytes={}\nlast_key={}\nlast_size={}\nlast_speed_bps={}\nlast_upload_unix={}\n\
             last_error={}\nclock={}\nduplicate_check={}\nuploading={}\nuploading_sent={}\n\
             uploading_size={}\nretries_transient={}\nretries_refused={}\nretries_config={}\n\
             failing_since_unix={}\nlatency_buckets={}\nlatency_sum_ms={}\n",
            self.uploaded,
            self.uploaded_bytes,
            self.dropped,
            self.dropped_bytes,
            self.queue,
            self.queue_bytes,
            one_line(&self.last_key),
            self.last_size,
            self.last_speed_bps,
            self.last_upload_unix,
            one_line(&self.last_error),
            if self.clock_waiting {
                "waiting"
            } else {
                "synced"
            },
            if self.duplicate_check_off {
                "off"
            } else {
                "on"
            },
            self.uploading,
            self.uploading_sent,
            self.uploading_size,
            self.retries_transient,
            self.retries_refused,
            self.retries_config,
            self.failing_since_unix,
            self.latency
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
            self.latency_sum_ms,
        )
    }

    /// Reads the counters back; unknown or malformed lines are ignored (they start at 0).
    pub fn parse(text: &str) -> Stats {
        let mut s = Stats::default();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let n = || v.trim().parse().unwrap_or(0);
            match k.trim() {
                "uploaded" => s.uploaded = n(),
                "uploaded_bytes" => s.uploaded_bytes = n(),
                "dropped" => s.dropped = n(),
                "dropped_bytes" => s.dropped_bytes = n(),
                "queue" => s.queue = n(),
                "queue_bytes" => s.queue_bytes = n(),
                "last_key" => s.last_key = v.to_string(),
                "last_size" => s.last_size = n(),
                "last_speed_bps" => s.last_speed_bps = n(),
                "last_upload_unix" => s.last_upload_unix = v.trim().parse().unwrap_or(0),
                "last_error" => s.last_error = v.to_string(),
                "clock" => s.clock_waiting = v.trim() == "waiting",
                "duplicate_check" => s.duplicate_check_off = v.trim() == "off",
                "uploading" => s.uploading = v.to_string(),
                "uploading_sent" => s.uploading_sent = n(),
                "uploading_size" => s.uploading_size = n(),
                "retries_transient" => s.retries_transient = n(),
                "retries_refused" => s.retries_refused = n(),
                "retries_config" => s.retries_config = n(),
                "failing_since_unix" => s.failing_since_unix = v.trim().parse().unwrap_or(0),
                "latency_buckets" => {
                    let counts: Vec<u64> = v
                        .split(',')
                        .map(|c| c.trim().parse().unwrap_or(0))
                        .collect();
                    // A different bucket layout cannot be mapped: start again.
                    if counts.len() == s.latency.len() {
                        s.latency.copy_from_slice(&counts);
                    }
                }
                "latency_sum_ms" => s.latency_sum_ms = n(),
                _ => {}
            }
        }
        s
    }

    /// The STATUS= line: queue, last upload, drops, and the current problem if any.
    pub fn status_line(&self, now_unix: i64) -> String {
        let mut s = format!("queue {} ({})", self.queue, human_bytes(self.queue_bytes));
        if self.clock_waiting {
            s.push_str("; waiting for clock sync, nothing uploaded until then");
        }
        if !self.uploading.is_empty() && self.uploading_size > 0 {
            s.push_str(&format!(
                "; uploading {} ({} %)",
                self.uploading,
                self.uploading_sent * 100 / self.uploading_size
            ));
        }
        if !self.last_key.is_empty() {
            let age = (now_unix - self.last_upload_unix).max(0);
            s.push_str(&format!(
                "; last {} {} at {}/s {} ago",
                self.last_key,
                human_bytes(self.last_size),
                human_bytes(self.last_speed_bps),
                human_age(age)
            ));
        }
        s.push_str(&format!("; dropped {}", self.dropped));
        if self.dropped > 0 {
            s.push_str(&format!(" ({})", human_bytes(self.dropped_bytes)));
        }
        if self.duplicate_check_off {
            s.push_str("; duplicate check off (the key may write but not read)");
        }
        if !self.last_error.is_empty() {
            s.push_str(&format!(
                "; error: {}",
                self.last_error.replace(['\n', '\r'], " ")
            ));
        }
        s
    }
}

/// `1.5 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

/// `42 s`, `5 min`, `3 h`, `2 d`.
pub fn human_age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_region() {
        let creds = AwsFile::parse(
            "# keys\n[default]\naws_access_key_id=AKDEF\naws_secret_access_key=sdef\n\n\
             [b2]\naws_access_key_id = 0061234\naws_secret_access_key = K006secret\n",
        )
        .unwrap();
        let k = access_key(&creds, "b2").unwrap();
        assert_eq!(k.id, "0061234");
        assert_eq!(k.secret, "K006secret");
        assert!(!format!("{k:?}").contains("K006secret"));
        let e = access_key(&creds, "wasabi").unwrap_err();
        assert_eq!(e, "no [wasabi] profile (profiles: b2, default)");
        let partial = AwsFile::parse("[b2]\naws_access_key_id = x\n").unwrap();
        assert_eq!(
            access_key(&partial, "b2").unwrap_err(),
            "profile [b2] has no aws_secret_access_key"
        );

        let config = AwsFile::parse(
            "[default]\nregion = us-west-2\n[profile b2]\nregion = ca-east-006\ns3 =\n  addressing_style = path\n",
        )
        .unwrap();
        assert_eq!(
            profile_region(&config, "b2").as_deref(),
            Some("ca-east-006")
        );
        assert_eq!(
            profile_region(&config, "default").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(profile_region(&config, "other"), None);
    }

    #[test]
    fn bad_ini_names_the_line_not_the_value() {
        let e = AwsFile::parse("[b2]\naws_secret_access_key K006secret\n").unwrap_err();
        assert_eq!(e, "line 2: expected `key = value`");
        assert!(AwsFile::parse("x = 1\n")
            .unwrap_err()
            .contains("before any"));
        assert!(AwsFile::parse("[b2\n").unwrap_err().contains("closing"));
    }

    #[test]
    fn answers_are_classified() {
        let body = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        let refused = |s: u16, code: &str| {
            matches!(
                classify_error(s, None, &body(code)),
                Failure::Refused { .. }
            )
        };
        assert!(refused(403, "SignatureDoesNotMatch"));
        assert!(refused(403, "InvalidAccessKeyId"));
        assert!(refused(403, "RequestTimeTooSkewed"));
        assert!(refused(404, "NoSuchBucket"));
        assert!(refused(400, "InvalidDigest"));
        let slow = classify_error(503, Some(Duration::from_secs(7)), &body("SlowDown"));
        assert_eq!(
            slow,
            Failure::Transient {
                why: "HTTP 503 SlowDown: m".into(),
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert!(matches!(
            classify_error(500, None, ""),
            Failure::Transient { .. }
        ));
        assert!(classify_error(403, None, &body("RequestTimeTooSkewed"))
            .why()
            .contains("clock"));
        assert!(classify_error(404, None, "").why().contains("B2_BUCKET"));
    }

    #[test]
    fn refusals_name_the_capability_of_the_operation() {
        let denied = "<Error><Code>AccessDenied</Code><Message>not entitled</Message></Error>";
        let why = |op: Op, status: u16, body: &str| match classify_error_for(op, status, None, body)
        {
            Failure::Refused { why } => why,
            f => panic!("{f:?} is not a refusal"),
        };
        assert_eq!(
            why(Op::List, 403, denied),
            "HTTP 403 AccessDenied: not entitled (the key lacks B2's listFiles capability \
             (s3:ListBucket))"
        );
        assert!(why(Op::Get, 403, denied).contains("readFiles capability (s3:GetObject)"));
        assert!(why(Op::Put, 403, denied).contains("writeFiles capability (s3:PutObject)"));
        // A HEAD answer has no body: the hint lists every cause.
        let head = why(Op::Head, 403, "");
        assert!(head.contains("wrong key or secret"), "{head}");
        assert!(head.contains("readFiles"), "{head}");
        // Credentials and clock problems say so, whatever the operation.
        let sig = "<Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert!(why(Op::List, 403, sig).contains("wrong secret key"));
        assert!(!why(Op::List, 403, sig).contains("listFiles"));
        assert!(why(Op::Get, 404, "<Error><Code>NoSuchKey</Code></Error>").contains("no object"));
        assert!(matches!(
            classify_error_for(Op::List, 503, None, ""),
            Failure::Transient { .. }
        ));
        assert_eq!(
            classify_error(403, None, denied),
            classify_error_for(Op::Put, 403, None, denied)
        );
    }

    #[test]
    fn a_locked_put_refused_for_want_of_object_lock_is_a_config_failure_naming_the_fix() {
        let seaweed = "<Error><Code>InvalidRequest</Code><Message>Invalid Request</Message>\
                       </Error>";
        assert_eq!(
            classify_error_for(Op::PutLocked, 400, None, seaweed),
            Failure::Config {
                why: "HTTP 400 InvalidRequest: Invalid Request (the bucket refuses the retention \
                      headers OBJECT_LOCK_DAYS asks for: it has no Object Lock; enable Object \
                      Lock (B2: File Lock) on the bucket, or unset OBJECT_LOCK_DAYS)"
                    .into()
            }
        );
        // The same answer to a PUT without retention headers is a plain refusal.
        assert!(matches!(
            classify_error_for(Op::Put, 400, None, seaweed),
            Failure::Refused { .. }
        ));
        // Other refusals of a locked PUT keep their meaning; a 403 names the retention
        // capability the key may lack.
        let denied = "<Error><Code>AccessDenied</Code><Message>Access Denied.</Message></Error>";
        match classify_error_for(Op::PutLocked, 403, None, denied) {
            Failure::Refused { why } => assert!(
                why.contains("writeFiles and writeFileRetentions capabilities"),
                "{why}"
            ),
            f => panic!("{f:?}"),
        }
        let digest = "<Error><Code>BadDigest</Code></Error>";
        assert!(matches!(
            classify_error_for(Op::PutLocked, 400, None, digest),
            Failure::Refused { .. }
        ));
        assert!(matches!(
            classify_error_for(Op::PutLocked, 503, None, ""),
            Failure::Transient { .. }
        ));
    }

    #[test]
    fn etag_must_be_our_md5_unless_content_md5_was_accepted() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert_eq!(
            classify_put_success(Some("\"9E107D9D372BB6826BD81D3542A419D6\""), md5, true),
            PutOutcome::Stored { etag_is_md5: true }
        );
        // SSE-KMS, multipart-style or server-specific ETags: the accepted Content-MD5 proves
        // the bytes, so the segment is stored (and never uploaded again under `-2`).
        for etag in [
            Some("\"abc-1\""),
            Some("0123456789abcdef0123456789abcdef"),
            None,
        ] {
            assert_eq!(
                classify_put_success(etag, md5, true),
                PutOutcome::Stored { etag_is_md5: false },
                "{etag:?}"
            );
        }
        // Without Content-MD5 only the ETag proves anything.
        assert_eq!(
            classify_put_success(Some(md5), md5, false),
            PutOutcome::Stored { etag_is_md5: true }
        );
        assert!(matches!(
            classify_put_success(Some("\"abc\""), md5, false),
            PutOutcome::Failed(Failure::Transient { .. })
        ));
        assert!(matches!(
            classify_put_success(None, md5, false),
            PutOutcome::Failed(_)
        ));
    }

    #[test]
    fn same_bytes_from_etag_or_md5_metadata() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert!(holds_same_bytes(
            "9E107D9D372BB6826BD81D3542A419D6",
            None,
            md5
        ));
        assert!(holds_same_bytes(
            "\"9e107d9d372bb6826bd81d3542a419d6\"",
            None,
            md5
        ));
        // An ETag that is not the MD5 (SSE-KMS: 32 hex digits; others: `abc-1`): the metadata.
        assert!(holds_same_bytes("abc-1", Some(md5), md5));
        assert!(holds_same_bytes(
            "0123456789abcdef0123456789abcdef",
            Some(md5),
            md5
        ));
        assert!(!holds_same_bytes("abc-1", None, md5));
        assert!(!holds_same_bytes(
            "abc-1",
            Some("0123456789abcdef0123456789abcdef"),
            md5
        ));
        assert!(!holds_same_bytes(
            "0123456789abcdef0123456789abcdef",
            None,
            md5
        ));
    }

    #[test]
    fn retry_waits_at_least_the_backoff() {
        let backoff = Duration::from_millis(1500);
        assert_eq!(retry_delay(Some(Duration::ZERO), backoff), backoff);
        assert_eq!(retry_delay(None, backoff), backoff);
        assert_eq!(retry_delay(Some(Duration::from_secs(1)), backoff), backoff);
        assert_eq!(
            retry_delay(Some(Duration::from_secs(7)), backoff),
            Duration::from_secs(7)
        );
        // A date in the past parses to zero and still waits the backoff.
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp();
        let past = parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now);
        assert_eq!(retry_delay(past, backoff), backoff);
        let zero = parse_retry_after("0", now);
        assert_eq!(retry_delay(zero, backoff), backoff);
    }

    #[test]
    fn retry_after_forms() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .timestamp();
        assert_eq!(parse_retry_after("5", now), Some(Duration::from_secs(5)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("99999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn key_variants() {
        let k = "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts";
        assert_eq!(key_variant(k, 1), k);
        assert_eq!(
            key_variant(k, 2),
            "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22-2.ts"
        );
        assert_eq!(key_variant("a.b/c", 3), "a.b/c-3");
    }

    #[test]
    fn drops_oldest_over_budget() {
        // Budget of three 300-byte segments; a fourth arrives.
        assert_eq!(
            plan_drops(&[300, 300, 300, 300], None, 1000, 1 << 30, 0),
            [0]
        );
        assert_eq!(
            plan_drops(&[300, 300, 300], None, 1000, 1 << 30, 0),
            Vec::<usize>::new()
        );
        // The oldest is being uploaded: the next oldest goes.
        assert_eq!(
            plan_drops(&[300, 300, 300, 300], Some(0), 1000, 1 << 30, 0),
            [1]
        );
        // Free-space floor: 250 free, 600 wanted → two 300-byte segments go.
        assert_eq!(
            plan_drops(&[300, 300, 300], None, 1 << 30, 250, 600),
            [0, 1]
        );
        assert_eq!(plan_drops(&[], None, 0, 0, 10), Vec::<usize>::new());
    }

    #[test]
    fn stats_round_trip_and_status() {
        let s = Stats {
            uploaded: 5,
            uploaded_bytes: 5 << 20,
            dropped: 1,
            dropped_bytes: 300 << 10,
            queue: 2,
            queue_bytes: 3 << 20,
            last_key: "cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts".into(),
            last_size: 1 << 20,
            last_speed_bps: 2 << 20,
            last_upload_unix: 1000,
            last_error: "HTTP 403 SignatureDoesNotMatch\nx".into(),
            clock_waiting: false,
            ..Stats::default()
        };
        let back = Stats::parse(&s.render());
        assert_eq!(back.last_error, "HTTP 403 SignatureDoesNotMatch x");
        assert_eq!(back.uploaded, 5);
        assert_eq!(back.dropped_bytes, 300 << 10);
        assert_eq!(
            s.status_line(1042),
            "queue 2 (3.0 MiB); last cam1/2025/10/12/17/cam_1_2025_10_12_17_42_22.ts 1.0 MiB \
             at 2.0 MiB/s 42 s ago; dropped 1 (300.0 KiB); error: HTTP 403 SignatureDoesNotMatch x"
        );
        let fresh = Stats {
            clock_waiting: true,
            ..Stats::default()
        };
        assert_eq!(
            fresh.status_line(0),
            "queue 0 (0 B); waiting for clock sync, nothing uploaded until then; dropped 0"
        );
        let write_only = Stats {
            duplicate_check_off: true,
            last_error: "HTTP 503".into(),
            ..Stats::default()
        };
        assert_eq!(Stats::parse(&write_only.render()), write_only);
        assert!(!Stats::parse(&s.render()).duplicate_check_off);
        assert_eq!(
            write_only.status_line(0),
            "queue 0 (0 B); dropped 0; duplicate check off (the key may write but not read); \
             error: HTTP 503"
        );
    }

    #[test]
    fn failures_by_cause_latency_and_the_failing_clock_round_trip() {
        let mut s = Stats::default();
        s.note_failure(
            &Failure::Transient {
                why: "connection refused".into(),
                retry_after: None,
            },
            500,
        );
        s.note_failure(
            &Failure::Refused {
                why: "HTTP 403".into(),
            },
            560,
        );
        s.note_failure(
            &Failure::Config {
                why: "no lock".into(),
            },
            620,
        );
        assert_eq!(
            (s.retries_transient, s.retries_refused, s.retries_config),
            (1, 1, 1)
        );
        // The clock starts at the first failure, not the latest.
        assert_eq!(s.failing_since_unix, 500);
        assert_eq!(s.last_error, "no lock");
        for ms in [1500, 2000, 2001, 59_000, 100_000_000] {
            s.note_latency(ms);
        }
        assert_eq!(s.latency, [2, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!(s.latency_sum_ms, 100_064_501);
        assert!(s
            .render()
            .contains("latency_buckets=2,1,0,0,1,0,0,0,0,0,1\n"));
        assert_eq!(Stats::parse(&s.render()), s);
        // Another bucket layout (an older or newer uploader) restarts the histogram.
        assert_eq!(Stats::parse("latency_buckets=1,2\n").latency, [0; 11]);
    }
}
