//! The ELF header of a binary distrod is handed: `distrod::elf::Header::parse`, the one
//! reader of its class, byte order and machine, and `distro::install::check_elf`,
//! `distrod update FILE`'s check of the new binary, which builds on it to read the program
//! headers and refuses anything but a static, 64-bit, little-endian executable for this
//! machine, before the file is ever run.
//!
//! The file is whatever the administrator downloaded or was handed, and the check runs as
//! root, before the file is installed setuid. Each input is the whole file.

use std::io::Cursor;

use distrod::distro::install::check_elf;
use distrod::elf::{Class, Header, HeaderError, LEN, MAGIC, Order};

pub fn run(data: &[u8]) {
    let header = Header::parse(data);
    let elf = data.starts_with(&MAGIC);
    match header {
        Ok(h) => {
            assert!(
                elf && data.len() >= LEN,
                "read a header from {} bytes",
                data.len()
            );
            if let Some(arch) = h.arch() {
                assert_eq!(h.order, Order::Little, "named the big-endian {arch}");
            }
        }
        Err(HeaderError::NotElf { script }) => {
            assert!(!elf, "the magic is there");
            assert_eq!(script, data.starts_with(b"#!"));
        }
        Err(HeaderError::Truncated) => {
            assert!(
                elf && data.len() < LEN,
                "{} bytes called truncated",
                data.len()
            );
        }
    }

    let result = check_elf(&mut Cursor::new(data), data.len() as u64);
    if let Err(why) = result {
        assert!(!why.is_empty(), "a refusal without a reason");
    } else {
        // Accepted: at least the ELF header is there, and it reads as the reader says.
        assert!(data.len() >= 64, "accepted a {}-byte file", data.len());
        assert_eq!(&data[..4], b"\x7fELF");
        let h = header.expect("accepted a file the reader refuses");
        assert_eq!((h.class, h.order), (Class::Elf64, Order::Little));
        assert!(h.arch().is_some(), "accepted machine {}", h.machine);
    }
}
