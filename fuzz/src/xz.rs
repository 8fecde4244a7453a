//! The image decompressor: format sniffing (`image::decode::sniff`) and the block-parallel
//! xz decoder (`image::xz::ParallelXzDecoder`), which parses the xz container itself
//! (stream header and footer, block headers, index, padding) and hands blocks to worker
//! threads.
//!
//! The compressed bytes come from outside (an image server, a mirror, `--image`) and are
//! decoded before their checksum is known. The decoder runs with three workers and a
//! small output budget, so that blocks are decoded ahead, wait for the budget and are
//! handed over in order even for small inputs, and reads through a small odd-sized buffer,
//! so that every structure also arrives split across reads. Whatever it accepts must be
//! exactly what liblzma's own sequential decoder makes of the same bytes (concatenated
//! streams and stream padding included): it may refuse more, never accept more or
//! deliver other bytes. Each input is also decoded with its container's CRC32s repaired
//! (see [`crate::fixup`]).

use std::io::{self, BufReader, Read};

use distrod::image::decode::{Format, sniff};
use distrod::image::xz::ParallelXzDecoder;

const THREADS: usize = 3;
/// Two of the decoder's output chunks.
const BUDGET: usize = 512 << 10;
const READ_BUFFER: usize = 1021;
/// What is compared with the reference decoder; a larger output is still decoded in full.
const COMPARED: usize = 256 << 20;

pub fn run(data: &[u8]) {
    match sniff(data) {
        Ok(Format::Xz) => {}
        // gzip and plain tar go to flate2 and the tar reader as they are.
        Ok(Format::Gzip | Format::Tar) | Err(_) => return,
    }
    compare(data);
    if let Some(fixed) = crate::fixup::xz(data) {
        compare(&fixed);
    }
}

fn compare(data: &[u8]) {
    let ours = decode(data);
    if let Ok(ours) = ours {
        let reference = reference(data);
        match reference {
            Ok(reference) => assert!(
                ours == reference,
                "the decoders disagree: {} bytes from ours, {} from liblzma's",
                ours.len(),
                reference.len()
            ),
            Err(e) => panic!(
                "ours decoded {} bytes where liblzma's decoder fails: {e}",
                ours.len()
            ),
        }
    }
}

fn decode(data: &[u8]) -> io::Result<Vec<u8>> {
    let input = BufReader::with_capacity(READ_BUFFER, data);
    let mut decoder = ParallelXzDecoder::new(input, THREADS, BUDGET)?;
    read_capped(&mut decoder)
}

fn reference(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut decoder = liblzma::bufread::XzDecoder::new_multi_decoder(data);
    let out = read_capped(&mut decoder)?;
    // Like `xz -d`, nothing may follow the last stream but its padding.
    let rest = decoder.into_inner();
    if !rest.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes after the last stream", rest.len()),
        ));
    }
    Ok(out)
}

/// Reads `r` to its end; keeps the first [`COMPARED`] bytes.
fn read_capped(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        let room = COMPARED.saturating_sub(out.len());
        out.extend_from_slice(&buf[..n.min(room)]);
    }
}
