//! Decompression of an image stream, chosen by its magic bytes rather than its name (a
//! `.wsl` file may be gzip or xz; a download URL may have no extension at all).
//!
//! xz goes through [`ParallelXzDecoder`]: the image server's tarballs are written with
//! `xz --threads=0`, i.e. in independent blocks (~24 MiB uncompressed each) whose sizes are
//! in the block headers, so blocks decode in parallel on all cores (up to four) while memory
//! stays bounded by the thread count, not the image size. Single-block streams decode
//! sequentially, as they must.

use std::io::{self, BufRead, Read};

use super::xz::ParallelXzDecoder;

/// More threads than this buy little for one download and cost memory (each holds a
/// compressed block and a dictionary).
const MAX_XZ_THREADS: usize = 4;
/// Output each extra thread may decode ahead of the unpacker: half of the image server's
/// 24 MiB blocks keeps two cores busy (measured) with a peak RSS near 42 MiB.
const XZ_BUDGET_PER_EXTRA_THREAD: usize = 12 * 1024 * 1024;

/// The stream formats distrod reads, told apart by [`sniff`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// xz (the image server's tarballs, xz-compressed `.wsl` files).
    Xz,
    /// gzip (`.tar.gz`, most `.wsl` files).
    Gzip,
    /// Anything else, handed to the tar reader as it is (which rejects what is not a tar).
    Tar,
}

/// Why an image stream cannot be decompressed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// A compression distrod does not read, by name (`zstd`, `bzip2`).
    #[error("{0}-compressed images are not supported (use .tar.xz, .tar.gz or .tar)")]
    Unsupported(&'static str),
    /// Reading the stream, or starting the xz decoder's threads, failed.
    #[error("cannot read the image: {0}")]
    Io(#[from] io::Error),
}

/// Identifies the format from the first bytes of the stream.
pub fn sniff(head: &[u8]) -> Result<Format, DecodeError> {
    const XZ: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0];
    if head.starts_with(XZ) {
        Ok(Format::Xz)
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Format::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(DecodeError::Unsupported("zstd"))
    } else if head.starts_with(b"BZh") {
        Err(DecodeError::Unsupported("bzip2"))
    } else {
        // Anything else is handed to the tar reader, which rejects what is not a tar.
        Ok(Format::Tar)
    }
}

/// The decompressed bytes of an image stream, as a [`Read`] of the tar archive.
pub enum Decoder<R: BufRead> {
    /// xz, decoded block-parallel where the stream has several blocks.
    Xz(ParallelXzDecoder<R>),
    /// gzip, every member of the stream in turn.
    Gzip(flate2::bufread::MultiGzDecoder<R>),
    /// Not compressed: the stream itself.
    Tar(R),
}

impl<R: BufRead> Decoder<R> {
    /// A decoder for the format sniffed from the start of `r`.
    #[cfg(test)]
    pub fn new(mut r: R) -> Result<Decoder<R>, DecodeError> {
        let format = sniff(r.fill_buf()?)?;
        Self::with_format(r, format)
    }

    /// A decoder for a format already sniffed from `r`'s buffer.
    pub fn with_format(r: R, format: Format) -> Result<Decoder<R>, DecodeError> {
        Ok(match format {
            Format::Xz => {
                let threads = std::thread::available_parallelism()
                    .map_or(1, |n| n.get())
                    .min(MAX_XZ_THREADS);
                let budget = XZ_BUDGET_PER_EXTRA_THREAD * (threads - 1).max(1);
                Decoder::Xz(ParallelXzDecoder::new(r, threads, budget)?)
            }
            Format::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(r)),
            Format::Tar => Decoder::Tar(r),
        })
    }

    /// The format being decoded.
    #[cfg(test)]
    pub fn format(&self) -> Format {
        match self {
            Decoder::Xz(_) => Format::Xz,
            Decoder::Gzip(_) => Format::Gzip,
            Decoder::Tar(_) => Format::Tar,
        }
    }

    /// The underlying reader, to drain what follows the compressed stream.
    pub fn into_inner(self) -> R {
        match self {
            Decoder::Xz(d) => d.into_inner(),
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Tar(r) => r,
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Xz(d) => d.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Tar(r) => r.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn roundtrip(compressed: Vec<u8>, want: &[u8], format: Format) {
        let mut d = Decoder::new(io::Cursor::new(compressed)).unwrap();
        assert_eq!(d.format(), format);
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out, want);
    }

    fn data() -> Vec<u8> {
        (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 % 7)
            .collect()
    }

    #[test]
    fn xz_single_and_multi_block() {
        let data = data();
        let mut single = liblzma::write::XzEncoder::new(Vec::new(), 1);
        single.write_all(&data).unwrap();
        roundtrip(single.finish().unwrap(), &data, Format::Xz);

        let stream = liblzma::stream::MtStreamBuilder::new()
            .threads(2)
            .block_size(256 * 1024)
            .preset(1)
            .encoder()
            .unwrap();
        let mut multi = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        multi.write_all(&data).unwrap();
        roundtrip(multi.finish().unwrap(), &data, Format::Xz);
    }

    #[test]
    fn gzip_and_plain() {
        let data = data();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        roundtrip(gz.finish().unwrap(), &data, Format::Gzip);
        roundtrip(data.clone(), &data, Format::Tar);
    }

    #[test]
    fn unsupported_formats_are_named() {
        let e = sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]).unwrap_err();
        assert!(e.to_string().starts_with("zstd-compressed"), "{e}");
        assert!(sniff(b"BZh91AY").is_err());
    }

    #[test]
    fn corrupt_xz_is_an_error() {
        let data = data();
        let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 1);
        enc.write_all(&data).unwrap();
        let mut c = enc.finish().unwrap();
        let mid = c.len() / 2;
        c[mid] ^= 0xff;
        let mut d = Decoder::new(io::Cursor::new(c)).unwrap();
        assert!(io::copy(&mut d, &mut io::sink()).is_err());
    }
}
