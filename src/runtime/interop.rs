//! WSL interop inside the container.
//!
//! A Windows program started from Linux runs through WSL's `/init` (binfmt_misc), which
//! needs the session's interop socket: `$WSL_INTEROP`, else the first
//! `/run/WSL/<pid>_interop` found walking up the parent pids (wsl.md). Inside the
//! container the pids are the container's, so the container's `/run/WSL` (empty at boot,
//! see [`super::mounts`]) gets one entry per entering session, named by the pid of that
//! session's reaper, which is an ancestor (a subreaper) of everything the session starts,
//! `sudo` included:
//!
//! ```text
//! /run/WSL/<reaper pid>_interop -> .sessions/<reaper pid>/interop
//! /run/WSL/.sessions/<reaper pid>/          0700, the session's user
//!                                   interop  the session's real socket, bind-mounted
//! /run/WSL/1_interop -> <reaper pid>_interop   for services (their walk ends at PID 1)
//! ```
//!
//! - The real socket is found outside, in the distro's namespaces, before entering:
//!   `$WSL_INTEROP`, else the same parent walk `/init` does. It is opened with the
//!   *caller's* file-system identity and used only if the caller may write to it, so the
//!   setuid hook cannot be pointed at somebody else's socket; the opened socket is cloned
//!   as a detached mount (open_tree) and attached inside by the reaper (move_mount).
//! - The socket has no authentication and may carry an elevated Windows token: the
//!   per-session directory makes it reachable by the session's user and root only (a
//!   symlink into a directory one may not search cannot be followed).
//! - `1_interop` follows a live session: the first one sets it, and a session that ends
//!   while it points at it moves it to the newest live one (or removes it).

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, umount2};

use super::{Context, Result};
use crate::fsutil::{self, Durability};

/// WSL's directory of session sockets (`<pid>_interop`), in the distro and (its own) in the
/// container.
pub const RUN_WSL: &str = "/run/WSL";
/// In the container's own /run/WSL (a tmpfs of the container's, see [`super::mounts`]).
pub const SESSIONS: &str = "/run/WSL/.sessions";
/// In a session's directory: the session has a mount namespace of its own.
const OWN_VIEW: &str = "own-view";

/// `/run/WSL/<pid>_interop`.
pub fn entry_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("{RUN_WSL}/{pid}_interop"))
}

/// Who is asking (the real ids of a possibly setuid process).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The real uid.
    pub uid: u32,
    /// The real gid.
    pub gid: u32,
    /// The supplementary groups.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The calling process's real ids (not the effective ones a setuid binary runs with).
    pub fn current() -> Caller {
        Caller {
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            groups: nix::unistd::getgroups()
                .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
                .unwrap_or_default(),
        }
    }

    /// May this caller connect (write) to a socket with this owner and mode?
    fn may_write(&self, m: &fs::Metadata) -> bool {
        let mode = m.permissions().mode();
        if self.uid == 0 {
            true
        } else if m.uid() == self.uid {
            mode & 0o200 != 0
        } else if m.gid() == self.gid || self.groups.contains(&m.gid()) {
            mode & 0o020 != 0
        } else {
            mode & 0o002 != 0
        }
    }
}

/// The candidate socket paths of the calling session, in `/init`'s order:
/// `$WSL_INTEROP`, then `/run/WSL/<pid>_interop` for each ancestor.
pub fn candidates(wsl_interop: Option<&std::ffi::OsStr>, ancestors: &[u32]) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let mut v: Vec<PathBuf> = wsl_interop
        .filter(|p| p.as_bytes().starts_with(b"/"))
        .map(PathBuf::from)
        .into_iter()
        .collect();
    v.extend(ancestors.iter().map(|p| entry_path(*p)));
    v
}

/// Our parent, its parent, ... up to and including pid 1 (from /proc/<pid>/stat).
pub fn ancestors() -> Vec<u32> {
    let mut v = Vec::new();
    let mut pid = nix::unistd::getppid().as_raw() as u32;
    while pid > 0 && v.len() < 4096 {
        v.push(pid);
        if pid == 1 {
            break;
        }
        match parent_of(pid) {
            Some(p) => pid = p,
            None => break,
        }
    }
    v
}

/// The parent pid of `pid` (field 4 of /proc/PID/stat); None when it has gone.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: the state and ppid follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Finds the calling session's interop socket (outside the container) and clones it as a
/// detached mount, or None when the session has none the caller may use.
pub fn session_socket(caller: &Caller) -> Option<OwnedFd> {
    let env = std::env::var_os("WSL_INTEROP");
    for path in candidates(env.as_deref(), &ancestors()) {
        match clone_socket(&path, caller) {
            Ok(Some(fd)) => {
                tracing::debug!(path = %path.display(), "session interop socket");
                return Some(fd);
            }
            Ok(None) => {}
            Err(e) => tracing::debug!("{}: {e}", path.display()),
        }
    }
    None
}

fn clone_socket(path: &Path, caller: &Caller) -> Result<Option<OwnedFd>> {
    // Resolve the path with the caller's file-system ids (directories they may not
    // search stay closed), then judge the socket itself by its mode.
    let fd = {
        let _as = FsIds::become_caller(caller);
        match super::mounts::open_path(path) {
            Some(fd) => fd,
            None => return Ok(None),
        }
    };
    let meta = fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .ctx(|| format!("stat {}", path.display()))?;
    use std::os::unix::fs::FileTypeExt;
    if !meta.file_type().is_socket() || !caller.may_write(&meta) {
        return Ok(None);
    }
    let tree = super::sys::clone_mount(Some(&fd), Path::new(""), false)
        .ctx(|| format!("clone the mount of {}", path.display()))?;
    Ok(Some(tree))
}

/// setfsuid/setfsgid to the caller for as long as it lives (a no-op for root).
struct FsIds {
    restore: Option<(u32, u32)>,
}

impl FsIds {
    fn become_caller(c: &Caller) -> FsIds {
        if c.uid == 0 || !nix::unistd::geteuid().is_root() {
            return FsIds { restore: None };
        }
        // SAFETY: setfsgid/setfsuid take plain ids; they return the previous ones.
        let (g, u) = unsafe { (libc::setfsgid(c.gid), libc::setfsuid(c.uid)) };
        FsIds {
            restore: Some((u as u32, g as u32)),
        }
    }
}

impl Drop for FsIds {
    fn drop(&mut self) {
        if let Some((u, g)) = self.restore {
            // SAFETY: as above.
            unsafe {
                libc::setfsuid(u);
                libc::setfsgid(g);
            }
        }
    }
}

/// A session's entry in the container's /run/WSL; [`Entry::remove`] when it ends.
#[derive(Debug)]
pub struct Entry {
    pid: u32,
    dir: PathBuf,
}

impl Entry {
    /// Attaches the cloned socket for the session whose reaper is `pid` (the caller, in
    /// the container's namespaces, as root) and owned by `uid`/`gid`. `shared`: the
    /// session is in the container's own mount namespace; a session in a namespace of its
    /// own (another elevation, see [`super::drives`]) is marked [`OWN_VIEW`] and never
    /// becomes `1_interop`: services must not reach its (possibly elevated) socket, and
    /// its mount is not visible to them anyway.
    pub fn provide(tree: &OwnedFd, pid: u32, uid: u32, gid: u32, shared: bool) -> Result<Entry> {
        let _lock = lock()?;
        let dir = PathBuf::from(format!("{SESSIONS}/{pid}"));
        let link = entry_path(pid);
        // A leftover of an earlier reaper with our pid.
        remove_entry(&link, &dir);
        // Root's until the socket is attached, and never writable by the user: an entry
        // the user could add files to would let them fill the container's /run, and one
        // they could rename in would let them redirect what root mounts.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .ctx(|| format!("create {}", dir.display()))?;
        let entry = Entry { pid, dir };
        let sock = entry.dir.join("interop");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&sock)
            .ctx(|| format!("create {}", sock.display()))?;
        super::sys::move_mount_to(tree, &sock)
            .ctx(|| format!("attach the session's interop socket at {}", sock.display()))?;
        let_user_search(&entry.dir, uid, gid)?;
        std::os::unix::fs::symlink(&sock, &link).ctx(|| format!("create {}", link.display()))?;
        if !shared {
            fs::write(entry.dir.join(OWN_VIEW), "").ctx(|| "mark the session's entry".into())?;
            return Ok(entry);
        }
        let one = entry_path(1);
        if fs::metadata(&one).is_err() {
            point_one_at(pid)?;
        }
        Ok(entry)
    }

    /// The path the session's `WSL_INTEROP` names.
    pub fn path(&self) -> PathBuf {
        entry_path(self.pid)
    }

    /// Removes the entry; moves `1_interop` on if it pointed here.
    pub fn remove(self) {
        let Ok(_lock) = lock() else { return };
        remove_entry(&entry_path(self.pid), &self.dir);
        let one = entry_path(1);
        let ours = format!("{}_interop", self.pid);
        if fs::read_link(&one).is_ok_and(|t| t == Path::new(&ours)) {
            match newest_live_entry() {
                Some(pid) => {
                    let _ = point_one_at(pid);
                }
                None => {
                    let _ = fs::remove_file(&one);
                }
            }
        }
    }
}

/// The session's user may pass through `dir` (to reach its socket) and do nothing else
/// there: a POSIX ACL entry `user:UID:--x` on the root-owned 0700 directory. Where the
/// file system has no ACLs, the directory is handed to the user instead (who may then
/// also create entries in it).
fn let_user_search(dir: &Path, uid: u32, gid: u32) -> Result<()> {
    if uid == 0 {
        return Ok(());
    }
    match nix_setxattr(dir, "system.posix_acl_access", &search_acl(uid)) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EOPNOTSUPP) => {
            tracing::debug!(
                "no POSIX ACLs on {}: handing it to uid {uid}",
                dir.display()
            );
            nix::unistd::chown(dir, Some(uid.into()), Some(gid.into()))
                .ctx(|| format!("chown {}", dir.display()))
        }
        Err(e) => Err(e).ctx(|| format!("let uid {uid} search {}", dir.display())),
    }
}

/// The extended attribute of a POSIX ACL (include/uapi/linux/posix_acl_xattr.h: version
/// 2, then `{tag: u16, perm: u16, id: u32}` little-endian, sorted by tag): the owner rwx,
/// the named user `uid` search only, the group and others nothing, the mask search.
pub fn search_acl(uid: u32) -> Vec<u8> {
    const UNDEFINED: u32 = u32::MAX;
    let entries: [(u16, u16, u32); 5] = [
        (0x01, 7, UNDEFINED), // ACL_USER_OBJ
        (0x02, 1, uid),       // ACL_USER
        (0x04, 0, UNDEFINED), // ACL_GROUP_OBJ
        (0x10, 1, UNDEFINED), // ACL_MASK
        (0x20, 0, UNDEFINED), // ACL_OTHER
    ];
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

fn nix_setxattr(path: &Path, name: &str, value: &[u8]) -> nix::Result<()> {
    let p =
        CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| nix::errno::Errno::EINVAL)?;
    let n = CString::new(name).map_err(|_| nix::errno::Errno::EINVAL)?;
    // SAFETY: lsetxattr(2) with C strings and a buffer of the length given.
    let r = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    nix::errno::Errno::result(r).map(drop)
}

fn remove_entry(link: &Path, dir: &Path) {
    let _ = fs::remove_file(link);
    let sock = dir.join("interop");
    let _ = umount2(&sock, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    let _ = fs::remove_file(&sock);
    let _ = fs::remove_file(dir.join(OWN_VIEW));
    let _ = fs::remove_dir(dir);
}

/// `1_interop` -> `<pid>_interop`, replaced atomically. Volatile: /run/WSL is a tmpfs.
fn point_one_at(pid: u32) -> Result<()> {
    let target = PathBuf::from(format!("{pid}_interop"));
    fsutil::replace_symlink(&entry_path(1), &target, Durability::Volatile)
        .ctx(|| format!("update {}", entry_path(1).display()))
}

/// The newest session entry whose reaper is alive.
fn newest_live_entry() -> Option<u32> {
    let mut best: Option<(i64, u32)> = None;
    for e in fs::read_dir(RUN_WSL).ok()?.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_suffix("_interop"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == 1 || !Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let Ok(m) = e.path().symlink_metadata() else {
            continue;
        };
        if fs::metadata(e.path()).is_err() {
            continue; // dangling: its session is gone
        }
        if Path::new(&format!("{SESSIONS}/{pid}/{OWN_VIEW}")).exists() {
            continue;
        }
        let t = m.ctime() * 1_000_000_000 + m.ctime_nsec();
        if best.is_none_or(|(bt, _)| t > bt) {
            best = Some((t, pid));
        }
    }
    best.map(|(_, p)| p)
}

/// Serialises changes to /run/WSL between sessions; held only for a few file operations,
/// and waited for at most [`LOCK_WAIT`].
fn lock() -> Result<fs::File> {
    fs::create_dir_all(SESSIONS).ctx(|| format!("create {SESSIONS}"))?;
    fs::create_dir_all(RUN_WSL).ctx(|| format!("create {RUN_WSL}"))?;
    let path = format!("{SESSIONS}/.lock");
    let f = fs::File::create(&path).ctx(|| "create the session lock".into())?;
    super::sys::flock_bounded(&f, LOCK_WAIT, &path)?;
    Ok(f)
}

const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_inits_order() {
        assert_eq!(
            candidates(Some("/run/WSL/7_interop".as_ref()), &[42, 7, 1]),
            [
                PathBuf::from("/run/WSL/7_interop"),
                "/run/WSL/42_interop".into(),
                "/run/WSL/7_interop".into(),
                "/run/WSL/1_interop".into(),
            ]
        );
        assert_eq!(
            candidates(Some("relative".as_ref()), &[1]),
            [PathBuf::from("/run/WSL/1_interop")]
        );
    }

    #[test]
    fn parent_walk_reaches_pid_one_or_the_namespace_top() {
        let a = ancestors();
        assert_eq!(
            a.first().copied(),
            Some(nix::unistd::getppid().as_raw() as u32)
        );
    }

    #[test]
    fn the_search_acl_is_what_setfacl_writes() {
        // `setfacl -m u:1000:x,m::x,g::-,o::- d` on a 0700 directory, read back with
        // getfattr -e hex -n system.posix_acl_access.
        let hex: String = search_acl(1000)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            hex,
            "02000000\
             01000700ffffffff\
             02000100e8030000\
             04000000ffffffff\
             10000100ffffffff\
             20000000ffffffff"
        );
    }

    /// A directory made the way a session's is: its user may search it, not write to it.
    #[test]
    fn a_session_directory_is_searchable_only() {
        if !crate::runtime::test_as_root("switching to another uid") {
            return;
        }
        let d = tempfile::tempdir_in("/dev/shm").unwrap();
        let dir = d.path().join("s");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        fs::write(dir.join("f"), "x").unwrap();
        let_user_search(&dir, 4242, 4242).unwrap();
        let m = fs::metadata(&dir).unwrap();
        assert_eq!(m.uid(), 0, "still root's (tmpfs has ACLs)");
        assert_eq!(m.permissions().mode() & 0o777, 0o710);
        let (r, w) = std::io::pipe().unwrap();
        // A forked child as uid 4242 tries to read a file in it, and to create one.
        // SAFETY: the child only makes syscalls and leaves with _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    nix::unistd::setgid(4242.into()).ok()?;
                    nix::unistd::setuid(4242.into()).ok()?;
                    let read = fs::read_to_string(dir.join("f")).is_ok();
                    let create = fs::write(dir.join("g"), "y").is_ok();
                    Some(u8::from(read) | (u8::from(create) << 1))
                })()
                .unwrap_or(4);
                let _ = std::io::Write::write_all(&mut &w, &[code]);
                // SAFETY: leave the fork without the test harness's destructors.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut b = [9u8];
                let _ = std::io::Read::read_exact(&mut &r, &mut b);
                let _ = nix::sys::wait::waitpid(child, None);
                // The ACL gives search, not read of the listing: the file's own mode
                // (0644) decides; creating is refused.
                assert_eq!(b[0], 1, "read bit 1, create bit 2, setup failure 4");
            }
        }
    }

    #[test]
    fn who_may_write_a_socket() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("s");
        fs::write(&f, "").unwrap();
        let me = nix::unistd::getuid().as_raw();
        let other = Caller {
            uid: me.wrapping_add(12345),
            gid: 54321,
            groups: vec![],
        };
        let owner = Caller {
            uid: me,
            gid: 1,
            groups: vec![],
        };
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        let m = fs::metadata(&f).unwrap();
        assert!(!other.may_write(&m) || other.uid == 0);
        if me != 0 {
            assert!(owner.may_write(&m));
        }
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        assert!(other.may_write(&fs::metadata(&f).unwrap()));
    }
}
