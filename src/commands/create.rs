//! `distrod create`: one streaming pass from the server (or a file) to a new root filesystem
//! directory: download → sha256 → decompress → safe unpack into a temporary sibling of the
//! destination, renamed into place only once the checksum is proven.

use std::process::ExitCode;

use crate::cli::CreateArgs;
#[cfg(target_os = "linux")]
use crate::cli::PackArgs;
use crate::ui::Ui;

#[cfg(unix)]
pub fn run(args: &CreateArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    unix::run(args, ui)
}

/// `distrod pack`: the same download pipeline, into a `.wsl` package instead of a tree.
#[cfg(target_os = "linux")]
pub fn pack(args: &PackArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    unix::pack(args, ui)
}

#[cfg(not(unix))]
pub fn run(_: &CreateArgs, _: &Ui) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`distrod create` unpacks a Linux root filesystem and runs on Linux only")
}

#[cfg(unix)]
mod unix {
    use std::io::{self, BufRead, BufReader};
    use std::process::ExitCode;
    use std::time::Instant;

    use anyhow::{Context, bail};

    use super::super::{arch, fetch_catalog};
    #[cfg(target_os = "linux")]
    use crate::cli::PackArgs;
    use crate::cli::{CreateArgs, ImageArgs};
    use crate::fsutil::{self, Staging};
    use crate::image::decode::{self, Decoder};
    use crate::image::http::{Http, HttpError};
    use crate::image::server_url;
    use crate::image::source::{self, Finished, Origin, Request, SourceError, Stream};
    use crate::image::unpack::{self, UnpackOptions};
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
        let (what, candidates) = candidates(&args.source, &http)?;
        interrupt::install();
        let staging = Staging::new(&args.dir)?;
        ui.status(format!("Creating {} from {what}", args.dir.display()));
        let started = Instant::now();
        let opts = UnpackOptions::for_current_user();
        let dir = staging.path().to_path_buf();
        let (finished, report) = fetch(&candidates, &http, ui, |decoder| {
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

    fn candidates(args: &ImageArgs, http: &Http) -> anyhow::Result<(String, Vec<Candidate>)> {
        let cache = if args.no_cache {
            None
        } else {
            args.cache.clone().or_else(source::default_cache_dir)
        };
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

    /// Opens the first candidate the server has, then streams it, decoded, into `consume`
    /// (which reads the tar archive).
    fn fetch<T>(
        candidates: &[Candidate],
        http: &Http,
        ui: &Ui,
        consume: impl FnOnce(&mut Decoder<BufReader<Stream>>) -> anyhow::Result<T>,
    ) -> anyhow::Result<(Finished, T)> {
        for (i, c) in candidates.iter().enumerate() {
            let bar = ui.bytes_bar(c.request.size, "Downloading");
            match source::open(&c.request, http, ui, bar) {
                Ok(stream) => {
                    if c.label != c.request.origin.describe() {
                        let line = format!("Using {} ({})", c.label, c.request.origin.describe());
                        stream.progress().suspend(|| ui.status(line));
                    }
                    return consume_stream(stream, consume);
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

    /// Decompresses and consumes, then proves the checksum. When consuming fails, the
    /// download's own verdict comes first: corrupt bytes show as a checksum mismatch, not
    /// as the decoder error they caused.
    fn consume_stream<T>(
        stream: Stream,
        consume: impl FnOnce(&mut Decoder<BufReader<Stream>>) -> anyhow::Result<T>,
    ) -> anyhow::Result<(Finished, T)> {
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
        let report = match consume(&mut decoder) {
            Ok(r) => r,
            Err(e) => return Err(verdict(decoder.into_inner().into_inner(), e)),
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

    #[cfg(target_os = "linux")]
    /// `distrod pack`: download and verify like `create`, and repack on the fly into a
    /// `.wsl` (gzip tar) with this binary at /opt/distrod/bin/distrod and an
    /// /etc/wsl-distribution.conf whose first-start command is `distrod firstboot`.
    /// Written beside `--out` and renamed into place once the checksum is proven.
    pub fn pack(args: &PackArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
        use crate::image::repack::{self, Extras};
        if args.out.exists() {
            bail!(
                "{} exists; choose another --out or remove it",
                args.out.display()
            );
        }
        let binary = std::fs::read("/proc/self/exe").context("cannot read the running distrod")?;
        let http = Http::from_env()?;
        let (what, candidates) = candidates(&args.source, &http)?;
        let name = match (&args.name, &args.source.spec) {
            (Some(n), _) => n.clone(),
            (None, Some(spec)) => default_name(&spec.distro),
            (None, None) => "Distrod".to_string(),
        };
        interrupt::install();
        ui.status(format!("Packing {} from {what}", args.out.display()));
        let started = Instant::now();
        let conf = repack::wsl_distribution_conf(
            &format!("{} firstboot", crate::linux::INSTALLED_BINARY),
            &name,
        );
        let extras = Extras {
            distrod: &binary,
            wsl_conf: Some(conf),
        };
        let tmp = fsutil::StagedFile::beside(&args.out)?;
        let (finished, report) = fetch(&candidates, &http, ui, |decoder| {
            let file = std::fs::File::create(tmp.path())
                .with_context(|| format!("cannot create {}", tmp.path().display()))?;
            let gz = flate2::write::GzEncoder::new(
                io::BufWriter::with_capacity(256 * 1024, file),
                flate2::Compression::default(),
            );
            let mut gz = gz;
            let report = repack::repack(decoder, &mut gz, &extras)?;
            let file = gz
                .finish()
                .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
                .context("cannot write the package")?;
            file.sync_all().context("cannot write the package")?;
            Ok(report)
        })?;
        let out = tmp.commit()?;
        ui.status(format!(
            "Wrote {}: {} entries (sha256 of the image {}{}) in {:.1}s; install it on Windows \
             with `wsl --install --from-file {}`",
            out.display(),
            report.entries,
            &finished.sha256[..16],
            if finished.from_cache {
                ", from the cache"
            } else {
                ""
            },
            started.elapsed().as_secs_f64(),
            out.file_name().unwrap_or_default().to_string_lossy()
        ));
        Ok(ExitCode::SUCCESS)
    }

    /// "debian" -> "Debian".
    #[cfg(target_os = "linux")]
    fn default_name(distro: &str) -> String {
        let mut c = distro.chars();
        match c.next() {
            Some(f) => f.to_uppercase().chain(c).collect(),
            None => "Distrod".into(),
        }
    }
}
