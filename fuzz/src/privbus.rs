//! The relay to systemd's private socket (`runtime::privbus`): how it frames what a client
//! outside the container (any root process) and the container's systemd send it, so that a
//! read never goes past the end of a D-Bus message (`Framing`, `message_len`).
//!
//! The input is one direction of a connection, tried as the client's and as systemd's; its
//! first byte picks read sizes. What is checked is what the module documents: reads of at
//! most `want` bytes (at least one, at most the chunk), each message's reads adding up to
//! the length its header gives, the same outcome whatever the reads' sizes, and bytes that
//! are not D-Bus refused rather than taken.

use distrod::runtime::privbus::{Framing, MAX_MESSAGE, Sender, message_len};

/// The relay's largest read (privbus's `CHUNK`).
const CHUNK: usize = 64 * 1024;

pub fn run(data: &[u8]) {
    let Some((&pick, stream)) = data.split_first() else {
        return;
    };
    for who in [Sender::Client, Sender::Server] {
        let relayed = as_the_relay_reads(who, stream);
        let any = in_pieces(who, stream, pick);
        assert_eq!(relayed, any, "the outcome depends on the reads' sizes");
    }
}

/// Fed as the relay reads: never more than `want`. Checks each message's length against
/// its header; returns whether the stream was taken and where the last message began.
fn as_the_relay_reads(who: Sender, stream: &[u8]) -> Option<usize> {
    let mut f = Framing::new(who);
    let mut at = 0;
    // Where the current message began, once its header is known.
    let mut started: Option<usize> = None;
    while at < stream.len() {
        let want = f.want();
        assert!((1..=CHUNK).contains(&want), "want {want}");
        let n = want.min(stream.len() - at);
        let before = f.between_messages();
        if before {
            started = Some(at);
        }
        f.feed(&stream[at..at + n]).ok()?;
        at += n;
        if f.between_messages()
            && let Some(s) = started.take()
            && at - s >= 16
        {
            let header: [u8; 16] = stream[s..s + 16].try_into().unwrap();
            let len = message_len(&header).expect("a message taken with a bad header");
            assert!(len <= MAX_MESSAGE);
            assert_eq!(len as usize, at - s, "a message's reads against its length");
        }
    }
    Some(at)
}

/// Fed in pieces of sizes drawn from `pick`, whatever `want` says.
fn in_pieces(who: Sender, stream: &[u8], pick: u8) -> Option<usize> {
    let mut f = Framing::new(who);
    let mut at = 0;
    let mut size = usize::from(pick % 64) + 1;
    while at < stream.len() {
        let n = size.min(stream.len() - at);
        f.feed(&stream[at..at + n]).ok()?;
        at += n;
        size = size * 7 % 97 + 1;
    }
    Some(at)
}
