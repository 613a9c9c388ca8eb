//! `uploader <camera>`: uploads one camera's closed segments from the RAM disk to the bucket
//! (Backblaze B2 or any S3 API), deleting each only after the store confirmed its MD5.
//!
//! Exit codes: 0 after SIGTERM/SIGINT, 64 for a usage error, 78 (EX_CONFIG) for a configuration
//! error, 1 when the RAM directory cannot be set up.

mod run;

use std::process::ExitCode;

use visdcam_core::error::{Classify, ErrorKind};

const USAGE: &str = "usage: uploader <camera>

Uploads the closed segments of one camera (RAM_DIR/<camera>/seg-*.ts) to the bucket set by
B2_ENDPOINT and B2_BUCKET, oldest first, and deletes each once the store confirmed it.
Configuration: /etc/visdcam/visdcam.conf and /etc/visdcam/cameras/<camera>.conf
(VISDCAM_CONFIG_DIR overrides the directory). Credentials: aws-cli credentials file, profile
B2_PROFILE (default b2), from $CREDENTIALS_DIRECTORY/aws-credentials, AWS_SHARED_CREDENTIALS_FILE
or ~/.aws/credentials. Run as uploader@<camera>.service.

options:
  -h, --help     this text
  -V, --version  the version";

const EX_USAGE: u8 = 64;
const EX_CONFIG: u8 = 78;

fn parse_args() -> Result<Option<String>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut camera = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => {
                println!("{USAGE}");
                return Ok(None);
            }
            Short('V') | Long("version") => {
                println!("uploader {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            Value(v) if camera.is_none() => {
                camera = Some(
                    v.into_string()
                        .map_err(|_| "the camera name is not UTF-8".to_string())?,
                )
            }
            Value(v) => return Err(format!("unexpected argument `{}`", v.to_string_lossy())),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    camera
        .map(Some)
        .ok_or_else(|| "missing the camera name".to_string())
}

fn main() -> ExitCode {
    let camera = match parse_args() {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("uploader: {e}\n{USAGE}");
            return ExitCode::from(EX_USAGE);
        }
    };
    let settings = match visdcam_daemon::config::load_camera(&camera) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "uploader: {}",
                visdcam_daemon::error_chain(&e as &dyn std::error::Error)
            );
            return ExitCode::from(match e.kind() {
                ErrorKind::Config => EX_CONFIG,
                _ => 1,
            });
        }
    };
    visdcam_daemon::logging::init(
        "uploader",
        Some(&camera),
        visdcam_daemon::logging::level_from(&settings.log_level),
    );
    let missing = |key: &str| {
        log::error!(
            "{key} is not set: the uploader needs it (in visdcam.conf or the camera's file)"
        );
        ExitCode::from(EX_CONFIG)
    };
    let Some(endpoint) = settings.b2_endpoint.clone() else {
        return missing("B2_ENDPOINT");
    };
    let Some(bucket) = settings.b2_bucket.clone() else {
        return missing("B2_BUCKET");
    };
    let cfg = visdcam_s3::StoreConfig {
        endpoint,
        bucket,
        style: settings.b2_addressing_style,
        region: settings.b2_region.clone(),
        profile: settings.b2_profile.clone(),
        dscp: settings.upload_dscp,
        object_lock: settings.object_lock,
    };
    if let Err(e) = visdcam_s3::check_config(&cfg) {
        log::error!("{e}");
        return ExitCode::from(EX_CONFIG);
    }
    if let Err(e) = visdcam_daemon::shutdown::install() {
        log::error!("installing signal handlers: {e}");
        return ExitCode::from(1);
    }
    let clock = visdcam_daemon::clock::ClockSource::from_env();
    clock.warn_if_test();
    if let Some(lock) = settings.object_lock {
        log::info!(
            "OBJECT_LOCK_DAYS={}: every upload is locked against deletion and overwriting for \
             {} days from its upload ({} mode)",
            lock.days,
            lock.days,
            lock.mode
        );
    }
    if !settings.require_clock_sync {
        log::info!("REQUIRE_CLOCK_SYNC=no: uploading without waiting for clock sync");
    }
    let store = visdcam_s3::Store::new(cfg, visdcam_s3::Locations::from_env());
    let mut uploader = match run::Uploader::new(&camera, settings, store, clock) {
        Ok(u) => u,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(1);
        }
    };
    uploader.run();
    ExitCode::SUCCESS
}
