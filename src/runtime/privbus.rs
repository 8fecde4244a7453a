//! systemd's private socket, reached from the distro outside the container.
//!
//! The container shares the distro's /run ([`super::mounts`]), and so `/run/systemd/private`,
//! the socket root's `systemctl` (and `systemd-run`, `systemd-analyze`, ...) talks to the
//! manager through; from systemd 256 on root's tools use nothing else. systemd serves a
//! connection there only when it can name the peer's pid (`SO_PEERCRED`), and a process
//! outside the container's pid namespace has no pid there: the connection is accepted and
//! dropped ("Transport endpoint is not connected", "Connection refused").
//!
//! So the distro gets a relay: a root process of the container's pid namespace (its
//! connections to systemd carry a pid systemd can name) that stays in the distro's mount
//! namespace and listens on [`RELAY`] (root only, 0600, and only root peers are served),
//! which is bound over the socket in the distro's mount namespace. Root's `systemctl` from
//! `wsl -e` then reaches the manager as it does inside. The container's own /run receives no
//! mounts from the distro's, so inside the path stays systemd's socket. WSL's second mount
//! namespace of the distro (the other elevation) shares /run with the first and gets the
//! cover too.
//!
//! The relay passes bytes and descriptors (SCM_RIGHTS: `systemd-run --pipe` sends its
//! stdio) both ways, and keeps the descriptors with the D-Bus message they came with: it
//! never reads past the end of one message ([`Framing`]), as sd-bus itself does not.
//!
//! systemd makes the socket anew when it re-executes (`daemon-reexec`, an upgrade of the
//! systemd package), and unlinking a file drops the mounts other namespaces have on it: the
//! container's keeper ([`super::keeper`]) covers it again within its poll. The relay ends
//! with the container's pid namespace. The cover goes before /run is cleaned after the
//! container ([`super::stop::clean_run`]): in the distro's namespace the kernel refuses to
//! unlink a mount point.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{Context, Error, Result};

/// systemd's private socket: root's `systemctl` talks to systemd directly through it.
pub const PRIVATE: &str = "/run/systemd/private";
/// The relay's socket, bound over [`PRIVATE`] in the distro's mount namespace.
pub const RELAY: &str = "/run/distrod/systemd-private";

/// The D-Bus specification's largest message.
pub const MAX_MESSAGE: u64 = 1 << 27;
/// The longest authentication line taken (the reference implementation's limit).
const MAX_LINE: usize = 16 * 1024;
/// Connections relayed at once.
const MAX_CONNECTIONS: usize = 64;
/// The most read at once from the body of a message.
const CHUNK: usize = 64 * 1024;

/// Who sends the bytes of one direction of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The client (`systemctl`): authentication lines up to `BEGIN`, then messages.
    Client,
    /// systemd: authentication replies, then messages (which begin with `l` or `B`, the
    /// byte order mark, where a reply line would begin with a capital command word).
    Server,
}

/// Where one direction of a D-Bus connection stands, so that a read never goes past the
/// end of the current message: descriptors that arrive with a read then belong to it.
#[derive(Debug, Clone)]
pub struct Framing {
    from: Sender,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    /// Authentication; the current line so far.
    Text(Vec<u8>),
    /// The fixed 16-byte header of a message, `have` bytes of it so far.
    Header([u8; 16], usize),
    /// The rest of a message.
    Body(u64),
}

/// Bytes that are not D-Bus.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Bad {
    /// An authentication line longer than the reference implementation takes.
    #[error("authentication line longer than {MAX_LINE} bytes")]
    LongLine,
    /// A message whose first byte is neither `l` nor `B`.
    #[error("byte order mark {0:#04x}")]
    Endianness(u8),
    /// A message larger than [`MAX_MESSAGE`].
    #[error("message of {0} bytes")]
    TooLarge(u64),
}

impl Framing {
    /// The start of a connection, in one direction: authentication first.
    pub fn new(from: Sender) -> Framing {
        Framing {
            from,
            state: State::Text(Vec::new()),
        }
    }

    /// The most that may be read now (at least 1).
    pub fn want(&self) -> usize {
        match &self.state {
            State::Text(_) => 1,
            State::Header(_, have) => 16 - have,
            State::Body(left) => (*left).min(CHUNK as u64) as usize,
        }
    }

    /// Whether the bytes taken so far end with a whole message (or with `BEGIN` of the
    /// client's authentication): what comes next begins a message.
    pub fn between_messages(&self) -> bool {
        matches!(self.state, State::Header(_, 0))
    }

    /// Takes bytes just read (any number: they are taken in order).
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Bad> {
        while let Some((&b, rest)) = bytes.split_first() {
            match &mut self.state {
                State::Text(line) => {
                    if line.is_empty() && self.from == Sender::Server && (b == b'l' || b == b'B') {
                        let mut h = [0u8; 16];
                        h[0] = b;
                        self.state = State::Header(h, 1);
                    } else if b == b'\n' {
                        let begin = self.from == Sender::Client
                            && line.iter().skip_while(|c| **c == 0).eq(b"BEGIN\r");
                        self.state = if begin {
                            State::Header([0; 16], 0)
                        } else {
                            State::Text(Vec::new())
                        };
                    } else if line.len() >= MAX_LINE {
                        return Err(Bad::LongLine);
                    } else {
                        line.push(b);
                    }
                    bytes = rest;
                }
                State::Header(h, have) => {
                    let n = (16 - *have).min(bytes.len());
                    h[*have..*have + n].copy_from_slice(&bytes[..n]);
                    *have += n;
                    bytes = &bytes[n..];
                    if *have == 16 {
                        let left = message_len(h)? - 16;
                        self.state = if left == 0 {
                            State::Header([0; 16], 0)
                        } else {
                            State::Body(left)
                        };
                    }
                }
                State::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Header([0; 16], 0);
                    }
                }
            }
        }
        Ok(())
    }
}

/// A message's whole length from its fixed header: the header fields' array (length at
/// 12) padded to 8, then the body (length at 4), in the byte order of byte 0.
pub fn message_len(h: &[u8; 16]) -> Result<u64, Bad> {
    let word = |at: usize| {
        let b = [h[at], h[at + 1], h[at + 2], h[at + 3]];
        match h[0] {
            b'l' => Ok(u32::from_le_bytes(b)),
            b'B' => Ok(u32::from_be_bytes(b)),
            other => Err(Bad::Endianness(other)),
        }
    };
    let (body, fields) = (u64::from(word(4)?), u64::from(word(12)?));
    let total = (16 + fields).div_ceil(8) * 8 + body;
    if total > MAX_MESSAGE {
        return Err(Bad::TooLarge(total));
    }
    Ok(total)
}

/// Whether a mountinfo text (proc(5)) has a cover of ours at `point`: a mount there whose
/// root (field 4) is the relay's socket.
pub fn covered_in(mountinfo: &str, point: &str) -> bool {
    let ours = RELAY.trim_start_matches("/run");
    mountinfo.lines().any(|l| {
        let mut f = l.split(' ');
        let (Some(root), Some(at)) = (f.nth(3), f.next()) else {
            return false;
        };
        at == point && root.ends_with(ours)
    })
}

fn covered_here() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| covered_in(&m, PRIVATE))
}

fn open_path(path: &str) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Binds the relay's socket over systemd's in this mount namespace, if systemd's is there
/// and not covered yet. Returns whether it covered it now. Both are opened without
/// following a symlink and bound through their descriptors.
pub fn cover() -> Result<bool> {
    let sock = |path: &str| -> Result<Option<(File, u64, u64)>> {
        match open_path(path) {
            Ok(f) => {
                let m = f.metadata().ctx(|| format!("stat {path}"))?;
                Ok(m.file_type().is_socket().then(|| (f, m.dev(), m.ino())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).ctx(|| format!("open {path}")),
        }
    };
    let (Some((target, tdev, tino)), Some((relay, rdev, rino))) = (sock(PRIVATE)?, sock(RELAY)?)
    else {
        return Ok(false);
    };
    if (tdev, tino) == (rdev, rino) {
        return Ok(false);
    }
    mount(
        Some(Path::new(&format!("/proc/self/fd/{}", relay.as_raw_fd()))),
        Path::new(&format!("/proc/self/fd/{}", target.as_raw_fd())),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind {RELAY} over {PRIVATE}"))?;
    Ok(true)
}

/// [`cover`], once the relay's socket is there (the keeper makes it as it starts), waiting
/// for it at most `timeout`: the launcher calls this before it lets sessions in, so that
/// root's `systemctl` outside works from the first session on, not only from the keeper's
/// next poll.
pub fn cover_when_ready(timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !Path::new(RELAY).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Err(e) = cover() {
        tracing::debug!("{}", super::chain(&e));
    }
}

/// Removes the cover from this mount namespace (every one, if somehow stacked) and the
/// relay's socket. Inside the container there is no cover to remove.
pub fn uncover() {
    for _ in 0..8 {
        if !covered_here() {
            break;
        }
        if let Err(e) = umount2(PRIVATE, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            tracing::debug!("unmount the cover of {PRIVATE}: {e}");
            break;
        }
    }
    let _ = std::fs::remove_file(RELAY);
}

/// Starts the relay for the container whose systemd is `pid` (in this pid namespace), its
/// pid namespace `pid_ns` (the record's inode: a reused pid is refused). The caller (the
/// keeper) must be single-threaded; it stays in its own pid namespace: an intermediate
/// process joins the container's and forks the relay, which the container's init adopts.
pub fn start_relay(pid: i32, pid_ns: u64) -> Result<()> {
    use nix::unistd::{ForkResult, fork};
    let ns =
        File::open(format!("/proc/{pid}/ns/pid")).ctx(|| format!("open /proc/{pid}/ns/pid"))?;
    if ns.metadata().map(|m| m.ino()).ok() != Some(pid_ns) {
        return Err(Error::Other(format!(
            "pid {pid} is no longer the container's"
        )));
    }
    let _ = std::fs::remove_file(RELAY);
    let listener = UnixListener::bind(RELAY).ctx(|| format!("bind {RELAY}"))?;
    std::fs::set_permissions(RELAY, std::fs::Permissions::from_mode(0o600))
        .ctx(|| format!("chmod {RELAY}"))?;
    // SAFETY: the caller is single-threaded; the intermediate only makes syscalls and
    // leaves with _exit; the relay starts its threads after the fork.
    match unsafe { fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            let code = match nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID) {
                // SAFETY: the intermediate is single-threaded (a fork of the keeper, which
                // is); the relay starts its threads after this fork.
                Ok(()) => match unsafe { fork() } {
                    Ok(ForkResult::Child) => {
                        drop(ns);
                        // SAFETY: prctl with a NUL-terminated name.
                        unsafe {
                            libc::prctl(libc::PR_SET_NAME, c"distrod-privbus".as_ptr(), 0, 0, 0)
                        };
                        serve(listener, &format!("/proc/{pid}/root{PRIVATE}"));
                        0
                    }
                    Ok(ForkResult::Parent { .. }) => 0,
                    Err(_) => 1,
                },
                Err(_) => 1,
            };
            // SAFETY: leave the fork without the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(listener);
            match nix::sys::wait::waitpid(child, None) {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                other => Err(Error::Other(format!(
                    "start the relay to systemd's private socket: {other:?}"
                ))),
            }
        }
    }
}

/// Serves root's connections to `target` (systemd's socket through its root) until the
/// listener fails; the kernel ends the process with the container's pid namespace.
fn serve(listener: UnixListener, target: &str) {
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => {
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            Err(_) => return,
        };
        let root =
            nix::sys::socket::getsockopt(&client, nix::sys::socket::sockopt::PeerCredentials)
                .is_ok_and(|c| c.uid() == 0);
        if !root || live.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
            continue;
        }
        let Ok(server) = UnixStream::connect(target) else {
            continue;
        };
        live.fetch_add(1, Ordering::SeqCst);
        let live = live.clone();
        let spawned = std::thread::Builder::new().spawn(move || {
            relay(client, server);
            live.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            // The closure (and both sockets) went with the failed spawn.
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Both directions of one connection, each in its own thread (a blocked write one way
/// must not stop reads the other way); the end of either ends both.
fn relay(client: UnixStream, server: UnixStream) {
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = std::thread::Builder::new().spawn(move || {
        pump(&c2, &s2, Sender::Client);
        let _ = c2.shutdown(std::net::Shutdown::Both);
        let _ = s2.shutdown(std::net::Shutdown::Both);
    });
    pump(&server, &client, Sender::Server);
    let _ = client.shutdown(std::net::Shutdown::Both);
    let _ = server.shutdown(std::net::Shutdown::Both);
    if let Ok(t) = up {
        let _ = t.join();
    }
}

/// Copies one direction until an end, an error, or bytes that are not D-Bus.
fn pump(from: &UnixStream, to: &UnixStream, who: Sender) {
    let mut framing = Framing::new(who);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let want = framing.want();
        let Ok((n, anc)) =
            super::sys::recv_ancillary(from, &mut buf[..want], libc::MSG_CMSG_CLOEXEC)
        else {
            return;
        };
        if n == 0 || anc.truncated || framing.feed(&buf[..n]).is_err() {
            return;
        }
        if send_all(to, &buf[..n], &anc.fds).is_err() {
            return;
        }
    }
}

/// All of `data`, the descriptors with its first part.
fn send_all(to: &UnixStream, mut data: &[u8], fds: &[OwnedFd]) -> nix::Result<()> {
    let mut fds = fds;
    while !data.is_empty() {
        let n = super::sys::send_with_fds(to, data, fds)?;
        data = &data[n..];
        fds = &[];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(order: u8, body: u32, fields: u32) -> Vec<u8> {
        let mut h = vec![order, 1, 0, 1];
        let enc = |v: u32| {
            if order == b'l' {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            }
        };
        h.extend(enc(body));
        h.extend(enc(7));
        h.extend(enc(fields));
        h
    }

    /// A message of `body` bytes and `fields` bytes of header fields, padded as on the
    /// wire.
    fn message(order: u8, body: u32, fields: u32) -> Vec<u8> {
        let mut m = header(order, body, fields);
        let len = (16 + fields as usize).div_ceil(8) * 8 + body as usize;
        m.resize(len, 0x5a);
        m
    }

    /// Feeds `stream` the way the relay reads it (never more than `want`) and returns
    /// where each message ended.
    fn ends(from: Sender, stream: &[u8]) -> Vec<usize> {
        let mut f = Framing::new(from);
        let mut at = 0;
        let mut out = vec![];
        while at < stream.len() {
            let n = f.want().min(stream.len() - at);
            f.feed(&stream[at..at + n]).unwrap();
            at += n;
            if f.between_messages() {
                out.push(at);
            }
        }
        out
    }

    #[test]
    fn lengths_in_either_byte_order() {
        let h: [u8; 16] = header(b'l', 10, 20).try_into().unwrap();
        assert_eq!(message_len(&h), Ok(40 + 10));
        let h: [u8; 16] = header(b'B', 0, 8).try_into().unwrap();
        assert_eq!(message_len(&h), Ok(24));
        let mut h: [u8; 16] = header(b'l', u32::MAX, 0).try_into().unwrap();
        assert!(matches!(message_len(&h), Err(Bad::TooLarge(_))));
        h[0] = b'x';
        assert_eq!(message_len(&h), Err(Bad::Endianness(b'x')));
    }

    /// The client's lines up to BEGIN, then messages: every read stops at a message's end.
    #[test]
    fn reads_stop_at_each_message_end() {
        let auth = b"\0AUTH EXTERNAL 30\r\nNEGOTIATE_UNIX_FD\r\nBEGIN\r\n".to_vec();
        let (m1, m2) = (message(b'l', 100, 61), message(b'l', 0, 8));
        let stream = [auth.clone(), m1.clone(), m2.clone(), m1.clone()].concat();
        let a = auth.len();
        assert_eq!(
            ends(Sender::Client, &stream),
            [a, a + m1.len(), a + m1.len() + m2.len(), stream.len()]
        );
        // systemd's replies, then its messages.
        let replies = b"OK 0123456789abcdef\r\nAGREE_UNIX_FD\r\n".to_vec();
        let m3 = message(b'B', 300_000, 3);
        let stream = [replies.clone(), m3.clone()].concat();
        assert_eq!(ends(Sender::Server, &stream), [stream.len()]);
    }

    #[test]
    fn not_dbus_is_refused() {
        let mut f = Framing::new(Sender::Client);
        assert_eq!(f.feed(&vec![b'A'; MAX_LINE + 1]), Err(Bad::LongLine));
        let mut f = Framing::new(Sender::Client);
        let mut bad = b"BEGIN\r\n".to_vec();
        bad.extend(header(b'l', u32::MAX, u32::MAX));
        assert!(matches!(f.feed(&bad), Err(Bad::TooLarge(_))));
        // A client's line that merely contains BEGIN does not end authentication.
        let mut f = Framing::new(Sender::Client);
        f.feed(b"DATA BEGIN\r\n").unwrap();
        assert_eq!(f.want(), 1);
    }

    #[test]
    fn only_a_bind_of_the_relay_at_the_socket_is_ours() {
        let info = "\
22 1 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
90 22 0:21 /distrod/systemd-private /run/systemd/private rw shared:5 - tmpfs tmpfs rw
91 22 0:22 / /run/systemd/privatex rw - tmpfs tmpfs rw
";
        assert!(covered_in(info, PRIVATE));
        let other = info.replace("/distrod/systemd-private /run", "/null /run");
        assert!(!covered_in(&other, PRIVATE));
        assert!(!covered_in("", PRIVATE));
        assert!(!covered_in("garbage\n\n1 2", PRIVATE));
    }

    /// A real relay between two socket pairs: bytes and a descriptor cross, the descriptor
    /// with its message.
    #[test]
    fn descriptors_cross_with_their_message() {
        let (client, relay_c) = UnixStream::pair().unwrap();
        let (relay_s, server) = UnixStream::pair().unwrap();
        let t = std::thread::spawn(move || relay(relay_c, relay_s));
        let auth = b"\0AUTH EXTERNAL 30\r\nBEGIN\r\n";
        let (m1, m2) = (message(b'l', 8, 8), message(b'l', 4, 8));
        let file = tempfile::tempfile().unwrap();
        super::super::sys::send_with_fds(&client, auth, &[]).unwrap();
        super::super::sys::send_with_fds(&client, &m1, &[]).unwrap();
        let fd: OwnedFd = file.into();
        super::super::sys::send_with_fds(&client, &m2, std::slice::from_ref(&fd)).unwrap();
        // Read as sd-bus does: exactly up to the end of each message.
        let mut got = vec![0u8; auth.len()];
        read_exact(&server, &mut got, 0);
        assert_eq!(got, auth);
        let mut got = vec![0u8; m1.len()];
        assert_eq!(read_exact(&server, &mut got, 0), 0, "no descriptor with m1");
        assert_eq!(got, m1);
        let mut got = vec![0u8; m2.len()];
        assert_eq!(
            read_exact(&server, &mut got, 0),
            1,
            "the descriptor with m2"
        );
        assert_eq!(got, m2);
        drop(client);
        t.join().unwrap();
    }

    fn read_exact(s: &UnixStream, buf: &mut [u8], mut fds: usize) -> usize {
        let mut at = 0;
        while at < buf.len() {
            let (n, anc) = super::super::sys::recv_ancillary(s, &mut buf[at..], 0).unwrap();
            assert!(n > 0, "end of stream");
            fds += anc.fds.len();
            at += n;
        }
        fds
    }
}
