//! `distrod create`: one streaming pass from the server (or a file) to a new root filesystem
//! directory: download → sha256 → decompress → safe unpack into a temporary sibling of the
//! destination, renamed into place only once the checksum is proven.

use std::process::ExitCode;

use crate::cli::CreateArgs;
use crate::ui::Ui;

#[cfg(unix)]
pub fn run(args: &CreateArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    unix::run(args, ui)
}

#[cfg(not(unix))]
pub fn run(_: &CreateArgs, _: &Ui) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`distrod create` unpacks a Linux root filesystem and runs on Linux only")
}

#[cfg(unix)]
mod unix {
    use std::io::{self, BufRead, BufReader};
    use std::path::Path;
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::{Context, bail};

    use super::super::{arch, fetch_catalog};
    use crate::cli::CreateArgs;
    use crate::fsutil::{self, Staging};
    use crate::image::decode::{self, Decoder};
    use crate::image::http::{Http, HttpError};
    use crate::image::server_url;
    use crate::image::source::{self, Finished, Origin, Request, SourceError, Stream};
    use crate::image::unpack::{self, UnpackOptions, UnpackReport};
    use crate::interrupt;
    use crate::ui::{Ui, human_bytes};

    /// One thing to try: the newest build first, then older ones if a mirror lacks it.
    struct Candidate {
        request: Request,
        label: String,
        build: String,
    }

    pub fn run(args: &CreateArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
        // Before any download: a destination in use is refused untouched.
        fsutil::check_destination(&args.dir)?;
        let http = Http::from_env()?;
        let cache = if args.no_cache {
            None
        } else {
            args.cache.clone().or_else(source::default_cache_dir)
        };
        let (what, candidates) = candidates(args, &http, cache)?;
        interrupt::install();
        let staging = Staging::new(&args.dir)?;
        ui.status(format!("Creating {} from {what}", args.dir.display()));
        let started = Instant::now();
        let (finished, report) = fetch_and_unpack(&candidates, &http, ui, staging.path())?;
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

    fn candidates(
        args: &CreateArgs,
        http: &Http,
        cache: Option<std::path::PathBuf>,
    ) -> anyhow::Result<(String, Vec<Candidate>)> {
        if let Some(image) = &args.image {
            let origin = Origin::parse(image);
            if let Origin::File(p) = &origin
                && !p.is_file()
            {
                bail!("{} is not a file", p.display());
            }
            let is_url = matches!(origin, Origin::Url(_));
            let label = origin.describe();
            return Ok((
                label.clone(),
                vec![Candidate {
                    request: Request {
                        origin,
                        sha256: args.sha256.clone(),
                        size: None,
                        cache: if is_url { cache } else { None },
                    },
                    build: label.clone(),
                    label,
                }],
            ));
        }
        let spec = args
            .spec
            .as_ref()
            .context("name an IMAGE or give --image")?;
        let catalog = fetch_catalog(http, &args.server)?;
        let arch = arch(&args.server);
        let product = catalog.select(spec, &arch)?;
        let what = format!(
            "{} {} ({}, {})",
            product.distro, product.release_title, product.arch, product.variant
        );
        let list = product
            .builds
            .iter()
            .map(|b| Candidate {
                request: Request {
                    origin: Origin::Url(server_url(&args.server.server, &b.rootfs.path)),
                    sha256: b.rootfs.sha256.clone(),
                    size: b.rootfs.size,
                    cache: cache.clone(),
                },
                label: format!("build {} of {}", b.version, product.key()),
                build: b.version.clone(),
            })
            .collect();
        Ok((what, list))
    }

    /// Opens the first candidate the server has, then streams it into `dir`.
    fn fetch_and_unpack(
        candidates: &[Candidate],
        http: &Http,
        ui: &Ui,
        dir: &Path,
    ) -> anyhow::Result<(Finished, UnpackReport)> {
        for (i, c) in candidates.iter().enumerate() {
            let bar = ui.bytes_bar(c.request.size, "Downloading");
            match source::open(&c.request, http, ui, bar) {
                Ok(stream) => {
                    if c.label != c.request.origin.describe() {
                        let line = format!("Using {} ({})", c.label, c.request.origin.describe());
                        stream.progress().suspend(|| ui.status(line));
                    }
                    return unpack_stream(stream, dir);
                }
                Err(SourceError::Http(HttpError::NotFound { .. })) if i + 1 < candidates.len() => {
                    ui.warn(format!(
                        "{} is not on the server (HTTP 404; the mirror may not have synced it yet); falling back to {}",
                        c.label,
                        candidates[i + 1].build
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        }
        bail!("no build of the image could be downloaded")
    }

    /// Decompresses and unpacks, then proves the checksum. When unpacking fails, the
    /// download's own verdict comes first: corrupt bytes show as a checksum mismatch, not
    /// as the decoder error they caused.
    fn unpack_stream(stream: Stream, dir: &Path) -> anyhow::Result<(Finished, UnpackReport)> {
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let head_ok = reader.fill_buf().map(|_| ());
        let format = match head_ok {
            Ok(()) => decode::sniff(reader.buffer()),
            Err(e) => Err(e.into()),
        };
        let format = match format {
            Ok(f) => f,
            Err(e) => return Err(verdict(reader.into_inner(), e.into())),
        };
        let mut decoder = Decoder::with_format(reader, format)?;
        let opts = UnpackOptions::for_current_user();
        let report = match unpack::unpack(&mut decoder, dir, &opts) {
            Ok(r) => r,
            Err(e) => {
                let e = anyhow::Error::new(e).context("cannot unpack the image");
                return Err(verdict(decoder.into_inner().into_inner(), e));
            }
        };
        // Past tar's end-of-archive marker: let the decoder see its stream end, so its own
        // integrity checks run too.
        if let Err(e) = io::copy(&mut decoder, &mut io::sink()) {
            let e = anyhow::Error::new(e).context("the image is corrupt after its tar archive");
            return Err(verdict(decoder.into_inner().into_inner(), e));
        }
        let finished = decoder.into_inner().into_inner().finish()?;
        Ok((finished, report))
    }

    /// The error to show after the consumer failed with `e`.
    fn verdict(stream: Stream, e: anyhow::Error) -> anyhow::Error {
        let source = if interrupt::requested() {
            stream.abort()
        } else {
            stream.finish().err()
        };
        match source {
            Some(SourceError::Abandoned) | None => e,
            Some(s) => s.into(),
        }
    }
}
