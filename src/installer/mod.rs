//! The Windows installer's flow, above the [`Wsl`] seam so that it compiles and is tested
//! everywhere: check the answers, build the install tarball, register it, run the
//! first-boot setup inside, set the default user, optionally start it at logon. A failure
//! or Ctrl-C at any step undoes the steps before it: nothing stays registered, and the
//! tarball and the directories the flow created are removed.
//!
//! It is the library's: the commands of `distrod.exe` (`commands::installer`) ask the
//! questions and call it, and `distrod pack` checks its package's name with [`check_name`].

// The flow's user is `distrod.exe`; on other systems only its tests run it.
#![cfg_attr(not(windows), allow(dead_code))]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::account;
use crate::image::catalog::{
    Catalog, ImageSpec, Product, WITHOUT_SYSTEMD, debian_arch, init_without_systemd,
};
use crate::image::repack::DISTROD_BINARY;
use crate::interrupt;
use crate::ui::Ui;
use crate::wsl::logon::Autostart;
use crate::wsl::{self, Run, Wsl};

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
    /// Its password, in the clear: handed to the first-boot setup on its standard input,
    /// never shown (the `Debug` output hides it).
    pub password: String,
    /// Start the distro at logon.
    pub autostart: bool,
    /// Enable distrod (sessions enter systemd); false for a plain distro
    /// (`--without-systemd`), where the first-boot setup only creates the user.
    pub systemd: bool,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("name", &self.name)
            .field("location", &self.location)
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .field("autostart", &self.autostart)
            .field("systemd", &self.systemd)
            .finish()
    }
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
    if name.len() > 64 || !wsl::name_chars_ok(name) {
        return Err(format!(
            "{name:?} is not a valid WSL distro name: letters, digits, '.', '_' and '-', \
             at most 64 characters"
        ));
    }
    Ok(())
}

/// The checks made before anything is downloaded: valid answers, a name not registered, a
/// location that is missing or an empty directory. (distrod.exe makes them as it gets the
/// answers, see `commands::installer::windows::install`.)
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
    /// The uid of that account, now WSL's default user of the distro.
    pub uid: u32,
}

/// Whom an install talks to: WSL, the logon entries and the user.
pub struct Installer<'a> {
    /// WSL's API.
    pub wsl: &'a dyn Wsl,
    /// The logon entries (`--autostart`).
    pub autostart: &'a dyn Autostart,
    /// Where progress and warnings go.
    pub ui: &'a Ui,
}

impl Installer<'_> {
    /// [`preflight`], then [`Installer::install_checked`].
    #[cfg(test)]
    pub fn install(
        &self,
        plan: &Plan,
        make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Installed> {
        preflight(self.wsl, plan)?;
        self.install_checked(plan, make_tarball)
    }

    /// Runs the install, for a caller that made sure the name is free already (before it
    /// read the catalog, say): the checks that need no WSL are repeated. `make_tarball(path)`
    /// writes the install tarball (the rootfs with distrod added) at `path`, removing
    /// whatever it wrote when it fails.
    pub fn install_checked(
        &self,
        plan: &Plan,
        make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Installed> {
        self.install_with(plan, make_tarball, &interrupt::requested)
    }

    /// [`Installer::install_checked`], with `interrupted` telling whether Ctrl-C came
    /// (checked between steps; the download checks it all along).
    fn install_with(
        &self,
        plan: &Plan,
        make_tarball: impl FnOnce(&Path) -> anyhow::Result<()>,
        interrupted: &dyn Fn() -> bool,
    ) -> anyhow::Result<Installed> {
        check_answers(plan)?;
        let mut undo = Undo {
            wsl: self.wsl,
            autostart: self.autostart,
            name: &plan.name,
            log: Vec::new(),
        };
        match steps(&mut undo, plan, self.ui, make_tarball, interrupted) {
            Ok(done) => Ok(done),
            Err(e) => {
                undo.run(self.ui);
                Err(e)
            }
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
    for dir in create_dirs(&plan.location)? {
        undo.did(Action::CreatedDir(dir));
    }
    let tarball = plan.location.join(TARBALL_NAME);
    undo.did(Action::Tarball(tarball.clone()));
    make_tarball(&tarball)?;
    checkpoint()?;

    ui.status(format!("Registering {} with WSL", plan.name));
    let imported = undo.wsl.import(&plan.name, &plan.location, &tarball);
    if let Err(e) = imported {
        // A failed import may still have left the name behind.
        if undo.wsl.is_registered(&plan.name).unwrap_or(true) {
            undo.did(Action::Registered);
        }
        return Err(e.into());
    }
    undo.did(Action::Registered);
    remove_file(&tarball)?;
    undo.retire(&Action::Tarball(tarball));
    checkpoint()?;

    ui.status(if plan.systemd {
        format!("Setting up the user {} and systemd", plan.user)
    } else {
        format!("Setting up the user {}", plan.user)
    });
    let uid = firstboot(undo.wsl, plan)?;
    checkpoint()?;
    undo.wsl.set_default_user(&plan.name, uid)?;
    if plan.autostart {
        undo.did(Action::Autostart);
        undo.autostart.enable(&plan.name, false)?;
    }
    checkpoint()?;
    undo.commit();
    Ok(Installed { uid })
}

/// `distrod firstboot` inside, as root, with the password on its standard input; the uid
/// it prints. A plain distro's (`--no-enable`) only creates the user.
fn firstboot(wsl: &dyn Wsl, plan: &Plan) -> anyhow::Result<u32> {
    let binary = format!("/{DISTROD_BINARY}");
    let mut command = vec![
        binary.as_str(),
        "firstboot",
        "--user",
        plan.user.as_str(),
        "--password-stdin",
        "--print-uid",
    ];
    if !plan.systemd {
        command.push("--no-enable");
    }
    let stdin = format!("{}\n", plan.password);
    let out = wsl.run(
        &Run::new(&plan.name, &command)
            .user("root")
            .stdin(stdin.as_bytes()),
    )?;
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

/// One step of an install that a failure must take back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A directory of the location, made by the install (outermost first in the log).
    CreatedDir(PathBuf),
    /// The install tarball, from before it is written until it is removed after the import.
    Tarball(PathBuf),
    /// The distro is registered with WSL (or may be: a failed import can leave its name).
    Registered,
    /// The logon entry is (being) written.
    Autostart,
}

/// The install as a transaction: each step is logged ([`Undo::did`]) before or as it is
/// taken, and a failure takes the logged steps back in reverse order ([`Undo::run`]); a
/// finished install forgets them ([`Undo::commit`]).
struct Undo<'a> {
    wsl: &'a dyn Wsl,
    autostart: &'a dyn Autostart,
    name: &'a str,
    log: Vec<Action>,
}

impl Undo<'_> {
    fn did(&mut self, action: Action) {
        self.log.push(action);
    }

    /// `action` needs no undoing any more (its effect is gone already).
    fn retire(&mut self, action: &Action) {
        if let Some(i) = self.log.iter().rposition(|a| a == action) {
            self.log.remove(i);
        }
    }

    fn commit(&mut self) {
        self.log.clear();
    }

    /// Best effort, in reverse order; what cannot be undone is said, not hidden.
    fn run(&mut self, ui: &Ui) {
        while let Some(action) = self.log.pop() {
            self.take_back(action, ui);
        }
    }

    fn take_back(&self, action: Action, ui: &Ui) {
        match action {
            Action::Autostart => {
                if let Err(e) = self.autostart.disable(self.name) {
                    ui.warn(format!(
                        "cannot remove the logon entry of {}: {e:#}",
                        self.name
                    ));
                }
            }
            Action::Registered => {
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
            Action::Tarball(t) => {
                if let Err(e) = remove_file(&t) {
                    ui.warn(format!("{e:#}"));
                }
            }
            Action::CreatedDir(dir) => {
                if let Err(e) = fs::remove_dir(&dir)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    ui.warn(format!("cannot remove {}: {e}", dir.display()));
                }
            }
        }
    }
}

/// One entry of the wizard's image list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// `distro:release:variant`, what `--distro/--release/--variant` would select.
    pub distro: String,
    /// The release's name.
    pub release: String,
    /// The image variant (`default` for most).
    pub variant: String,
    /// What the list shows.
    pub label: String,
}

/// The wizard's image list, and what it leaves out (so that it can say why a distro the
/// server has is missing from the list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    /// The images offered, in the order shown.
    pub offered: Vec<Choice>,
    /// One label per distro left out for having no systemd, sorted: `Alpine (OpenRC)`, or
    /// `Gentoo openrc (OpenRC)` when only that variant has none.
    pub left_out: Vec<String>,
}

/// The images the wizard offers for `arch`: the current Debian stable and Ubuntu LTS first
/// (what `distrod create debian` and `ubuntu` pick), then every other distro's releases,
/// newest first. A release is offered in its `default` variant, or in each of its variants
/// when it has none (Gentoo has `openrc` and `systemd`). Images known to have no systemd
/// (see [`init_without_systemd`]) are left out: distrod runs the distro's own systemd, so
/// an install of one would be refused only after the download.
pub fn choices(catalog: &Catalog, arch: &str) -> Choices {
    let arch = debian_arch(arch);
    let mut offered: Vec<Choice> = Vec::new();
    let mut left_out: Vec<String> = Vec::new();
    let mut has_systemd = |p: &Product| match init_without_systemd(&p.distro, &p.variant) {
        Some(init) => {
            left_out.push(left_out_label(p, init));
            false
        }
        None => true,
    };
    for distro in ["debian", "ubuntu"] {
        let spec = ImageSpec {
            distro: distro.into(),
            release: None,
            variant: None,
        };
        if let Ok(p) = catalog.select(&spec, arch)
            && has_systemd(p)
        {
            offered.push(choice(p, true));
        }
    }
    let for_arch: Vec<&Product> = catalog.filter(arch, None, None, None).collect();
    let is_default = |p: &Product| p.variant.eq_ignore_ascii_case("default");
    let has_default = |p: &Product| {
        for_arch
            .iter()
            .any(|q| q.distro == p.distro && q.release == p.release && is_default(q))
    };
    let mut rest: Vec<&Product> = for_arch
        .iter()
        .copied()
        .filter(|p| is_default(p) || !has_default(p))
        .filter(|p| {
            !offered
                .iter()
                .any(|c| c.distro == p.distro && c.release == p.release)
        })
        .filter(|p| has_systemd(p))
        .collect();
    rest.sort_by(|a, b| {
        a.distro.cmp(&b.distro).then_with(|| {
            let va = a.version_number();
            let vb = b.version_number();
            vb.cmp(&va)
                .then_with(|| a.release.cmp(&b.release))
                .then_with(|| a.variant.cmp(&b.variant))
        })
    });
    offered.extend(rest.into_iter().map(|p| choice(p, false)));
    left_out.sort_unstable();
    left_out.dedup();
    Choices { offered, left_out }
}

/// The line the wizard prints before it asks for an image, when [`choices`] left images
/// out: a distro the server has should not go missing without a word, and one can still be
/// installed, without distrod's systemd. `None` when nothing was left out.
pub fn left_out_line(left_out: &[String]) -> Option<String> {
    if left_out.is_empty() {
        return None;
    }
    Some(format!(
        "Not listed, having no systemd (distrod needs it): {}. Install one as a plain distro \
         with --distro NAME --without-systemd.",
        left_out.join(", ")
    ))
}

/// How [`Choices::left_out`] names a product left out: by its distro, with the variant when
/// only that variant has no systemd, so as not to say that of a distro that has a systemd
/// variant (Gentoo).
fn left_out_label(p: &Product, init: &str) -> String {
    let whole_distro = WITHOUT_SYSTEMD
        .iter()
        .any(|(d, v, _)| v.is_none() && d.eq_ignore_ascii_case(&p.distro));
    if whole_distro {
        format!("{} ({init})", title(&p.distro))
    } else {
        format!("{} {} ({init})", title(&p.distro), p.variant)
    }
}

/// A distro name as the list shows it: `debian` → `Debian`.
fn title(distro: &str) -> String {
    let mut title = distro.to_string();
    if let Some(first) = title.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    title
}

fn choice(p: &Product, recommended: bool) -> Choice {
    let mut label = format!("{} {}", title(&p.distro), p.release);
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
    // Offered only when the release has no `default` one, and then the one to tell apart.
    if !p.variant.eq_ignore_ascii_case("default") {
        label.push_str(&format!(", {} variant", p.variant));
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
