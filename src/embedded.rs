//! The static Linux `distrod` that goes into the distros distrod makes (`pack`, and the
//! Windows installer). On Linux it is the running binary itself; `distrod.exe` carries it,
//! embedded at build time (see build.rs).

use std::borrow::Cow;

/// The binary's bytes.
pub fn linux_distrod() -> anyhow::Result<Cow<'static, [u8]>> {
    #[cfg(windows)]
    {
        Ok(Cow::Borrowed(include_bytes!(env!(
            "DISTROD_EMBEDDED_LINUX_BINARY"
        ))))
    }
    #[cfg(target_os = "linux")]
    {
        use anyhow::Context;
        let bytes = std::fs::read("/proc/self/exe").context("cannot read the running distrod")?;
        Ok(Cow::Owned(bytes))
    }
    #[cfg(not(any(windows, target_os = "linux")))]
    {
        anyhow::bail!("this build of distrod carries no Linux binary")
    }
}

/// distrod.exe itself, for the distros it makes (the port proxy runs it through interop);
/// none elsewhere.
pub fn windows_exe() -> anyhow::Result<Option<Vec<u8>>> {
    #[cfg(windows)]
    {
        use anyhow::Context;
        let path = std::env::current_exe().context("cannot find the running distrod.exe")?;
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Some(bytes))
    }
    #[cfg(not(windows))]
    {
        Ok(None)
    }
}

/// The image architecture (Debian's naming) an ELF binary runs on, from its header
/// ([`crate::elf`], the reader `distrod update` uses too); None when it is not an x86-64
/// or AArch64 binary.
pub fn elf_arch(binary: &[u8]) -> Option<&'static str> {
    crate::elf::Header::parse(binary).ok()?.arch()
}

/// Refuses to put a binary into an image of another architecture.
pub fn check_arch(binary: &[u8], image_arch: &str) -> anyhow::Result<()> {
    let Some(arch) = elf_arch(binary) else {
        anyhow::bail!(
            "the Linux distrod this build carries is not an x86-64 or AArch64 ELF binary"
        );
    };
    let image_arch = crate::image::catalog::debian_arch(image_arch);
    if arch != image_arch {
        anyhow::bail!(
            "this distrod carries an {arch} Linux binary, which cannot run in an {image_arch} image; \
             choose --arch {arch}"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header parsing itself is tested with the reader, in [`crate::elf`].
    #[test]
    fn architectures_from_elf_headers() {
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[18] = 62;
        assert!(check_arch(&h, "amd64").is_ok());
        assert!(check_arch(&h, "x86_64").is_ok());
        let e = check_arch(&h, "arm64").unwrap_err().to_string();
        assert!(e.contains("amd64") && e.contains("arm64"), "{e}");
        h[18] = 183;
        assert!(check_arch(&h, "arm64").is_ok());
        h[18] = 3;
        let e = check_arch(&h, "amd64").unwrap_err().to_string();
        assert!(e.contains("not an x86-64 or AArch64 ELF binary"), "{e}");
        let e = check_arch(b"MZ\x90\0", "amd64").unwrap_err().to_string();
        assert!(e.contains("not an x86-64 or AArch64 ELF binary"), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_running_binary_is_the_linux_distrod() {
        let bin = linux_distrod().unwrap();
        assert_eq!(elf_arch(&bin), Some(crate::image::catalog::host_arch()));
    }
}
