//! The Windows build (`distrod.exe`, the installer) carries the static Linux `distrod` it
//! puts into every distro it installs. `DISTROD_LINUX_BINARY` names that file at build time
//! (scripts/build-windows.sh builds it first and sets it); it is checked to be a static
//! x86-64 or AArch64 ELF executable so a wrong file fails the build, not an install: by
//! distrod's own rule for its binaries, src/elf.rs, compiled here on its own.

use std::path::Path;

// Only the check of a whole binary is used here.
#[allow(dead_code)]
#[path = "src/elf.rs"]
mod elf;

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
    let len = bytes.len() as u64;
    if let Err(why) = elf::check_static_executable(&mut std::io::Cursor::new(bytes), len, None) {
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
