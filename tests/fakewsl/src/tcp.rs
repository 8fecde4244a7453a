//! `fakewsl echo ADDR` and `fakewsl send ADDR BYTES`: an echo server and a client that
//! checks the echo, over TCP (`HOST:PORT`) or a Unix socket (`unix:PATH`), for the tests
//! inside the sandbox (where the host's tools may not exist).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;

/// Serves echo on `addr` forever, one thread per connection; prints `ready ADDR` once bound.
pub fn echo(addr: &str) -> i32 {
    if let Some(path) = addr.strip_prefix("unix:") {
        let _ = std::fs::remove_file(path);
        let listener = match std::os::unix::net::UnixListener::bind(path) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("fakewsl echo: cannot listen on {addr}: {e}");
                return 1;
            }
        };
        println!("ready {addr}");
        let _ = std::io::stdout().flush();
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut s = stream;
                let mut w = s.try_clone().expect("clone the stream");
                let _ = std::io::copy(&mut s, &mut w);
                let _ = w.shutdown(Shutdown::Write);
            });
        }
        return 0;
    }
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fakewsl echo: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    println!(
        "ready {}",
        listener
            .local_addr()
            .map_or(addr.to_string(), |a| a.to_string())
    );
    let _ = std::io::stdout().flush();
    for stream in listener.incoming().flatten() {
        thread::spawn(move || {
            let mut s = stream;
            let mut buf = [0u8; 16 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = s.shutdown(Shutdown::Write);
        });
    }
    0
}

/// Sends `bytes` pseudo-random bytes to `addr`, closes its sending side, and checks that
/// exactly the same bytes come back. Prints `ok N`; exit 1 on any difference or error.
pub fn send(addr: &str, bytes: &str) -> i32 {
    let Ok(n) = bytes.parse::<usize>() else {
        eprintln!("fakewsl send: {bytes:?} is not a byte count");
        return 1;
    };
    let data: Vec<u8> = (0..n)
        .scan(0x2545_f491_4f6c_dd1d_u64, |x, _| {
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            Some((*x >> 24) as u8)
        })
        .collect();
    if let Some(path) = addr.strip_prefix("unix:") {
        return match std::os::unix::net::UnixStream::connect(path) {
            Ok(s) => {
                let w = s.try_clone().expect("clone the stream");
                check_echo(s, w, data, |w| w.shutdown(Shutdown::Write))
            }
            Err(e) => {
                eprintln!("fakewsl send: cannot connect to {addr}: {e}");
                1
            }
        };
    }
    let s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fakewsl send: cannot connect to {addr}: {e}");
            return 1;
        }
    };
    let w = s.try_clone().expect("clone the stream");
    check_echo(s, w, data, |w| w.shutdown(Shutdown::Write))
}

/// Sends `data` on `writer` (then `close` its sending side) while reading the echo from
/// `s`; prints `ok N` when it is the same bytes.
fn check_echo<S: Read, W: Write + Send + 'static>(
    mut s: S,
    writer: W,
    data: Vec<u8>,
    close: fn(&W) -> std::io::Result<()>,
) -> i32 {
    let n = data.len();
    let mut writer = writer;
    let to_send = data.clone();
    let sender = thread::spawn(move || {
        let r = writer.write_all(&to_send);
        let _ = close(&writer);
        r
    });
    let mut got = Vec::with_capacity(n);
    if let Err(e) = s.read_to_end(&mut got) {
        eprintln!("fakewsl send: reading the echo: {e}");
        return 1;
    }
    if let Ok(Err(e)) | Err(e) = sender.join().map_err(|_| std::io::Error::other("panicked")) {
        eprintln!("fakewsl send: sending: {e}");
        return 1;
    }
    if got != data {
        eprintln!(
            "fakewsl send: the echo differs ({} bytes back of {n})",
            got.len()
        );
        return 1;
    }
    println!("ok {n}");
    0
}
