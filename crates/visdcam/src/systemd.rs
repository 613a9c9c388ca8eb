//! systemd over the system D-Bus (`org.freedesktop.systemd1`), blocking: start, stop and
//! restart units and wait for their jobs, read unit properties, enable and disable unit files.
//!
//! ```text
//!  visdcam ──(DBUS_SYSTEM_BUS_ADDRESS or /run/dbus/system_bus_socket)──► systemd (PID 1)
//!     Manager.Subscribe, AddMatch JobRemoved     (before any job, so no result is missed)
//!     Manager.StartUnit(name, "replace") ──► job path ... JobRemoved(id, job, unit, result)
//!     Manager.LoadUnit(name) ──► unit path ──► Properties.GetAll(Unit|Service|Timer)
//! ```
//!
//! `visdcam` never runs `systemctl`. The connection honours `DBUS_SYSTEM_BUS_ADDRESS`, which is
//! how the tests point it at a systemd booted in a container.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, Proxy};
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

use crate::fail::{Exit, Failure, SUDO_HINT};

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";

/// How long to wait for a job before giving up on reporting it (a start waits for READY=1,
/// a stop for the unit's TimeoutStopSec; systemd's own start timeout is 90 s).
pub const JOB_TIMEOUT: Duration = Duration::from_secs(120);

/// A connection to systemd.
pub struct Systemd {
    conn: Connection,
    manager: Proxy<'static>,
    jobs: Option<mpsc::Receiver<JobDone>>,
    /// Jobs that finished while we waited for others.
    done: HashMap<String, JobDone>,
}

/// A finished job, from the `JobRemoved` signal.
#[derive(Debug, Clone)]
pub struct JobDone {
    pub job: String,
    /// done, canceled, timeout, failed, dependency or skipped.
    pub result: String,
}

/// A unit's state, as `status` shows it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct UnitInfo {
    pub unit: String,
    pub load_state: String,
    pub active_state: String,
    pub sub_state: String,
    /// enabled, disabled, static, ... (empty when the unit file is not installed).
    pub unit_file_state: String,
    /// When the unit entered its current state, Unix microseconds (0: never).
    pub state_change_us: u64,
    /// Services: how often systemd restarted it automatically.
    pub restarts: Option<u32>,
    /// Services: the daemon's STATUS= text.
    pub status_text: Option<String>,
    /// Services: success, exit-code, signal, watchdog, ...
    pub result: Option<String>,
    pub main_pid: Option<u32>,
    /// Timers: next elapse, Unix microseconds (0: none).
    pub next_elapse_us: Option<u64>,
    /// Timers: last trigger, Unix microseconds (0: never).
    pub last_trigger_us: Option<u64>,
}

/// Classifies a D-Bus error: permission problems exit 4 with the sudo hint.
pub fn bus_failure(context: &str, e: &zbus::Error) -> Failure {
    let name = match e {
        zbus::Error::MethodError(name, _, _) => Some(name.as_str().to_string()),
        zbus::Error::FDO(f) => Some(zbus::DBusError::name(f.as_ref()).as_str().to_string()),
        _ => None,
    };
    let detail = match e {
        zbus::Error::MethodError(_, Some(d), _) => d.clone(),
        other => other.to_string(),
    };
    match name.as_deref() {
        Some(
            "org.freedesktop.DBus.Error.AccessDenied"
            | "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
            | "org.freedesktop.systemd1.InteractiveAuthorizationRequired",
        ) => Failure::new(Exit::Permission, format!("{context}: {SUDO_HINT}")),
        Some("org.freedesktop.systemd1.NoSuchUnit")
        | Some("org.freedesktop.systemd1.LoadFailed") => Failure::failed(format!(
            "{context}: {detail} (is the visdcam package installed?)"
        )),
        _ => Failure::failed(format!("{context}: {detail}")),
    }
}

impl Systemd {
    /// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` if set).
    pub fn connect() -> Result<Systemd, Failure> {
        let address = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
            .unwrap_or_else(|_| "unix:path=/run/dbus/system_bus_socket".into());
        let conn = Connection::system().map_err(|e| {
            Failure::failed(format!(
                "cannot connect to the system bus at {address}: {e} (is systemd running?)"
            ))
        })?;
        let manager = Proxy::new_owned(conn.clone(), DEST, MANAGER_PATH, MANAGER_IFACE)
            .map_err(|e| bus_failure("talking to systemd", &e))?;
        Ok(Systemd {
            conn,
            manager,
            jobs: None,
            done: HashMap::new(),
        })
    }

    /// Starts listening for `JobRemoved` once, before the first job is queued.
    fn watch_jobs(&mut self) -> Result<(), Failure> {
        if self.jobs.is_some() {
            return Ok(());
        }
        // Without a subscriber systemd may not emit job signals; a failure here (an old
        // systemd, a policy) only costs us the result text, so it is not fatal.
        let _ = self.manager.call::<_, _, ()>("Subscribe", &());
        let signals = self
            .manager
            .receive_signal("JobRemoved")
            .map_err(|e| bus_failure("watching systemd jobs", &e))?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for msg in signals {
                let Ok((_id, job, _unit, result)) =
                    msg.body()
                        .deserialize::<(u32, OwnedObjectPath, String, String)>()
                else {
                    continue;
                };
                let done = JobDone {
                    job: job.as_str().to_string(),
                    result,
                };
                if tx.send(done).is_err() {
                    break;
                }
            }
        });
        self.jobs = Some(rx);
        Ok(())
    }

    /// Queues a start/stop/restart job (mode `replace`) and returns its object path.
    pub fn queue(&mut self, method: &str, unit: &str) -> Result<String, Failure> {
        self.watch_jobs()?;
        let verb = method.trim_end_matches("Unit").to_ascii_lowercase();
        let job: OwnedObjectPath = self
            .manager
            .call(method, &(unit, "replace"))
            .map_err(|e| bus_failure(&format!("cannot {verb} {unit}"), &e))?;
        Ok(job.as_str().to_string())
    }

    /// Waits until every job in `jobs` has finished, returning each one's result in order.
    pub fn wait(&mut self, jobs: &[String], timeout: Duration) -> Vec<Option<JobDone>> {
        let deadline = Instant::now() + timeout;
        let Some(rx) = &self.jobs else {
            return jobs.iter().map(|_| None).collect();
        };
        while !jobs.iter().all(|j| self.done.contains_key(j)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(d) => {
                    self.done.insert(d.job.clone(), d);
                }
                Err(_) => break,
            }
        }
        jobs.iter().map(|j| self.done.remove(j)).collect()
    }

    fn properties(&self, path: &str, iface: &str) -> Result<HashMap<String, OwnedValue>, Failure> {
        let proxy = Proxy::new_owned(
            self.conn.clone(),
            DEST,
            path.to_string(),
            "org.freedesktop.DBus.Properties",
        )
        .map_err(|e| bus_failure("talking to systemd", &e))?;
        proxy
            .call("GetAll", &(iface,))
            .map_err(|e| bus_failure(&format!("reading {iface} of {path}"), &e))
    }

    /// Loads a unit (without starting it) and returns its object path.
    pub fn load_unit(&self, unit: &str) -> Result<String, Failure> {
        let path: OwnedObjectPath = self
            .manager
            .call("LoadUnit", &(unit,))
            .map_err(|e| bus_failure(&format!("cannot look up {unit}"), &e))?;
        Ok(path.as_str().to_string())
    }

    /// Reads the state of a unit (services and timers get their extra properties).
    pub fn unit_info(&self, unit: &str) -> Result<UnitInfo, Failure> {
        let path = self.load_unit(unit)?;
        let u = self.properties(&path, "org.freedesktop.systemd1.Unit")?;
        let mut info = UnitInfo {
            unit: unit.to_string(),
            load_state: text(&u, "LoadState"),
            active_state: text(&u, "ActiveState"),
            sub_state: text(&u, "SubState"),
            unit_file_state: text(&u, "UnitFileState"),
            state_change_us: num(&u, "StateChangeTimestamp").unwrap_or(0),
            ..UnitInfo::default()
        };
        if info.load_state != "loaded" {
            return Ok(info);
        }
        if unit.ends_with(".service") {
            let s = self.properties(&path, "org.freedesktop.systemd1.Service")?;
            info.restarts = num(&s, "NRestarts").map(|n| n as u32);
            info.status_text = Some(text(&s, "StatusText")).filter(|t| !t.is_empty());
            info.result = Some(text(&s, "Result")).filter(|t| !t.is_empty());
            info.main_pid = num(&s, "MainPID").map(|n| n as u32).filter(|p| *p != 0);
        } else if unit.ends_with(".timer") {
            let t = self.properties(&path, "org.freedesktop.systemd1.Timer")?;
            info.next_elapse_us = num(&t, "NextElapseUSecRealtime");
            info.last_trigger_us = num(&t, "LastTriggerUSec");
        }
        Ok(info)
    }

    /// Enables unit files (`systemctl enable` without `--now`), then reloads systemd.
    pub fn enable(&self, units: &[String]) -> Result<Vec<(String, String, String)>, Failure> {
        let (_install_info, changes): (bool, Vec<(String, String, String)>) = self
            .manager
            .call("EnableUnitFiles", &(units, false, false))
            .map_err(|e| bus_failure(&format!("cannot enable {}", units.join(" ")), &e))?;
        self.reload()?;
        Ok(changes)
    }

    /// Disables unit files, then reloads systemd.
    pub fn disable(&self, units: &[String]) -> Result<Vec<(String, String, String)>, Failure> {
        let changes: Vec<(String, String, String)> = self
            .manager
            .call("DisableUnitFiles", &(units, false))
            .map_err(|e| bus_failure(&format!("cannot disable {}", units.join(" ")), &e))?;
        self.reload()?;
        Ok(changes)
    }

    /// `daemon-reload`: systemd reads unit files again.
    pub fn reload(&self) -> Result<(), Failure> {
        self.manager
            .call::<_, _, ()>("Reload", &())
            .map_err(|e| bus_failure("cannot reload systemd", &e))
    }
}

fn text(props: &HashMap<String, OwnedValue>, key: &str) -> String {
    props
        .get(key)
        .and_then(|v| match &**v {
            Value::Str(s) => Some(s.as_str().to_string()),
            _ => None,
        })
        .unwrap_or_default()
}

fn num(props: &HashMap<String, OwnedValue>, key: &str) -> Option<u64> {
    props.get(key).and_then(|v| match &**v {
        Value::U64(n) => Some(*n),
        Value::U32(n) => Some(u64::from(*n)),
        Value::I32(n) => u64::try_from(*n).ok(),
        Value::I64(n) => u64::try_from(*n).ok(),
        _ => None,
    })
}

/// Describes a finished job for people; `Ok` when it did what was asked.
pub fn job_outcome(
    verb: &str,
    unit: &str,
    done: Option<&JobDone>,
    info: Option<&UnitInfo>,
) -> Result<String, String> {
    let state = info
        .map(|i| format!("{} ({})", i.active_state, i.sub_state))
        .unwrap_or_else(|| "state unknown".into());
    match done.map(|d| d.result.as_str()) {
        Some("done") => Ok(format!("{unit}: {verb} done, now {state}")),
        Some("skipped") => Ok(format!("{unit}: nothing to do, {state}")),
        Some(other) => {
            let why = info
                .and_then(|i| i.result.as_deref())
                .filter(|r| *r != "success")
                .map(|r| format!(", service result {r}"))
                .unwrap_or_default();
            Err(format!(
                "{unit}: {verb} {other}{why}, now {state}; see `visdcam logs` for why"
            ))
        }
        None => Err(format!(
            "{unit}: {verb} did not finish within {}s, now {state}",
            JOB_TIMEOUT.as_secs()
        )),
    }
}
