//! Where a root filesystem comes from, and the one streaming pass that fetches it:
//! the server's catalog (or a file or URL) → download with resume and cache → sha256 →
//! decompression → a consumer that reads the tar stream (`create` unpacks it, `pack` and
//! the Windows installer repack it). Shared by every command that needs an image; they
//! say what they want as an [`ImageRequest`] and watch it through a [`Progress`].

use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::image::catalog::{self, Catalog, ImageSpec};
use crate::image::decode::{self, Decoder};
use crate::image::http::{Http, HttpError};
use crate::image::server_url;
use crate::image::source::{self, Finished, Origin, Progress, Request, SourceError, Stream};
use crate::interrupt;

/// An image server, and the architecture to ask it for.
#[derive(Debug, Clone)]
pub struct Server {
    /// The server's (simplestreams) base URL.
    pub url: String,
    /// The architecture, in Debian's naming; `None`: this machine's.
    pub arch: Option<String>,
}

impl Server {
    /// The architecture asked for, in Debian's naming; this machine's by default.
    pub fn arch(&self) -> String {
        self.arch
            .clone()
            .unwrap_or_else(|| catalog::host_arch().to_string())
    }

    /// Reads the server's catalog: the stream index, then the products file it names.
    pub fn catalog(&self, http: &Http) -> anyhow::Result<Catalog> {
        const LIMIT: u64 = 256 * 1024 * 1024;
        let index_url = server_url(&self.url, "streams/v1/index.json");
        let index = http
            .get_bytes(&index_url, LIMIT)
            .with_context(|| format!("cannot read the image server's index at {}", self.url))?;
        let path =
            catalog::products_path(&index).with_context(|| format!("bad index at {index_url}"))?;
        let products_url = server_url(&self.url, &path);
        let products = http
            .get_bytes(&products_url, LIMIT)
            .with_context(|| format!("cannot read the image catalog of {}", self.url))?;
        Catalog::parse(&products).with_context(|| format!("bad image catalog at {products_url}"))
    }
}

/// The image a command wants: one of the server's (`spec`), or a file or URL (`image`).
#[derive(Debug, Clone)]
pub struct ImageRequest {
    /// An image of the server: distro[:release[:variant]].
    pub spec: Option<ImageSpec>,
    /// A local file or an http(s) URL, instead of an image of the server.
    pub image: Option<String>,
    /// The expected SHA-256 of `image`, lowercase hex (the server's images are verified
    /// against its catalog).
    pub sha256: Option<String>,
    /// The server to ask for `spec`, and the architecture.
    pub server: Server,
    /// The download cache directory; `None`: no cache.
    pub cache: Option<PathBuf>,
}

/// One thing to try: the newest build first, then older ones if a mirror lacks it.
pub struct Candidate {
    request: Request,
    label: String,
    build: String,
}

/// What to download for `req`, newest first, and one line naming the image for the user
/// (`debian bookworm (amd64, default)`, or the file or URL). A file or URL is a single
/// candidate; an image of the server is each of its builds, all to be verified against the
/// catalog's checksums. Fails when the catalog cannot be fetched or names no such image.
pub fn candidates(req: &ImageRequest, http: &Http) -> anyhow::Result<(String, Vec<Candidate>)> {
    let cache = req.cache.clone();
    if let Some(image) = &req.image {
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
                    sha256: req.sha256.clone(),
                    size: None,
                    cache: if is_url { cache } else { None },
                },
                build: label.clone(),
                label,
            }],
        ));
    }
    let spec = req.spec.as_ref().context("name an IMAGE or give --image")?;
    let catalog = req.server.catalog(http)?;
    let arch = req.server.arch();
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
                origin: Origin::Url(server_url(&req.server.url, &b.rootfs.path)),
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
/// (which reads the tar archive), telling `progress` how it goes.
pub fn fetch<T>(
    candidates: &[Candidate],
    http: &Http,
    progress: &Arc<dyn Progress>,
    consume: impl FnOnce(&mut Decoder<BufReader<Stream>>) -> anyhow::Result<T>,
) -> anyhow::Result<(Finished, T)> {
    for (i, c) in candidates.iter().enumerate() {
        match source::open(&c.request, http, Arc::clone(progress)) {
            Ok(stream) => {
                if c.label != c.request.origin.describe() {
                    let line = format!("Using {} ({})", c.label, c.request.origin.describe());
                    progress.status(&line);
                }
                return consume_stream(stream, consume);
            }
            Err(SourceError::Http(HttpError::NotFound { .. })) if i + 1 < candidates.len() => {
                progress.warn(&format!(
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
