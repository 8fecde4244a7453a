//! Repacking a root filesystem tarball with distrod added, for `wsl.exe --import` and for
//! `.wsl` packages: one streaming pass from a plain (already decoded) tar stream to a new
//! tar, optionally compressed, with memory use independent of the image size.
//!
//! What is kept: every entry of the input, in order, with its content byte for byte and its
//! header as it was (type, mode including setuid/setgid/sticky, numeric uid/gid, names,
//! mtime, link names, device numbers), together with its PAX extended records (xattrs such
//! as `SCHILY.xattr.security.capability`, long paths, sub-second times) and GNU long-name
//! records (re-emitted in fresh extended headers of their own, record for record). PAX
//! global headers are copied as they are. Two deliberate changes: a header whose checksum
//! no longer matches (the tar reader folds PAX `uid`/`gid` into it) gets a fresh checksum,
//! and an old-GNU sparse file is written as a regular file of its full size, since its
//! sparse map cannot be carried over entry by entry.
//!
//! What is refused, naming the entry: the path rules of unpacking ([`super::tarpath`]):
//! `..` components, absolute paths and NUL bytes, in entry paths and in hard link
//! targets; an entry that names the root as anything but a directory; an entry
//! whose GNU long name and PAX `path` disagree (readers differ on which one wins); and an
//! `opt` (or, for a `.wsl` package, `etc`, `usr`, `usr/lib` or `usr/lib/wsl`) that is not
//! a directory, since distrod's files would then land wherever it points.
//!
//! What is replaced: everything at or under `opt/distrod`, and, when the output is a `.wsl`
//! package ([`Extras::wsl_package`]), `etc/wsl-distribution.conf` and the first-start
//! script [`OOBE_SCRIPT`], including hard links to those paths. The extras are appended at
//! the end, owned by root: the directories they need (0755; `opt`, `etc`, `usr`, `usr/lib`
//! and `usr/lib/wsl` only when the input lacks them), `opt/distrod/bin/distrod` setuid
//! root (04755, see `distrod install`'s documentation for why that is safe), the embedded
//! overlay ([`crate::overlay::OVERLAY`], 0644), and for a package the first-start script
//! (0755) and the WSL configuration (0644).
//!
//! A package's first start creates the user WSL then logs in as, with the uid
//! `oobe.defaultUid` names: the first free one of the image's ordinary range
//! ([`crate::account::first_free_uid`] over the input's `etc/passwd` and `etc/login.defs`,
//! read as they stream past; the last entry of each path wins, as on extraction). An
//! `etc/passwd` that is not a regular file (a symlink, a hard link) is refused: its
//! accounts could not be known.

// The Windows installer (`distrod.exe`) and `.wsl` packaging are its users; until they land
// only the tests call it.
#![cfg_attr(not(test), allow(dead_code))]

use std::borrow::Cow;
use std::cell::Cell;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tar::{EntryType, Header};

use super::tarpath::{self, LinkTarget};
use crate::account::{LoginDefs, first_free_uid};
use crate::fsutil::{self, Durability, Replace, Replacement};
use crate::interrupt;
use crate::overlay::OVERLAY;

/// Where distrod lives inside the distro; replaced as a whole.
pub const DISTROD_DIR: &str = "opt/distrod";
/// The binary, relative to the root of the distro.
pub const DISTROD_BINARY: &str = "opt/distrod/bin/distrod";
/// distrod.exe, in distros the Windows installer makes: the port proxy runs it on the
/// Windows side through interop.
pub const WINDOWS_EXE: &str = "opt/distrod/bin/distrod.exe";
/// The configuration of WSL's modern distribution format.
pub const WSL_CONF: &str = "etc/wsl-distribution.conf";
/// A package's first-start (OOBE) command: a script under `/usr/lib/wsl`, where WSL's
/// validator of modern distributions wants it (see [`oobe_script`]).
pub const OOBE_SCRIPT: &str = "usr/lib/wsl/distrod-oobe.sh";
/// The files of the image that [`crate::account::first_free_uid`] reads.
const PASSWD: &str = "etc/passwd";
const LOGIN_DEFS: &str = "etc/login.defs";
/// Larger is not an account database: refused rather than held in memory.
const MAX_READ_FILE: u64 = 16 * 1024 * 1024;
/// Where the distro says what it is: for the hint of how it gets systemd.
const OS_RELEASE: [&str; 2] = ["etc/os-release", "usr/lib/os-release"];
/// Larger os-release files are not read (the hint is then the generic one).
const MAX_OS_RELEASE: u64 = 64 * 1024;

/// Setuid root: the login-shell hook must enter the container as root.
const BINARY_MODE: u32 = 0o4755;
const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
/// The first-start script; also distrod.exe's.
const EXEC_MODE: u32 = 0o755;

/// Buffers on both sides: tar reads and writes in 512-byte blocks.
const IO_BUFFER_SIZE: usize = 256 * 1024;

/// xz threads: at preset 6 each holds a 24 MiB block in and out and its own encoder,
/// about 165 MiB (`xz -vv -T4 -6` reports 661 MiB), so four bound the total near 660 MiB
/// however large the image.
const MAX_XZ_THREADS: u32 = 4;
/// The image server's own setting; its 24 MiB blocks decode in parallel again.
const XZ_PRESET: u32 = 6;

/// What is added to the root filesystem.
#[derive(Debug, Clone)]
pub struct Extras<'a> {
    /// The Linux `distrod` binary, installed as `/opt/distrod/bin/distrod`.
    pub distrod: &'a [u8],
    /// distrod.exe, installed as `/opt/distrod/bin/distrod.exe` (0755) when given.
    pub windows_exe: Option<&'a [u8]>,
    /// Makes the output a `.wsl` package: `/etc/wsl-distribution.conf` (see
    /// [`wsl_distribution_conf`]) and the first-start script [`OOBE_SCRIPT`] (see
    /// [`oobe_script`]) are added, replacing any in the input. `None` keeps the input's.
    pub wsl_package: Option<WslPackage>,
}

/// What a `.wsl` package's configuration says besides what the image decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WslPackage {
    /// `oobe.defaultName`: the name WSL proposes when the package is installed.
    pub default_name: String,
    /// The first start enables distrod (sessions enter systemd); false for a plain distro
    /// (`pack --without-systemd`), where it only creates the user.
    pub enable: bool,
}

/// What [`repack`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Members written, copied and added (PAX and GNU long-name records not counted, nor
    /// PAX global headers).
    pub entries: u64,
    /// Size of the tar written, before any compression.
    pub bytes: u64,
    /// Input entries dropped because the extras replace them, by path.
    pub replaced: Vec<String>,
    /// For a `.wsl` package: the uid its first start gives the user it creates
    /// (`oobe.defaultUid`).
    pub default_uid: Option<u32>,
    /// Why the image would not boot systemd in distrod's container ([`crate::initsys`]),
    /// from its entries as they streamed past; None: it would.
    pub no_systemd: Option<crate::initsys::NoSystemd>,
}

/// How [`repack_to_file`] compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// flate2, default level: what `wsl.exe --import` reads fastest.
    Gzip,
    /// xz preset 6, in independent 24 MiB blocks written by up to four threads (about
    /// 165 MiB of memory each); distrod decodes such blocks in parallel again.
    Xz,
}

/// Why [`repack`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum RepackError {
    /// The entry's path (or a hard link's target) is not a plain relative path.
    #[error("refusing tar entry `{entry}`: {reason}")]
    UnsafePath {
        /// The entry's path, as the archive names it.
        entry: String,
        /// What is wrong with the path.
        reason: String,
    },
    /// The entry cannot coexist with what distrod adds.
    #[error("refusing tar entry `{entry}`: {reason}")]
    Conflict {
        /// The entry's path, as the archive names it.
        entry: String,
        /// What it would clash with.
        reason: String,
    },
    /// A header field or PAX record that cannot be carried over.
    #[error("refusing tar entry `{entry}`: invalid {what}")]
    InvalidHeader {
        /// The entry's path, as the archive names it.
        entry: String,
        /// Which field or record.
        what: &'static str,
        /// What is wrong with it.
        #[source]
        source: io::Error,
    },
    /// Reading the archive failed; the reader's own error is the source, unchanged.
    #[error("failed to read the tar archive {at}")]
    Read {
        /// How far the archive was read (`at its start`, `after entry NAME`).
        at: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// Writing the new archive failed.
    #[error("failed to write the new archive")]
    Write(#[source] io::Error),
    /// A file system operation on the output file failed.
    #[error("failed to {what} `{}`", path.display())]
    Io {
        /// What was being done, as a verb (`create`, `sync`).
        what: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// The `/etc/wsl-distribution.conf` of a distro made by distrod: WSL reads it, runs
/// `oobe_command` (with `/bin/sh -c`, as root) on the first launch, then logs in as
/// `default_uid`; it proposes `default_name` when the package is installed, and creates a
/// Start-menu shortcut and a Windows Terminal profile. Line breaks in the arguments are
/// replaced by spaces: each setting must stay on its own line.
pub fn wsl_distribution_conf(oobe_command: &str, default_uid: u32, default_name: &str) -> String {
    let one_line = |s: &str| s.replace(['\r', '\n'], " ").trim().to_owned();
    format!(
        "# Written by distrod.\n\
         [oobe]\n\
         command = {}\n\
         defaultUid = {default_uid}\n\
         defaultName = {}\n\
         \n\
         [shortcut]\n\
         enabled = true\n\
         \n\
         [windowsterminal]\n\
         enabled = true\n",
        one_line(oobe_command),
        one_line(default_name)
    )
}

/// The first-start script [`OOBE_SCRIPT`]: `distrod firstboot` (the user, asked on WSL's
/// terminal, created with `uid`, the `oobe.defaultUid` WSL logs in as next; then
/// `enable`). Arguments are passed on, for whoever runs it by hand (`--user NAME
/// --password-stdin`).
pub fn oobe_script(uid: u32, enable: bool) -> String {
    if !enable {
        return format!(
            "#!/bin/sh\n\
             # Written by distrod: this distro's first start (oobe.command of\n\
             # /etc/wsl-distribution.conf, run by WSL as root). It creates the user WSL logs\n\
             # in as, with the uid of oobe.defaultUid. distrod is not enabled: this is a\n\
             # plain distro (packed with --without-systemd).\n\
             exec /{DISTROD_BINARY} firstboot --uid {uid} --no-enable \"$@\"\n"
        );
    }
    format!(
        "#!/bin/sh\n\
         # Written by distrod: this distro's first start (oobe.command of\n\
         # /etc/wsl-distribution.conf, run by WSL as root). It creates the user WSL logs in\n\
         # as, with the uid of oobe.defaultUid, then lets every session enter systemd.\n\
         exec /{DISTROD_BINARY} firstboot --uid {uid} \"$@\"\n"
    )
}

/// Copies the plain tar stream `input` to `output` with the extras added, following the
/// rules in the module documentation. `output` receives a complete tar (end blocks
/// included) and is flushed; finishing a compressor around it is the caller's.
pub fn repack(
    input: impl Read,
    output: impl Write,
    extras: &Extras<'_>,
) -> Result<Report, RepackError> {
    let read_failed = Cell::new(false);
    let reader = TrackedReader {
        inner: BufReader::with_capacity(IO_BUFFER_SIZE, input),
        failed: &read_failed,
    };
    let writer = CountingWriter {
        inner: BufWriter::with_capacity(IO_BUFFER_SIZE, output),
        bytes: 0,
        discard: false,
    };
    let mut repacker = Repacker {
        builder: tar::Builder::new(writer),
        read_failed: &read_failed,
        wsl_package: extras.wsl_package.is_some(),
        watched: watched_dirs(extras),
        read: Vec::new(),
        inits: Default::default(),
        report: Report::default(),
    };

    let mut archive = tar::Archive::new(reader);
    let copied = (|| {
        repacker.copy_input(&mut archive)?;
        repacker.check_watched()?;
        repacker.append_extras(extras)
    })();
    if let Err(e) = copied {
        // The builder writes the end-of-archive blocks when dropped; they would make a cut
        // archive look whole to whoever reads `output`.
        repacker.builder.get_mut().discard = true;
        return Err(e);
    }

    repacker.report.no_systemd = repacker.no_systemd();
    let Repacker {
        builder,
        mut report,
        ..
    } = repacker;
    let writer = builder.into_inner().map_err(RepackError::Write)?;
    report.bytes = writer.bytes;
    writer
        .inner
        .into_inner()
        .map_err(|e| RepackError::Write(e.into_error()))?
        .flush()
        .map_err(RepackError::Write)?;
    Ok(report)
}

/// [`repack`] into the file `path`, compressed, replacing it with [`fsutil::Replacement`]:
/// written beside `path`, synced, and renamed over it only when complete; on any failure
/// nothing is left behind.
pub fn repack_to_file(
    input: impl Read,
    path: &Path,
    extras: &Extras<'_>,
    compression: Compression,
) -> Result<Report, RepackError> {
    // Contents: the archive is whole or absent after a crash, as before the rename; that the
    // rename itself survives is not needed of a file the user asked for just now.
    let mut temp =
        Replacement::begin(path, Replace::new(Durability::Contents)).map_err(|source| {
            RepackError::Io {
                what: "create",
                path: fsutil::temp_sibling(path),
                source,
            }
        })?;
    let temp_path = temp.path().to_path_buf();
    let file = temp.file();
    let report = match compression {
        Compression::Gzip => {
            let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            let report = repack(input, &mut gz, extras)?;
            gz.finish().map_err(RepackError::Write)?;
            report
        }
        Compression::Xz => {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .min(MAX_XZ_THREADS);
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads)
                .preset(XZ_PRESET)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(|e| RepackError::Write(e.into()))?;
            let mut xz = liblzma::write::XzEncoder::new_stream(file, stream);
            let report = repack(input, &mut xz, extras)?;
            xz.finish().map_err(RepackError::Write)?;
            report
        }
    };
    let ready = temp.finish().map_err(|source| RepackError::Io {
        what: "sync",
        path: temp_path,
        source,
    })?;
    ready.commit().map_err(|source| RepackError::Io {
        what: "move the new archive into place at",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(report)
}

struct Repacker<'a, W: Write> {
    builder: tar::Builder<CountingWriter<W>>,
    /// Set by the input reader when it fails: tells a read error from a write error
    /// when copying data fails.
    read_failed: &'a Cell<bool>,
    /// The output is a `.wsl` package: its configuration and script replace the input's,
    /// and [`PASSWD`] and [`LOGIN_DEFS`] are read on the way.
    wsl_package: bool,
    /// The parents of the extras that the input may already have (`opt`, `etc`, ...), with
    /// what the input last said about each: its entry name and whether it is a directory.
    watched: Vec<Watched>,
    /// The last entry of [`PASSWD`] and of [`LOGIN_DEFS`] (for a package), and of the
    /// os-release files.
    read: Vec<ReadFile>,
    /// What the input's entries say about its init ([`crate::initsys`]).
    inits: crate::initsys::TarIndex,
    report: Report,
}

struct Watched {
    path: &'static str,
    seen: Option<(String, bool)>,
}

/// A file of the input that the extras depend on.
struct ReadFile {
    path: &'static str,
    /// Its entry name.
    entry: String,
    /// Its content; `None` when the entry is not a regular file.
    data: Option<Vec<u8>>,
}

impl<W: Write> Repacker<'_, W> {
    fn copy_input<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), RepackError> {
        super::for_each_entry(
            archive,
            |at, source| RepackError::Read { at, source },
            |entry, name| {
                if interrupt::requested() {
                    return Err(RepackError::Interrupted);
                }
                self.entry(entry, name)
            },
        )
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), RepackError> {
        let mut header = entry.header().clone();
        let kind = header.entry_type();
        let size = entry.size();
        if kind.is_pax_global_extensions() {
            // Applies to every member after it; not a file.
            return self.copy(&header, entry, size, name);
        }

        let path = entry.path_bytes().into_owned();
        let link = entry.link_name_bytes().map(Cow::into_owned);
        let header_path = header.path_bytes().into_owned();
        let header_link = header.link_name_bytes().map(Cow::into_owned);
        let pax = pax_records(entry, name)?;
        let pax_value = |key: &[u8]| {
            pax.iter()
                .find(|(k, _)| k.as_slice() == key)
                .map(|(_, v)| v.as_slice())
        };
        // The reader takes a GNU long name over a PAX path; re-emit whichever it used.
        let gnu_long_name = path != header_path && pax_value(b"path") != Some(path.as_slice());
        if gnu_long_name && pax_value(b"path").is_some() {
            return Err(unsafe_path(
                name,
                "its GNU long name and its PAX path differ",
            ));
        }
        let gnu_long_link = link != header_link && pax_value(b"linkpath") != link.as_deref();
        if gnu_long_link && pax_value(b"linkpath").is_some() {
            return Err(unsafe_path(
                name,
                "its GNU long link name and its PAX linkpath differ",
            ));
        }

        let comps = tarpath::components(&path).map_err(|reason| unsafe_path(name, reason))?;
        let is_dir = tarpath::is_directory(&header, &path);
        if comps.is_empty() && !is_dir {
            return Err(unsafe_path(name, "only a directory may stand for the root"));
        }
        let mut target_replaced = false;
        if kind == EntryType::Link {
            // Checked by name only (nothing is written here to resolve it in); a missing
            // target reads as an empty one, which names the root.
            let target = link.as_deref().unwrap_or_default();
            let target_comps = tarpath::link_target(target).map_err(|why| match why {
                LinkTarget::Path(reason) => {
                    unsafe_path(name, format!("hard link target: {reason}"))
                }
                LinkTarget::Root => unsafe_path(name, "hard link to the root"),
            })?;
            target_replaced = self.replaced(&target_comps);
        }

        if self.replaced(&comps) || target_replaced {
            tracing::debug!("dropping `{name}`: distrod replaces it");
            self.report.replaced.push(name.to_owned());
            return Ok(());
        }
        let joined = comps.join(&b'/');
        if let Some(w) = self
            .watched
            .iter_mut()
            .find(|w| w.path.as_bytes() == joined)
        {
            w.seen = Some((name.to_owned(), is_dir));
        }
        if let Ok(at) = std::str::from_utf8(&joined) {
            let link_text = || String::from_utf8_lossy(link.as_deref().unwrap_or_default());
            match kind {
                EntryType::Symlink => self.inits.symlink(at, &link_text()),
                EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Link
                    if !is_dir =>
                {
                    self.inits.file(at, header.mode().unwrap_or(0))
                }
                _ => self.inits.other(at),
            }
        }
        let read = [PASSWD, LOGIN_DEFS]
            .into_iter()
            .find(|p| self.wsl_package && p.as_bytes() == joined)
            .or_else(|| {
                OS_RELEASE
                    .into_iter()
                    .find(|p| p.as_bytes() == joined && size <= MAX_OS_RELEASE)
            });

        let mut size = size;
        let mut drop_pax_size = false;
        if kind == EntryType::GNUSparse {
            // The reader expands the holes; the result is a plain file of the full size.
            let gnu = header
                .as_gnu_mut()
                .expect("the tar reader accepts sparse entries only with GNU headers");
            size = gnu
                .real_size()
                .map_err(|source| invalid(name, "sparse file size", source))?;
            gnu.realsize = [0; 12];
            gnu.isextended = [0];
            for block in &mut gnu.sparse {
                block.offset = [0; 12];
                block.numbytes = [0; 12];
            }
            header.set_entry_type(EntryType::Regular);
            header.set_size(size);
            drop_pax_size = true;
        }

        if !pax.is_empty() {
            let mut records = Vec::with_capacity(pax.len());
            for (key, value) in &pax {
                if drop_pax_size && key.as_slice() == b"size" {
                    continue;
                }
                let key = std::str::from_utf8(key).map_err(|e| {
                    invalid(
                        name,
                        "PAX record key",
                        io::Error::new(io::ErrorKind::InvalidData, e),
                    )
                })?;
                records.push((key, value.as_slice()));
            }
            self.builder
                .append_pax_extensions(records)
                .map_err(RepackError::Write)?;
        }
        if gnu_long_name {
            self.long_name(EntryType::GNULongName, &path)?;
        }
        if gnu_long_link && let Some(link) = &link {
            self.long_name(EntryType::GNULongLink, link)?;
        }
        if !checksum_ok(&header) {
            header.set_cksum();
        }
        match read {
            Some(path) => {
                let regular = !is_dir
                    && matches!(
                        kind,
                        EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse
                    );
                if regular && size > MAX_READ_FILE {
                    return Err(RepackError::Conflict {
                        entry: name.to_owned(),
                        reason: format!(
                            "`{path}` is larger than {} MiB: too large to read for the \
                             first start's uid",
                            MAX_READ_FILE / 1024 / 1024
                        ),
                    });
                }
                let mut data = Vec::new();
                let mut tee = Tee {
                    inner: entry,
                    copy: &mut data,
                };
                self.copy(&header, &mut tee, size, name)?;
                self.read.retain(|r| r.path != path);
                self.read.push(ReadFile {
                    path,
                    entry: name.to_owned(),
                    data: regular.then_some(data),
                });
            }
            None => self.copy(&header, entry, size, name)?,
        }
        self.report.entries += 1;
        Ok(())
    }

    /// Whether the extras replace the entry at `comps`.
    fn replaced(&self, comps: &[&[u8]]) -> bool {
        let split = |p: &'static str| -> Vec<&[u8]> { p.split('/').map(str::as_bytes).collect() };
        comps.starts_with(&split(DISTROD_DIR))
            || (self.wsl_package && [WSL_CONF, OOBE_SCRIPT].iter().any(|p| comps == split(p)))
    }

    /// Writes `header` and exactly `size` bytes of `data` (a short read is an error, not a
    /// silently corrupt member).
    fn copy(
        &mut self,
        header: &Header,
        data: &mut impl Read,
        size: u64,
        name: &str,
    ) -> Result<(), RepackError> {
        let exact = ExactReader {
            inner: data,
            remaining: size,
            failed: self.read_failed,
        };
        self.builder.append(header, exact).map_err(|source| {
            if self.read_failed.get() {
                RepackError::Read {
                    at: format!("in the data of `{name}`"),
                    source,
                }
            } else {
                RepackError::Write(source)
            }
        })
    }

    /// A GNU `L`/`K` record, as GNU tar writes it: the name and a NUL.
    fn long_name(&mut self, kind: EntryType, value: &[u8]) -> Result<(), RepackError> {
        let mut header = Header::new_gnu();
        let marker = b"././@LongLink";
        header.as_gnu_mut().expect("a GNU header").name[..marker.len()].copy_from_slice(marker);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(value.len() as u64 + 1);
        header.set_entry_type(kind);
        header.set_cksum();
        self.builder
            .append(&header, value.chain(&[0u8][..]))
            .map_err(RepackError::Write)
    }

    fn check_watched(&self) -> Result<(), RepackError> {
        for w in &self.watched {
            if let Some((entry, false)) = &w.seen {
                return Err(RepackError::Conflict {
                    entry: entry.clone(),
                    reason: format!(
                        "`{}` is not a directory, and distrod adds files under it",
                        w.path
                    ),
                });
            }
        }
        Ok(())
    }

    /// Why the input would not boot systemd, if so; with the hint of its os-release (the
    /// one at `etc/`, else the one at `usr/lib/`; `etc/os-release` is usually a link).
    fn no_systemd(&self) -> Option<crate::initsys::NoSystemd> {
        let missing = crate::initsys::check(&self.inits).err()?;
        let text = OS_RELEASE.iter().find_map(|p| {
            let r = self.read.iter().find(|r| r.path == *p)?;
            Some(String::from_utf8_lossy(r.data.as_deref()?).into_owned())
        });
        Some(crate::initsys::NoSystemd {
            missing,
            hint: crate::initsys::hint(text.as_deref()),
        })
    }

    /// The uid a package's first start gives its user, from what the input had at
    /// [`PASSWD`] and [`LOGIN_DEFS`].
    fn default_uid(&self) -> Result<u32, RepackError> {
        let last = |path: &str| self.read.iter().find(|r| r.path == path);
        let passwd = match last(PASSWD) {
            None => String::new(),
            Some(ReadFile {
                data: Some(data), ..
            }) => String::from_utf8_lossy(data).into_owned(),
            Some(ReadFile {
                entry, data: None, ..
            }) => {
                return Err(RepackError::Conflict {
                    entry: entry.clone(),
                    reason: format!(
                        "`{PASSWD}` is not a regular file: distrod reads the accounts in it \
                         to choose the uid of the user the first start creates"
                    ),
                });
            }
        };
        let defs = match last(LOGIN_DEFS) {
            Some(ReadFile {
                data: Some(data), ..
            }) => LoginDefs::parse(&String::from_utf8_lossy(data)),
            _ => LoginDefs::default(),
        };
        first_free_uid(&passwd, defs).ok_or_else(|| RepackError::Conflict {
            entry: PASSWD.to_owned(),
            reason: format!(
                "every uid of {}..={} (UID_MIN..UID_MAX) is taken: none is left for the user \
                 the first start creates",
                defs.uid_min, defs.uid_max
            ),
        })
    }

    fn append_extras(&mut self, extras: &Extras<'_>) -> Result<(), RepackError> {
        let mtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let package = match &extras.wsl_package {
            Some(p) => {
                let uid = self.default_uid()?;
                self.report.default_uid = Some(uid);
                let command = format!("/{OOBE_SCRIPT}");
                Some((
                    oobe_script(uid, p.enable),
                    wsl_distribution_conf(&command, uid, &p.default_name),
                ))
            }
            None => None,
        };
        let mut files: Vec<(&str, u32, &[u8])> =
            vec![(DISTROD_BINARY, BINARY_MODE, extras.distrod)];
        if let Some(exe) = extras.windows_exe {
            files.push((WINDOWS_EXE, EXEC_MODE, exe));
        }
        files.extend(OVERLAY.iter().map(|&(path, data)| (path, FILE_MODE, data)));
        if let Some((script, conf)) = &package {
            files.push((OOBE_SCRIPT, EXEC_MODE, script.as_bytes()));
            files.push((WSL_CONF, FILE_MODE, conf.as_bytes()));
        }
        let mut dirs_done: Vec<String> = Vec::new();
        for (path, mode, data) in files {
            for (end, _) in path.match_indices('/') {
                let parent = &path[..end];
                if dirs_done.iter().any(|d| d == parent) {
                    continue;
                }
                let in_input = self
                    .watched
                    .iter()
                    .any(|w| w.path == parent && w.seen.is_some());
                if !in_input {
                    let mut header = root_header(EntryType::Directory, DIR_MODE, 0, mtime);
                    self.builder
                        .append_data(&mut header, parent, io::empty())
                        .map_err(RepackError::Write)?;
                    self.report.entries += 1;
                }
                dirs_done.push(parent.to_owned());
            }
            let mut header = root_header(EntryType::Regular, mode, data.len() as u64, mtime);
            self.builder
                .append_data(&mut header, path, data)
                .map_err(RepackError::Write)?;
            self.report.entries += 1;
        }
        Ok(())
    }
}

/// The parents of the extras outside `opt/distrod` (which is replaced whole).
fn watched_dirs(extras: &Extras<'_>) -> Vec<Watched> {
    let mut paths = vec!["opt"];
    if extras.wsl_package.is_some() {
        paths.extend(["etc", "usr", "usr/lib", "usr/lib/wsl"]);
    }
    paths
        .into_iter()
        .map(|path| Watched { path, seen: None })
        .collect()
}

fn root_header(kind: EntryType, mode: u32, size: u64, mtime: u64) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    // Names are only a fallback for readers without numeric ids; these always fit.
    header.set_username("root").expect("short name");
    header.set_groupname("root").expect("short name");
    header.set_mtime(mtime);
    header.set_size(size);
    header
}

/// PAX records as (key, value) bytes.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

/// The PAX records that precede the entry.
fn pax_records<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    name: &str,
) -> Result<PaxRecords, RepackError> {
    let Some(records) = entry
        .pax_extensions()
        .map_err(|source| invalid(name, "PAX extended header", source))?
    else {
        return Ok(Vec::new());
    };
    records
        .map(|record| {
            record
                .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
                .map_err(|source| invalid(name, "PAX extended header", source))
        })
        .collect()
}

fn checksum_ok(header: &Header) -> bool {
    let bytes = header.as_bytes();
    let sum = bytes[..148]
        .iter()
        .chain(&bytes[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    header.cksum().is_ok_and(|c| c == sum)
}

fn unsafe_path(entry: &str, reason: impl Into<String>) -> RepackError {
    RepackError::UnsafePath {
        entry: entry.to_owned(),
        reason: reason.into(),
    }
}

fn invalid(entry: &str, what: &'static str, source: io::Error) -> RepackError {
    RepackError::InvalidHeader {
        entry: entry.to_owned(),
        what,
        source,
    }
}

/// A reader that keeps a copy of what it reads.
struct Tee<'a, R> {
    inner: R,
    copy: &'a mut Vec<u8>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// The input, remembering whether it ever failed.
struct TrackedReader<'a, R> {
    inner: R,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for TrackedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })
    }
}

/// Exactly `remaining` bytes of an entry's data; an early end is an error.
struct ExactReader<'a, R> {
    inner: R,
    remaining: u64,
    failed: &'a Cell<bool>,
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            self.failed.set(true);
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive ends {} bytes early", self.remaining),
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// The output, counting what it is given; once `discard` is set it takes nothing more.
struct CountingWriter<W> {
    inner: W,
    bytes: u64,
    discard: bool,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.discard {
            return Ok(buf.len());
        }
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File};
    use std::rc::Rc;

    const MTIME: u64 = 1_700_000_000;
    const DISTROD: &[u8] = b"\x7fELF new distrod";
    const CAPABILITY: &[u8] =
        b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

    /// Builds archives the way real rootfs tarballs are laid out, including the odd parts.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Tar {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn header(kind: EntryType, mode: u32) -> Header {
            let mut h = Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(MTIME);
            h.set_size(0);
            h
        }

        fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
            let mut h = Self::header(EntryType::Directory, mode);
            self.0.append_data(&mut h, path, io::empty()).unwrap();
            self
        }

        fn file(&mut self, path: &str, mode: u32, data: &[u8]) -> &mut Self {
            self.owned_file(path, mode, 0, 0, data)
        }

        fn owned_file(
            &mut self,
            path: &str,
            mode: u32,
            uid: u64,
            gid: u64,
            data: &[u8],
        ) -> &mut Self {
            let mut h = Self::header(EntryType::Regular, mode);
            h.set_uid(uid);
            h.set_gid(gid);
            h.set_size(data.len() as u64);
            self.0.append_data(&mut h, path, data).unwrap();
            self
        }

        fn link(&mut self, kind: EntryType, path: &str, target: &str) -> &mut Self {
            let mut h = Self::header(kind, 0o777);
            self.0.append_link(&mut h, path, target).unwrap();
            self
        }

        fn device(&mut self, kind: EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
            let mut h = Self::header(kind, 0o660);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            h.set_gid(6);
            self.0.append_data(&mut h, path, io::empty()).unwrap();
            self
        }

        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            self.0
                .append_pax_extensions(records.iter().copied())
                .unwrap();
            self
        }

        /// Names written as bytes, past the builder's own checks.
        fn raw(&mut self, mut h: Header, name: &[u8], link: &[u8], data: &[u8]) -> &mut Self {
            h.as_old_mut().name[..name.len()].copy_from_slice(name);
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
            h.set_size(data.len() as u64);
            h.set_cksum();
            self.0.append(&h, data).unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn long_dir() -> String {
        format!("usr/share/{}/{}", "d".repeat(80), "e".repeat(70))
    }

    /// A small rootfs with every kind of entry, and an old distrod to be replaced.
    /// The sample's accounts: uid 1000 is taken.
    const SAMPLE_PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        distrod:x:1000:1000::/home/distrod:/bin/bash\n";

    fn sample_rootfs() -> Vec<u8> {
        let long_dir = long_dir();
        let mut tar = Tar::new();
        tar.raw(
            Tar::header(EntryType::XGlobalHeader, 0o644),
            b"pax_global_header",
            b"",
            b"19 comment=rootfs\n",
        );
        tar.dir("./", 0o755)
            .dir("etc", 0o755)
            .file(
                "etc/wsl-distribution.conf",
                0o644,
                b"[oobe]\ncommand=/old\n",
            )
            .file("etc/passwd", 0o644, SAMPLE_PASSWD)
            .file("usr/lib/wsl/distrod-oobe.sh", 0o755, b"#!/bin/sh\nold\n")
            .dir("tmp", 0o1777)
            .dir("usr/bin", 0o755)
            .file("usr/bin/sudo", 0o4755, b"sudo binary")
            .owned_file("usr/bin/wall", 0o2755, 0, 5, b"wall binary")
            .link(EntryType::Symlink, "bin", "usr/bin")
            .link(EntryType::Link, "usr/bin/sudoedit", "usr/bin/sudo")
            .device(EntryType::Char, "dev/null", 1, 3)
            .device(EntryType::Block, "dev/loop0", 7, 0)
            .raw(
                Tar::header(EntryType::Fifo, 0o620),
                b"run/initctl",
                b"",
                b"",
            )
            .pax(&[
                ("SCHILY.xattr.security.capability", CAPABILITY),
                ("SCHILY.xattr.user.note", b"hello"),
                ("mtime", b"1700000000.123456789"),
            ])
            .file("usr/bin/ping", 0o755, b"ping binary")
            .pax(&[("uid", b"3000000"), ("gid", b"3000001")])
            .file("home/big-id/file", 0o600, b"owned by a large id")
            .dir(&long_dir, 0o755)
            .owned_file(
                &format!("{long_dir}/gnu-long-name.txt"),
                0o644,
                1000,
                1000,
                b"long",
            )
            .link(
                EntryType::Symlink,
                "usr/share/short-link",
                &format!("{long_dir}/gnu-long-name.txt"),
            );
        // A long name as a PAX `path` record, the header holding a truncated one.
        let pax_name = format!("{long_dir}/pax-long-name.txt");
        tar.pax(&[("path", pax_name.as_bytes())]);
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Regular);
        h.set_mode(0o640);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        tar.raw(h, b"PaxHeaders/pax-long-name.txt", b"", b"pax long");
        tar.dir("opt", 0o755)
            .dir("opt/distrod", 0o755)
            .dir("opt/distrod/bin", 0o755)
            .file("opt/distrod/bin/distrod", 0o4755, b"old distrod")
            .link(
                EntryType::Symlink,
                "opt/distrod/alias/bin/bash",
                "../../bin/distrod",
            )
            .link(
                EntryType::Link,
                "usr/local/bin/distrod-copy",
                "opt/distrod/bin/distrod",
            )
            .file("var/lib/data", 0o644, &[7u8; 70_000]);
        tar.bytes()
    }

    /// One archive member as a reader sees it: every field that must survive.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Member {
        path: Vec<u8>,
        link: Option<Vec<u8>>,
        /// The 512 header bytes, checksum field blanked (the reader folds PAX ids into the
        /// header without updating it).
        header: Vec<u8>,
        pax: Vec<(Vec<u8>, Vec<u8>)>,
        data: Vec<u8>,
    }

    impl Member {
        fn path(&self) -> String {
            String::from_utf8_lossy(&self.path).into_owned()
        }

        fn mode(&self) -> u32 {
            Header::from_byte_slice(&self.header).mode().unwrap()
        }

        fn kind(&self) -> EntryType {
            Header::from_byte_slice(&self.header).entry_type()
        }

        fn ids(&self) -> (u64, u64) {
            let h = Header::from_byte_slice(&self.header);
            (h.uid().unwrap(), h.gid().unwrap())
        }
    }

    fn members(archive: &[u8]) -> Vec<Member> {
        let mut archive = tar::Archive::new(archive);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let global = entry.header().entry_type().is_pax_global_extensions();
            let pax = if global {
                Vec::new()
            } else {
                entry
                    .pax_extensions()
                    .unwrap()
                    .map(|records| {
                        records
                            .map(|r| {
                                let r = r.unwrap();
                                (r.key_bytes().to_vec(), r.value_bytes().to_vec())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let mut header = entry.header().as_bytes().to_vec();
            header[148..156].fill(b' ');
            let path = entry.path_bytes().into_owned();
            let link = entry.link_name_bytes().map(Cow::into_owned);
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            out.push(Member {
                path,
                link,
                header,
                pax,
                data,
            });
        }
        out
    }

    /// What the repack adds under /opt, in order.
    const DISTROD_TREE: [&str; 8] = [
        "opt/distrod",
        "opt/distrod/bin",
        "opt/distrod/bin/distrod",
        "opt/distrod/lib",
        "opt/distrod/lib/systemd",
        "opt/distrod/lib/systemd/distrod-portproxy.service",
        "opt/distrod/share",
        "opt/distrod/share/distrod.toml.example",
    ];

    fn extras(wsl_package: bool) -> Extras<'static> {
        Extras {
            distrod: DISTROD,
            windows_exe: None,
            wsl_package: wsl_package.then(|| WslPackage {
                default_name: "Distrod".into(),
                enable: true,
            }),
        }
    }

    fn repack_vec(input: &[u8], extras: &Extras<'_>) -> Result<(Vec<u8>, Report), RepackError> {
        let mut out = Vec::new();
        let report = repack(input, &mut out, extras)?;
        Ok((out, report))
    }

    fn is_replaced(path: &str) -> bool {
        let p = path.trim_start_matches("./");
        p.starts_with("opt/distrod")
            || p == "usr/local/bin/distrod-copy"
            || p == WSL_CONF
            || p == OOBE_SCRIPT
    }

    /// Checks a repacked sample: the input's members intact and in order, then the extras.
    fn check_sample_output(input: &[u8], output: &[u8], report: &Report) {
        let before = members(input);
        let after = members(output);
        let kept: Vec<&Member> = before.iter().filter(|m| !is_replaced(&m.path())).collect();
        assert!(kept.len() >= 20, "the sample lost entries: {}", kept.len());
        assert_eq!(
            after.len(),
            kept.len() + 13,
            "{:#?}",
            after.iter().map(Member::path).collect::<Vec<_>>()
        );
        for (a, b) in kept.iter().zip(&after) {
            assert_eq!(*a, b, "member {} changed", a.path());
        }

        let added = &after[kept.len()..];
        let added_paths: Vec<String> = added.iter().map(Member::path).collect();
        let package = [
            // The sample has entries under usr but none for these directories.
            "usr",
            "usr/lib",
            "usr/lib/wsl",
            OOBE_SCRIPT,
            "etc/wsl-distribution.conf",
        ];
        assert_eq!(added_paths, [&DISTROD_TREE[..], &package[..]].concat());
        for m in added {
            assert_eq!(m.ids(), (0, 0), "{}", m.path());
            let h = Header::from_byte_slice(&m.header);
            assert_eq!(h.username().unwrap(), Some("root"));
        }
        let find = |path: &str| added.iter().find(|m| m.path() == path).unwrap();
        for dir in [
            "opt/distrod",
            "opt/distrod/bin",
            "opt/distrod/share",
            "usr/lib/wsl",
        ] {
            assert_eq!(find(dir).kind(), EntryType::Directory);
            assert_eq!(find(dir).mode(), 0o755);
        }
        let bin = find(DISTROD_BINARY);
        assert_eq!(bin.kind(), EntryType::Regular);
        assert_eq!(bin.mode(), 0o4755);
        assert_eq!(bin.data, DISTROD);
        for (path, data) in OVERLAY {
            let m = find(path);
            assert_eq!(m.mode(), 0o644);
            assert_eq!(m.data, *data);
        }
        // The first start: uid 1000 is taken in the sample, 1001 is the first free one.
        assert_eq!(report.default_uid, Some(1001));
        let conf = find(WSL_CONF);
        assert_eq!((conf.kind(), conf.mode()), (EntryType::Regular, 0o644));
        assert_eq!(
            conf.data,
            wsl_distribution_conf(&format!("/{OOBE_SCRIPT}"), 1001, "Distrod").as_bytes()
        );
        let script = find(OOBE_SCRIPT);
        assert_eq!((script.kind(), script.mode()), (EntryType::Regular, 0o755));
        assert_eq!(script.data, oobe_script(1001, true).as_bytes());
        // `opt` and `etc` were in the input: not added again.
        assert_eq!(
            after
                .iter()
                .filter(|m| m.path().trim_end_matches('/') == "opt")
                .count(),
            1
        );
        assert_eq!(
            after
                .iter()
                .filter(|m| m.path().trim_end_matches('/') == "etc")
                .count(),
            1
        );

        let replaced: Vec<String> = before
            .iter()
            .filter(|m| is_replaced(&m.path()))
            .map(Member::path)
            .collect();
        assert_eq!(replaced.len(), 7);
        assert_eq!(report.replaced, replaced);
        // The global header is copied but not counted.
        assert_eq!(report.entries, after.len() as u64 - 1);
        assert_eq!(report.bytes, output.len() as u64);
    }

    #[test]
    fn repack_keeps_every_entry_and_adds_distrod() {
        let input = sample_rootfs();
        let (output, report) = repack_vec(&input, &extras(true)).unwrap();
        check_sample_output(&input, &output, &report);

        // The details a rootfs depends on, spelled out.
        let after = members(&output);
        let get = |p: &str| {
            after
                .iter()
                .find(|m| m.path().trim_end_matches('/') == p)
                .unwrap()
        };
        assert_eq!(get("usr/bin/sudo").mode(), 0o4755);
        assert_eq!(get("usr/bin/wall").mode(), 0o2755);
        assert_eq!(get("usr/bin/wall").ids(), (0, 5));
        assert_eq!(get("tmp").mode(), 0o1777);
        assert_eq!(get("bin").link.as_deref(), Some(&b"usr/bin"[..]));
        assert_eq!(get("usr/bin/sudoedit").kind(), EntryType::Link);
        let null = Header::from_byte_slice(&get("dev/null").header).clone();
        assert_eq!(
            (null.device_major().unwrap(), null.device_minor().unwrap()),
            (Some(1), Some(3))
        );
        assert_eq!(get("dev/loop0").kind(), EntryType::Block);
        assert_eq!(get("run/initctl").kind(), EntryType::Fifo);
        let ping = get("usr/bin/ping");
        assert!(ping.pax.contains(&(
            b"SCHILY.xattr.security.capability".to_vec(),
            CAPABILITY.to_vec()
        )));
        assert!(
            ping.pax
                .contains(&(b"mtime".to_vec(), b"1700000000.123456789".to_vec()))
        );
        assert_eq!(get("home/big-id/file").ids(), (3_000_000, 3_000_001));
        let long = format!("{}/gnu-long-name.txt", long_dir());
        assert_eq!(get(&long).data, b"long");
        assert_eq!(get(&long).ids(), (1000, 1000));
        assert_eq!(
            get("usr/share/short-link").link.as_deref(),
            Some(long.as_bytes())
        );
        assert_eq!(
            get(&format!("{}/pax-long-name.txt", long_dir())).data,
            b"pax long"
        );
        assert_eq!(get("var/lib/data").data, vec![7u8; 70_000]);
    }

    /// Unsafe or conflicting archives, each with the entry the error must name.
    fn refused_archives() -> Vec<(&'static str, Vec<u8>, &'static str)> {
        let regular = || Tar::header(EntryType::Regular, 0o644);
        let hardlink = || Tar::header(EntryType::Link, 0o644);
        // One entry each: its header, name, link target and data.
        let single = [
            ("inner dot-dot", regular(), "usr/../../escape", "", "x"),
            ("absolute", regular(), "/etc/passwd", "", "x"),
            ("hard link out", hardlink(), "h", "../../etc/shadow", ""),
            ("absolute hard link", hardlink(), "h", "/etc/shadow", ""),
            ("file as root", regular(), "./", "", "x"),
        ];
        let mut t = Tar::new();
        t.file("ok", 0o644, b"x")
            .raw(regular(), b"../escape", b"", b"x");
        let mut cases = vec![("dot-dot", t.bytes(), "../escape")];
        for (what, header, name, link, data) in single {
            let mut t = Tar::new();
            t.raw(header, name.as_bytes(), link.as_bytes(), data.as_bytes());
            cases.push((what, t.bytes(), name));
        }
        let mut t = Tar::new();
        t.pax(&[("path", b"../pax-escape")])
            .raw(regular(), b"innocent", b"", b"x");
        cases.push(("PAX path", t.bytes(), "../pax-escape"));
        // A GNU long name and a PAX path that disagree: readers differ on which one wins.
        let mut t = Tar::new();
        t.pax(&[("path", b"usr/pax-name")]);
        let mut h = regular();
        h.set_size(1);
        t.0.append_data(&mut h, format!("usr/{}", "g".repeat(120)), &b"x"[..])
            .unwrap();
        let gnu_name = Box::leak(format!("usr/{}", "g".repeat(120)).into_boxed_str());
        cases.push(("two names", t.bytes(), gnu_name));
        let mut t = Tar::new();
        t.link(EntryType::Symlink, "opt", "/var/opt");
        cases.push(("opt symlink", t.bytes(), "opt"));
        let mut t = Tar::new();
        t.file("etc", 0o644, b"not a directory");
        cases.push(("etc file", t.bytes(), "etc"));
        cases
    }

    #[test]
    fn unsafe_and_conflicting_entries_are_refused_and_leave_nothing() {
        for (what, archive, entry) in refused_archives() {
            let mut out = Vec::new();
            let err = repack(&archive[..], &mut out, &extras(true)).unwrap_err();
            // No end-of-archive blocks: a cut archive must not read as a whole one.
            assert!(!out.ends_with(&[0; 1024]), "{what}");
            match &err {
                RepackError::UnsafePath { entry: e, .. }
                | RepackError::Conflict { entry: e, .. } => {
                    assert_eq!(e, entry, "{what}: {err}")
                }
                other => panic!("{what}: unexpected {other:?}"),
            }
            assert!(
                err.to_string().contains(&format!("`{entry}`")),
                "{what}: {err}"
            );

            for compression in [Compression::Gzip, Compression::Xz] {
                let dir = tempfile::tempdir().unwrap();
                let fresh = dir.path().join("new.tar.gz");
                assert!(repack_to_file(&archive[..], &fresh, &extras(true), compression).is_err());
                // An existing file stays as it was.
                let existing = dir.path().join("existing.wsl");
                fs::write(&existing, b"previous").unwrap();
                assert!(
                    repack_to_file(&archive[..], &existing, &extras(true), compression).is_err()
                );
                let left: Vec<_> = fs::read_dir(dir.path())
                    .unwrap()
                    .map(|e| e.unwrap().file_name())
                    .collect();
                assert_eq!(left, ["existing.wsl"], "{what}");
                assert_eq!(fs::read(&existing).unwrap(), b"previous");
            }
        }
    }

    #[test]
    fn distrod_exe_is_added_when_given() {
        let mut t = Tar::new();
        t.dir("opt", 0o755);
        let input = t.bytes();
        let exe = b"MZ\x90\0 distrod.exe";
        let e = Extras {
            windows_exe: Some(exe),
            ..extras(false)
        };
        let (out, _) = repack_vec(&input, &e).unwrap();
        let after = members(&out);
        let m = after
            .iter()
            .find(|m| m.path() == WINDOWS_EXE)
            .expect("distrod.exe in the tar");
        assert_eq!(m.data, exe);
        assert_eq!(m.mode(), 0o755);
        assert_eq!(m.ids(), (0, 0));
        assert_eq!(m.kind(), EntryType::Regular);
        // Without it, none.
        let (out, _) = repack_vec(&input, &extras(false)).unwrap();
        assert!(members(&out).iter().all(|m| m.path() != WINDOWS_EXE));
    }

    #[test]
    fn etc_may_be_anything_when_no_wsl_conf_is_added() {
        let mut t = Tar::new();
        t.link(EntryType::Symlink, "etc", "usr/etc").file(
            "etc-not/wsl-distribution.conf",
            0o644,
            b"kept",
        );
        let (out, report) = repack_vec(&t.bytes(), &extras(false)).unwrap();
        let after = members(&out);
        let paths: Vec<String> = after.iter().map(Member::path).collect();
        let before = ["etc", "etc-not/wsl-distribution.conf", "opt"];
        assert_eq!(paths, [&before[..], &DISTROD_TREE[..]].concat());
        assert!(report.replaced.is_empty());
        // `opt` was missing: added as a root-owned 0755 directory.
        assert_eq!(after[2].kind(), EntryType::Directory);
        assert_eq!(after[2].mode(), 0o755);
        assert_eq!(after[2].ids(), (0, 0));
        // The input's own wsl-distribution.conf is kept when none is given.
        let mut t = Tar::new();
        t.dir("etc", 0o755)
            .file("etc/wsl-distribution.conf", 0o644, b"theirs");
        let (out, report) = repack_vec(&t.bytes(), &extras(false)).unwrap();
        assert!(report.replaced.is_empty());
        let conf: Vec<Member> = members(&out)
            .into_iter()
            .filter(|m| m.path() == WSL_CONF)
            .collect();
        assert_eq!(conf.len(), 1);
        assert_eq!(conf[0].data, b"theirs");
    }

    #[test]
    fn missing_etc_is_added_for_the_wsl_conf() {
        let mut t = Tar::new();
        t.dir("usr", 0o755);
        let (out, _) = repack_vec(&t.bytes(), &extras(true)).unwrap();
        let after = members(&out);
        let paths: Vec<String> = after.iter().map(Member::path).collect();
        assert_eq!(&paths[..2], ["usr", "opt"]);
        assert_eq!(&paths[paths.len() - 2..], ["etc", WSL_CONF]);
        let etc = &after[paths.len() - 2];
        assert_eq!(
            (etc.kind(), etc.mode(), etc.ids()),
            (EntryType::Directory, 0o755, (0, 0))
        );
    }

    #[test]
    fn wsl_distribution_conf_format() {
        assert_eq!(
            wsl_distribution_conf("/usr/lib/wsl/distrod-oobe.sh", 1001, "Debian"),
            "# Written by distrod.\n\
             [oobe]\n\
             command = /usr/lib/wsl/distrod-oobe.sh\n\
             defaultUid = 1001\n\
             defaultName = Debian\n\
             \n\
             [shortcut]\n\
             enabled = true\n\
             \n\
             [windowsterminal]\n\
             enabled = true\n"
        );
        // A line break cannot smuggle in another setting.
        let conf = wsl_distribution_conf("a\ndefaultUid = 0", 1000, "x\r\ny");
        assert!(conf.contains("command = a defaultUid = 0\n"));
        assert!(conf.contains("defaultName = x  y\n"));
        let uids: Vec<&str> = conf
            .lines()
            .filter(|l| l.starts_with("defaultUid"))
            .collect();
        assert_eq!(uids, ["defaultUid = 1000"]);
    }

    #[test]
    fn gzip_and_xz_files_round_trip() {
        let input = sample_rootfs();
        for (compression, format) in [
            (Compression::Gzip, crate::image::decode::Format::Gzip),
            (Compression::Xz, crate::image::decode::Format::Xz),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("distrod.wsl");
            fs::write(&path, b"replaced").unwrap();
            let report = repack_to_file(&input[..], &path, &extras(true), compression).unwrap();
            let left: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left, ["distrod.wsl"], "no temporary file is left");
            let file = io::BufReader::new(File::open(&path).unwrap());
            let mut decoder = crate::image::decode::Decoder::new(file).unwrap();
            assert_eq!(decoder.format(), format);
            let mut tar = Vec::new();
            decoder.read_to_end(&mut tar).unwrap();
            check_sample_output(&input, &tar, &report);
        }
    }

    use crate::image::testing::FailingReader;

    #[test]
    fn reader_errors_and_truncation_are_read_errors() {
        let mut t = Tar::new();
        t.file("first", 0o644, &[1; 600_000])
            .file("second", 0o644, b"2");
        let archive = t.bytes();
        let reader = FailingReader::new(archive.clone(), 512 + 300_000);
        let err = repack(reader, io::sink(), &extras(false)).unwrap_err();
        let RepackError::Read { at, source } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(at, "in the data of `first`");
        assert_eq!(
            source.to_string(),
            "sha256 mismatch: expected 0123, got 4567"
        );

        let reader = FailingReader::new(archive.clone(), 512 + 600_064);
        let err = repack(reader, io::sink(), &extras(false)).unwrap_err();
        assert!(
            matches!(&err, RepackError::Read { at, .. } if at == "after entry `first`"),
            "{err:?}"
        );

        // Cut in the middle of the data: an error, never a short member.
        let err = repack(&archive[..512 + 1000], io::sink(), &extras(false)).unwrap_err();
        let RepackError::Read { source, .. } = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.tar.gz");
        assert!(
            repack_to_file(
                &archive[..512 + 1000],
                &path,
                &extras(false),
                Compression::Gzip
            )
            .is_err()
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn write_errors_are_write_errors() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let err = repack(&sample_rootfs()[..], Full, &extras(true)).unwrap_err();
        let RepackError::Write(source) = &err else {
            panic!("{err:?}");
        };
        assert_eq!(source.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn gnu_sparse_files_become_regular_files() {
        let mut h = Tar::header(EntryType::GNUSparse, 0o644);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.sparse[1].set_offset(1 << 20);
        gnu.sparse[1].set_length(512);
        // A zero-length final block is how GNU tar records a trailing hole.
        gnu.sparse[2].set_offset((1 << 20) + 4096);
        gnu.sparse[2].set_length(0);
        gnu.set_real_size((1 << 20) + 4096);
        let mut data = vec![b'A'; 512];
        data.extend_from_slice(&[b'B'; 512]);
        let mut t = Tar::new();
        t.raw(h, b"var/sparse", b"", &data)
            .file("after", 0o644, b"after");
        let (out, _) = repack_vec(&t.bytes(), &extras(false)).unwrap();
        let after = members(&out);
        assert_eq!(after[0].path(), "var/sparse");
        assert_eq!(after[0].kind(), EntryType::Regular);
        let content = &after[0].data;
        assert_eq!(content.len(), (1 << 20) + 4096);
        assert!(content[..512].iter().all(|&b| b == b'A'));
        assert!(content[1 << 20..(1 << 20) + 512].iter().all(|&b| b == b'B'));
        assert!(content[512..1 << 20].iter().all(|&b| b == 0));
        assert_eq!(after[1].data, b"after");
    }

    /// A generated rootfs tar, produced as it is read: `files` files of `size` bytes each.
    struct GeneratedTar {
        files: u64,
        size: u64,
        next_file: u64,
        chunk: Vec<u8>,
        pos: usize,
        /// Data still to produce for the current file (then padding).
        data_left: u64,
        pad_left: u64,
        ended: bool,
        served: Rc<Cell<u64>>,
    }

    impl Read for GeneratedTar {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos == self.chunk.len() {
                self.chunk.clear();
                self.pos = 0;
                if self.data_left > 0 {
                    let n = self.data_left.min(64 * 1024);
                    self.chunk
                        .extend((0..n).map(|i| (i as u8).wrapping_mul(31)));
                    self.data_left -= n;
                } else if self.pad_left > 0 {
                    self.chunk.resize(self.pad_left as usize, 0);
                    self.pad_left = 0;
                } else if self.next_file < self.files {
                    let mut h = Tar::header(EntryType::Regular, 0o644);
                    h.set_path(format!("data/file-{}", self.next_file)).unwrap();
                    h.set_size(self.size);
                    h.set_cksum();
                    self.chunk.extend_from_slice(h.as_bytes());
                    self.data_left = self.size;
                    self.pad_left = (512 - self.size % 512) % 512;
                    self.next_file += 1;
                } else if !self.ended {
                    self.chunk.resize(1024, 0);
                    self.ended = true;
                } else {
                    return Ok(0);
                }
            }
            let n = buf.len().min(self.chunk.len() - self.pos);
            buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
            self.pos += n;
            self.served.set(self.served.get() + n as u64);
            Ok(n)
        }
    }

    /// Discards what it gets, recording how far output ever lagged behind input.
    struct LagWriter {
        served: Rc<Cell<u64>>,
        written: u64,
        max_lag: u64,
    }

    impl Write for LagWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written += buf.len() as u64;
            self.max_lag = self
                .max_lag
                .max(self.served.get().saturating_sub(self.written));
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn large_archives_stream_through_bounded_buffers() {
        let served = Rc::new(Cell::new(0));
        let input = GeneratedTar {
            files: 6,
            size: 24 * 1024 * 1024 + 100,
            next_file: 0,
            chunk: Vec::new(),
            pos: 0,
            data_left: 0,
            pad_left: 0,
            ended: false,
            served: served.clone(),
        };
        let mut out = LagWriter {
            served: served.clone(),
            written: 0,
            max_lag: 0,
        };
        let report = repack(input, &mut out, &extras(true)).unwrap();
        let total = served.get();
        assert!(total > 6 * 24 * 1024 * 1024, "{total}");
        assert_eq!(report.bytes, out.written);
        assert!(out.written > total, "the extras are added");
        // opt, opt/distrod, bin, the binary, lib, lib/systemd, share, the two overlay
        // files, usr, usr/lib, usr/lib/wsl, the script, etc, the conf.
        assert_eq!(report.entries, 6 + 15);
        // What is in flight is the read and write buffers, never a file or the archive.
        assert!(
            out.max_lag <= 2 * IO_BUFFER_SIZE as u64 + 64 * 1024,
            "output lagged input by {} bytes",
            out.max_lag
        );
    }

    /// The output unpacks with distrod's own unpacker, the extras where they belong.
    #[cfg(unix)]
    #[test]
    fn output_unpacks() {
        use std::os::unix::fs::PermissionsExt;
        let (out, _) = repack_vec(&sample_rootfs(), &extras(true)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let opts = crate::image::unpack::UnpackOptions {
            preserve_owners: false,
            make_devices: false,
        };
        crate::image::unpack::unpack(&out[..], dir.path(), &opts).unwrap();
        let bin = dir.path().join(DISTROD_BINARY);
        assert_eq!(fs::read(&bin).unwrap(), DISTROD);
        assert_eq!(
            fs::metadata(&bin).unwrap().permissions().mode() & 0o7777,
            0o4755
        );
        assert!(!dir.path().join("opt/distrod/alias").exists());
        assert!(!dir.path().join("usr/local/bin/distrod-copy").exists());
        assert_eq!(
            fs::read(dir.path().join(format!("{}/pax-long-name.txt", long_dir()))).unwrap(),
            b"pax long"
        );
        assert!(
            fs::read_to_string(dir.path().join(WSL_CONF))
                .unwrap()
                .contains("[oobe]\ncommand = /usr/lib/wsl/distrod-oobe.sh\ndefaultUid = 1001\n")
        );
        let script = dir.path().join(OOBE_SCRIPT);
        assert_eq!(
            fs::read(&script).unwrap(),
            oobe_script(1001, true).as_bytes()
        );
        assert_eq!(
            fs::metadata(&script).unwrap().permissions().mode() & 0o7777,
            0o755
        );
    }

    /// The package's first-start script and configuration, as the output has them.
    fn first_start(out: &[u8]) -> (Option<String>, Option<String>) {
        let after = members(out);
        let text = |path: &str| {
            after
                .iter()
                .rfind(|m| m.path() == path)
                .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        };
        (text(OOBE_SCRIPT), text(WSL_CONF))
    }

    /// The archive `build` makes.
    fn tar_of(build: impl FnOnce(&mut Tar)) -> Vec<u8> {
        let mut t = Tar::new();
        build(&mut t);
        t.bytes()
    }

    /// passwd(5) text with root and an account for each of `uids`.
    fn passwd_with(uids: &[u32]) -> Vec<u8> {
        let mut text = String::from("root:x:0:0:root:/root:/bin/sh\n");
        for u in uids {
            text += &format!("u{u}:x:{u}:{u}::/home/u{u}:/bin/sh\n");
        }
        text.into_bytes()
    }

    #[test]
    fn a_package_gives_its_first_user_the_first_free_uid_of_the_image() {
        let uid_of = |tar: Vec<u8>| repack_vec(&tar, &extras(true)).unwrap().1.default_uid;

        // No /etc/passwd at all, or no ordinary account: UID_MIN's default.
        assert_eq!(
            uid_of(tar_of(|t| {
                t.dir("usr", 0o755);
            })),
            Some(1000)
        );
        let none = passwd_with(&[]);
        assert_eq!(
            uid_of(tar_of(|t| {
                t.file("etc/passwd", 0o644, &none);
            })),
            Some(1000)
        );
        // The first gap at or above UID_MIN.
        let gap = passwd_with(&[1000, 1001, 1003, 65534]);
        let input = tar_of(|t| {
            t.dir("etc", 0o755).file("etc/passwd", 0o644, &gap);
        });
        let (out, report) = repack_vec(&input, &extras(true)).unwrap();
        assert_eq!(report.default_uid, Some(1002));
        let (script, conf) = first_start(&out);
        let script = script.unwrap();
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            script.ends_with("\nexec /opt/distrod/bin/distrod firstboot --uid 1002 \"$@\"\n"),
            "{script}"
        );
        let conf = conf.unwrap();
        assert!(
            conf.contains("command = /usr/lib/wsl/distrod-oobe.sh\ndefaultUid = 1002\n"),
            "{conf}"
        );
        // UID_MIN (and UID_MAX) of the image's login.defs.
        let defs = |defs: &'static [u8], passwd: Vec<u8>| {
            tar_of(move |t| {
                t.file("etc/login.defs", 0o644, defs)
                    .file("etc/passwd", 0o644, &passwd);
            })
        };
        assert_eq!(
            uid_of(defs(b"UID_MIN\t\t 1001\nUID_MAX 60000\n", gap.clone())),
            Some(1002)
        );
        assert_eq!(
            uid_of(defs(
                b"# UID_MIN 5\nUID_MIN 2000\n",
                passwd_with(&[1000, 2000])
            )),
            Some(2001)
        );
        // The last entry of a path wins, as on extraction, however it is spelled.
        let taken = passwd_with(&[1000]);
        let input = tar_of(|t| {
            t.file("etc/passwd", 0o644, &none)
                .file("./etc/passwd", 0o644, &taken);
        });
        assert_eq!(uid_of(input), Some(1001));
        // A range with nothing free is refused, naming it.
        let full = defs(b"UID_MIN 1000\nUID_MAX 1001\n", passwd_with(&[1000, 1001]));
        let err = repack_vec(&full, &extras(true)).unwrap_err().to_string();
        assert!(err.contains("1000..=1001"), "{err}");
        // Without a package nothing is read, chosen or added.
        let (out, report) = repack_vec(&full, &extras(false)).unwrap();
        assert_eq!(report.default_uid, None);
        assert_eq!(first_start(&out), (None, None));
    }

    #[test]
    fn a_package_refuses_an_etc_passwd_whose_accounts_it_cannot_read() {
        let root = b"root:x:0:0::/root:/bin/sh\n";
        let inputs = [
            tar_of(|t| {
                t.dir("etc", 0o755)
                    .link(EntryType::Symlink, "etc/passwd", "../usr/etc/passwd");
            }),
            tar_of(|t| {
                t.file("etc/passwd-", 0o644, root).link(
                    EntryType::Link,
                    "etc/passwd",
                    "etc/passwd-",
                );
            }),
            tar_of(|t| {
                t.dir("etc/passwd", 0o755);
            }),
        ];
        for input in inputs {
            let err = repack_vec(&input, &extras(true)).unwrap_err();
            assert!(
                matches!(&err, RepackError::Conflict { entry, .. } if entry == "etc/passwd"),
                "{err:?}"
            );
            assert!(err.to_string().contains("not a regular file"), "{err}");
            // Not a package: none of distrod's business.
            repack_vec(&input, &extras(false)).unwrap();
        }
        // A later regular file is what extraction leaves: accepted.
        let input = tar_of(|t| {
            t.link(EntryType::Symlink, "etc/passwd", "x")
                .file("etc/passwd", 0o644, root);
        });
        let (_, report) = repack_vec(&input, &extras(true)).unwrap();
        assert_eq!(report.default_uid, Some(1000));
    }

    #[test]
    fn a_package_keeps_the_images_usr_lib_wsl_and_refuses_one_that_is_no_directory() {
        let input = tar_of(|t| {
            t.dir("usr", 0o755)
                .dir("usr/lib", 0o755)
                .dir("usr/lib/wsl", 0o755)
                .file("usr/lib/wsl/theirs.ico", 0o644, b"icon")
                .file("usr/lib/wsl/distrod-oobe.sh", 0o755, b"#!/bin/sh\nold\n");
        });
        let (out, report) = repack_vec(&input, &extras(true)).unwrap();
        assert_eq!(report.replaced, [OOBE_SCRIPT]);
        let after = members(&out);
        let count = |p: &str| after.iter().filter(|m| m.path() == p).count();
        assert_eq!(count("usr/lib/wsl"), 1, "not added again");
        assert_eq!(count("usr/lib/wsl/theirs.ico"), 1);
        assert_eq!(count(OOBE_SCRIPT), 1);
        assert_eq!(first_start(&out).0.unwrap(), oobe_script(1000, true));

        for dir in ["usr", "usr/lib", "usr/lib/wsl"] {
            let input = tar_of(|t| {
                t.link(EntryType::Symlink, dir, "/elsewhere");
            });
            let err = repack_vec(&input, &extras(true)).unwrap_err();
            assert!(
                matches!(&err, RepackError::Conflict { entry, .. } if entry == dir),
                "{dir}: {err:?}"
            );
            repack_vec(&input, &extras(false)).unwrap();
        }
    }

    /// Whether the image boots systemd is read off its entries as they stream past: an
    /// Alpine-like image (busybox as /sbin/init) is found out, with its os-release's hint;
    /// a Debian-like one (merged /usr, /sbin/init a link to systemd) is fine; the package
    /// of a plain distro does not enable distrod at its first start.
    #[test]
    fn the_init_of_the_image_is_read_as_it_streams() {
        let mut alpine = Tar::new();
        alpine
            .dir("etc", 0o755)
            .file(
                "etc/os-release",
                0o644,
                b"NAME=\"Alpine Linux\"\nID=alpine\n",
            )
            .dir("bin", 0o755)
            .file("bin/busybox", 0o755, b"\x7fELF")
            .dir("sbin", 0o755)
            .link(EntryType::Symlink, "sbin/init", "/bin/busybox");
        let (_, report) = repack_vec(&alpine.bytes(), &extras(false)).unwrap();
        let no = report.no_systemd.expect("alpine has no systemd");
        assert_eq!(
            no.missing,
            crate::initsys::Missing::OtherInit("bin/busybox".into())
        );
        assert!(no.to_string().contains("OpenRC"), "{no}");

        let debian = |with_systemd: bool| {
            let mut t = Tar::new();
            t.link(EntryType::Symlink, "lib", "usr/lib")
                .link(EntryType::Symlink, "sbin", "usr/sbin")
                .dir("usr", 0o755)
                .dir("usr/lib", 0o755)
                .file("usr/lib/os-release", 0o644, b"ID=debian\n")
                .dir("usr/lib/systemd", 0o755);
            if with_systemd {
                t.file("usr/lib/systemd/systemd", 0o755, b"\x7fELF");
            }
            t.dir("usr/sbin", 0o755)
                .link(
                    EntryType::Symlink,
                    "usr/sbin/init",
                    "../lib/systemd/systemd",
                )
                .dir("etc", 0o755)
                .link(
                    EntryType::Symlink,
                    "etc/os-release",
                    "../usr/lib/os-release",
                );
            t.bytes()
        };
        let (_, report) = repack_vec(&debian(true), &extras(true)).unwrap();
        assert_eq!(report.no_systemd, None);
        // Without systemd: the hint comes from usr/lib/os-release (etc's is a link).
        let (_, report) = repack_vec(&debian(false), &extras(false)).unwrap();
        let no = report.no_systemd.expect("no systemd");
        assert_eq!(no.missing, crate::initsys::Missing::NoSystemd);
        assert!(no.hint.contains("apt install systemd-sysv"), "{no}");

        let plain = oobe_script(1000, false);
        assert!(
            plain.contains("firstboot --uid 1000 --no-enable"),
            "{plain}"
        );
        assert!(!oobe_script(1000, true).contains("--no-enable"));
    }
}
