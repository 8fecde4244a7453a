//! `fakewsl relay`: what WSL runs in a distro for each session. It becomes a child
//! subreaper, serves the session's interop socket `/run/WSL/<pid>_interop`, runs the
//! user's login shell and exits with its status. The session runs in the mount namespace
//! the relay was started in (WSL's relay joins the elevated or the plain one); `--elevated`
//! is what the relay answers WSL's `LxInitMessageQueryDrvfsElevated` with (see lxinit.rs).

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;

use crate::accounts::{self, User};
use crate::lxinit;
use crate::session::{self, SessionFacts};

/// Where WSL keeps the sessions' interop sockets.
pub const INTEROP_DIR: &str = "/run/WSL";

/// Where interop requests are recorded unless `--log` says otherwise.
pub const DEFAULT_LOG: &str = "/run/fakewsl/interop.log";

/// Longest request line a client may send.
const MAX_REQUEST: u64 = 64 * 1024;

/// A client that connects and sends nothing must not stall the session.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct RelayArgs {
    pub user: String,
    /// The session's Windows process is elevated (a Terminal run as administrator).
    pub elevated: bool,
    pub cwd: Option<String>,
    pub log: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// `wsl -e`: run `cmd` itself (its first word an absolute path), not the login shell.
    pub exec: bool,
}

/// Runs a session; returns the shell's exit status (128+signal when it was killed).
pub fn run(args: RelayArgs) -> Result<i32, String> {
    let passwd = fs::read_to_string("/etc/passwd").map_err(|e| format!("read /etc/passwd: {e}"))?;
    let group = fs::read_to_string("/etc/group").map_err(|e| format!("read /etc/group: {e}"))?;
    let user = accounts::find_user(&passwd, &args.user)
        .ok_or_else(|| format!("no user {:?} in /etc/passwd", args.user))?;
    let groups = accounts::supplementary_groups(&user, &accounts::parse_groups(&group));

    // Named as WSL's relay is (its comm), which is how distrod counts a distro's sessions.
    // SAFETY: prctl with a NUL-terminated name.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"Relay".as_ptr(), 0, 0, 0) };
    // Orphans of the session (daemons, double forks) come back to the relay, as in WSL;
    // this is what lets a parent walk from any of them find the socket.
    check(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        "prctl(PR_SET_CHILD_SUBREAPER)",
    )?;
    // Children and termination requests arrive through a signalfd polled with the socket.
    let signals = Signals::block(&[libc::SIGCHLD, libc::SIGHUP, libc::SIGTERM])?;

    let pid = std::process::id();
    let socket = Socket::listen(&format!("{INTEROP_DIR}/{pid}_interop"), &user)?;

    let facts_hostname = hostname();
    let wt_session = session::uuid_like(random_bytes());
    let wt_profile = session::uuid_like(random_bytes());
    let facts = SessionFacts {
        hostname: &facts_hostname,
        interop_socket: &socket.path,
        wt_session: &wt_session,
        wt_profile_id: &wt_profile,
    };
    let env = session::session_env(&user, &facts, &args.env)?;
    let cwd = args.cwd.clone().unwrap_or_else(|| user.home.clone());
    let shell = spawn_shell(&user, &groups, &cwd, &env, &args.cmd, args.exec, &signals)?;

    let mut status = None;
    while status.is_none() {
        let mut fds = [
            libc::pollfd {
                fd: socket.listener.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: signals.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        if fds[1].revents != 0 {
            for sig in signals.drain() {
                if sig != libc::SIGCHLD {
                    // A closed terminal: the shell gets the hangup, the relay keeps serving
                    // until it exits.
                    unsafe { libc::kill(shell, sig) };
                }
            }
            status = reap(shell);
        }
        if fds[0].revents != 0 {
            socket.serve_pending(&Served {
                relay: pid,
                elevated: args.elevated,
                log: &args.log,
            });
        }
    }
    // The shell is gone; reap whatever else already exited, then leave.
    let _ = reap(shell);
    Ok(status.unwrap_or(1))
}

/// Reaps every child that has exited; the shell's status if it was among them.
fn reap(shell: libc::pid_t) -> Option<i32> {
    let mut result = None;
    loop {
        let mut st = 0;
        let pid = unsafe { libc::waitpid(-1, &mut st, libc::WNOHANG) };
        if pid <= 0 {
            return result;
        }
        if pid == shell {
            result = Some(if libc::WIFSIGNALED(st) {
                128 + libc::WTERMSIG(st)
            } else {
                libc::WEXITSTATUS(st)
            });
        }
    }
}

fn check(rc: libc::c_int, what: &str) -> Result<(), String> {
    if rc < 0 {
        Err(format!("{what}: {}", io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}

/// Forks the login shell with the user's credentials, `cwd` and exactly `env`.
fn spawn_shell(
    user: &User,
    groups: &[u32],
    cwd: &str,
    env: &[(String, String)],
    cmd: &[String],
    exec: bool,
    signals: &Signals,
) -> Result<libc::pid_t, String> {
    // Everything the child needs is prepared before fork.
    let (shell, words) = if exec {
        let first = cmd.first().ok_or("--exec needs a command")?.clone();
        (first, cmd.to_vec())
    } else {
        let shell = session::shell_path(user).to_owned();
        let words = session::shell_argv(&shell, cmd);
        (shell, words)
    };
    let path = cstring(&shell)?;
    let argv: Vec<CString> = words.iter().map(|a| cstring(a)).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = env
        .iter()
        .map(|(k, v)| cstring(&format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    let cwd_c = cstring(cwd)?;
    let gids: Vec<libc::gid_t> = groups.to_vec();

    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", io::Error::last_os_error()));
    }
    if pid > 0 {
        return Ok(pid);
    }
    // The child. The relay is single-threaded, so allocating here is safe.
    signals.unblock();
    unsafe {
        if libc::setgroups(gids.len(), gids.as_ptr()) < 0 {
            fail("setgroups");
        }
        if libc::setgid(user.gid) < 0 {
            fail("setgid");
        }
        if libc::setuid(user.uid) < 0 {
            fail("setuid");
        }
        if libc::chdir(cwd_c.as_ptr()) < 0 {
            // What login does without a home: carry on at the root.
            eprintln!(
                "fakewsl relay: chdir {cwd}: {}; starting in /",
                io::Error::last_os_error()
            );
            libc::chdir(c"/".as_ptr());
        }
        libc::execve(path.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr());
    }
    fail(&format!("execve {shell}"))
}

/// Ends the forked child after a failed call: 127 when something was missing, else 126
/// (a shell's conventions).
fn fail(what: &str) -> ! {
    let e = io::Error::last_os_error();
    eprintln!("fakewsl relay: {what}: {e}");
    let code = if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    };
    unsafe { libc::_exit(code) }
}

/// Blocked signals read through a signalfd.
struct Signals {
    fd: OwnedFd,
    old_mask: libc::sigset_t,
}

impl Signals {
    fn block(sigs: &[libc::c_int]) -> Result<Signals, String> {
        unsafe {
            let mut mask: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut mask);
            for &s in sigs {
                libc::sigaddset(&mut mask, s);
            }
            let mut old_mask: libc::sigset_t = std::mem::zeroed();
            check(
                libc::sigprocmask(libc::SIG_BLOCK, &mask, &mut old_mask),
                "sigprocmask",
            )?;
            let fd = libc::signalfd(-1, &mask, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            check(fd, "signalfd")?;
            Ok(Signals {
                fd: OwnedFd::from_raw_fd(fd),
                old_mask,
            })
        }
    }

    /// The signal mask as it was before, for the shell (exec keeps the mask).
    fn unblock(&self) {
        unsafe {
            libc::sigprocmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut());
        }
    }

    /// The signals received since the last call.
    fn drain(&self) -> Vec<libc::c_int> {
        let mut sigs = Vec::new();
        loop {
            let mut info: libc::signalfd_siginfo = unsafe { std::mem::zeroed() };
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut info as *mut libc::signalfd_siginfo).cast(),
                    size,
                )
            };
            if n != size as isize {
                return sigs;
            }
            sigs.push(info.ssi_signo as libc::c_int);
        }
    }
}

/// The session's interop socket; removed when dropped.
struct Socket {
    path: String,
    listener: UnixListener,
}

impl Socket {
    /// Listens on `path`, mode 0600 and owned by the session's user, as WSL does.
    fn listen(path: &str, user: &User) -> Result<Socket, String> {
        fs::create_dir_all(INTEROP_DIR).map_err(|e| format!("mkdir {INTEROP_DIR}: {e}"))?;
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("remove stale {path}: {e}")),
        }
        let listener = UnixListener::bind(path).map_err(|e| format!("bind {path}: {e}"))?;
        let socket = Socket {
            path: path.to_owned(),
            listener,
        };
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .map_err(|e| format!("chmod {path}: {e}"))?;
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .map_err(|e| format!("chown {path}: {e}"))?;
        socket
            .listener
            .set_nonblocking(true)
            .map_err(|e| format!("set {path} non-blocking: {e}"))?;
        Ok(socket)
    }

    /// Answers every connection waiting to be accepted.
    fn serve_pending(&self, served: &Served) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if let Err(e) = serve(stream, served) {
                        eprintln!("fakewsl relay: interop request: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    eprintln!("fakewsl relay: accept: {e}");
                    return;
                }
            }
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// What the relay's requests are answered with.
struct Served<'a> {
    /// The relay's pid (its socket is `/run/WSL/<relay>_interop`).
    relay: u32,
    /// The answer to WSL's elevation query.
    elevated: bool,
    /// The interop log.
    log: &'a str,
}

/// One request, logged: a line in, one line out; or WSL's binary elevation query in, its
/// binary answer out.
fn serve(stream: UnixStream, served: &Served) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let cred = peer_cred(&stream)?;
    let mut reader = BufReader::new((&stream).take(MAX_REQUEST));
    let log = |args: &str| {
        append_log(
            served.log,
            &format!(
                "relay={} uid={} pid={} args={args}\n",
                served.relay, cred.uid, cred.pid
            ),
        )
    };
    // Up to four bytes, fewer when a short text line ends first.
    let mut head = Vec::with_capacity(4);
    while head.len() < 4 && !head.contains(&b'\n') {
        let mut byte = [0u8];
        if reader.read(&mut byte)? == 0 {
            break;
        }
        head.push(byte[0]);
    }
    if head == lxinit::QUERY_PREFIX {
        let mut message = [0u8; lxinit::HEADER_SIZE];
        message[..4].copy_from_slice(&head);
        reader.read_exact(&mut message[4..])?;
        let transaction = lxinit::parse_query(&message).ok_or_else(|| {
            io::Error::other(format!("a malformed elevation query {message:02x?}"))
        })?;
        log(lxinit::QUERY_LOG_ARGS)?;
        return (&stream).write_all(&lxinit::reply(transaction, served.elevated));
    }
    let mut line = head;
    if !line.ends_with(b"\n") {
        reader.read_until(b'\n', &mut line)?;
    }
    let Some(request) = line.strip_suffix(b"\n") else {
        (&stream).write_all(b"error: expected one line\n")?;
        return Err(io::Error::other("the request was not one line"));
    };
    log(&String::from_utf8_lossy(request))?;
    (&stream).write_all(format!("ok relay={}\n", served.relay).as_bytes())
}

fn peer_cred(stream: &UnixStream) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}

/// Appends one line with a single write, so lines of concurrent relays never interleave.
fn append_log(log: &str, line: &str) -> io::Result<()> {
    if let Some(dir) = Path::new(log).parent() {
        fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o644)
        .open(log)?;
    file.set_permissions(fs::Permissions::from_mode(0o644))?;
    let n = file.write(line.as_bytes())?;
    if n != line.len() {
        return Err(io::Error::other(format!("short write to {log}")));
    }
    Ok(())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc < 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn random_bytes() -> [u8; 16] {
    let mut bytes = [0u8; 16];
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if n != bytes.len() as isize {
        // Only needs to look like an id, not be secret.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ u128::from(std::process::id());
        bytes = seed.to_le_bytes();
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves `request` sent on a socket pair; returns whether serving succeeded, the
    /// answer and what was logged.
    fn exchange(request: &[u8], elevated: bool) -> (bool, Vec<u8>, String) {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "fakewsl-relay-test-{}-{}.log",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let log = log.to_str().expect("a UTF-8 temporary path").to_owned();
        let (client, relay) = UnixStream::pair().expect("a socket pair");
        (&client).write_all(request).expect("send the request");
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let served = Served {
            relay: 42,
            elevated,
            log: &log,
        };
        let served_ok = serve(relay, &served).is_ok();
        let mut answer = Vec::new();
        (&client).read_to_end(&mut answer).unwrap();
        let logged = fs::read_to_string(&log).unwrap_or_default();
        let _ = fs::remove_file(&log);
        (served_ok, answer, logged)
    }

    #[test]
    fn the_elevation_query_is_answered_and_logged() {
        let query = [12, 0, 0, 0, 16, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0];
        for elevated in [true, false] {
            let (ok, answer, logged) = exchange(&query, elevated);
            assert!(ok);
            assert_eq!(answer, lxinit::reply(9, elevated));
            let me = std::process::id();
            assert_eq!(
                logged,
                format!(
                    "relay=42 uid={} pid={me} args=<query-drvfs-elevated>\n",
                    unsafe { libc::getuid() }
                )
            );
        }
        // A malformed query gets no answer and no log line.
        let mut bad = query;
        bad[12] = 2;
        assert_eq!(exchange(&bad, true), (false, Vec::new(), String::new()));
    }

    #[test]
    fn text_requests_still_work_however_short() {
        for request in ["x", "", "cmd.exe /c echo hi"] {
            let (ok, answer, logged) = exchange(format!("{request}\n").as_bytes(), true);
            assert!(ok);
            assert_eq!(String::from_utf8(answer).unwrap(), "ok relay=42\n");
            assert!(
                logged.ends_with(&format!(" args={request}\n")),
                "{logged:?}"
            );
        }
        let (ok, answer, logged) = exchange(b"no newline", false);
        assert!(!ok);
        assert_eq!(answer, b"error: expected one line\n");
        assert_eq!(logged, "");
    }
}
