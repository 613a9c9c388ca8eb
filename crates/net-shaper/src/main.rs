//! `net-shaper apply|clear|status [--dev IFACE] [--rate RATE]`: caps visdcam's DSCP-marked
//! upload traffic on one interface with a tc HTB tree, leaving all other traffic unshaped.
//! The plan comes from `visdcam_core::tcplan`; this binary reads configuration, runs `tc` and
//! reports.

mod error;
mod shaper;
mod tc;

use std::process::ExitCode;

use visdcam_core::error::{Classify, ErrorKind};
use visdcam_core::tcplan::{self, Shaper};

use crate::error::Error;
use crate::shaper::Status;
use crate::tc::Tc;

const HELP: &str = "\
net-shaper: cap visdcam's upload traffic on the uplink (tc HTB, DSCP match)

usage: net-shaper apply|clear|status [--dev IFACE] [--rate RATE]

  apply    install the shaper (again: same result); rolls back on any failure
  clear    remove it and put back the root qdisc the interface had before
  status   print the plan, whether it is installed, and per-class counters
           (exit 0 installed, 3 not installed)

  --dev IFACE   interface (default: SHAPER_DEV, else the default route's interface)
  --rate RATE   cap for marked traffic, e.g. 3mbit, 500kbit, 375kbps (default: SHAPER_RATE)

Configuration: $VISDCAM_CONFIG_DIR/visdcam.conf (default /etc/visdcam/visdcam.conf):
SHAPER_RATE, SHAPER_DEV, and UPLOAD_DSCP (the mark the uploader puts on its sockets).
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Apply,
    Clear,
    Status,
}

struct Args {
    action: Action,
    dev: Option<String>,
    rate: Option<u64>,
}

enum Parsed {
    Run(Args),
    Help,
    Version,
}

fn parse_args() -> Result<Parsed, Error> {
    use lexopt::prelude::*;
    let usage = |e: lexopt::Error| Error::Usage(e.to_string());
    let mut parser = lexopt::Parser::from_env();
    let mut action = None;
    let mut dev = None;
    let mut rate = None;
    while let Some(arg) = parser.next().map_err(usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Long("dev") => dev = Some(parser.value().map_err(usage)?.string().map_err(usage)?),
            Long("rate") => {
                let v = parser.value().map_err(usage)?.string().map_err(usage)?;
                rate =
                    Some(tcplan::parse_rate(&v).map_err(|m| Error::Usage(format!("--rate: {m}")))?);
            }
            Value(v) if action.is_none() => {
                let v = v.string().map_err(usage)?;
                action = Some(match v.as_str() {
                    "apply" => Action::Apply,
                    "clear" => Action::Clear,
                    "status" => Action::Status,
                    _ => {
                        return Err(Error::Usage(format!(
                            "unknown command `{v}` (apply, clear or status)"
                        )))
                    }
                });
            }
            other => return Err(usage(other.unexpected())),
        }
    }
    let action =
        action.ok_or_else(|| Error::Usage("missing command: apply, clear or status".into()))?;
    Ok(Parsed::Run(Args { action, dev, rate }))
}

/// What the shaper takes from the configuration files.
struct Config {
    rate_bps: u64,
    dev: Option<String>,
    dscp: Option<u8>,
}

/// Loads the global configuration (`$VISDCAM_CONFIG_DIR/visdcam.conf`); errors carry
/// `file:line`.
fn load_config() -> Result<Config, Error> {
    let s = visdcam_daemon::config::load_global()
        .map_err(|e| Error::Config(visdcam_daemon::error_chain(&e)))?;
    Ok(Config {
        rate_bps: s.shaper_rate_bps,
        dev: s.shaper_dev.filter(|d| !d.is_empty()),
        dscp: s.upload_dscp,
    })
}

fn run(args: Args) -> Result<ExitCode, Error> {
    let config = load_config()?;
    let dev = match args.dev.or(config.dev) {
        Some(d) => d,
        None => shaper::default_device()?,
    };
    tcplan::validate_device(&dev).map_err(Error::Plan)?;
    let tc = Tc::find();
    if args.action == Action::Clear {
        let msg = shaper::clear(&tc, &dev)?;
        log::info!("{msg}");
        return Ok(ExitCode::SUCCESS);
    }
    let dscp = config.dscp.ok_or_else(|| {
        Error::Config(
            "UPLOAD_DSCP is `none`: uploads are not marked, so there is nothing for net-shaper \
             to tell apart; set UPLOAD_DSCP=cs1"
                .to_string(),
        )
    })?;
    let plan =
        Shaper::new(&dev, args.rate.unwrap_or(config.rate_bps), dscp).map_err(Error::Plan)?;
    match args.action {
        Action::Apply => {
            shaper::apply(&tc, &plan)?;
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => Ok(match shaper::status(&tc, &plan)? {
            Status::Installed => ExitCode::SUCCESS,
            Status::NotInstalled => ExitCode::from(3),
        }),
        Action::Clear => unreachable!("handled above"),
    }
}

fn main() -> ExitCode {
    visdcam_daemon::logging::init("net-shaper", None, log::LevelFilter::Info);
    let result = parse_args().and_then(|p| match p {
        Parsed::Help => {
            print!("{HELP}");
            Ok(ExitCode::SUCCESS)
        }
        Parsed::Version => {
            println!("net-shaper {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Parsed::Run(args) => run(args),
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            log::error!("{}", visdcam_daemon::error_chain(&e));
            match e.kind() {
                ErrorKind::Config => ExitCode::from(2),
                ErrorKind::Retry | ErrorKind::Fatal => ExitCode::from(1),
            }
        }
    }
}
