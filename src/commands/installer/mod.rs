//! The Windows installer's flow, above the [`Wsl`] seam so that it compiles and is tested
//! everywhere: check the answers, build the install tarball, register it, run the
//! first-boot setup inside, set the default user, optionally start it at logon. A failure
//! or Ctrl-C at any step undoes the steps before it: nothing stays registered, and the
//! tarball and the directories the flow created are removed.
//!
//! The command entry points of `distrod.exe` are in [`windows`]; the prompts in [`wizard`].

// The flow's user is `distrod.exe`; on other systems only its tests run it.
#![cfg_attr(not(windows), allow(dead_code))]

#[cfg(windows)]
pub mod windows;
pub mod wizard;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::account;
use crate::image::catalog::{Catalog, Product, debian_arch};
use crate::image::repack::DISTROD_BINARY;
use crate::interrupt;
use crate::ui::Ui;
use crate::wsl::{self, Wsl};

/// The name WSL knows the distro by unless told otherwise.
pub const DEFAULT_NAME: &str = "Distrod";

/// The install tarball, built inside the distro's directory and removed once imported.
pub const TARBALL_NAME: &str = "distrod-rootfs.tar";

/// Everything an install needs, once asked or given as flags.
#[derive(Clone)]
pub struct Plan {
    /// The WSL distro name.
    pub name: String,
    /// The directory of its virtual disk.
    pub location: PathBuf,
    /// The account `wsl -d NAME` logs in as.
    pub user: String,
    pub password: String,
    /// Start the distro at logon.
    pub autostart: bool,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("autostart", &self.autostart)
            .finish()
    }
}

/// Starting a distro at logon: a per-user entry that runs `distrod.exe start` (on Windows,
/// a value under `HKCU\...\Run`, see `crate::windows::autostart`).
pub trait Autostart {
    /// Adds (or replaces) the entry for `name`.
    fn enable(&self, name: &str, keep_alive: bool) -> anyhow::Result<()>;
    /// Removes the entry for `name`; whether there was one.
    fn disable(&self, name: &str) -> anyhow::Result<bool>;
    /// The command the entry for `name` runs, if there is one.
    fn status(&self, name: &str) -> anyhow::Result<Option<String>>;
}

/// The default directory for a distro's disk: `%LOCALAPPDATA%\Distrod\NAME`.
pub fn default_location(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("LOCALAPPDATA").filter(|v| !v.is_empty())?;
    Some(Path::new(&base).join("Distrod").join(name))
}

/// A WSL distro name: what `wsl.exe --import` accepts (letters, digits, `.`, `_`, `-`; at
/// most 64 characters, WSL's own limit, checked here so that no download is wasted).
pub fn check_name(name: &str) -> Result<(), String> {
    wsl::check_arg("distro name", name).map_err(|e| e.to_string())?;
    if name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "{name:?} is not a valid WSL distro name: letters, digits, '.', '_' and '-', \
             at most 64 characters"
        ));
    }
    Ok(())
}

/// The checks made before anything is downloaded: valid answers, a name not registered, a
/// location that is missing or an empty directory. (distrod.exe makes them as it gets the
/// answers, see `windows::install`.)
#[cfg(test)]
pub fn preflight(wsl: &dyn Wsl, plan: &Plan) -> anyhow::Result<()> {
    check_name(&plan.name).map_err(anyhow::Error::msg)?;
    check_name_free(wsl, &plan.name)?;
    check_answers(plan)
}

/// The name is not registered yet (one question to WSL).
pub fn check_name_free(wsl: &dyn Wsl, name: &str) -> anyhow::Result<()> {
    if wsl.is_registered(name)? {
        bail!(
            "a WSL distro named {name} is already registered; choose another --name, or \
             remove it first with `distrod.exe uninstall --name {name}`"
        );
    }
    Ok(())
}

/// The checks that need no WSL: name, user, password, location.
pub fn check_answers(plan: &Plan) -> anyhow::Result<()> {
    check_name(&plan.name).map_err(anyhow::Error::msg)?;
    account::check_name(&plan.user).map_err(anyhow::Error::msg)?;
    account::check_password(&plan.password).map_err(anyhow::Error::msg)?;
    check_location(&plan.location)
}

/// A location is usable when it does not exist yet or is an empty directory.
pub fn check_location(location: &Path) -> anyhow::Result<()> {
    if !location.is_absolute() {
        bail!(
            "the location {} is not an absolute path",
            location.display()
        );
    }
    match fs::read_dir(location) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "the location {} is not empty; choose another --location",
                    location.display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot use {}", location.display())),
    }
}

/// What an install made.
#[derive(Debug)]
pub struct Installed {
    pub uid: u32,
}

/// [`preflight`], then [`install_checked`].
#[cfg(test)]
pub fn install(
    wsl: &dyn Wsl,
    autostart: &dyn Autostart,
    plan: &Plan,
    ui: &Ui,
    make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Installed> {
    preflight(wsl, plan)?;
    install_checked(wsl, autostart, plan, ui, make_tarball)
}

/// Runs the install, for a caller that made sure the name is free already (before it read
/// the catalog, say): the checks that need no WSL are repeated. `make_tarball(path)`
/// writes the install tarball (the rootfs with distrod added) at `path`, removing whatever
/// it wrote when it fails.
pub fn install_checked(
    wsl: &dyn Wsl,
    autostart: &dyn Autostart,
    plan: &Plan,
    ui: &Ui,
    make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<Installed> {
    install_with(
        wsl,
        autostart,
        plan,
        ui,
        make_tarball,
        &interrupt::requested,
    )
}

/// [`install_checked`], with `interrupted` telling whether Ctrl-C came (checked between
/// steps; the download checks it all along).
fn install_with(
    wsl: &dyn Wsl,
    autostart: &dyn Autostart,
    plan: &Plan,
    ui: &Ui,
    make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
    interrupted: &dyn Fn() -> bool,
) -> anyhow::Result<Installed> {
    check_answers(plan)?;
    let mut undo = Undo {
        wsl,
        autostart,
        name: &plan.name,
        created_dirs: Vec::new(),
        tarball: None,
        registered: false,
        autostart_on: false,
    };
    match steps(&mut undo, plan, ui, make_tarball, interrupted) {
        Ok(done) => Ok(done),
        Err(e) => {
            undo.run(ui);
            Err(e)
        }
    }
}

fn steps(
    undo: &mut Undo<'_>,
    plan: &Plan,
    ui: &Ui,
    make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
    interrupted: &dyn Fn() -> bool,
) -> anyhow::Result<Installed> {
    let checkpoint = || -> anyhow::Result<()> {
        if interrupted() {
            bail!("interrupted");
        }
        Ok(())
    };
    undo.created_dirs = create_dirs(&plan.location)?;
    let tarball = plan.location.join(TARBALL_NAME);
    undo.tarball = Some(tarball.clone());
    make_tarball(&tarball)?;
    checkpoint()?;

    ui.status(format!("Registering {} with WSL", plan.name));
    let imported = undo.wsl.import(&plan.name, &plan.location, &tarball);
    if let Err(e) = imported {
        // A failed import may still have left the name behind.
        undo.registered = undo.wsl.is_registered(&plan.name).unwrap_or(true);
        return Err(e.into());
    }
    undo.registered = true;
    remove_file(&tarball)?;
    undo.tarball = None;
    checkpoint()?;

    ui.status(format!("Setting up the user {} and systemd", plan.user));
    let uid = firstboot(undo.wsl, plan)?;
    checkpoint()?;
    undo.wsl.set_default_user(&plan.name, uid)?;
    if plan.autostart {
        undo.autostart_on = true;
        undo.autostart.enable(&plan.name, false)?;
    }
    checkpoint()?;
    undo.forget();
    Ok(Installed { uid })
}

/// `distrod firstboot` inside, as root, with the password on its standard input; the uid
/// it prints.
fn firstboot(wsl: &dyn Wsl, plan: &Plan) -> anyhow::Result<u32> {
    let binary = format!("/{DISTROD_BINARY}");
    let command = [
        binary.as_str(),
        "firstboot",
        "--user",
        plan.user.as_str(),
        "--password-stdin",
        "--print-uid",
    ];
    let stdin = format!("{}\n", plan.password);
    let out = wsl.run(&plan.name, Some("root"), &command, Some(stdin.as_bytes()))?;
    if !out.success() {
        let text = out.stderr_text();
        let why = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("no message");
        bail!(
            "the first-boot setup in {} failed (exit {}): {why}",
            plan.name,
            out.code
        );
    }
    let text = out.stdout_text();
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .and_then(|l| l.parse::<u32>().ok())
        .with_context(|| {
            format!(
                "the first-boot setup in {} printed no uid (it said {:?})",
                plan.name,
                wsl::exe::one_line(&text)
            )
        })
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Creates `dir` and its missing parents; the ones created, outermost first.
fn create_dirs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.exists() {
            break;
        }
        missing.push(p.to_path_buf());
        at = p.parent();
    }
    missing.reverse();
    let mut created = Vec::new();
    for p in missing {
        match fs::create_dir(&p) {
            Ok(()) => created.push(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for c in created.iter().rev() {
                    let _ = fs::remove_dir(c);
                }
                return Err(e).with_context(|| format!("cannot create {}", p.display()));
            }
        }
    }
    Ok(created)
}

/// What to take back when an install fails.
struct Undo<'a> {
    wsl: &'a dyn Wsl,
    autostart: &'a dyn Autostart,
    name: &'a str,
    created_dirs: Vec<PathBuf>,
    tarball: Option<PathBuf>,
    registered: bool,
    autostart_on: bool,
}

impl Undo<'_> {
    fn forget(&mut self) {
        self.created_dirs.clear();
        self.tarball = None;
        self.registered = false;
        self.autostart_on = false;
    }

    /// Best effort, in reverse order; what cannot be undone is said, not hidden.
    fn run(&mut self, ui: &Ui) {
        if self.autostart_on
            && let Err(e) = self.autostart.disable(self.name)
        {
            ui.warn(format!(
                "cannot remove the logon entry of {}: {e:#}",
                self.name
            ));
        }
        if self.registered {
            ui.status(format!(
                "Removing the half-installed {} from WSL",
                self.name
            ));
            if let Err(e) = self.wsl.unregister(self.name) {
                ui.warn(format!(
                    "{e}; remove it with `wsl --unregister {}`",
                    self.name
                ));
            }
        }
        if let Some(t) = self.tarball.take()
            && let Err(e) = remove_file(&t)
        {
            ui.warn(format!("{e:#}"));
        }
        for dir in self.created_dirs.iter().rev() {
            if let Err(e) = fs::remove_dir(dir)
                && e.kind() != io::ErrorKind::NotFound
            {
                ui.warn(format!("cannot remove {}: {e}", dir.display()));
            }
        }
        self.forget();
    }
}

/// One entry of the wizard's image list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// `distro:release:variant`, what `--distro/--release/--variant` would select.
    pub distro: String,
    pub release: String,
    pub variant: String,
    /// What the list shows.
    pub label: String,
}

/// The images the wizard offers for `arch`, in `default` variants: the current Debian
/// stable and Ubuntu LTS first (what `distrod create debian` and `ubuntu` pick), then every
/// other distro's releases, newest first.
pub fn choices(catalog: &Catalog, arch: &str) -> Vec<Choice> {
    let arch = debian_arch(arch);
    let mut out: Vec<Choice> = Vec::new();
    for distro in ["debian", "ubuntu"] {
        let spec = crate::image::catalog::ImageSpec {
            distro: distro.into(),
            release: None,
            variant: None,
        };
        if let Ok(p) = catalog.select(&spec, arch) {
            out.push(choice(p, true));
        }
    }
    let mut rest: Vec<&Product> = catalog
        .filter(arch, None, None, Some("default"))
        .filter(|p| {
            !out.iter()
                .any(|c| c.distro == p.distro && c.release == p.release)
        })
        .collect();
    rest.sort_by(|a, b| {
        a.distro.cmp(&b.distro).then_with(|| {
            let va = a.version_number();
            let vb = b.version_number();
            vb.cmp(&va).then_with(|| a.release.cmp(&b.release))
        })
    });
    out.extend(rest.into_iter().map(|p| choice(p, false)));
    out
}

fn choice(p: &Product, recommended: bool) -> Choice {
    let mut distro = p.distro.clone();
    if let Some(first) = distro.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    let mut label = format!("{distro} {}", p.release);
    // The release's number, as an alias spells it (`debian/13`, `ubuntu/24.04`).
    let number = p
        .aliases
        .iter()
        .filter_map(|a| {
            let mut parts = a.split('/');
            (parts.next() == Some(p.distro.as_str()))
                .then(|| parts.next())
                .flatten()
        })
        .filter(|r| r.bytes().all(|b| b.is_ascii_digit() || b == b'.') && *r != p.release)
        .max_by_key(|r| r.len());
    if let Some(n) = number {
        label.push_str(&format!(" ({n})"));
    }
    if recommended {
        label.push_str("  [recommended]");
    }
    Choice {
        distro: p.distro.clone(),
        release: p.release.clone(),
        variant: p.variant.clone(),
        label,
    }
}

#[cfg(test)]
mod tests;
