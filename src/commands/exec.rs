//! `distrod exec`: run a command in the container (launching it first if needed) and exit
//! with the command's code.

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExecArgs;
use crate::runtime::{self, enter, interop, state};
use crate::ui::Ui;

pub fn run(args: &ExecArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("exec")?;
    let config = crate::config::load()?;
    // Without --no-launch, go through the launch lock even when it runs: a launch in
    // progress is then waited for (until systemd is ready) instead of raced.
    let st = if args.no_launch {
        state::running().ok_or(runtime::Error::NotRunning)?
    } else {
        super::launch::ensure_running(&config, ui)?
    };
    let cmd = enter::Command {
        argv: args.command.clone(),
        user: args.user.clone(),
        cwd: args.workdir.clone(),
        caller_cwd: std::env::current_dir().ok(),
        caller_env: std::env::vars_os().collect(),
        pass_env: config.pass_env,
        ..Default::default()
    };
    let socket = interop::session_socket(&interop::Caller::current());
    let exit = enter::run(st.pid, &cmd, socket.as_ref(), ui)
        .with_context(|| format!("cannot run {:?} in the container", args.command[0]))?;
    Ok(ExitCode::from((exit.code & 0xff) as u8))
}
