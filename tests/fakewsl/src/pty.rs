//! `fakewsl pty [--stop-after MS] [--timeout MS] [--until FILE] [--input TEXT] -- CMD...`:
//! CMD as the foreground job of a real terminal, the way a user runs a command from the shell of a
//! terminal window. It opens a pseudo-terminal pair and forks a stand-in for that shell:
//! the leader of a new session with the pty as its controlling terminal, which starts CMD
//! in a process group of its own and makes it the terminal's foreground group. Everything
//! written to the terminal is copied to stdout, and:
//!
//! - after `--stop-after MS` Ctrl-Z (0x1a) is written to the master, so the line
//!   discipline sends SIGTSTP to the foreground group, as a user pressing Ctrl-Z does;
//! - `--input TEXT` is typed ahead: written to the master once CMD has written something
//!   to the terminal (its first prompt); in canonical mode each read of CMD gets one line
//!   of it, as if the user answered each prompt in turn (`\n` in TEXT ends a line);
//! - the shell stand-in reports on stderr, one line each: `pty: job N` once CMD is forked
//!   (N its pid), `pty: stopped` each time CMD stops, `pty: exited CODE` when it ends;
//!   `pty: sent ^Z`, `pty: timeout` and `pty: hang-up` come from the terminal's side;
//! - it exits with CMD's status (128+signal), or with 124 after `--timeout MS` (default
//!   60 s) if CMD has not ended by then, or once FILE (`--until`) exists: closing the
//!   master hangs the terminal up, which ends the session (SIGHUP and SIGCONT for a
//!   stopped job).
//!
//! The master keeps being drained all along, so nothing writing to the terminal blocks.

use std::ffi::{CString, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

/// Exit status when CMD outlived `--timeout` or `--until`.
pub const EXIT_TIMEOUT: i32 = 124;

/// How long the master is still drained after CMD ended (other processes may hold the
/// terminal a little longer).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);

pub struct PtyArgs {
    pub stop_after: Option<Duration>,
    pub timeout: Duration,
    /// Hang up once this file exists.
    pub until: Option<std::path::PathBuf>,
    /// Typed once CMD has written to the terminal.
    pub input: Option<Vec<u8>>,
    pub cmd: Vec<OsString>,
}

/// Parses the arguments after `pty` (bytes: CMD may hold any).
pub fn parse(args: &[OsString]) -> Result<PtyArgs, String> {
    let mut stop_after = None;
    let mut timeout = Duration::from_secs(60);
    let mut until = None;
    let mut input = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut millis = |name: &str| -> Result<Duration, String> {
            it.next()
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis)
                .ok_or_else(|| format!("{name} needs a number of milliseconds"))
        };
        match arg.as_bytes() {
            b"--stop-after" => stop_after = Some(millis("--stop-after")?),
            b"--timeout" => timeout = millis("--timeout")?,
            b"--until" => {
                until = Some(it.next().ok_or("--until needs a file")?.into());
            }
            b"--input" => {
                input = Some(it.next().ok_or("--input needs a text")?.as_bytes().to_vec());
            }
            b"--" => {
                let cmd: Vec<OsString> = it.by_ref().cloned().collect();
                if cmd.is_empty() {
                    return Err("no command after --".to_owned());
                }
                return Ok(PtyArgs {
                    stop_after,
                    timeout,
                    until,
                    input,
                    cmd,
                });
            }
            _ => return Err(format!("unexpected argument {arg:?}")),
        }
    }
    Err("expected -- CMD...".to_owned())
}

/// Writes `pty: LINE` to stderr with one write(2) and without allocating: the shell
/// stand-in reports from a forked child (of a test's threaded process too).
fn report(line: std::fmt::Arguments) {
    let mut buf = [0u8; 256];
    let len = {
        let mut rest = &mut buf[..];
        let _ = writeln!(rest, "pty: {line}");
        256 - rest.len()
    };
    // SAFETY: write(2) of our own initialised buffer.
    unsafe { libc::write(2, buf.as_ptr().cast(), len) };
}

/// The calling thread's errno (reading it allocates nothing).
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", io::Error::last_os_error())
}

/// Opens the master and returns it with the slave's path.
fn open_pair() -> Result<(libc::c_int, CString), String> {
    // SAFETY: plain syscalls; ptsname_r writes at most buf.len() bytes.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if master < 0 {
            return Err(os_error("posix_openpt"));
        }
        if libc::grantpt(master) != 0 || libc::unlockpt(master) != 0 {
            return Err(os_error("grantpt/unlockpt"));
        }
        let mut buf = [0 as libc::c_char; 256];
        if libc::ptsname_r(master, buf.as_mut_ptr(), buf.len()) != 0 {
            return Err(os_error("ptsname_r"));
        }
        let name = std::ffi::CStr::from_ptr(buf.as_ptr()).to_owned();
        Ok((master, name))
    }
}

/// The forked child plays an interactive shell: the leader of a new session whose
/// controlling terminal is the slave. It starts CMD as a job of its own (a new process
/// group, made the terminal's foreground group; its parent in the same session, so a
/// Ctrl-Z is not discarded as it would be for an orphaned group), reports on stderr when
/// CMD stops, and exits with CMD's status when it ends.
/// `argv` is CMD's NULL-terminated argument vector, prepared before the fork.
fn leader(master: libc::c_int, slave: &CString, argv: &[*const libc::c_char]) -> ! {
    // SAFETY: syscalls on our own process, descriptors and children; everything the job
    // needs was prepared before the fork.
    unsafe {
        // Only the terminal's side holds the master: its close must hang the terminal up.
        libc::close(master);
        libc::setsid();
        let fd = libc::open(slave.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
        if fd < 0 || libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
            report(format_args!("cannot take the terminal: errno {}", errno()));
            libc::_exit(126);
        }
        // A shell ignores these while it hands the terminal around.
        libc::signal(libc::SIGTTOU, libc::SIG_IGN);
        let job = libc::fork();
        if job < 0 {
            report(format_args!("cannot fork the job: errno {}", errno()));
            libc::_exit(126);
        }
        if job == 0 {
            libc::setpgid(0, 0);
            libc::tcsetpgrp(fd, libc::getpid());
            for std_fd in 0..3 {
                libc::dup2(fd, std_fd);
            }
            // What a shell gives its jobs: default dispositions (Rust ignores SIGPIPE).
            for sig in [libc::SIGTTOU, libc::SIGPIPE] {
                libc::signal(sig, libc::SIG_DFL);
            }
            libc::execvp(argv[0], argv.as_ptr());
            libc::_exit(127);
        }
        // Both sides set the group and the foreground group: no race with the exec.
        libc::setpgid(job, job);
        libc::tcsetpgrp(fd, job);
        report(format_args!("job {job}"));
        loop {
            let mut st = 0;
            let r = libc::waitpid(job, &mut st, libc::WUNTRACED);
            if r < 0 {
                if errno() == libc::EINTR {
                    continue;
                }
                libc::_exit(1);
            }
            if libc::WIFSTOPPED(st) {
                report(format_args!("stopped"));
                // As a shell does: the terminal back to the shell; the job stays stopped.
                libc::tcsetpgrp(fd, libc::getpid());
                continue;
            }
            let code = if libc::WIFSIGNALED(st) {
                128 + libc::WTERMSIG(st)
            } else {
                libc::WEXITSTATUS(st)
            };
            report(format_args!("exited {code}"));
            libc::_exit(code);
        }
    }
}

/// Writes all of `text` to the master (a short write is retried; a failure reported).
fn type_ahead(master: libc::c_int, text: &[u8]) {
    let mut rest = text;
    while !rest.is_empty() {
        // SAFETY: a write from a live slice of its length.
        let n = unsafe { libc::write(master, rest.as_ptr().cast(), rest.len()) };
        if n < 0 {
            if errno() == libc::EINTR || errno() == libc::EAGAIN {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            report(format_args!("could not type: errno {}", errno()));
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Runs CMD on a new terminal; returns the exit status described in the module doc.
pub fn run(args: PtyArgs) -> Result<i32, String> {
    let argv: Vec<CString> = args
        .cmd
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| format!("{a:?} holds a NUL byte")))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let (master, slave) = open_pair()?;
    // SAFETY: single-threaded; the child only makes syscalls and execs.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_error("fork"));
    }
    if pid == 0 {
        leader(master, &slave, &argv_ptrs);
    }
    let start = Instant::now();
    let mut ctrl_z_due = args.stop_after.map(|d| start + d);
    let mut input = args.input;
    let mut status: Option<i32> = None;
    let mut ended_at: Option<Instant> = None;
    let mut stdout = io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if let Some(due) = ctrl_z_due
            && now >= due
        {
            // SAFETY: a one-byte write from a local buffer.
            let n = unsafe { libc::write(master, [0x1a_u8].as_ptr().cast(), 1) };
            let what = if n == 1 { "sent" } else { "could not send" };
            report(format_args!("{what} ^Z"));
            ctrl_z_due = None;
        }
        if status.is_none() {
            let mut st = 0;
            // SAFETY: waitpid on our own child.
            let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
            if r == pid {
                status = Some(if libc::WIFSIGNALED(st) {
                    128 + libc::WTERMSIG(st)
                } else {
                    libc::WEXITSTATUS(st)
                });
                ended_at = Some(now);
            }
        }
        if let Some(at) = ended_at
            && now.duration_since(at) >= DRAIN_AFTER_EXIT
        {
            break;
        }
        if status.is_none() && now.duration_since(start) >= args.timeout {
            report(format_args!("timeout"));
            break;
        }
        if status.is_none() && args.until.as_ref().is_some_and(|f| f.exists()) {
            report(format_args!("hang-up"));
            break;
        }
        let mut pfd = libc::pollfd {
            fd: master,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, 20) };
        if n > 0 {
            // SAFETY: read into a local buffer of its size.
            let got = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
            if got > 0 {
                let _ = stdout.write_all(&buf[..got as usize]);
                let _ = stdout.flush();
                if let Some(text) = input.take() {
                    type_ahead(master, &text);
                }
            } else if status.is_some() {
                // EIO: every slave descriptor is closed.
                break;
            } else {
                // No slave open right now (between a close and a reopen): do not spin.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    let _ = stdout.flush();
    // Closing the master hangs the terminal up (SIGHUP and SIGCONT for CMD, if it runs).
    // SAFETY: our own descriptor, closed once.
    unsafe { libc::close(master) };
    if status.is_none() {
        // Reap CMD if the hang-up ended it; a CMD that ignores it is left running.
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            // SAFETY: waitpid on our own child.
            if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } != 0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(status.unwrap_or(EXIT_TIMEOUT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn arguments() {
        let a = parse(&os(&["--stop-after", "300", "--", "sh", "-c", "x"])).unwrap();
        assert_eq!(a.stop_after, Some(Duration::from_millis(300)));
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert_eq!(a.cmd, os(&["sh", "-c", "x"]));
        assert_eq!(a.until, None);
        let a = parse(&os(&["--timeout", "5", "--until", "/f", "--", "true"])).unwrap();
        assert_eq!(a.stop_after, None);
        assert_eq!(a.input, None);
        assert_eq!(a.until.as_deref(), Some(std::path::Path::new("/f")));
        assert_eq!(a.timeout, Duration::from_millis(5));
        let a = parse(&os(&["--input", "a\nb\n", "--", "cat"])).unwrap();
        assert_eq!(a.input.as_deref(), Some(&b"a\nb\n"[..]));
        assert!(parse(&os(&["--input"])).is_err());
        assert!(parse(&os(&["--",])).is_err());
        assert!(parse(&os(&["--stop-after", "x", "--", "true"])).is_err());
        assert!(parse(&os(&["true"])).is_err());
    }

    #[test]
    fn typed_input_answers_prompts_one_line_each() {
        // Two reads after a prompt: each gets one line; the second one without echo.
        let script = "printf 'name: '; read a; stty -echo; read b; stty echo; \
                      test \"$a\" = alice && test \"$b\" = 'pass word'";
        let a = parse(&os(&[
            "--input",
            "alice\npass word\n",
            "--",
            "sh",
            "-c",
            script,
        ]))
        .unwrap();
        assert_eq!(run(a).unwrap(), 0);
    }

    #[test]
    fn a_command_runs_on_a_terminal_and_ctrl_z_stops_it() {
        let a = parse(&os(&["--", "sh", "-c", "test -t 0 && test -t 1"])).unwrap();
        assert_eq!(run(a).unwrap(), 0);
        let a = parse(&os(&[
            "--stop-after",
            "200",
            "--timeout",
            "1500",
            "--",
            "sleep",
            "5",
        ]))
        .unwrap();
        assert_eq!(
            run(a).unwrap(),
            EXIT_TIMEOUT,
            "sleep was stopped, not ended"
        );
    }
}
