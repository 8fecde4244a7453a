//! `distrod launch`: start the container (once) and say how it went.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::LaunchArgs;
use crate::runtime::launch::{self, Options, Outcome, Until};
use crate::runtime::session;
use crate::ui::Ui;

pub fn run(args: &LaunchArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    crate::runtime::require_root("launch")?;
    let config = crate::config::load()?;
    let mut tuning = crate::distro::tuning(&config);
    if !args.dns.is_empty() {
        tuning.dns = args.dns.clone();
    }
    let opts = Options {
        rootfs: args.rootfs.clone(),
        wait: (!args.no_wait).then(|| Duration::from_secs(args.timeout)),
        until: Until::Booted,
        idle: launch::idle_options(&config),
        tuning,
    };
    let outcome = session::launch_showing(&opts).context("cannot launch the container")?;
    report(ui, &outcome, opts.until);
    if args.keep_alive {
        let (Outcome::Started { state, .. } | Outcome::AlreadyRunning(state)) = &outcome;
        wait_for_exit(state.pid);
        ui.status("the container stopped");
    }
    Ok(ExitCode::SUCCESS)
}

/// Blocks until the process `pid` (the container's systemd) has exited: on its pidfd, or
/// by polling where pidfds are missing (kernels before 5.3).
fn wait_for_exit(pid: i32) {
    if let Ok(fd) = crate::runtime::sys::pidfd_open(pid) {
        crate::runtime::sys::wait_exited(&fd, Duration::MAX);
        return;
    }
    while nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok() {
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Says how a launch went (`distrod launch`, and `distrod exec` when it launched).
pub(super) fn report(ui: &Ui, outcome: &Outcome, until: Until) {
    match outcome {
        Outcome::Started {
            state,
            elapsed,
            ready: true,
        } if until == Until::Sessions => ui.status(format_args!(
            "systemd is up in the container (pid {}, sessions may enter after {:.2} s; the \
             boot goes on)",
            state.pid,
            elapsed.as_secs_f64()
        )),
        Outcome::Started {
            state,
            elapsed,
            ready: true,
        } => ui.status(format_args!(
            "systemd is running in the container (pid {}, {:.2} s)",
            state.pid,
            elapsed.as_secs_f64()
        )),
        Outcome::Started { state, .. } => ui.status(format_args!(
            "systemd is starting in the container (pid {}; `distrod status` follows it)",
            state.pid
        )),
        Outcome::AlreadyRunning(state) if !state.ready => ui.status(format_args!(
            "systemd is still starting in the container (pid {}; `distrod status` follows it)",
            state.pid
        )),
        Outcome::AlreadyRunning(state) => ui.status(format_args!(
            "systemd is already running in the container (pid {})",
            state.pid
        )),
    }
}
