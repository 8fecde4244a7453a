//! Thin wrappers around the few kernel calls nix 0.32 does not cover (pidfd_open,
//! close_range, SCM_CREDENTIALS, flock, statvfs), one call each, and /proc readers.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;

use super::{Context, Error, Result};

/// pidfd_open(2): a handle that turns readable when the process exits, immune to pid reuse.
pub fn pidfd_open(pid: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscall; the returned fd is owned by us.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    Errno::result(fd).ctx(|| format!("pidfd_open({pid})"))?;
    // SAFETY: a fresh fd returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// dup2(2) onto a standard fd (0, 1, 2), which nix 0.32 only offers for owned fds.
pub fn dup2_std(old: &impl AsRawFd, new: RawFd) -> Result<()> {
    // SAFETY: both are valid fd numbers; dup2 closes `new` atomically.
    let r = unsafe { libc::dup2(old.as_raw_fd(), new) };
    Errno::result(r)
        .map(drop)
        .ctx(|| format!("dup2 onto fd {new}"))
}

/// poll(2) one fd for readability; true when readable before the timeout.
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    loop {
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 && Errno::last() == Errno::EINTR {
            continue;
        }
        return n > 0;
    }
}

/// close_range(3, ~0, CLOSE_RANGE_CLOEXEC): every inherited fd is closed at the next
/// exec, but stays usable until then (the shim still needs its error pipe).
pub fn cloexec_from(first: u32) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscall on our own fd table.
    unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
}

/// flock(2) exclusive, blocking: the lock lives as long as the open file description.
pub fn flock_exclusive(f: &File) -> Result<()> {
    loop {
        // SAFETY: valid fd.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        match Errno::result(r) {
            Err(Errno::EINTR) => continue,
            r => return r.map(drop).ctx(|| "lock /run/distrod/lock".into()),
        }
    }
}

/// Whether `path` is on a read-only mount (statvfs(3) ST_RDONLY).
pub fn is_read_only(path: &Path) -> bool {
    nix::sys::statvfs::statvfs(path)
        .map(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
        .unwrap_or(false)
}

/// A connected SOCK_STREAM pair, close-on-exec; SO_PASSCRED on the first so the kernel
/// attaches the sender's credentials (pid translated into the receiver's pid namespace).
pub fn socketpair_passcred() -> Result<(OwnedFd, OwnedFd)> {
    let mut sv = [0 as RawFd; 2];
    // SAFETY: sv has room for two fds.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            sv.as_mut_ptr(),
        )
    };
    Errno::result(r).ctx(|| "socketpair".into())?;
    // SAFETY: two fresh fds.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(sv[0]), OwnedFd::from_raw_fd(sv[1])) };
    set_passcred(&a)?;
    Ok((a, b))
}

pub fn set_passcred(fd: &impl AsRawFd) -> Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd, an int option.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PASSCRED,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    Errno::result(r).map(drop).ctx(|| "SO_PASSCRED".into())
}

/// Receives one byte and the sender's pid from SCM_CREDENTIALS. None on EOF.
pub fn recv_with_pid(fd: &impl AsRawFd) -> Result<Option<(u8, i32)>> {
    let mut data = [0u8; 1];
    let mut cmsg = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cmsg.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cmsg) as _;
    let n = loop {
        // SAFETY: mh is fully initialised.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mh, 0) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => break r.ctx(|| "recvmsg".into())?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    // SAFETY: the kernel filled cmsg; CMSG_* walk it within msg_controllen.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&mh);
        if !c.is_null()
            && (*c).cmsg_level == libc::SOL_SOCKET
            && (*c).cmsg_type == libc::SCM_CREDENTIALS
        {
            let cred = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::ucred);
            return Ok(Some((data[0], cred.pid)));
        }
    }
    Err(Error::Other("no SCM_CREDENTIALS on a message".into()))
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot. With the pid it
/// identifies a process across pid reuse. The comm field (2) may hold spaces and
/// parentheses, hence the split after the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Seconds since `pid` started (from /proc/uptime and the start time in ticks).
pub fn uptime_of(pid: i32) -> Option<f64> {
    let ticks = start_time(pid)? as f64;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((up - ticks / hz).max(0.0))
}

/// The inode number of /proc/PID/ns/NAME: equal inodes = the same namespace.
pub fn ns_id(pid: i32, ns: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(format!("/proc/{pid}/ns/{ns}"))
        .ok()
        .map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_time_after_odd_comm() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(super::parse_start_time(stat), Some(987654));
        assert_eq!(super::parse_start_time("1 (x) S 0"), None);
    }
}
