//! The runtime's record of the running container: `/run/distrod/state.json`, guarded by
//! `flock` on `/run/distrod/lock`. /run is a tmpfs, so a reboot of WSL's VM forgets it; a
//! record whose process is gone (or whose pid now belongs to another process: the start
//! time differs) is stale and ignored.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Context, Result, sys};
use crate::fsutil::{self, Durability, Replace};

/// The runtime's directory: the record, its lock and the notify socket (root only).
pub const STATE_DIR: &str = "/run/distrod";
/// The sd_notify socket the launcher binds; the shim binds it into the container.
pub const NOTIFY_SOCKET: &str = "/run/distrod/distrod.notify";
const STATE_FILE: &str = "/run/distrod/state.json";
const LOCK_FILE: &str = "/run/distrod/lock";
/// The longest anyone waits for the lock. Its holders are short: a launch holds it while
/// it starts systemd and records it (not while systemd boots), a stop while systemd powers
/// off (at most its timeout and the SIGKILL after it).
pub const LOCK_WAIT: Duration = Duration::from_secs(60);

/// The namespaces a container has and `exec` joins, in the order it joins them: the pid
/// namespace before the mount namespace, whose /proc then shows the container's pids.
pub const NAMESPACES: [&str; 5] = ["cgroup", "ipc", "uts", "pid", "mnt"];

/// The record of the running container, saved as JSON (older records are read too: every
/// newer field has a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// systemd's pid in the distro's (outer) pid namespace.
    pub pid: i32,
    /// Field 22 of /proc/PID/stat when launched: detects pid reuse.
    pub start_time: u64,
    /// Inode numbers of /proc/PID/ns/*, by namespace name.
    pub namespaces: std::collections::BTreeMap<String, u64>,
    /// The container's root directory (`/` for the running distro).
    pub rootfs: PathBuf,
    /// The container's cgroup directory (absolute, in the distro's cgroup2 mount).
    pub cgroup: PathBuf,
    /// Seconds since the Unix epoch.
    pub launched_at: f64,
    /// Sessions need not wait for this container any more: what a session needs answers
    /// (`readiness`), systemd reported READY=1, or a launcher stopped waiting (a slow boot
    /// is entered, not waited out twice). A record written by an older distrod has no such
    /// field: its container was ready before the record was written.
    #[serde(default = "yes")]
    pub ready: bool,
    /// How the distro's previous container ended (see `history`), as its launch found it.
    #[serde(default)]
    pub previous: Option<super::history::Record>,
    /// The keeper of this container (see `keeper`): pid and start time; a stop ends it.
    #[serde(default, alias = "watcher")]
    pub keeper: Option<(i32, u64)>,
    /// The names in the distro's /run before the launch, which the container shares (see
    /// `stop::clean_run`); None: a /run of its own (`--rootfs`), or an older record.
    #[serde(default)]
    pub run_before: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl State {
    /// Whether the recorded process still is the one that was launched, and runs: an
    /// exited systemd that the distro's init has not reaped yet is not a running container.
    pub fn is_alive(&self) -> bool {
        sys::running_since(self.pid) == Some(self.start_time)
    }

    /// Whether `other` records the same container (the same process, not a reused pid).
    pub fn same_container(&self, other: &State) -> bool {
        self.pid == other.pid && self.start_time == other.start_time
    }
}

/// Held while reading or changing the state; released on drop (close of the lock fd).
/// When no record is left at release, the lock file goes too, so that a stopped
/// container leaves /run/distrod empty.
pub struct Lock {
    _file: File,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Unlinked while still locked: whoever waits on the old file sees, once it gets
        // the lock, that the path no longer names it and starts over (see `lock`).
        if !Path::new(STATE_FILE).exists() {
            let _ = fs::remove_file(LOCK_FILE);
        }
    }
}

/// Creates /run/distrod (root only, 0700) and takes the lock, waiting for another
/// launch or stop to finish, at most [`LOCK_WAIT`].
pub fn lock() -> Result<Lock> {
    if !Path::new(STATE_DIR).is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(STATE_DIR)
            .ctx(|| format!("create {STATE_DIR}"))?;
    }
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(LOCK_FILE)
            .ctx(|| format!("open {LOCK_FILE}"))?;
        sys::flock_bounded(&file, LOCK_WAIT, LOCK_FILE)?;
        // flock(2) locks an inode, not a path: if the holder before us unlinked the file,
        // our lock is on an orphan and a newcomer could lock a new file at the same path.
        let ours = file.metadata().map(|m| m.ino()).ok();
        let at_path = fs::metadata(LOCK_FILE).map(|m| m.ino()).ok();
        if ours.is_some() && ours == at_path {
            return Ok(Lock { _file: file });
        }
    }
}

/// The record, if one exists and parses (a corrupt one is treated as absent).
pub fn load(_lock: &Lock) -> Option<State> {
    read()
}

/// Read without the lock (status): the record is replaced atomically by rename.
pub fn read() -> Option<State> {
    let text = fs::read_to_string(STATE_FILE).ok()?;
    match serde_json::from_str(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::debug!(%e, "ignoring unreadable {STATE_FILE}");
            None
        }
    }
}

/// The running container, if any (a stale record counts as none).
pub fn running() -> Option<State> {
    read().filter(State::is_alive)
}

/// Writes the record whole (readers never see half of it); the lock proves it is held.
pub fn save(_lock: &Lock, state: &State) -> Result<()> {
    let json = serde_json::to_string_pretty(state).expect("state serialises") + "\n";
    // Volatile: /run is a tmpfs, which no crash leaves anything of; the rename is still what
    // lets `read` go without the lock.
    let opts = Replace::new(Durability::Volatile);
    fsutil::replace_file(Path::new(STATE_FILE), opts, |f| {
        f.write_all(json.as_bytes())
    })
    .ctx(|| format!("write {STATE_FILE}"))
}

/// Removes the record and the notify socket.
pub fn clear(_lock: &Lock) {
    for f in [STATE_FILE, NOTIFY_SOCKET] {
        if let Err(e) = fs::remove_file(f)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(%e, "cannot remove {f}");
        }
    }
}

/// The time, seconds since the Unix epoch (0 before it).
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips() {
        let s = State {
            pid: 42,
            start_time: 1234,
            namespaces: [("pid".to_string(), 4026532000u64)].into_iter().collect(),
            rootfs: "/".into(),
            cgroup: "/sys/fs/cgroup/distrod".into(),
            launched_at: 1.5,
            ready: false,
            previous: None,
            keeper: Some((7, 8)),
            run_before: None,
        };
        let j = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<State>(&j).unwrap(), s);
        // A record of an older distrod, written once systemd was ready.
        let old = j.replace(",\"ready\":false", "");
        assert!(serde_json::from_str::<State>(&old).unwrap().ready);
    }
}
