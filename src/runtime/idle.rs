//! A clean poweroff before WSL's idle stop.
//!
//! WSL stops a distro on its own `instanceIdleTimeout` (`[general]` of the Windows user's
//! `.wslconfig`, milliseconds, 15 s by default, negative: never) after the last Windows-side
//! client of the distro (a `wsl.exe` session or command, a Terminal tab) has ended, however
//! many Linux processes still run; for a distro without WSL's own systemd mode that is
//! `reboot(RB_POWER_OFF)` from WSL's init, SIGKILL to every process of the distro, the
//! container's services included, without their stop commands.
//!
//! WSL's init runs one process per client, its relay (comm `Relay`, root, in the distro's
//! pid namespace: the parent of the session's shell, or of the command of `wsl -e`, hooked
//! or not). While the container runs, its keeper ([`super::keeper`], a root process of the
//! distro outside the container, out of every caller's reach) counts them. Once it has
//! seen one and then none for [`begin_after`] of the window, it powers the container off
//! with systemd's own poweroff, SIGKILL at the window's end less the margin. It holds the
//! state lock from its last count to the end of the stop: a session that arrived before
//! that count cancels the stop; one arriving later waits for the lock in its launch and
//! boots a fresh container.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// WSL's default `instanceIdleTimeout`.
pub const WSL_DEFAULT_WINDOW: Duration = Duration::from_millis(15_000);

/// How much of the window the poweroff itself gets at most: the stop begins this long
/// before the window (less the margin) ends, or after [`MIN_GRACE`] if the window is short.
pub const STOP_BUDGET: Duration = Duration::from_secs(8);
/// Never sooner after the last session than this: a new session opened right after one
/// closes (a second `wsl -e`, a reconnecting editor) keeps the container.
pub const MIN_GRACE: Duration = Duration::from_secs(1);

/// When the poweroff begins, after the last session ended: early enough that systemd has
/// [`STOP_BUDGET`] before `window - margin`, but not before [`MIN_GRACE`].
pub fn begin_after(window: Duration, margin: Duration) -> Duration {
    window
        .saturating_sub(margin)
        .saturating_sub(STOP_BUDGET)
        .max(MIN_GRACE)
}

/// `[general] instanceIdleTimeout` of a `.wslconfig` text: None when unset or not a number;
/// `Some(None)` for a negative value (WSL never idles the distro).
pub fn window_of(wslconfig: &str) -> Option<Option<Duration>> {
    let v = crate::wsl::conf::value(wslconfig, "general", "instanceIdleTimeout")?;
    let ms: i64 = v.trim().parse().ok()?;
    Some(u64::try_from(ms).ok().map(Duration::from_millis))
}

/// The Windows user's profile directories a PATH names (WSL appends the Windows PATH,
/// which holds `%USERPROFILE%\AppData\Local\Microsoft\WindowsApps`): the
/// `<root>/<drive>/Users/<name>` prefixes of its entries, first first, no repeats.
pub fn profiles_in_path(path: &[u8], root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for entry in path.split(|b| *b == b':') {
        let p = Path::new(std::ffi::OsStr::from_bytes(entry));
        let Ok(rest) = p.strip_prefix(root) else {
            continue;
        };
        let parts: Vec<_> = rest.components().take(3).collect();
        let [drive, users, name] = parts[..] else {
            continue;
        };
        let drive = drive.as_os_str().as_bytes();
        if drive.len() != 1
            || !drive[0].is_ascii_alphabetic()
            || !users.as_os_str().eq_ignore_ascii_case("users")
            || matches!(name, std::path::Component::ParentDir)
        {
            continue;
        }
        let profile = root.join(drive_str(drive)).join(users).join(name);
        if !out.contains(&profile) {
            out.push(profile);
        }
    }
    out
}

fn drive_str(d: &[u8]) -> String {
    String::from_utf8_lossy(d).into_owned()
}

/// The idle window WSL applies to this distro: from the `.wslconfig` of the first profile
/// `path` names that has one, else of the only one under `<root>/c/Users`; WSL's default
/// otherwise. None: WSL never idles it.
pub fn window(path: Option<&[u8]>, root: &Path) -> Option<Duration> {
    let mut candidates = path.map(|p| profiles_in_path(p, root)).unwrap_or_default();
    if candidates.is_empty()
        && let Ok(rd) = fs::read_dir(root.join("c/Users"))
    {
        let found: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                fs::symlink_metadata(p.join(".wslconfig")).is_ok_and(|m| m.file_type().is_file())
            })
            .collect();
        if let [only] = &found[..] {
            candidates.push(only.clone());
        }
    }
    for profile in candidates {
        if let Some(text) = read_wslconfig(&profile.join(".wslconfig")) {
            tracing::debug!(profile = %profile.display(), "the Windows user's .wslconfig");
            if let Some(w) = window_of(&text) {
                return w;
            }
            break;
        }
    }
    Some(WSL_DEFAULT_WINDOW)
}

/// A `.wslconfig` as root reads it for a caller who may have chosen the path (their
/// PATH): a regular file, not through a symlink at its last component, at most 64 KiB.
fn read_wslconfig(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    f.take(64 * 1024).read_to_string(&mut text).ok()?;
    Some(text)
}

/// Whether `/proc/<pid>` is one of WSL's relays in this pid namespace: comm `Relay`, real
/// uid 0, and the same pid namespace as ours (a process of the container named so is not).
fn is_relay(pid: u32, own_ns: u64) -> bool {
    let comm = fs::read(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm != b"Relay\n" {
        return false;
    }
    let root = fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == 0);
    let ns = fs::metadata(format!("/proc/{pid}/ns/pid")).map(|m| m.ino());
    root && ns.is_ok_and(|i| i == own_ns)
}

/// The number of WSL sessions (relays) of the distro now.
pub fn sessions() -> usize {
    let Ok(own_ns) = fs::metadata("/proc/self/ns/pid").map(|m| m.ino()) else {
        return 0;
    };
    fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&pid| is_relay(pid, own_ns))
                .count()
        })
        .unwrap_or(0)
}

/// What a launch hands the keeper for the idle stop: the launching session's PATH (where the Windows user's
/// profile, and so `.wslconfig`, is found) and the margin.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The launching session's PATH, raw: its Windows directories lead to the Windows
    /// user's profile. None: no PATH, so no `.wslconfig` is read (WSL's default window
    /// applies).
    pub path: Option<Vec<u8>>,
    /// `container.idle_stop_margin`: the poweroff must be over this long before WSL's stop.
    pub margin: Duration,
    /// The launch came from a WSL session (a relay is among its ancestors): the keeper
    /// counts from the start, even if that session is over before its first look.
    pub from_session: bool,
}

/// Whether this process descends from one of WSL's relays (a WSL session or `wsl -e`).
pub fn in_session() -> bool {
    let Ok(own_ns) = fs::metadata("/proc/self/ns/pid").map(|m| m.ino()) else {
        return false;
    };
    let mut pid = std::process::id();
    for _ in 0..64 {
        match super::interop::parent_of(pid) {
            Some(p) if p > 1 => {
                if is_relay(p, own_ns) {
                    return true;
                }
                pid = p;
            }
            _ => return false,
        }
    }
    false
}

/// The idle stop's part of the container's keeper ([`super::keeper`]), looked at once per
/// poll (see the module documentation).
#[derive(Debug)]
pub struct Idler {
    window: Duration,
    margin: Duration,
    begin: Duration,
    armed: bool,
    idle_since: Option<Instant>,
}

impl Idler {
    /// The idle stop a launch asked for, with WSL's window read now (through the drive
    /// mount, off the launching session's PATH: see [`window`]). None when WSL never
    /// idles the distro: nothing to do.
    pub fn new(opts: &Options) -> Option<Idler> {
        let Some(window) = window(opts.path.as_deref(), &super::drives::this_root()) else {
            tracing::debug!("WSL never idles this distro: no idle stop");
            return None;
        };
        Some(Idler {
            window,
            margin: opts.margin,
            begin: begin_after(window, opts.margin),
            armed: opts.from_session,
            idle_since: None,
        })
    }

    /// One look at the distro's sessions, the poweroff once they have been gone long
    /// enough. True once the idle stop is over for this container: powered off, or given
    /// up on an error.
    pub fn tick(&mut self) -> bool {
        if sessions() > 0 {
            self.armed = true;
            self.idle_since = None;
            return false;
        }
        if !self.armed {
            return false;
        }
        let since = *self.idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() < self.begin {
            return false;
        }
        let left = self
            .window
            .saturating_sub(self.margin)
            .saturating_sub(since.elapsed())
            .max(Duration::from_secs(1));
        match super::stop::stop_if(|_| sessions() == 0, left, "idle") {
            Ok(true) => {
                tracing::debug!("the distro's last session ended: powered off");
                true
            }
            Ok(false) => {
                self.idle_since = None;
                false
            }
            Err(e) => {
                tracing::debug!("idle stop: {}", super::chain(&e));
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stop_begins_so_that_it_ends_within_the_window() {
        let s = Duration::from_secs;
        assert_eq!(begin_after(s(15), s(2)), s(5));
        assert_eq!(begin_after(s(60), s(2)), s(50));
        assert_eq!(begin_after(s(5), s(2)), MIN_GRACE);
        assert_eq!(begin_after(s(0), s(2)), MIN_GRACE);
        assert_eq!(begin_after(Duration::MAX, s(2)), Duration::MAX - s(10));
    }

    #[test]
    fn wslconfig_windows() {
        let w = |t: &str| window_of(t);
        assert_eq!(
            w("[general]\ninstanceIdleTimeout=60000\n"),
            Some(Some(Duration::from_secs(60)))
        );
        assert_eq!(w("[General]\r\n InstanceIdleTimeout = -1\r\n"), Some(None));
        assert_eq!(w("[wsl2]\ninstanceIdleTimeout=5\n"), None);
        assert_eq!(w("[general]\ninstanceIdleTimeout=soon\n"), None);
        assert_eq!(w(""), None);
        assert_eq!(
            w("[general]\ninstanceIdleTimeout=0 # at once\n"),
            Some(Some(Duration::ZERO))
        );
    }

    #[test]
    fn profiles_from_the_windows_path() {
        let root = Path::new("/mnt");
        let path = b"/usr/bin:/mnt/c/Users/Alice Smith/AppData/Local/Microsoft/WindowsApps:\
                     /mnt/c/WINDOWS/system32:/mnt/d/users/bob/bin:/mnt/c/Users/Alice Smith/.x:\
                     /mnt/cc/Users/x/y:/mnt/c/Users/..:/mnt/c/Users";
        assert_eq!(
            profiles_in_path(path, root),
            [
                PathBuf::from("/mnt/c/Users/Alice Smith"),
                PathBuf::from("/mnt/d/users/bob")
            ]
        );
        assert!(profiles_in_path(b"\xff\xfe:/x", root).is_empty());
        assert_eq!(
            profiles_in_path(b"/c/Users/a/b", Path::new("/")),
            [PathBuf::from("/c/Users/a")]
        );
    }

    #[test]
    fn the_window_from_the_profile_or_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let alice = root.join("c/Users/alice");
        fs::create_dir_all(&alice).unwrap();
        let path = format!("{}/AppData/Local/Microsoft/WindowsApps", alice.display());
        assert_eq!(
            window(Some(path.as_bytes()), root),
            Some(WSL_DEFAULT_WINDOW)
        );
        fs::write(
            alice.join(".wslconfig"),
            "[general]\ninstanceIdleTimeout=7000\n",
        )
        .unwrap();
        assert_eq!(
            window(Some(path.as_bytes()), root),
            Some(Duration::from_secs(7))
        );
        // No PATH to go by: the only profile with a .wslconfig.
        assert_eq!(window(None, root), Some(Duration::from_secs(7)));
        fs::write(
            alice.join(".wslconfig"),
            "[general]\ninstanceIdleTimeout=-1\n",
        )
        .unwrap();
        assert_eq!(window(None, root), None);
        fs::create_dir_all(root.join("c/Users/bob")).unwrap();
        fs::write(root.join("c/Users/bob/.wslconfig"), "").unwrap();
        // Two candidates and no PATH: WSL's default.
        assert_eq!(window(None, root), Some(WSL_DEFAULT_WINDOW));
    }
}
