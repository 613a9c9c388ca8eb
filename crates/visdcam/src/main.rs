//! `visdcam`: the command a Pi owner types. Parses the command line, runs one command and maps
//! its failure to a documented exit status (see [`fail::Exit`]).

mod alert;
mod args;
mod cameras;
mod doctor;
mod fail;
mod footage;
mod join;
mod metrics;
mod migrate;
mod monitor;
mod ram;
mod ramlogs;
mod status;
mod systemd;
mod top;
mod units;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use args::Command;
use fail::{Exit, Failure};
use visdcam_core::cli::{no_cameras, resolve_targets};
use visdcam_daemon::config::{config_dir, list_cameras};

/// The configuration directory and the cameras configured in it.
pub struct Ctx {
    pub dir: PathBuf,
    pub known: Vec<String>,
}

impl Ctx {
    fn load() -> fail::Result<Ctx> {
        let dir = config_dir();
        let known = list_cameras(&dir)?;
        Ok(Ctx { dir, known })
    }

    pub fn dir_str(&self) -> String {
        self.dir.display().to_string()
    }

    /// Expands targets; no targets at all means every camera when `empty_means_all`.
    pub fn targets(&self, targets: &[String], empty_means_all: bool) -> fail::Result<Vec<String>> {
        if targets.is_empty() && empty_means_all {
            return Ok(self.known.clone());
        }
        resolve_targets(targets, &self.known, &self.dir_str()).map_err(|m| {
            if m == no_cameras(&self.dir_str()) {
                Failure::config(m)
            } else {
                Failure::usage(m)
            }
        })
    }
}

fn run(cmd: Command) -> fail::Result<()> {
    match cmd {
        Command::Help(None) => {
            print!("{}", args::main_help());
            Ok(())
        }
        Command::Help(Some(name)) => {
            let help = args::command_help(name).expect("parser only returns known commands");
            print!("{}", args::help_for(help));
            Ok(())
        }
        Command::Version => {
            println!("visdcam {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Status { cameras, json } => status::run(&Ctx::load()?, &cameras, json),
        Command::Units { action, targets } => units::control(&Ctx::load()?, action, &targets),
        Command::Logs {
            target,
            follow,
            lines,
        } => units::logs(&Ctx::load()?, &target, follow, lines),
        Command::Lsram { targets, json } => ram::lsram(&Ctx::load()?, &targets, json),
        Command::Clean {
            targets,
            older_than,
            yes,
        } => ram::clean(&Ctx::load()?, &targets, older_than, yes),
        Command::Getdur { targets } => cameras::getdur(&Ctx::load()?, &targets),
        Command::Setdur { camera, seconds } => cameras::setdur(&Ctx::load()?, &camera, seconds),
        Command::Enable {
            enable,
            targets,
            now,
        } => units::enable(&Ctx::load()?, enable, &targets, now),
        Command::Cameras { json } => cameras::list(&Ctx::load()?, json),
        Command::Preset { target, preset } => cameras::preset(&Ctx::load()?, &target, &preset),
        Command::Doctor => doctor::run(&Ctx::load()?),
        Command::Ramlogs(action) => ramlogs::run(action),
        Command::Footage(a) => footage::run(&Ctx::load()?, a),
        Command::Migrate(a) => migrate::run(&Ctx::load()?, &a),
        Command::Web => web::serve(Ctx::load()?),
        Command::WebPassword => web::password::run(&Ctx::load()?),
        Command::Metrics { http } => metrics::run(&Ctx::load()?, http),
        Command::Alert(action) => alert::run(&Ctx::load()?, action),
        Command::Top { once } => top::run(&Ctx::load()?, once),
    }
}

fn main() -> ExitCode {
    // Linked as a systemd generator (visdcam-web.socket's address from WEB_LISTEN).
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0)
        .file_name()
        .is_some_and(|n| n == web::GENERATOR)
    {
        let rest: Vec<_> = std::env::args_os().skip(1).collect();
        return web::generator(&rest);
    }
    let cmd = match args::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("visdcam: {e}");
            return ExitCode::from(Exit::Usage as u8);
        }
    };
    match run(cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("visdcam: {}", f.message);
            }
            ExitCode::from(f.exit as u8)
        }
    }
}
