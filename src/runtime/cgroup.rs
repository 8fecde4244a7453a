//! The container's cgroup: `distrod-<id>` below the cgroup of the distro's init, created
//! by the launcher and made the root of the container's cgroup namespace, so systemd
//! manages a tree of its own and never sees (or rewrites) the distro's. WSL and hybrid
//! hosts mount cgroup2 at /sys/fs/cgroup or /sys/fs/cgroup/unified; it is found in
//! /proc/self/mountinfo.
//!
//! All the distros of a WSL VM share one cgroup tree (WSL gives a distro no cgroup
//! namespace), so the name carries the distro's own id ([`super::identity`]), and the
//! place is below the distro's init: WSL (2.9 and later) puts each distro in a cgroup of
//! its own under `/wsl-user`, whose memory and CPU caps keep WSL's own processes alive,
//! and the container stays inside them.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Context, Error, Result};

/// The prefix of container cgroup names.
pub const PREFIX: &str = "distrod-";

/// The mount point of the first cgroup2 mount in a mountinfo text (proc(5): field 5 is
/// the mount point, the filesystem type follows the " - " separator).
pub fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        left.split_whitespace()
            .nth(4)
            .map(|p| PathBuf::from(unescape(p)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = u8::from_str_radix(&s[i + 1..i + 4], 8).unwrap_or(b'?');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where this mount namespace has cgroup2 mounted (`/sys/fs/cgroup`, or
/// `/sys/fs/cgroup/unified` on a hybrid host); an error when it has none.
pub fn cgroup2_mount() -> Result<PathBuf> {
    let mi =
        fs::read_to_string("/proc/self/mountinfo").ctx(|| "read /proc/self/mountinfo".into())?;
    parse_cgroup2_mount(&mi).ok_or_else(|| {
        Error::Other("no cgroup2 filesystem is mounted (see /proc/self/mountinfo)".into())
    })
}

/// `<cgroup of the distro's init>/distrod-<id>`, absolute in the cgroup2 mount. The
/// distro's init is PID 1 of the pid namespace distrod runs in.
pub fn container_dir(id: &str) -> Result<PathBuf> {
    Ok(dir_of(1, &cgroup2_mount()?)?.join(format!("{PREFIX}{id}")))
}

/// The pids in `dir` (cgroup.procs) as this pid namespace sees them: a process of another
/// pid namespace that this one does not contain (another distro's) shows as 0.
pub fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| parse_procs(&t))
        .unwrap_or_default()
}

/// The pids of a `cgroup.procs` text, one a line; lines that are not a number are skipped.
pub fn parse_procs(text: &str) -> Vec<i32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Whether `dir` or a cgroup below it holds a process this pid namespace can see.
pub fn holds_visible(dir: &Path) -> bool {
    if procs(dir).iter().any(|&p| p > 0) {
        return true;
    }
    fs::read_dir(dir)
        .map(|rd| {
            rd.flatten().any(|e| {
                e.file_type().map(|t| t.is_dir()).unwrap_or(false) && holds_visible(&e.path())
            })
        })
        .unwrap_or(false)
}

/// `populated 1` in cgroup.events: some process lives in this cgroup or below.
pub fn is_populated(dir: &Path) -> bool {
    fs::read_to_string(dir.join("cgroup.events"))
        .map(|s| s.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Moves the calling process into `dir` (writing 0 to cgroup.procs means "me").
pub fn join(dir: &Path) -> Result<()> {
    let procs = dir.join("cgroup.procs");
    fs::write(&procs, "0").ctx(|| format!("join cgroup {}", dir.display()))
}

/// The cgroup of `pid` as an absolute directory in our cgroup2 mount. /proc/PID/cgroup
/// shows the path relative to the *reader's* cgroup namespace root, which is the root of
/// `mount` for a process outside the container.
pub fn dir_of(pid: i32, mount: &Path) -> Result<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ctx(|| format!("read /proc/{pid}/cgroup"))?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| Error::Other(format!("no cgroup2 entry in /proc/{pid}/cgroup")))?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// Waits until nothing lives in `dir` (the kernel empties a cgroup a moment after its last
/// process is reaped, not when it exits). False on timeout.
pub fn wait_unpopulated(dir: &Path, timeout: Duration) -> bool {
    let t0 = Instant::now();
    while is_populated(dir) {
        if t0.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// rmdir(2) `dir` and every cgroup below it, children first (a cgroup with children
/// cannot be removed; its interface files need no removal). Returns how many went.
pub fn remove_tree(dir: &Path) -> Result<usize> {
    let mut n = 0;
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += remove_tree(&e.path())?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Ok(()) => Ok(n + 1),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(n),
        Err(e) => Err(e).ctx(|| format!("remove cgroup {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cgroup2_in_hybrid_and_unified_layouts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse_cgroup2_mount(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            parse_cgroup2_mount("1 0 0:1 / / rw - ext4 /dev/sda rw\n"),
            None
        );
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn procs_of_other_namespaces_show_as_zero() {
        assert_eq!(parse_procs("12\n0\n0\n7\n"), [12, 0, 0, 7]);
        assert_eq!(parse_procs(""), Vec::<i32>::new());
        assert_eq!(parse_procs("x\n-\n3\n"), [3]);
    }
}
