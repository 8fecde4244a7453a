//! Checksum repair for mutated archives. A random mutation of a tar header or an xz
//! header almost always breaks its checksum, and the parsers rightly stop there, so the
//! fuzzer would rarely get past the first checksum of a seed. The tar and xz targets
//! therefore run each input twice: as it is (the checksum checks), and, when it differs,
//! with every checksum this module can locate recomputed (what comes after them).
//!
//! The walk is deliberately shallow: it follows the structure while it makes sense and
//! stops at the first thing it cannot place, leaving the rest as it is.

/// Recomputes the checksum of every tar header it can reach. `None` when nothing changed.
pub fn tar(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while fits(pos, 512, out.len()) {
        let header = &mut out[pos..pos + 512];
        if header.iter().all(|&b| b == 0) {
            pos += 512;
            continue;
        }
        header[148..156].fill(b' ');
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        header[148..156].copy_from_slice(field.as_bytes());
        let kind = header[156];
        let extended = header[482] != 0;
        let Some(size) = tar_number(&header[124..136]) else {
            break;
        };
        pos += 512;
        // Old GNU sparse headers continue in extension blocks while their last flag is set.
        if kind == b'S' && extended {
            while fits(pos, 512, out.len()) {
                let more = out[pos + 504] != 0;
                pos += 512;
                if !more {
                    break;
                }
            }
        }
        let Some(next) = usize::try_from(size.div_ceil(512).saturating_mul(512))
            .ok()
            .and_then(|len| pos.checked_add(len))
        else {
            break;
        };
        pos = next;
    }
    (out != data).then_some(out)
}

/// Whether `n` bytes from `pos` lie within `len` bytes.
fn fits(pos: usize, n: usize, len: usize) -> bool {
    pos.checked_add(n).is_some_and(|end| end <= len)
}

/// A tar number field: octal digits (spaces and NULs around them), or base-256.
fn tar_number(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for &b in &field[field.len() - 8..] {
            v = (v << 8) | u64::from(b);
        }
        return Some(v);
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == ' ' || c == '\0');
    u64::from_str_radix(digits, 8).ok()
}

const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
/// Size of the check field by check ID (.xz format §2.1.1.2).
const CHECK_SIZES: [usize; 16] = [0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64];

/// Recomputes the CRC32 of every xz stream header, block header, index and stream footer
/// it can reach (a block's own check, over its uncompressed data, stays). `None` when
/// nothing changed.
pub fn xz(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = data.to_vec();
    let mut pos = 0;
    while fits(pos, 12, out.len()) {
        if out[pos..pos + 4] == [0; 4] && out[pos..pos + 6] != XZ_MAGIC {
            pos += 4; // stream padding
            continue;
        }
        match xz_stream(&mut out, pos) {
            Some(end) => pos = end,
            None => break,
        }
    }
    (out != data).then_some(out)
}

/// Fixes the stream at `start`; the offset after its footer, if it could be followed.
fn xz_stream(out: &mut [u8], start: usize) -> Option<usize> {
    if out[start..start + 6] != XZ_MAGIC {
        return None;
    }
    set_crc(out, start + 6, start + 8);
    let check = CHECK_SIZES[usize::from(out[start + 7] & 0x0f)];
    let mut pos = start + 12;
    // Blocks, as long as their headers give their sizes.
    loop {
        let size_byte = *out.get(pos)?;
        if size_byte == 0 {
            break;
        }
        let header_len = (usize::from(size_byte) + 1) * 4;
        let header_end = pos.checked_add(header_len)?;
        if header_end > out.len() {
            return None;
        }
        set_crc(out, pos, header_end - 4);
        let flags = out[pos + 1];
        if flags & 0x40 == 0 {
            return None;
        }
        let mut fields = &out[pos + 2..header_end - 4];
        let compressed = vli(&mut fields)?;
        let padded = usize::try_from(
            (header_len as u64)
                .checked_add(compressed)?
                .next_multiple_of(4),
        )
        .ok()?;
        pos = pos.checked_add(padded)?.checked_add(check)?;
    }
    // The index: indicator, count, records, padding, CRC32.
    let index_start = pos;
    let mut fields = out.get(index_start + 1..)?;
    let before = fields.len();
    let count = vli(&mut fields)?;
    for _ in 0..count.min(1 << 16) {
        vli(&mut fields)?;
        vli(&mut fields)?;
    }
    let body = 1 + before - fields.len();
    let crc_at = index_start.checked_add(body.next_multiple_of(4))?;
    if !fits(crc_at, 4 + 12, out.len()) {
        return None;
    }
    set_crc(out, index_start, crc_at);
    // The footer: CRC32, then the Backward Size and the flags it covers, then `YZ`.
    let footer = crc_at + 4;
    let crc = crc32(&out[footer + 4..footer + 10]);
    out[footer..footer + 4].copy_from_slice(&crc.to_le_bytes());
    Some(footer + 12)
}

/// Writes the CRC32 of `out[from..to]` at `to`, little-endian.
fn set_crc(out: &mut [u8], from: usize, to: usize) {
    let crc = crc32(&out[from..to]);
    out[to..to + 4].copy_from_slice(&crc.to_le_bytes());
}

fn vli(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..9 {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_of_the_check_string() {
        assert_eq!(super::crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn valid_inputs_are_left_alone() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        for (dir, fix) in [
            ("tar_unpack", super::tar as fn(&[u8]) -> _),
            ("xz", super::xz),
        ] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                assert!(fix(&data).is_none(), "{} was changed", path.display());
            }
        }
    }

    #[test]
    fn sizes_beyond_the_input_end_the_walk() {
        let mut header = vec![0u8; 1024];
        header[0] = b'a';
        header[124] = 0x80;
        header[125..136].fill(0xff);
        assert!(super::tar(&header).is_some());
        let mut xz = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/xz/multi-block.xz"),
        )
        .unwrap();
        // The first block header's Compressed Size: as large as a VLI goes.
        xz[14..23].copy_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        let _ = super::xz(&xz);
    }

    #[test]
    fn broken_checksums_are_repaired() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
        let tar = std::fs::read(root.join("tar_unpack/ustar.tar")).unwrap();
        let mut broken = tar.clone();
        broken[148] = b'7';
        assert_eq!(super::tar(&broken).unwrap(), tar);
        // A changed name gets a checksum the tar reader accepts.
        broken[0] = b'X';
        let fixed = super::tar(&broken).unwrap();
        let mut archive = tar::Archive::new(fixed.as_slice());
        let first = archive.entries().unwrap().next().unwrap().unwrap();
        assert!(first.path_bytes().starts_with(b"X"));

        let xz = std::fs::read(root.join("xz/multi-block.xz")).unwrap();
        let mut broken = xz.clone();
        broken[8] ^= 0xff; // the stream header's CRC
        let n = broken.len();
        broken[n - 12] ^= 0xff; // the footer's CRC
        assert_eq!(super::xz(&broken).unwrap(), xz);
    }
}
