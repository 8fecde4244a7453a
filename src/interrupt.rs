//! Ctrl-C (and SIGTERM, SIGHUP) during long work: the first one sets a flag that the
//! download and unpack loops check, so they stop, clean up what they made and exit 130;
//! a second one kills at once (the handler is installed with SA_RESETHAND; on Windows it
//! declines the second one).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether an interruption (Ctrl-C; on Unix also SIGTERM or SIGHUP) came since [`install`]:
/// long loops check it between steps, then stop and clean up.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

#[cfg(unix)]
extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe (signal-safety(7)).
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Installs the handlers; call before starting interruptible work.
#[cfg(unix)]
pub fn install() {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESETHAND | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        if let Err(e) = unsafe { sigaction(sig, &action) } {
            tracing::debug!(%e, ?sig, "cannot install signal handler");
        }
    }
}

/// Windows: a console control handler. The first Ctrl-C (or Ctrl-Break, or the window
/// closing) sets the flag and is handled; the handler then removes itself, so a second
/// one ends the process as usual.
#[cfg(windows)]
pub fn install() {
    use windows_sys::Win32::System::Console::SetConsoleCtrlHandler;
    use windows_sys::core::BOOL;
    unsafe extern "system" fn on_ctrl(_kind: u32) -> BOOL {
        if REQUESTED.swap(true, Ordering::Relaxed) {
            return 0;
        }
        1
    }
    // SAFETY: the handler only touches an atomic.
    if unsafe { SetConsoleCtrlHandler(Some(on_ctrl), 1) } == 0 {
        tracing::debug!("cannot install the console control handler");
    }
}

#[cfg(not(any(unix, windows)))]
pub fn install() {}
