//! `distrod portproxy serve` as a black box: the relay between clients and servers on
//! 127.0.0.1, started and stopped (standard input closed) the way the unit
//! distrod-portproxy.service does it.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::Distrod;
use crate::support::archive::pseudo_random;

/// Upper bound for anything a test waits for: a failing test fails, it does not hang.
const PATIENCE: Duration = Duration::from_secs(10);
const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// A running `distrod portproxy serve`, killed if the test ends without stopping it.
struct Serve {
    child: Child,
    stdin: Option<ChildStdin>,
    /// The `listening on A -> B` lines: (A, B).
    listening: Vec<(SocketAddr, SocketAddr)>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Serve {
    /// Forwards an ephemeral port on 127.0.0.1 to each target port on 127.0.0.1.
    fn start(targets: &[SocketAddr]) -> Serve {
        let ports: Vec<String> = targets.iter().map(|t| format!("0={}", t.port())).collect();
        let mut child = command(&[
            "portproxy",
            "serve",
            "--to",
            "127.0.0.1",
            "--bind",
            "127.0.0.1",
            "--ports",
            &ports.join(","),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start distrod portproxy serve");
        let stdin = child.stdin.take();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        {
            let mut pipe = child.stderr.take().expect("piped stderr");
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    stderr.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
        }
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serve = Serve {
            child,
            stdin,
            listening: Vec::new(),
            stderr,
        };
        for target in targets {
            let line = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
                panic!(
                    "no `listening on` line for {target}; stderr:\n{}",
                    serve.stderr()
                )
            });
            let (listen, to) = line
                .strip_prefix("listening on ")
                .and_then(|rest| rest.split_once(" -> "))
                .unwrap_or_else(|| panic!("unexpected line {line:?}"));
            let listen: SocketAddr = listen.parse().expect("listening address");
            let to: SocketAddr = to.parse().expect("target address");
            assert_eq!(to, *target, "{line}");
            assert_eq!(listen.ip(), LOCALHOST, "{line}");
            assert_ne!(listen.port(), 0, "{line}");
            serve.listening.push((listen, to));
        }
        serve
    }

    /// The relay's address for the `i`th target.
    fn addr(&self, i: usize) -> SocketAddr {
        self.listening[i].0
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Closes standard input; returns the exit status and how long the exit took.
    fn close_stdin(&mut self) -> (ExitStatus, Duration) {
        let start = Instant::now();
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for distrod") {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < PATIENCE,
                "distrod portproxy serve still runs {PATIENCE:?} after its input closed; \
                 stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The distrod binary with nothing of the caller's environment that would change it.
fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_distrod"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DISTROD_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .args(args);
    cmd
}

/// A server on 127.0.0.1 that runs `handle` on each connection in its own thread.
fn server(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = Arc::new(handle);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let handle = Arc::clone(&handle);
            thread::spawn(move || {
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                handle(stream);
            });
        }
    });
    addr
}

/// Echoes until EOF, then ends its writing.
pub(crate) fn echo_server() -> SocketAddr {
    server(|stream| {
        let _ = io::copy(&mut &stream, &mut &stream);
        let _ = stream.shutdown(Shutdown::Write);
    })
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the relay");
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// Sends `data` and ends the writing while reading everything that comes back.
pub(crate) fn exchange(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
    thread::scope(|s| {
        s.spawn(|| {
            let mut w = stream;
            w.write_all(data).unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        let mut r = stream;
        r.read_to_end(&mut got).unwrap();
        got
    })
}

#[test]
fn serve_relays_concurrent_connections_to_each_target() {
    const CLIENTS: usize = 64;
    // Two targets: an echo, and one that answers with the SHA-256 of what it got.
    let digest = server(|stream| {
        let mut got = Vec::new();
        if (&stream).read_to_end(&mut got).is_ok() {
            let _ = (&stream).write_all(&Sha256::digest(&got));
        }
    });
    let mut serve = Serve::start(&[echo_server(), digest]);
    // Opened one after the other (no burst beyond the listen backlog), used all at once.
    let clients: Vec<(usize, TcpStream)> = (0..CLIENTS)
        .map(|i| (i % 2, connect(serve.addr(i % 2))))
        .collect();
    thread::scope(|s| {
        for (i, (target, stream)) in clients.iter().enumerate() {
            s.spawn(move || {
                let data = pseudo_random(i as u64, 1 + i * 7919 % 300_000);
                let got = exchange(stream, &data);
                if *target == 0 {
                    assert_eq!(got.len(), data.len(), "client {i}: length");
                    assert!(got == data, "client {i}: the echo differs");
                } else {
                    assert_eq!(got, Sha256::digest(&data).to_vec(), "client {i}");
                }
            });
        }
    });
    drop(clients);
    let (status, _) = serve.close_stdin();
    assert!(status.success(), "{status}; stderr:\n{}", serve.stderr());
}

#[test]
fn serve_keeps_half_closed_connections_going() {
    // Reads to EOF, then replies: the client's half-close must reach it, and the reply
    // must still come back.
    let client_first = server(|stream| {
        let mut got = Vec::new();
        (&stream).read_to_end(&mut got).unwrap();
        let _ = (&stream).write_all(&pseudo_random(got.len() as u64, 500_000));
    });
    // Greets and ends its writing at once, then reports what it reads until EOF.
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let server_first = server(move |stream| {
        (&stream).write_all(b"greetings").unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let read = (&stream).read_to_end(&mut got).map(|_| got);
        let _ = tx.lock().unwrap().send(read.map_err(|e| e.to_string()));
    });
    let mut serve = Serve::start(&[client_first, server_first]);

    let mut stream = connect(serve.addr(0));
    stream.write_all(&pseudo_random(5, 4321)).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    assert!(reply == pseudo_random(4321, 500_000), "the reply differs");

    let mut stream = connect(serve.addr(1));
    let mut greeting = Vec::new();
    stream.read_to_end(&mut greeting).unwrap();
    assert_eq!(greeting, b"greetings");
    let data = pseudo_random(6, 300_000);
    stream.write_all(&data).unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let got = rx.recv_timeout(PATIENCE).expect("the server's report");
    assert!(got.unwrap() == data, "the server got other data");

    let (status, _) = serve.close_stdin();
    assert!(status.success(), "{status}; stderr:\n{}", serve.stderr());
}

#[test]
fn serve_exits_when_its_input_closes() {
    let mut serve = Serve::start(&[echo_server()]);
    let addr = serve.addr(0);
    // A live connection, idle when the input closes.
    let mut stream = connect(addr);
    stream.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    stream.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping");

    let (status, took) = serve.close_stdin();
    assert!(status.success(), "{status}; stderr:\n{}", serve.stderr());
    assert!(took < Duration::from_secs(3), "exit took {took:?}");
    // The live connection was closed, and nothing listens any more.
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{n} unexpected bytes"),
        Err(e) => assert!(
            matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
            ),
            "expected EOF, got {e}"
        ),
    }
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}

#[test]
fn serve_fails_on_a_port_in_use() {
    let taken = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Distrod::new()
        .args([
            "portproxy",
            "serve",
            "--to",
            "127.0.0.1",
            "--bind",
            "127.0.0.1",
            "--ports",
            &format!("{port}=9"),
        ])
        .run();
    // Its own exit status (the unit does not retry it), and one line naming the port.
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(out.stderr.lines().count(), 1, "{out}");
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{port}"))
            && out.stderr.contains("another distro's port proxy?"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
}
