//! Just enough of the D-Bus wire protocol (little-endian, method calls, fd passing) to
//! call one method on the system bus and keep the fds of the reply. busctl cannot be used
//! for logind's CreateSession: it exits and closes the session's fifo fd, which ends the
//! session at once. Spec: https://dbus.freedesktop.org/doc/dbus-specification.html

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

/// The system bus's socket, as the container's mount namespace has it.
pub const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";

/// Why a call on the bus failed.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The socket cannot be reached, read or written (a timeout included).
    #[error("cannot talk to the system bus at {SYSTEM_BUS}")]
    Io(#[from] std::io::Error),
    /// The bus sent something this client does not understand, or refused it.
    #[error("D-Bus protocol: {0}")]
    Protocol(String),
    /// The method answered with an error.
    #[error("{name}: {text}")]
    Remote {
        /// The error's name (`org.freedesktop.DBus.Error.AccessDenied`...).
        name: String,
        /// Its message; empty when it has none.
        text: String,
    },
    /// The service (named) does not run yet: asked before calling it, so that a stuck boot
    /// is not waited for.
    #[error("{0} is not running (yet)")]
    NotRunning(&'static str),
}

type Result<T> = std::result::Result<T, DbusError>;

fn proto(s: impl Into<String>) -> DbusError {
    DbusError::Protocol(s.into())
}

/// Marshals a message body with D-Bus alignment rules.
#[derive(Default)]
pub struct Writer {
    /// The bytes so far; offsets are relative to its start, which must be 8-aligned in the
    /// message (the body is).
    pub buf: Vec<u8>,
}

impl Writer {
    /// Zero bytes up to the next multiple of `n`.
    pub fn pad(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }
    /// BYTE.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    /// UINT32 (also BOOLEAN and UNIX_FD, an index into the message's fds), 4-aligned.
    pub fn u32(&mut self, v: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    /// STRING and OBJECT_PATH: u32 length, bytes, NUL.
    pub fn str(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
    /// SIGNATURE: u8 length, bytes, NUL.
    pub fn sig(&mut self, s: &str) {
        self.u8(s.len() as u8);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }
}

/// Unmarshals; every read is bounds-checked (a malformed reply is an error, not a panic).
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Reads `buf` from its start, which counts as 8-aligned.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let end = end.ok_or_else(|| proto("message truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn align(&mut self, n: usize) -> Result<()> {
        let pad = (n - self.pos % n) % n;
        self.take(pad).map(drop)
    }
    /// BYTE.
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    /// UINT32 (also BOOLEAN and UNIX_FD), 4-aligned.
    pub fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    /// STRING or OBJECT_PATH; invalid UTF-8 is replaced, not an error.
    pub fn str(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
    /// SIGNATURE.
    pub fn sig(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        let s = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.take(1)?;
        Ok(s)
    }
}

/// A method return (or error) with the fds that came with it.
pub struct Reply {
    /// The body's D-Bus signature (`soshusub`...); empty for an empty body.
    pub signature: String,
    /// The body, to read with a [`Reader`].
    pub body: Vec<u8>,
    /// The fds that came with it (close-on-exec), in the order the body's UNIX_FD values
    /// index.
    pub fds: Vec<OwnedFd>,
}

struct Header {
    mtype: u8,
    reply_serial: u32,
    error: String,
    signature: String,
    nfds: usize,
}

/// Parses a header's field array (after the 16 fixed bytes).
fn parse_header(raw: &[u8], fields_end: usize) -> Result<Header> {
    let mut h = Header {
        mtype: raw[1],
        reply_serial: 0,
        error: String::new(),
        signature: String::new(),
        nfds: 0,
    };
    let mut r = Reader::new(&raw[..fields_end]);
    r.take(16)?;
    while r.pos < fields_end {
        r.align(8)?;
        let code = r.u8()?;
        match r.sig()?.as_str() {
            "s" | "o" => {
                let v = r.str()?;
                if code == 4 {
                    h.error = v;
                }
            }
            "g" => h.signature = r.sig()?,
            "u" => {
                let v = r.u32()?;
                match code {
                    5 => h.reply_serial = v,
                    9 => h.nfds = v as usize,
                    _ => {}
                }
            }
            other => return Err(proto(format!("unexpected header field type {other}"))),
        }
    }
    Ok(h)
}

/// libdbus's default reply timeout (DBUS_TIMEOUT_USE_DEFAULT).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(25);

/// A connection to a bus, authenticated and with fd passing: one method call at a time.
pub struct Connection {
    sock: UnixStream,
    serial: u32,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
}

impl Connection {
    /// The system bus of this mount namespace. A session's reaper waits on its calls:
    /// bounded like D-Bus's own default method-call timeout, so a bus or logind that never
    /// answers costs one session its logind session, not its login.
    pub fn system() -> Result<Connection> {
        Connection::open(std::path::Path::new(SYSTEM_BUS), CALL_TIMEOUT)
    }

    /// Connects to the bus at `path`, authenticates with EXTERNAL (our uid, hex-encoded
    /// ASCII), asks for fd passing and says Hello; every read and write, and so every
    /// call, waits at most `timeout`.
    pub fn open(path: &std::path::Path, timeout: std::time::Duration) -> Result<Connection> {
        let mut sock = UnixStream::connect(path)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_write_timeout(Some(timeout))?;
        let uid = nix::unistd::geteuid().as_raw().to_string();
        let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
        sock.write_all(format!("\0AUTH EXTERNAL {hex}\r\n").as_bytes())?;
        let l = read_line(&mut sock)?;
        if !l.starts_with("OK") {
            return Err(proto(format!("authentication refused: {l}")));
        }
        sock.write_all(b"NEGOTIATE_UNIX_FD\r\n")?;
        let l = read_line(&mut sock)?;
        if !l.starts_with("AGREE_UNIX_FD") {
            return Err(proto(format!("no fd passing: {l}")));
        }
        sock.write_all(b"BEGIN\r\n")?;
        let mut c = Connection {
            sock,
            serial: 0,
            buf: Vec::new(),
            fds: Vec::new(),
        };
        c.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            "",
            &[],
        )?;
        Ok(c)
    }

    /// Every later read and write waits at most `timeout`.
    pub fn set_timeout(&mut self, timeout: std::time::Duration) -> Result<()> {
        self.sock.set_read_timeout(Some(timeout))?;
        self.sock.set_write_timeout(Some(timeout))?;
        Ok(())
    }

    /// org.freedesktop.DBus.NameHasOwner: whether a service owns `name` now (asking does
    /// not start it, unlike a call to it).
    pub fn name_has_owner(&mut self, name: &str) -> Result<bool> {
        let mut w = Writer::default();
        w.str(name);
        let reply = self.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "NameHasOwner",
            "s",
            &w.buf,
        )?;
        if reply.signature != "b" {
            return Err(proto(format!(
                "NameHasOwner replied with signature {}",
                reply.signature
            )));
        }
        Ok(Reader::new(&reply.body).u32()? != 0)
    }

    /// A METHOD_CALL, waiting for its reply (other messages are dropped).
    pub fn call(
        &mut self,
        dest: &str,
        path: &str,
        iface: &str,
        member: &str,
        signature: &str,
        body: &[u8],
    ) -> Result<Reply> {
        self.serial += 1;
        let mut h = Writer::default();
        h.u8(b'l'); // little-endian
        h.u8(1); // METHOD_CALL
        h.u8(0); // flags
        h.u8(1); // protocol version
        h.u32(body.len() as u32);
        h.u32(self.serial);
        h.u32(0); // length of the field array, patched below
        let start = h.buf.len();
        let mut field = |code: u8, t: &str, v: &str| {
            h.pad(8);
            h.u8(code);
            h.sig(t);
            if t == "g" { h.sig(v) } else { h.str(v) }
        };
        field(1, "o", path);
        field(2, "s", iface);
        field(3, "s", member);
        field(6, "s", dest);
        if !signature.is_empty() {
            field(8, "g", signature);
        }
        let len = (h.buf.len() - start) as u32;
        h.buf[12..16].copy_from_slice(&len.to_le_bytes());
        h.pad(8);
        h.buf.extend_from_slice(body);
        self.sock.write_all(&h.buf)?;
        loop {
            let (hdr, body, fds) = self.recv()?;
            if !matches!(hdr.mtype, 2 | 3) || hdr.reply_serial != self.serial {
                continue;
            }
            if hdr.mtype == 3 {
                let text = if hdr.signature.starts_with('s') {
                    Reader::new(&body).str().unwrap_or_default()
                } else {
                    String::new()
                };
                return Err(DbusError::Remote {
                    name: hdr.error,
                    text,
                });
            }
            return Ok(Reply {
                signature: hdr.signature,
                body,
                fds,
            });
        }
    }

    /// recvmsg(2) into the buffer, collecting SCM_RIGHTS fds (close-on-exec).
    fn fill(&mut self) -> Result<()> {
        let mut data = vec![0u8; 65536];
        let (n, anc) = super::sys::recv_ancillary(&self.sock, &mut data, libc::MSG_CMSG_CLOEXEC)
            .map_err(std::io::Error::from)?;
        if n == 0 {
            return Err(proto("the bus closed the connection"));
        }
        self.buf.extend_from_slice(&data[..n]);
        self.fds.extend(anc.fds);
        Ok(())
    }

    fn recv(&mut self) -> Result<(Header, Vec<u8>, Vec<OwnedFd>)> {
        while self.buf.len() < 16 {
            self.fill()?;
        }
        if self.buf[0] != b'l' {
            return Err(proto("big-endian messages are not supported"));
        }
        let body_len = u32::from_le_bytes(self.buf[4..8].try_into().expect("4")) as usize;
        let fields_len = u32::from_le_bytes(self.buf[12..16].try_into().expect("4")) as usize;
        let fields_end = 16 + fields_len;
        let body_start = fields_end.div_ceil(8) * 8;
        let total = body_start + body_len;
        while self.buf.len() < total {
            self.fill()?;
        }
        let raw: Vec<u8> = self.buf.drain(..total).collect();
        let hdr = parse_header(&raw, fields_end)?;
        while self.fds.len() < hdr.nfds {
            self.fill()?;
        }
        let fds = self.fds.drain(..hdr.nfds).collect();
        Ok((hdr, raw[body_start..].to_vec(), fds))
    }
}

fn read_line(s: &mut UnixStream) -> Result<String> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    while !out.ends_with(b"\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(proto("connection closed during authentication"));
        }
        out.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marshalling_aligns_and_round_trips() {
        let mut w = Writer::default();
        w.u8(7);
        w.str("ab");
        w.u32(9);
        w.sig("us");
        assert_eq!(
            w.buf,
            [
                7, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 0, 0, 9, 0, 0, 0, 2, b'u', b's', 0
            ]
        );
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.str().unwrap(), "ab");
        assert_eq!(r.u32().unwrap(), 9);
        assert_eq!(r.sig().unwrap(), "us");
        assert!(r.u8().is_err());
    }
}
