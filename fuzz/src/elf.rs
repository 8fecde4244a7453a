//! `distrod update FILE`'s check of the new binary: `linux::install::check_elf`, which reads
//! the ELF header and program headers and refuses anything but a static, 64-bit,
//! little-endian executable for this machine, before the file is ever run.
//!
//! The file is whatever the administrator downloaded or was handed, and the check runs as
//! root, before the file is installed setuid. Each input is the whole file.

use std::io::Cursor;

use distrod::linux::install::check_elf;

pub fn run(data: &[u8]) {
    let result = check_elf(&mut Cursor::new(data), data.len() as u64);
    if let Err(why) = result {
        assert!(!why.is_empty(), "a refusal without a reason");
    } else {
        // Accepted: at least the ELF header is there.
        assert!(data.len() >= 64, "accepted a {}-byte file", data.len());
        assert_eq!(&data[..4], b"\x7fELF");
    }
}
