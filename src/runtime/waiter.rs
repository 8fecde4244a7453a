//! The outer `distrod exec` process once the session reaper has said hello: it lives as
//! long as the session and only forwards signals and waits for the exit code, so it
//! re-executes itself into this minimal mode, dispatched at the very top of `main` before
//! the command line parser and logging start. Only a few pages of the binary are touched,
//! and the heap and everything start-up touched are gone: one such process per WSL
//! session stays small.
//!
//! Protocol (private to one binary, so one version): `argv[1]` is [`MARKER`], then the
//! number of the inherited socket to the reaper and the reaper's pid, then `--` and the
//! original arguments (so that `ps` still shows what runs). The forwarded signals are
//! blocked across the exec, so none is lost or kills the process before the handlers are
//! in place.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use super::signals;

/// `argv[1]` of the waiting mode.
pub const MARKER: &str = "--distrod-internal-wait";

/// Replaces this process with the waiting mode for `sock` (the reaper's socket) and
/// `reaper` (its pid as we see it). Returns only if the exec failed; the caller then waits
/// itself, as before.
pub fn hand_over(sock: &OwnedFd, reaper: i32) {
    let fd = sock.as_raw_fd();
    let mut argv: Vec<CString> = Vec::new();
    // A fixed argv[0]: a login shell's "-name" must not be taken for one again.
    let args = std::env::args_os().skip(1);
    let own: [OsString; 5] = [
        "distrod".into(),
        MARKER.into(),
        fd.to_string().into(),
        reaper.to_string().into(),
        "--".into(),
    ];
    for a in own.into_iter().chain(args) {
        match CString::new(a.as_bytes()) {
            Ok(c) => argv.push(c),
            Err(_) => return,
        }
    }
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // Anything buffered for stdout would be lost by the exec.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // No environment: waiting needs none, and after the login hook this process is root
    // with the caller's environment, which must not reach a fresh image of the binary
    // (a root exec is not AT_SECURE, so the C library would honour GLIBC_TUNABLES & co).
    let empty_env: [*const libc::c_char; 1] = [std::ptr::null()];
    let set = signals::forwarded_set();
    // SAFETY: an all-zero sigset_t is a valid (empty) set.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscalls on our own fd and signal mask; argv is NUL-terminated and
    // outlives execve; the environment is empty.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, &mut old);
        // The socket must survive the exec (it was opened close-on-exec).
        if libc::fcntl(fd, libc::F_SETFD, 0) == 0 {
            libc::execve(
                c"/proc/self/exe".as_ptr(),
                ptrs.as_ptr(),
                empty_env.as_ptr(),
            );
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// Unmaps this process's pages of the executable's read-only segments (code, read-only
/// data, relocation tables): start-up touched far more of them than waiting needs, and
/// they are only page cache, so anything used again is faulted back in from there.
/// Writable segments (data, and the relocated RELRO) are left alone: dropping their
/// private copies would lose what was written.
pub fn release_image() {
    extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _: libc::size_t,
        _: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: the loader hands us its own program headers for the executable (the
        // first object), valid during the callback; madvise only drops clean pages of
        // read-only private file mappings.
        unsafe {
            let info = &*info;
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            for i in 0..info.dlpi_phnum as usize {
                let ph = &*info.dlpi_phdr.add(i);
                if ph.p_type != libc::PT_LOAD || ph.p_flags & libc::PF_W != 0 {
                    continue;
                }
                // Whole pages only: a page shared with a writable segment stays.
                let start = (info.dlpi_addr as usize + ph.p_vaddr as usize).next_multiple_of(page);
                let end =
                    (info.dlpi_addr as usize + (ph.p_vaddr + ph.p_memsz) as usize) / page * page;
                if end > start {
                    libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
                }
            }
        }
        1 // the executable only
    }
    // SAFETY: the callback above reads only what it is given.
    unsafe { libc::dl_iterate_phdr(Some(each), std::ptr::null_mut()) };
}

/// The waiting mode, when `argv[1]` is [`MARKER`]: `Some(exit code)`; `None` for every
/// other command line. Touches no more of the binary than it must.
pub fn dispatch() -> Option<u8> {
    let mut args = std::env::args_os().skip(1);
    if args.next()?.as_bytes() != MARKER.as_bytes() {
        return None;
    }
    let fd = args.next().and_then(|a| a.to_str()?.parse::<i32>().ok());
    let pid = args.next().and_then(|a| a.to_str()?.parse::<i32>().ok());
    let (Some(fd), Some(pid)) = (fd, pid) else {
        return Some(2);
    };
    Some(wait(fd, pid))
}

fn wait(fd: i32, pid: i32) -> u8 {
    // Only what `hand_over` passes: a socket and a pid other than init's (a stray command
    // line must not forward signals anywhere that matters).
    // SAFETY: fstat into a local struct.
    let is_socket = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(fd, &mut st) == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket || pid <= 1 {
        return 2;
    }
    signals::forward_to(pid);
    signals::install_forwarding();
    let set = signals::forwarded_set();
    // SAFETY: the signals blocked across the exec are let in (pending ones are forwarded
    // now, by the handler just installed).
    unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    release_image();
    (signals::read_code(fd) & 0xff) as u8
}
