//! The TCP relay behind `distrod portproxy`: accepts connections on one or more listening
//! addresses and copies each one, both ways, to a fixed target address (the distro's).
//!
//! Design: blocking I/O on threads, std only, the same code on Linux and Windows.
//! - One accept thread per listening address.
//! - Two threads per connection, one per direction, each with its own fixed buffer
//!   ([`Config::buffer`]). The first one connects to the target, then copies client →
//!   target while the second copies target → client. The alternative, one thread
//!   multiplexing both directions, needs non-blocking sockets and a readiness API
//!   (epoll, WSAPoll) that std does not offer portably; two blocked threads cost two small
//!   stacks ([`STACK_SIZE`], reserved rather than committed) and no wake-ups while idle
//!   (Linux; see below for Windows).
//!   Memory per connection is therefore bounded by `2 × buffer + 2 × STACK_SIZE`, and the
//!   number of connections by [`Config::max_connections`]: at the cap, the accept thread
//!   holds the one connection it has just accepted and accepts nothing more until a
//!   connection ends, so further clients wait in the kernel's listen backlog (raised to
//!   1024 on Linux, where std asks for 128).
//! - Half-close: when one side ends its writing (EOF on read), the write half toward the
//!   other side is shut down and the other direction goes on until it ends too; then both
//!   sockets are closed.
//! - An error on either side (a reset, a failed write) shuts both sockets down at once,
//!   which wakes the other direction's thread; the other peer sees EOF.
//! - A target that refuses or does not answer within [`Config::connect_timeout`]: the
//!   client is closed.
//! - TCP_NODELAY on both sockets: the relay adds no batching delay of its own.
//!
//! Windows: shutting a socket down does not wake a thread blocked reading it there, so on
//! Windows reads time out every 200 ms (`WAKE_INTERVAL`) and the reader checks whether its
//! connection is being closed (a timed-out read consumes nothing and is simply retried).
//! A write blocked on a peer that reads nothing is not woken there either: its thread ends
//! when that peer reads or goes away.
//!
//! Stopping ([`Relay::stop`]) closes the listeners, shuts down every live connection and
//! waits up to [`STOP_GRACE`] for all threads to end. A connection still waiting for its
//! target then is left to give up on its own (within the connect timeout); its client is
//! closed at once all the same.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Default per-direction buffer size.
pub const DEFAULT_BUFFER: usize = 64 * 1024;
/// Default cap on simultaneous connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default time allowed to connect to the target.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Stack size of the relay's threads: they only copy between sockets (the buffers are on
/// the heap).
pub const STACK_SIZE: usize = 256 * 1024;
/// How long [`Relay::stop`] waits for the threads to end.
pub const STOP_GRACE: Duration = Duration::from_secs(1);
/// Pause after an accept error that is not about one connection (e.g. out of file
/// descriptors), so that it is not retried in a tight loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// How long stopping tries to connect to a listener to wake its accept thread.
const WAKE_CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// Linux: the listen backlog asked for (see [`raise_backlog`]).
#[cfg(target_os = "linux")]
const LISTEN_BACKLOG: libc::c_int = 1024;
/// Windows: the read timeout after which a reader checks whether its connection is
/// being closed.
#[cfg(windows)]
const WAKE_INTERVAL: Duration = Duration::from_millis(200);

/// What to listen on and where to forward.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen: one or more addresses (e.g. 0.0.0.0:8080, [::]:8080).
    pub listen: Vec<SocketAddr>,
    /// Where each accepted connection goes, chosen per listening address index
    /// (same length as `listen`).
    pub targets: Vec<SocketAddr>,
    /// Per-direction buffer size (default 64 KiB); memory per connection is bounded by
    /// 2 × this plus thread stacks.
    pub buffer: usize,
    /// At most this many connections at once (default 1024); further ones wait in the
    /// listen backlog (accept pauses), never unbounded memory.
    pub max_connections: usize,
    /// Connect timeout to the target (default 5 s).
    pub connect_timeout: Duration,
}

impl Config {
    /// `listen[i]` forwards to `targets[i]`, with the default limits.
    pub fn new(listen: Vec<SocketAddr>, targets: Vec<SocketAddr>) -> Config {
        Config {
            listen,
            targets,
            buffer: DEFAULT_BUFFER,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.listen.is_empty() {
            return invalid("no address to listen on".to_owned());
        }
        if self.listen.len() != self.targets.len() {
            return invalid(format!(
                "{} listening addresses but {} targets",
                self.listen.len(),
                self.targets.len()
            ));
        }
        if self.buffer == 0 {
            return invalid("the buffer size must be at least 1 byte".to_owned());
        }
        if self.max_connections == 0 {
            return invalid("the connection limit must be at least 1".to_owned());
        }
        if self.connect_timeout.is_zero() {
            return invalid("the connect timeout must not be zero".to_owned());
        }
        Ok(())
    }
}

/// Counters of a running relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections being served now (accepted, not yet closed; including those still
    /// connecting to their target).
    pub active: usize,
    /// Connections accepted and served since the start.
    pub total: u64,
    /// Connections closed because their target could not be reached.
    pub failed: u64,
    /// Bytes copied from clients to targets.
    pub to_target: u64,
    /// Bytes copied from targets to clients.
    pub to_client: u64,
}

/// A running relay: listening, and serving connections in background threads.
pub struct Relay {
    shared: Arc<Shared>,
    listeners: Vec<Arc<TcpListener>>,
    local_addrs: Vec<SocketAddr>,
    accept_threads: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Binds all the listening addresses (failing if any cannot be bound), then serves in
    /// background threads.
    pub fn start(config: Config) -> io::Result<Relay> {
        config.validate()?;
        let mut listeners = Vec::with_capacity(config.listen.len());
        let mut local_addrs = Vec::with_capacity(config.listen.len());
        for addr in &config.listen {
            let listener = TcpListener::bind(addr)
                .map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
            raise_backlog(&listener);
            local_addrs.push(listener.local_addr()?);
            listeners.push(Arc::new(listener));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                stopped: false,
                active: 0,
                next_id: 0,
                conns: HashMap::new(),
            }),
            changed: Condvar::new(),
            total: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            to_target: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
            buffer: config.buffer,
            max_connections: config.max_connections,
            connect_timeout: config.connect_timeout,
        });
        let mut relay = Relay {
            shared,
            listeners,
            local_addrs,
            accept_threads: Vec::new(),
        };
        for (i, target) in config.targets.iter().enumerate() {
            let shared = Arc::clone(&relay.shared);
            let listener = Arc::clone(&relay.listeners[i]);
            let target = *target;
            tracing::debug!(listen = %relay.local_addrs[i], %target, "relay listening");
            // On failure `relay` is dropped, which stops the threads already started.
            let handle = thread::Builder::new()
                .name("portproxy-accept".to_owned())
                .stack_size(STACK_SIZE)
                .spawn(move || accept_loop(&shared, &listener, target))?;
            relay.accept_threads.push(handle);
        }
        Ok(relay)
    }

    /// The bound addresses, in the order of [`Config::listen`] (port 0 → the real port).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local_addrs.clone()
    }

    /// Connections active and in total, bytes each way.
    pub fn stats(&self) -> Stats {
        let active = self.shared.lock().active;
        Stats {
            active,
            total: self.shared.total.load(Ordering::Relaxed),
            failed: self.shared.failed.load(Ordering::Relaxed),
            to_target: self.shared.to_target.load(Ordering::Relaxed),
            to_client: self.shared.to_client.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, closes every live connection and waits (up to [`STOP_GRACE`]) for
    /// the threads to end. Dropping a `Relay` does the same.
    pub fn stop(self) {
        drop(self);
    }

    fn shutdown(&mut self) {
        let deadline = Instant::now() + STOP_GRACE;
        {
            let mut state = self.shared.lock();
            if state.stopped {
                return;
            }
            state.stopped = true;
            for pair in state.conns.values() {
                pair.close();
            }
        }
        // Wakes an accept thread waiting for a free slot.
        self.shared.changed.notify_all();
        for (listener, addr) in self.listeners.iter().zip(&self.local_addrs) {
            wake_accept(listener, *addr);
        }
        self.listeners.clear();
        // The accept threads end as soon as they are woken. Should one not be (a wake-up
        // connection that failed), it is left behind rather than blocking the caller.
        while self.accept_threads.iter().any(|h| !h.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for handle in self.accept_threads.drain(..) {
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                tracing::debug!("a relay accept thread did not end in time");
            }
        }
        let state = self.shared.lock();
        let timeout = deadline.saturating_duration_since(Instant::now());
        let (state, _) = self
            .shared
            .changed
            .wait_timeout_while(state, timeout, |s| s.active > 0)
            .unwrap_or_else(PoisonError::into_inner);
        if state.active > 0 {
            tracing::debug!(
                active = state.active,
                "relay connections still ending after stop (waiting for their target)"
            );
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs a relay until `stop` returns true (asked every 100 ms), then stops it: for a
/// caller whose stop condition is a flag (e.g. Ctrl-C) rather than an event it waits for.
// `distrod portproxy serve` waits on its standard input and uses [`Relay`] directly.
#[cfg_attr(not(test), allow(dead_code))]
pub fn run(config: Config, stop: impl Fn() -> bool) -> io::Result<()> {
    const RUN_POLL: Duration = Duration::from_millis(100);
    let relay = Relay::start(config)?;
    while !stop() {
        thread::sleep(RUN_POLL);
    }
    relay.stop();
    Ok(())
}

/// What the relay's threads share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a connection ends or the relay stops.
    changed: Condvar,
    total: AtomicU64,
    failed: AtomicU64,
    to_target: AtomicU64,
    to_client: AtomicU64,
    buffer: usize,
    max_connections: usize,
    connect_timeout: Duration,
}

struct State {
    stopped: bool,
    /// Connections holding a slot (their thread has not ended).
    active: usize,
    next_id: u64,
    /// The live connections, so that stopping can close them.
    conns: HashMap<u64, Arc<Pair>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopped(&self) -> bool {
        self.lock().stopped
    }

    /// Gives a connection's slot back.
    fn finish(&self, id: u64) {
        let mut state = self.lock();
        state.conns.remove(&id);
        state.active -= 1;
        drop(state);
        self.changed.notify_all();
    }
}

/// One relayed connection: the client, and the target once connected.
struct Pair {
    client: TcpStream,
    target: OnceLock<TcpStream>,
    /// Set when the connection is being torn down (an error, or the relay stopping).
    closing: AtomicBool,
}

impl Pair {
    /// Shuts both sockets down, which ends both copying threads (on Windows at the latest
    /// after `WAKE_INTERVAL`).
    fn close(&self) {
        self.closing.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(target) = self.target.get() {
            let _ = target.shutdown(Shutdown::Both);
        }
    }

    fn closing(&self) -> bool {
        self.closing.load(Ordering::Relaxed)
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener, target: SocketAddr) {
    loop {
        let (client, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) => {
                if shared.stopped() {
                    return;
                }
                match e.kind() {
                    // About one connection only.
                    io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::Interrupted
                    | io::ErrorKind::WouldBlock => {}
                    _ => {
                        tracing::debug!(error = %e, "relay accept failed");
                        thread::sleep(ACCEPT_ERROR_PAUSE);
                    }
                }
                continue;
            }
        };
        // At the cap, hold this connection and accept no other until a slot frees.
        let mut state = shared.lock();
        while !state.stopped && state.active >= shared.max_connections {
            state = shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.stopped {
            return;
        }
        let id = state.next_id;
        state.next_id += 1;
        state.active += 1;
        let pair = Arc::new(Pair {
            client,
            target: OnceLock::new(),
            closing: AtomicBool::new(false),
        });
        state.conns.insert(id, Arc::clone(&pair));
        drop(state);
        shared.total.fetch_add(1, Ordering::Relaxed);
        let conn_shared = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name("portproxy-conn".to_owned())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                serve(&conn_shared, &pair, peer, target);
                drop(pair);
                conn_shared.finish(id);
            });
        if let Err(e) = spawned {
            tracing::debug!(%peer, error = %e, "cannot start a relay thread; closing the client");
            shared.finish(id);
        }
    }
}

/// Linux: std listens with a backlog of 128, beyond which a burst of connections (or
/// clients waiting at the connection cap) have their SYNs dropped and retried only a
/// second later; listen(2) again raises it (the kernel caps it at net.core.somaxconn).
/// Windows keeps the first backlog: nothing to do there.
fn raise_backlog(listener: &TcpListener) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: listen(2) on a descriptor this listener owns; no memory is involved.
        if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
            let e = io::Error::last_os_error();
            tracing::debug!(error = %e, "cannot raise the listen backlog");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = listener;
}

/// Wakes the accept thread of a listener that is being closed.
fn wake_accept(listener: &TcpListener, addr: SocketAddr) {
    // Linux: shutting a listening socket down makes a blocked accept(2) fail at once.
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: shutdown(2) on a descriptor this listener owns; no memory is involved.
        if unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } == 0 {
            return;
        }
    }
    #[cfg(not(unix))]
    let _ = listener;
    // Elsewhere: a connection of our own, which the accept thread takes and drops.
    let mut wake = addr;
    if wake.ip().is_unspecified() {
        wake.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    if let Err(e) = TcpStream::connect_timeout(&wake, WAKE_CONNECT_TIMEOUT) {
        tracing::debug!(%wake, error = %e, "cannot wake the relay accept thread");
    }
}

/// Serves one accepted connection until both directions end.
fn serve(shared: &Arc<Shared>, pair: &Arc<Pair>, peer: SocketAddr, target_addr: SocketAddr) {
    let _ = pair.client.set_nodelay(true);
    let stream = match TcpStream::connect_timeout(&target_addr, shared.connect_timeout) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, target = %target_addr, error = %e,
                "cannot connect to the target; closing the client");
            shared.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    #[cfg(windows)]
    for socket in [&pair.client, &stream] {
        if let Err(e) = socket.set_read_timeout(Some(WAKE_INTERVAL)) {
            tracing::debug!(error = %e, "cannot set a read timeout; closing the connection");
            return;
        }
    }
    {
        // Under the lock: either stopping has already happened (and closed the client),
        // or it will see the target and close it too.
        let state = shared.lock();
        if state.stopped || pair.closing() {
            return;
        }
        pair.target.get_or_init(|| stream);
    }
    tracing::debug!(%peer, target = %target_addr, "relaying");
    let back = {
        let pair = Arc::clone(pair);
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name("portproxy-conn".to_owned())
            .stack_size(STACK_SIZE)
            .spawn(move || {
                if let Some(target) = pair.target.get() {
                    pump(
                        &pair,
                        target,
                        &pair.client,
                        &shared.to_client,
                        shared.buffer,
                    );
                }
            })
    };
    let back = match back {
        Ok(handle) => handle,
        Err(e) => {
            tracing::debug!(%peer, error = %e, "cannot start a relay thread; closing the connection");
            pair.close();
            return;
        }
    };
    if let Some(target) = pair.target.get() {
        pump(pair, &pair.client, target, &shared.to_target, shared.buffer);
    }
    let _ = back.join();
    tracing::debug!(%peer, target = %target_addr, "connection closed");
}

/// Copies one direction until EOF (then shuts down the write half toward the other side)
/// or an error (then closes the whole connection).
fn pump(pair: &Pair, from: &TcpStream, to: &TcpStream, counter: &AtomicU64, buffer: usize) {
    let mut buf = vec![0u8; buffer];
    match copy(pair, from, to, &mut buf, counter) {
        Ok(()) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(e) => {
            if !pair.closing() {
                tracing::debug!(error = %e, "relayed connection failed; closing both sides");
            }
            pair.close();
        }
    }
}

fn copy(
    pair: &Pair,
    mut from: &TcpStream,
    mut to: &TcpStream,
    buf: &mut [u8],
    counter: &AtomicU64,
) -> io::Result<()> {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Windows: the periodic read timeout (see the module documentation).
            Err(e)
                if cfg!(windows)
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                if pair.closing() {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "connection closed by the relay",
                    ));
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::net::IpAddr;
    use std::sync::Barrier;
    use std::sync::mpsc;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    /// Upper bound for anything a test waits for: a failing test fails, it does not hang.
    const PATIENCE: Duration = Duration::from_secs(10);

    fn any_port() -> SocketAddr {
        SocketAddr::new(LOCALHOST, 0)
    }

    fn relay_to(target: SocketAddr, max_connections: usize) -> Relay {
        let mut config = Config::new(vec![any_port()], vec![target]);
        config.max_connections = max_connections;
        Relay::start(config).expect("start the relay")
    }

    fn connect(relay: &Relay) -> TcpStream {
        let stream = TcpStream::connect(relay.local_addrs()[0]).expect("connect to the relay");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        stream
    }

    /// A server on 127.0.0.1 that runs `handle` on each connection in its own thread.
    fn server(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> SocketAddr {
        let listener = TcpListener::bind(any_port()).unwrap();
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
    fn echo_server() -> SocketAddr {
        server(|stream| {
            let _ = io::copy(&mut &stream, &mut &stream);
            let _ = stream.shutdown(Shutdown::Write);
        })
    }

    /// A port on 127.0.0.1 on which nothing listens.
    fn closed_port() -> SocketAddr {
        let listener = TcpListener::bind(any_port()).unwrap();
        listener.local_addr().unwrap()
    }

    fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
        // xorshift64*: cheap and different for every seed.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `data` and ends the writing while reading everything that comes back.
    fn exchange(stream: &TcpStream, data: &[u8]) -> Vec<u8> {
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

    /// The next read ends the stream: EOF, or a reset; not a timeout.
    fn assert_closed(stream: &mut TcpStream) {
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => continue,
                Err(e) => {
                    assert!(
                        matches!(
                            e.kind(),
                            io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted
                        ),
                        "expected EOF or a reset, got {e}"
                    );
                    return;
                }
            }
        }
    }

    /// [`assert_closed`], within 5 s: the relay does not wait for a timeout to close.
    fn assert_closed_soon(stream: &mut TcpStream) {
        let start = Instant::now();
        assert_closed(stream);
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn echo_through_the_relay() {
        let relay = relay_to(echo_server(), DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        stream.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        stream.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(exchange(&stream, b", world"), b", world");
        drop(stream);
        wait_until("the connection is closed", || relay.stats().active == 0);
        let stats = relay.stats();
        assert_eq!(
            stats,
            Stats {
                active: 0,
                total: 1,
                failed: 0,
                to_target: 12,
                to_client: 12
            }
        );
    }

    #[test]
    fn many_concurrent_connections() {
        const CLIENTS: usize = 200;
        let relay = relay_to(echo_server(), DEFAULT_MAX_CONNECTIONS);
        // Opened one after the other, each through to the server (a one-byte round trip):
        // a burst of connects would overflow the listen backlog (128 with std), whose
        // dropped SYNs are retried only after a second (refused outright on Windows).
        let clients: Vec<TcpStream> = (0..CLIENTS)
            .map(|_| {
                let mut stream = connect(&relay);
                stream.write_all(b"+").unwrap();
                let mut buf = [0u8; 1];
                stream.read_exact(&mut buf).unwrap();
                stream
            })
            .collect();
        assert_eq!(relay.stats().active, CLIENTS);
        let sizes: Vec<usize> = (0..CLIENTS).map(|i| 1 + i * 331 % 40_000).collect();
        let barrier = Barrier::new(CLIENTS);
        thread::scope(|s| {
            for (i, (stream, &size)) in clients.iter().zip(&sizes).enumerate() {
                let barrier = &barrier;
                thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(s, move || {
                        let data = random_bytes(i as u64, size);
                        // All transfers at once.
                        barrier.wait();
                        let got = exchange(stream, &data);
                        assert_eq!(got.len(), data.len(), "client {i}: length");
                        assert_eq!(Sha256::digest(&got), Sha256::digest(&data), "client {i}");
                    })
                    .unwrap();
            }
        });
        drop(clients);
        wait_until("all connections are closed", || relay.stats().active == 0);
        let stats = relay.stats();
        let sent = sizes.iter().map(|&n| n as u64 + 1).sum::<u64>();
        assert_eq!(stats.total, CLIENTS as u64);
        assert_eq!((stats.to_target, stats.to_client), (sent, sent));
    }

    #[test]
    fn large_one_way_transfer() {
        const CHUNK: usize = 1 << 20;
        const CHUNKS: u64 = 64;
        // Counts and hashes what it receives, then answers with both.
        let sink = server(|stream| {
            let mut hasher = Sha256::new();
            let mut count = 0u64;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                match (&stream).read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        hasher.update(&buf[..n]);
                        count += n as u64;
                    }
                    Err(_) => return,
                }
            }
            let mut reply = count.to_le_bytes().to_vec();
            reply.extend_from_slice(&hasher.finalize());
            let _ = (&stream).write_all(&reply);
        });
        let relay = relay_to(sink, DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        let block = random_bytes(64, CHUNK);
        let mut hasher = Sha256::new();
        let mut chunk = block.clone();
        for i in 0..CHUNKS {
            // Every chunk different, so that a reordering would show.
            chunk[..8].copy_from_slice(&i.to_le_bytes());
            hasher.update(&chunk);
            stream.write_all(&chunk).unwrap();
        }
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        assert_eq!(reply.len(), 40);
        let count = u64::from_le_bytes(reply[..8].try_into().unwrap());
        assert_eq!(count, CHUNKS * CHUNK as u64);
        assert_eq!(&reply[8..], &hasher.finalize()[..]);
        drop(stream);
        wait_until("the connection is closed", || relay.stats().active == 0);
        assert_eq!(relay.stats().to_target, CHUNKS * CHUNK as u64);
    }

    #[test]
    fn half_close_by_the_client() {
        // Reads to EOF, then replies.
        let server_addr = server(|stream| {
            let mut got = Vec::new();
            (&stream).read_to_end(&mut got).unwrap();
            let reply = random_bytes(got.len() as u64, 300_000);
            (&stream).write_all(&reply).unwrap();
        });
        let relay = relay_to(server_addr, DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        stream.write_all(&random_bytes(1, 1234)).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, random_bytes(1234, 300_000));
        drop(stream);
        wait_until("the connection is closed", || relay.stats().active == 0);
    }

    #[test]
    fn half_close_by_the_server() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        // Greets and ends its writing at once, then reads to EOF.
        let server_addr = server(move |stream| {
            (&stream).write_all(b"greetings").unwrap();
            stream.shutdown(Shutdown::Write).unwrap();
            let mut got = Vec::new();
            let read = (&stream).read_to_end(&mut got).map(|_| got);
            tx.lock()
                .unwrap()
                .send(read.map_err(|e| e.to_string()))
                .unwrap();
        });
        let relay = relay_to(server_addr, DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        let mut greeting = Vec::new();
        stream.read_to_end(&mut greeting).unwrap();
        assert_eq!(greeting, b"greetings");
        // The other direction still works after the server's EOF.
        let data = random_bytes(2, 200_000);
        stream.write_all(&data).unwrap();
        stream.shutdown(Shutdown::Write).unwrap();
        let got = rx.recv_timeout(PATIENCE).unwrap().unwrap();
        assert_eq!(got.len(), data.len());
        assert!(got == data);
        drop(stream);
        wait_until("the connection is closed", || relay.stats().active == 0);
    }

    #[test]
    fn peer_reset_closes_both_sides() {
        // Reads a little, then closes with data still unread: a reset.
        let server_addr = server(|stream| {
            let mut buf = [0u8; 16];
            let _ = (&stream).read(&mut buf);
            thread::sleep(Duration::from_millis(50));
            drop(stream);
        });
        let relay = relay_to(server_addr, DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        let writer = {
            let mut stream = stream.try_clone().unwrap();
            thread::spawn(move || {
                let data = random_bytes(3, 64 * 1024);
                for _ in 0..64 {
                    if stream.write_all(&data).is_err() {
                        break;
                    }
                }
            })
        };
        assert_closed_soon(&mut stream);
        wait_until("the relay closes the connection", || {
            relay.stats().active == 0
        });
        drop(stream);
        writer.join().unwrap();
    }

    #[test]
    fn unreachable_target_closes_the_client() {
        let relay = relay_to(closed_port(), DEFAULT_MAX_CONNECTIONS);
        let mut stream = connect(&relay);
        assert_closed_soon(&mut stream);
        wait_until("the connection is closed", || relay.stats().active == 0);
        let stats = relay.stats();
        assert_eq!((stats.total, stats.failed), (1, 1));
    }

    #[test]
    fn connection_cap_holds_further_clients() {
        let relay = relay_to(echo_server(), 2);
        let mut served = Vec::new();
        for i in 0..2u8 {
            let mut stream = connect(&relay);
            stream.write_all(&[i]).unwrap();
            let mut buf = [0u8; 1];
            stream.read_exact(&mut buf).unwrap();
            assert_eq!(buf, [i]);
            served.push(stream);
        }
        // The third connects (the kernel's backlog) but is not served.
        let mut third = connect(&relay);
        third.write_all(b"three").unwrap();
        third
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 5];
        let err = third.read(&mut buf).expect_err("served beyond the cap");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err}"
        );
        assert_eq!(relay.stats().active, 2);
        // One ends: the third is served.
        drop(served.remove(0));
        third.set_read_timeout(Some(PATIENCE)).unwrap();
        third.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"three");
        assert!(relay.stats().active <= 2);
        assert_eq!(relay.stats().total, 3);
    }

    #[test]
    fn stop_closes_live_connections() {
        let relay = relay_to(echo_server(), DEFAULT_MAX_CONNECTIONS);
        let addr = relay.local_addrs()[0];
        let mut clients: Vec<TcpStream> = (0..5u8)
            .map(|i| {
                let mut stream = connect(&relay);
                stream.write_all(&[i]).unwrap();
                let mut buf = [0u8; 1];
                stream.read_exact(&mut buf).unwrap();
                stream
            })
            .collect();
        assert_eq!(relay.stats().active, 5);
        let start = Instant::now();
        relay.stop();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(1), "stop took {took:?}");
        for stream in &mut clients {
            let mut buf = [0u8; 1];
            assert_eq!(stream.read(&mut buf).unwrap(), 0, "expected EOF");
        }
        assert!(
            TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "still listening after stop"
        );
    }

    #[test]
    fn stop_releases_a_client_held_at_the_cap() {
        let relay = relay_to(echo_server(), 1);
        let mut first = connect(&relay);
        first.write_all(b"x").unwrap();
        let mut buf = [0u8; 1];
        first.read_exact(&mut buf).unwrap();
        let mut held = connect(&relay);
        thread::sleep(Duration::from_millis(50));
        let start = Instant::now();
        relay.stop();
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_closed(&mut first);
        assert_closed(&mut held);
    }

    #[test]
    fn several_listeners_and_ipv6() {
        let echo = echo_server();
        let other = server(|stream| {
            let _ = (&stream).write_all(b"other");
        });
        let mut listen = vec![any_port(), any_port()];
        let mut targets = vec![echo, other];
        // IPv6 loopback, where the machine has it.
        let v6 = TcpListener::bind("[::1]:0").is_ok();
        if v6 {
            listen.push("[::1]:0".parse().unwrap());
            targets.push(echo);
        }
        let relay = Relay::start(Config::new(listen, targets)).unwrap();
        let addrs = relay.local_addrs();
        assert!(addrs.iter().all(|a| a.port() != 0));
        let open = |addr: SocketAddr| {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            stream
        };
        assert_eq!(exchange(&open(addrs[0]), b"echo"), b"echo");
        assert_eq!(exchange(&open(addrs[1]), b""), b"other");
        if v6 {
            assert!(addrs[2].is_ipv6());
            assert_eq!(exchange(&open(addrs[2]), b"six"), b"six");
        }
    }

    #[test]
    fn run_returns_when_told_to_stop() {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let config = Config::new(vec![any_port()], vec![closed_port()]);
        let handle = thread::spawn(move || run(config, || flag.load(Ordering::Relaxed)));
        thread::sleep(Duration::from_millis(150));
        let start = Instant::now();
        stop.store(true, Ordering::Relaxed);
        handle.join().unwrap().unwrap();
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn bad_configs_are_refused() {
        let kind = |config: Config| Relay::start(config).err().map(|e| e.kind());
        let invalid = Some(io::ErrorKind::InvalidInput);
        assert_eq!(kind(Config::new(vec![], vec![])), invalid);
        assert_eq!(kind(Config::new(vec![any_port()], vec![])), invalid);
        let mut config = Config::new(vec![any_port()], vec![closed_port()]);
        config.max_connections = 0;
        assert_eq!(kind(config), invalid);
        let mut config = Config::new(vec![any_port()], vec![closed_port()]);
        config.buffer = 0;
        assert_eq!(kind(config), invalid);
        // An address in use: the error names it.
        let taken = TcpListener::bind(any_port()).unwrap();
        let addr = taken.local_addr().unwrap();
        let Err(err) = Relay::start(Config::new(vec![addr], vec![closed_port()])) else {
            // Windows lets a second socket bind a port in some configurations.
            return;
        };
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
