//! Starting the container: one at a time (the state lock), detached from the caller, and
//! reporting back when systemd says READY=1 over the notify socket, or, for sessions, as
//! soon as what a session needs answers ([`readiness`]).
//!
//! Process shape: the caller forks an intermediate process that calls setsid, moves into
//! the container's cgroup, unshares the namespaces and forks the shim, which becomes PID 1
//! of the new pid namespace (unshare(CLONE_NEWPID) only affects children). The
//! intermediate exits at once, so systemd is re-parented to the distro's init: nothing of
//! the caller (terminal, process group, session) stays attached to it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{ForkResult, fork, setsid};

use super::mounts::{self, Inputs};
use super::readiness::{self, Phase};
use super::state::{self, NAMESPACES, NOTIFY_SOCKET, State};
use super::{
    Context, Error, Result, cgroup, history, identity, idle, keeper, procstate, shim, stop, sys,
};

/// How to launch a container.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// None: the running distro itself.
    pub rootfs: Option<PathBuf>,
    /// Wait at most this long for `until`; None: return once systemd was started.
    pub wait: Option<Duration>,
    /// What to wait for, when `wait` is set.
    pub until: Until,
    /// The run-time adjustments of the container.
    pub tuning: Tuning,
    /// Power the container off cleanly when the distro's last WSL session has ended
    /// ([`idle`]); None: never.
    pub idle: Option<idle::Options>,
}

/// What a launch waits for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Until {
    /// The whole boot: READY=1 (`distrod launch`).
    #[default]
    Booted,
    /// What a session needs ([`readiness::sessions_ready`]), or READY=1 if that comes
    /// first: the login hook and `distrod exec`.
    Sessions,
}

/// The run-time adjustments a launch makes (see [`mounts`]): from /etc/distrod.toml and
/// from the environment of the session that starts the container.
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    /// Resolvers for the container's own resolv.conf (none: the distro's).
    pub dns: Vec<IpAddr>,
    /// Units masked besides [`mounts::MASKED`], and units of that list left alone.
    pub mask: Vec<String>,
    /// See `mask`.
    pub unmask: Vec<String>,
    /// Re-hook login accounts when /etc/passwd changes: `hook.rehook`, where the accounts
    /// are hooked at all (which the distro integration knows: `distro::tuning`).
    pub rehook: bool,
    /// The launching session's WSL variables, which services get too.
    pub session_env: Vec<(String, String)>,
}

/// Session variables that services get as well (interop through the stable
/// `/run/WSL/1_interop`, which follows a live session).
const SERVICE_ENV: [&str; 5] = [
    "WSL_DISTRO_NAME",
    "WSLENV",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "PULSE_SERVER",
];

/// Whoever starts the container (any user, through the login hook) sets these variables
/// for root's services, so each is taken only in the form WSL itself gives it (wsl.md):
/// `DISPLAY` `:N` (WSLg's X server), `WAYLAND_DISPLAY` `wayland-N`, `PULSE_SERVER` WSLg's
/// socket `unix:/mnt/wslg/PulseServer`, `WSL_DISTRO_NAME` a name WSL accepts (letters,
/// digits, `.`, `_`, `-`, at most 64), `WSLENV` `NAME[/flags]` items of environment
/// variable names with the flags p, l, u, w, joined by `:`. Anything else (host names,
/// addresses, paths, other sockets) is dropped.
pub fn service_value_ok(key: &[u8], value: &[u8]) -> bool {
    fn digits(v: &[u8]) -> bool {
        !v.is_empty() && v.len() <= 4 && v.iter().all(u8::is_ascii_digit)
    }
    fn name(v: &[u8]) -> bool {
        !v.is_empty()
            && v.len() <= 128
            && !v[0].is_ascii_digit()
            && v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    }
    match key {
        b"DISPLAY" => value.strip_prefix(b":").is_some_and(digits),
        b"WAYLAND_DISPLAY" => value.strip_prefix(b"wayland-").is_some_and(digits),
        b"PULSE_SERVER" => value == b"unix:/mnt/wslg/PulseServer",
        b"WSL_DISTRO_NAME" => {
            !value.is_empty()
                && value.len() <= 64
                && value
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        }
        b"WSLENV" => {
            !value.is_empty()
                && value.len() <= 4096
                && value.split(|b| *b == b':').all(|item| {
                    let mut parts = item.splitn(2, |b| *b == b'/');
                    let n = parts.next().unwrap_or_default();
                    let flags = parts.next().unwrap_or_default();
                    name(n) && flags.len() <= 4 && flags.iter().all(|f| b"pluw".contains(f))
                })
        }
        _ => false,
    }
}

/// The session values services get: [`SERVICE_ENV`] from `env`, each checked by
/// [`service_value_ok`] (a refused one is logged at debug level).
pub fn service_env_of(env: &[(OsString, OsString)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in SERVICE_ENV {
        let Some((_, v)) = env.iter().find(|(k, _)| k.as_bytes() == key.as_bytes()) else {
            continue;
        };
        match std::str::from_utf8(v.as_bytes()) {
            Ok(text) if service_value_ok(key.as_bytes(), v.as_bytes()) => {
                out.push((key.to_string(), text.to_string()))
            }
            _ => tracing::debug!(key, value = ?v, "not passed on to services"),
        }
    }
    out
}

/// The keeper's idle-stop options for a launch from this process ([`idle`]): under WSL, unless
/// `container.stop_when_idle` is off; the PATH of this process (the launching session's)
/// says where the Windows user's `.wslconfig` is.
pub fn idle_options(config: &crate::config::Config) -> Option<idle::Options> {
    (config.stop_when_idle && super::drives::is_wsl()).then(|| idle::Options {
        path: std::env::var_os("PATH").map(|p| p.as_bytes().to_vec()),
        margin: Duration::from_secs(config.idle_stop_margin),
        from_session: idle::in_session(),
    })
}

impl Options {
    /// The launch a session starts when the container does not run (the login hook,
    /// `distrod exec`): the running distro, waited for until sessions may enter (at most
    /// `container.boot_timeout`), with `tuning` and the idle stop of /etc/distrod.toml.
    pub fn for_sessions(config: &crate::config::Config, tuning: Tuning) -> Options {
        Options {
            rootfs: None,
            wait: Some(Duration::from_secs(config.boot_timeout)),
            until: Until::Sessions,
            tuning,
            idle: idle_options(config),
        }
    }
}

impl Tuning {
    /// From /etc/distrod.toml and this process's environment (which may hold any bytes).
    pub fn from_config(config: &crate::config::Config) -> Tuning {
        let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        Tuning {
            dns: config.dns.clone(),
            mask: config.mask.clone(),
            unmask: config.unmask.clone(),
            rehook: config.rehook,
            session_env: service_env_of(&env),
        }
    }

    fn masks(&self) -> Vec<String> {
        let mut v: Vec<String> = mounts::MASKED
            .iter()
            .map(|(u, _)| u.to_string())
            .filter(|u| !self.unmask.contains(u))
            .collect();
        for u in &self.mask {
            if !v.contains(u) {
                v.push(u.clone());
            }
        }
        v
    }

    fn service_env(&self, interop: bool) -> Vec<(String, String)> {
        let mut env = self.session_env.clone();
        if interop {
            env.push((
                "WSL_INTEROP".into(),
                format!("{}/1_interop", super::interop::RUN_WSL),
            ));
        }
        env
    }
}

/// Where `path` (absolute, inside `root`) ends up after following symlinks in its last
/// component, as a path inside `root`; lexical, so a missing target is fine (the bind
/// creates it).
pub fn resolve_in(root: &Path, path: &Path) -> PathBuf {
    let mut cur = path.to_path_buf();
    for _ in 0..16 {
        let full = root.join(cur.strip_prefix("/").unwrap_or(&cur));
        match std::fs::read_link(&full) {
            Ok(t) => {
                let joined = if t.is_absolute() {
                    t
                } else {
                    cur.parent().unwrap_or(Path::new("/")).join(t)
                };
                cur = normalize(&joined);
            }
            Err(_) => break,
        }
    }
    cur
}

/// A bind needs an existing target; one that is missing may be created only in the
/// container's own /run, never in the distro's tree.
fn bindable(root: &Path, target: &Path) -> bool {
    let ok = target.starts_with("/run")
        || root
            .join(target.strip_prefix("/").unwrap_or(target))
            .is_file();
    if !ok {
        tracing::warn!(
            "dns: {} does not exist; the container keeps the distro's resolvers",
            target.display()
        );
    }
    ok
}

fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
            _ => {}
        }
    }
    out
}

/// What [`launch`] did.
#[derive(Debug)]
pub enum Outcome {
    /// A new container was started.
    Started {
        /// Its record.
        state: State,
        /// From the start of the launch until it returned.
        elapsed: Duration,
        /// What `until` asked for was reached in time (false with `--no-wait`).
        ready: bool,
    },
    /// A container was running already (its record): the launch waited for it as `until`
    /// and `wait` say, and started nothing.
    AlreadyRunning(State),
}

/// The namespaces the container gets besides mount and pid: uts so that systemd may set
/// the hostname from /etc/hostname without renaming the distro; ipc so that System V IPC
/// and POSIX message queues (which systemd cleans up for users that log out, see
/// RemoveIPC= in logind.conf(5)) are the container's own; cgroup so that systemd sees
/// the container's cgroup as its root and manages a tree of its own there.
fn clone_flags() -> CloneFlags {
    CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWCGROUP
}

/// Starts the container unless it runs; concurrent calls start it exactly once. A systemd
/// that is alive but not ready when `wait` runs out is returned as it is (`ready` false in
/// its record), not as an error: only a systemd that cannot start is one.
///
/// The state lock is held only while systemd is started and recorded, not while it boots,
/// so that `stop` (and every other launch) never waits for a boot: the launcher waits for
/// its `until` after releasing it and then marks the record ready (sessions may enter); a
/// concurrent call finds the record and waits for that mark ([`wait_marked_ready`]) for as
/// long as its own `wait`, and, for [`Until::Booted`], then for the boot to finish.
pub fn launch(opts: &Options) -> Result<Outcome> {
    launch_with(opts, &mut |_| {})
}

/// [`launch`], telling `progress` what it waits for each time that changes.
pub fn launch_with(opts: &Options, progress: &mut dyn FnMut(Phase)) -> Result<Outcome> {
    let rootfs = match &opts.rootfs {
        Some(dir) => {
            let dir = dir
                .canonicalize()
                .ctx(|| format!("rootfs {}", dir.display()))?;
            if !dir.is_dir() {
                return Err(Error::Other(format!(
                    "{} is not a directory",
                    dir.display()
                )));
            }
            (dir != Path::new("/")).then_some(dir)
        }
        None => None,
    };
    let t0 = Instant::now();
    let (st, notify) = {
        let lock = state::lock()?;
        if let Some(st) = state::load(&lock) {
            if st.is_alive() {
                drop(lock);
                return wait_other_launch(st, opts, progress).map(Outcome::AlreadyRunning);
            }
            tracing::debug!(
                pid = st.pid,
                "removing the record of a container that is gone"
            );
            stop::remove_leftovers(&lock, &st)?;
        }
        start(&lock, opts, rootfs)?
    };
    // Before any thread (the caller's status line) exists: it forks.
    let duties = keeper::Duties {
        cover: st.run_before.is_some(),
        idle: opts.idle.clone(),
    };
    if duties.any() {
        keeper::spawn(&st, &duties);
    }
    let Some(timeout) = opts.wait else {
        return Ok(Outcome::Started {
            state: st,
            elapsed: t0.elapsed(),
            ready: false,
        });
    };
    if let Err(e) = wait_ready(&notify, &st, timeout, opts.until, progress) {
        if st.is_alive() {
            // Slow, not broken: the caller enters a systemd that is still booting rather
            // than leave anyone outside it, and so do later callers, at once (the record
            // says nobody waits for this boot any more).
            tracing::debug!("{}", super::chain(&e));
            if duties.cover {
                super::privbus::cover_when_ready(Duration::from_secs(2));
            }
            mark_ready(&st);
            return Ok(Outcome::Started {
                state: st,
                elapsed: t0.elapsed(),
                ready: false,
            });
        }
        if let Ok(lock) = state::lock()
            && state::load(&lock).is_some_and(|cur| cur.same_container(&st))
        {
            let _ = stop::remove_leftovers(&lock, &st);
        }
        return Err(e);
    }
    let mut st = st;
    st.ready = true;
    if duties.cover {
        super::privbus::cover_when_ready(Duration::from_secs(2));
    }
    mark_ready(&st);
    Ok(Outcome::Started {
        state: st,
        elapsed: t0.elapsed(),
        ready: true,
    })
}

/// Marks the record ready, under the lock, and only if it is still this container's (a
/// stop may have come in between).
fn mark_ready(st: &State) {
    if let Ok(lock) = state::lock()
        && let Some(mut cur) = state::load(&lock).filter(|cur| cur.same_container(st))
    {
        cur.ready = true;
        if let Err(e) = state::save(&lock, &cur) {
            tracing::debug!("{}", super::chain(&e));
        }
    }
}

/// Under the lock: the cgroup, the notify socket, the mount plan, systemd started and
/// recorded (not yet ready unless nobody waits for it).
fn start(
    lock: &state::Lock,
    opts: &Options,
    rootfs: Option<PathBuf>,
) -> Result<(State, UnixDatagram)> {
    let cg = container_cgroup()?;

    let _ = std::fs::remove_file(NOTIFY_SOCKET);
    let notify = UnixDatagram::bind(NOTIFY_SOCKET).ctx(|| format!("bind {NOTIFY_SOCKET}"))?;
    let root = rootfs.clone().unwrap_or_else(|| "/".into());
    let t = &opts.tuning;
    let inputs = Inputs {
        proc_sys_ro: sys::is_read_only(Path::new("/proc/sys")),
        wsl_paths: if rootfs.is_some() {
            mounts::wsl_paths_present()
        } else {
            vec![]
        },
        has_console: root.join("dev/console").exists() || Path::new("/dev/console").exists(),
        binfmt: Path::new("/proc/sys/fs/binfmt_misc/status").exists(),
        wslg: Path::new("/mnt/wslg/.X11-unix").is_dir(),
        masks: t.masks(),
        resolv_target: (!t.dns.is_empty())
            .then(|| resolve_in(&root, Path::new("/etc/resolv.conf")))
            .filter(|p| bindable(&root, p)),
        dns: t.dns.clone(),
        service_env: t.service_env(Path::new(super::interop::RUN_WSL).is_dir()),
        rehook: (t.rehook && rootfs.is_none() && Path::new(super::INSTALLED_BINARY).is_file())
            .then(|| PathBuf::from(super::INSTALLED_BINARY)),
        portproxy_unit: (rootfs.is_none() && Path::new(mounts::PORTPROXY_UNIT_FILE).is_file())
            .then(|| PathBuf::from(mounts::PORTPROXY_UNIT_FILE)),
        hide_drives: hidden_drives(),
        rootfs: rootfs.clone(),
    };
    let steps = mounts::plan(&inputs);
    tracing::debug!(?steps, "mount plan");
    // The distro's /run is the container's too: what is in it now stays after the stop.
    let run_before = inputs.rootfs.is_none().then(|| {
        std::fs::read_dir("/run")
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    });

    let pid = spawn(&cg, &steps)?;
    let launched_at = state::now();
    let start_time = sys::start_time(pid)
        .ok_or_else(|| Error::Other(format!("systemd (pid {pid}) exited at once")))?;
    let st = State {
        pid,
        start_time,
        namespaces: NAMESPACES
            .iter()
            .filter_map(|n| Some((n.to_string(), sys::ns_id(pid, n)?)))
            .collect(),
        rootfs: rootfs.unwrap_or_else(|| "/".into()),
        cgroup: cg,
        launched_at,
        // Marked by whoever finds sessions may enter: the launcher if it waits, else the
        // first session that does (see `wait_marked_ready`).
        ready: false,
        previous: history::begin(launched_at),
        keeper: None,
        run_before,
    };
    state::save(lock, &st)?;
    Ok((st, notify))
}

/// This distro's container cgroup ([`cgroup::container_dir`]), made ready for a new
/// container, under the state lock. Only this distro's own cgroup is ever touched:
/// - held by processes this distro cannot see (another distro's: a copy of this one, made
///   by `wsl --export` and `--import`, that carries the same id): this distro takes a new
///   id ([`identity::renew`]) and so a cgroup of its own;
/// - held by processes it can see but no record names: refused (someone else manages
///   them);
/// - left empty by a container that ended without `distrod stop` (killed with the
///   distro): removed and made anew.
fn container_cgroup() -> Result<PathBuf> {
    let mut cg = cgroup::container_dir(&identity::get())?;
    if cgroup::is_populated(&cg) && !cgroup::holds_visible(&cg) {
        let id = identity::renew()?;
        tracing::warn!(
            "{} belongs to another distro with this distro's id (a copy of it?); this \
             distro's id is now {id}",
            cg.display()
        );
        cg = cgroup::container_dir(&id)?;
    }
    if cgroup::is_populated(&cg) {
        return Err(Error::Other(format!(
            "{} already holds processes: is another container manager using it?",
            cg.display()
        )));
    }
    if cg.exists() {
        let n = cgroup::remove_tree(&cg)?;
        tracing::debug!(n, "removed a stale container cgroup {}", cg.display());
    }
    std::fs::create_dir_all(&cg).ctx(|| format!("create cgroup {}", cg.display()))?;
    Ok(cg)
}

/// The launching session's Windows drives when it is not a plain session (services get
/// the plain view only, see [`super::drives`]); none outside WSL.
fn hidden_drives() -> Vec<PathBuf> {
    if !super::drives::is_wsl() {
        return vec![];
    }
    let drives = super::drives::drives_of("self", &super::drives::this_root());
    if drives.is_empty() || super::drives::query_elevation() == Some(false) {
        return vec![];
    }
    drives.into_iter().map(|d| d.mount_point).collect()
}

/// A container another launch started: wait for what `opts.until` asks, as far as
/// `opts.wait` allows: first for its launcher's mark, then, for [`Until::Booted`], for the
/// manager to leave the starting states (polled over its bus every 250 ms, as WSL's own
/// systemd mode polls `systemctl is-system-running`).
fn wait_other_launch(st: State, opts: &Options, progress: &mut dyn FnMut(Phase)) -> Result<State> {
    let Some(timeout) = opts.wait else {
        return Ok(st);
    };
    let t0 = Instant::now();
    if !st.ready {
        progress(Phase::OtherLaunch);
    }
    let st = wait_marked_ready(st, timeout, opts.until)?;
    if opts.until == Until::Booted && st.ready {
        progress(Phase::Boot);
        while readiness::system_state(st.pid).is_some_and(|s| readiness::is_booting(&s)) {
            if t0.elapsed() > timeout {
                tracing::debug!("{}", not_ready(st.pid, timeout));
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    Ok(st)
}

/// Waits (without the lock) until the record's launcher has marked it ready, systemd
/// exits, or `timeout` runs out. It also asks systemd itself every 100 ms (a launch with
/// `--no-wait` marks nothing): [`readiness::sessions_ready`] for [`Until::Sessions`], the
/// end of the boot for [`Until::Booted`]; and marks the record when that holds.
fn wait_marked_ready(st: State, timeout: Duration, until: Until) -> Result<State> {
    let deadline = Instant::now() + timeout;
    let mut cur = st;
    let mut probed: Option<Instant> = None;
    let holds = |pid: i32| match until {
        Until::Sessions => readiness::sessions_ready(pid).is_ok(),
        Until::Booted => readiness::system_state(pid).is_some_and(|s| !readiness::is_booting(&s)),
    };
    while !cur.ready {
        if probed.is_none_or(|t| t.elapsed() >= Duration::from_millis(100)) {
            probed = Some(Instant::now());
            if holds(cur.pid) {
                cur.ready = true;
                mark_ready(&cur);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        match state::read() {
            Some(now) if now.same_container(&cur) => cur = now,
            _ if cur.is_alive() => {}
            _ => {
                return Err(Error::Other(format!(
                    "systemd (pid {}) exited while booting",
                    cur.pid
                )));
            }
        }
        if !cur.ready && Instant::now() > deadline {
            // Still booting: entered anyway (see `launch`).
            tracing::debug!("{}", not_ready(cur.pid, timeout));
            return Ok(cur);
        }
    }
    Ok(cur)
}

fn not_ready(pid: i32, timeout: Duration) -> Error {
    Error::Other(format!(
        "systemd (pid {pid}) did not report ready within {} s; it is still running \
         (`distrod status`, `distrod stop`)",
        timeout.as_secs()
    ))
}

/// [`launch`] for the login hook, run where the calling user cannot reach it: a child in
/// a session of its own (no controlling terminal, so no Ctrl-Z, Ctrl-C or hang-up of the
/// user's terminal reaches it; it is root's, so the user cannot signal it either), with
/// /dev/null for stdio (a pipe the user stops reading cannot block it), terminal signals
/// ignored and the clean process state of [`procstate`]. The caller only reads its report:
/// a `wait PHASE` line each time what it waits for changes (passed to `progress`), then
/// one `ok STATE` or `error TEXT` line; if the caller is stopped or killed, the launch
/// still completes.
pub fn launch_detached(opts: &Options, progress: &mut dyn FnMut(Phase)) -> Result<State> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: the hook is single-threaded; the child runs the launch and exits.
    match unsafe { fork() }.ctx(|| "fork the launcher".into())? {
        ForkResult::Child => {
            drop(r);
            let mut w = File::from(w);
            let _ = setsid();
            procstate::ignore_terminal_signals();
            if let Ok(null) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                for fd in 0..3 {
                    let _ = sys::dup2_std(&null, fd);
                }
            }
            procstate::clean();
            let mut tell = |p: Phase| {
                let _ = writeln!(w, "wait {}", p.word());
            };
            let report = match launch_with(opts, &mut tell) {
                Ok(Outcome::Started { state, .. } | Outcome::AlreadyRunning(state)) => {
                    format!(
                        "ok {}",
                        serde_json::to_string(&state).expect("state serialises")
                    )
                }
                Err(e) => format!("error {}", super::chain(&e)),
            };
            let _ = writeln!(w, "{}", report.replace('\n', " "));
            // SAFETY: leave the fork without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut last = None;
            let mut read = Ok(());
            for line in std::io::BufReader::new(File::from(r)).lines() {
                match line {
                    Ok(l) => match l.strip_prefix("wait ").map(Phase::from_word) {
                        Some(Some(p)) => progress(p),
                        Some(None) => {}
                        None => last = Some(l),
                    },
                    Err(e) => {
                        read = Err(e);
                        break;
                    }
                }
            }
            let _ = nix::sys::wait::waitpid(child, None);
            read.ctx(|| "read the launcher's report".into())?;
            parse_detached(last.as_deref().unwrap_or_default())
        }
    }
}

fn parse_detached(line: &str) -> Result<State> {
    if let Some(e) = line.strip_prefix("error ") {
        return Err(Error::Other(e.to_string()));
    }
    line.strip_prefix("ok ")
        .and_then(|j| serde_json::from_str(j).ok())
        .ok_or_else(|| Error::Other("the launcher exited without a report".into()))
}

/// Forks the intermediate and the shim; returns systemd's pid once it exec'd (or the
/// error that kept it from doing so). Both children report over one close-on-exec pipe:
/// the intermediate writes `pid N`, the shim `error ...` on failure; EOF means the shim
/// exec'd and the intermediate is gone.
fn spawn(cg: &Path, steps: &[mounts::Step]) -> Result<i32> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: single-threaded here; the child only makes syscalls and exits or execs.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(r);
            let mut w = File::from(w);
            let res = (|| -> Result<()> {
                setsid().ctx(|| "setsid".into())?;
                // systemd inherits this process's state: make it the distro's, not the
                // caller's (`distrod launch` as root, or the hook's launcher again).
                procstate::clean();
                // Before unshare(CLONE_NEWCGROUP): the new namespace is rooted at the
                // cgroup the caller is in at that moment.
                cgroup::join(cg)?;
                unshare(clone_flags()).ctx(|| "unshare the container's namespaces".into())?;
                // SAFETY: as above.
                match unsafe { fork() }.ctx(|| "fork PID 1".into())? {
                    ForkResult::Child => shim::run(steps, w.try_clone().expect("dup")),
                    ForkResult::Parent { child } => {
                        let _ = writeln!(w, "pid {child}");
                        Ok(())
                    }
                }
            })();
            if let Err(e) = res {
                let _ = writeln!(w, "error {}", super::chain(&e));
            }
            // SAFETY: leave the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let _ = nix::sys::wait::waitpid(child, None);
            let mut text = String::new();
            File::from(r)
                .read_to_string(&mut text)
                .ctx(|| "read the launch report".into())?;
            parse_report(&text)
        }
    }
}

fn parse_report(text: &str) -> Result<i32> {
    if let Some(e) = text.lines().find_map(|l| l.strip_prefix("error ")) {
        return Err(Error::Other(format!("cannot start the container: {e}")));
    }
    text.lines()
        .find_map(|l| l.strip_prefix("pid ")?.trim().parse().ok())
        .ok_or_else(|| Error::Other("cannot start the container (no report)".into()))
}

/// sd_notify(3): systemd as a container's PID 1 sends READY=1 to $NOTIFY_SOCKET when the
/// boot transaction has finished. For [`Until::Sessions`], [`readiness::sessions_ready`]
/// is asked between reads, every 50 ms, and ends the wait as soon as it holds.
fn wait_ready(
    sock: &UnixDatagram,
    st: &State,
    timeout: Duration,
    until: Until,
    progress: &mut dyn FnMut(Phase),
) -> Result<()> {
    let t0 = Instant::now();
    let deadline = t0 + timeout;
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .ctx(|| "notify socket".into())?;
    let mut buf = [0u8; 4096];
    let mut phase = None;
    let mut tell = |p: Phase, phase: &mut Option<Phase>| {
        if *phase != Some(p) {
            *phase = Some(p);
            progress(p);
        }
    };
    if until == Until::Booted {
        tell(Phase::Boot, &mut phase);
    }
    loop {
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]);
                tracing::debug!(%msg, "sd_notify");
                if msg.lines().any(|l| l == "READY=1") {
                    return Ok(());
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e).ctx(|| "read the notify socket".into()),
        }
        if until == Until::Sessions {
            match readiness::sessions_ready(st.pid) {
                Ok(()) => {
                    tracing::debug!(
                        elapsed_ms = t0.elapsed().as_millis() as u64,
                        "logind answers: sessions may enter"
                    );
                    return Ok(());
                }
                Err(p) => tell(p, &mut phase),
            }
        }
        if !st.is_alive() {
            return Err(Error::Other(format!(
                "systemd (pid {}) exited while booting",
                st.pid
            )));
        }
        if Instant::now() > deadline {
            return Err(not_ready(st.pid, timeout));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn only_wsls_own_session_values_reach_services() {
        for (k, v) in [
            ("DISPLAY", ":0"),
            ("DISPLAY", ":10"),
            ("WAYLAND_DISPLAY", "wayland-0"),
            ("PULSE_SERVER", "unix:/mnt/wslg/PulseServer"),
            ("WSL_DISTRO_NAME", "Ubuntu-24.04"),
            ("WSL_DISTRO_NAME", "my_distro.2"),
            ("WSLENV", "WT_SESSION:WT_PROFILE_ID/u"),
            ("WSLENV", "USERPROFILE/pu:GOPATH/l"),
        ] {
            assert!(
                super::service_value_ok(k.as_bytes(), v.as_bytes()),
                "{k}={v}"
            );
        }
        for (k, v) in [
            ("DISPLAY", ""),
            ("DISPLAY", "evil.example.org:0"),
            ("DISPLAY", "10.0.0.1:0"),
            ("DISPLAY", ":0.0x"),
            ("DISPLAY", ":"),
            ("WAYLAND_DISPLAY", "../../../etc/x"),
            ("WAYLAND_DISPLAY", "/run/user/1000/wayland-0"),
            ("WAYLAND_DISPLAY", "wayland-"),
            ("PULSE_SERVER", "tcp:10.0.0.1"),
            ("PULSE_SERVER", "unix:/tmp/../mnt/wslg/PulseServer"),
            ("PULSE_SERVER", "unix:/home/m/sock"),
            ("WSL_DISTRO_NAME", "x;y z"),
            ("WSL_DISTRO_NAME", "a\nb"),
            ("WSL_DISTRO_NAME", &"x".repeat(65)),
            ("WSLENV", "A/x:B"),
            ("WSLENV", "A::B"),
            ("WSLENV", "1A"),
            ("WSLENV", "$(x)"),
            ("HOME", "/root"),
        ] {
            assert!(
                !super::service_value_ok(k.as_bytes(), v.as_bytes()),
                "{k}={v}"
            );
        }
        // Not UTF-8, or not a variable services get: dropped.
        use std::os::unix::ffi::OsStringExt;
        let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = vec![
            (
                "DISPLAY".into(),
                std::ffi::OsString::from_vec(b":\xff".to_vec()),
            ),
            ("WAYLAND_DISPLAY".into(), "wayland-1".into()),
            ("PATH".into(), "/bin".into()),
            (std::ffi::OsString::from_vec(b"X\xff".to_vec()), "1".into()),
        ];
        assert_eq!(
            super::service_env_of(&env),
            [("WAYLAND_DISPLAY".to_string(), "wayland-1".to_string())]
        );
    }

    #[test]
    fn resolv_conf_symlinks_are_followed_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(
            "../run/resolvconf/resolv.conf",
            d.path().join("etc/resolv.conf"),
        )
        .unwrap();
        assert_eq!(
            super::resolve_in(d.path(), Path::new("/etc/resolv.conf")),
            Path::new("/run/resolvconf/resolv.conf")
        );
        std::fs::remove_file(d.path().join("etc/resolv.conf")).unwrap();
        std::fs::write(d.path().join("etc/resolv.conf"), "").unwrap();
        assert_eq!(
            super::resolve_in(d.path(), Path::new("/etc/resolv.conf")),
            Path::new("/etc/resolv.conf")
        );
    }

    #[test]
    fn reports() {
        assert_eq!(super::parse_report("pid 42\n").unwrap(), 42);
        let e = super::parse_report("pid 42\nerror mount proc: EPERM\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot start the container: mount proc: EPERM"
        );
        assert!(super::parse_report("").is_err());
    }

    #[test]
    fn detached_reports() {
        let st = super::State {
            pid: 7,
            start_time: 9,
            namespaces: Default::default(),
            rootfs: "/".into(),
            cgroup: "/sys/fs/cgroup/distrod".into(),
            launched_at: 1.0,
            ready: true,
            previous: Some(super::history::Record {
                launched_at: 0.5,
                ended: None,
            }),
            keeper: None,
            run_before: Some(vec!["WSL".into()]),
        };
        let ok = format!("ok {}", serde_json::to_string(&st).unwrap());
        assert_eq!(super::parse_detached(&ok).unwrap(), st);
        let e = super::parse_detached("error cannot start: x").unwrap_err();
        assert_eq!(e.to_string(), "cannot start: x");
        assert!(super::parse_detached("").is_err());
        assert!(super::parse_detached("ok {").is_err());
    }
}
