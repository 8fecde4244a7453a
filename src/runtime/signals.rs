//! Signals and exit codes of a command run in the container, shared by `exec`'s two
//! halves: the caller's side ([`super::enter`], then [`super::waiter`] once the caller has
//! re-executed itself as a small waiting image) forwards what a terminal or a supervisor
//! sends to the session's reaper, which forwards it to the command; the reaper reports the
//! command's code (tini's rules) as four bytes on their socket.

use std::sync::atomic::{AtomicI32, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::WaitStatus;

/// The signals the caller forwards to the command (through the reaper): what a terminal or
/// a supervisor sends to a foreground process.
pub const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGWINCH,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// The code when the container vanished while the command ran.
pub const CODE_VANISHED: i32 = 255;

/// Where [`FORWARDED`] signals go; 0: nowhere (they are dropped).
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = FORWARD_TO.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe (signal-safety(7)).
        unsafe { libc::kill(pid, sig) };
    }
}

/// Sends the [`FORWARDED`] signals this process gets to `pid` from now on (0: drops them).
pub fn forward_to(pid: i32) {
    FORWARD_TO.store(pid, Ordering::SeqCst);
}

/// Installs the forwarding handler for every [`FORWARDED`] signal (interrupted system calls
/// restart).
pub fn install_forwarding() {
    let sa = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for s in FORWARDED {
        // SAFETY: the handler only loads an atomic and calls kill(2).
        let _ = unsafe { sigaction(s, &sa) };
    }
}

/// The [`FORWARDED`] signals as a set (blocked across the waiter's exec).
pub fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s as libc::c_int);
        }
        set
    }
}

/// tini's rule: the exit code, or 128+signal.
pub fn code_of(st: WaitStatus) -> Option<i32> {
    match st {
        WaitStatus::Exited(_, c) => Some(c),
        WaitStatus::Signaled(_, s, _) => Some(128 + s as i32),
        _ => None,
    }
}

/// The 4-byte little-endian code the reaper sends; EOF or an error first: the container
/// went away ([`CODE_VANISHED`]).
pub fn read_code(fd: i32) -> i32 {
    let mut b = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        // SAFETY: reading into the unfilled tail of a local buffer.
        let n = unsafe { libc::read(fd, b[got..].as_mut_ptr().cast(), 4 - got) };
        match n {
            0 => return CODE_VANISHED,
            n if n > 0 => got += n as usize,
            _ if nix::errno::Errno::last() == nix::errno::Errno::EINTR => continue,
            _ => return CODE_VANISHED,
        }
    }
    u32::from_le_bytes(b) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_as_tini_gives_them() {
        let pid = nix::unistd::Pid::from_raw(7);
        assert_eq!(code_of(WaitStatus::Exited(pid, 3)), Some(3));
        assert_eq!(
            code_of(WaitStatus::Signaled(pid, Signal::SIGTERM, false)),
            Some(128 + 15)
        );
        assert_eq!(code_of(WaitStatus::StillAlive), None);
        let (r, w) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut &w, &42u32.to_le_bytes()[..3]).unwrap();
        drop(w);
        use std::os::fd::AsRawFd;
        assert_eq!(read_code(r.as_raw_fd()), CODE_VANISHED, "a cut code");
    }
}
