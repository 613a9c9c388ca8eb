//! The camera's port-80 control server as daynight uses it: `GET /status` (parsed into a map)
//! and `GET /control?var=&val=`. Never the stream port (the firmware serves one viewer at a
//! time, and that viewer is the recorder). Every request is bounded by the camera's deadline.

use std::fmt;
use std::time::{Duration, Instant};

use visdcam_core::config::HttpUrl;
use visdcam_core::error::{Classify, ErrorKind};
use visdcam_core::presets::Status;

/// The longest a single request may take, even with time left in the camera's budget.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to the camera failed.
#[derive(Debug)]
pub enum HttpError {
    /// The camera's time budget ran out before or during the request.
    Timeout { url: String },
    /// No answer: refused, unreachable, reset, timed out on the wire.
    Transport { url: String, source: ureq::Error },
    /// An answer, but not 200 where one was needed.
    Status { url: String, status: u16 },
    /// `/status` answered something that is not a JSON object.
    BadJson { url: String, message: String },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Timeout { url } => write!(f, "GET {url}: the camera's time budget ran out"),
            HttpError::Transport { url, .. } => write!(f, "GET {url}"),
            HttpError::Status { url, status } => write!(f, "GET {url}: HTTP {status}"),
            HttpError::BadJson { url, message } => {
                write!(f, "GET {url}: not the firmware's /status JSON: {message}")
            }
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Transport { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl Classify for HttpError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Retry
    }
}

/// One camera's control server, with a deadline for everything done with it.
pub struct Camera {
    agent: ureq::Agent,
    control: HttpUrl,
    deadline: Instant,
}

impl Camera {
    pub fn new(control: HttpUrl, deadline: Instant) -> Camera {
        let agent = ureq::Agent::config_builder()
            // 404/500 are answers the caller judges, not transport errors.
            .http_status_as_error(false)
            // Cameras are on the LAN: an http_proxy from the environment must not apply.
            .proxy(None)
            .user_agent("visdcam-daynight")
            .build()
            .new_agent();
        Camera {
            agent,
            control,
            deadline,
        }
    }

    /// `GET path`: the status and the body.
    fn get(&self, path: &str) -> Result<(u16, String), HttpError> {
        let url = self.control.join(path);
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout { url });
        }
        let transport = |source: ureq::Error| match source {
            ureq::Error::Timeout(_) if Instant::now() >= self.deadline => {
                HttpError::Timeout { url: url.clone() }
            }
            source => HttpError::Transport {
                url: url.clone(),
                source,
            },
        };
        let mut resp = self
            .agent
            .get(&url)
            .config()
            .timeout_global(Some(left.min(REQUEST_TIMEOUT)))
            .build()
            .call()
            .map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().read_to_string().map_err(transport)?;
        Ok((status, body))
    }

    /// The camera's `/status`: every integer field.
    pub fn status(&self) -> Result<Status, HttpError> {
        let (status, body) = self.get("/status")?;
        let url = self.control.join("/status");
        if status != 200 {
            return Err(HttpError::Status { url, status });
        }
        parse_status(&body).map_err(|message| HttpError::BadJson { url, message })
    }

    /// `GET /control?var=VAR&val=N`: the HTTP status (200 accepted, 500 refused).
    pub fn control(&self, var: &str, val: i32) -> Result<u16, HttpError> {
        self.get(&format!("/control?var={var}&val={val}"))
            .map(|(s, _)| s)
    }
}

/// Parses the firmware's `/status` JSON into its integer fields (others are ignored).
pub fn parse_status(body: &str) -> Result<Status, String> {
    let value: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let obj = value
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    Ok(obj
        .iter()
        .filter_map(|(k, v)| v.as_i64().map(|n| (k.clone(), n)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_firmware_status() {
        let s = parse_status(r#"{"0xd3":8,"framesize":9,"led_intensity":-1,"x":"y"}"#).unwrap();
        assert_eq!(s["framesize"], 9);
        assert_eq!(s["led_intensity"], -1);
        assert!(!s.contains_key("x"));
        assert!(parse_status("[1]").unwrap_err().contains("object"));
        assert!(parse_status("<html>").is_err());
    }
}
