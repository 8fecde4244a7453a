//! `distrod pack` and the Windows installer's repacker: a tar stream copied by
//! `image::repack::repack` into a new tar with distrod added (through the tar-entry walker
//! it shares with the unpacker).
//!
//! The tar comes from outside: the image server's rootfs, or any file or URL given to
//! `--image`. Each input is repacked twice, as `pack` does (a `.wsl` package: its
//! /etc/passwd and /etc/login.defs read for the first user's uid, a WSL configuration and a
//! first-start script added, `etc` and `usr/lib/wsl` watched) and as the installer does
//! (without). What the
//! repacker writes must itself be a tar the same walker reads to its end, every member the
//! report counts present. Each input is also repacked with its header checksums repaired
//! (see [`crate::fixup`]).

use std::io::{self, Write};

use distrod::image::repack::{Extras, Report, WslPackage, repack};

/// Output kept for the read-back check; beyond it only counted (a large sparse file is
/// written out in full, which is what `pack` does, not a reason to hold it in memory).
const KEEP: usize = 64 << 20;

pub fn run(data: &[u8]) {
    repack_checked(data);
    if let Some(fixed) = crate::fixup::tar(data) {
        repack_checked(&fixed);
    }
}

fn repack_checked(data: &[u8]) {
    let package = WslPackage {
        default_name: "Distrod".into(),
        enable: true,
    };
    for wsl_package in [Some(package), None] {
        let is_package = wsl_package.is_some();
        let extras = Extras {
            distrod: b"\x7fELF distrod",
            windows_exe: Some(b"MZ distrod.exe"),
            wsl_package,
        };
        let mut out = Capped::default();
        if let Ok(report) = repack(data, &mut out, &extras) {
            assert_eq!(
                report.default_uid.is_some(),
                is_package,
                "a package chooses its first user's uid, nothing else does"
            );
            check_output(&out, &report);
        }
    }
}

/// The first [`KEEP`] bytes written, and how many there were in all.
#[derive(Default)]
struct Capped {
    kept: Vec<u8>,
    total: u64,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = KEEP.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..room.min(buf.len())]);
        self.total += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn check_output(out: &Capped, report: &Report) {
    assert_eq!(
        out.total, report.bytes,
        "the report's size differs from what was written"
    );
    if out.total > KEEP as u64 {
        return;
    }
    let mut archive = tar::Archive::new(out.kept.as_slice());
    let mut members = 0u64;
    let walked = distrod::image::for_each_entry(
        &mut archive,
        |at, e| format!("{at}: {e}"),
        |entry, _name| {
            let kind = entry.header().entry_type();
            if !kind.is_pax_global_extensions() {
                members += 1;
            }
            io::copy(entry, &mut io::sink()).map_err(|e| e.to_string())?;
            Ok(())
        },
    );
    if let Err(e) = walked {
        panic!("the repacked archive cannot be read back: {e}");
    }
    assert_eq!(
        members, report.entries,
        "the repacked archive holds another number of members than the report says"
    );
}
