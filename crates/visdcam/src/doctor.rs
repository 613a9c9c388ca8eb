//! `doctor`: every check in one go, one line per check, ✔ or ✘ with the fix. Configuration,
//! bucket credentials (present, and accepted by a signed HEAD on the bucket), clock
//! synchronisation, each camera's MJPEG stream, the RAM disk, GStreamer plugins, units enabled
//! and where logs go.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use visdcam_core::cli::{format_size, LogStorage};
use visdcam_core::config::{AddressingStyle, Settings};
use visdcam_core::units::{self, camera_units};
use visdcam_daemon::config::{load_camera_from, load_global_from};

use crate::fail::{self, Failure};
use crate::ram::fs_info;
use crate::systemd::Systemd;
use crate::Ctx;

/// GStreamer elements the recorder's pipeline needs, and the package that ships each.
const ELEMENTS: &[(&str, &str)] = &[
    ("souphttpsrc", "gstreamer1.0-plugins-good"),
    ("multipartdemux", "gstreamer1.0-plugins-good"),
    ("jpegdec", "gstreamer1.0-plugins-good"),
    ("videoconvert", "gstreamer1.0-plugins-base"),
    ("x264enc", "gstreamer1.0-plugins-ugly"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("mpegtsmux", "gstreamer1.0-plugins-bad"),
];

/// Where the uploader's credentials file is looked for: the package's place for it, then
/// systemd's credential stores, as `LoadCredential=aws-credentials:visdcam-aws-credentials` in
/// uploader@.service finds it (/usr/lib/credstore/ links to /etc/visdcam/aws-credentials).
const CREDSTORE: &[&str] = &[
    "/etc/visdcam/aws-credentials",
    "/etc/credstore/visdcam-aws-credentials",
    "/run/credstore/visdcam-aws-credentials",
    "/usr/lib/credstore/visdcam-aws-credentials",
];

const TIMEOUT: Duration = Duration::from_secs(5);

struct Report {
    failed: usize,
}

impl Report {
    fn ok(&mut self, what: impl AsRef<str>) {
        println!("✔ {}", what.as_ref());
    }

    fn bad(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.failed += 1;
        println!("✘ {}\n    fix: {}", what.as_ref(), fix.as_ref());
    }

    fn check(&mut self, result: Result<String, (String, String)>) {
        match result {
            Ok(what) => self.ok(what),
            Err((what, fix)) => self.bad(what, fix),
        }
    }
}

pub fn run(ctx: &Ctx) -> fail::Result<()> {
    let mut r = Report { failed: 0 };
    let dir = ctx.dir_str();

    // Configuration.
    let global = match load_global_from(&ctx.dir) {
        Ok(g) => {
            r.ok(format!("configuration: {dir}/visdcam.conf is valid"));
            Some(g)
        }
        Err(e) => {
            r.bad(
                format!("configuration: {}", visdcam_daemon::error_chain(&e)),
                "edit the file at that line (docs/reference/config.md lists every key)",
            );
            None
        }
    };
    let mut cameras: Vec<Settings> = Vec::new();
    if ctx.known.is_empty() {
        r.bad(
            format!("cameras: none configured in {dir}/cameras/"),
            format!("copy {dir}/cameras/cam1.conf.example to {dir}/cameras/cam1.conf and set CAMERA_URL"),
        );
    }
    for cam in &ctx.known {
        match load_camera_from(&ctx.dir, cam) {
            Ok(s) => {
                r.ok(format!("configuration: camera {cam} is valid"));
                cameras.push(s);
            }
            Err(e) => r.bad(
                format!("configuration: {}", visdcam_daemon::error_chain(&e)),
                "edit the file at that line (docs/reference/config.md lists every key)",
            ),
        }
    }

    // Credentials and bucket.
    if let Some(g) = cameras.first().or(global.as_ref()) {
        r.check(check_bucket(g));
    }

    // Clock, systemd units, logs.
    let sd = Systemd::connect();
    match &sd {
        Ok(sd) => r.check(check_clock(sd)),
        Err(e) => r.bad(
            format!("systemd: {}", e.message),
            "run doctor on the Pi itself, where systemd is PID 1",
        ),
    }

    // Cameras streaming.
    for s in &cameras {
        r.check(check_stream(s));
    }

    // RAM disk.
    if let Some(g) = cameras.first().or(global.as_ref()) {
        r.check(check_ram_disk(g, &cameras));
    }

    // GStreamer.
    r.check(check_gstreamer());

    if let Ok(sd) = &sd {
        let mut units: Vec<String> = ctx.known.iter().flat_map(|c| camera_units(c)).collect();
        units.push(units::DAYNIGHT_TIMER.into());
        units.push(units::SHAPER_SERVICE.into());
        for u in units {
            match sd.unit_info(&u) {
                Ok(i) if i.unit_file_state == "enabled" => r.ok(format!(
                    "{u}: enabled, {} ({})",
                    i.active_state, i.sub_state
                )),
                Ok(i) if i.load_state != "loaded" => r.bad(
                    format!("{u}: {}", i.load_state),
                    "install the visdcam package (sudo apt install ./visdcam_*.deb)",
                ),
                Ok(i) => r.bad(
                    format!(
                        "{u}: {} at boot, {}",
                        if i.unit_file_state.is_empty() {
                            "unknown"
                        } else {
                            &i.unit_file_state
                        },
                        i.active_state
                    ),
                    match u.split_once('@') {
                        Some((_, inst)) => format!(
                            "sudo visdcam enable {} --now",
                            inst.trim_end_matches(".service")
                        ),
                        None => format!("enable {u} (it ships enabled; was it disabled by hand?)"),
                    },
                ),
                Err(e) => r.bad(format!("{u}: {}", e.message), "see the message"),
            }
        }
    }

    let storage = crate::ramlogs::current_storage();
    match storage {
        LogStorage::Persistent => r.ok(format!(
            "logs: kept {} — `sudo visdcam ramlogs on` keeps them in RAM",
            storage.describe()
        )),
        _ => r.ok(format!("logs: kept {}", storage.describe())),
    }

    if r.failed > 0 {
        return Err(Failure::failed(format!("{} check(s) failed", r.failed)));
    }
    println!("all checks passed");
    Ok(())
}

type Check = Result<String, (String, String)>;

fn credentials_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("VISDCAM_CREDENTIALS").filter(|p| !p.is_empty()) {
        return Some(p.into());
    }
    CREDSTORE.iter().map(PathBuf::from).find(|p| p.exists())
}

/// Key and secret of `profile` in an aws-cli style credentials file.
fn profile_keys(text: &str, profile: &str) -> Option<(String, String)> {
    let (mut key, mut secret, mut inside) = (None, None, false);
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name == format!("profile {profile}");
        } else if inside {
            if let Some((k, v)) = t.split_once('=') {
                match k.trim() {
                    "aws_access_key_id" => key = Some(v.trim().to_string()),
                    "aws_secret_access_key" => secret = Some(v.trim().to_string()),
                    _ => {}
                }
            }
        }
    }
    Some((key?, secret?))
}

fn check_bucket(s: &Settings) -> Check {
    let (Some(endpoint), Some(bucket)) = (&s.b2_endpoint, &s.b2_bucket) else {
        return Err((
            "bucket: B2_ENDPOINT and B2_BUCKET are not both set".into(),
            "set them in /etc/visdcam/visdcam.conf".into(),
        ));
    };
    let Some(path) = credentials_path() else {
        return Err((
            format!("credentials: none of {} exists", CREDSTORE.join(", ")),
            format!(
                "put an aws-cli style file with a [{}] profile (aws_access_key_id, \
                 aws_secret_access_key) at {} (mode 0600)",
                s.b2_profile, CREDSTORE[0]
            ),
        ));
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        (
            format!("credentials: cannot read {}: {e}", path.display()),
            "run doctor with sudo".into(),
        )
    })?;
    let Some((key, secret)) = profile_keys(&text, &s.b2_profile) else {
        return Err((
            format!(
                "credentials: no [{}] profile with aws_access_key_id and aws_secret_access_key in {}",
                s.b2_profile,
                path.display()
            ),
            "add them, or set B2_PROFILE to the profile's name".into(),
        ));
    };
    let style = match s.b2_addressing_style {
        AddressingStyle::Path => rusty_s3::UrlStyle::Path,
        AddressingStyle::VirtualHost => rusty_s3::UrlStyle::VirtualHost,
    };
    let region = s.b2_region.clone().unwrap_or_else(|| "us-east-1".into());
    let endpoint_url = endpoint.parse().map_err(|e| {
        (
            format!("bucket: B2_ENDPOINT {endpoint}: {e}"),
            "fix B2_ENDPOINT".into(),
        )
    })?;
    let b = rusty_s3::Bucket::new(endpoint_url, style, bucket.clone(), region).map_err(|e| {
        (
            format!("bucket: {bucket} at {endpoint}: {e}"),
            "fix B2_BUCKET / B2_ADDRESSING_STYLE".into(),
        )
    })?;
    let creds = rusty_s3::Credentials::new(key, secret);
    let url = rusty_s3::S3Action::sign(&b.head_bucket(Some(&creds)), Duration::from_secs(60));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    match agent.head(url.as_str()).call() {
        Ok(resp) if resp.status().is_success() => Ok(format!(
            "credentials: {} profile [{}] accepted by bucket {bucket} at {endpoint}",
            path.display(),
            s.b2_profile
        )),
        Ok(resp) => {
            let code = resp.status().as_u16();
            let fix = match code {
                403 => "check the key id and secret, and that the key may access this bucket",
                404 => "check B2_BUCKET (no such bucket)",
                301 | 400 => "check B2_REGION and B2_ENDPOINT (wrong region?)",
                _ => "check B2_ENDPOINT and the bucket's state",
            };
            Err((
                format!("credentials: HEAD bucket {bucket} at {endpoint} answered {code}"),
                fix.into(),
            ))
        }
        Err(e) => Err((
            format!("bucket: cannot reach {endpoint}: {e}"),
            "check the network and B2_ENDPOINT".into(),
        )),
    }
}

fn check_clock(sd: &Systemd) -> Check {
    let synced = sd
        .other_property(
            "org.freedesktop.timedate1",
            "/org/freedesktop/timedate1",
            "org.freedesktop.timedate1",
            "NTPSynchronized",
        )
        .ok()
        .and_then(|v| bool::try_from(v).ok())
        .unwrap_or_else(|| std::path::Path::new("/run/systemd/timesync/synchronized").exists());
    if synced {
        Ok("clock: synchronised".into())
    } else {
        Err((
            "clock: not synchronised (a Pi has no battery clock; uploads wait for it)".into(),
            "check the network; `timedatectl timesync-status` shows what systemd-timesyncd does"
                .into(),
        ))
    }
}

fn check_stream(s: &Settings) -> Check {
    let cam = s.camera.clone().unwrap_or_default();
    let Some(url) = &s.camera_url else {
        return Err((
            format!("camera {cam}: no CAMERA_URL"),
            "set CAMERA_URL".into(),
        ));
    };
    let url = url.to_string();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(TIMEOUT))
        .timeout_recv_response(Some(TIMEOUT))
        .timeout_recv_body(Some(TIMEOUT))
        .http_status_as_error(false)
        .build()
        .into();
    let unreachable = |e: String| {
        (
            format!("camera {cam}: {url}: {e}"),
            "check the camera's power and Wi-Fi, and CAMERA_URL (another viewer open? the \
             firmware serves one stream at a time)"
                .to_string(),
        )
    };
    let mut resp = agent
        .get(&url)
        .call()
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if status != 200 || !ctype.starts_with("multipart/x-mixed-replace") {
        return Err(unreachable(format!(
            "answered {status} {ctype:?}, not an MJPEG stream (multipart/x-mixed-replace)"
        )));
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    let mut reader = resp.body_mut().as_reader();
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(unreachable(format!("stream broke: {e}"))),
        }
        if buf[..got].windows(3).any(|w| w == [0xff, 0xd8, 0xff]) {
            return Ok(format!("camera {cam}: {url} is streaming MJPEG"));
        }
    }
    Err(unreachable(format!(
        "no JPEG frame in the first {} of the stream",
        format_size(got as u64)
    )))
}

fn check_ram_disk(g: &Settings, cameras: &[Settings]) -> Check {
    let path = &g.ram_dir;
    let Some(fs) = fs_info(path) else {
        return Err((
            format!("RAM disk: {} does not exist", path.display()),
            "install the visdcam package (it mounts a tmpfs there: mnt-ramcam.mount)".into(),
        ));
    };
    if fs.mounted_fstype.as_deref() != Some("tmpfs")
        && fs.mounted_fstype.as_deref() != Some("ramfs")
    {
        return Err((
            format!(
                "RAM disk: {} is not a tmpfs mount ({}): segments would wear the SD card",
                path.display(),
                fs.mounted_fstype.as_deref().unwrap_or("not a mount point")
            ),
            "sudo systemctl enable --now mnt-ramcam.mount".into(),
        ));
    }
    let min_free = g.ram_min_free_bytes();
    let budgets: u64 = cameras.iter().map(Settings::ram_budget_bytes).sum();
    let used = fs.size_bytes.saturating_sub(fs.free_bytes);
    if fs.size_bytes < budgets + min_free {
        return Err((
            format!(
                "RAM disk: {} is {} but the cameras' budgets plus RAM_MIN_FREE_MB need {}",
                path.display(),
                format_size(fs.size_bytes),
                format_size(budgets + min_free)
            ),
            "lower RAM_BUDGET_MB, or make the tmpfs bigger (a drop-in for mnt-ramcam.mount)".into(),
        ));
    }
    if fs.free_bytes < min_free {
        return Err((
            format!("RAM disk: only {} free", format_size(fs.free_bytes)),
            "uploads are behind; `visdcam lsram all` shows the queue, `visdcam status` why".into(),
        ));
    }
    Ok(format!(
        "RAM disk: {} tmpfs, {} used, {} free",
        path.display(),
        format_size(used),
        format_size(fs.free_bytes)
    ))
}

fn check_gstreamer() -> Check {
    let mut missing = Vec::new();
    for (element, package) in ELEMENTS {
        let ok = Command::new("gst-inspect-1.0")
            .args(["--exists", element])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match ok {
            Ok(s) if s.success() => {}
            Ok(_) => missing.push((*element, *package)),
            Err(e) => {
                return Err((
                    format!("GStreamer: cannot run gst-inspect-1.0: {e}"),
                    "sudo apt install gstreamer1.0-tools".into(),
                ))
            }
        }
    }
    if missing.is_empty() {
        return Ok(format!(
            "GStreamer: {} present",
            ELEMENTS.iter().map(|e| e.0).collect::<Vec<_>>().join(", ")
        ));
    }
    let mut pkgs: Vec<&str> = missing.iter().map(|m| m.1).collect();
    pkgs.dedup();
    Err((
        format!(
            "GStreamer: missing {}",
            missing.iter().map(|m| m.0).collect::<Vec<_>>().join(", ")
        ),
        format!("sudo apt install {}", pkgs.join(" ")),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n\
                    [b2]\naws_access_key_id=K2\n# c\naws_secret_access_key = S2\nregion=x\n";
        assert_eq!(profile_keys(text, "b2"), Some(("K2".into(), "S2".into())));
        assert_eq!(
            profile_keys(text, "default"),
            Some(("A".into(), "B".into()))
        );
        assert_eq!(profile_keys(text, "other"), None);
        assert_eq!(profile_keys("[b2]\naws_access_key_id=K\n", "b2"), None);
    }
}
