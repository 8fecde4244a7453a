//! distrod.exe's port proxy relay, `distrod.exe portproxy serve` (what the distro's
//! `distrod-portproxy.service` starts on the Windows side), run under Wine and forwarding
//! to a server on 127.0.0.1.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::portproxy::{connect, echo_server, exchange};
use crate::support::archive::{pseudo_random, sha256_hex};
use crate::support::wine::wine;

#[test]
fn the_relay_forwards_under_wine_and_stops_when_its_input_ends() {
    let Some(wine) = wine() else {
        return;
    };
    let target = echo_server().port();
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
                let stream = connect(([127, 0, 0, 1], listen).into());
                let got = exchange(&stream, &data);
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
