//! `distrod exec`: run a command in the container (launching it first if needed) and exit
//! with the command's code.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExecArgs;
use crate::runtime::enter;
use crate::runtime::launch::{Options, Outcome, Until};
use crate::runtime::session::{self, Caller, Failed, Start};
use crate::runtime::state::State;
use crate::ui::Ui;

pub fn run(args: &ExecArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    crate::runtime::require_root("exec")?;
    let config = crate::config::load()?;
    let caller = Caller::current();
    // Without --no-launch, go through the launch lock even when it runs: a launch in
    // progress is then waited for (until systemd is ready) instead of raced.
    let opts = Options::for_sessions(&config, crate::distro::tuning(&config));
    let mut report = |outcome: &Outcome| {
        if !matches!(outcome, Outcome::AlreadyRunning(State { ready: true, .. })) {
            super::launch::report(ui, outcome, Until::Sessions);
        }
    };
    let start = if args.no_launch {
        Start::Running
    } else {
        Start::Launch(&opts, &mut report)
    };
    let cmd = enter::Command {
        argv: args.command.clone(),
        user: args.user.clone(),
        cwd: args.workdir.clone(),
        pass_env: config.pass_env.clone(),
        ..Default::default()
    };
    match session::enter(&caller, start, &cmd, false, ui) {
        Ok(exit) => Ok(exit.exit_code()),
        Err(Failed::Start(e)) if args.no_launch => Err(e.into()),
        Err(Failed::Start(e)) => Err(e).context("cannot launch the container"),
        Err(Failed::Enter(e)) => {
            Err(e).with_context(|| format!("cannot run {:?} in the container", args.command[0]))
        }
    }
}
