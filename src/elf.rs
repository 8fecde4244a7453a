//! The ELF headers (elf(5)) of a binary distrod is handed: class, byte order and machine,
//! which say whether a binary can run on a machine at all, and the rest of the rule for a
//! distrod binary ([`check_static_executable`]): a static, 64-bit, little-endian executable
//! whose contents are all there. `distrod update` reads them from the file it is handed,
//! before anything runs it, `pack` and the Windows installer from the Linux binary they
//! put into an image, and the Windows build (build.rs) from the Linux binary it embeds:
//! one reader, so that all read the same bytes the same way. No file system access (only
//! what it is handed to read) and nothing of the rest of distrod: it runs on Windows too,
//! and build.rs compiles it on its own.
//!
//! What it promises for any input: `Ok` only for at least [`LEN`] bytes starting with
//! [`MAGIC`]; [`HeaderError::NotElf`] exactly when the magic is missing (`script` exactly
//! when the bytes start with `#!`), [`HeaderError::Truncated`] when it is there but the
//! bytes are fewer; [`Header::arch`] names a little-endian file only.

use std::io::{self, Read, Seek, SeekFrom};

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

// What [`check_static_executable`] reads past the start of the header (elf(5)): e_type of
// an executable and of a position-independent one; p_type of a loadable segment and of
// the program interpreter's path; the sizes of a 64-bit ELF header, program header and
// section header.
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
const EHDR64_LEN: usize = 64;
const PHDR64_LEN: usize = 56;
const SHDR64_LEN: u64 = 64;

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

/// Checks that the file of `len` bytes read through `f` is a distrod binary: a static,
/// 64-bit, little-endian ELF executable for `machine` (None: for any machine distrod runs
/// on), with program headers, no PT_INTERP, and every segment and section inside the file.
/// The error is the reason, for one line.
pub fn check_static_executable(
    f: &mut (impl Read + Seek),
    len: u64,
    machine: Option<u16>,
) -> Result<(), String> {
    let io_err = |e: io::Error| format!("cannot read it: {e}");
    let h = read_at(f, 0, EHDR64_LEN).map_err(io_err)?;
    let header = match Header::parse(&h) {
        Ok(header) if h.len() >= EHDR64_LEN => header,
        Err(HeaderError::NotElf { script: true }) => {
            return Err(
                "not an ELF file but a script: the distrod release is a static binary".into(),
            );
        }
        Err(HeaderError::NotElf { script: false }) => {
            return Err("not an ELF file: the distrod release is a static binary".into());
        }
        Ok(_) | Err(HeaderError::Truncated) => {
            return Err(format!(
                "truncated: {len} bytes, too short for an ELF header"
            ));
        }
    };
    if header.class != Class::Elf64 {
        return Err("a 32-bit ELF file; distrod is a 64-bit program".into());
    }
    if header.order != Order::Little {
        return Err("a big-endian ELF file; distrod's machines are little-endian".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap());
    let found = header.machine;
    match machine {
        Some(want) if found != want => {
            let name = |m: u16| machine_name(m).unwrap_or("another machine");
            return Err(format!(
                "built for {} (ELF machine {found}), but this system is {} (ELF machine {want})",
                name(found),
                name(want),
            ));
        }
        None if header.arch().is_none() => {
            return Err("not an x86-64 or AArch64 binary".into());
        }
        _ => {}
    }
    match u16_at(16) {
        ET_EXEC | ET_DYN => {}
        1 => return Err("a relocatable object file, not an executable".into()),
        4 => return Err("a core dump, not an executable".into()),
        t => return Err(format!("not an executable (ELF type {t})")),
    }
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54) as usize, u16_at(56) as usize);
    let (shoff, shentsize, shnum) = (u64_at(40), u16_at(58) as u64, u16_at(60) as u64);
    if phnum == 0 || phentsize < PHDR64_LEN {
        return Err("no program headers: not an executable".into());
    }
    let ph_end = phoff.saturating_add((phentsize * phnum) as u64);
    if ph_end > len {
        return Err(format!(
            "truncated: {len} bytes, but its program headers end at byte {ph_end}"
        ));
    }
    let ph = read_at(f, phoff, phentsize * phnum).map_err(io_err)?;
    let mut end = 0u64;
    for e in ph.chunks_exact(phentsize) {
        let p_type = u32::from_le_bytes(e[0..4].try_into().unwrap());
        let p_offset = u64::from_le_bytes(e[8..16].try_into().unwrap());
        let p_filesz = u64::from_le_bytes(e[32..40].try_into().unwrap());
        if p_type == PT_INTERP {
            let interp = read_at(f, p_offset, p_filesz.min(256) as usize).unwrap_or_default();
            let interp = String::from_utf8_lossy(&interp);
            return Err(format!(
                "dynamically linked (interpreter {}): the distrod release is a static binary",
                interp.trim_end_matches('\0')
            ));
        }
        if p_type == PT_LOAD {
            end = end.max(p_offset.saturating_add(p_filesz));
        }
    }
    if shoff != 0 {
        end = end.max(shoff.saturating_add(shentsize.max(SHDR64_LEN) * shnum));
    }
    if end > len {
        return Err(format!(
            "truncated: {len} bytes, but its contents reach byte {end}"
        ));
    }
    Ok(())
}

/// Up to `n` bytes at `offset` (fewer at the end of the file).
fn read_at(f: &mut (impl Read + Seek), offset: u64, n: usize) -> io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(n);
    f.by_ref().take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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

    /// A minimal 64-bit little-endian ELF: header, `phdrs` program headers right after it,
    /// then `body` bytes.
    fn file(machine: u16, e_type: u16, phdrs: &[(u32, u64, u64)], body: usize) -> Vec<u8> {
        let mut h = vec![0u8; EHDR64_LEN];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = CLASS64;
        h[5] = DATA_LE;
        h[6] = 1;
        h[16..18].copy_from_slice(&e_type.to_le_bytes());
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[32..40].copy_from_slice(&(EHDR64_LEN as u64).to_le_bytes());
        h[54..56].copy_from_slice(&(PHDR64_LEN as u16).to_le_bytes());
        h[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for &(t, off, size) in phdrs {
            let mut p = vec![0u8; PHDR64_LEN];
            p[0..4].copy_from_slice(&t.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[32..40].copy_from_slice(&size.to_le_bytes());
            h.extend(p);
        }
        h.resize(h.len() + body, 0);
        h
    }

    /// The check of a binary for x86-64.
    fn check(bytes: &[u8]) -> Result<(), String> {
        check_static_executable(&mut Cursor::new(bytes), bytes.len() as u64, Some(EM_X86_64))
    }

    #[test]
    fn static_executable_checks() {
        let m = EM_X86_64;
        assert_eq!(check(&file(m, ET_DYN, &[(PT_LOAD, 0, 1000)], 1000)), Ok(()));
        assert_eq!(check(&file(m, ET_EXEC, &[(PT_LOAD, 0, 200)], 100)), Ok(()));

        let err = |bytes: &[u8]| check(bytes).unwrap_err();
        assert!(err(b"#!/bin/sh\necho distrod\n").contains("a script"));
        assert!(err(b"hello").starts_with("not an ELF file"));
        assert!(err(b"").starts_with("not an ELF file"));
        assert!(err(b"\x7fELF\x02\x01").contains("too short for an ELF header"));
        let mut b32 = file(m, ET_DYN, &[(PT_LOAD, 0, 100)], 0);
        b32[4] = 1;
        assert!(err(&b32).contains("32-bit"));
        let mut be = file(m, ET_DYN, &[(PT_LOAD, 0, 100)], 0);
        be[5] = 2;
        assert!(err(&be).contains("big-endian"));
        let other = if m == 62 { 183 } else { 62 };
        let e = err(&file(other, ET_DYN, &[(PT_LOAD, 0, 100)], 0));
        assert!(
            e.starts_with("built for ") && e.contains(&format!("ELF machine {other}")),
            "{e}"
        );
        assert!(err(&file(m, 1, &[(PT_LOAD, 0, 100)], 0)).contains("relocatable"));
        assert!(err(&file(m, ET_DYN, &[], 100)).contains("no program headers"));

        let mut dynamic = file(m, ET_DYN, &[(PT_INTERP, 176, 12), (1, 0, 188)], 0);
        dynamic.extend(b"/lib/ld.so\0\0");
        let e = err(&dynamic);
        assert!(
            e.contains("dynamically linked (interpreter /lib/ld.so)"),
            "{e}"
        );

        let whole = file(m, ET_DYN, &[(PT_LOAD, 0, 5000)], 5000);
        let e = err(&whole[..3000]);
        assert!(e.starts_with("truncated: 3000 bytes"), "{e}");
        let e = err(&whole[..100]);
        assert!(e.contains("program headers end"), "{e}");

        // For any machine distrod runs on (build.rs): both, and no other.
        let any = |bytes: &[u8]| {
            check_static_executable(&mut Cursor::new(bytes), bytes.len() as u64, None)
        };
        let ok = |machine| file(machine, ET_DYN, &[(PT_LOAD, 0, 100)], 0);
        assert_eq!(any(&ok(EM_X86_64)), Ok(()));
        assert_eq!(any(&ok(EM_AARCH64)), Ok(()));
        assert_eq!(any(&ok(3)), Err("not an x86-64 or AArch64 binary".into()));
    }
}
