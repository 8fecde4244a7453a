//! Windows drives, seen by each session with its own elevation.
//!
//! WSL keeps two mount namespaces in a distro (microsoft/WSL, src/linux/init/config.cpp:
//! `g_ElevatedMountNamespace`, `g_NonElevatedMountNamespace`): the same tree, but the
//! Windows drives (drvfs mounts under the automount root, `/mnt/c` ...) served with the
//! Windows user's administrator token in one and the plain token in the other. Each
//! session's relay setns()es into the namespace that matches the Windows process that
//! started it (init.cpp, `ConfigSetMountNamespace`), a Terminal run as administrator or
//! not. The container has one mount namespace of its own, made from the namespace of the
//! session that launched it; without more, every later session and every service would
//! see that session's drives.
//!
//! So:
//! - **Which namespace** a session comes from is the caller's own mount namespace: set by
//!   WSL, not changeable by the user. Its **drives** are the mount points one level below
//!   the automount root (`[automount] root` in /etc/wsl.conf, default `/mnt/`), except
//!   WSL's shared `wsl` and `wslg`, each with its submounts.
//! - **Its elevation** is asked of the session's relay, the way WSL's own `mount.drvfs`
//!   asks (drvfs.cpp, `IsDrvfsElevated`): the message `LxInitMessageQueryDrvfsElevated` on
//!   the relay's interop socket. The relay is found by the parent walk only (an ancestor
//!   of the caller, in the caller's namespace), never through `$WSL_INTEROP`, which a plain
//!   session could point at an elevated session's socket. No answer: treated as elevated.
//! - **Services get the plain view**: the container's own namespace shows only drives of a
//!   plain session. Launched by any other session, the container starts with no drives
//!   (services see none) until the first plain session attaches its drives; each plain
//!   session attaches those the container lacks (a drive mounted since).
//! - **A session whose drives are not the container's** (elevated, or of unknown
//!   elevation) enters a mount namespace of its own: a copy of the container's, following
//!   it (a slave: what systemd and logind mount later still appears), with the container's
//!   drives replaced by clones of the session's own. Plain sessions and sessions whose
//!   drives are exactly the container's enter the container's namespace itself.
//!
//! Outside WSL (no `/run/WSL`) there are no drives and nothing of this applies.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Context, Result};

/// A drive: its mount point and the device (`major:minor` of mountinfo) mounted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drive {
    /// Where it is mounted (`/mnt/c`).
    pub mount_point: PathBuf,
    /// The device, `major:minor`: it tells two mounts at one place apart (an elevated
    /// session's drives are other mounts than a plain session's).
    pub dev: String,
}

/// Names below the automount root that are WSL's own shared mounts, not drives.
const NOT_DRIVES: [&str; 2] = ["wsl", "wslg"];

/// `[automount] root` of a wsl.conf text (WSL's default `/mnt/`), as an absolute path.
pub fn automount_root(wsl_conf: Option<&str>) -> PathBuf {
    let root = wsl_conf
        .and_then(|t| crate::wsl::conf::value(t, "automount", "root"))
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| "/mnt/".into());
    let trimmed = root.trim_end_matches('/');
    PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed })
}

/// The drives of a mountinfo text (proc(5)): the top mount of each mount point directly
/// below `root`, in mount order.
pub fn drives_in(mountinfo: &str, root: &Path) -> Vec<Drive> {
    let mut v: Vec<Drive> = Vec::new();
    for line in mountinfo.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let (Some(dev), Some(point)) = (f.get(2), f.get(4)) else {
            continue;
        };
        let point = PathBuf::from(super::cgroup::unescape(point));
        if point.parent() != Some(root) {
            continue;
        }
        let name = point.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if NOT_DRIVES.contains(&name) {
            continue;
        }
        // A later line for the same point is mounted on top: it is what shows.
        v.retain(|d| d.mount_point != point);
        v.push(Drive {
            mount_point: point,
            dev: dev.to_string(),
        });
    }
    v
}

/// Whether WSL's drive handling applies here (a WSL distro: `/run/WSL` exists).
pub fn is_wsl() -> bool {
    Path::new(super::interop::RUN_WSL).is_dir()
}

/// The automount root of this distro.
pub fn this_root() -> PathBuf {
    automount_root(fs::read_to_string("/etc/wsl.conf").ok().as_deref())
}

/// The drives of the process `pid` ("self" for ours), as that process sees them.
pub fn drives_of(pid: &str, root: &Path) -> Vec<Drive> {
    fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map(|t| drives_in(&t, root))
        .unwrap_or_default()
}

/// What a session does with drives, decided by [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Enter the container's namespace, first attaching these drives of the session (the
    /// container lacks them, or has other ones there).
    Container {
        /// Mount points of the session's drives to attach there first.
        attach: Vec<PathBuf>,
    },
    /// Enter a namespace of the session's own, with these drives of the session in place
    /// of the container's.
    Own {
        /// Mount points of all the session's drives.
        drives: Vec<PathBuf>,
    },
}

/// The one rule: plain sessions share the container's namespace (and keep its drives up
/// to date); any other session whose drives differ from the container's gets its own.
/// `elevated`: the relay's answer (None: no answer).
pub fn plan(elevated: Option<bool>, ours: &[Drive], container: &[Drive]) -> Plan {
    let missing: Vec<PathBuf> = ours
        .iter()
        .filter(|d| !container.contains(d))
        .map(|d| d.mount_point.clone())
        .collect();
    if elevated == Some(false) {
        return Plan::Container { attach: missing };
    }
    if missing.is_empty() && ours.len() == container.len() {
        return Plan::Container { attach: vec![] };
    }
    Plan::Own {
        drives: ours.iter().map(|d| d.mount_point.clone()).collect(),
    }
}

/// `LxInitMessageQueryDrvfsElevated` (src/shared/inc/lxinitshared.h): a MESSAGE_HEADER of
/// four little-endian u32s, type 12, size 16, a transaction id, step 1 (a request).
pub const QUERY_ELEVATED: u32 = 12;
/// `LxMessageResultBool`, the type of the answer (`RESULT_MESSAGE<bool>`).
pub const RESULT_BOOL: u32 = 79;

/// The query ([`QUERY_ELEVATED`]) as the relay reads it, with the caller's transaction id.
pub fn elevation_request(transaction: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    for (i, v) in [QUERY_ELEVATED, 16, transaction, 1].into_iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    b
}

/// The answer: a RESULT_MESSAGE<bool> with the 16-byte header of WSL since 2025, or the
/// 8-byte header (type and size only) of earlier versions; None for anything else.
pub fn parse_elevation_reply(b: &[u8]) -> Option<bool> {
    let u32_at = |i: usize| Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?));
    if u32_at(0)? != RESULT_BOOL {
        return None;
    }
    let size = u32_at(4)? as usize;
    let at = match size {
        17..=20 => 16,
        9..=12 => 8,
        _ => return None,
    };
    if b.len() < size {
        return None;
    }
    match b[at] {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// The caller's elevation, asked of its session's relay (see the module documentation).
pub fn query_elevation() -> Option<bool> {
    let socket = super::interop::ancestors()
        .into_iter()
        .map(super::interop::entry_path)
        .find(|p| p.exists())?;
    let ask = || -> std::io::Result<Vec<u8>> {
        let mut s = UnixStream::connect(&socket)?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.set_write_timeout(Some(Duration::from_secs(1)))?;
        s.write_all(&elevation_request(1))?;
        let mut buf = vec![0u8; 20];
        let mut got = 0;
        while got < buf.len() {
            match s.read(&mut buf[got..])? {
                0 => break,
                n => got += n,
            }
            if got >= 8 {
                let size = u32::from_le_bytes(buf[4..8].try_into().unwrap_or_default()) as usize;
                if size <= got || size > buf.len() {
                    break;
                }
            }
        }
        buf.truncate(got);
        Ok(buf)
    };
    match ask() {
        Ok(reply) => {
            let e = parse_elevation_reply(&reply);
            tracing::debug!(socket = %socket.display(), ?e, "the relay's elevation");
            e
        }
        Err(e) => {
            tracing::debug!(socket = %socket.display(), "no elevation from the relay: {e}");
            None
        }
    }
}

/// A detached copy of the mount at `path` and everything below it, to be attached in
/// another namespace.
pub fn clone_tree(path: &Path) -> Result<OwnedFd> {
    super::sys::clone_mount(None, path, true).ctx(|| format!("clone the mount {}", path.display()))
}

/// Attaches a tree from [`clone_tree`] at `path` in the current mount namespace, over
/// whatever is mounted there (which is detached first).
pub fn attach(tree: &OwnedFd, path: &Path) -> Result<()> {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    if !path.exists() {
        fs::create_dir_all(path).ctx(|| format!("create {}", path.display()))?;
    }
    super::sys::move_mount_to(tree, path).ctx(|| format!("attach a drive at {}", path.display()))
}

/// The session's drives, cloned before it enters the container, and where they go.
#[derive(Debug)]
pub struct Prepared {
    /// The session gets a mount namespace of its own ([`Plan::Own`]), not the container's.
    pub own_namespace: bool,
    /// Each drive to attach inside: its mount point and its clone ([`clone_tree`]).
    pub trees: Vec<(PathBuf, OwnedFd)>,
}

/// For a session about to enter the container whose PID 1 is `pid` (outer pid): decides
/// the plan and clones the drives it needs, in the caller's namespace. None outside WSL
/// or when there is nothing to do. The relay is asked (`elevated`) only when there are
/// drives at all.
pub fn prepare(pid: i32, elevated: impl FnOnce() -> Option<bool>) -> Option<Prepared> {
    if !is_wsl() {
        return None;
    }
    let root = this_root();
    let ours = drives_of("self", &root);
    let container = drives_of(&pid.to_string(), &root);
    if ours.is_empty() && container.is_empty() {
        return None;
    }
    let (own_namespace, points) = match plan(elevated(), &ours, &container) {
        Plan::Container { attach } if attach.is_empty() => return None,
        Plan::Container { attach } => (false, attach),
        Plan::Own { drives } => (true, drives),
    };
    let trees = points
        .into_iter()
        .filter_map(|p| match clone_tree(&p) {
            Ok(fd) => Some((p, fd)),
            Err(e) => {
                tracing::debug!("{}", super::chain(&e));
                None
            }
        })
        .collect();
    Some(Prepared {
        own_namespace,
        trees,
    })
}

/// In the entering process, right after it joined the container's mount namespace: a
/// namespace of the session's own (a slave copy of the container's, its drives replaced)
/// or the container's with the missing drives attached.
pub fn apply(p: &Prepared) -> Result<()> {
    if p.own_namespace {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .ctx(|| "a mount namespace for the session".into())?;
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .ctx(|| "make the session's mounts follow the container's".into())?;
        for d in drives_of("self", &this_root()) {
            let _ = nix::mount::umount2(&d.mount_point, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    for (path, tree) in &p.trees {
        attach(tree, path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw - ext4 /dev/sdc rw
30 22 0:40 / /mnt/wsl rw shared:1 - tmpfs none rw
31 22 0:41 / /mnt/wslg rw shared:2 - tmpfs none rw
40 22 0:50 / /mnt/c rw - 9p C:\\134 rw,aname=drvfs;path=C:\\134
41 40 0:51 / /mnt/c/sub rw - tmpfs x rw
42 22 0:52 / /mnt/d rw - 9p D:\\134 rw
43 22 0:53 / /mnt/d rw - 9p D:\\134 rw
44 22 0:54 / /mnt/my\\040disk rw - 9p E:\\134 rw
45 22 0:55 / /media/usb rw - ext4 /dev/sdd rw
";

    fn d(p: &str, dev: &str) -> Drive {
        Drive {
            mount_point: p.into(),
            dev: dev.into(),
        }
    }

    #[test]
    fn drives_are_the_top_mounts_one_level_below_the_root() {
        assert_eq!(
            drives_in(MOUNTINFO, Path::new("/mnt")),
            [
                d("/mnt/c", "0:50"),
                d("/mnt/d", "0:53"),
                d("/mnt/my disk", "0:54"),
            ]
        );
        assert_eq!(
            drives_in(MOUNTINFO, Path::new("/media")),
            [d("/media/usb", "0:55")]
        );
        assert!(drives_in("garbage\n\n1 2\n", Path::new("/mnt")).is_empty());
    }

    #[test]
    fn the_automount_root_comes_from_wsl_conf() {
        assert_eq!(automount_root(None), Path::new("/mnt"));
        assert_eq!(
            automount_root(Some("[automount]\nroot = /windir/\n")),
            Path::new("/windir")
        );
        assert_eq!(
            automount_root(Some("[automount]\nroot=relative\n")),
            Path::new("/mnt")
        );
        assert_eq!(
            automount_root(Some("[automount]\nroot=/\n")),
            Path::new("/")
        );
    }

    #[test]
    fn the_view_rule() {
        let plain = [d("/mnt/c", "0:50")];
        let admin = [d("/mnt/c", "0:60")];
        let none: [Drive; 0] = [];
        // A plain session shares the container's namespace, bringing its drives along.
        assert_eq!(
            plan(Some(false), &plain, &none),
            Plan::Container {
                attach: vec!["/mnt/c".into()]
            }
        );
        assert_eq!(
            plan(Some(false), &plain, &plain),
            Plan::Container { attach: vec![] }
        );
        // An elevated one, or one whose relay did not answer, never changes the
        // container's drives: its own namespace unless the drives are the same.
        for e in [Some(true), None] {
            assert_eq!(
                plan(e, &admin, &plain),
                Plan::Own {
                    drives: vec!["/mnt/c".into()]
                }
            );
            assert_eq!(
                plan(e, &admin, &none),
                Plan::Own {
                    drives: vec!["/mnt/c".into()]
                }
            );
            assert_eq!(plan(e, &none, &none), Plan::Container { attach: vec![] });
            // Fewer drives than the container: still its own (the container's must go).
            assert_eq!(plan(e, &none, &plain), Plan::Own { drives: vec![] });
            assert_eq!(plan(e, &plain, &plain), Plan::Container { attach: vec![] });
        }
    }

    #[test]
    fn the_elevation_query_is_wsls_message() {
        assert_eq!(
            elevation_request(7),
            [12, 0, 0, 0, 16, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0]
        );
        let reply = |size: u32, at: usize, v: u8| {
            let mut b = vec![0u8; size.next_multiple_of(4) as usize];
            b[..4].copy_from_slice(&RESULT_BOOL.to_le_bytes());
            b[4..8].copy_from_slice(&size.to_le_bytes());
            b[at] = v;
            b
        };
        assert_eq!(parse_elevation_reply(&reply(20, 16, 1)), Some(true));
        assert_eq!(parse_elevation_reply(&reply(20, 16, 0)), Some(false));
        assert_eq!(parse_elevation_reply(&reply(12, 8, 1)), Some(true));
        assert_eq!(parse_elevation_reply(&reply(20, 16, 7)), None);
        assert_eq!(parse_elevation_reply(&reply(40, 16, 1)), None);
        assert_eq!(parse_elevation_reply(&reply(20, 16, 1)[..18]), None);
        let mut other = reply(20, 16, 1);
        other[0] = 80;
        assert_eq!(parse_elevation_reply(&other), None);
        assert_eq!(parse_elevation_reply(&[]), None);
    }
}
