//! `distrod install`, `distrod update FILE`, `distrod uninstall`.

use std::process::ExitCode;

use crate::cli::{InstallArgs, UninstallArgs, UpdateArgs};
use crate::distro::install;
use crate::runtime::{self, INSTALLED_BINARY};
use crate::ui::Ui;

pub fn install(_args: &InstallArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("install")?;
    let done = install::install(ui)?;
    for dir in &done.dirs_created {
        ui.status(format_args!("created {}", dir.display()));
    }
    if done.copied {
        ui.status(format_args!("installed {INSTALLED_BINARY} (setuid root)"));
    } else {
        ui.status(format_args!("{INSTALLED_BINARY} is already this binary"));
    }
    for file in &done.files_written {
        ui.status(format_args!("wrote {}", file.display()));
    }
    if done.link_created {
        ui.status(format_args!(
            "linked {} -> {INSTALLED_BINARY}",
            done.link.display()
        ));
    }
    if done.copied || done.link_created || !done.files_written.is_empty() {
        ui.status("distrod is installed; `sudo distrod enable` makes every session use it");
    } else {
        ui.status("distrod was already installed: nothing changed");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn update(args: &UpdateArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("update")?;
    let done = install::update(&args.file, ui)?;
    if done.replaced {
        ui.status(format_args!(
            "updated {INSTALLED_BINARY} to {}; open sessions keep the binary they started \
             with, new ones run this one",
            done.version
        ));
    } else {
        ui.status(format_args!(
            "{INSTALLED_BINARY} already is {}: nothing changed",
            done.version
        ));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(_args: &UninstallArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("uninstall")?;
    install::uninstall(ui)?;
    Ok(ExitCode::SUCCESS)
}
