//! Thin wrappers around the few kernel calls nix 0.32 does not cover (pidfd_open,
//! close_range, SCM_CREDENTIALS, flock, statvfs), one call each, and /proc readers.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

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

/// Waits at most `timeout` for the process a [`pidfd_open`] handle refers to to end; true
/// when it has. A pidfd turns readable when the process has exited: it is then a zombie
/// or gone, so its parent may not have reaped it yet (and what it held, such as a
/// cgroup's population, may not be released yet). The one wait on a process's end, so
/// that every caller gets the same rules ([`wait_readable`]'s): a signal (EINTR) does not
/// end the wait, the deadline is kept across such retries, and a `timeout` too large for
/// a deadline (`Duration::MAX`) waits without bound.
pub fn wait_exited(pidfd: &OwnedFd, timeout: Duration) -> bool {
    wait_readable(pidfd, timeout)
}

/// poll(2) one fd for readability; true when readable before the timeout. EINTR is
/// retried with what is left of the timeout (rounded up to whole milliseconds, so that it
/// never returns before the deadline); a timeout too large for a deadline waits without
/// bound.
pub fn wait_readable(fd: &impl AsRawFd, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now().checked_add(timeout);
    loop {
        let ms = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32
            }
            None => -1,
        };
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

/// flock(2) exclusive, waiting at most `timeout`: every lock distrod takes is shared with
/// processes other users start (the login hook), so no wait may be unbounded. On timeout
/// the error names the holder ([`lock_holder`]); `what` names the lock in messages.
pub fn flock_bounded(f: &File, timeout: Duration, what: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        // SAFETY: valid fd.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        match Errno::result(r) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(Errno::EWOULDBLOCK) => {}
            Err(e) => return Err(e).ctx(|| format!("lock {what}")),
        }
        if std::time::Instant::now() >= deadline {
            let holder = lock_holder(f).unwrap_or_else(|| "another process".into());
            return Err(Error::Other(format!(
                "{what} is still held by {holder} after {} s; giving up",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Who holds the flock(2) on `f`'s inode, from /proc/locks: `pid N (COMMAND)`.
pub fn lock_holder(f: &File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_in(&locks, libc::major(m.dev()), libc::minor(m.dev()), m.ino())?;
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmd: Vec<String> = cmd
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .take(4)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(if cmd.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid} ({})", cmd.join(" "))
    })
}

/// The pid holding a FLOCK on device `major:minor`, inode `ino` in a /proc/locks text
/// (proc(5): `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; blocked waiters are
/// listed as `1: -> FLOCK ...` and skipped; the device is in hex).
pub fn holder_in(locks: &str, major: u32, minor: u32, ino: u64) -> Option<i32> {
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.get(1) != Some(&"FLOCK") {
            return None;
        }
        let mut id = f.get(5)?.split(':');
        let ma = u32::from_str_radix(id.next()?, 16).ok()?;
        let mi = u32::from_str_radix(id.next()?, 16).ok()?;
        let i: u64 = id.next()?.parse().ok()?;
        let pid: i32 = f.get(4)?.parse().ok()?;
        (ma == major && mi == minor && i == ino && pid > 0).then_some(pid)
    })
}

/// Opens the directory `path` (relative to `at`, or absolute/cwd-relative when None)
/// without following a symlink in its last component, and only if `owner` owns it: for
/// root working in a directory somebody else controls.
pub fn open_dir_owned(at: Option<&OwnedFd>, path: &Path, owner: u32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let base = at.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: openat with a valid directory fd (or AT_FDCWD) and a C string.
    let fd = unsafe {
        libc::openat(
            base,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh fd from the kernel.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let st = nix::sys::stat::fstat(&fd).ok()?;
    (st.st_uid == owner).then_some(fd)
}

/// mkdirat(2) of one entry in a directory held open.
pub fn mkdir_at(dir: &OwnedFd, name: &str, mode: u32) -> nix::Result<()> {
    nix::sys::stat::mkdirat(dir, name, nix::sys::stat::Mode::from_bits_truncate(mode))
}

/// symlinkat(2) `name -> target` in a directory held open, then owned by `uid`/`gid`
/// (fchownat with AT_SYMLINK_NOFOLLOW: the link itself, whatever it points at).
pub fn symlink_owned(
    dir: &OwnedFd,
    target: &Path,
    name: &str,
    uid: u32,
    gid: u32,
) -> nix::Result<()> {
    nix::unistd::symlinkat(target, dir, name)?;
    nix::unistd::fchownat(
        dir,
        name,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path` (relative to
/// `at`, or AT_FDCWD when None; an empty `path` with `at` means that fd's own mount),
/// with everything below it when `recursive`, to be attached elsewhere by [`move_mount_to`].
pub fn clone_mount(at: Option<&OwnedFd>, path: &Path, recursive: bool) -> nix::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    const OPEN_TREE_CLONE: u32 = 1;
    const AT_RECURSIVE: u32 = 0x8000;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if recursive {
        flags |= AT_RECURSIVE;
    }
    if path.as_os_str().is_empty() {
        flags |= libc::AT_EMPTY_PATH as u32;
    }
    let base = at.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: open_tree(2) with a valid fd (or AT_FDCWD) and a C string; returns a new fd.
    let r = unsafe { libc::syscall(libc::SYS_open_tree, base, c.as_ptr(), flags) };
    Errno::result(r)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// move_mount(2) of a detached tree (from [`clone_mount`]) onto `path` in the current
/// mount namespace.
pub fn move_mount_to(tree: &OwnedFd, path: &Path) -> nix::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: move_mount(2) of a tree fd we hold onto a C string path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(r).map(drop)
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

/// SO_PASSCRED on a socket: the kernel attaches the sender's credentials to what it
/// receives.
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

/// What a recvmsg(2) brought besides its data.
#[derive(Default)]
pub struct Ancillary {
    /// SCM_RIGHTS descriptors, in order.
    pub fds: Vec<OwnedFd>,
    /// The sender's pid from SCM_CREDENTIALS (needs SO_PASSCRED on our end), translated by
    /// the kernel into our pid namespace.
    pub pid: Option<i32>,
    /// MSG_CTRUNC: more descriptors came than fit (the kernel closed the rest).
    pub truncated: bool,
}

/// recvmsg(2) into `data` (EINTR retried), collecting SCM_RIGHTS descriptors and
/// SCM_CREDENTIALS. Returns the bytes read (0 at EOF). `flags` as for recvmsg, e.g.
/// MSG_CMSG_CLOEXEC.
pub fn recv_ancillary(
    fd: &impl AsRawFd,
    data: &mut [u8],
    flags: libc::c_int,
) -> nix::Result<(usize, Ancillary)> {
    // Room for SCM_MAX_FD (253) descriptors and the credentials.
    let mut cmsg = [0u64; 136];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cmsg.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&cmsg) as _;
    let n = loop {
        // SAFETY: mh is fully initialised.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mh, flags) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => break r? as usize,
        }
    };
    let mut anc = Ancillary {
        truncated: mh.msg_flags & libc::MSG_CTRUNC != 0,
        ..Ancillary::default()
    };
    // SAFETY: walking the control messages the kernel wrote, within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET {
                let data = libc::CMSG_DATA(c);
                match (*c).cmsg_type {
                    libc::SCM_RIGHTS => {
                        let len = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                        let p = data as *const RawFd;
                        for i in 0..len / std::mem::size_of::<RawFd>() {
                            anc.fds
                                .push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(p.add(i))));
                        }
                    }
                    libc::SCM_CREDENTIALS => {
                        let cred = std::ptr::read_unaligned(data as *const libc::ucred);
                        anc.pid = Some(cred.pid);
                    }
                    _ => {}
                }
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    Ok((n, anc))
}

/// sendmsg(2) of `data` with `fds` as SCM_RIGHTS (none: a plain send), EINTR retried.
/// Returns the bytes sent (all of them only if the socket had room).
pub fn send_with_fds(fd: &impl AsRawFd, data: &[u8], fds: &[OwnedFd]) -> nix::Result<usize> {
    use std::os::fd::AsRawFd as _;
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let space = if raw.is_empty() {
        0
    } else {
        // SAFETY: CMSG_SPACE is a pure size computation.
        unsafe { libc::CMSG_SPACE(std::mem::size_of_val(raw.as_slice()) as u32) as usize }
    };
    let mut cmsg = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set below outlive the call, and the
    // control buffer is as large as CMSG_SPACE says for the descriptors.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if !raw.is_empty() {
        mh.msg_control = cmsg.as_mut_ptr().cast();
        mh.msg_controllen = space as _;
        // SAFETY: the first header of a control buffer sized for it.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(raw.as_slice()) as u32) as _;
            std::ptr::copy_nonoverlapping(
                raw.as_ptr(),
                libc::CMSG_DATA(c) as *mut RawFd,
                raw.len(),
            );
        }
    }
    loop {
        // SAFETY: mh is fully initialised.
        let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
        match Errno::result(n) {
            Err(Errno::EINTR) => continue,
            r => return r.map(|n| n as usize),
        }
    }
}

/// Receives one byte and the sender's pid from SCM_CREDENTIALS. None on EOF.
pub fn recv_with_pid(fd: &impl AsRawFd) -> Result<Option<(u8, i32)>> {
    let mut data = [0u8; 1];
    let (n, anc) = recv_ancillary(fd, &mut data, 0).ctx(|| "recvmsg".into())?;
    if n == 0 {
        return Ok(None);
    }
    match anc.pid {
        Some(pid) => Ok(Some((data[0], pid))),
        None => Err(Error::Other("no SCM_CREDENTIALS on a message".into())),
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot. With the pid it
/// identifies a process across pid reuse. The comm field (2) may hold spaces and
/// parentheses, hence the split after the last ')'.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts with field 3 (state); field 22 is the 20th after it.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// [`parse_start_time`] of a live process; None when it has gone.
pub fn start_time(pid: i32) -> Option<u64> {
    parse_start_time(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Field 3 of /proc/PID/stat, the state: `Z` for a zombie (exited, not yet reaped by its
/// parent), `X` for one being reaped.
pub fn parse_state(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The start time of `pid` while it runs: None once it has exited, also while it is a
/// zombie its parent has not reaped yet (whose /proc entry still stands).
pub fn running_since(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if matches!(parse_state(&stat), Some('Z' | 'X')) {
        return None;
    }
    parse_start_time(&stat)
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
    fn the_state_after_odd_comm() {
        let stat = "4242 (a (Z) c) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98 1 1";
        assert_eq!(super::parse_state(stat), Some('Z'));
        assert_eq!(super::parse_state("7 (sh) S 1"), Some('S'));
        assert_eq!(super::parse_state("7 (sh)"), None);
        assert_eq!(super::parse_state("garbage"), None);
    }

    #[test]
    fn start_time_after_odd_comm() {
        let stat =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(super::parse_start_time(stat), Some(987654));
        assert_eq!(super::parse_start_time("1 (x) S 0"), None);
    }

    #[test]
    fn lock_holders_from_proc_locks() {
        let locks = "1: POSIX  ADVISORY  WRITE 77 00:1a:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 00:1a:99 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 4343 00:1a:99 0 EOF\n\
                     3: FLOCK  ADVISORY  WRITE 5151 fd:01:99 0 EOF\n";
        assert_eq!(super::holder_in(locks, 0, 0x1a, 99), Some(4242));
        assert_eq!(super::holder_in(locks, 0xfd, 1, 99), Some(5151));
        assert_eq!(super::holder_in(locks, 0, 0x1a, 98), None);
        assert_eq!(super::holder_in("garbage\n1: FLOCK x\n", 0, 0, 0), None);
    }

    /// A pidfd wait ends when the process has exited (a zombie, then reaped), and not
    /// before: with the process running, the timeout passes in full and the answer is no.
    #[test]
    fn waits_on_a_pidfd_for_the_exit() {
        use std::time::{Duration, Instant};
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = super::pidfd_open(child.id() as i32).unwrap();
        let t0 = Instant::now();
        assert!(!super::wait_exited(&fd, Duration::from_millis(50)));
        assert!(t0.elapsed() >= Duration::from_millis(50));
        child.kill().unwrap();
        assert!(super::wait_exited(&fd, Duration::from_secs(10)));
        child.wait().unwrap();
        assert!(super::wait_exited(&fd, Duration::ZERO));
    }

    #[test]
    fn a_bounded_lock_names_its_holder() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lock");
        let a = std::fs::File::create(&path).unwrap();
        let b = std::fs::File::open(&path).unwrap();
        let t = std::time::Duration::from_millis(100);
        super::flock_bounded(&a, t, "the test lock").unwrap();
        let e = super::flock_bounded(&b, t, "the test lock")
            .unwrap_err()
            .to_string();
        let me = format!("pid {}", std::process::id());
        assert!(e.starts_with("the test lock is still held by "), "{e}");
        assert!(e.contains(&me), "{e}");
        drop(a);
        super::flock_bounded(&b, t, "the test lock").unwrap();
    }
}

/// clone3(2)'s argument block (include/uapi/linux/sched.h), up to `cgroup` (version 2).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// fork(2) with the child created directly in the cgroup directory `dir` (clone3 with
/// CLONE_INTO_CGROUP, Linux 5.7). Moving a process afterwards by writing cgroup.procs waits
/// for an RCU grace period under the cgroup threadgroup lock (~15 ms measured), which
/// dominated the cost of `distrod exec`; creating it there does not. `None` when the kernel
/// cannot (no clone3, no cgroup2 fd): the caller then forks and joins.
///
/// Only for single-threaded callers: like vfork-free raw clones, it skips libc's fork
/// handlers, which matter only when other threads may hold libc's locks.
pub fn fork_into_cgroup(dir: &Path) -> Option<Result<nix::unistd::ForkResult>> {
    use std::os::fd::AsFd;
    let cg = match File::open(dir) {
        Ok(f) => f,
        Err(_) => return None,
    };
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cg.as_fd().as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: a valid, fully initialised clone_args of the size passed; no stack is given, so
    // the child continues on a copy of ours, as after fork(2).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        0 => Some(Ok(nix::unistd::ForkResult::Child)),
        pid if pid > 0 => Some(Ok(nix::unistd::ForkResult::Parent {
            child: nix::unistd::Pid::from_raw(pid as i32),
        })),
        _ => match Errno::last() {
            Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL | Errno::EOPNOTSUPP | Errno::EBADF => None,
            e => Some(Err(Error::Sys {
                what: format!("clone3 into cgroup {}", dir.display()),
                source: e,
            })),
        },
    }
}

#[cfg(test)]
mod clone_tests {
    use std::io::Read;

    /// The child of `fork_into_cgroup` starts in the cgroup it was given (needs root and a
    /// cgroup2 mount; the cgroup is made for the test and removed).
    #[test]
    fn fork_into_cgroup_starts_the_child_there() {
        if !crate::runtime::test_as_root("creating a cgroup") {
            return;
        }
        let mount = super::super::cgroup::cgroup2_mount().expect("a cgroup2 mount");
        let dir = mount.join(format!("distrod-unit-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        // Run in a forked helper so this (multi-threaded) test process never clone3s itself.
        // SAFETY: the helper only makes syscalls and leaves with _exit.
        let out = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = match super::fork_into_cgroup(&dir) {
                    Some(Ok(nix::unistd::ForkResult::Child)) => {
                        let cg = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
                        let mut w = w;
                        let _ = std::io::Write::write_all(&mut w, cg.as_bytes());
                        0
                    }
                    Some(Ok(nix::unistd::ForkResult::Parent { child })) => {
                        let _ = nix::sys::wait::waitpid(child, None);
                        0
                    }
                    Some(Err(_)) => 2,
                    None => 3,
                };
                // SAFETY: leave the fork without the test harness's destructors.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut s = String::new();
                let _ = r.read_to_string(&mut s);
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                (s, st)
            }
        };
        let _ = std::fs::remove_dir(&dir);
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            out.0.contains(&name),
            "child's cgroup: {:?} ({:?})",
            out.0,
            out.1
        );
    }
}
