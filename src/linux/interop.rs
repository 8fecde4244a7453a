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
//! /run/WSL/<reaper pid>_interop -> /run/distrod/sessions/<reaper pid>/interop
//! /run/distrod/sessions/<reaper pid>/       0700, the session's user
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
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, umount2};

use super::{Context, Error, Result};

pub const RUN_WSL: &str = "/run/WSL";
pub const SESSIONS: &str = "/run/distrod/sessions";

/// `/run/WSL/<pid>_interop`.
pub fn entry_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("{RUN_WSL}/{pid}_interop"))
}

/// Who is asking (the real ids of a possibly setuid process).
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Caller {
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
pub fn candidates(wsl_interop: Option<&str>, ancestors: &[u32]) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = wsl_interop
        .filter(|p| p.starts_with('/'))
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

pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command may hold spaces and parentheses: the state and ppid follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Finds the calling session's interop socket (outside the container) and clones it as a
/// detached mount, or None when the session has none the caller may use.
pub fn session_socket(caller: &Caller) -> Option<OwnedFd> {
    let env = std::env::var("WSL_INTEROP").ok();
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
    // SAFETY: open_tree(2) with an fd we own and an empty path; returns a new fd.
    let r = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            fd.as_raw_fd(),
            c"".as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32,
        )
    };
    if r < 0 {
        return Err(nix::errno::Errno::last())
            .ctx(|| format!("clone the mount of {}", path.display()));
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }))
}

const OPEN_TREE_CLONE: u32 = 1;
const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;

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
    /// the container's namespaces, as root) and owned by `uid`/`gid`.
    pub fn provide(tree: &OwnedFd, pid: u32, uid: u32, gid: u32) -> Result<Entry> {
        let _lock = lock()?;
        let dir = PathBuf::from(format!("{SESSIONS}/{pid}"));
        let link = entry_path(pid);
        // A leftover of an earlier reaper with our pid.
        remove_entry(&link, &dir);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .ctx(|| format!("create {}", dir.display()))?;
        let entry = Entry { pid, dir };
        nix::unistd::chown(&entry.dir, Some(uid.into()), Some(gid.into()))
            .ctx(|| format!("chown {}", entry.dir.display()))?;
        let sock = entry.dir.join("interop");
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&sock)
            .ctx(|| format!("create {}", sock.display()))?;
        let to = CString::new(sock.as_os_str().as_encoded_bytes()).expect("no NUL");
        // SAFETY: move_mount(2) of a detached tree we hold onto a path we created.
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
        if r < 0 {
            return Err(nix::errno::Errno::last())
                .ctx(|| format!("attach the session's interop socket at {}", sock.display()));
        }
        std::os::unix::fs::symlink(&sock, &link).ctx(|| format!("create {}", link.display()))?;
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

fn remove_entry(link: &Path, dir: &Path) {
    let _ = fs::remove_file(link);
    let sock = dir.join("interop");
    let _ = umount2(&sock, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(&sock);
    let _ = fs::remove_dir(dir);
}

/// `1_interop` -> `<pid>_interop`, replaced atomically.
fn point_one_at(pid: u32) -> Result<()> {
    let tmp = PathBuf::from(format!("{RUN_WSL}/.1_interop.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("{pid}_interop"), &tmp)
        .ctx(|| format!("create {}", tmp.display()))?;
    fs::rename(&tmp, entry_path(1)).ctx(|| format!("update {}", entry_path(1).display()))
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
        let t = m.ctime() * 1_000_000_000 + m.ctime_nsec();
        if best.is_none_or(|(bt, _)| t > bt) {
            best = Some((t, pid));
        }
    }
    best.map(|(_, p)| p)
}

/// Serialises changes to /run/WSL between sessions.
fn lock() -> Result<nix::fcntl::Flock<fs::File>> {
    fs::create_dir_all(SESSIONS).ctx(|| format!("create {SESSIONS}"))?;
    fs::create_dir_all(RUN_WSL).ctx(|| format!("create {RUN_WSL}"))?;
    let f =
        fs::File::create(format!("{SESSIONS}/.lock")).ctx(|| "create the session lock".into())?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| Error::Sys {
        what: "lock the session list".into(),
        source: e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_inits_order() {
        assert_eq!(
            candidates(Some("/run/WSL/7_interop"), &[42, 7, 1]),
            [
                PathBuf::from("/run/WSL/7_interop"),
                "/run/WSL/42_interop".into(),
                "/run/WSL/7_interop".into(),
                "/run/WSL/1_interop".into(),
            ]
        );
        assert_eq!(
            candidates(Some("relative"), &[1]),
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
