//! The start of an ELF header (elf(5)): class, byte order and machine, which say whether a
//! binary can run on a machine at all. `distrod update` reads them from the file it is
//! handed, before anything runs it, and `pack` and the Windows installer from the Linux
//! binary they put into an image: one reader, so that both read the same bytes the same
//! way. Bytes only, no file access: it runs on Windows too.
//!
//! What it promises for any input: `Ok` only for at least [`LEN`] bytes starting with
//! [`MAGIC`]; [`HeaderError::NotElf`] exactly when the magic is missing (`script` exactly
//! when the bytes start with `#!`), [`HeaderError::Truncated`] when it is there but the
//! bytes are fewer; [`Header::arch`] names a little-endian file only.

/// e_ident[EI_MAG0..=EI_MAG3].
pub const MAGIC: [u8; 4] = *b"\x7fELF";
/// How many bytes the fields read here take: e_ident (16), e_type (2), e_machine (2).
pub const LEN: usize = 20;
/// e_ident[EI_CLASS] of a 32-bit file (ELFCLASS32).
pub const CLASS32: u8 = 1;
/// e_ident[EI_CLASS] of a 64-bit file (ELFCLASS64).
pub const CLASS64: u8 = 2;
/// e_ident[EI_DATA] of a little-endian file (ELFDATA2LSB).
pub const DATA_LE: u8 = 1;
/// e_ident[EI_DATA] of a big-endian file (ELFDATA2MSB).
pub const DATA_BE: u8 = 2;
/// e_machine of x86-64.
pub const EM_X86_64: u16 = 62;
/// e_machine of AArch64.
pub const EM_AARCH64: u16 = 183;

/// The machines distrod runs on (WSL2's), by e_machine: the architecture name distrod uses
/// (Debian's, as image names and `--arch` do) and the kernel's (`uname -m`).
const MACHINES: [(u16, &str, &str); 2] = [
    (EM_X86_64, "amd64", "x86_64"),
    (EM_AARCH64, "arm64", "aarch64"),
];

/// e_ident[EI_CLASS].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// ELFCLASS32.
    Elf32,
    /// ELFCLASS64: what distrod runs and what every binary it checks must be.
    Elf64,
    /// Neither (ELFCLASSNONE or worse): kept, so that each caller words its refusal.
    Invalid(u8),
}

/// e_ident[EI_DATA]: the byte order of every multi-byte field after e_ident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// ELFDATA2LSB: little-endian, as on x86-64 and AArch64 Linux.
    Little,
    /// ELFDATA2MSB: big-endian.
    Big,
    /// Neither (ELFDATANONE or worse): kept, so that each caller words its refusal.
    Invalid(u8),
}

/// What the start of an ELF header says about the machine a file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The word size: 32- or 64-bit.
    pub class: Class,
    /// The byte order of the fields after e_ident.
    pub order: Order,
    /// e_machine, in the file's byte order (read as little-endian when [`Order::Invalid`]:
    /// no caller goes by it then).
    pub machine: u16,
}

/// Why bytes have no ELF header to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// They do not start with [`MAGIC`]; `script` when they start with `#!` instead (an
    /// interpreter script, the usual thing to be handed in place of a binary).
    NotElf {
        /// They start with `#!`.
        script: bool,
    },
    /// The magic, then fewer than [`LEN`] bytes in all.
    Truncated,
}

impl Header {
    /// Reads the header at the start of `bytes` (the whole file or its first bytes).
    pub fn parse(bytes: &[u8]) -> Result<Header, HeaderError> {
        if !bytes.starts_with(&MAGIC) {
            return Err(HeaderError::NotElf {
                script: bytes.starts_with(b"#!"),
            });
        }
        let Some(h) = bytes.first_chunk::<LEN>() else {
            return Err(HeaderError::Truncated);
        };
        let class = match h[4] {
            CLASS32 => Class::Elf32,
            CLASS64 => Class::Elf64,
            c => Class::Invalid(c),
        };
        let order = match h[5] {
            DATA_LE => Order::Little,
            DATA_BE => Order::Big,
            d => Order::Invalid(d),
        };
        let m = [h[18], h[19]];
        let machine = match order {
            Order::Big => u16::from_be_bytes(m),
            Order::Little | Order::Invalid(_) => u16::from_le_bytes(m),
        };
        Ok(Header {
            class,
            order,
            machine,
        })
    }

    /// The architecture distrod calls the file's machine by (Debian's name): `amd64` or
    /// `arm64` for a little-endian x86-64 or AArch64 file (both are little-endian only),
    /// None for every other. The class is left to callers that need a 64-bit file.
    pub fn arch(&self) -> Option<&'static str> {
        if self.order != Order::Little {
            return None;
        }
        MACHINES
            .iter()
            .find(|(m, ..)| *m == self.machine)
            .map(|&(_, arch, _)| arch)
    }
}

/// The kernel's name (`uname -m`) of a machine distrod runs on, by e_machine; None for
/// every other.
pub fn machine_name(machine: u16) -> Option<&'static str> {
    MACHINES
        .iter()
        .find(|(m, ..)| *m == machine)
        .map(|&(_, _, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first [`LEN`] bytes of a header.
    fn header(class: u8, data: u8, machine: [u8; 2]) -> Vec<u8> {
        let mut h = vec![0u8; LEN];
        h[..4].copy_from_slice(&MAGIC);
        h[4] = class;
        h[5] = data;
        h[6] = 1;
        h[18..20].copy_from_slice(&machine);
        h
    }

    #[test]
    fn class_order_and_machine() {
        let h = Header::parse(&header(CLASS64, DATA_LE, EM_X86_64.to_le_bytes())).unwrap();
        assert_eq!(
            h,
            Header {
                class: Class::Elf64,
                order: Order::Little,
                machine: EM_X86_64
            }
        );
        let h = Header::parse(&header(CLASS32, DATA_BE, [0, 8])).unwrap();
        assert_eq!((h.class, h.order, h.machine), (Class::Elf32, Order::Big, 8));
        let h = Header::parse(&header(0, 3, [183, 0])).unwrap();
        assert_eq!(
            (h.class, h.order, h.machine),
            (Class::Invalid(0), Order::Invalid(3), 183)
        );
        // More bytes (a whole file) read the same.
        let mut file = header(CLASS64, DATA_LE, EM_AARCH64.to_le_bytes());
        file.resize(4096, 0xff);
        assert_eq!(Header::parse(&file).unwrap().machine, EM_AARCH64);
    }

    #[test]
    fn architectures_from_elf_headers() {
        let arch = |class, data, machine: u16| {
            Header::parse(&header(class, data, machine.to_le_bytes()))
                .unwrap()
                .arch()
        };
        assert_eq!(arch(CLASS64, DATA_LE, 62), Some("amd64"));
        assert_eq!(arch(CLASS64, DATA_LE, 183), Some("arm64"));
        assert_eq!(arch(CLASS64, DATA_LE, 3), None);
        // Only little-endian files: e_machine of a big-endian one means something else.
        assert_eq!(arch(CLASS64, DATA_BE, 62), None);
        let be = Header::parse(&header(CLASS64, DATA_BE, EM_AARCH64.to_be_bytes())).unwrap();
        assert_eq!((be.machine, be.arch()), (EM_AARCH64, None));
        assert_eq!(arch(CLASS64, 0, 62), None);
        assert_eq!(machine_name(EM_X86_64), Some("x86_64"));
        assert_eq!(machine_name(EM_AARCH64), Some("aarch64"));
        assert_eq!(machine_name(3), None);
    }

    #[test]
    fn what_is_not_an_elf_header() {
        let not = |script| Err(HeaderError::NotElf { script });
        assert_eq!(Header::parse(b""), not(false));
        assert_eq!(Header::parse(b"\x7fEL"), not(false));
        assert_eq!(Header::parse(b"MZ\x90\0"), not(false));
        assert_eq!(Header::parse(b"hello, world, not elf"), not(false));
        assert_eq!(Header::parse(b"#!"), not(true));
        assert_eq!(Header::parse(b"#!/bin/sh\necho distrod\n"), not(true));
        let h = header(CLASS64, DATA_LE, EM_X86_64.to_le_bytes());
        for n in 4..LEN {
            assert_eq!(Header::parse(&h[..n]), Err(HeaderError::Truncated), "{n}");
        }
        assert!(Header::parse(&h).is_ok());
    }
}
