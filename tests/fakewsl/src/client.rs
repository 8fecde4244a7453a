//! `fakewsl client`: what WSL's `/init` does when it runs as the interpreter of a Windows
//! program: find the session's interop socket, send the request, get an answer.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::relay::INTEROP_DIR;

/// No socket found.
pub const EXIT_NO_SOCKET: i32 = 2;
/// The socket was found but could not be connected to.
pub const EXIT_CONNECT: i32 = 3;
/// The relay did not answer as expected.
pub const EXIT_PROTOCOL: i32 = 4;

/// Longest wait for the relay's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(args: &[String]) -> i32 {
    let Some(path) = find_socket() else {
        eprintln!(
            "fakewsl client: no interop socket: WSL_INTEROP is unset or missing and no \
             parent has {INTEROP_DIR}/<pid>_interop"
        );
        return EXIT_NO_SOCKET;
    };
    let stream = match UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fakewsl client: connect {path}: {}: {e}", errno_name(&e));
            return EXIT_CONNECT;
        }
    };
    match exchange(&stream, &args.join(" ")) {
        Ok(answer) => {
            println!("{answer}");
            println!("via {path}");
            0
        }
        Err(e) => {
            eprintln!("fakewsl client: {path}: {e}");
            EXIT_PROTOCOL
        }
    }
}

/// Sends one request line, returns the answer line (without its newline).
fn exchange(stream: &UnixStream, request: &str) -> Result<String, String> {
    if request.contains('\n') {
        return Err("the request may not contain a newline".to_owned());
    }
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
        .map_err(|e| format!("set timeouts: {e}"))?;
    let mut writer = stream;
    writer
        .write_all(format!("{request}\n").as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut line = String::new();
    BufReader::new(stream.take(64 * 1024))
        .read_line(&mut line)
        .map_err(|e| format!("read the answer: {e}"))?;
    match line.strip_suffix('\n') {
        Some(answer) if answer.starts_with("ok ") => Ok(answer.to_owned()),
        _ => Err(format!("unexpected answer {line:?}")),
    }
}

/// `WSL_INTEROP` when it names something that exists, else the first
/// `/run/WSL/<pid>_interop` up the parent chain (pid 1 included).
fn find_socket() -> Option<String> {
    if let Some(path) = std::env::var_os("WSL_INTEROP")
        && fs::metadata(&path).is_ok()
    {
        return Some(path.to_string_lossy().into_owned());
    }
    let mut pid = unsafe { libc::getppid() };
    // Bounded: a pid chain cannot be longer than pid_max, but /proc may be odd.
    for _ in 0..4096 {
        if pid <= 0 {
            return None;
        }
        let candidate = format!("{INTEROP_DIR}/{pid}_interop");
        if fs::metadata(&candidate).is_ok() {
            return Some(candidate);
        }
        if pid == 1 {
            return None;
        }
        pid = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parent_pid(&s))?;
    }
    None
}

/// The parent pid from a `/proc/<pid>/stat` line (`comm` may hold spaces and parens, so
/// fields are counted after the last `)`).
pub fn parent_pid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The symbolic errno of an OS error, as `strace` would show it.
pub fn errno_name(e: &io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return "error".to_owned();
    };
    let name = match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EACCES => "EACCES",
        libc::ENOTDIR => "ENOTDIR",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNRESET => "ECONNRESET",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EPIPE => "EPIPE",
        _ => return format!("errno {code}"),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_is_read_after_the_command_name() {
        assert_eq!(parent_pid("42 (bash) S 7 42 42 0 -1"), Some(7));
        assert_eq!(parent_pid("42 (a) b) c) R 1 0 0"), Some(1));
        assert_eq!(parent_pid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parent_pid("garbage"), None);
        assert_eq!(parent_pid("5 (x) S"), None);
    }

    #[test]
    fn errno_names() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(errno_name(&e), "EACCES");
        let e = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(errno_name(&e), "ECONNREFUSED");
        assert_eq!(
            errno_name(&io::Error::from_raw_os_error(9999)),
            "errno 9999"
        );
        assert_eq!(errno_name(&io::Error::other("x")), "error");
    }
}
