//! `distrod.exe`'s commands: the wizard, `install`, `list`, `uninstall`, `start`,
//! `autostart`. Each resolves its answers (flags, then questions on a terminal), then calls
//! the flow of [`crate::installer`] through the real [`System`] WSL.

use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use super::wizard;
use crate::account;
use crate::cli::{
    AutostartAction, AutostartArgs, CacheArgs, DistroInstallArgs, DistroUninstallArgs, ImageArgs,
    ListArgs, ServerArgs, StartArgs,
};
use crate::embedded;
use crate::image::catalog::ImageSpec;
use crate::image::fetch::{Candidate, ImageRequest, Server, candidates, fetch};
use crate::image::http::Http;
use crate::image::repack::{self, Extras};
use crate::installer::{
    self, Choice, DEFAULT_NAME, Plan, check_location, check_name, check_name_free, choices,
    default_location, left_out_line,
};
use crate::interrupt;
use crate::ui::{Ui, human_bytes};
use crate::windows::{autostart::RunKey, console};
use crate::wsl::logon::Autostart;
use crate::wsl::{System, Wsl};

/// What `start` runs in the distro, through the default user's login shell (distrod's
/// hook, which launches the container and enters it): it succeeds only inside systemd.
pub const START_COMMAND: &str = "test -d /run/systemd/system";
/// `start --keep-alive`: the same, then a process that keeps the distro from idling out.
pub const KEEP_ALIVE_COMMAND: &str = "test -d /run/systemd/system && exec sleep infinity";

/// `distrod.exe` without arguments (double-clicked): every question, then "Press Enter".
pub fn wizard(ui: &Ui) -> anyhow::Result<ExitCode> {
    if !wizard::interactive() {
        bail!(
            "no terminal to run the installer wizard on; install without questions with \
             `distrod.exe install --distro DISTRO --user NAME --password-stdin` \
             (see `distrod.exe install --help`)"
        );
    }
    let own_window = console::owns_console();
    eprintln!("distrod: a real systemd for any Linux distribution on WSL2.\n");
    let args = DistroInstallArgs {
        distro: None,
        release: None,
        variant: None,
        image: None,
        sha256: None,
        name: None,
        location: None,
        user: None,
        password_stdin: false,
        yes: false,
        autostart: false,
        without_systemd: false,
        server: ServerArgs {
            server: std::env::var("DISTROD_IMAGE_SERVER")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| crate::cli::DEFAULT_SERVER.to_string()),
            arch: None,
        },
        download: CacheArgs {
            cache: None,
            no_cache: false,
        },
    };
    let result = install(&args, ui);
    if let Err(e) = &result {
        eprintln!("error: {e:#}");
    }
    if own_window {
        wizard::wait_for_enter();
    }
    match result {
        Ok(code) => Ok(code),
        // Already shown above the prompt.
        Err(_) if interrupt::requested() => Ok(ExitCode::from(130)),
        Err(_) => Ok(ExitCode::FAILURE),
    }
}

/// `distrod.exe install`.
pub fn install(args: &DistroInstallArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let asking = wizard::interactive();
    // Without a terminal, every missing answer is known at once: say so before anything else.
    if !asking {
        if args.distro.is_none() && args.image.is_none() {
            return Err(wizard::missing(
                "the image",
                "--distro DISTRO (or --image FILE|URL)",
            ));
        }
        if args.user.is_none() {
            return Err(wizard::missing("the user name", "--user NAME"));
        }
        if !args.password_stdin {
            return Err(wizard::missing(
                "the password",
                "--password-stdin (and the password on the first line of standard input)",
            ));
        }
    }
    let wsl = System::new();
    let binary = embedded::linux_distrod()?;
    let http = Http::from_env()?;

    // The image: flags, else a choice from the server's list.
    let spec = match (&args.distro, &args.image) {
        (Some(d), _) => Some(ImageSpec {
            distro: d.to_ascii_lowercase(),
            release: args.release.clone(),
            variant: args.variant.clone(),
        }),
        (None, Some(_)) => None,
        (None, None) if asking => {
            ui.status(format!("Reading the image list of {}", args.server.server));
            let catalog = Server::from(&args.server).catalog(&http)?;
            let found = choices(&catalog, &Server::from(&args.server).arch());
            if let Some(line) = left_out_line(&found.left_out) {
                ui.status(line);
            }
            let list = found.offered;
            if list.is_empty() {
                bail!(
                    "the image server offers no image for {}",
                    Server::from(&args.server).arch()
                );
            }
            let Choice {
                distro,
                release,
                variant,
                ..
            } = list[wizard::image(&list)?].clone();
            Some(ImageSpec {
                distro,
                release: Some(release),
                variant: Some(variant),
            })
        }
        (None, None) => {
            return Err(wizard::missing(
                "the image",
                "--distro DISTRO (or --image FILE|URL)",
            ));
        }
    };
    if spec.is_some() || args.server.arch.is_some() {
        embedded::check_arch(&binary, &Server::from(&args.server).arch())?;
    }

    let name_ok = |n: &str| -> Result<(), String> {
        check_name(n)?;
        match wsl.is_registered(n) {
            Ok(false) => Ok(()),
            Ok(true) => Err(format!("a WSL distro named {n} is already registered")),
            Err(e) => Err(e.to_string()),
        }
    };
    let name = match &args.name {
        Some(n) => {
            check_name(n).map_err(anyhow::Error::msg)?;
            check_name_free(&wsl, n)?;
            n.clone()
        }
        // Checked (and found free) as it was typed.
        None if asking => wizard::name(DEFAULT_NAME, name_ok)?,
        None => {
            check_name_free(&wsl, DEFAULT_NAME)?;
            DEFAULT_NAME.to_string()
        }
    };
    let location = match &args.location {
        Some(l) => std::path::absolute(l).unwrap_or_else(|_| l.clone()),
        None if asking && args.name.is_none() => wizard::location(default_location(&name), |p| {
            check_location(p).map_err(|e| format!("{e:#}"))
        })?,
        None => {
            default_location(&name).context("%LOCALAPPDATA% is not set: give --location DIR")?
        }
    };
    check_location(&location)?;

    let user = match &args.user {
        Some(u) => u.clone(),
        None if asking => wizard::user(account::check_name)?,
        None => return Err(wizard::missing("the user name", "--user NAME")),
    };
    account::check_name(&user).map_err(anyhow::Error::msg)?;
    let password = if args.password_stdin {
        read_password_line()?
    } else if asking {
        wizard::password(&user, account::check_password)?
    } else {
        return Err(wizard::missing(
            "the password",
            "--password-stdin (and the password on the first line of standard input)",
        ));
    };
    account::check_password(&password).map_err(anyhow::Error::msg)?;

    let image_args = ImageArgs {
        spec,
        image: args.image.clone(),
        sha256: args.sha256.clone(),
        server: args.server.clone(),
        download: args.download.clone(),
    };
    let (what, candidates) = candidates(&ImageRequest::from(&image_args), &http)?;
    if asking && !args.yes {
        let question = format!(
            "Install {what} as {name}, its disk in {}, user {user}?",
            location.display()
        );
        if !wizard::confirm(&question, true)? {
            ui.status("Nothing was installed.");
            return Ok(ExitCode::FAILURE);
        }
    }

    let plan = Plan {
        name: name.clone(),
        location,
        user: user.clone(),
        password,
        autostart: args.autostart,
        systemd: !args.without_systemd,
    };
    interrupt::install();
    let started = Instant::now();
    let windows_exe = embedded::windows_exe()?;
    let extras = Extras {
        distrod: &binary,
        windows_exe: windows_exe.as_deref(),
        wsl_package: None,
    };
    let installer = installer::Installer {
        wsl: &wsl,
        autostart: &RunKey,
        ui,
    };
    let installed = installer.install_checked(&plan, |tarball| {
        ui.status(format!("Downloading {what}"));
        let report = build_tarball(tarball, &candidates, &http, ui, &extras)?;
        match (&report.no_systemd, plan.systemd) {
            // Before anything is registered; the flow removes the tarball.
            (Some(no), true) => bail!(
                "not installing {what}: the image has {no}; choose an image with systemd, or \
                 install it as a plain distro with --without-systemd"
            ),
            _ => Ok(()),
        }
    })?;
    eprintln!(
        "\nInstalled {name} in {:.0} s. Start it with `wsl -d {name}`, or from Windows \
         Terminal's list of profiles; you are {user} there (uid {}), with sudo.",
        started.elapsed().as_secs_f64(),
        installed.uid
    );
    if !plan.systemd {
        eprintln!(
            "distrod is not enabled in {name} (--without-systemd): its sessions run without \
             systemd, as in any WSL distro."
        );
    }
    if plan.autostart {
        eprintln!("It starts at logon (`distrod.exe autostart disable --name {name}` stops that).");
    }
    Ok(ExitCode::SUCCESS)
}

/// Download, verify and repack into an uncompressed tar at `path` (what `wsl --import`
/// reads fastest); what the repack found.
fn build_tarball(
    path: &Path,
    candidates: &[Candidate],
    http: &Http,
    ui: &Ui,
    extras: &Extras<'_>,
) -> anyhow::Result<repack::Report> {
    let file =
        File::create_new(path).with_context(|| format!("cannot create {}", path.display()))?;
    let (finished, report) = fetch(candidates, http, &ui.download(), |decoder| {
        let mut out = BufWriter::with_capacity(256 * 1024, &file);
        let report = repack::repack(decoder, &mut out, extras)?;
        out.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .context("cannot write the install tarball")?;
        Ok::<_, anyhow::Error>(report)
    })?;
    ui.status(format!(
        "Image verified (sha256 {}{}); install tarball {} with {} entries",
        &finished.sha256[..16],
        if finished.from_cache {
            ", from the cache"
        } else {
            ""
        },
        human_bytes(report.bytes),
        report.entries
    ));
    Ok(report)
}

fn read_password_line() -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_end(&mut bytes)
        .context("cannot read the password from standard input")?;
    let text = String::from_utf8(bytes).context("the password is not UTF-8")?;
    Ok(text
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('\r')
        .to_string())
}

/// `distrod.exe list`.
pub fn list(_: &ListArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let wsl = System::new();
    let distros = wsl.list()?;
    if distros.is_empty() {
        ui.status("No distro is registered with WSL.");
        return Ok(ExitCode::SUCCESS);
    }
    let width = distros
        .iter()
        .map(|d| d.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("  {:<width$}  {:<12}  VERSION  LOGON", "NAME", "STATE");
    for d in &distros {
        let logon = match RunKey.status(&d.name) {
            Ok(Some(_)) => "yes",
            Ok(None) => "no",
            Err(_) => "?",
        };
        println!(
            "{} {:<width$}  {:<12}  {:<7}  {logon}",
            if d.default { "*" } else { " " },
            d.name,
            d.state.to_string(),
            d.version
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The error of the commands that act on a registered distro, when `name` is not one.
fn must_be_registered(wsl: &System, name: &str) -> anyhow::Result<()> {
    if !wsl.is_registered(name)? {
        bail!("no WSL distro is named {name} (`distrod.exe list` shows them)");
    }
    Ok(())
}

/// `distrod.exe uninstall`.
pub fn uninstall(args: &DistroUninstallArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let wsl = System::new();
    let name = &args.name;
    must_be_registered(&wsl, name)?;
    if !args.yes {
        if !wizard::interactive() {
            bail!("removing {name} deletes its disk and every file in it: give --yes to confirm");
        }
        if !wizard::confirm(
            &format!("Remove {name}, its disk and every file in it?"),
            false,
        )? {
            ui.status("Nothing was removed.");
            return Ok(ExitCode::FAILURE);
        }
    }
    if RunKey.disable(name)? {
        ui.status(format!("Removed the logon entry of {name}"));
    }
    wsl.unregister(name)?;
    // The default location, if it was that and is now empty.
    if let Some(dir) = default_location(name) {
        let _ = std::fs::remove_dir(&dir);
    }
    ui.status(format!("Removed {name}."));
    Ok(ExitCode::SUCCESS)
}

/// `distrod.exe start`.
pub fn start(args: &StartArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let wsl = System::new();
    let name = &args.name;
    must_be_registered(&wsl, name)?;
    let command = if args.keep_alive {
        KEEP_ALIVE_COMMAND
    } else {
        START_COMMAND
    };
    wsl.launch_detached(name, command).with_context(|| {
        format!("{name} did not start with systemd (open it with `wsl -d {name}` to see why)")
    })?;
    ui.status(format!("{name} runs, with systemd."));
    Ok(ExitCode::SUCCESS)
}

/// `distrod.exe autostart`.
pub fn autostart(args: &AutostartArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let wsl = System::new();
    match &args.action {
        AutostartAction::Enable { name, keep_alive } => {
            must_be_registered(&wsl, name)?;
            RunKey.enable(name, *keep_alive)?;
            ui.status(format!(
                "{name} starts at logon{}.",
                if *keep_alive {
                    " and is kept running"
                } else {
                    ""
                }
            ));
        }
        AutostartAction::Disable { name } => {
            if RunKey.disable(name)? {
                ui.status(format!("{name} no longer starts at logon."));
            } else {
                ui.status(format!("{name} did not start at logon."));
            }
        }
        AutostartAction::Status { name } => match RunKey.status(name)? {
            Some(command) => println!("{name} starts at logon: {command}"),
            None => println!("{name} does not start at logon"),
        },
    }
    Ok(ExitCode::SUCCESS)
}
