//! When a session may enter a booting container: as soon as what a session needs works,
//! not when the whole boot has finished.
//!
//! A session needs the system bus and systemd-logind answering on it: the session's reaper
//! asks logind for a session (CreateSession), and logind answers only once the session's
//! scope and the user's `user@UID.service` have started, so the shell that follows has
//! `XDG_RUNTIME_DIR`, `systemctl --user` and D-Bus. Everything else in the boot (a first
//! boot's cloud-init, a slow oneshot in multi-user.target, a network wait) goes on behind
//! the prompt. So the condition is, whichever comes first:
//!
//! - systemd's READY=1 (the boot transaction has finished; also what a distro without
//!   D-Bus or logind waits for), or
//! - a connection to the container's `/run/dbus/system_bus_socket` that authenticates and
//!   says Hello, and then `org.freedesktop.DBus.Peer.Ping` to `org.freedesktop.login1`
//!   answered (asking for the name starts logind by bus activation if the boot has not
//!   got to it yet, as a login would).
//!
//! Each probe is one connection with a short timeout, made from outside the container
//! through `/proc/PID/root` (root on both sides: the container shares the user
//! namespace).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::dbus::{Connection, Reader, SYSTEM_BUS};

/// What a launch is waiting for, for the status line of a session that waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// systemd runs; its system bus socket is not there yet.
    Starting,
    /// The socket is there; the bus does not answer yet.
    Bus,
    /// The bus answers; logind does not yet.
    Logind,
    /// The boot transaction (READY=1), for `distrod launch`.
    Boot,
    /// Another launch started systemd; waiting for it to say sessions may enter.
    OtherLaunch,
}

impl Phase {
    /// The word used between processes (the detached launcher's report).
    pub fn word(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Bus => "bus",
            Phase::Logind => "logind",
            Phase::Boot => "boot",
            Phase::OtherLaunch => "other",
        }
    }

    /// The phase a [`Phase::word`] names; None for any other word.
    pub fn from_word(w: &str) -> Option<Phase> {
        [
            Phase::Starting,
            Phase::Bus,
            Phase::Logind,
            Phase::Boot,
            Phase::OtherLaunch,
        ]
        .into_iter()
        .find(|p| p.word() == w)
    }
}

impl Phase {
    /// Why a wait in this phase is not over, for the line of a session that enters anyway.
    pub fn why(self) -> &'static str {
        match self {
            Phase::Starting => "its system bus is not there yet",
            Phase::Bus => "its system bus does not answer yet",
            Phase::Logind => "systemd-logind does not answer yet",
            Phase::Boot => "its boot has not finished",
            Phase::OtherLaunch => "another session started it",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Starting => "starting systemd",
            Phase::Bus => "starting systemd: waiting for the system bus",
            Phase::Logind => "starting systemd: waiting for systemd-logind",
            Phase::Boot => "starting systemd: waiting for the boot to finish",
            Phase::OtherLaunch => "systemd is starting (from another session)",
        })
    }
}

/// How long one probe may wait for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

fn bus_of(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/root{SYSTEM_BUS}"))
}

/// Whether a session may enter the container of systemd `pid` now; `Err` names what it
/// still waits for.
pub fn sessions_ready(pid: i32) -> Result<(), Phase> {
    let bus = bus_of(pid);
    if !bus.exists() {
        return Err(Phase::Starting);
    }
    let mut c = Connection::open(&bus, PROBE_TIMEOUT).map_err(|e| {
        tracing::trace!("system bus: {e}");
        Phase::Bus
    })?;
    c.call(
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.DBus.Peer",
        "Ping",
        "",
        &[],
    )
    .map(drop)
    .map_err(|e| {
        tracing::trace!("logind: {e}");
        Phase::Logind
    })
}

/// The manager's `SystemState` (what `systemctl is-system-running` prints: initializing,
/// starting, running, degraded, ...), asked over the container's system bus; None when
/// the bus or the manager does not answer.
pub fn system_state(pid: i32) -> Option<String> {
    let mut c = Connection::open(&bus_of(pid), PROBE_TIMEOUT).ok()?;
    let mut body = super::dbus::Writer::default();
    body.str("org.freedesktop.systemd1.Manager");
    body.str("SystemState");
    let reply = c
        .call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            &body.buf,
        )
        .ok()?;
    parse_string_variant(&reply.signature, &reply.body)
}

/// A reply of signature `v` holding a string.
pub fn parse_string_variant(signature: &str, body: &[u8]) -> Option<String> {
    if signature != "v" {
        return None;
    }
    let mut r = Reader::new(body);
    (r.sig().ok()? == "s").then(|| r.str().ok())?
}

/// Whether a SystemState means the boot transaction is still running.
pub fn is_booting(state: &str) -> bool {
    matches!(state, "initializing" | "starting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_cross_the_pipe_by_word() {
        for p in [
            Phase::Starting,
            Phase::Bus,
            Phase::Logind,
            Phase::Boot,
            Phase::OtherLaunch,
        ] {
            assert_eq!(Phase::from_word(p.word()), Some(p));
            assert!(!p.to_string().is_empty() && !p.why().is_empty());
        }
        assert_eq!(Phase::from_word("nonsense"), None);
        assert_eq!(Phase::from_word(""), None);
    }

    #[test]
    fn string_variants() {
        let mut w = super::super::dbus::Writer::default();
        w.sig("s");
        w.str("running");
        assert_eq!(
            parse_string_variant("v", &w.buf).as_deref(),
            Some("running")
        );
        assert_eq!(parse_string_variant("s", &w.buf), None);
        let mut u = super::super::dbus::Writer::default();
        u.sig("u");
        u.u32(7);
        assert_eq!(parse_string_variant("v", &u.buf), None);
        for junk in [&b""[..], b"\x01", b"\x01s\0\xff\xff\xff\xff", b"\xffs"] {
            assert_eq!(parse_string_variant("v", junk), None);
        }
    }

    #[test]
    fn booting_states() {
        assert!(is_booting("starting"));
        assert!(is_booting("initializing"));
        for s in [
            "running",
            "degraded",
            "maintenance",
            "stopping",
            "offline",
            "",
        ] {
            assert!(!is_booting(s), "{s}");
        }
    }

    #[test]
    fn no_container_is_not_ready() {
        // A pid that cannot exist: no /proc entry, so no bus.
        assert_eq!(sessions_ready(i32::MAX), Err(Phase::Starting));
        assert_eq!(system_state(i32::MAX), None);
    }
}
