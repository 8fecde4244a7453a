//! The login-shell hook: how a WSL session lands in the container.
//!
//! `wsl -d DISTRO` runs the user's login shell from /etc/passwd. `distrod enable` points
//! the shells of login accounts ([`accounts`]) at aliases, symlinks
//! `/opt/distrod/alias/<real shell> -> /opt/distrod/bin/distrod`. Run through one, distrod
//! finds the real shell in the path it was executed by (`AT_EXECFN`), starts the container
//! if needed and runs that shell inside it as the session's user, with the session's
//! directory, environment and interop socket ([`session`]); the shell keeps its
//! arguments (`-c CMD` for `wsl -- CMD`) and its `argv[0]` (`-bash` for a login shell).
//!
//! - Inside the container (`su - user`, `sudo -i`, a service running a login shell) the
//!   hook simply execs the real shell.
//! - `wsl -e CMD` runs CMD without a shell: the escape hatch, always outside.
//! - If the container cannot start, the session gets its plain shell outside after one
//!   warning line (`session.fallback_shell` in /etc/distrod.toml).
//!
//! Privileges: WSL starts the shell as the user, and entering the container's namespaces
//! takes root, so the installed binary is setuid root. Every run that is not the hook
//! gives that up before anything else ([`drop_setuid`]). The hook works for the real
//! user only: it launches the default container (configured by root's
//! /etc/distrod.toml, nothing the caller passes), and everything it runs for the caller
//! runs with the caller's ids (the shell, the working directory, the interop socket
//! lookup).

use std::ffi::{CStr, OsString};
use std::path::PathBuf;
use std::process::ExitCode;

use nix::unistd::{Gid, Uid};

use super::accounts;
use crate::config::Config;
use crate::runtime::launch::Options;
use crate::runtime::session::{self, Caller, Start};
use crate::runtime::{Context, Result, enter};
use crate::ui::Ui;

/// The real shell when this process was executed through an alias, else None.
pub fn invoked_as_shell() -> Option<String> {
    // SAFETY: getauxval(3) has no preconditions; AT_EXECFN is a NUL-terminated string
    // the kernel put on our stack (or 0).
    let p = unsafe { libc::getauxval(libc::AT_EXECFN) } as *const libc::c_char;
    if p.is_null() {
        return None;
    }
    // SAFETY: see above.
    let path = unsafe { CStr::from_ptr(p) }.to_str().ok()?;
    accounts::real_of(path)
}

/// A setuid-root install makes every user's `distrod` start as root; anything but the
/// hook becomes the caller again at once (and aborts if it cannot).
pub fn drop_setuid() {
    let (ruid, euid) = (nix::unistd::getuid(), nix::unistd::geteuid());
    let (rgid, egid) = (nix::unistd::getgid(), nix::unistd::getegid());
    if ruid == euid && rgid == egid {
        return;
    }
    if nix::unistd::setresgid(rgid, rgid, rgid).is_err()
        || nix::unistd::setresuid(ruid, ruid, ruid).is_err()
        || nix::unistd::geteuid() != ruid
    {
        eprintln!("distrod: cannot give up the privileges of a setuid start");
        std::process::exit(126);
    }
}

/// Runs as the login shell `shell` (see the module doc). Returns the session's exit code.
///
/// Everything the caller hands over (arguments, environment, working directory) is
/// taken as bytes ([`session`]). Root's work for the session runs where the caller cannot
/// stop or signal it: the launch in a detached child ([`Start::Detached`]), the session
/// reaper in a session of its own inside the container ([`crate::runtime::enter`]); this
/// process, in the caller's session, only waits and forwards signals.
pub fn run(shell: String) -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let caller = Caller::current();
    let shell = PathBuf::from(shell);
    if crate::runtime::inside_container() {
        caller.exec_outside(&shell, &argv, None);
    }
    if !nix::unistd::geteuid().is_root() {
        let why = format!(
            "{} is not setuid root (`sudo distrod install` makes it so)",
            crate::runtime::INSTALLED_BINARY
        );
        caller.exec_outside(&shell, &argv, Some(&why));
    }
    // Root for the launch (a real root: systemd must not inherit the caller's ids or
    // groups); the caller's ids come back in everything run for them.
    if let Err(e) = become_root() {
        caller.exec_outside(&shell, &argv, Some(&e.to_string()));
    }
    // Root now, and still in the caller's foreground job until the session's reaper takes
    // the terminal over: a Ctrl-Z must not leave a root process stopped.
    crate::runtime::procstate::ignore_job_control();
    let config = match crate::config::load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("distrod: {e}; using the defaults");
            Config::default()
        }
    };
    let ui = Ui::new(true);
    let opts = Options::for_sessions(&config, super::tuning(&config));
    let cmd = enter::Command {
        user: Some(caller.ids.uid.to_string()),
        argv,
        program: Some(shell),
        pass_env: config.pass_env.clone(),
        ..Default::default()
    };
    let start = Start::Detached(&opts);
    match session::enter(&caller, start, &cmd, config.fallback_shell, &ui) {
        Ok(exit) => exit.exit_code(),
        Err(e) => {
            eprintln!("distrod: {e}");
            ExitCode::FAILURE
        }
    }
}

fn become_root() -> Result<()> {
    nix::unistd::setgroups(&[]).ctx(|| "setgroups".into())?;
    let root_g = Gid::from_raw(0);
    let root_u = Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g).ctx(|| "setresgid".into())?;
    nix::unistd::setresuid(root_u, root_u, root_u).ctx(|| "setresuid".into())?;
    // SAFETY: umask(2) cannot fail.
    unsafe { libc::umask(0o022) };
    Ok(())
}
