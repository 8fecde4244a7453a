//! Entering the container as the one who ran distrod: the one way in for the login hook
//! (`crate::distro::hook`) and `distrod exec`. Given the caller ([`Caller`]) and what to
//! run (an [`enter::Command`]), [`enter()`] makes sure the container runs ([`Start`]) and runs the
//! command inside ([`super::enter`]) with the caller's working directory, the part of the
//! caller's environment a session keeps ([`super::session_env`]) and the caller's interop
//! socket ([`super::interop`]).
//!
//! What differs between the two ways in is said by the parameters, not by two copies:
//! - how the container is started ([`Start`]): `exec` (run by root) launches it itself
//!   and reports the outcome; the hook (setuid root, for a caller who may stop or signal
//!   it) has it launched by a detached child;
//! - what runs (the command): `exec` takes argv, `--user` and `--workdir` from its
//!   command line; the hook runs the real login shell ([`enter::Command::program`]) with
//!   the `argv[0]` it was given (`-bash`), as the caller;
//! - the fallback: the hook runs that shell outside the container when the container
//!   cannot be started or entered (`session.fallback_shell`); `exec` reports the failure;
//! - the environment ([`Caller::env`]) is the caller's own: under WSL, WSL's session's.
//!
//! Privileges: the installed binary is setuid root and the caller may be anyone. The
//! caller's ids are the real ids, taken at start ([`Caller::current`]) before anything
//! changes them; everything the caller hands over (arguments, environment, working
//! directory) is carried as bytes and decides nothing root does: the environment is
//! filtered into a clean one ([`super::session_env`]), the working directory is only
//! looked at (is it a directory inside?) and then entered by the command once it has the
//! caller's ids ([`enter::Command::caller_cwd`]), the interop socket is looked up with the
//! caller's file-system ids ([`super::interop::session_socket`]), and the fallback shell
//! runs with the caller's ids ([`Caller::exec_outside`]).

use std::ffi::{CString, OsString};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid};

use super::enter::{self, Exit};
use super::launch::{self, Options, Outcome};
use super::readiness::Phase;
use super::state::{self, State};
use super::{Error, Result, interop};
use crate::ui::{Ui, WaitLine};

/// Who runs distrod, as it was when distrod started.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The real ids (not the effective ones of a setuid start).
    pub ids: interop::Caller,
    /// The working directory (a path the caller chose: inside the container, the session
    /// starts there when it is a directory, entered by the command with the caller's ids).
    pub cwd: Option<PathBuf>,
    /// The environment, of which a session keeps only what [`super::session_env`] names.
    pub env: Vec<(OsString, OsString)>,
}

impl Caller {
    /// This process's caller: to be taken before any change of ids.
    pub fn current() -> Caller {
        Caller {
            ids: interop::Caller::current(),
            cwd: std::env::current_dir().ok(),
            env: std::env::vars_os().collect(),
        }
    }

    /// Runs `program` with `argv` outside the container, as the caller (their ids and
    /// groups, default signal dispositions); `why` is said in one line first. Never
    /// returns.
    pub fn exec_outside(&self, program: &Path, argv: &[OsString], why: Option<&str>) -> ! {
        if let Some(why) = why {
            eprintln!("distrod: {why}; this session runs outside the systemd container");
        }
        let ids = &self.ids;
        let groups: Vec<Gid> = ids.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        let (u, g) = (Uid::from_raw(ids.uid), Gid::from_raw(ids.gid));
        if nix::unistd::geteuid().is_root() {
            let _ = nix::unistd::setgroups(&groups);
        }
        if nix::unistd::setresgid(g, g, g).is_err()
            || nix::unistd::setresuid(u, u, u).is_err()
            || nix::unistd::geteuid() != u
        {
            eprintln!("distrod: cannot switch back to uid {}", ids.uid);
            std::process::exit(126);
        }
        super::shim::reset_signals();
        let prog = CString::new(program.as_os_str().as_encoded_bytes()).unwrap_or_default();
        let args = enter::to_cstrings(argv);
        let e = nix::unistd::execv(&prog, &args).unwrap_err();
        eprintln!("distrod: cannot run {}: {}", program.display(), e.desc());
        std::process::exit(if e == nix::errno::Errno::ENOENT {
            127
        } else {
            126
        })
    }
}

/// How the container is made to run before the caller enters it.
pub enum Start<'a> {
    /// It must run already (`exec --no-launch`); else [`Error::NotRunning`].
    Running,
    /// Launched by this process if it does not run ([`launch::launch_with`]; `exec`, run
    /// by root); the function is told the outcome (to report it).
    Launch(&'a Options, &'a mut dyn FnMut(&Outcome)),
    /// Launched by a detached child ([`launch::launch_detached`]): the hook, root for a
    /// caller who may stop or signal this process. A systemd still starting when the
    /// launch's wait has run out is said in one line, and the session enters it anyway.
    Detached(&'a Options),
}

/// Why the caller could not enter.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// The container is not running and could not be started.
    #[error("cannot start systemd: {}", super::chain(.0))]
    Start(Error),
    /// The container runs but could not be entered.
    #[error("cannot enter the systemd container: {}", super::chain(.0))]
    Enter(Error),
}

/// Makes sure the container runs (`start`) and runs `cmd` in it for `caller`; returns
/// how the command ended. `cmd` says what to run (argv, program, user, working directory,
/// `pass_env`); the caller's working directory and environment are the caller's, and
/// `booting` is the start's. `fallback`: on a failure, run `cmd`'s program (when it names
/// one) outside the container as the caller after one line saying why
/// ([`Caller::exec_outside`]), instead of returning the failure (never returns then).
pub fn enter(
    caller: &Caller,
    start: Start,
    cmd: &enter::Command,
    fallback: bool,
    ui: &Ui,
) -> Result<Exit, Failed> {
    let entered = enter_container(caller, start, cmd, ui);
    match (entered, &cmd.program) {
        (Err(f), Some(program)) if fallback => {
            caller.exec_outside(program, &cmd.argv, Some(&f.to_string()))
        }
        (entered, _) => entered,
    }
}

fn enter_container(
    caller: &Caller,
    start: Start,
    cmd: &enter::Command,
    ui: &Ui,
) -> Result<Exit, Failed> {
    let (state, booting) = ensure_running(start).map_err(Failed::Start)?;
    let cmd = enter::Command {
        caller_cwd: caller.cwd.clone(),
        caller_env: caller.env.clone(),
        booting,
        ..cmd.clone()
    };
    let socket = interop::session_socket(&caller.ids);
    enter::run(state.pid, &cmd, socket.as_ref(), ui).map_err(Failed::Enter)
}

/// The running container's record, and whether this process has said that its systemd is
/// still starting.
fn ensure_running(start: Start) -> Result<(State, bool)> {
    match start {
        Start::Running => state::running()
            .map(|s| (s, false))
            .ok_or(Error::NotRunning),
        Start::Launch(opts, report) => {
            let outcome = showing(|p| launch::launch_with(opts, p)).0?;
            report(&outcome);
            let (Outcome::Started { state, .. } | Outcome::AlreadyRunning(state)) = outcome;
            Ok((state, false))
        }
        Start::Detached(opts) => {
            let (launched, last) = showing(|p| launch::launch_detached(opts, p));
            let state = launched?;
            if !state.ready {
                eprintln!(
                    "distrod: systemd is still starting after {} s ({}); this session enters \
                     it anyway (`distrod status` shows what it waits for)",
                    opts.wait.unwrap_or_default().as_secs(),
                    last.why()
                );
            }
            let booting = !state.ready;
            Ok((state, booting))
        }
    }
}

/// [`launch::launch_with`], saying on a terminal what it waits for once that takes a
/// while (`distrod launch`, `distrod exec`).
pub fn launch_showing(opts: &Options) -> Result<Outcome> {
    showing(|p| launch::launch_with(opts, p)).0
}

/// Runs a launch that tells what it waits for, showing that on a terminal once it takes a
/// while; returns the launch's result and the last phase it told. The line's thread
/// starts on the first phase, after the launch's forks: none may run at a fork.
fn showing<T>(launch: impl FnOnce(&mut dyn FnMut(Phase)) -> T) -> (T, Phase) {
    let mut line = WaitLine::later();
    let mut last = Phase::Starting;
    let result = launch(&mut |p: Phase| {
        last = p;
        line.set(p);
    });
    line.finish();
    (result, last)
}
