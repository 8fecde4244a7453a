//! `distrod enable` / `distrod disable`: hook login accounts so that WSL sessions enter
//! the systemd container, and undo it (see `distro::hook` and `distro::accounts`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::{DisableArgs, EnableArgs};
use crate::config::{self, Config};
use crate::distro::{self, accounts, install, logon};
use crate::runtime;
use crate::ui::Ui;

pub fn enable(args: &EnableArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("enable")?;
    let root = Path::new("/");
    if args.accounts_only {
        // The container's reaction to a changed /etc/passwd: only while enabled.
        if accounts::is_enabled(root) {
            accounts::enable(root).context("cannot hook the login accounts")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) =
        distro::enable::native_systemd().or_else(|| distro::enable::without_systemd(root))
    {
        bail!("{why}");
    }
    // Checked before anything is changed.
    let config = config::load()?;
    let write_config = dns_config(&config, &args.dns)?;
    let logon = if args.start_on_windows_boot {
        Some(logon::prepare()?)
    } else {
        None
    };
    // Always (install changes nothing when all is in place): it also puts right a binary
    // placed by hand, which sessions can use only when it is root's and setuid.
    let was_setuid = install::installed_setuid();
    let done = install::install(ui).context("cannot install distrod")?;
    tracing::debug!(?done, "installed");
    if !install::installed_setuid() {
        bail!(
            "{} is not a root-owned setuid file (mode 4755) after installing; sessions could \
             not enter the container: run `sudo distrod install` and look at what it says",
            runtime::INSTALLED_BINARY
        );
    }
    if done.copied || !was_setuid {
        ui.status(format_args!(
            "installed distrod as {} (setuid root)",
            runtime::INSTALLED_BINARY
        ));
    }
    if let Some(c) = write_config {
        write_new_config(&c)?;
        ui.status(format_args!("wrote {} (container.dns)", config::PATH));
    }
    let summary = accounts::enable(root).context("cannot hook the login accounts")?;
    for (user, shell) in &summary.hooked {
        let new = if summary.newly_hooked.contains(user) {
            ""
        } else {
            " (already)"
        };
        ui.status(format_args!(
            "{user}: sessions enter systemd, then run {shell}{new}"
        ));
    }
    for (user, why) in &summary.skipped {
        ui.status(format_args!("{user}: left alone: {why}"));
    }
    if summary.hooked.is_empty() {
        ui.warn(format_args!(
            "no login account was hooked (root and uids in login.defs' UID_MIN..UID_MAX \
             with a shell from /etc/shells are)"
        ));
    }
    if let Some(plan) = &logon {
        let record = logon::enable(plan).with_context(|| {
            format!(
                "enabled, but Windows was not told to start {} at logon",
                plan.distro()
            )
        })?;
        ui.status(format_args!(
            "Windows starts {} and its systemd at logon ({}\\{}); `distrod disable` removes that",
            record.distro,
            logon::RUN_KEY,
            record.value
        ));
    }
    ui.status(format_args!(
        "enabled: the next `wsl -d <distro>` session starts systemd and enters it; `wsl -e \
         CMD` still runs outside; `distrod disable` undoes this"
    ));
    Ok(ExitCode::SUCCESS)
}

/// `--dns`: a new /etc/distrod.toml holding it, unless one exists (then its `dns` must
/// already say the same: distrod does not rewrite the administrator's file).
fn dns_config(config: &Config, dns: &[std::net::IpAddr]) -> anyhow::Result<Option<Config>> {
    if dns.is_empty() || config.dns == dns {
        return Ok(None);
    }
    if Path::new(config::PATH).exists() {
        bail!(
            "{} exists: set `dns = [{}]` under [container] there instead of --dns",
            config::PATH,
            dns.iter()
                .map(|ip| format!("\"{ip}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(Some(Config {
        dns: dns.to_vec(),
        ..config.clone()
    }))
}

fn write_new_config(c: &Config) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(config::PATH)
        .with_context(|| format!("cannot create {}", config::PATH))?;
    f.write_all(config::render(c).as_bytes())
        .and_then(|_| f.sync_all())
        .with_context(|| format!("cannot write {}", config::PATH))
}

pub fn disable(args: &DisableArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("disable")?;
    let was = accounts::is_enabled(Path::new("/"));
    distro::enable::disable(args.keep_running, ui).context("cannot disable distrod")?;
    ui.status(format_args!(
        "{}",
        if was {
            "disabled: login shells are as they were; WSL sessions start outside systemd"
        } else {
            "distrod was not enabled; nothing to restore"
        }
    ));
    Ok(ExitCode::SUCCESS)
}
