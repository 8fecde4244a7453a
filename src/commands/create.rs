//! `distrod create`: one streaming pass from the server (or a file) to a new root filesystem
//! directory: download → sha256 → decompress → safe unpack into a temporary sibling of the
//! destination, renamed into place only once the checksum is proven.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::cli::CreateArgs;
use crate::fsutil::{self, Staging};
use crate::image::fetch::{ImageRequest, candidates, fetch};
use crate::image::http::Http;
use crate::image::unpack::{self, UnpackOptions};
use crate::interrupt;
use crate::ui::{Ui, human_bytes};

pub fn run(args: &CreateArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    // Before any download: a destination in use is refused untouched.
    fsutil::check_destination(&args.dir)?;
    let http = Http::from_env()?;
    let (what, candidates) = candidates(&ImageRequest::from(&args.source), &http)?;
    interrupt::install();
    let staging = Staging::new(&args.dir)?;
    ui.status(format!("Creating {} from {what}", args.dir.display()));
    let started = Instant::now();
    let opts = UnpackOptions::for_current_user();
    let dir = staging.path().to_path_buf();
    let (finished, report) = fetch(&candidates, &http, &ui.download(), |decoder| {
        unpack::unpack(decoder, &dir, &opts).context("cannot unpack the image")
    })?;
    let dest = staging.commit()?;
    if report.skipped_devices > 0 {
        ui.warn(format!(
            "skipped {} device node(s): only root can create them (the container gets its own /dev)",
            report.skipped_devices
        ));
    }
    if report.xattr_failures > 0 {
        ui.warn(format!(
            "{} extended attribute(s) could not be set (file system or permissions)",
            report.xattr_failures
        ));
    }
    if !report.skipped_other.is_empty() {
        ui.warn(format!(
            "skipped {} entr(ies) of unsupported kinds: {}",
            report.skipped_other.len(),
            report.skipped_other.join(", ")
        ));
    }
    ui.status(format!(
        "Created {}: {} entries, {} unpacked from {} (sha256 {}{}) in {:.1}s",
        dest.display(),
        report.entries,
        human_bytes(report.bytes),
        human_bytes(finished.bytes),
        &finished.sha256[..16],
        if finished.from_cache {
            ", from the cache"
        } else {
            ""
        },
        started.elapsed().as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}
