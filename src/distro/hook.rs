//! The login-shell hook: how a WSL session lands in the container.
//!
//! `wsl -d DISTRO` runs the user's login shell from /etc/passwd. `distrod enable` points
//! the shells of login accounts ([`accounts`]) at aliases, symlinks
//! `/opt/distrod/alias/<real shell> -> /opt/distrod/bin/distrod`. Run through one, distrod
//! finds the real shell in the path it was executed by (`AT_EXECFN`), starts the container
//! if needed and runs that shell inside it as the session's user, with the session's
//! directory, environment and interop socket ([`enter`], [`interop`]); the shell keeps its
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

use std::ffi::{CStr, CString, OsString};
use std::process::ExitCode;
use std::time::Duration;

use nix::unistd::{Gid, Uid};

use super::accounts;
use crate::config::Config;
use crate::runtime::interop::{self, Caller};
use crate::runtime::launch::{self, Options, Until};
use crate::runtime::readiness::Phase;
use crate::runtime::{Context, Result, enter};
use crate::ui::{Ui, WaitLine};

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
/// taken as bytes. Root's work for the session runs where the caller cannot stop or
/// signal it: the launch in a detached child ([`launch::launch_detached`]), the session
/// reaper in a session of its own inside the container ([`enter`]); this process, in the
/// caller's session, only waits and forwards signals.
pub fn run(shell: String) -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let caller = Caller::current();
    if crate::runtime::inside_container() {
        exec_plain(&shell, &argv, &caller, None);
    }
    if !nix::unistd::geteuid().is_root() {
        let why = format!(
            "{} is not setuid root (`sudo distrod install` makes it so)",
            crate::runtime::INSTALLED_BINARY
        );
        exec_plain(&shell, &argv, &caller, Some(&why));
    }
    // Root for the launch (a real root: systemd must not inherit the caller's ids or
    // groups); the caller's ids come back in everything run for them.
    if let Err(e) = become_root() {
        exec_plain(&shell, &argv, &caller, Some(&e.to_string()));
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
    let fallback = |why: String| -> ExitCode {
        if config.fallback_shell {
            exec_plain(&shell, &argv, &caller, Some(&why))
        } else {
            eprintln!("distrod: {why}");
            ExitCode::FAILURE
        }
    };
    let opts = Options {
        rootfs: None,
        wait: Some(Duration::from_secs(config.boot_timeout)),
        until: Until::Sessions,
        tuning: super::tuning(&config),
        idle: launch::idle_options(&config),
    };
    // Its thread starts on the launcher's first word, after its fork: none may run at a fork.
    let mut line = WaitLine::later();
    let mut last = Phase::Starting;
    let launched = launch::launch_detached(&opts, &mut |p: Phase| {
        last = p;
        line.set(p);
    });
    line.finish();
    let (pid, booting) = match launched {
        Ok(state) => {
            if !state.ready {
                eprintln!(
                    "distrod: systemd is still starting after {} s ({}); this session enters \
                     it anyway (`distrod status` shows what it waits for)",
                    config.boot_timeout,
                    last.why()
                );
            }
            (state.pid, !state.ready)
        }
        Err(e) => {
            return fallback(format!(
                "cannot start systemd: {}",
                crate::runtime::chain(&e)
            ));
        }
    };
    let socket = interop::session_socket(&caller);
    let cmd = enter::Command {
        argv: argv.clone(),
        program: Some(shell.clone().into()),
        user: Some(caller.uid.to_string()),
        cwd: None,
        caller_cwd: std::env::current_dir().ok(),
        caller_env: std::env::vars_os().collect(),
        pass_env: config.pass_env.clone(),
        capture: false,
        booting,
    };
    match enter::run(pid, &cmd, socket.as_ref(), &ui) {
        Ok(exit) => ExitCode::from((exit.code & 0xff) as u8),
        Err(e) => fallback(format!(
            "cannot enter the systemd container: {}",
            crate::runtime::chain(&e)
        )),
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

/// The plain shell, outside the container, as the caller; `why` is said in one line
/// first. Never returns.
fn exec_plain(shell: &str, argv: &[OsString], caller: &Caller, why: Option<&str>) -> ! {
    if let Some(why) = why {
        eprintln!("distrod: {why}; this session runs outside the systemd container");
    }
    let groups: Vec<Gid> = caller.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let (u, g) = (Uid::from_raw(caller.uid), Gid::from_raw(caller.gid));
    if nix::unistd::geteuid().is_root() {
        let _ = nix::unistd::setgroups(&groups);
    }
    if nix::unistd::setresgid(g, g, g).is_err()
        || nix::unistd::setresuid(u, u, u).is_err()
        || nix::unistd::geteuid() != u
    {
        eprintln!("distrod: cannot switch back to uid {}", caller.uid);
        std::process::exit(126);
    }
    crate::runtime::shim::reset_signals();
    let prog = CString::new(shell).unwrap_or_default();
    let args = enter::to_cstrings(argv);
    let e = nix::unistd::execv(&prog, &args).unwrap_err();
    eprintln!("distrod: cannot run {shell}: {}", e.desc());
    std::process::exit(if e == nix::errno::Errno::ENOENT {
        127
    } else {
        126
    })
}
