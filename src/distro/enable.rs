//! `enable` and `disable` side by side: the checks that must pass before `enable` changes
//! anything, and the work of `disable` (and of `uninstall`, which disables first). The
//! command (`commands::enable`) puts the steps of `enable` together and says what was done:
//! [`super::install`], then [`super::accounts`], then [`super::logon`].

use std::path::Path;
use std::time::Duration;

use super::accounts;
use crate::runtime::{Error, Result, stop};
use crate::ui::Ui;

/// Why `enable` must not run here: WSL's own systemd is (or will be) PID 1.
pub fn native_systemd() -> Option<String> {
    let fix = "set `systemd=false` under [boot] in /etc/wsl.conf, run `wsl --terminate \
               <distro>` from Windows, then `distrod enable` again";
    if let Ok(text) = std::fs::read_to_string("/etc/wsl.conf")
        && crate::wsl::conf::systemd_on(&text)
    {
        return Some(format!(
            "WSL's own systemd is on (`systemd=true` under [boot] in /etc/wsl.conf), and \
                 only one systemd can run the distro: {fix}"
        ));
    }
    if !crate::runtime::inside_container()
        && std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd")
    {
        return Some(format!(
            "systemd already runs as PID 1 here (WSL's own systemd support): {fix}"
        ));
    }
    None
}

/// Why `enable` must not run in the tree at `root`: it would not boot systemd in the
/// container ([`crate::initsys`]); every session would otherwise run outside, after an
/// error. One line, with the distro's way to get systemd.
pub fn without_systemd(root: &Path) -> Option<String> {
    crate::initsys::check_dir(root)
        .err()
        .map(|no| format!("cannot enable distrod in this distro: {no}; nothing was changed"))
}

/// `disable`'s work: the shells back as they were, then the container stopped unless
/// `keep_running` or this runs inside it (which a stop would end).
pub fn disable(keep_running: bool, ui: &Ui) -> Result<()> {
    let restored = accounts::disable(Path::new("/"))?;
    tracing::debug!(?restored, "accounts restored");
    match super::logon::disable() {
        Ok(Some(record)) => ui.status(format_args!(
            "Windows no longer starts {} at logon",
            record.distro
        )),
        Ok(None) => {}
        Err(e) => ui.warn(e),
    }
    if keep_running {
        return Ok(());
    }
    if crate::runtime::inside_container() {
        ui.warn(format_args!(
            "the container keeps running until `distrod stop` from outside it (`wsl -e \
             /opt/distrod/bin/distrod stop`) or until WSL shuts the distro down"
        ));
        return Ok(());
    }
    match stop::stop(false, Duration::from_secs(30))? {
        stop::Outcome::Stopped { pid, .. } => {
            ui.status(format_args!("stopped the container (systemd pid {pid})"))
        }
        stop::Outcome::NotRunning => {}
    }
    Ok(())
}

/// What `uninstall` does first: restore the shells and stop the container.
pub fn disable_for_uninstall(ui: &Ui) -> Result<()> {
    if crate::runtime::inside_container() {
        return Err(Error::Other(
            "cannot uninstall from inside the container".into(),
        ));
    }
    disable(false, ui)
}
