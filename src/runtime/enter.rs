//! Running a command in the container (`exec`, and `status`'s systemctl calls).
//!
//! Process shape (the prototype's "double fork", proven against systemd's shutdown):
//! ```text
//! caller ─ fork ─▶ A: born in PID 1's cgroup (clone3), setns(cgroup, ipc, uts, pid, mnt), looks
//!                     the user up in the container, forks, waits, exits
//!                  └▶ (first process inside the pid namespace) forks B and exits
//!                     └▶ B (parent: the container's systemd): session reaper: subreaper,
//!                        logind session, forks the command, reaps, reports its status
//! ```
//! Nothing in the container has a parent outside it. A foreground `nsenter` is that parent,
//! and systemd-shutdown's SIGSTOP of every process then stops nsenter with its child
//! (never reaped): poweroff hangs 90 s + 90 s. Here the caller only holds a socket to B:
//! B says hello (SCM_CREDENTIALS gives the caller B's pid in *its* pid namespace, for
//! forwarding signals), then sends the exit code; EOF without one means the container
//! went away (255). The signals and codes are [`super::signals`] (shared with
//! [`super::waiter`]); the session's environment is [`super::session_env`].

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Pid, Uid, fork};

use super::session_env::{SessionVars, session_env};
use super::signals::{self, code_of};
use super::state::NAMESPACES;
use super::users::{self, User};
use super::{Context, Error, Result, cgroup, interop, logind, shim, sys};
use crate::ui::Ui;

/// What to run.
/// Every value that comes from the caller is bytes (`OsString`): arguments, environment
/// and paths need not be UTF-8, and nothing on this path may fail (or panic) on them.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// The command and its arguments; never empty.
    pub argv: Vec<OsString>,
    /// The file to execute when it is not `argv[0]` looked up in PATH (a login shell:
    /// `/bin/bash` with `argv[0]` `-bash`).
    pub program: Option<PathBuf>,
    /// Run as this user (name or uid) in a logind session; None: root, no session.
    pub user: Option<String>,
    /// Working directory inside the container; None: the caller's, if it exists inside,
    /// else the user's home.
    pub cwd: Option<PathBuf>,
    /// The caller's working directory (tried when `cwd` is None; [`super::session`] sets
    /// it).
    pub caller_cwd: Option<PathBuf>,
    /// Caller environment variables passed through (see
    /// [`super::session_env::PASSED_ENV`]; [`super::session`] sets them).
    pub caller_env: Vec<(OsString, OsString)>,
    /// More variable names to pass through (`session.pass_env` in /etc/distrod.toml).
    pub pass_env: Vec<String>,
    /// Capture stdout (stderr goes to /dev/null) instead of sharing the caller's stdio.
    pub capture: bool,
    /// The caller has already said that systemd is still starting: a logind that is not
    /// running yet is no news (no second warning line).
    pub booting: bool,
}

/// How the command ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit code: the command's own, 128+N when signal N killed it, 127 or 126 when it
    /// could not be executed, [`signals::CODE_VANISHED`] when the container went away.
    pub code: i32,
    /// Its standard output with [`Command::capture`]; else empty.
    pub stdout: Vec<u8>,
}

impl Exit {
    /// The code as this process's exit status (its low eight bits).
    pub fn exit_code(&self) -> std::process::ExitCode {
        std::process::ExitCode::from((self.code & 0xff) as u8)
    }
}

/// Runs `cmd` in the container whose PID 1 is `pid` (outer pid namespace) and returns its
/// exit code: the command's, 128+signal, 127/126 when it cannot be executed, 255 when the
/// container vanished.
/// `interop`: the session's interop socket as a detached mount ([`interop::session_socket`]),
/// attached inside by the session's reaper.
pub fn run(pid: i32, cmd: &Command, interop: Option<&OwnedFd>, ui: &Ui) -> Result<Exit> {
    if cmd.argv.is_empty() {
        return Err(Error::Other("no command given".into()));
    }
    // Every namespace fd first: after setns(mnt) our /proc is the container's, where
    // systemd is pid 1.
    let mut ns = Vec::new();
    for name in NAMESPACES {
        let f = File::open(format!("/proc/{pid}/ns/{name}"))
            .ctx(|| format!("open the container's {name} namespace"))?;
        ns.push((name, f));
    }
    // The session's Windows drives with its own elevation (see `drives`): decided and
    // cloned here, in the caller's mount namespace, applied after joining the container's.
    let drives = super::drives::prepare(pid, super::drives::query_elevation);
    // init.scope once systemd has moved itself there: processes outside any unit would
    // sit in the container's root cgroup, which systemd considers its own.
    let cg = cgroup::dir_of(pid, &cgroup::cgroup2_mount()?)?;
    let (ours, theirs) = sys::socketpair_passcred()?;
    let capture = if cmd.capture {
        Some(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?)
    } else {
        None
    };

    // Born in the container's cgroup when the kernel can (fast), else moved there by A.
    let (forked, join) = match sys::fork_into_cgroup(&cg) {
        Some(r) => (r?, None),
        // SAFETY: single-threaded; the child makes syscalls and exits.
        None => (unsafe { fork() }.ctx(|| "fork".into())?, Some(cg.as_path())),
    };
    match forked {
        ForkResult::Child => {
            drop(ours);
            let out = capture.map(|(_, w)| w);
            let mut sock = File::from(theirs);
            let res = join_and_fork(&ns, join, drives.as_ref(), cmd, interop, out, &mut sock, ui);
            if let Err(e) = res {
                let _ = sock.write_all(format!("e{}", super::chain(&e)).as_bytes());
            }
            // SAFETY: leave the fork without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(theirs);
            drop(ns);
            let reader = capture.map(|(r, _w)| File::from(r));
            let _ = waitpid(child, None); // A exits right after forking B
            let reaper = hello(&ours)?;
            if reader.is_none() {
                // Only waiting is left: do it in a fresh, minimal image (returns only if
                // the exec failed).
                super::waiter::hand_over(&ours, reaper);
            }
            signals::forward_to(reaper);
            signals::install_forwarding();
            let mut stdout = Vec::new();
            if let Some(mut r) = reader {
                let _ = r.read_to_end(&mut stdout);
            }
            let code = signals::read_code(ours.as_raw_fd());
            signals::forward_to(0);
            Ok(Exit { code, stdout })
        }
    }
}

/// B's hello: `h` with credentials, or `e` and an error message from A.
fn hello(sock: &OwnedFd) -> Result<i32> {
    match sys::recv_with_pid(sock)? {
        Some((b'h', pid)) if pid > 0 => Ok(pid),
        Some((b'e', _)) => {
            let mut msg = String::new();
            let _ = File::from(sock.try_clone().ctx(|| "dup".into())?).read_to_string(&mut msg);
            Err(Error::Other(format!("cannot enter the container: {msg}")))
        }
        _ => Err(Error::Other(
            "cannot enter the container (its helper exited without a word)".into(),
        )),
    }
}

/// A's part: runs inside the container's namespaces; returns only on error.
#[allow(clippy::too_many_arguments)]
fn join_and_fork(
    ns: &[(&str, File)],
    join: Option<&Path>,
    drives: Option<&super::drives::Prepared>,
    cmd: &Command,
    interop: Option<&OwnedFd>,
    out: Option<OwnedFd>,
    sock: &mut File,
    ui: &Ui,
) -> Result<()> {
    if let Some(cg) = join {
        cgroup::join(cg)?;
    }
    for (name, f) in ns {
        setns(f, CloneFlags::empty()).ctx(|| format!("enter the container's {name} namespace"))?;
    }
    if let Some(d) = drives {
        super::drives::apply(d)?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    let who = cmd.user.as_deref().unwrap_or("0");
    let (user, groups) = users::lookup(who)?;
    // setns(CLONE_NEWPID) only places our *children* in the container's pid namespace,
    // and an orphan is re-parented within the namespace of the parent that exited
    // (kernel/exit.c: find_child_reaper): only a grandchild, orphaned by a process that
    // is itself inside, lands under the container's systemd.
    // SAFETY: as above.
    match unsafe { fork() }.ctx(|| "fork into the container".into())? {
        ForkResult::Parent { child } => {
            let _ = waitpid(child, None);
            // SAFETY: A is done.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {}
    }
    // SAFETY: as above.
    match unsafe { fork() }.ctx(|| "fork the session reaper".into())? {
        ForkResult::Parent { .. } => {
            // SAFETY: the intermediate is done; the reaper is re-parented to systemd.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Child => {
            // The reaper. The hello byte carries our credentials (SO_PASSCRED on the
            // other end).
            sock.write_all(b"h").ctx(|| "say hello".into())?;
            let shared = !drives.is_some_and(|d| d.own_namespace);
            let code = reaper(cmd, &user, &groups, interop, shared, out, ui);
            let _ = sock.write_all(&(code as u32).to_le_bytes());
            // SAFETY: as above.
            unsafe { libc::_exit(code & 0xff) }
        }
    }
}

/// B: session leader and subreaper; returns the command's code (tini's rules).
/// `shared`: the session is in the container's own mount namespace (not one of its own,
/// see `drives`), so services may use its interop socket.
fn reaper(
    cmd: &Command,
    user: &User,
    groups: &[u32],
    interop: Option<&OwnedFd>,
    shared: bool,
    out: Option<OwnedFd>,
    ui: &Ui,
) -> i32 {
    let _ = nix::unistd::setsid();
    // Root's process working for the session, about to take over its terminal: a Ctrl-Z,
    // Ctrl-C or hang-up from it must not stop or kill this process while it holds the
    // session list's lock or talks to logind. Once the command runs, the forwarded
    // signals get handlers that pass them on; the job-control ones stay ignored here (the
    // command gets them from the terminal itself).
    super::procstate::ignore_terminal_signals();
    // A terminal session (an interactive `wsl -d`): the terminal becomes the controlling
    // terminal of this new session, so that the shell gets job control and a hang-up of
    // the terminal reaches it. It is taken over from the caller's session (arg 1, as
    // root), which only waits for the exit code.
    if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) && !cmd.capture {
        // SAFETY: ioctl(TIOCSCTTY) on fd 0 with an integer argument.
        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 1) };
    }
    // Orphans of the command are re-parented to us, not to systemd, while it runs.
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let me = std::process::id();
    let mut session = None;
    let mut runtime = None;
    if cmd.user.is_some() {
        // logind answers once the user's manager has started (on a first login, while the
        // boot goes on, that can take a moment): said on a terminal if it takes a while.
        // The thread ends before the command is forked.
        let line = crate::ui::WaitLine::start(format_args!(
            "waiting for systemd-logind to start the session of {}",
            user.name
        ));
        let created = logind::create_session(user.uid, me, "distrod");
        line.finish();
        match created {
            Ok(s) => {
                runtime = Some(s.runtime_path.clone());
                session = Some(s);
            }
            Err(e) => {
                let dir = format!("/run/user/{}", user.uid);
                if !(cmd.booting && matches!(e, super::dbus::DbusError::NotRunning(_))) {
                    ui.warn(format_args!(
                        "no logind session for {} ({}); running the command without one",
                        user.name,
                        super::chain(&e)
                    ));
                }
                if Path::new(&dir).is_dir() {
                    runtime = Some(dir);
                }
            }
        }
    }
    let entry = interop.and_then(|tree| {
        interop::Entry::provide(tree, me, user.uid, user.gid, shared)
            .map_err(|e| {
                ui.warn(format_args!(
                    "Windows programs cannot be started from this session: {}",
                    super::chain(&e)
                ))
            })
            .ok()
    });
    if let Some(dir) = &runtime {
        wslg_links(dir, user);
    }
    let entry_path = entry.as_ref().map(|e| e.path());
    let env = session_env(
        user,
        &SessionVars {
            runtime_dir: runtime.as_deref(),
            session_id: session.as_ref().map(|s| s.id.as_str()),
            interop: entry_path.as_deref(),
            caller_env: &cmd.caller_env,
            pass_env: &cmd.pass_env,
        },
    );
    let cwd = working_dir(cmd, user);
    // SAFETY: as above.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            drop(session);
            exec_command(cmd, user, groups, &cwd, &env, out)
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            ui.warn(format_args!("cannot fork: {e}"));
            return 125;
        }
    };
    drop(out);
    signals::forward_to(child.as_raw());
    signals::install_forwarding();
    // The reaper lives as long as the session: give back the binary's pages start-up
    // touched (they fault back in from the page cache if needed at the end).
    super::waiter::release_image();
    let mut code = None;
    loop {
        // Blocking wait for any child (never WUNTRACED: a stopped child is not an end).
        match waitpid(Pid::from_raw(-1), None) {
            Ok(st) if st.pid() == Some(child) => {
                if let Some(c) = code_of(st) {
                    code = Some(c);
                    break;
                }
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    // Reap what has already exited; anything still running is re-parented to systemd
    // when we exit.
    while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
    if let Some(e) = entry {
        e.remove();
    }
    drop(session); // closes the fifo: logind ends the session
    code.unwrap_or(125)
}

/// WSLg in a user's runtime directory, as WSL's own systemd support does: `wayland-0` and
/// `pulse/native` linked to WSLg's sockets, so WAYLAND_DISPLAY and PulseAudio's default
/// work with logind's XDG_RUNTIME_DIR.
///
/// The runtime directory belongs to the user, who may rename and replace anything in it
/// at any moment: root works there only through descriptors (each directory opened with
/// O_NOFOLLOW and its owner checked, entries made relative to it), never by path, so no
/// swapped-in symlink can lead it elsewhere.
fn wslg_links(runtime: &str, user: &User) {
    let wslg = Path::new("/mnt/wslg");
    if !wslg.is_dir() {
        return;
    }
    let Some(dir) = sys::open_dir_owned(None, Path::new(runtime), user.uid) else {
        return;
    };
    let wayland = wslg.join("runtime-dir/wayland-0");
    if wayland.exists() {
        let _ = sys::symlink_owned(&dir, &wayland, "wayland-0", user.uid, user.gid);
    }
    let pulse = wslg.join("PulseServer");
    // Only a `pulse` directory made here (a user's own one is theirs to set up), opened
    // again by descriptor: it must still be the root-owned directory just made.
    if pulse.exists()
        && sys::mkdir_at(&dir, "pulse", 0o700).is_ok()
        && let Some(pdir) = sys::open_dir_owned(Some(&dir), Path::new("pulse"), 0)
    {
        let _ = sys::symlink_owned(&pdir, &pulse, "native", user.uid, user.gid);
        let _ = nix::unistd::fchown(&pdir, Some(user.uid.into()), Some(user.gid.into()));
    }
}

fn working_dir(cmd: &Command, user: &User) -> PathBuf {
    if let Some(d) = &cmd.cwd {
        return d.clone();
    }
    match &cmd.caller_cwd {
        Some(d) if d.is_dir() => d.clone(),
        _ => user.home.clone(),
    }
}

/// The command's process: credentials, directory, exec. Never returns.
fn exec_command(
    cmd: &Command,
    user: &User,
    groups: &[u32],
    cwd: &Path,
    env: &[OsString],
    out: Option<OwnedFd>,
) -> ! {
    shim::reset_signals();
    let fail = |msg: String, code: i32| -> ! {
        let _ = writeln!(std::io::stderr(), "distrod: {msg}");
        // SAFETY: leave the fork.
        unsafe { libc::_exit(code) }
    };
    if let Some(w) = out {
        let _ = sys::dup2_std(&w, 1);
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = sys::dup2_std(&null, 2);
        }
    }
    if user.uid != 0 || cmd.user.is_some() {
        let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        if let Err(e) = nix::unistd::setgroups(&gids)
            .and_then(|_| nix::unistd::setgid(Gid::from_raw(user.gid)))
            .and_then(|_| nix::unistd::setuid(Uid::from_raw(user.uid)))
        {
            fail(format!("cannot switch to user {}: {e}", user.name), 126);
        }
    }
    if let Err(e) = nix::unistd::chdir(cwd) {
        if cmd.cwd.is_some() {
            fail(format!("cannot change to {}: {e}", cwd.display()), 126);
        }
        let _ = nix::unistd::chdir(&user.home).or_else(|_| nix::unistd::chdir("/"));
    }
    let argv = to_cstrings(&cmd.argv);
    let envp = to_cstrings(env);
    // execvpe(3) searches PATH of *our* environment: point it at the session's PATH.
    if let Some(p) = env.iter().find_map(|e| e.as_bytes().strip_prefix(b"PATH=")) {
        // SAFETY: single-threaded child.
        unsafe { std::env::set_var("PATH", OsStr::from_bytes(p)) };
    }
    let e = match &cmd.program {
        Some(p) => {
            let prog = CString::new(p.as_os_str().as_encoded_bytes()).unwrap_or_default();
            nix::unistd::execve(&prog, &argv, &envp).unwrap_err()
        }
        None => nix::unistd::execvpe(&argv[0], &argv, &envp).unwrap_err(),
    };
    let code = if e == Errno::ENOENT { 127 } else { 126 };
    fail(
        format!("{}: {}", cmd.argv[0].to_string_lossy(), e.desc()),
        code,
    )
}

/// C strings of arguments or `K=V` entries; an interior NUL (which the kernel never
/// passes) becomes an empty string rather than a failure.
pub fn to_cstrings(v: &[OsString]) -> Vec<CString> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).unwrap_or_default())
        .collect()
}
