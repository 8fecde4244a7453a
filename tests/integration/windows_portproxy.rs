//! distrod.exe's port proxy relay, `distrod.exe portproxy serve` (what the distro's
//! `distrod-portproxy.service` starts on the Windows side), run under Wine and forwarding
//! to a server on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::archive::{pseudo_random, sha256_hex};
use crate::support::wine::wine;

/// An echo server on 127.0.0.1: each connection gets back what it sent, then EOF.
fn echo_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the echo server");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let mut s = stream;
                let mut buf = [0u8; 64 * 1024];
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
    });
    port
}

/// Sends `data` through `port`, shuts down the sending side, and returns what came back.
fn round_trip(port: u16, data: Vec<u8>) -> Vec<u8> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the relay");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sender = thread::spawn(move || {
        w.write_all(&data).expect("send through the relay");
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read the echo");
    sender.join().unwrap();
    got
}

#[test]
fn the_relay_forwards_under_wine_and_stops_when_its_input_ends() {
    let Some(wine) = wine() else {
        return;
    };
    let target = echo_server();
    let mut child = wine
        .program(wine.exe().to_str().unwrap())
        .args([
            "portproxy",
            "serve",
            "--to",
            "127.0.0.1",
            "--bind",
            "127.0.0.1",
            "--ports",
            &format!("0={target}"),
        ])
        .spawn_piped();
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .expect("read the relay's first line");
    let listen: u16 = line
        .strip_prefix("listening on 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("unexpected first line from the relay (pid {pid}): {line:?}")
        });
    assert!(
        line.trim_end().ends_with(&format!("-> 127.0.0.1:{target}")),
        "{line:?}"
    );

    // Concurrent connections, each with its own data, checked by hash; one large.
    let clients: Vec<_> = (0..16u64)
        .map(|i| {
            thread::spawn(move || {
                let len = if i == 0 {
                    8 << 20
                } else {
                    64 * 1024 + i as usize
                };
                let data = pseudo_random(i + 1, len);
                let want = sha256_hex(&data);
                let got = round_trip(listen, data);
                (len, got.len(), want, sha256_hex(&got))
            })
        })
        .collect();
    for c in clients {
        let (len, got_len, want, got) = c.join().expect("a client thread");
        assert_eq!(got_len, len, "bytes back through the relay");
        assert_eq!(got, want, "sha256 of the echo through the relay");
    }

    // Its input ends (the distro's unit stopped): it stops listening and exits 0.
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the relay (pid {pid}) did not exit after its input ended");
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    assert!(
        TcpStream::connect(("127.0.0.1", listen)).is_err(),
        "still listening on {listen} after exiting"
    );
}
