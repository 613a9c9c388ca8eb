//! sd_notify for `Type=notify` units: readiness, STATUS= text and watchdog pings at half of
//! `WATCHDOG_USEC`. A failed notification is logged once, never fatal.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Talks to the service manager, if there is one (`NOTIFY_SOCKET` set); a no-op otherwise.
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    last_ping: Option<Instant>,
    last_status: String,
    warned: bool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
            last_ping: None,
            last_status: String::new(),
            warned: false,
        }
    }

    fn send(&mut self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            if !self.warned {
                log::warn!("sd_notify failed (further failures not logged): {e}");
                self.warned = true;
            }
        }
    }

    /// `READY=1`.
    pub fn ready(&mut self) {
        self.send(&[NotifyState::Ready]);
    }

    /// `STOPPING=1`.
    pub fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// `STATUS=text`, sent only when it changed.
    pub fn status(&mut self, text: &str) {
        if text != self.last_status {
            self.last_status = text.to_string();
            self.send(&[NotifyState::Status(text)]);
        }
    }

    /// The last STATUS= text sent.
    pub fn last_status(&self) -> &str {
        &self.last_status
    }

    /// How often to ping: half the watchdog timeout, `None` without a watchdog.
    pub fn ping_interval(&self) -> Option<Duration> {
        self.watchdog.map(|w| w / 2)
    }

    /// Pings the watchdog if half its period has passed. Call only from a healthy loop.
    pub fn ping_if_due(&mut self) {
        let Some(interval) = self.ping_interval() else {
            return;
        };
        let now = Instant::now();
        if self
            .last_ping
            .is_none_or(|t| now.duration_since(t) >= interval)
        {
            self.last_ping = Some(now);
            self.send(&[NotifyState::Watchdog]);
        }
    }
}
