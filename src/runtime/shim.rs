//! The only code that runs as PID 1 of the container: it applies the mount plan, gives
//! systemd a clean start (stdio on /dev/null, default signal dispositions, no inherited
//! fds, a two-variable environment) and execs it. Failures before exec are written to the
//! launcher over a close-on-exec pipe, which the exec itself closes on success.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, Signal, signal};

use std::path::Path;

use super::mounts::{self, HeldFds, Step};
use super::state::NOTIFY_SOCKET;
use super::{Context, Result, sys};

/// Runs in the forked PID 1; never returns.
pub fn run(steps: &[Step], mut report: File) -> ! {
    // Opened before any mount changes (/run is replaced), but in the new mount namespace:
    // a bind source must be a mount of the caller's own namespace (EINVAL otherwise).
    let held = HeldFds {
        notify: mounts::open_path(Path::new(NOTIFY_SOCKET)),
    };
    let err = match prepare(steps, &held) {
        Ok(()) => {
            drop(held);
            exec_init()
        }
        Err(e) => e,
    };
    let _ = writeln!(report, "error {}", super::chain(&err));
    // SAFETY: _exit in a forked child, no destructors to run.
    unsafe { libc::_exit(127) }
}

fn prepare(steps: &[Step], held: &HeldFds) -> Result<()> {
    mounts::apply(steps, held)?;
    // Detached: systemd's own stdio is /dev/null (its output goes to the journal; the
    // console is bound to /dev/null too).
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .ctx(|| "open /dev/null".into())?;
    for fd in 0..3 {
        sys::dup2_std(&null, fd)?;
    }
    reset_signals();
    // Everything else we inherited (the state lock, the notify socket, ...) must not
    // reach systemd; the report pipe must live until the exec itself.
    sys::cloexec_from(3);
    nix::unistd::chdir("/").ctx(|| "chdir /".into())?;
    Ok(())
}

/// Default dispositions and an empty mask for a process about to exec. Rust's runtime
/// ignores SIGPIPE, and ignored signals survive execve(2).
pub fn reset_signals() {
    for s in Signal::iterator() {
        if matches!(s, Signal::SIGKILL | Signal::SIGSTOP) {
            continue;
        }
        // SAFETY: setting SIG_DFL installs no handler.
        let _ = unsafe { signal(s, SigHandler::SigDfl) };
    }
    let _ = SigSet::empty().thread_set_mask();
}

fn exec_init() -> super::Error {
    let env = mounts::init_env();
    let mut last = Errno::ENOENT;
    // What `enable` checked the tree against (`initsys`), in the same order.
    let candidates = crate::initsys::INIT_CANDIDATES.map(|p| format!("/{p}"));
    for path in &candidates {
        let init = CString::new(path.as_str()).expect("no NUL");
        match nix::unistd::execve(&init, &[&init], &env) {
            Err(Errno::ENOENT) => continue,
            Err(e) => {
                last = e;
                break;
            }
        }
    }
    super::Error::Sys {
        what: format!(
            "cannot start systemd: none of {} could be executed",
            candidates.join(", ")
        ),
        source: last,
    }
}
