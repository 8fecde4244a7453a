//! The container's keeper: one root process of the distro outside the container, for as
//! long as the container runs. The launcher forks it (a grandchild, so the distro's init
//! adopts it, in a session of its own, out of every caller's reach: no terminal, no
//! descriptor of theirs, terminal signals ignored), and the record names it, so that
//! `distrod stop` ends it first. Every [`POLL`] it:
//! - covers systemd's private socket in the distro's mount namespace with the relay to it
//!   ([`privbus`], the running distro only; the keeper starts the relay), again whenever
//!   systemd made it anew;
//! - counts WSL's sessions and powers the container off before WSL's idle stop ([`idle`]),
//!   when that is on;
//! - once the container has ended without `distrod stop` (`systemctl poweroff` in a
//!   session, systemd killed), records how it ended and removes what it left (its cgroups,
//!   systemd's state in /run) as the next launch would, so that nothing outside thinks a
//!   systemd runs.

use std::time::Duration;

use super::state::{self, State};
use super::{history, idle, privbus, stop};

/// How often the keeper looks.
pub const POLL: Duration = Duration::from_millis(250);

/// What the keeper of one container does besides watching it end.
#[derive(Debug, Clone, Default)]
pub struct Duties {
    /// The container runs the distro itself (its /run is the distro's): keep the private
    /// socket covered outside.
    pub cover: bool,
    /// Power the container off before WSL's idle stop ([`idle`]); None: not at all.
    pub idle: Option<idle::Options>,
}

impl Duties {
    /// Whether there is anything to do at all: a launch starts no keeper without duties.
    pub fn any(&self) -> bool {
        self.cover || self.idle.is_some()
    }
}

/// Starts the keeper of the container `st` just launched. The caller must be
/// single-threaded.
pub fn spawn(st: &State, duties: &Duties) {
    use nix::unistd::{ForkResult, fork, setsid};
    // SAFETY: the caller is single-threaded; the children only make syscalls until the
    // grandchild runs the keeper, and exit without the parent's destructors.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = setsid();
            // SAFETY: this child is single-threaded (a fork of a single-threaded caller).
            if let Ok(ForkResult::Child) = unsafe { fork() } {
                // SAFETY: close_range with plain integer arguments.
                unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
                if let Ok(null) = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")
                {
                    for fd in 0..3 {
                        let _ = super::sys::dup2_std(&null, fd);
                    }
                }
                super::procstate::ignore_terminal_signals();
                // Named for what it is (it was forked from whatever launched the container).
                // SAFETY: prctl with a NUL-terminated name.
                unsafe { libc::prctl(libc::PR_SET_NAME, c"distrod-keeper".as_ptr(), 0, 0, 0) };
                // The idle window is read here, in the keeper (off the caller's path).
                let idler = duties.idle.as_ref().and_then(idle::Idler::new);
                if duties.cover {
                    let ns = st.namespaces.get("pid").copied().unwrap_or_default();
                    if let Err(e) = privbus::start_relay(st.pid, ns) {
                        tracing::debug!("{}", super::chain(&e));
                    }
                }
                run(st, duties.cover, idler);
            }
            // SAFETY: leave the forks without the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Parent { child }) => {
            let _ = nix::sys::wait::waitpid(child, None);
        }
        Err(e) => tracing::debug!("no keeper: fork: {e}"),
    }
}

/// Keeps the container `st` until it ends (see the module documentation).
pub fn run(st: &State, cover: bool, mut idler: Option<idle::Idler>) {
    if !cover && idler.is_none() {
        return;
    }
    // Known to the record, so that a stop ends the keeper with its container.
    let me = std::process::id() as i32;
    match (state::lock(), super::sys::start_time(me)) {
        (Ok(lock), Some(started)) => match state::load(&lock) {
            Some(mut cur) if cur.same_container(st) => {
                cur.keeper = Some((me, started));
                if let Err(e) = state::save(&lock, &cur) {
                    tracing::debug!("{}", super::chain(&e));
                }
            }
            _ => return,
        },
        _ => return,
    }
    loop {
        std::thread::sleep(POLL);
        if !st.is_alive() {
            ended(st);
            return;
        }
        if state::read().is_none_or(|cur| !cur.same_container(st)) {
            return;
        }
        if cover && let Err(e) = privbus::cover() {
            tracing::debug!("{}", super::chain(&e));
        }
        if let Some(i) = &mut idler
            && i.tick()
        {
            idler = None;
        }
    }
}

/// The container is gone while the distro lives on: `distrod stop` (which records its own
/// end and removes the record before it lets go of the lock), or a poweroff from inside,
/// whose end and leftovers are this keeper's to deal with.
fn ended(st: &State) {
    let Ok(lock) = state::lock() else {
        return;
    };
    if state::load(&lock).is_some_and(|cur| cur.same_container(st)) {
        history::end(st.launched_at, "container");
        if let Err(e) = stop::remove_leftovers(&lock, st) {
            tracing::debug!("{}", super::chain(&e));
        }
    }
}
