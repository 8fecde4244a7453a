//! `distrod stop`: power the container off and clean up after it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::StopArgs;
use crate::runtime::stop::{self, Outcome};
use crate::ui::Ui;

pub fn run(args: &StopArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    crate::runtime::require_root("stop")?;
    let outcome = stop::stop(args.force, Duration::from_secs(args.timeout))
        .context("cannot stop the container")?;
    match outcome {
        Outcome::NotRunning => ui.status("the container is not running"),
        Outcome::Stopped {
            pid,
            elapsed,
            killed,
        } => ui.status(format_args!(
            "systemd {} (pid {pid}, {:.2} s)",
            if killed { "was killed" } else { "powered off" },
            elapsed.as_secs_f64()
        )),
    }
    Ok(ExitCode::SUCCESS)
}
