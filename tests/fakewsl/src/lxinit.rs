//! WSL's binary init messages that the relay answers besides its text protocol: only
//! `LxInitMessageQueryDrvfsElevated`, which WSL's `mount.drvfs` (and distrod) send to a
//! session's interop socket to learn whether the session's Windows process is elevated
//! (microsoft/WSL, src/shared/inc/lxinitshared.h).
//!
//! Every message starts with a MESSAGE_HEADER of four little-endian u32s: MessageType,
//! MessageSize (the whole message), TransactionId, TransactionStep. The query is a bare
//! header (type 12, size 16, step 1); the answer a RESULT_MESSAGE<bool> (type 79,
//! `LxMessageResultBool`, size 20, the query's transaction, step 2) whose bool is one byte
//! followed by three bytes of padding.

/// `LxInitMessageQueryDrvfsElevated`.
pub const QUERY_DRVFS_ELEVATED: u32 = 12;
/// `LxMessageResultBool`.
pub const RESULT_BOOL: u32 = 79;
/// Size of a MESSAGE_HEADER, and of the query.
pub const HEADER_SIZE: usize = 16;
/// Size of a RESULT_MESSAGE<bool>.
pub const REPLY_SIZE: usize = 20;

/// What a binary request starts with; the text protocol never starts so (its requests are
/// text without NUL bytes).
pub const QUERY_PREFIX: [u8; 4] = QUERY_DRVFS_ELEVATED.to_le_bytes();

/// How a query appears in the interop log, in place of a text request's arguments.
pub const QUERY_LOG_ARGS: &str = "<query-drvfs-elevated>";

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

/// The transaction id of a well-formed query (type 12, size 16, step 1), else None.
pub fn parse_query(message: &[u8; HEADER_SIZE]) -> Option<u32> {
    (u32_at(message, 0) == QUERY_DRVFS_ELEVATED
        && u32_at(message, 4) == HEADER_SIZE as u32
        && u32_at(message, 12) == 1)
        .then(|| u32_at(message, 8))
}

/// The answer to query `transaction`: the session is `elevated` or not.
pub fn reply(transaction: u32, elevated: bool) -> [u8; REPLY_SIZE] {
    let mut b = [0u8; REPLY_SIZE];
    for (i, v) in [RESULT_BOOL, REPLY_SIZE as u32, transaction, 2]
        .into_iter()
        .enumerate()
    {
        b[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    b[HEADER_SIZE] = u8::from(elevated);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_a_bare_header() {
        let query = [12, 0, 0, 0, 16, 0, 0, 0, 0x78, 0x56, 0x34, 0x12, 1, 0, 0, 0];
        assert_eq!(parse_query(&query), Some(0x1234_5678));
        assert!(query.starts_with(&QUERY_PREFIX));
        // Another type, size or step is not the query.
        for (at, value) in [(0, 13), (4, 20), (12, 2), (5, 1)] {
            let mut other = query;
            other[at] = value;
            assert_eq!(parse_query(&other), None, "byte {at} = {value}");
        }
    }

    #[test]
    fn the_reply_is_a_result_bool() {
        assert_eq!(
            reply(7, true),
            [79, 0, 0, 0, 20, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]
        );
        assert_eq!(
            reply(0xdead_beef, false),
            [
                79, 0, 0, 0, 20, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde, 2, 0, 0, 0, 0, 0, 0, 0
            ]
        );
    }

    #[test]
    fn text_requests_never_look_like_the_query() {
        // A text request is one line without NUL bytes; the query's second byte is NUL.
        assert_eq!(QUERY_PREFIX, [0x0c, 0, 0, 0]);
        assert!(!"\x0cx\n".as_bytes().starts_with(&QUERY_PREFIX));
    }
}
