//! Powering the container off: SIGRTMIN+4 to systemd (systemd(1): "poweroff"; it ignores
//! SIGTERM as PID 1), SIGKILL after a timeout, then removing what it leaves behind: its
//! empty cgroup tree, the state record and the notify socket.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::state::{self, Lock};
use super::{Context, Error, Result, cgroup, sys};

#[derive(Debug)]
pub enum Outcome {
    Stopped {
        pid: i32,
        elapsed: Duration,
        /// It had to be SIGKILLed.
        killed: bool,
    },
    NotRunning,
}

pub fn stop(force: bool, timeout: Duration) -> Result<Outcome> {
    let lock = state::lock()?;
    let Some(st) = state::load(&lock) else {
        return Ok(Outcome::NotRunning);
    };
    // The pidfd first, then the identity check: from here on a reused pid cannot be hit.
    let pidfd = sys::pidfd_open(st.pid).ok();
    let Some(pidfd) = pidfd.filter(|_| st.is_alive()) else {
        remove_leftovers(&lock, &st.cgroup)?;
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
    if !wait_exit(&pidfd, timeout) {
        tracing::debug!("systemd did not power off in time; SIGKILL");
        signal(pid, Signal::SIGKILL)?;
        killed = true;
        if !wait_exit(&pidfd, Duration::from_secs(10)) {
            return Err(Error::Other(format!(
                "systemd (pid {}) survived SIGKILL",
                st.pid
            )));
        }
    }
    remove_leftovers(&lock, &st.cgroup)?;
    Ok(Outcome::Stopped {
        pid: st.pid,
        elapsed: t0.elapsed(),
        killed,
    })
}

fn signal(pid: Pid, sig: Signal) -> Result<()> {
    match kill(pid, sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(e).ctx(|| format!("send {sig} to systemd (pid {pid})")),
    }
}

fn wait_exit(pidfd: &OwnedFd, timeout: Duration) -> bool {
    sys::wait_readable(pidfd, timeout)
}

/// After PID 1 is gone: the pidfd turns readable when it is a zombie, before its parent
/// (the distro's init) reaps it and the kernel empties the cgroup, so wait for
/// `populated 0`, then rmdir the tree systemd made, children first.
pub fn remove_leftovers(lock: &Lock, cg: &Path) -> Result<()> {
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
    state::clear(lock);
    Ok(())
}
