//! Safe, streaming extraction of a root filesystem tarball into an empty directory.
//!
//! This module owns everything between "here is a plain (already decompressed) tar stream" and
//! "`dest` holds the root filesystem": path validation, symlink-safe path resolution, creating
//! every kind of node a rootfs contains, and restoring numeric owners, modes (including
//! setuid/setgid/sticky), extended attributes (file capabilities live there) and mtimes.
//! Decompression, hashing and the final rename of `dest` belong to the caller.
//!
//! It deliberately does not use `tar::Entry::unpack{,_in}`: those follow symlinks in parent
//! components created by the archive itself, and know nothing about rootfs semantics.
//!
//! Safety rules (every entry, including hard link targets):
//! * An entry path may only contain normal components and `.`; `..`, absolute paths and NUL
//!   bytes are refused ([`super::tarpath`], the rule of repacking too). `./` itself stands
//!   for `dest`.
//! * Parent components are resolved by hand, one `openat(2)` with `O_NOFOLLOW` at a time, under
//!   `dest`. A symlink met on the way is expanded with *rootfs semantics*: an absolute target
//!   starts again at `dest` (that is where `/` will be inside the container), and a `..` that
//!   would climb above `dest` is an error naming the entry and the link. Loops are cut after
//!   40 expansions, like the kernel's own limit (path_resolution(7)).
//! * The final component is never followed: whatever exists there is removed and the new node
//!   is created with `O_CREAT|O_EXCL|O_NOFOLLOW` (or `mkdirat`/`symlinkat`/`mknodat`/`linkat`,
//!   which never follow a final symlink either). The one exception is a directory entry that
//!   lands on a symlink resolving (inside `dest`) to a directory: the link is kept, as GNU tar's
//!   `--keep-directory-symlink` does, because merged-/usr trees rely on it. A non-empty
//!   directory is never replaced by a non-directory.
//! * Symlink *targets* are stored verbatim: `/etc/mtab -> ../proc/self/mounts` is fine, only
//!   writing through such a link is not.
//!
//! Metadata, per node, in this order: create, write the data, `lchown` (numeric ids from the
//! header, never names: no NSS look-ups), `chmod`, xattrs, times. chown(2) clears setuid/setgid
//! and drops `security.capability`, so mode and xattrs must come after it. Directory times are
//! applied at the end, deepest first, since adding children changes them; so are directory
//! modes that would lock the owner out (no `rwx` for the owner). Xattrs come from PAX
//! `SCHILY.xattr.*` records: `user.*` always (on files and directories, the only nodes that
//! can carry them), `security.*` and `trusted.*` only with [`UnpackOptions::preserve_owners`];
//! a failure is counted, not fatal.
//!
//! Memory use does not depend on the size of the data: file contents stream through one reused
//! buffer. What does grow is bookkeeping proportional to the number of directories (their
//! mtimes are applied at the end) and of skipped unknown entries (reported by path).

use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, open, openat, readlinkat};
use nix::sys::stat::{
    FchmodatFlags, FileStat, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstatat, futimens,
    makedev, mkdirat, mknodat, utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};

use super::tarpath::{self, LinkTarget};

/// How many symlinks one path resolution may expand; the kernel's MAXSYMLINKS is 40 too.
const MAX_SYMLINK_HOPS: u32 = 40;

/// Size of the buffer file data is copied through: big enough that `write(2)` calls do not
/// dominate, small enough not to matter.
const COPY_BUFFER_SIZE: usize = 256 * 1024;

/// What [`unpack`] may do beyond creating files, directories and links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackOptions {
    /// `lchown` every node to the numeric uid/gid of its header, and restore `security.*` and
    /// `trusted.*` extended attributes. Needs `CAP_CHOWN` and `CAP_SETFCAP`/`CAP_SYS_ADMIN`.
    pub preserve_owners: bool,
    /// Create character and block devices with `mknod(2)` (needs `CAP_MKNOD`); otherwise they
    /// are skipped and counted in [`UnpackReport::skipped_devices`].
    pub make_devices: bool,
}

impl UnpackOptions {
    /// Everything when running as root (effective uid 0), nothing privileged otherwise.
    pub fn for_current_user() -> Self {
        let root = nix::unistd::geteuid().is_root();
        Self {
            preserve_owners: root,
            make_devices: root,
        }
    }
}

/// What [`unpack`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// Archive members processed (PAX global headers excluded).
    pub entries: u64,
    /// Regular files written (hard links not included).
    pub files: u64,
    /// Bytes of file data written.
    pub bytes: u64,
    /// Character and block devices skipped because [`UnpackOptions::make_devices`] was off.
    pub skipped_devices: u64,
    /// Entries of kinds this unpacker does not create, by path.
    pub skipped_other: Vec<String>,
    /// Extended attributes that could not be set (filesystem without xattr support, missing
    /// privilege, value rejected by the kernel).
    pub xattr_failures: u64,
}

/// Why [`unpack`] stopped. Nothing is cleaned up: `dest` is the caller's to remove.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The entry's path (or a hard link's target) is not a plain relative path.
    #[error("refusing tar entry `{entry}`: {reason}")]
    UnsafePath {
        /// The entry's path, as the archive names it.
        entry: String,
        /// What is wrong with the path.
        reason: String,
    },
    /// Resolving the entry's parent directories went through a symlink that leads out of the
    /// destination.
    #[error(
        "refusing tar entry `{entry}`: its path goes through symlink `{link}` -> `{target}`, \
         which leads outside the destination"
    )]
    SymlinkEscape {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The symlink, relative to the destination.
        link: String,
        /// What it points to.
        target: String,
    },
    /// Resolving the entry's parent directories expanded too many symlinks.
    #[error("refusing tar entry `{entry}`: too many levels of symbolic links at `{link}`")]
    SymlinkLoop {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The symlink at which the limit was reached.
        link: String,
    },
    /// A hard link whose target is (or resolves to) a path outside the destination.
    #[error("refusing tar entry `{entry}`: hard link target `{target}` is outside the destination")]
    HardlinkOutside {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The link's target, as the archive names it.
        target: String,
    },
    /// A hard link whose target was not created by an earlier entry.
    #[error(
        "refusing tar entry `{entry}`: hard link target `{target}` does not exist \
         (it must appear earlier in the archive)"
    )]
    HardlinkTargetMissing {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The link's target, as the archive names it.
        target: String,
    },
    /// A parent component of the entry exists but is not a directory (nor a symlink to one).
    #[error("refusing tar entry `{entry}`: `{component}` is not a directory")]
    NotADirectory {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The parent that is not a directory, relative to the destination.
        component: String,
    },
    /// The entry would replace a directory that has contents.
    #[error("refusing tar entry `{entry}`: it would replace the non-empty directory `{path}`")]
    NonEmptyDirectory {
        /// The entry's path, as the archive names it.
        entry: String,
        /// The directory, relative to the destination.
        path: String,
    },
    /// A header field that cannot be parsed or used.
    #[error("refusing tar entry `{entry}`: invalid {field}")]
    InvalidHeader {
        /// The entry's path, as the archive names it.
        entry: String,
        /// Which field (`device number`, `xattr name`, `hard link target`...).
        field: &'static str,
        /// What is wrong with it.
        #[source]
        source: io::Error,
    },
    /// Reading the archive failed: the reader's own error (for example a hash mismatch or a
    /// network failure injected by the caller) is the source, unchanged.
    #[error("failed to read the tar archive {at}")]
    Archive {
        /// How far the archive was read (`at its start`, `after entry NAME`).
        at: String,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation under the destination failed.
    #[error("failed to {what} `{}`", path.display())]
    Io {
        /// What was being done, as a verb phrase (`open destination directory`).
        what: String,
        /// The path it was done to.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
}

/// Unpacks the plain tar stream `archive` into `dest`, an existing empty directory nobody else
/// writes into, following the rules in the module documentation.
pub fn unpack<R: Read>(
    archive: R,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackReport, UnpackError> {
    let root = open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error("open destination directory", dest.to_path_buf(), e))?;
    let mut unpacker = Unpacker {
        dest,
        opts: *opts,
        root: Rc::new(root),
        report: UnpackReport::default(),
        buf: vec![0; COPY_BUFFER_SIZE],
        dirs: HashMap::new(),
        cache: None,
    };
    let mut archive = tar::Archive::new(archive);
    super::for_each_entry(
        &mut archive,
        |at, source| UnpackError::Archive { at, source },
        |entry, name| unpacker.entry(entry, name),
    )?;
    unpacker.finish()?;
    Ok(unpacker.report)
}

/// A directory inside the destination, reached without leaving it.
#[derive(Clone)]
struct Dir {
    /// `O_PATH` descriptor (or the destination's own descriptor), used as the `dirfd` of the
    /// `*at` calls so nothing is looked up by path twice.
    fd: Rc<OwnedFd>,
    /// Where it is, relative to the destination, with every symlink resolved.
    rel: PathBuf,
}

/// One step of a path walk.
enum Step {
    Root,
    Parent,
    Name(OsString),
}

/// The symlink whose target produced a step: named in errors.
struct Origin {
    link: PathBuf,
    target: OsString,
}

/// The kinds of node metadata is applied to, which decides the allowed xattr namespaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NodeKind {
    File,
    Dir,
    Symlink,
    Special,
}

enum XattrTarget<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a CStr),
}

/// Header metadata of one entry.
struct Meta {
    /// Permission bits including setuid, setgid and sticky.
    mode: u32,
    uid: u32,
    gid: u32,
    atime: TimeSpec,
    mtime: TimeSpec,
    xattrs: Vec<(CString, Vec<u8>)>,
}

/// What is left to do to a directory once the whole archive is written.
struct DirFixup {
    /// Set when the mode was held back (see [`needs_deferred_mode`]).
    mode: Option<u32>,
    atime: TimeSpec,
    mtime: TimeSpec,
}

struct Unpacker<'a> {
    dest: &'a Path,
    opts: UnpackOptions,
    root: Rc<OwnedFd>,
    report: UnpackReport,
    buf: Vec<u8>,
    dirs: HashMap<PathBuf, DirFixup>,
    /// The last resolved parent: archives are sorted, so consecutive entries mostly share it.
    /// Dropped whenever something is removed, the only way an earlier resolution can go stale.
    cache: Option<(Vec<OsString>, Dir)>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            tracing::debug!("ignoring PAX global header `{name}`");
            return Ok(());
        }
        self.report.entries += 1;
        let raw_path = entry.path_bytes().into_owned();
        let comps = tarpath::components(&raw_path)
            .map(os_strings)
            .map_err(|reason| unsafe_path(name, reason.into()))?;
        let is_dir = tarpath::is_directory(entry.header(), &raw_path);
        if comps.is_empty() && !is_dir {
            return Err(unsafe_path(
                name,
                "only a directory may stand for the destination root".into(),
            ));
        }
        match kind {
            _ if is_dir => {
                let meta = read_meta(entry, name)?;
                self.directory(name, &comps, &meta)
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let meta = read_meta(entry, name)?;
                self.file(
                    entry,
                    name,
                    &comps,
                    &meta,
                    kind == tar::EntryType::GNUSparse,
                )
            }
            tar::EntryType::Symlink => {
                let meta = read_meta(entry, name)?;
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.symlink(name, &comps, target, &meta)
            }
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.hardlink(name, &comps, target)
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                if !self.opts.make_devices {
                    tracing::debug!("skipping device node `{name}`");
                    self.report.skipped_devices += 1;
                    return Ok(());
                }
                let meta = read_meta(entry, name)?;
                let major = device_number(entry.header().device_major(), name)?;
                let minor = device_number(entry.header().device_minor(), name)?;
                let sflag = if kind == tar::EntryType::Char {
                    SFlag::S_IFCHR
                } else {
                    SFlag::S_IFBLK
                };
                self.special(
                    name,
                    &comps,
                    &meta,
                    sflag,
                    makedev(major.into(), minor.into()),
                )
            }
            tar::EntryType::Fifo => {
                let meta = read_meta(entry, name)?;
                self.special(name, &comps, &meta, SFlag::S_IFIFO, 0)
            }
            _ => {
                tracing::debug!("skipping `{name}` of unsupported kind {kind:?}");
                self.report.skipped_other.push(name.to_owned());
                Ok(())
            }
        }
    }

    fn directory(
        &mut self,
        name: &str,
        comps: &[OsString],
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let Some((last, parent)) = comps.split_last() else {
            return self.root_directory(meta);
        };
        let dir = self.create_parent(name, parent)?;
        let rel = dir.rel.join(last);
        match fstatat(&*dir.fd, last.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_type(&st, libc::S_IFDIR) => {}
            Ok(st) if is_type(&st, libc::S_IFLNK) && self.is_dir_symlink(name, &dir, last)? => {
                // GNU tar's --keep-directory-symlink: merged-/usr images ship `lib -> usr/lib`
                // and still list `./lib/` as a directory. The link's target gets its own entry.
                tracing::debug!("keeping directory symlink `{}`", rel.display());
                return Ok(());
            }
            Ok(_) => {
                self.remove_existing(name, &dir, last)?;
                self.make_dir(&dir, last)?;
            }
            Err(Errno::ENOENT) => self.make_dir(&dir, last)?,
            Err(e) => return Err(self.io("inspect", &rel, e)),
        }
        self.chown_kept(&dir, last, &rel, meta)?;
        let deferred_mode = if needs_deferred_mode(meta.mode) {
            Some(meta.mode)
        } else {
            // `last` was just checked to be a directory.
            self.chmod(&dir.fd, last, &rel, mode_bits(meta.mode))?;
            None
        };
        if !meta.xattrs.is_empty() {
            let path = self.c_path(&rel);
            self.set_xattrs(XattrTarget::Path(&path), meta, NodeKind::Dir);
        }
        self.dirs.insert(
            rel,
            DirFixup {
                mode: deferred_mode,
                atime: meta.atime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    /// `./` describes the destination itself.
    fn root_directory(&mut self, meta: &Meta) -> Result<(), UnpackError> {
        let root = Rc::clone(&self.root);
        if self.opts.preserve_owners {
            fchown(
                &*root,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| self.io("change the owner of", Path::new(""), e))?;
        }
        let deferred_mode = if needs_deferred_mode(meta.mode) {
            Some(meta.mode)
        } else {
            fchmod(&*root, mode_bits(meta.mode))
                .map_err(|e| self.io("change the mode of", Path::new(""), e))?;
            None
        };
        self.set_xattrs(XattrTarget::Fd(root.as_fd()), meta, NodeKind::Dir);
        self.dirs.insert(
            PathBuf::new(),
            DirFixup {
                mode: deferred_mode,
                atime: meta.atime,
                mtime: meta.mtime,
            },
        );
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        comps: &[OsString],
        meta: &Meta,
        sparse: bool,
    ) -> Result<(), UnpackError> {
        let (last, parent) = comps.split_last().expect("checked by the caller");
        let dir = self.create_parent(name, parent)?;
        let rel = dir.rel.join(last);
        // 0600 until the data is in: the final mode may lack owner write, and nobody should
        // read a half-written setuid binary.
        let fd = self.create_excl(name, &dir, last, "create file", |dirfd, last| {
            openat(
                dirfd,
                last,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        })?;
        let mut file = File::from(fd);
        let full = self.dest.join(&rel);
        let written = copy_data(entry, &mut file, &mut self.buf, name, &full, sparse)?;
        if written != entry.size() {
            return Err(UnpackError::Archive {
                at: format!("in the data of `{name}`"),
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "the archive ends after {written} of the {} bytes of this file",
                        entry.size()
                    ),
                ),
            });
        }
        // chown(2) clears setuid/setgid, so the mode comes after it; it also drops
        // security.capability, so xattrs come after both (capabilities(7)).
        if self.opts.preserve_owners {
            fchown(
                &file,
                Some(Uid::from_raw(meta.uid)),
                Some(Gid::from_raw(meta.gid)),
            )
            .map_err(|e| self.io("change the owner of", &rel, e))?;
        }
        fchmod(&file, mode_bits(meta.mode)).map_err(|e| self.io("change the mode of", &rel, e))?;
        self.set_xattrs(XattrTarget::Fd(file.as_fd()), meta, NodeKind::File);
        futimens(&file, &meta.atime, &meta.mtime)
            .map_err(|e| self.io("set the times of", &rel, e))?;
        self.report.files += 1;
        self.report.bytes += written;
        Ok(())
    }

    fn symlink(
        &mut self,
        name: &str,
        comps: &[OsString],
        target: Option<Vec<u8>>,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        let target = match target {
            Some(t) if !t.is_empty() && !t.contains(&0) => OsString::from_vec(t),
            _ => {
                return Err(invalid(
                    name,
                    "symlink target",
                    "missing, empty or contains NUL",
                ));
            }
        };
        let (dir, last, rel) =
            self.create_node(name, comps, meta, "create symlink", |dirfd, last| {
                symlinkat(target.as_os_str(), dirfd, last)
            })?;
        self.xattrs_and_times(&dir, last, &rel, meta, NodeKind::Symlink)
    }

    /// Makes a node that gets no open descriptor (a symlink, a device, a FIFO) with `create`,
    /// its parent directories first, then gives it the archive's owner when owners are
    /// kept: its directory, its name and where it is, for the metadata steps that follow.
    fn create_node<'c>(
        &mut self,
        name: &str,
        comps: &'c [OsString],
        meta: &Meta,
        what: &str,
        create: impl FnMut(BorrowedFd<'_>, &OsStr) -> nix::Result<()>,
    ) -> Result<(Dir, &'c OsString, PathBuf), UnpackError> {
        let (last, parent) = comps.split_last().expect("checked by the caller");
        let dir = self.create_parent(name, parent)?;
        let rel = dir.rel.join(last);
        self.create_excl(name, &dir, last, what, create)?;
        self.chown_kept(&dir, last, &rel, meta)?;
        Ok((dir, last, rel))
    }

    fn hardlink(
        &mut self,
        name: &str,
        comps: &[OsString],
        target: Option<Vec<u8>>,
    ) -> Result<(), UnpackError> {
        let Some(target) = target.filter(|t| !t.is_empty()) else {
            return Err(invalid(name, "hard link target", "missing or empty"));
        };
        let shown = String::from_utf8_lossy(&target).into_owned();
        let outside = || UnpackError::HardlinkOutside {
            entry: name.to_owned(),
            target: shown.clone(),
        };
        let missing = || UnpackError::HardlinkTargetMissing {
            entry: name.to_owned(),
            target: shown.clone(),
        };
        // The rule of repacking too; only the reports differ from its: a missing or empty
        // target is a broken header (above), and a name the rule refuses is reported as a
        // target outside the destination, the error that names the target, as one the
        // resolution below leads out of is.
        let target_comps = match tarpath::link_target(&target) {
            Ok(comps) => os_strings(comps),
            Err(LinkTarget::Path(_)) => return Err(outside()),
            Err(LinkTarget::Root) => {
                return Err(unsafe_path(
                    name,
                    "it is a hard link to the destination root".into(),
                ));
            }
        };
        let (target_last, target_parent) = target_comps
            .split_last()
            .expect("link_target refuses the root");
        // Lookup only: a link to something that does not exist must not create directories.
        let target_dir = match self.parent(name, target_parent, false) {
            Ok(Some(dir)) => dir,
            Ok(None) | Err(UnpackError::NotADirectory { .. }) => return Err(missing()),
            Err(UnpackError::SymlinkEscape { .. }) => return Err(outside()),
            Err(e) => return Err(e),
        };
        let target_st = match fstatat(
            &*target_dir.fd,
            target_last.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Err(missing()),
            Err(e) => return Err(self.io("inspect", &target_dir.rel.join(target_last), e)),
        };
        if is_type(&target_st, libc::S_IFDIR) {
            return Err(unsafe_path(
                name,
                format!("it is a hard link to the directory `{shown}`"),
            ));
        }
        let (last, parent) = comps.split_last().expect("checked by the caller");
        let dir = self.create_parent(name, parent)?;
        if let Ok(st) = fstatat(&*dir.fd, last.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            && st.st_dev == target_st.st_dev
            && st.st_ino == target_st.st_ino
        {
            // Already the same inode (a link to itself, or a repeated entry): unlinking
            // first would destroy the very target.
            return Ok(());
        }
        // Flags 0: linkat(2) then links a symlink target itself rather than what it points to.
        self.create_excl(name, &dir, last, "create hard link", |dirfd, last| {
            linkat(
                &*target_dir.fd,
                target_last.as_os_str(),
                dirfd,
                last,
                AtFlags::empty(),
            )
        })?;
        Ok(())
    }

    /// Device nodes and FIFOs.
    fn special(
        &mut self,
        name: &str,
        comps: &[OsString],
        meta: &Meta,
        kind: SFlag,
        dev: libc::dev_t,
    ) -> Result<(), UnpackError> {
        let (dir, last, rel) =
            self.create_node(name, comps, meta, "create special file", |dirfd, last| {
                mknodat(dirfd, last, kind, Mode::from_bits_truncate(0o600), dev)
            })?;
        // We just created this node: no symlink.
        self.chmod(&dir.fd, last, &rel, mode_bits(meta.mode))?;
        self.xattrs_and_times(&dir, last, &rel, meta, NodeKind::Special)
    }

    /// The last two metadata steps of a node that has no open descriptor (symlinks,
    /// devices, FIFOs): xattrs, then times, never following a final symlink.
    fn xattrs_and_times(
        &mut self,
        dir: &Dir,
        last: &OsStr,
        rel: &Path,
        meta: &Meta,
        kind: NodeKind,
    ) -> Result<(), UnpackError> {
        if !meta.xattrs.is_empty() {
            let path = self.c_path(rel);
            self.set_xattrs(XattrTarget::Path(&path), meta, kind);
        }
        utimensat(
            &*dir.fd,
            last,
            &meta.atime,
            &meta.mtime,
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.io("set the times of", rel, e))
    }

    /// Applies the directory modes and mtimes held back while children were being added
    /// (creating an entry in a directory updates its mtime). Deepest first, so that the chmod
    /// of a parent cannot lock us out of its children.
    fn finish(&mut self) -> Result<(), UnpackError> {
        let mut dirs: Vec<(PathBuf, DirFixup)> = self.dirs.drain().collect();
        dirs.sort_by(|(a, _), (b, _)| {
            let depth = |p: &Path| p.components().count();
            depth(b).cmp(&depth(a)).then_with(|| a.cmp(b))
        });
        for (rel, fixup) in dirs {
            let (Some(parent), Some(last)) = (rel.parent(), rel.file_name()) else {
                let root = Rc::clone(&self.root);
                if let Some(mode) = fixup.mode {
                    fchmod(&*root, mode_bits(mode))
                        .map_err(|e| self.io("change the mode of", &rel, e))?;
                }
                futimens(&*root, &fixup.atime, &fixup.mtime)
                    .map_err(|e| self.io("set the times of", &rel, e))?;
                continue;
            };
            // Recorded paths hold resolved directories only; if one has since been replaced
            // (an empty directory overwritten by a later entry), there is nothing to fix.
            let Ok(dir) = self.open_real_dir(parent) else {
                tracing::debug!("directory `{}` vanished before its fixup", rel.display());
                continue;
            };
            match fstatat(&*dir.fd, last, AtFlags::AT_SYMLINK_NOFOLLOW) {
                Ok(st) if is_type(&st, libc::S_IFDIR) => {}
                _ => {
                    tracing::debug!("`{}` is no longer a directory", rel.display());
                    continue;
                }
            }
            if let Some(mode) = fixup.mode {
                self.chmod(&dir.fd, last, &rel, mode_bits(mode))?;
            }
            utimensat(
                &*dir.fd,
                last,
                &fixup.atime,
                &fixup.mtime,
                UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| self.io("set the times of", &rel, e))?;
        }
        Ok(())
    }

    // --- path resolution -------------------------------------------------------------------

    fn root_dir(&self) -> Dir {
        Dir {
            fd: Rc::clone(&self.root),
            rel: PathBuf::new(),
        }
    }

    /// Resolves (creating what is missing) the parent directory of an entry.
    fn create_parent(&mut self, name: &str, parent: &[OsString]) -> Result<Dir, UnpackError> {
        match self.parent(name, parent, true)? {
            Some(dir) => Ok(dir),
            None => unreachable!("walk() creates missing directories when asked to"),
        }
    }

    /// Resolves a parent directory through the one-entry cache; `None` when a component is
    /// missing and `create` is off.
    fn parent(
        &mut self,
        name: &str,
        parent: &[OsString],
        create: bool,
    ) -> Result<Option<Dir>, UnpackError> {
        if let Some((key, dir)) = &self.cache
            && key.as_slice() == parent
        {
            return Ok(Some(dir.clone()));
        }
        let steps = parent.iter().map(|c| Step::Name(c.clone())).collect();
        let dir = self.walk(name, self.root_dir(), steps, create)?;
        if let Some(dir) = &dir {
            self.cache = Some((parent.to_vec(), dir.clone()));
        }
        Ok(dir)
    }

    /// Walks `steps` from `start` as directories, expanding symlinks with rootfs semantics.
    fn walk(
        &self,
        name: &str,
        start: Dir,
        steps: VecDeque<Step>,
        create: bool,
    ) -> Result<Option<Dir>, UnpackError> {
        let mut queue: VecDeque<(Step, Option<Rc<Origin>>)> =
            steps.into_iter().map(|s| (s, None)).collect();
        let mut cur = start;
        let mut hops = 0;
        while let Some((step, origin)) = queue.pop_front() {
            let component = match step {
                Step::Root => {
                    cur = self.root_dir();
                    continue;
                }
                Step::Parent => {
                    if !cur.rel.pop() {
                        return Err(match origin {
                            Some(origin) => UnpackError::SymlinkEscape {
                                entry: name.to_owned(),
                                link: origin.link.display().to_string(),
                                target: origin.target.to_string_lossy().into_owned(),
                            },
                            None => unsafe_path(name, "the path climbs above the root".into()),
                        });
                    }
                    // Everything on `rel` is a real directory, so `..` is simply the previous
                    // one; reopen it from the top rather than keeping a descriptor per level.
                    cur = self
                        .open_real_dir(&cur.rel)
                        .map_err(|e| self.io("open directory", &cur.rel, e))?;
                    continue;
                }
                Step::Name(component) => component,
            };
            let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            let next = cur.rel.join(&component);
            match openat(&*cur.fd, component.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => {
                    cur = Dir {
                        fd: Rc::new(fd),
                        rel: next,
                    }
                }
                Err(Errno::ENOENT) if create => {
                    self.make_dir(&cur, &component)?;
                    // mkdirat(2) applies the umask; missing parents are documented as 0755.
                    self.chmod(&cur.fd, &component, &next, Mode::from_bits_truncate(0o755))?;
                    let fd = openat(&*cur.fd, component.as_os_str(), flags, Mode::empty())
                        .map_err(|e| self.io("open directory", &next, e))?;
                    cur = Dir {
                        fd: Rc::new(fd),
                        rel: next,
                    };
                }
                Err(Errno::ENOENT) => return Ok(None),
                // O_NOFOLLOW|O_DIRECTORY on a symlink: ENOTDIR with O_PATH, ELOOP without.
                Err(Errno::ENOTDIR | Errno::ELOOP) => {
                    let st = fstatat(
                        &*cur.fd,
                        component.as_os_str(),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| self.io("inspect", &next, e))?;
                    if !is_type(&st, libc::S_IFLNK) {
                        return Err(UnpackError::NotADirectory {
                            entry: name.to_owned(),
                            component: next.display().to_string(),
                        });
                    }
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(UnpackError::SymlinkLoop {
                            entry: name.to_owned(),
                            link: next.display().to_string(),
                        });
                    }
                    let target = readlinkat(&*cur.fd, component.as_os_str())
                        .map_err(|e| self.io("read symlink", &next, e))?;
                    let target_steps = symlink_steps(&target);
                    if target_steps.is_empty() {
                        return Err(UnpackError::NotADirectory {
                            entry: name.to_owned(),
                            component: next.display().to_string(),
                        });
                    }
                    let origin = Rc::new(Origin { link: next, target });
                    for s in target_steps.into_iter().rev() {
                        queue.push_front((s, Some(Rc::clone(&origin))));
                    }
                }
                Err(e) => return Err(self.io("open directory", &next, e)),
            }
        }
        Ok(Some(cur))
    }

    /// Opens `rel`, which must consist of real directories: no symlink is followed.
    fn open_real_dir(&self, rel: &Path) -> nix::Result<Dir> {
        let mut cur = self.root_dir();
        for component in rel.components() {
            let fd = openat(
                &*cur.fd,
                component.as_os_str(),
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            cur = Dir {
                fd: Rc::new(fd),
                rel: cur.rel.join(component),
            };
        }
        Ok(cur)
    }

    /// Whether the symlink `last` in `dir` resolves, inside the destination, to a directory.
    fn is_dir_symlink(&self, name: &str, dir: &Dir, last: &OsStr) -> Result<bool, UnpackError> {
        let steps = VecDeque::from([Step::Name(last.to_os_string())]);
        match self.walk(name, dir.clone(), steps, false) {
            Ok(found) => Ok(found.is_some()),
            Err(
                UnpackError::SymlinkEscape { .. }
                | UnpackError::SymlinkLoop { .. }
                | UnpackError::NotADirectory { .. },
            ) => Ok(false),
            Err(e) => Err(e),
        }
    }

    // --- node creation helpers -------------------------------------------------------------

    fn make_dir(&self, dir: &Dir, last: &OsStr) -> Result<(), UnpackError> {
        // 0700 until the entry's own mode is applied: the owner can always add children.
        mkdirat(&*dir.fd, last, Mode::from_bits_truncate(0o700))
            .map_err(|e| self.io("create directory", &dir.rel.join(last), e))
    }

    /// Runs `create` (an exclusive, non-following creation); if something is already there,
    /// removes it and tries once more.
    fn create_excl<T>(
        &mut self,
        name: &str,
        dir: &Dir,
        last: &OsStr,
        what: &str,
        mut create: impl FnMut(BorrowedFd<'_>, &OsStr) -> nix::Result<T>,
    ) -> Result<T, UnpackError> {
        match create(dir.fd.as_fd(), last) {
            Ok(made) => return Ok(made),
            Err(Errno::EEXIST) => {}
            Err(e) => return Err(self.io(what, &dir.rel.join(last), e)),
        }
        self.remove_existing(name, dir, last)?;
        create(dir.fd.as_fd(), last).map_err(|e| self.io(what, &dir.rel.join(last), e))
    }

    /// Removes whatever is at `last` (never following it); an empty directory may go, a
    /// non-empty one may not.
    fn remove_existing(&mut self, name: &str, dir: &Dir, last: &OsStr) -> Result<(), UnpackError> {
        self.cache = None;
        let rel = dir.rel.join(last);
        self.dirs.remove(&rel);
        match unlinkat(&*dir.fd, last, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            // Linux answers EISDIR where POSIX says EPERM (unlink(2)).
            Err(Errno::EISDIR | Errno::EPERM) => {
                match unlinkat(&*dir.fd, last, UnlinkatFlags::RemoveDir) {
                    Ok(()) => Ok(()),
                    Err(Errno::ENOTEMPTY | Errno::EEXIST) => Err(UnpackError::NonEmptyDirectory {
                        entry: name.to_owned(),
                        path: rel.display().to_string(),
                    }),
                    Err(e) => Err(self.io("remove", &rel, e)),
                }
            }
            Err(e) => Err(self.io("remove", &rel, e)),
        }
    }

    fn set_xattrs(&mut self, target: XattrTarget<'_>, meta: &Meta, kind: NodeKind) {
        for (name, value) in &meta.xattrs {
            let bytes = name.to_bytes();
            let allowed = if bytes.starts_with(b"user.") {
                // xattr(7): user attributes exist only on regular files and directories.
                matches!(kind, NodeKind::File | NodeKind::Dir)
            } else if bytes.starts_with(b"security.") || bytes.starts_with(b"trusted.") {
                self.opts.preserve_owners
            } else {
                false
            };
            if !allowed {
                tracing::debug!("not restoring xattr {name:?}");
                continue;
            }
            // SAFETY: name and path are NUL-terminated C strings and value is a live buffer of
            // the given length; the descriptor is borrowed for the duration of the call.
            let rc = unsafe {
                match target {
                    XattrTarget::Fd(fd) => libc::fsetxattr(
                        fd.as_raw_fd(),
                        name.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    ),
                    XattrTarget::Path(path) => libc::lsetxattr(
                        path.as_ptr(),
                        name.as_ptr(),
                        value.as_ptr().cast(),
                        value.len(),
                        0,
                    ),
                }
            };
            if rc != 0 {
                let err = io::Error::last_os_error();
                tracing::debug!("failed to set xattr {name:?}: {err}");
                self.report.xattr_failures += 1;
            }
        }
    }

    /// Absolute path of `rel` for the calls that have no `*at` form (lsetxattr(2)). Every
    /// component of it was resolved to a real directory just before.
    fn c_path(&self, rel: &Path) -> CString {
        CString::new(self.dest.join(rel).into_os_string().into_vec())
            .expect("components were checked for NUL bytes")
    }

    /// Gives the node `last` of `dir` (at `rel`) the archive's owner when owners are kept,
    /// never following a final symlink.
    fn chown_kept(
        &self,
        dir: &Dir,
        last: &OsStr,
        rel: &Path,
        meta: &Meta,
    ) -> Result<(), UnpackError> {
        if !self.opts.preserve_owners {
            return Ok(());
        }
        fchownat(
            &*dir.fd,
            last,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.io("change the owner of", rel, e))
    }

    /// Sets the mode of the node `last` of `dirfd` (at `rel`). fchmodat(2) follows a final
    /// symlink: the caller knows `last` is none.
    fn chmod(
        &self,
        dirfd: &OwnedFd,
        last: &OsStr,
        rel: &Path,
        mode: Mode,
    ) -> Result<(), UnpackError> {
        fchmodat(dirfd, last, mode, FchmodatFlags::FollowSymlink)
            .map_err(|e| self.io("change the mode of", rel, e))
    }

    fn io(&self, what: &str, rel: &Path, e: Errno) -> UnpackError {
        io_error(what, self.dest.join(rel), e)
    }
}

/// Copies one entry's data through `buf`. For GNU sparse entries (which the tar crate expands
/// into zeros), zero-filled chunks become holes.
fn copy_data(
    src: &mut impl Read,
    dst: &mut File,
    buf: &mut [u8],
    name: &str,
    path: &Path,
    sparse: bool,
) -> Result<u64, UnpackError> {
    let write_error = |what: &str, source| UnpackError::Io {
        what: what.to_owned(),
        path: path.to_path_buf(),
        source,
    };
    let mut total: u64 = 0;
    let mut trailing_hole = false;
    loop {
        // Fill the whole buffer first: the decompressor hands out small pieces, and fewer,
        // larger write(2) calls are cheaper.
        let mut filled = 0;
        while filled < buf.len() {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(UnpackError::Archive {
                        at: format!("in the data of `{name}`"),
                        source,
                    });
                }
            }
        }
        if filled == 0 {
            break;
        }
        let chunk = &buf[..filled];
        if sparse && chunk.iter().all(|&b| b == 0) {
            dst.seek(SeekFrom::Current(filled as i64))
                .map_err(|e| write_error("seek in", e))?;
            trailing_hole = true;
        } else {
            dst.write_all(chunk).map_err(|e| write_error("write", e))?;
            trailing_hole = false;
        }
        total += filled as u64;
        if filled < buf.len() {
            break;
        }
    }
    if trailing_hole {
        // Seeking past the end does not extend a file; ftruncate(2) does.
        dst.set_len(total).map_err(|e| write_error("extend", e))?;
    }
    Ok(total)
}

/// Reads mode, numeric owner, times and `SCHILY.xattr.*` records. Never user/group names.
fn read_meta<R: Read>(entry: &mut tar::Entry<'_, R>, name: &str) -> Result<Meta, UnpackError> {
    let header = entry.header();
    let field = |field: &'static str| {
        move |source: io::Error| UnpackError::InvalidHeader {
            entry: name.to_owned(),
            field,
            source,
        }
    };
    let mode = header.mode().map_err(field("mode"))? & 0o7777;
    let id = |value: u64, what: &'static str| {
        // (uid_t)-1 means "leave unchanged" to chown(2).
        u32::try_from(value)
            .ok()
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| invalid(name, what, &format!("{value} is out of range")))
    };
    let uid = id(header.uid().map_err(field("uid"))?, "uid")?;
    let gid = id(header.gid().map_err(field("gid"))?, "gid")?;
    let secs = i64::try_from(header.mtime().map_err(field("mtime"))?).unwrap_or(i64::MAX);
    let mut mtime = TimeSpec::new(secs, 0);
    let mut atime = None;
    let mut xattrs = Vec::new();
    let extensions = entry
        .pax_extensions()
        .map_err(|source| UnpackError::Archive {
            at: format!("in the PAX header of `{name}`"),
            source,
        })?;
    if let Some(extensions) = extensions {
        for ext in extensions {
            let ext = ext.map_err(field("PAX extended header"))?;
            let key = ext.key_bytes();
            if key == b"mtime" {
                // GNU tar records sub-second mtimes only here.
                if let Some(t) = parse_pax_time(ext.value_bytes()) {
                    mtime = t;
                }
            } else if key == b"atime" {
                atime = parse_pax_time(ext.value_bytes());
            } else if let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") {
                let xattr = CString::new(decode_xattr_keyword(xattr))
                    .map_err(|_| invalid(name, "xattr name", "contains NUL"))?;
                xattrs.push((xattr, ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(Meta {
        mode,
        uid,
        gid,
        atime: atime.unwrap_or(mtime),
        mtime,
        xattrs,
    })
}

fn device_number(field: io::Result<Option<u32>>, name: &str) -> Result<u32, UnpackError> {
    match field {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Err(invalid(name, "device number", "missing (pre-POSIX header)")),
        Err(source) => Err(UnpackError::InvalidHeader {
            entry: name.to_owned(),
            field: "device number",
            source,
        }),
    }
}

/// PAX times are decimal seconds with an optional fraction, possibly negative.
fn parse_pax_time(value: &[u8]) -> Option<TimeSpec> {
    let text = std::str::from_utf8(value).ok()?;
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return None;
    }
    let secs: i64 = int.parse().ok()?;
    let frac = &frac[..frac.len().min(9)];
    let nanos: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32)
    };
    Some(match (negative, nanos) {
        (false, _) => TimeSpec::new(secs, nanos),
        (true, 0) => TimeSpec::new(-secs, 0),
        (true, _) => TimeSpec::new(-secs - 1, 1_000_000_000 - nanos),
    })
}

/// GNU tar escapes `%` and `=` in xattr names inside PAX keywords (`%25`, `%3D`).
fn decode_xattr_keyword(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match &raw[i..] {
            [b'%', b'2', b'5', ..] => {
                out.push(b'%');
                i += 3;
            }
            [b'%', b'3', b'D', ..] => {
                out.push(b'=');
                i += 3;
            }
            [b, ..] => {
                out.push(*b);
                i += 1;
            }
            [] => unreachable!(),
        }
    }
    out
}

/// The components [`tarpath`] accepted, as the `OsString`s the `*at(2)` calls here take.
fn os_strings(comps: Vec<&[u8]>) -> Vec<OsString> {
    comps
        .into_iter()
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

/// The walk steps of a symlink target; an absolute target restarts at the destination root.
fn symlink_steps(target: &OsStr) -> Vec<Step> {
    Path::new(target)
        .components()
        .filter_map(|c| match c {
            Component::RootDir => Some(Step::Root),
            Component::ParentDir => Some(Step::Parent),
            Component::Normal(n) => Some(Step::Name(n.to_os_string())),
            Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Without CAP_DAC_OVERRIDE (not root), a directory lacking owner write or search would stop
/// us from creating its children, and one lacking owner read would stop the caller from
/// removing the tree after a failure; such modes are applied at the very end instead.
fn needs_deferred_mode(mode: u32) -> bool {
    mode & 0o700 != 0o700
}

fn mode_bits(mode: u32) -> Mode {
    Mode::from_bits_truncate(mode as libc::mode_t)
}

fn is_type(st: &FileStat, kind: libc::mode_t) -> bool {
    st.st_mode & libc::S_IFMT == kind
}

fn unsafe_path(entry: &str, reason: String) -> UnpackError {
    UnpackError::UnsafePath {
        entry: entry.to_owned(),
        reason,
    }
}

fn invalid(entry: &str, field: &'static str, why: &str) -> UnpackError {
    UnpackError::InvalidHeader {
        entry: entry.to_owned(),
        field,
        source: io::Error::new(io::ErrorKind::InvalidData, why.to_owned()),
    }
}

fn io_error(what: &str, path: PathBuf, e: Errno) -> UnpackError {
    UnpackError::Io {
        what: what.to_owned(),
        path,
        source: io::Error::from(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    const MTIME: u64 = 1_600_000_000;
    const SENTINEL: &[u8] = b"do not touch\n";

    fn opts(privileged: bool) -> UnpackOptions {
        UnpackOptions {
            preserve_owners: privileged,
            make_devices: privileged,
        }
    }

    /// Whether a root-only test may run: under CI a missing root is a failure, not a skip.
    fn have_root(test: &str) -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs root (CAP_CHOWN, CAP_MKNOD, CAP_SETFCAP) and CI is set"
        );
        eprintln!("skipping {test}: it needs root (CAP_CHOWN, CAP_MKNOD, CAP_SETFCAP)");
        false
    }

    /// `base/outside/sentinel` next to the empty `base/dest`.
    struct Sandbox {
        _tmp: tempfile::TempDir,
        base: PathBuf,
        outside: PathBuf,
        dest: PathBuf,
    }

    impl Sandbox {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            let base = tmp.path().to_path_buf();
            let outside = base.join("outside");
            let dest = base.join("dest");
            fs::create_dir(&outside).unwrap();
            fs::create_dir(&dest).unwrap();
            let sentinel = outside.join("sentinel");
            fs::write(&sentinel, SENTINEL).unwrap();
            fs::set_permissions(&sentinel, fs::Permissions::from_mode(0o644)).unwrap();
            Self {
                _tmp: tmp,
                base,
                outside,
                dest,
            }
        }

        fn unpack(&self, archive: &[u8], opts: UnpackOptions) -> Result<UnpackReport, UnpackError> {
            unpack(archive, &self.dest, &opts)
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dest.join(rel)
        }

        fn lstat(&self, rel: &str) -> fs::Metadata {
            fs::symlink_metadata(self.path(rel)).unwrap_or_else(|e| panic!("lstat {rel}: {e}"))
        }

        fn exists(&self, rel: &str) -> bool {
            fs::symlink_metadata(self.path(rel)).is_ok()
        }

        /// Nothing changed in `outside/`, and nothing appeared next to `dest/`.
        fn assert_untouched(&self) {
            let names = |dir: &Path| -> BTreeSet<String> {
                fs::read_dir(dir)
                    .unwrap()
                    .map(|e| e.unwrap().file_name().into_string().unwrap())
                    .collect()
            };
            let expected = |list: &[&str]| list.iter().map(|s| s.to_string()).collect();
            assert_eq!(names(&self.base), expected(&["dest", "outside"]));
            assert_eq!(names(&self.outside), expected(&["sentinel"]));
            let sentinel = self.outside.join("sentinel");
            let meta = fs::symlink_metadata(&sentinel).unwrap();
            assert!(meta.file_type().is_file());
            assert_eq!(meta.nlink(), 1, "the sentinel was hard-linked");
            assert_eq!(meta.mode() & 0o7777, 0o644);
            assert_eq!(fs::read(&sentinel).unwrap(), SENTINEL);
        }
    }

    impl Drop for Sandbox {
        /// Tests leave read-only directories behind, which a non-root cleanup cannot empty.
        fn drop(&mut self) {
            fn open_up(dir: &Path) {
                let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
                if let Ok(entries) = fs::read_dir(dir) {
                    for entry in entries.flatten() {
                        if entry.file_type().is_ok_and(|t| t.is_dir()) {
                            open_up(&entry.path());
                        }
                    }
                }
            }
            open_up(&self.dest);
        }
    }

    /// Builds archives with header names written verbatim: `tar::Builder` itself refuses `..`
    /// and absolute paths, which is exactly what these tests need.
    struct Tar(tar::Builder<Vec<u8>>);

    impl Tar {
        fn new() -> Self {
            Tar(tar::Builder::new(Vec::new()))
        }

        fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_mode(mode);
            header.set_mtime(MTIME);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(0);
            header
        }

        fn raw(
            &mut self,
            mut header: tar::Header,
            name: &[u8],
            link: &[u8],
            data: &[u8],
        ) -> &mut Self {
            let old = header.as_old_mut();
            old.name = [0; 100];
            old.name[..name.len()].copy_from_slice(name);
            old.linkname = [0; 100];
            old.linkname[..link.len()].copy_from_slice(link);
            header.set_size(data.len() as u64);
            header.set_cksum();
            self.0.append(&header, data).unwrap();
            self
        }

        fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
            self.raw(
                Self::header(tar::EntryType::Directory, mode),
                name.as_bytes(),
                b"",
                b"",
            )
        }

        fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> &mut Self {
            self.raw(
                Self::header(tar::EntryType::Regular, mode),
                name.as_bytes(),
                b"",
                data,
            )
        }

        fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
            let header = Self::header(tar::EntryType::Symlink, 0o777);
            self.raw(header, name.as_bytes(), target.as_bytes(), b"")
        }

        fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
            let header = Self::header(tar::EntryType::Link, 0o644);
            self.raw(header, name.as_bytes(), target.as_bytes(), b"")
        }

        fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
            self.0
                .append_pax_extensions(records.iter().copied())
                .unwrap();
            self
        }

        fn bytes(self) -> Vec<u8> {
            self.0.into_inner().unwrap()
        }
    }

    fn lgetxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
        let path = CString::new(path.as_os_str().as_bytes()).unwrap();
        let name = CString::new(name).unwrap();
        let mut buf = vec![0u8; 256];
        // SAFETY: valid C strings and a buffer of the stated length.
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n >= 0).then(|| {
            buf.truncate(n as usize);
            buf
        })
    }

    fn user_xattrs_supported(dir: &Path) -> bool {
        let probe = dir.join("xattr-probe");
        fs::write(&probe, b"").unwrap();
        let path = CString::new(probe.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid C strings and a one-byte value.
        let rc = unsafe {
            libc::lsetxattr(
                path.as_ptr(),
                c"user.probe".as_ptr(),
                b"1".as_ptr().cast(),
                1,
                0,
            )
        };
        fs::remove_file(&probe).unwrap();
        rc == 0
    }

    /// vfs_cap_data revision 2 (linux/capability.h) granting CAP_NET_RAW (13) as permitted.
    fn net_raw_capability() -> Vec<u8> {
        let mut cap = Vec::new();
        cap.extend_from_slice(&0x0200_0000u32.to_le_bytes()); // VFS_CAP_REVISION_2, no effective bit
        cap.extend_from_slice(&(1u32 << 13).to_le_bytes()); // permitted, low word
        cap.extend_from_slice(&0u32.to_le_bytes()); // inheritable, low word
        cap.extend_from_slice(&0u32.to_le_bytes()); // permitted, high word
        cap.extend_from_slice(&0u32.to_le_bytes()); // inheritable, high word
        cap
    }

    fn io_source(err: &UnpackError) -> &io::Error {
        std::error::Error::source(err)
            .and_then(|s| s.downcast_ref::<io::Error>())
            .unwrap_or_else(|| panic!("no io::Error source in {err:?}"))
    }

    /// Unpacks what `build` writes (unprivileged) into a fresh sandbox, which must be left
    /// untouched outside `dest` either way: the sandbox, for checks, and the outcome.
    fn unpack_fresh(build: impl FnOnce(&mut Tar)) -> (Sandbox, Result<UnpackReport, UnpackError>) {
        let sb = Sandbox::new();
        let mut tar = Tar::new();
        build(&mut tar);
        let outcome = sb.unpack(&tar.bytes(), opts(false));
        sb.assert_untouched();
        (sb, outcome)
    }

    /// [`unpack_fresh`], which must succeed.
    fn unpacked(build: impl FnOnce(&mut Tar)) -> (Sandbox, UnpackReport) {
        let (sb, outcome) = unpack_fresh(build);
        (sb, outcome.unwrap())
    }

    /// [`unpack_fresh`], which must be refused.
    fn refused(build: impl FnOnce(&mut Tar)) -> (Sandbox, UnpackError) {
        let (sb, outcome) = unpack_fresh(build);
        (sb, outcome.unwrap_err())
    }

    // --- rule 1: path components -------------------------------------------------------------

    #[test]
    fn refuses_parent_dir_components() {
        for name in ["../x", "./../outside/sentinel", "a/../../x", "./.."] {
            let (_, err) = refused(|tar| {
                tar.dir("a", 0o755).file(name, 0o644, b"pwned");
            });
            assert!(
                matches!(&err, UnpackError::UnsafePath { entry, .. } if entry == name),
                "{name}: {err}"
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("refusing tar entry `{name}`"))
            );
        }
    }

    #[test]
    fn refuses_unsafe_names_from_pax_and_gnu_long_name_records() {
        // PAX `path` overrides the header name: the header says `innocent`.
        let (_, err) = refused(|tar| {
            tar.pax(&[("path", b"../pax-escape")])
                .file("innocent", 0o644, b"pwned");
        });
        assert!(
            matches!(&err, UnpackError::UnsafePath { entry, .. } if entry == "../pax-escape"),
            "{err}"
        );

        // A GNU `L` record names the next member.
        let sb = Sandbox::new();
        let long = format!("{}/../../../outside/sentinel", "a/".repeat(60));
        let mut tar = Tar::new();
        let mut name = long.clone().into_bytes();
        name.push(0);
        tar.raw(
            Tar::header(tar::EntryType::GNULongName, 0o644),
            b"././@LongLink",
            b"",
            &name,
        )
        .file("innocent", 0o644, b"pwned");
        let err = sb.unpack(&tar.bytes(), opts(false)).unwrap_err();
        assert!(
            matches!(&err, UnpackError::UnsafePath { entry, .. } if entry == &long),
            "{err}"
        );
        sb.assert_untouched();

        // PAX `linkpath` overrides a hard link's header target.
        let (_, err) = refused(|tar| {
            tar.file("innocent", 0o644, b"x")
                .pax(&[("linkpath", b"../outside/sentinel")])
                .hardlink("h", "innocent");
        });
        assert!(matches!(err, UnpackError::HardlinkOutside { .. }), "{err}");
    }

    #[test]
    fn refuses_absolute_paths() {
        let sb = Sandbox::new();
        // Absolute names pointing right next to `dest` and at the sentinel: if they were
        // honoured (or merely stripped badly), assert_untouched would see it.
        for target in [sb.base.join("pwned"), sb.outside.join("sentinel")] {
            let name = target.to_str().unwrap().to_owned();
            let mut tar = Tar::new();
            tar.file(&name, 0o644, b"pwned");
            let err = sb.unpack(&tar.bytes(), opts(false)).unwrap_err();
            assert!(
                matches!(&err, UnpackError::UnsafePath { entry, reason } if entry == &name && reason.contains("absolute")),
                "{err}"
            );
            sb.assert_untouched();
        }
        assert_eq!(fs::read_dir(&sb.dest).unwrap().count(), 0);
    }

    // --- rule 2: never write through a symlink that leaves dest ------------------------------

    #[test]
    fn refuses_writing_through_escaping_symlink() {
        let (_, err) = refused(|tar| {
            tar.symlink("evil", "../outside")
                .file("evil/pwned", 0o644, b"pwned");
        });
        assert!(
            matches!(&err, UnpackError::SymlinkEscape { entry, link, target }
                if entry == "evil/pwned" && link == "evil" && target == "../outside"),
            "{err}"
        );

        // Overwriting the sentinel through the link is refused the same way.
        let (_, err) = refused(|tar| {
            tar.symlink("./evil", "../outside")
                .file("./evil/sentinel", 0o644, b"pwned");
        });
        assert!(matches!(err, UnpackError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn absolute_symlinks_resolve_inside_dest() {
        let (sb, _) = unpacked(|tar| {
            tar.symlink("evil", "/")
                .file("evil/ok", 0o644, b"inside")
                .symlink("abs", "/outside")
                .file("abs/sentinel", 0o644, b"inside too")
                .symlink("deep", "/a/../b/./c/")
                .file("deep/f", 0o644, b"deep");
        });
        assert_eq!(fs::read(sb.path("ok")).unwrap(), b"inside");
        assert_eq!(
            fs::read(sb.path("outside/sentinel")).unwrap(),
            b"inside too"
        );
        assert_eq!(fs::read(sb.path("b/c/f")).unwrap(), b"deep");
        assert!(sb.lstat("evil").file_type().is_symlink());
        assert!(sb.lstat("abs").file_type().is_symlink());

        // `/..` would be `/` in the container, but climbing above dest is refused outright.
        let (_, err) = refused(|tar| {
            tar.symlink("up", "/..").file("up/x", 0o644, b"x");
        });
        assert!(matches!(err, UnpackError::SymlinkEscape { .. }), "{err}");
    }

    #[test]
    fn refuses_escaping_symlink_chain() {
        let (_, err) = refused(|tar| {
            tar.symlink("a", "b")
                .symlink("b", "../../outside")
                .file("a/pwned", 0o644, b"pwned");
        });
        assert!(
            matches!(&err, UnpackError::SymlinkEscape { entry, link, .. }
                if entry == "a/pwned" && link == "b"),
            "{err}"
        );

        // A chain through a real directory: `x -> d/l`, `d/l -> ../../outside`.
        let (_, err) = refused(|tar| {
            tar.dir("d", 0o755)
                .symlink("d/l", "../../outside")
                .symlink("x", "d/l")
                .file("x/pwned", 0o644, b"pwned");
        });
        assert!(
            matches!(&err, UnpackError::SymlinkEscape { link, .. } if link == "d/l"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_with_dotdot_inside_dest_are_followed() {
        let (sb, _) = unpacked(|tar| {
            tar.dir("usr", 0o755)
                .dir("usr/bin", 0o755)
                .symlink("usr/bin/libdir", "../lib")
                .file("usr/bin/libdir/f", 0o644, b"f");
        });
        assert_eq!(fs::read(sb.path("usr/lib/f")).unwrap(), b"f");
        assert_eq!(sb.lstat("usr/lib").mode() & 0o7777, 0o755);
    }

    #[test]
    fn refuses_symlink_loops() {
        for links in [
            &[("a", "b"), ("b", "a")][..],
            &[("s", "s")],
            &[("c", "./c/x")],
        ] {
            let name = format!("{}/x", links[0].0);
            let (_, err) = refused(|tar| {
                for (name, target) in links {
                    tar.symlink(name, target);
                }
                tar.file(&name, 0o644, b"x");
            });
            assert!(
                matches!(&err, UnpackError::SymlinkLoop { entry, .. } if entry == &name),
                "{err}"
            );
        }
    }

    #[test]
    fn refuses_file_under_a_regular_file() {
        let (_, err) = refused(|tar| {
            tar.file("f", 0o644, b"f").file("f/x", 0o644, b"x");
        });
        assert!(
            matches!(&err, UnpackError::NotADirectory { component, .. } if component == "f"),
            "{err}"
        );
    }

    #[test]
    fn final_component_is_replaced_not_followed() {
        let (sb, _) = unpacked(|tar| {
            tar.symlink("link", "../outside/sentinel")
                .file("link", 0o600, b"new")
                .symlink("dangling", "../outside/created")
                .file("dangling", 0o600, b"new")
                .symlink("l2", "../outside/sentinel")
                .file("f", 0o644, b"f")
                .hardlink("l2", "f")
                .symlink("l3", "../outside/sentinel")
                .symlink("l3", "elsewhere")
                .file("dup", 0o644, b"first")
                .file("dup", 0o644, b"second")
                .dir("empty", 0o755)
                .file("empty", 0o644, b"was a directory");
        });
        for (name, content) in [("link", "new"), ("dangling", "new"), ("dup", "second")] {
            assert!(sb.lstat(name).file_type().is_file(), "{name}");
            assert_eq!(fs::read(sb.path(name)).unwrap(), content.as_bytes());
        }
        assert_eq!(sb.lstat("l2").ino(), sb.lstat("f").ino());
        assert_eq!(
            fs::read_link(sb.path("l3")).unwrap(),
            Path::new("elsewhere")
        );
        assert_eq!(fs::read(sb.path("empty")).unwrap(), b"was a directory");
    }

    #[test]
    fn refuses_replacing_non_empty_directory() {
        let (sb, err) = refused(|tar| {
            tar.dir("d", 0o755)
                .file("d/f", 0o644, b"f")
                .symlink("d", "../outside");
        });
        assert!(
            matches!(&err, UnpackError::NonEmptyDirectory { entry, .. } if entry == "d"),
            "{err}"
        );
        assert!(sb.lstat("d").is_dir());
    }

    #[test]
    fn directory_over_symlink_to_directory_inside_is_kept() {
        let (sb, _) = unpacked(|tar| {
            tar.dir("./", 0o755)
                .dir("./usr/", 0o755)
                .dir("./usr/lib/", 0o755)
                .symlink("./lib", "usr/lib")
                .symlink("./lib64", "/usr/lib")
                .dir("./lib/", 0o700)
                .dir("./lib64/", 0o700)
                .file("./lib/a", 0o644, b"a")
                .file("./lib64/b", 0o644, b"b");
        });
        assert_eq!(fs::read_link(sb.path("lib")).unwrap(), Path::new("usr/lib"));
        assert_eq!(
            fs::read_link(sb.path("lib64")).unwrap(),
            Path::new("/usr/lib")
        );
        assert_eq!(fs::read(sb.path("usr/lib/a")).unwrap(), b"a");
        assert_eq!(fs::read(sb.path("usr/lib/b")).unwrap(), b"b");
        // The directory entry for the link did not re-mode its target.
        assert_eq!(sb.lstat("usr/lib").mode() & 0o7777, 0o755);
    }

    #[test]
    fn directory_over_other_symlinks_is_a_real_directory() {
        let (sb, _) = unpacked(|tar| {
            tar.symlink("d", "../outside")
                .dir("d", 0o755)
                .file("d/sentinel", 0o644, b"inside")
                .symlink("e", "nowhere")
                .dir("e", 0o755)
                .file("f", 0o644, b"")
                .symlink("g", "f")
                .dir("g", 0o755);
        });
        for name in ["d", "e", "g"] {
            assert!(sb.lstat(name).is_dir(), "{name}");
        }
        assert_eq!(fs::read(sb.path("d/sentinel")).unwrap(), b"inside");
    }

    // --- rule 3: symlink targets are stored verbatim -----------------------------------------

    #[test]
    fn symlink_targets_pointing_outside_are_stored() {
        let (sb, _) = unpacked(|tar| {
            tar.dir("etc", 0o755)
                .symlink("etc/mtab", "../proc/self/mounts")
                .symlink("etc/passwd-link", "/etc/passwd")
                .symlink("escape", "../outside/sentinel");
        });
        assert_eq!(
            fs::read_link(sb.path("etc/mtab")).unwrap(),
            Path::new("../proc/self/mounts")
        );
        assert_eq!(
            fs::read_link(sb.path("etc/passwd-link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert_eq!(
            fs::read_link(sb.path("escape")).unwrap(),
            Path::new("../outside/sentinel")
        );
        assert!(!sb.exists("proc"));
    }

    // --- rule 4: hard links -------------------------------------------------------------------

    /// A hard link `h` to `target`, after what `build` writes, is refused as pointing
    /// outside, and not made.
    fn refused_hardlink(target: &str, build: impl FnOnce(&mut Tar)) {
        let (sb, err) = refused(|tar| {
            build(tar);
            tar.hardlink("h", target);
        });
        assert!(
            matches!(&err, UnpackError::HardlinkOutside { entry, target: t }
                if entry == "h" && t == target),
            "{err}"
        );
        assert!(!sb.exists("h"));
    }

    #[test]
    fn refuses_hardlink_to_parent_dir() {
        refused_hardlink("../outside/sentinel", |_| {});
    }

    #[test]
    fn refuses_hardlink_to_absolute_path() {
        let sb = Sandbox::new();
        let sentinel = sb.outside.join("sentinel");
        for target in ["/etc/passwd", sentinel.to_str().unwrap()] {
            let mut tar = Tar::new();
            tar.hardlink("h", target);
            let err = sb.unpack(&tar.bytes(), opts(false)).unwrap_err();
            assert!(
                matches!(&err, UnpackError::HardlinkOutside { target: t, .. } if t == target),
                "{err}"
            );
            assert!(!sb.exists("h"));
            sb.assert_untouched();
        }
    }

    #[test]
    fn refuses_hardlink_through_escaping_symlink() {
        refused_hardlink("evil/sentinel", |tar| {
            tar.symlink("evil", "../outside");
        });
    }

    #[test]
    fn refuses_hardlink_to_missing_target() {
        let (sb, err) = refused(|tar| {
            tar.hardlink("h", "missing-dir/file");
        });
        assert!(
            matches!(&err, UnpackError::HardlinkTargetMissing { entry, .. } if entry == "h"),
            "{err}"
        );
        // A lookup never creates directories.
        assert!(!sb.exists("missing-dir"));
    }

    #[test]
    fn hardlinks_inside_dest_work() {
        let (sb, report) = unpacked(|tar| {
            tar.file("a", 0o755, b"data")
                .hardlink("b", "a")
                .hardlink("sub/c", "./a")
                .hardlink("a", "a")
                .symlink("s", "a")
                .hardlink("s2", "s")
                .symlink("dir-link", "sub")
                .hardlink("d", "dir-link/c");
        });
        let ino = sb.lstat("a").ino();
        for name in ["b", "sub/c", "d"] {
            assert_eq!(sb.lstat(name).ino(), ino, "{name}");
        }
        assert_eq!(sb.lstat("a").nlink(), 4);
        assert_eq!(fs::read(sb.path("sub/c")).unwrap(), b"data");
        // linkat(2) without AT_SYMLINK_FOLLOW links the symlink itself.
        assert_eq!(sb.lstat("s2").ino(), sb.lstat("s").ino());
        assert_eq!(report.files, 1);
    }

    // --- rule 5: modes, owners, mtimes --------------------------------------------------------

    #[test]
    fn modes_are_preserved() {
        let (sb, _) = unpacked(|tar| {
            tar.dir("./", 0o750)
                .dir("bin", 0o755)
                .file("bin/su", 0o4755, b"suid")
                .file("bin/wall", 0o2755, b"sgid")
                .file("secret", 0o640, b"secret")
                .file("noread", 0o000, b"noread")
                .dir("tmp", 0o1777)
                .dir("srv", 0o2775)
                .dir("ro", 0o555)
                .file("ro/f", 0o444, b"f")
                .dir("ro/sub", 0o500)
                .file("ro/sub/g", 0o400, b"g");
        });
        for (name, mode) in [
            ("", 0o750),
            ("bin", 0o755),
            ("bin/su", 0o4755),
            ("bin/wall", 0o2755),
            ("secret", 0o640),
            ("noread", 0o000),
            ("tmp", 0o1777),
            ("srv", 0o2775),
            ("ro", 0o555),
            ("ro/f", 0o444),
            ("ro/sub", 0o500),
            ("ro/sub/g", 0o400),
        ] {
            assert_eq!(sb.lstat(name).mode() & 0o7777, mode, "mode of `{name}`");
        }
    }

    #[test]
    fn mtimes_are_preserved() {
        let (sb, _) = unpacked(|tar| {
            let mut root = Tar::header(tar::EntryType::Directory, 0o755);
            root.set_mtime(1_500_000_000);
            tar.raw(root, b"./", b"", b"");
            let mut dir = Tar::header(tar::EntryType::Directory, 0o755);
            dir.set_mtime(1_400_000_000);
            tar.raw(dir, b"./d/", b"", b"");
            tar.file("./d/f", 0o644, b"f")
                .dir("./d/sub", 0o755)
                .symlink("./d/link", "f")
                .pax(&[("mtime", b"1234567890.5"), ("atime", b"1234567000")])
                .file("./precise", 0o644, b"p");
        });
        // Children were added to `./` and `d` after their entries: their mtimes still stick.
        assert_eq!(fs::metadata(&sb.dest).unwrap().mtime(), 1_500_000_000);
        assert_eq!(sb.lstat("d").mtime(), 1_400_000_000);
        assert_eq!(sb.lstat("d/f").mtime(), MTIME as i64);
        assert_eq!(sb.lstat("d/sub").mtime(), MTIME as i64);
        assert_eq!(sb.lstat("d/link").mtime(), MTIME as i64);
        let precise = sb.lstat("precise");
        assert_eq!(
            (precise.mtime(), precise.mtime_nsec()),
            (1_234_567_890, 500_000_000)
        );
        assert_eq!(precise.atime(), 1_234_567_000);
    }

    #[test]
    fn owners_and_file_capabilities_are_preserved() {
        if !have_root("owners_and_file_capabilities_are_preserved") {
            return;
        }
        let sb = Sandbox::new();
        let user_xattrs = user_xattrs_supported(&sb.base);
        let cap = net_raw_capability();
        let owned = |kind, mode| {
            let mut header = Tar::header(kind, mode);
            header.set_uid(1234);
            header.set_gid(5678);
            // Names must never be looked up: these do not exist on this machine.
            header.set_username("no-such-user-distrod").unwrap();
            header.set_groupname("no-such-group-distrod").unwrap();
            header
        };
        let mut tar = Tar::new();
        tar.raw(
            owned(tar::EntryType::Directory, 0o2775),
            b"./srv/",
            b"",
            b"",
        );
        tar.pax(&[
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.user.distrod", b"yes"),
        ]);
        tar.raw(
            owned(tar::EntryType::Regular, 0o4755),
            b"./srv/ping",
            b"",
            b"ELF",
        );
        tar.raw(
            owned(tar::EntryType::Symlink, 0o777),
            b"./srv/link",
            b"ping",
            b"",
        );
        let report = sb.unpack(&tar.bytes(), opts(true)).unwrap();

        for name in ["srv", "srv/ping", "srv/link"] {
            let meta = sb.lstat(name);
            assert_eq!((meta.uid(), meta.gid()), (1234, 5678), "owner of `{name}`");
        }
        // chown(2) ran before chmod(2) and setxattr(2), so neither setuid nor the capability
        // was cleared by it.
        assert_eq!(sb.lstat("srv/ping").mode() & 0o7777, 0o4755);
        assert_eq!(sb.lstat("srv").mode() & 0o7777, 0o2775);
        assert_eq!(
            lgetxattr(&sb.path("srv/ping"), "security.capability"),
            Some(cap)
        );
        if user_xattrs {
            assert_eq!(
                lgetxattr(&sb.path("srv/ping"), "user.distrod").as_deref(),
                Some(&b"yes"[..])
            );
            assert_eq!(report.xattr_failures, 0);
        } else {
            eprintln!("user xattrs unsupported under {}", sb.base.display());
        }
        sb.assert_untouched();
    }

    // --- rule 6: xattrs ------------------------------------------------------------------------

    #[test]
    fn unprivileged_unpack_keeps_user_xattrs_only() {
        let sb = Sandbox::new();
        if !user_xattrs_supported(&sb.base) {
            eprintln!("skipping: no user xattrs under {}", sb.base.display());
            return;
        }
        let cap = net_raw_capability();
        let mut tar = Tar::new();
        tar.pax(&[
            ("SCHILY.xattr.security.capability", &cap),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.a%3Db%25c", b"escaped"),
        ]);
        tar.file("f", 0o755, b"f");
        tar.pax(&[("SCHILY.xattr.user.on-a-dir", b"d")]);
        tar.dir("d", 0o755);
        tar.pax(&[("SCHILY.xattr.user.on-a-symlink", b"s")]);
        tar.symlink("s", "f");
        let report = sb.unpack(&tar.bytes(), opts(false)).unwrap();
        let f = sb.path("f");
        assert_eq!(lgetxattr(&f, "security.capability"), None);
        assert_eq!(lgetxattr(&f, "trusted.overlay.opaque"), None);
        assert_eq!(
            lgetxattr(&f, "user.a=b%c").as_deref(),
            Some(&b"escaped"[..])
        );
        assert_eq!(
            lgetxattr(&sb.path("d"), "user.on-a-dir").as_deref(),
            Some(&b"d"[..])
        );
        assert_eq!(lgetxattr(&sb.path("s"), "user.on-a-symlink"), None);
        assert_eq!(report.xattr_failures, 0);
        sb.assert_untouched();
    }

    #[test]
    fn xattr_failures_are_counted_not_fatal() {
        let sb = Sandbox::new();
        let mut tar = Tar::new();
        // The kernel validates security.capability values (EINVAL for garbage) and, when not
        // privileged, refuses to set it (EPERM): either way it is a counted failure.
        tar.pax(&[("SCHILY.xattr.security.capability", b"garbage")]);
        tar.file("f", 0o644, b"f");
        let report = sb
            .unpack(&tar.bytes(), opts(true))
            .map_err(|e| e.to_string());
        if !nix::unistd::geteuid().is_root() {
            // Without root, chown fails before xattrs are tried; only check it is an error.
            assert!(report.is_err());
            return;
        }
        let report = report.unwrap();
        assert_eq!(report.xattr_failures, 1);
        assert_eq!(fs::read(sb.path("f")).unwrap(), b"f");
        sb.assert_untouched();
    }

    // --- rule 7: devices, FIFOs, other kinds ---------------------------------------------------

    fn device_archive() -> Vec<u8> {
        let mut tar = Tar::new();
        tar.dir("dev", 0o755);
        let mut null = Tar::header(tar::EntryType::Char, 0o666);
        null.set_device_major(1).unwrap();
        null.set_device_minor(3).unwrap();
        tar.raw(null, b"dev/null", b"", b"");
        let mut loop0 = Tar::header(tar::EntryType::Block, 0o660);
        loop0.set_device_major(7).unwrap();
        loop0.set_device_minor(0).unwrap();
        loop0.set_gid(6);
        tar.raw(loop0, b"dev/loop0", b"", b"");
        tar.bytes()
    }

    #[test]
    fn device_nodes_are_created_as_root() {
        if !have_root("device_nodes_are_created_as_root") {
            return;
        }
        let sb = Sandbox::new();
        let report = sb.unpack(&device_archive(), opts(true)).unwrap();
        assert_eq!(report.skipped_devices, 0);
        let null = sb.lstat("dev/null");
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), makedev(1, 3));
        assert_eq!(null.mode() & 0o7777, 0o666);
        let loop0 = sb.lstat("dev/loop0");
        assert!(loop0.file_type().is_block_device());
        assert_eq!(loop0.rdev(), makedev(7, 0));
        assert_eq!(loop0.mode() & 0o7777, 0o660);
        assert_eq!(loop0.gid(), 6);
        sb.assert_untouched();
    }

    #[test]
    fn device_nodes_are_skipped_and_counted_when_not_allowed() {
        let sb = Sandbox::new();
        let report = sb
            .unpack(
                &device_archive(),
                UnpackOptions {
                    preserve_owners: false,
                    make_devices: false,
                },
            )
            .unwrap();
        assert_eq!(report.skipped_devices, 2);
        assert_eq!(report.entries, 3);
        assert!(sb.lstat("dev").is_dir());
        assert!(!sb.exists("dev/null"));
        assert!(!sb.exists("dev/loop0"));
        sb.assert_untouched();
    }

    #[test]
    fn fifos_are_created() {
        let (sb, _) = unpacked(|tar| {
            tar.raw(
                Tar::header(tar::EntryType::Fifo, 0o620),
                b"run/initctl",
                b"",
                b"",
            );
        });
        let fifo = sb.lstat("run/initctl");
        assert!(fifo.file_type().is_fifo());
        assert_eq!(fifo.mode() & 0o7777, 0o620);
        assert_eq!(fifo.mtime(), MTIME as i64);
    }

    #[test]
    fn unknown_kinds_are_skipped_and_reported() {
        let (sb, report) = unpacked(|tar| {
            tar.raw(
                Tar::header(tar::EntryType::XGlobalHeader, 0o644),
                b"pax_global_header",
                b"",
                b"13 comment=x\n",
            );
            tar.raw(
                Tar::header(tar::EntryType::new(b'Z'), 0o644),
                b"weird",
                b"",
                b"zz",
            );
            tar.file("after", 0o644, b"after");
        });
        assert_eq!(report.skipped_other, vec!["weird".to_owned()]);
        assert_eq!(report.entries, 2);
        assert!(!sb.exists("weird"));
        assert_eq!(fs::read(sb.path("after")).unwrap(), b"after");
    }

    // --- rule 8 and formats ---------------------------------------------------------------------

    #[test]
    fn large_files_stream_intact() {
        let sb = Sandbox::new();
        let data: Vec<u8> = (0..3 * 1024 * 1024 + 123u32)
            .map(|i| (i.wrapping_mul(7) ^ (i >> 11)) as u8)
            .collect();
        let mut tar = Tar::new();
        tar.file("big", 0o644, &data).file("small", 0o644, b"s");
        let report = sb.unpack(&tar.bytes(), opts(false)).unwrap();
        assert!(fs::read(sb.path("big")).unwrap() == data);
        assert_eq!(report.files, 2);
        assert_eq!(report.bytes, data.len() as u64 + 1);
        assert_eq!(report.entries, 2);
        sb.assert_untouched();
    }

    #[test]
    fn gnu_sparse_files_are_expanded() {
        let sb = Sandbox::new();
        let mut header = Tar::header(tar::EntryType::GNUSparse, 0o644);
        let gnu = header.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.sparse[1].set_offset(1 << 20);
        gnu.sparse[1].set_length(512);
        // A zero-length final block is how GNU tar records a trailing hole.
        gnu.sparse[2].set_offset(2 << 20);
        gnu.sparse[2].set_length(0);
        gnu.set_real_size(2 << 20);
        let mut data = vec![b'A'; 512];
        data.extend_from_slice(&[b'B'; 512]);
        let mut tar = Tar::new();
        tar.raw(header, b"sparse", b"", &data);
        let report = sb.unpack(&tar.bytes(), opts(false)).unwrap();
        let content = fs::read(sb.path("sparse")).unwrap();
        assert_eq!(content.len(), 2 << 20);
        assert!(content[..512].iter().all(|&b| b == b'A'));
        assert!(content[1 << 20..(1 << 20) + 512].iter().all(|&b| b == b'B'));
        let zeros = content[512..1 << 20]
            .iter()
            .chain(&content[(1 << 20) + 512..])
            .all(|&b| b == 0);
        assert!(zeros);
        assert_eq!(report.bytes, 2 << 20);
        sb.assert_untouched();
    }

    #[test]
    fn gnu_long_names_and_link_targets() {
        let sb = Sandbox::new();
        let dir = format!("./{}/{}", "d".repeat(70), "e".repeat(70));
        let file = format!("{dir}/{}.txt", "f".repeat(90));
        assert!(file.len() > 200);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = Tar::header(tar::EntryType::Directory, 0o755);
        builder.append_data(&mut header, &dir, io::empty()).unwrap();
        let mut header = Tar::header(tar::EntryType::Regular, 0o644);
        header.set_size(4);
        builder
            .append_data(&mut header, &file, &b"long"[..])
            .unwrap();
        let mut header = Tar::header(tar::EntryType::Symlink, 0o777);
        builder
            .append_link(&mut header, "short-link", &file)
            .unwrap();
        let mut header = Tar::header(tar::EntryType::Link, 0o644);
        builder
            .append_link(
                &mut header,
                format!("{dir}/hard-{}", "h".repeat(100)),
                &file,
            )
            .unwrap();
        let archive = builder.into_inner().unwrap();
        sb.unpack(&archive, opts(false)).unwrap();
        assert_eq!(fs::read(sb.path(&file)).unwrap(), b"long");
        assert_eq!(
            fs::read_link(sb.path("short-link")).unwrap(),
            Path::new(&file)
        );
        let hard = format!("{dir}/hard-{}", "h".repeat(100));
        assert_eq!(sb.lstat(&hard).ino(), sb.lstat(&file).ino());
        sb.assert_untouched();
    }

    // --- archive reading errors ------------------------------------------------------------------

    use crate::image::testing::FailingReader;

    #[test]
    fn reader_errors_propagate_unchanged() {
        let mut tar = Tar::new();
        tar.file("first", 0o644, &[1; 4096])
            .file("second", 0o644, b"2");
        let archive = tar.bytes();
        // Inside the data of `first`, then exactly where the header of `second` starts.
        for (fail_at, at) in [
            (512 + 1000, "in the data of `first`"),
            (512 + 4096, "after entry `first`"),
        ] {
            let sb = Sandbox::new();
            let reader = FailingReader::new(archive.clone(), fail_at);
            let err = unpack(reader, &sb.dest, &opts(false)).unwrap_err();
            assert!(
                matches!(&err, UnpackError::Archive { at: a, .. } if a == at),
                "{err:?}"
            );
            let source = io_source(&err);
            assert_eq!(source.kind(), io::ErrorKind::InvalidData);
            assert_eq!(
                source.to_string(),
                "sha256 mismatch: expected 0123, got 4567"
            );
            sb.assert_untouched();
        }
    }

    #[test]
    fn truncated_archive_is_an_error() {
        let sb = Sandbox::new();
        let mut tar = Tar::new();
        tar.file("f", 0o644, &[7; 4096]);
        let archive = tar.bytes();
        let err = sb.unpack(&archive[..512 + 1000], opts(false)).unwrap_err();
        assert!(matches!(err, UnpackError::Archive { .. }), "{err:?}");
        assert_eq!(io_source(&err).kind(), io::ErrorKind::UnexpectedEof);
        sb.assert_untouched();
    }

    #[test]
    fn options_for_current_user_follow_euid() {
        let root = nix::unistd::geteuid().is_root();
        assert_eq!(UnpackOptions::for_current_user(), opts(root));
    }
}
