//! The container runtime (Linux only): a distro's own systemd as PID 1 of new mount, pid,
//! uts, ipc and cgroup namespaces, and the code that enters it. The WSL distro integration
//! (the login hook, install, enable) is built on it in [`crate::distro`]; nothing here
//! depends on that.
//!
//! Which code runs where:
//! - [`launch`] runs in the caller and forks the process that becomes the container's
//!   PID 1; that process runs [`shim`] (and applies the [`mounts`] plan, in the process
//!   state of [`procstate`]) before it execs systemd. Nothing else ever runs as PID 1.
//!   Sessions enter once [`readiness`] says what they need answers.
//! - [`session`] is the one way in as the caller (the hook, `exec`): it makes sure the
//!   container runs and enters it through [`enter`].
//! - [`enter`] joins a running container (setns) for `exec`, the hook and `status`; the
//!   session reaper it forks lives inside the container and may call [`logind`] (over
//!   [`dbus`]) and serve [`interop`]; [`waiter`] is the caller's waiting half. A session's
//!   Windows drives follow its elevation ([`drives`]); [`users`] reads the container's
//!   accounts.
//! - [`keeper`] stays outside the container while it runs: the cover of systemd's private
//!   socket ([`privbus`]), the stop before WSL's idle stop ([`idle`]), and the clean-up
//!   after a poweroff from inside.
//! - [`stop`] powers the container off and removes what it left behind ([`cgroup`], the
//!   distro's /run).
//! - [`state`] is the record under `/run/distrod` that ties these together; [`identity`]
//!   names the distro's cgroup; [`history`] says how the previous container ended.
//! - [`sys`] wraps the kernel calls nix does not cover.

pub mod cgroup;
pub mod dbus;
pub mod drives;
pub mod enter;
pub mod history;
pub mod identity;
pub mod idle;
pub mod interop;
pub mod keeper;
pub mod launch;
pub mod logind;
pub mod mounts;
pub mod privbus;
pub mod procstate;
pub mod readiness;
pub mod session;
pub mod session_env;
pub mod shim;
pub mod signals;
pub mod state;
pub mod stop;
pub mod sys;
pub mod users;
pub mod waiter;

/// Failures of the runtime. Each names what was being done; the cause is kept as `source`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call failed.
    #[error("{what}")]
    Sys {
        /// What was being done (`mount /proc`).
        what: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// A file or socket operation failed.
    #[error("{what}")]
    Io {
        /// What was being done (`read /etc/passwd`).
        what: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A command that needs root (its name) was run by another user.
    #[error("distrod {0} must run as root")]
    NotRoot(&'static str),
    /// The command needs a running container and there is none.
    #[error("the container is not running")]
    NotRunning,
    /// Anything else, as one line.
    #[error("{0}")]
    Other(String),
}

/// The result of the runtime's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `.sys("mount /proc")?` on a nix result, `.io("read /etc/passwd")?` on an io result.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Sys {
            what: what(),
            source,
        })
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what(),
            source,
        })
    }
}

/// Where `distrod install` puts the binary; the login-shell hook and the units distrod
/// writes at run time name this path.
pub const INSTALLED_BINARY: &str = "/opt/distrod/bin/distrod";
/// Everything `install` creates lives under this directory (plus the PATH symlink).
pub const INSTALL_DIR: &str = "/opt/distrod";

/// systemd's convention (`/run/host/container-manager`): written by the shim into the
/// container's own /run, so it exists only inside.
pub const CONTAINER_MANAGER_FILE: &str = "/run/host/container-manager";

/// Whether this process runs inside distrod's container (its mount namespace).
pub fn inside_container() -> bool {
    std::fs::read_to_string(CONTAINER_MANAGER_FILE).is_ok_and(|s| s.trim() == "distrod")
}

/// [`Error::NotRoot`] naming `command` unless the effective uid is 0.
pub fn require_root(command: &'static str) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::NotRoot(command))
    }
}

/// For unit tests that need root: true as root; else false after saying that the test is
/// skipped (`what` needs root), and a failure where CI is set (the tests must run there).
#[cfg(test)]
pub(crate) fn test_as_root(what: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root || std::env::var_os("CI").is_none(),
        "this test needs root, and CI is set: it must run there"
    );
    if !root {
        eprintln!("skipping: {what} needs root");
    }
    root
}

/// "what failed: why": an error and its sources on one line (for reports that cross a
/// process boundary as text).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
