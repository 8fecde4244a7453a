//! `distrod pack` and the Windows installer's repacker: a tar stream copied by
//! `image::repack::repack` into a new tar with distrod added (through the tar-entry walker
//! it shares with the unpacker).
//!
//! The tar comes from outside: the image server's rootfs, or any file or URL given to
//! `--image`. Each input is repacked twice, as `pack` does (with a WSL configuration added,
//! which makes `etc` a watched directory) and as the installer does (without). What the
//! repacker writes must itself be a tar the same walker reads to its end, every member the
//! report counts present. Each input is also repacked with its header checksums repaired
//! (see [`crate::fixup`]).

use std::io::{self, Write};

use distrod::image::repack::{Extras, Report, repack, wsl_distribution_conf};

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
    let conf = wsl_distribution_conf("/opt/distrod/bin/distrod firstboot", "Distrod");
    for wsl_conf in [Some(conf), None] {
        let extras = Extras {
            distrod: b"\x7fELF distrod",
            windows_exe: Some(b"MZ distrod.exe"),
            wsl_conf,
        };
        let mut out = Capped::default();
        if let Ok(report) = repack(data, &mut out, &extras) {
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
