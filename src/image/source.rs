//! Where an image's bytes come from, and the proof they are the right ones.
//!
//! [`open`] starts a reader thread that produces the raw (still compressed) bytes of a local
//! file or a URL, hashes them with SHA-256 as they pass, shows progress, and with a download
//! cache appends what arrives to `<cache>/<key>.part` so an interrupted download resumes
//! with a `Range` request next time. The consumer (decoder and unpacker) reads them through
//! [`Stream`] while the next chunks download: network, decompression and disk writes overlap.
//!
//! Cache layout: `<key>` is the expected sha256 when known, else the sha256 of the URL.
//! `<key>.part` is an unverified prefix; `<key>` is a complete, verified file (kept only when
//! the expected sha256 was known) that later runs use without touching the network. A
//! mismatch deletes the cached bytes, so the next run starts clean.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use sha2::{Digest, Sha256};

use super::http::{Body, Http, HttpError, into_http_error};
use crate::fsutil::{self, Durability};
use crate::interrupt;

const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the reader thread and the consumer: bounds memory at 4 MiB.
const IN_FLIGHT: usize = 16;

/// Where an image's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A local file.
    File(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl Origin {
    /// `http://` and `https://` are URLs; anything else is a path.
    pub fn parse(s: &str) -> Origin {
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            Origin::Url(s.to_string())
        } else {
            Origin::File(PathBuf::from(s))
        }
    }

    /// The path or URL, as messages show it.
    pub fn describe(&self) -> String {
        match self {
            Origin::File(p) => p.display().to_string(),
            Origin::Url(u) => u.clone(),
        }
    }
}

/// What [`open`] reads, and what the bytes must prove.
#[derive(Debug, Clone)]
pub struct Request {
    /// The file or URL.
    pub origin: Origin,
    /// Expected sha256, lowercase hex.
    pub sha256: Option<String>,
    /// Expected size in bytes (from the catalog).
    pub size: Option<u64>,
    /// The download cache directory, if caching.
    pub cache: Option<PathBuf>,
}

/// What a download tells the person waiting for it, as it happens: distrod's commands draw
/// it as a progress bar and lines on stderr. Called from the reader thread too, hence `Sync`.
pub trait Progress: Send + Sync {
    /// A download starts (again, after a fallback), of `total` bytes when the catalog says:
    /// a fresh display, shown until [`Progress::finish`].
    fn start(&self, total: Option<u64>);
    /// The download's size, once known (from the file or the server).
    fn total(&self, bytes: u64);
    /// How many bytes have been read so far.
    fn position(&self, bytes: u64);
    /// The download is over (read to the end, failed or abandoned): its display goes.
    fn finish(&self);
    /// A cached partial download resumes after its first `bytes`.
    fn resumed(&self, bytes: u64);
    /// A line about what is happening, shown around the display.
    fn status(&self, line: &str);
    /// Something the user should know.
    fn warn(&self, line: &str);
}

/// Shows nothing: for callers with no one watching.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: Option<u64>) {}
    fn total(&self, _: u64) {}
    fn position(&self, _: u64) {}
    fn finish(&self) {}
    fn resumed(&self, _: u64) {}
    fn status(&self, _: &str) {}
    fn warn(&self, _: &str) {}
}

/// Why an image's bytes cannot be had, or cannot be trusted.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The bytes' SHA-256 is not the expected one (the cached bytes are deleted).
    #[error("checksum mismatch for {what}: expected {expected}, calculated {calculated}")]
    Mismatch {
        /// The file or URL.
        what: String,
        /// The SHA-256 expected, from the catalog or `--sha256`.
        expected: String,
        /// The SHA-256 of what was read.
        calculated: String,
    },
    /// The download failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// A local file, or a complete file of the cache, cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The download cache cannot be created, read or written.
    #[error("cannot use the download cache at {path}: {source}")]
    Cache {
        /// The cache directory or file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// The consumer stopped reading (it failed first; its error is the one to show).
    #[error("the reader stopped")]
    Abandoned,
}

/// What a source read to the end proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// The SHA-256 of every byte read, lower-case hexadecimal (checked against the expected
    /// one when there was one).
    pub sha256: String,
    /// How many bytes: the size of the (still compressed) file.
    pub bytes: u64,
    /// True when the bytes came from a complete file in the cache.
    pub from_cache: bool,
}

enum Msg {
    Data(Vec<u8>),
    End,
    Failed,
}

/// The raw bytes, in order. Read it to the end, then call [`Stream::finish`] for the verdict.
pub struct Stream {
    rx: Option<Receiver<Msg>>,
    buf: Vec<u8>,
    pos: usize,
    ended: bool,
    worker: Option<JoinHandle<Result<Finished, SourceError>>>,
}

impl Read for Stream {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(n) = super::take_buffered(&self.buf, &mut self.pos, out) {
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            if interrupt::requested() {
                return Err(io::Error::other("interrupted"));
            }
            let rx = self.rx.as_ref().expect("stream used after finish");
            match rx.recv() {
                Ok(Msg::Data(v)) => {
                    self.buf = v;
                    self.pos = 0;
                }
                Ok(Msg::End) => self.ended = true,
                // The worker's own error is the one to report; `finish`/`abort` return it.
                Ok(Msg::Failed) | Err(_) => return Err(io::Error::other("the download failed")),
            }
        }
    }
}

impl Stream {
    /// Drains what is left (trailing bytes after the archive still count for the hash) and
    /// returns the worker's verdict: the digest, or why the bytes are not to be trusted.
    pub fn finish(mut self) -> Result<Finished, SourceError> {
        let mut sink = [0u8; 64 * 1024];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        self.join()
    }

    /// Stops the worker after the consumer failed; returns the worker's error if it had one
    /// (then it is the cause to show, e.g. a network failure under a decoder error).
    pub fn abort(mut self) -> Option<SourceError> {
        match self.join() {
            Err(SourceError::Abandoned) | Ok(_) => None,
            Err(e) => Some(e),
        }
    }

    fn join(&mut self) -> Result<Finished, SourceError> {
        // Dropping the receiver unblocks a worker waiting to send.
        self.rx = None;
        match self.worker.take().map(|w| w.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(SourceError::Abandoned),
            None => Err(SourceError::Abandoned),
        }
    }
}

/// The SHA-256 of `data`, lower-case hexadecimal as the catalog and `--sha256` write it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the worker reads: a file, or a cache prefix followed by the network.
enum Input {
    File {
        file: File,
        path: PathBuf,
        /// A complete cache file: delete it if it turns out corrupt.
        cached: bool,
    },
    Remote {
        url: String,
        part: Option<(File, PathBuf, u64)>,
        done: Option<PathBuf>,
        body: Box<Body>,
    },
}

/// Opens the source, its display started on `progress` (and finished when it fails). For a
/// URL the first request is made here, so a 404 (a stale mirror) is returned before any byte
/// is produced and the caller can fall back to an older build.
pub fn open(
    req: &Request,
    http: &Http,
    progress: Arc<dyn Progress>,
) -> Result<Stream, SourceError> {
    progress.start(req.size);
    let input = match open_input(req, http, &*progress) {
        Ok(input) => input,
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let expected = req.sha256.clone();
    let size = req.size;
    let worker = thread::Builder::new()
        .name("download".into())
        .spawn(move || {
            let r = run(input, expected, size, &tx, &*progress);
            progress.finish();
            let _ = tx.send(if r.is_ok() { Msg::End } else { Msg::Failed });
            r
        })
        .expect("spawn download thread");
    Ok(Stream {
        rx: Some(rx),
        buf: Vec::new(),
        pos: 0,
        ended: false,
        worker: Some(worker),
    })
}

fn open_input(req: &Request, http: &Http, progress: &dyn Progress) -> Result<Input, SourceError> {
    Ok(match &req.origin {
        Origin::File(path) => Input::File {
            file: File::open(path).map_err(|source| SourceError::Read {
                path: path.clone(),
                source,
            })?,
            path: path.clone(),
            cached: false,
        },
        Origin::Url(url) => open_remote(req, url, http, progress)?,
    })
}

fn open_remote(
    req: &Request,
    url: &str,
    http: &Http,
    progress: &dyn Progress,
) -> Result<Input, SourceError> {
    let Some(dir) = &req.cache else {
        let opened = http.open(url, 0)?;
        return Ok(Input::Remote {
            url: url.into(),
            part: None,
            done: None,
            body: Box::new(Body::new(http.clone(), url, req.size, opened, 0)),
        });
    };
    let cache_err = |source| SourceError::Cache {
        path: dir.clone(),
        source,
    };
    let key = req
        .sha256
        .clone()
        .unwrap_or_else(|| sha256_hex(url.as_bytes()));
    let done = dir.join(&key);
    if req.sha256.is_some() && done.is_file() {
        tracing::debug!(path = %done.display(), "using the cached download");
        return Ok(Input::File {
            file: File::open(&done).map_err(cache_err)?,
            path: done,
            cached: true,
        });
    }
    fs::create_dir_all(dir).map_err(cache_err)?;
    let part_path = dir.join(format!("{key}.part"));
    let mut part = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&part_path)
        .map_err(cache_err)?;
    if !lock_exclusive(&part) {
        // Another distrod is downloading the same image into the cache: appending to the
        // same file would corrupt both, so this one goes without the cache.
        progress.warn(&format!(
            "{} is being downloaded by another distrod; downloading without the cache",
            url
        ));
        let mut uncached = req.clone();
        uncached.cache = None;
        return open_remote(&uncached, url, http, progress);
    }
    let mut have = part.metadata().map_err(cache_err)?.len();
    let opened = http.open(url, have)?;
    if opened.start != have {
        // The server ignored the range (200) or refused it (416): start clean.
        if have > 0 {
            progress.status(&format!(
                "The server did not resume the download; starting it again ({}).",
                url
            ));
        }
        part.set_len(0).map_err(cache_err)?;
        have = 0;
    } else if have > 0 {
        progress.resumed(have);
    }
    part.seek(SeekFrom::Start(0)).map_err(cache_err)?;
    let body = Body::new(http.clone(), url, req.size, opened, have);
    Ok(Input::Remote {
        url: url.into(),
        part: Some((part, part_path, have)),
        done: req.sha256.is_some().then_some(done),
        body: Box::new(body),
    })
}

/// `flock(LOCK_EX|LOCK_NB)`; released when the file is closed.
#[cfg(unix)]
fn lock_exclusive(f: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor; flock(2) has no memory effects.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn lock_exclusive(_: &File) -> bool {
    true
}

fn send(tx: &SyncSender<Msg>, data: Vec<u8>) -> Result<(), SourceError> {
    tx.send(Msg::Data(data)).map_err(|_| SourceError::Abandoned)
}

/// Reads `r` to the end in chunks, hashing and forwarding them; `tee` also gets each chunk.
fn pump(
    r: &mut dyn Read,
    hasher: &mut Sha256,
    count: &mut u64,
    tx: &SyncSender<Msg>,
    progress: &dyn Progress,
    mut tee: impl FnMut(&[u8]),
) -> io::Result<Result<(), SourceError>> {
    loop {
        if interrupt::requested() {
            return Ok(Err(SourceError::Interrupted));
        }
        let mut buf = vec![0u8; CHUNK];
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(Ok(())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.truncate(n);
        hasher.update(&buf);
        tee(&buf);
        *count += n as u64;
        progress.position(*count);
        if let Err(e) = send(tx, buf) {
            return Ok(Err(e));
        }
    }
}

fn run(
    input: Input,
    expected: Option<String>,
    size: Option<u64>,
    tx: &SyncSender<Msg>,
    progress: &dyn Progress,
) -> Result<Finished, SourceError> {
    let mut hasher = Sha256::new();
    let mut count = 0u64;
    if let Some(total) = size {
        progress.total(total);
    }
    let (what, from_cache, cleanup, promote) = match input {
        Input::File {
            mut file,
            path,
            cached,
        } => {
            if size.is_none()
                && let Ok(m) = file.metadata()
            {
                progress.total(m.len());
            }
            let read_err = |source| SourceError::Read {
                path: path.clone(),
                source,
            };
            pump(&mut file, &mut hasher, &mut count, tx, progress, |_| {}).map_err(read_err)??;
            let cleanup = cached.then(|| path.clone());
            (path.display().to_string(), cached, cleanup, None)
        }
        Input::Remote {
            url,
            part,
            done,
            mut body,
        } => {
            if size.is_none()
                && let Some(total) = body.total()
            {
                progress.total(total);
            }
            let mut part_path = None;
            let mut writer = None;
            if let Some((mut file, path, have)) = part {
                // Replay the verified-later prefix from the cache first.
                let mut prefix = (&mut file).take(have);
                let cache_err = |source| SourceError::Cache {
                    path: path.clone(),
                    source,
                };
                pump(&mut prefix, &mut hasher, &mut count, tx, progress, |_| {})
                    .map_err(cache_err)??;
                file.seek(SeekFrom::Start(have)).map_err(cache_err)?;
                writer = Some(file);
                part_path = Some(path);
            }
            let mut cache_failed = false;
            let tee = |chunk: &[u8]| {
                if let Some(f) = writer.as_mut()
                    && let Err(e) = f.write_all(chunk)
                {
                    // A full or read-only cache must not fail the download itself.
                    if !cache_failed {
                        progress.warn(&format!(
                            "cannot write the download cache ({e}); going on without it"
                        ));
                        cache_failed = true;
                    }
                    writer = None;
                }
            };
            let r = pump(&mut *body, &mut hasher, &mut count, tx, progress, tee);
            let r = r.map_err(|e| SourceError::Http(into_http_error(&url, e)))?;
            r?;
            if cache_failed && let Some(p) = part_path.take() {
                let _ = fs::remove_file(p);
            }
            let promote = part_path.map(|p| (p, done));
            (url, false, None, promote)
        }
    };
    let calculated = hex(&hasher.finalize());
    if let Some(expected) = expected
        && expected != calculated
    {
        // Never keep bytes that failed verification: the next run starts clean.
        if let Some(p) = cleanup {
            let _ = fs::remove_file(p);
        }
        if let Some((part, _)) = &promote {
            let _ = fs::remove_file(part);
        }
        return Err(SourceError::Mismatch {
            what,
            expected,
            calculated,
        });
    }
    if let Some((part, done)) = promote {
        match done {
            // Verified: keep it for the next create of the same image. Volatile: a cached
            // file is hashed again whenever it is used, and dropped when it does not match.
            Some(done) => {
                if let Err(e) = fsutil::move_into_place(&part, &done, Durability::Volatile) {
                    tracing::debug!(%e, "cannot keep the download in the cache");
                    let _ = fs::remove_file(&part);
                }
            }
            // Nothing to verify it against later: a cached copy could be stale.
            None => {
                let _ = fs::remove_file(&part);
            }
        }
    }
    Ok(Finished {
        sha256: calculated,
        bytes: count,
        from_cache,
    })
}

/// The default download cache: `$DISTROD_CACHE_DIR`, else `/var/cache/distrod` for root,
/// else `$XDG_CACHE_HOME/distrod` or `~/.cache/distrod`. HOME comes from the environment:
/// no NSS look-up in a static binary.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DISTROD_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    #[cfg(unix)]
    if nix::unistd::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/distrod"));
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(Path::new(&x).join("distrod"));
    }
    #[cfg(windows)]
    if let Some(x) = std::env::var_os("LOCALAPPDATA").filter(|d| !d.is_empty()) {
        return Some(Path::new(&x).join("distrod").join("cache"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|h| Path::new(&h).join(".cache").join("distrod"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_parse() {
        assert_eq!(
            Origin::parse("HTTPS://x/y.tar.xz"),
            Origin::Url("HTTPS://x/y.tar.xz".into())
        );
        assert_eq!(
            Origin::parse("./rootfs.tar"),
            Origin::File("./rootfs.tar".into())
        );
    }

    #[test]
    fn local_file_is_hashed_and_verified() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &data).unwrap();
        let http = Http::new(1, std::time::Duration::ZERO).unwrap();
        let good = Request {
            origin: Origin::File(path.clone()),
            sha256: Some(sha256_hex(&data)),
            size: None,
            cache: None,
        };
        let mut s = open(&good, &http, Arc::new(Silent)).unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        assert_eq!(s.finish().unwrap().sha256, sha256_hex(&data));

        let bad = Request {
            sha256: Some("00".repeat(32)),
            ..good
        };
        let s = open(&bad, &http, Arc::new(Silent)).unwrap();
        match s.finish() {
            Err(SourceError::Mismatch {
                expected,
                calculated,
                what,
            }) => {
                assert_eq!(expected, "00".repeat(32));
                assert_eq!(calculated, sha256_hex(&data));
                assert!(what.ends_with(&format!("{}f", std::path::MAIN_SEPARATOR)));
            }
            other => panic!("{other:?}"),
        }
    }
}
