//! Entering the container as the one who ran distrod: the one way in for the login hook
//! (`crate::distro::hook`) and `distrod exec`. Given the caller ([`Caller`]) and what to
//! run ([`Program`]), [`enter`] makes sure the container runs ([`Start`]) and runs the
//! command inside ([`super::enter`]) with the caller's working directory, the part of the
//! caller's environment a session keeps ([`super::session_env`]) and the caller's interop
//! socket ([`super::interop`]).
//!
//! What differs between the two ways in is said by the parameters, not by two copies:
//! - how the container is started ([`Start`]): `exec` (run by root) launches it itself
//!   and reports the outcome; the hook (setuid root, for a caller who may stop or signal
//!   it) has it launched by a detached child;
//! - what runs ([`Program`]): `exec` takes argv from its command line; the hook runs the
//!   real login shell with the `argv[0]` it was given (`-bash`), as the caller, and falls
//!   back to that shell outside the container when the container cannot be entered;
//! - the environment ([`Caller::env`]) is the caller's own: under WSL, WSL's session's.
//!
//! Privileges: the installed binary is setuid root and the caller may be anyone. The
//! caller's ids are the real ids, taken at start ([`Caller::current`]) before anything
//! changes them; everything the caller hands over (arguments, environment, working
//! directory) is carried as bytes and decides nothing root does: the environment is
//! filtered into a clean one ([`super::session_env`]), the working directory is entered by
//! the command after it has the caller's ids, the interop socket is looked up with the
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
    /// The working directory (a path the caller chose: tried inside the container only by
    /// the command, with the caller's ids).
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

/// What the caller runs in the container.
#[derive(Debug, Clone, Default)]
pub struct Program {
    /// The command and its arguments, `argv[0]` as the command sees it (`-bash` for a
    /// login shell); never empty.
    pub argv: Vec<OsString>,
    /// The file to execute when it is not `argv[0]` looked up in PATH (the hook: the real
    /// login shell).
    pub program: Option<PathBuf>,
    /// Run as this user (name or uid) in a logind session (the hook: the caller's uid;
    /// `exec`: `--user`); None: root, no session.
    pub user: Option<String>,
    /// Working directory inside the container (`exec --workdir`); None: the caller's, if
    /// it exists inside, else the user's home.
    pub cwd: Option<PathBuf>,
    /// More caller variables to keep (`session.pass_env` in /etc/distrod.toml).
    pub pass_env: Vec<String>,
    /// When the container cannot be started or entered, run `program` outside it as the
    /// caller after one line saying why ([`Caller::exec_outside`]; the hook's
    /// `session.fallback_shell`) instead of returning the failure. Needs `program`.
    pub fallback: bool,
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

/// Makes sure the container runs (`start`) and runs `what` in it for `caller`; returns
/// how the command ended. With [`Program::fallback`], a failure runs the program outside
/// the container instead (and never returns).
pub fn enter(caller: &Caller, start: Start, what: &Program, ui: &Ui) -> Result<Exit, Failed> {
    let entered = enter_container(caller, start, what, ui);
    match (entered, &what.program) {
        (Err(f), Some(program)) if what.fallback => {
            caller.exec_outside(program, &what.argv, Some(&f.to_string()))
        }
        (entered, _) => entered,
    }
}

fn enter_container(caller: &Caller, start: Start, what: &Program, ui: &Ui) -> Result<Exit, Failed> {
    let (state, booting) = ensure_running(start).map_err(Failed::Start)?;
    let cmd = enter::Command {
        argv: what.argv.clone(),
        program: what.program.clone(),
        user: what.user.clone(),
        cwd: what.cwd.clone(),
        caller_cwd: caller.cwd.clone(),
        caller_env: caller.env.clone(),
        pass_env: what.pass_env.clone(),
        capture: false,
        booting,
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
