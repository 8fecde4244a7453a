//! The Windows build (`distrod.exe`, the installer) carries the static Linux `distrod` it
//! puts into every distro it installs. `DISTROD_LINUX_BINARY` names that file at build time
//! (scripts/build-windows.sh builds it first and sets it); it is checked to be a static
//! x86-64 or AArch64 ELF executable so a wrong file fails the build, not an install.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-env-changed=DISTROD_LINUX_BINARY");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let Some(path) = std::env::var_os("DISTROD_LINUX_BINARY") else {
        fail(
            "DISTROD_LINUX_BINARY is not set: distrod.exe embeds the static Linux distrod; \
             build with scripts/build-windows.sh, or set it to the path of \
             `cargo build --release`'s binary",
        );
    };
    let path = Path::new(&path);
    println!("cargo::rerun-if-changed={}", path.display());
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => fail(&format!("DISTROD_LINUX_BINARY {}: {e}", path.display())),
    };
    if let Err(why) = check_elf(&bytes) {
        fail(&format!("DISTROD_LINUX_BINARY {}: {why}", path.display()));
    }
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    println!(
        "cargo::rustc-env=DISTROD_EMBEDDED_LINUX_BINARY={}",
        abs.display()
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// A 64-bit little-endian executable (ET_EXEC or ET_DYN) for x86-64 or AArch64, with no
/// PT_INTERP (static).
fn check_elf(b: &[u8]) -> Result<(), String> {
    if b.len() < 64 || &b[..4] != b"\x7fELF" {
        return Err("not an ELF file".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".into());
    }
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    if !matches!(u16_at(16), 2 | 3) {
        return Err("not an executable".into());
    }
    if !matches!(u16_at(18), 62 | 183) {
        return Err("not an x86-64 or AArch64 binary".into());
    }
    let (phoff, phentsize, phnum) = (
        u64_at(32) as usize,
        u16_at(54) as usize,
        u16_at(56) as usize,
    );
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > b.len() {
            return Err("truncated program headers".into());
        }
        if u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == 3 {
            return Err("dynamically linked (has an interpreter); build it static".into());
        }
    }
    Ok(())
}
