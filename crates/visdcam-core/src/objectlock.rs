//! Object Lock (S3 retention; B2 calls it File Lock): the mode and period a camera's uploads
//! are locked for (`OBJECT_LOCK_DAYS`, `OBJECT_LOCK_MODE`), the retention headers each PUT
//! carries, and what a bucket's `?object-lock` answer says.
//!
//! A locked object version cannot be deleted or replaced by anyone holding the Pi's key until
//! its retain-until date: the date is the upload time plus whole days, rounded up to the next
//! second, so an object is never locked for less than it was asked. A PUT under a key that
//! already holds a locked object stores a new version and leaves the locked one in place (a
//! bucket with Object Lock is always versioned), so no upload path can lose locked footage.

use std::fmt;

use chrono::{DateTime, Duration, DurationRound, SecondsFormat, Utc};

/// Most days a segment may be locked. A locked object cannot be deleted early, and in
/// compliance mode not even by the account owner, so a typo (3650 for 365) must not lock a
/// decade of storage costs in: ten years is more than any CCTV retention rule asks.
pub const MAX_DAYS: u32 = 3650;

/// The request header naming the mode.
pub const MODE_HEADER: &str = "x-amz-object-lock-mode";
/// The request header with the retain-until date (ISO 8601, UTC).
pub const UNTIL_HEADER: &str = "x-amz-object-lock-retain-until-date";

/// What a person does when the bucket refuses retention headers.
pub const FIX_NO_LOCK: &str = "enable Object Lock (B2: File Lock) on the bucket, or unset \
                               OBJECT_LOCK_DAYS";

/// Who may remove a lock before its date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// A key with the right to bypass governance (B2 `bypassGovernance`, S3
    /// `s3:BypassGovernanceRetention`) may still delete or shorten it; the Pi's key has no
    /// such right.
    Governance,
    /// Nobody may delete it or shorten it before the date, not even the account owner.
    Compliance,
}

impl LockMode {
    /// `governance` or `compliance`, in any case.
    pub fn parse(s: &str) -> Result<LockMode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "governance" => Ok(LockMode::Governance),
            "compliance" => Ok(LockMode::Compliance),
            _ => Err(format!("`{s}` is not governance or compliance")),
        }
    }

    /// The value of [`MODE_HEADER`]: `GOVERNANCE` or `COMPLIANCE`.
    pub fn header_value(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        })
    }
}

/// A camera's lock setting: every upload is locked for `days` in `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLock {
    /// 1 to [`MAX_DAYS`].
    pub days: u32,
    pub mode: LockMode,
}

impl ObjectLock {
    /// From `OBJECT_LOCK_DAYS` and `OBJECT_LOCK_MODE`: `None` (no lock) for 0 days.
    pub fn from_days(days: u32, mode: LockMode) -> Option<ObjectLock> {
        (days > 0).then_some(ObjectLock {
            days: days.min(MAX_DAYS),
            mode,
        })
    }

    /// The retention of an object uploaded at `now`: `days` × 24 h later, rounded up to the
    /// next whole second (the header has whole seconds; rounding down would lock for less).
    pub fn retention_at(&self, now: DateTime<Utc>) -> Retention {
        let until = now + Duration::days(i64::from(self.days));
        let second = Duration::seconds(1);
        let down = until.duration_trunc(second).unwrap_or(until);
        let until = if down < until { down + second } else { down };
        Retention {
            mode: self.mode,
            until,
        }
    }
}

impl fmt::Display for ObjectLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = if self.days == 1 { "" } else { "s" };
        write!(f, "{} mode, {} day{s}", self.mode, self.days)
    }
}

/// The retention one PUT asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub mode: LockMode,
    /// Whole seconds.
    pub until: DateTime<Utc>,
}

impl Retention {
    /// The value of [`UNTIL_HEADER`], as S3 SDKs send it: `2025-10-19T12:00:01Z`.
    pub fn until_value(&self) -> String {
        self.until.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// Both request headers (lower-case names, as they are signed).
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (MODE_HEADER, self.mode.header_value().to_string()),
            (UNTIL_HEADER, self.until_value()),
        ]
    }
}

/// Whether a refused PUT that carried retention headers means the bucket has no Object Lock:
/// S3 (and SeaweedFS, MinIO) answer `400 InvalidRequest` ("Bucket is missing Object Lock
/// Configuration"); `InvalidArgument` is taken the same way. Our headers are well-formed and
/// the date is a day or more ahead, so no other cause gives these codes.
pub fn bucket_lacks_lock(status: u16, code: Option<&str>) -> bool {
    status == 400 && matches!(code, Some("InvalidRequest" | "InvalidArgument"))
}

/// A bucket's Object Lock configuration, from `GET /<bucket>?object-lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLock {
    /// `<ObjectLockEnabled>Enabled</ObjectLockEnabled>`.
    pub enabled: bool,
    /// The bucket's default retention for objects uploaded without one, if set.
    pub default: Option<DefaultRetention>,
}

/// A bucket's default retention rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRetention {
    pub mode: LockMode,
    /// `Days`, or `Years` × 365 when the rule is in years.
    pub days: u32,
}

/// The text of the first `<name>…</name>` in `xml`, trimmed.
fn tag<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].trim())
}

impl BucketLock {
    /// Parses an `ObjectLockConfiguration` document. Anything but `Enabled` is not enabled; a
    /// default rule whose mode or period does not parse is left out.
    pub fn parse(xml: &str) -> BucketLock {
        let enabled = tag(xml, "ObjectLockEnabled") == Some("Enabled");
        let default = tag(xml, "DefaultRetention").and_then(|rule| {
            let mode = LockMode::parse(tag(rule, "Mode")?).ok()?;
            let days = match (tag(rule, "Days"), tag(rule, "Years")) {
                (Some(d), _) => d.parse().ok()?,
                (None, Some(y)) => y.parse::<u32>().ok()?.checked_mul(365)?,
                (None, None) => return None,
            };
            Some(DefaultRetention { mode, days })
        });
        BucketLock { enabled, default }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn retain_until_is_whole_days_after_the_upload_rounded_up_to_a_second() {
        let lock = ObjectLock {
            days: 30,
            mode: LockMode::Governance,
        };
        let r = lock.retention_at(at("2025-10-12T17:42:22.250Z"));
        assert_eq!(r.until_value(), "2025-11-11T17:42:23Z");
        assert!(r.until >= at("2025-10-12T17:42:22.250Z") + Duration::days(30));
        // On a whole second nothing is added.
        let r = lock.retention_at(at("2025-10-12T17:42:22Z"));
        assert_eq!(r.until_value(), "2025-11-11T17:42:22Z");
        // A nanosecond past still rounds up.
        let t = Utc.timestamp_opt(1_760_290_942, 1).unwrap();
        assert_eq!(
            lock.retention_at(t).until,
            Utc.timestamp_opt(1_760_290_942 + 30 * 86_400 + 1, 0)
                .unwrap()
        );
    }

    #[test]
    fn days_are_24_hours_in_utc_across_leap_days_and_years() {
        let one = ObjectLock {
            days: 1,
            mode: LockMode::Compliance,
        };
        assert_eq!(
            one.retention_at(at("2028-02-28T23:59:59Z")).until_value(),
            "2028-02-29T23:59:59Z"
        );
        assert_eq!(
            one.retention_at(at("2025-12-31T12:00:00Z")).until_value(),
            "2026-01-01T12:00:00Z"
        );
        let most = ObjectLock {
            days: MAX_DAYS,
            mode: LockMode::Compliance,
        };
        assert_eq!(
            most.retention_at(at("2025-01-01T00:00:00Z")).until_value(),
            "2034-12-30T00:00:00Z",
            "3650 days, with the leap days of 2028 and 2032"
        );
    }

    #[test]
    fn headers_are_lower_case_names_with_s3_values() {
        let r = ObjectLock {
            days: 7,
            mode: LockMode::Compliance,
        }
        .retention_at(at("2025-10-12T00:00:00Z"));
        assert_eq!(
            r.headers(),
            [
                ("x-amz-object-lock-mode", "COMPLIANCE".to_string()),
                (
                    "x-amz-object-lock-retain-until-date",
                    "2025-10-19T00:00:00Z".to_string()
                ),
            ]
        );
    }

    #[test]
    fn modes_parse_in_any_case_and_nothing_else() {
        assert_eq!(LockMode::parse("governance"), Ok(LockMode::Governance));
        assert_eq!(LockMode::parse("COMPLIANCE"), Ok(LockMode::Compliance));
        assert_eq!(LockMode::parse(" Governance "), Ok(LockMode::Governance));
        assert_eq!(
            LockMode::parse("legal-hold").unwrap_err(),
            "`legal-hold` is not governance or compliance"
        );
        assert_eq!(LockMode::Governance.header_value(), "GOVERNANCE");
        assert_eq!(LockMode::Compliance.to_string(), "compliance");
    }

    #[test]
    fn zero_days_is_no_lock() {
        assert_eq!(ObjectLock::from_days(0, LockMode::Compliance), None);
        let l = ObjectLock::from_days(30, LockMode::Compliance).unwrap();
        assert_eq!(l.to_string(), "compliance mode, 30 days");
        let l = ObjectLock::from_days(1, LockMode::Governance).unwrap();
        assert_eq!(l.to_string(), "governance mode, 1 day");
    }

    #[test]
    fn a_bucket_without_lock_is_told_by_400_invalid_request() {
        assert!(bucket_lacks_lock(400, Some("InvalidRequest")));
        assert!(bucket_lacks_lock(400, Some("InvalidArgument")));
        assert!(!bucket_lacks_lock(400, Some("BadDigest")));
        assert!(!bucket_lacks_lock(400, None));
        assert!(!bucket_lacks_lock(403, Some("InvalidRequest")));
    }

    #[test]
    fn bucket_lock_configuration_parses() {
        let b2 = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
    <ObjectLockEnabled>Enabled</ObjectLockEnabled>
    <Rule><DefaultRetention><Mode>GOVERNANCE</Mode><Days>14</Days></DefaultRetention></Rule>
</ObjectLockConfiguration>"#;
        assert_eq!(
            BucketLock::parse(b2),
            BucketLock {
                enabled: true,
                default: Some(DefaultRetention {
                    mode: LockMode::Governance,
                    days: 14
                })
            }
        );
        let years = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
                     <Rule><DefaultRetention><Mode>COMPLIANCE</Mode><Years>2</Years>\
                     </DefaultRetention></Rule></ObjectLockConfiguration>";
        assert_eq!(
            BucketLock::parse(years).default,
            Some(DefaultRetention {
                mode: LockMode::Compliance,
                days: 730
            })
        );
        let bare = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>\
                    </ObjectLockConfiguration>";
        assert_eq!(
            BucketLock::parse(bare),
            BucketLock {
                enabled: true,
                default: None
            }
        );
        assert!(!BucketLock::parse("<ObjectLockConfiguration/>").enabled);
    }
}
