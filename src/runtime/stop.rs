//! Powering the container off: SIGRTMIN+4 to systemd (systemd(1): "poweroff"; it ignores
//! SIGTERM as PID 1), SIGKILL after a timeout, then removing what it leaves behind: its
//! empty cgroup tree, the state record and the notify socket.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::state::{self, Lock, State};
use super::{Context, Error, Result, cgroup, sys};

/// What a stop did.
#[derive(Debug)]
pub enum Outcome {
    /// The container was running and is gone now.
    Stopped {
        /// Its systemd's pid (in the distro's pid namespace).
        pid: i32,
        /// How long systemd took to end.
        elapsed: Duration,
        /// It had to be SIGKILLed.
        killed: bool,
    },
    /// No container ran (what a stale record names was cleaned up).
    NotRunning,
}

/// `distrod stop`: powers the running container off (SIGKILL at once with `force`, else
/// after `timeout`) and removes what it leaves, under the state lock.
pub fn stop(force: bool, timeout: Duration) -> Result<Outcome> {
    let lock = state::lock()?;
    let Some(st) = state::load(&lock) else {
        return Ok(Outcome::NotRunning);
    };
    stop_locked(&lock, st, force, timeout, "stop")
}

/// The keeper's idle stop: under the state lock, and only if the container recorded then
/// is still running and `still` holds for it (no session came meanwhile). Ok(false): it
/// did not hold, nothing was done. A launch waiting for the lock meanwhile boots afresh.
pub fn stop_if(still: impl Fn(&State) -> bool, timeout: Duration, how: &str) -> Result<bool> {
    let lock = state::lock()?;
    let Some(st) = state::load(&lock).filter(|st| st.is_alive() && still(st)) else {
        return Ok(false);
    };
    stop_locked(&lock, st, false, timeout, how)?;
    Ok(true)
}

fn stop_locked(
    lock: &Lock,
    st: State,
    force: bool,
    timeout: Duration,
    how: &str,
) -> Result<Outcome> {
    // The pidfd first, then the identity check: from here on a reused pid cannot be hit.
    let pidfd = sys::pidfd_open(st.pid).ok();
    let Some(pidfd) = pidfd.filter(|_| st.is_alive()) else {
        remove_leftovers(lock, &st)?;
        return Ok(Outcome::NotRunning);
    };
    let t0 = Instant::now();
    let pid = Pid::from_raw(st.pid);
    let mut killed = force;
    if force {
        signal(pid, Signal::SIGKILL)?;
    } else {
        // SIGRTMIN+4 is not a nix `Signal`; libc computes SIGRTMIN at run time.
        let poweroff = libc::SIGRTMIN() + 4;
        // SAFETY: kill(2) on a pid we hold a pidfd for.
        let r = unsafe { libc::kill(st.pid, poweroff) };
        nix::errno::Errno::result(r).ctx(|| format!("signal systemd (pid {})", st.pid))?;
    }
    if !sys::wait_exited(&pidfd, timeout) {
        tracing::debug!("systemd did not power off in time; SIGKILL");
        signal(pid, Signal::SIGKILL)?;
        killed = true;
        if !sys::wait_exited(&pidfd, Duration::from_secs(10)) {
            return Err(Error::Other(format!(
                "systemd (pid {}) survived SIGKILL",
                st.pid
            )));
        }
    }
    // Before the record goes: whoever finds no record finds this end written.
    if !killed {
        super::history::end(st.launched_at, how);
    }
    end_keeper(&st);
    remove_leftovers(lock, &st)?;
    Ok(Outcome::Stopped {
        pid: st.pid,
        elapsed: t0.elapsed(),
        killed,
    })
}

/// The container's keeper goes with it (unless it is the one stopping it): by pidfd, once
/// its start time says the pid is still the keeper's.
fn end_keeper(st: &State) {
    let Some((pid, started)) = st.keeper else {
        return;
    };
    if pid == std::process::id() as i32 {
        return;
    }
    let Ok(fd) = sys::pidfd_open(pid) else {
        return;
    };
    if sys::start_time(pid) != Some(started) {
        return;
    }
    // SAFETY: pidfd_send_signal on our pidfd, no siginfo, no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0u32,
        )
    };
    if !sys::wait_exited(&fd, Duration::from_secs(2)) {
        tracing::debug!(pid, "the keeper did not end");
    }
}

fn signal(pid: Pid, sig: Signal) -> Result<()> {
    match kill(pid, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("send {sig} to systemd (pid {pid})")),
    }
}

/// After PID 1 is gone: the pidfd turns readable when it is a zombie, before its parent
/// (the distro's init) reaps it and the kernel empties the cgroup, so wait for
/// `populated 0`, then rmdir the tree systemd made, children first.
pub fn remove_leftovers(lock: &Lock, st: &State) -> Result<()> {
    let cg = st.cgroup.as_path();
    if cg.exists() {
        if !cgroup::wait_unpopulated(cg, Duration::from_secs(10)) {
            return Err(Error::Other(format!(
                "{} still holds processes after systemd exited",
                cg.display()
            )));
        }
        let n = cgroup::remove_tree(cg)?;
        tracing::debug!(n, "removed cgroups");
    }
    if let Some(before) = &st.run_before {
        super::privbus::uncover();
        clean_run(Path::new("/run"), before);
    }
    state::clear(lock);
    Ok(())
}

/// What the container's systemd (and distrod, for it) leaves in the distro's /run, which
/// the container shares (see `mounts`): removed after it, where the name was not there
/// before the launch, so that sessions and tools outside do not think a systemd runs and
/// the next boot starts from a clean /run. Anything else (a link Docker Desktop made, a
/// service's socket directory) stays.
pub const RUN_STATE: &[&str] = &[
    "systemd",
    "nologin",
    "dbus",
    "user",
    "log",
    "utmp",
    "host",
    "credentials",
    "udev",
    "tmpfiles.d",
    "initctl",
];

/// Removes the [`RUN_STATE`] entries of `run` not named in `before`, without following
/// symlinks.
pub fn clean_run(run: &Path, before: &[String]) {
    for name in RUN_STATE {
        if before.iter().any(|b| b == name) {
            continue;
        }
        let path = run.join(name);
        let res = match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(_) => continue,
        };
        if let Err(e) = res {
            tracing::debug!("remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_systemds_new_state_leaves_run() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path();
        for d in [
            "systemd/system",
            "user/1000",
            "WSL",
            "lock",
            "dbus",
            "docker-proxy",
        ] {
            std::fs::create_dir_all(run.join(d)).unwrap();
        }
        std::fs::write(run.join("nologin"), "booting").unwrap();
        std::os::unix::fs::symlink("/mnt/wsl/docker.sock", run.join("docker.sock")).unwrap();
        // A symlink named like state is removed, not followed.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), "").unwrap();
        std::os::unix::fs::symlink(outside.path(), run.join("log")).unwrap();
        // dbus was there before the launch: it stays.
        clean_run(run, &["WSL".into(), "lock".into(), "dbus".into()]);
        let mut left: Vec<String> = std::fs::read_dir(run)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["WSL", "dbus", "docker-proxy", "docker.sock", "lock"]);
        assert!(outside.path().join("keep").exists());
    }
}
