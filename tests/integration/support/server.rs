//! A small, real HTTP/1.1 server on `127.0.0.1`, standing in for the image server and its
//! mirrors. It serves an in-memory map of paths to bytes, can misbehave per path the way
//! real servers do (redirects, missing files, bodies cut short, no `Content-Length`, `Range`
//! ignored), and records every request so tests can assert what the client sent.
//!
//! Every response carries `Connection: close`: one request per connection keeps the
//! misbehaviours (closing mid-body) unambiguous.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How the server answers for one path.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(dead_code)]
pub enum Behaviour {
    /// 200 with `Content-Length`, or 206 + `Content-Range` for `Range: bytes=N-`.
    Normal,
    /// 302 with `Location: <url>`.
    Redirect(String),
    /// 404, whether or not the path has bytes.
    NotFound,
    /// No `Content-Length`: the body ends when the connection closes.
    NoContentLength,
    /// Announces the whole length, then closes cleanly once the body has reached offset
    /// `after` of the file (an absolute offset, so resuming past it gets nothing more), for
    /// the first `times` requests; normal afterwards. `usize::MAX` means always.
    Truncate { after: usize, times: usize },
    /// Chunked encoding, then an abrupt close (RST) in the middle of the chunk holding file
    /// offset `after`, for the first `times` requests; normal afterwards.
    DropMidBody { after: usize, times: usize },
    /// Always 200 with the full body, whatever `Range` asks for.
    IgnoreRange,
}

/// One request as the server received it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// The request target exactly as sent (may hold `//` or `%3A`).
    pub target: String,
    /// Header names lowercased, values as sent.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn range(&self) -> Option<&str> {
        self.header("range")
    }

    /// The target as the server matches it: see [`normalise`].
    pub fn path(&self) -> String {
        normalise(&self.target)
    }
}

struct Route {
    body: Option<Arc<Vec<u8>>>,
    behaviour: Behaviour,
    /// How many requests were answered with the misbehaviour so far.
    misbehaved: usize,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    requests: Mutex<Vec<Request>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking connection thread must not hide the state from the test.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The server; it stops accepting when dropped (the port then refuses connections).
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            thread::spawn(move || accept_loop(listener, shared, stop))
        };
        Server {
            addr,
            shared,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The URL of `path` (given relative to the root, sent as is).
    pub fn url_of(&self, path: &str) -> String {
        format!("{}{}", self.url(), path.trim_start_matches('/'))
    }

    /// `127.0.0.1:PORT`
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }

    /// Serves `bytes` at `path` (normal behaviour unless one was set).
    pub fn put(&self, path: &str, bytes: impl Into<Vec<u8>>) {
        let mut routes = lock(&self.shared.routes);
        let route = routes.entry(normalise(path)).or_insert_with(|| Route {
            body: None,
            behaviour: Behaviour::Normal,
            misbehaved: 0,
        });
        route.body = Some(Arc::new(bytes.into()));
    }

    /// Sets how `path` is answered (resetting the misbehaviour count).
    pub fn behave(&self, path: &str, behaviour: Behaviour) {
        let mut routes = lock(&self.shared.routes);
        let route = routes.entry(normalise(path)).or_insert_with(|| Route {
            body: None,
            behaviour: Behaviour::Normal,
            misbehaved: 0,
        });
        route.behaviour = behaviour;
        route.misbehaved = 0;
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// The requests whose target matches `path` once normalised.
    pub fn requests_for(&self, path: &str) -> Vec<Request> {
        let path = normalise(path);
        self.requests()
            .into_iter()
            .filter(|r| r.path() == path)
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// A port on 127.0.0.1 that was just bound and released: connecting to it is refused.
pub fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    drop(listener);
    format!("http://{addr}/")
}

/// How a request target is matched against the served paths: no query, absolute-form
/// reduced to its path, percent-escapes decoded (`%3A` is `:`), runs of `/` collapsed, no
/// leading `/`.
pub fn normalise(target: &str) -> String {
    let mut path = target;
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = rest.find('/').map_or("", |i| &rest[i..]);
    }
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path);
    let mut out = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        if c == '/' && (out.is_empty() || out.ends_with('/')) {
            continue;
        }
        out.push(c);
    }
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(byte) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Reads the request head (request line and headers); `None` if the peer sent nothing.
fn read_head(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 64 * 1024 {
            return Err(io::Error::other("request head too long"));
        }
    }
    let text = String::from_utf8_lossy(&head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let headers = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Some(Request {
        method,
        target,
        headers,
    }))
}

/// `Range: bytes=N-` or `bytes=N-M` as a start and an inclusive end, if well-formed.
fn parse_range(value: &str, len: usize) -> Option<(usize, Option<usize>)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        end => Some(end.parse::<usize>().ok()?.min(len.saturating_sub(1))),
    };
    Some((start, end))
}

fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    let Some(request) = read_head(&mut stream)? else {
        return Ok(());
    };
    lock(&shared.requests).push(request.clone());

    // Decide under the lock, answer without it.
    let (body, behaviour) = {
        let mut routes = lock(&shared.routes);
        match routes.get_mut(&request.path()) {
            None => (None, Behaviour::NotFound),
            Some(route) => {
                let behaviour = match route.behaviour.clone() {
                    Behaviour::Truncate { times, .. } | Behaviour::DropMidBody { times, .. }
                        if route.misbehaved >= times =>
                    {
                        Behaviour::Normal
                    }
                    b @ (Behaviour::Truncate { .. } | Behaviour::DropMidBody { .. }) => {
                        route.misbehaved += 1;
                        b
                    }
                    b => b,
                };
                (route.body.clone(), behaviour)
            }
        }
    };
    let head_only = request.method == "HEAD";

    let (behaviour, body) = match (behaviour, body) {
        (Behaviour::Redirect(to), _) => {
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(head.as_bytes())?;
            return finish(stream);
        }
        (Behaviour::NotFound, _) | (_, None) => {
            let text = "not found\n";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                text.len()
            );
            stream.write_all(head.as_bytes())?;
            if !head_only {
                stream.write_all(text.as_bytes())?;
            }
            return finish(stream);
        }
        (behaviour, Some(body)) => (behaviour, body),
    };
    let len = body.len();

    // Which part of the file this response carries.
    let range = match (&behaviour, request.range()) {
        (Behaviour::IgnoreRange, _) | (_, None) => None,
        (_, Some(value)) => match parse_range(value, len) {
            Some((start, _)) if start >= len => {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                stream.write_all(head.as_bytes())?;
                return finish(stream);
            }
            Some((start, end)) => Some((start, end.unwrap_or(len - 1))),
            None => None,
        },
    };
    let (start, end) = range.unwrap_or((0, len.saturating_sub(1)));
    let part = if len == 0 {
        &body[..0]
    } else {
        &body[start..=end]
    };
    let mut head = match range {
        Some(_) => {
            format!("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{end}/{len}\r\n")
        }
        None => "HTTP/1.1 200 OK\r\n".to_owned(),
    };
    head.push_str(
        "Content-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
    );

    match behaviour {
        Behaviour::NoContentLength => {
            head.push_str("\r\n");
            stream.write_all(head.as_bytes())?;
            if !head_only {
                stream.write_all(part)?;
            }
            finish(stream)
        }
        Behaviour::Truncate { after, .. } => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", part.len()));
            stream.write_all(head.as_bytes())?;
            if !head_only {
                let stop = after.clamp(start, start + part.len());
                stream.write_all(&part[..stop - start])?;
            }
            finish(stream)
        }
        Behaviour::DropMidBody { after, .. } => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            stream.write_all(head.as_bytes())?;
            const CHUNK: usize = 8 * 1024;
            let mut offset = start;
            for chunk in part.chunks(CHUNK) {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
                if offset + chunk.len() > after {
                    // Half of this chunk, then a reset: no terminating chunk ever comes.
                    let keep = after.saturating_sub(offset).min(chunk.len());
                    stream.write_all(&chunk[..keep])?;
                    stream.flush()?;
                    thread::sleep(Duration::from_millis(50));
                    reset(stream);
                    return Ok(());
                }
                stream.write_all(chunk)?;
                stream.write_all(b"\r\n")?;
                offset += chunk.len();
            }
            // `after` lies beyond the end: the body is complete but unterminated.
            stream.flush()?;
            thread::sleep(Duration::from_millis(50));
            reset(stream);
            Ok(())
        }
        Behaviour::Normal | Behaviour::IgnoreRange => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", part.len()));
            stream.write_all(head.as_bytes())?;
            if !head_only {
                stream.write_all(part)?;
            }
            finish(stream)
        }
        Behaviour::Redirect(_) | Behaviour::NotFound => unreachable!("answered above"),
    }
}

/// An orderly close: FIN after everything written, so the client reads all of it.
fn finish(mut stream: TcpStream) -> io::Result<()> {
    stream.flush()?;
    stream.shutdown(Shutdown::Write)?;
    // Wait for the client to close its side, so our close never turns into a reset that
    // could discard data it has not read yet.
    let mut sink = [0u8; 1024];
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
    Ok(())
}

/// An abrupt close: with `SO_LINGER` at zero, `close` sends RST instead of FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of `stream`; the option value is a valid
    // `linger` of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(stream);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response read off the wire without any HTTP library in between.
    struct Raw {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        /// Whether the connection ended with a reset instead of a clean close.
        reset: bool,
    }

    impl Raw {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }

    fn get(server: &Server, target: &str, extra: &[(&str, &str)]) -> Raw {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        let mut request = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: raw-test\r\n",
            server.addr
        );
        for (name, value) in extra {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let mut reset = false;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    reset = true;
                    break;
                }
                Err(e) => panic!("read: {e}"),
            }
        }
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
            .collect();
        Raw {
            status,
            headers,
            body: bytes[split + 4..].to_vec(),
            reset,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn serves_bytes_and_records_requests() {
        let server = Server::start();
        server.put("a/b.txt", b"hello".to_vec());
        let r = get(&server, "/a/b.txt", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), Some("5"));
        assert_eq!(r.body, b"hello");
        let requests = server.requests_for("a/b.txt");
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].method, "GET");
        assert_eq!(requests[0].target, "/a/b.txt");
        assert_eq!(requests[0].header("User-Agent"), Some("raw-test"));
        assert_eq!(get(&server, "/missing", &[]).status, 404);
    }

    #[test]
    fn honours_range_with_206() {
        let server = Server::start();
        let bytes = data(1000);
        server.put("f", bytes.clone());
        let r = get(&server, "/f", &[("Range", "bytes=400-")]);
        assert_eq!(r.status, 206);
        assert_eq!(r.header("content-range"), Some("bytes 400-999/1000"));
        assert_eq!(r.header("content-length"), Some("600"));
        assert_eq!(r.body, &bytes[400..]);
        assert_eq!(server.requests()[0].range(), Some("bytes=400-"));
        assert_eq!(get(&server, "/f", &[("Range", "bytes=1000-")]).status, 416);
    }

    #[test]
    fn matches_double_slashes_and_percent_escapes() {
        let server = Server::start();
        server.put("images/d/20241120_05:24//rootfs.tar.xz", b"x".to_vec());
        let r = get(&server, "/images//d/20241120_05%3A24/rootfs.tar.xz", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, b"x");
        let seen = server.requests_for("images/d/20241120_05:24/rootfs.tar.xz");
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].target, "/images//d/20241120_05%3A24/rootfs.tar.xz");
    }

    #[test]
    fn redirects_and_not_found() {
        let server = Server::start();
        server.put("moved", b"x".to_vec());
        server.behave(
            "moved",
            Behaviour::Redirect("http://127.0.0.1:1/elsewhere".into()),
        );
        let r = get(&server, "/moved", &[]);
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("http://127.0.0.1:1/elsewhere"));
        server.put("gone", b"x".to_vec());
        server.behave("gone", Behaviour::NotFound);
        assert_eq!(get(&server, "/gone", &[]).status, 404);
    }

    #[test]
    fn truncates_at_an_absolute_offset_then_recovers() {
        let server = Server::start();
        let bytes = data(10_000);
        server.put("t", bytes.clone());
        server.behave(
            "t",
            Behaviour::Truncate {
                after: 4_000,
                times: 2,
            },
        );
        let first = get(&server, "/t", &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.header("content-length"), Some("10000"));
        assert_eq!(first.body, &bytes[..4_000]);
        // Resuming at the cut gets nothing more while the misbehaviour lasts.
        let second = get(&server, "/t", &[("Range", "bytes=4000-")]);
        assert_eq!(second.status, 206);
        assert_eq!(second.header("content-length"), Some("6000"));
        assert!(second.body.is_empty());
        let third = get(&server, "/t", &[("Range", "bytes=4000-")]);
        assert_eq!(third.body, &bytes[4_000..]);
    }

    #[test]
    fn drops_a_chunked_body_midway_then_recovers() {
        let server = Server::start();
        let bytes = data(50_000);
        server.put("d", bytes.clone());
        server.behave(
            "d",
            Behaviour::DropMidBody {
                after: 20_000,
                times: 1,
            },
        );
        let first = get(&server, "/d", &[]);
        assert_eq!(first.status, 200);
        assert_eq!(first.header("transfer-encoding"), Some("chunked"));
        assert_eq!(first.header("content-length"), None);
        assert!(!first.body.ends_with(b"0\r\n\r\n"), "body was terminated");
        assert!(first.body.len() < bytes.len(), "whole body was sent");
        assert!(
            first.reset || first.body.len() > 8 * 1024,
            "nothing was sent"
        );
        let second = get(&server, "/d", &[]);
        assert_eq!(second.header("content-length"), Some("50000"));
        assert_eq!(second.body, bytes);
    }

    #[test]
    fn no_content_length_and_ignored_range() {
        let server = Server::start();
        let bytes = data(3_000);
        server.put("n", bytes.clone());
        server.behave("n", Behaviour::NoContentLength);
        let r = get(&server, "/n", &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.body, bytes);

        server.put("i", bytes.clone());
        server.behave("i", Behaviour::IgnoreRange);
        let r = get(&server, "/i", &[("Range", "bytes=100-")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, bytes);
    }

    #[test]
    fn refuses_connections_once_dropped() {
        let server = Server::start();
        let addr = server.addr;
        drop(server);
        assert!(TcpStream::connect(addr).is_err());
        let url = closed_port_url();
        let authority = url.trim_start_matches("http://").trim_end_matches('/');
        assert!(TcpStream::connect(authority).is_err());
    }

    #[test]
    fn normalises_targets() {
        assert_eq!(normalise("/a//b/c%3Ad?x=1"), "a/b/c:d");
        assert_eq!(normalise("http://127.0.0.1:9/x//y"), "x/y");
        assert_eq!(normalise("a/%zz"), "a/%zz");
        assert_eq!(normalise("/%"), "%");
    }
}
