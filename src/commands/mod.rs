//! One module per subcommand. Commands orchestrate the library modules and talk to the user
//! through [`Ui`]; they make no system calls of their own.

#[cfg(unix)]
mod create;
#[cfg(target_os = "linux")]
mod enable;
#[cfg(target_os = "linux")]
mod exec;
pub mod fetch;
#[cfg(target_os = "linux")]
mod firstboot;
mod images;
#[cfg(target_os = "linux")]
mod install;
pub mod installer;
#[cfg(target_os = "linux")]
mod launch;
mod pack;
pub mod portproxy;
#[cfg(target_os = "linux")]
pub mod status;
#[cfg(target_os = "linux")]
mod stop;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::ui::Ui;

/// `match` on a [`Command`]: the variants in groups, each group under the `cfg` of the
/// systems that have its commands, each variant with the function that runs its arguments.
macro_rules! dispatch {
    ($command:expr, $ui:expr, $(#[cfg($system:meta)] { $($variant:ident => $run:path,)+ })+) => {
        match $command {
            $($(
                #[cfg($system)]
                Command::$variant(args) => $run(&args, $ui),
            )+)+
        }
    };
}

/// Runs the command `cli` names (none: the installer wizard on Windows, the help and exit
/// status 2 elsewhere), giving the process's exit status; an error is for `main` to print.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(cli.quiet);
    let Some(command) = cli.command else {
        #[cfg(windows)]
        return installer::windows::wizard(&ui);
        #[cfg(not(windows))]
        {
            use clap::CommandFactory;
            Cli::command().print_help()?;
            return Ok(ExitCode::from(2));
        }
    };
    dispatch!(command, &ui,
        // Every system.
        #[cfg(all())] {
            Images => images::run,
            Pack => pack::run,
            Portproxy => portproxy::run,
        }
        #[cfg(unix)] {
            Create => create::run,
        }
        #[cfg(windows)] {
            InstallDistro => installer::windows::install,
            List => installer::windows::list,
            UninstallDistro => installer::windows::uninstall,
            Start => installer::windows::start,
            Autostart => installer::windows::autostart,
        }
        #[cfg(target_os = "linux")] {
            Launch => launch::run,
            Exec => exec::run,
            Stop => stop::run,
            Status => status::run,
            Enable => enable::enable,
            Disable => enable::disable,
            Install => install::install,
            Update => install::update,
            Uninstall => install::uninstall,
            Firstboot => firstboot::run,
        }
    )
}
