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
    match command {
        Command::Images(args) => images::run(&args, &ui),
        #[cfg(unix)]
        Command::Create(args) => create::run(&args, &ui),
        Command::Pack(args) => pack::run(&args, &ui),
        Command::Portproxy(args) => portproxy::run(&args, &ui),
        #[cfg(windows)]
        Command::InstallDistro(args) => installer::windows::install(&args, &ui),
        #[cfg(windows)]
        Command::List(args) => installer::windows::list(&args, &ui),
        #[cfg(windows)]
        Command::UninstallDistro(args) => installer::windows::uninstall(&args, &ui),
        #[cfg(windows)]
        Command::Start(args) => installer::windows::start(&args, &ui),
        #[cfg(windows)]
        Command::Autostart(args) => installer::windows::autostart(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Launch(args) => launch::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Exec(args) => exec::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Stop(args) => stop::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Status(args) => status::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Enable(args) => enable::enable(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Disable(args) => enable::disable(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Install(args) => install::install(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Update(args) => install::update(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Uninstall(args) => install::uninstall(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Firstboot(args) => firstboot::run(&args, &ui),
    }
}
