//! A logind session for `exec -u USER`, created the way pam_systemd does it: CreateSession
//! with the session's leader pid, then keep the returned fifo fd open for as long as the
//! session lasts — logind ends the session when that fd is closed (it is how it notices
//! the PAM session ending). A session gives the user XDG_RUNTIME_DIR and user@UID.service,
//! which `systemctl --user` needs.

use std::os::fd::OwnedFd;

use std::path::Path;
use std::time::Duration;

use super::dbus::{CALL_TIMEOUT, Connection, DbusError, Reader, SYSTEM_BUS, Writer};

/// How long a running bus has to answer the first calls.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);

/// A logind session, for as long as this value lives.
#[derive(Debug)]
pub struct Session {
    /// logind's session id (XDG_SESSION_ID).
    pub id: String,
    /// The user's runtime directory, `/run/user/UID` (XDG_RUNTIME_DIR).
    pub runtime_path: String,
    /// Never read, only held: closing it (dropping the session) ends the session.
    #[allow(dead_code)]
    pub fifo: Option<OwnedFd>,
}

/// org.freedesktop.login1.Manager.CreateSession, signature `uusssssussbssa(sv)` (uid,
/// leader pid, service, type, class, desktop, seat, vtnr, tty, display, remote, remote
/// user, remote host, properties); reply `soshusub`.
///
/// The bus has [`ANSWER_TIMEOUT`] to answer and logind must already run: a session that
/// entered a boot stuck before either (past `boot_timeout`) goes on without a logind
/// session at once rather than wait for it ([`DbusError::NotRunning`]). Once logind runs,
/// CreateSession has D-Bus's usual 25 s: logind answers when the user's manager is up.
pub fn create_session(uid: u32, leader: u32, service: &str) -> Result<Session, DbusError> {
    let mut bus = Connection::open(Path::new(SYSTEM_BUS), ANSWER_TIMEOUT)?;
    if !bus.name_has_owner("org.freedesktop.login1")? {
        return Err(DbusError::NotRunning("systemd-logind"));
    }
    bus.set_timeout(CALL_TIMEOUT)?;
    let reply = bus.call(
        "org.freedesktop.login1",
        "/org/freedesktop/login1",
        "org.freedesktop.login1.Manager",
        "CreateSession",
        "uusssssussbssa(sv)",
        &create_session_body(uid, leader, service),
    )?;
    if reply.signature != "soshusub" {
        return Err(DbusError::Protocol(format!(
            "CreateSession replied with signature {}",
            reply.signature
        )));
    }
    let mut r = Reader::new(&reply.body);
    let id = r.str()?;
    let _object_path = r.str()?;
    let runtime_path = r.str()?;
    let fd_index = r.u32()? as usize;
    let fifo = reply.fds.into_iter().nth(fd_index);
    Ok(Session {
        id,
        runtime_path,
        fifo,
    })
}

fn create_session_body(uid: u32, leader: u32, service: &str) -> Vec<u8> {
    let mut b = Writer::default();
    b.u32(uid);
    b.u32(leader);
    b.str(service);
    b.str("tty"); // type
    b.str("user"); // class
    b.str(""); // desktop
    b.str(""); // seat
    b.u32(0); // vtnr
    b.str(""); // tty
    b.str(""); // display
    b.u32(0); // remote (BOOLEAN is 4 bytes)
    b.str(""); // remote user
    b.str(""); // remote host
    b.u32(0); // a(sv): empty array; its elements would be 8-aligned
    b.pad(8);
    b.buf
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_starts_with_uid_and_leader() {
        let b = super::create_session_body(1000, 42, "distrod");
        assert_eq!(&b[..8], &[0xe8, 3, 0, 0, 42, 0, 0, 0]);
        assert_eq!(&b[8..20], b"\x07\0\0\0distrod\0");
        assert_eq!(b.len() % 8, 0);
    }
}
