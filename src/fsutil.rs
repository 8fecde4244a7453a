//! Making a directory appear whole or not at all: [`Staging`] builds into a temporary sibling
//! of the destination and renames it into place on success; dropped without `commit` it
//! removes the sibling and any parent directories it created, so a failure, a full disk or
//! Ctrl-C leaves nothing behind.
//!
//! Replacing a file or a symlink whole, the one way distrod does it everywhere:
//! [`replace_file`] (or [`Replacement`] when the new file is checked before it goes into
//! place), [`replace_symlink`], and [`move_into_place`] for a file written under a name of
//! its own. Each writes beside the destination and renames over it; how much of that a
//! crash can undo is each caller's explicit choice of [`Durability`].

// Staging serves `create`, which unpacks on Unix only; distrod.exe uses StagedFile.
#![cfg_attr(windows, allow(dead_code))]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// Why a [`Staging`] or [`StagedFile`] cannot be made or put into place.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    /// The destination directory already holds something.
    #[error("{0} exists and is not empty")]
    NotEmpty(PathBuf),
    /// The destination is a file (or a symlink, which is never followed).
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    /// A directory cannot be created, or the destination cannot be inspected.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The path that could not be made or inspected (an existing destination file for
        /// [`StagedFile::beside`]).
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The finished tree or file cannot be renamed into place.
    #[error("cannot move the new tree into place at {path}: {source}")]
    Commit {
        /// The destination.
        path: PathBuf,
        /// Why the rename failed (`AlreadyExists` for a [`StagedFile`] whose destination
        /// appeared meanwhile).
        #[source]
        source: io::Error,
    },
}

/// A directory tree built at a temporary sibling of its destination (see the module's
/// documentation); [`Staging::commit`] puts it into place, dropping it removes it.
pub struct Staging {
    staged: Staged,
    created_parents: Vec<PathBuf>,
}

/// What [`Staging`] and [`StagedFile`] share: a temporary path beside its destination,
/// which becomes the destination once committed (else their drops remove it).
struct Staged {
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl Staged {
    /// Moves the temporary path to the destination with `put` and returns the destination.
    fn commit(
        &mut self,
        put: impl FnOnce(&Path, &Path) -> io::Result<()>,
    ) -> Result<PathBuf, StagingError> {
        put(&self.temp, &self.dest).map_err(|source| StagingError::Commit {
            path: self.dest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

/// Refuses a destination that holds anything: creating must never mix with or replace a
/// user's files.
pub fn check_destination(dest: &Path) -> Result<(), StagingError> {
    match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StagingError::Create {
            path: dest.into(),
            source,
        }),
        Ok(m) if !m.is_dir() => Err(StagingError::NotADirectory(dest.into())),
        Ok(_) => {
            let mut entries = fs::read_dir(dest).map_err(|source| StagingError::Create {
                path: dest.into(),
                source,
            })?;
            if entries.next().is_some() {
                Err(StagingError::NotEmpty(dest.into()))
            } else {
                Ok(())
            }
        }
    }
}

impl Staging {
    /// Creates the empty temporary directory beside `dest` (and the missing parents of
    /// `dest`, which a drop removes again). Fails when `dest` holds anything
    /// ([`check_destination`]).
    pub fn new(dest: &Path) -> Result<Staging, StagingError> {
        check_destination(dest)?;
        let dest = std::path::absolute(dest).map_err(|source| StagingError::Create {
            path: dest.into(),
            source,
        })?;
        let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut created_parents = Vec::new();
        let mut missing = Vec::new();
        let mut p = parent.as_path();
        while !p.exists() {
            missing.push(p.to_path_buf());
            match p.parent() {
                Some(q) => p = q,
                None => break,
            }
        }
        let mut staging = Staging {
            staged: Staged {
                temp: PathBuf::new(),
                dest: dest.clone(),
                committed: false,
            },
            created_parents: Vec::new(),
        };
        for dir in missing.into_iter().rev() {
            fs::create_dir(&dir).map_err(|source| StagingError::Create {
                path: dir.clone(),
                source,
            })?;
            created_parents.push(dir);
            staging.created_parents = created_parents.clone();
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "rootfs".into());
        let temp = parent.join(format!(".{name}.distrod-{}", std::process::id()));
        fs::create_dir(&temp).map_err(|source| StagingError::Create {
            path: temp.clone(),
            source,
        })?;
        staging.staged.temp = temp;
        Ok(staging)
    }

    /// The temporary directory to build the tree in.
    pub fn path(&self) -> &Path {
        &self.staged.temp
    }

    /// Moves the finished tree to the destination. `rename(2)` replaces an empty directory
    /// atomically and fails on a non-empty one, so a destination filled meanwhile is safe.
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        self.staged.commit(|temp, dest| fs::rename(temp, dest))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let staged = &self.staged;
        if staged.committed {
            return;
        }
        if !staged.temp.as_os_str().is_empty()
            && let Err(e) = remove_tree(&staged.temp)
        {
            eprintln!(
                "warning: cannot remove the unfinished tree {}: {e}",
                staged.temp.display()
            );
        }
        for dir in self.created_parents.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
}

/// A file built beside its destination (`.NAME.distrod-PID`) and renamed into place by
/// [`StagedFile::commit`]; dropped without it, the temporary file is removed.
pub struct StagedFile {
    staged: Staged,
}

impl StagedFile {
    /// Fails when `dest` exists: a file of the user's is never replaced.
    pub fn beside(dest: &Path) -> Result<StagedFile, StagingError> {
        let dest = std::path::absolute(dest).map_err(|source| StagingError::Create {
            path: dest.into(),
            source,
        })?;
        if fs::symlink_metadata(&dest).is_ok() {
            return Err(StagingError::Create {
                path: dest,
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        let temp = temp_sibling(&dest);
        Ok(StagedFile {
            staged: Staged {
                temp,
                dest,
                committed: false,
            },
        })
    }

    /// The temporary file to write (not yet created: the caller creates it).
    pub fn path(&self) -> &Path {
        &self.staged.temp
    }

    /// Renames the temporary file to the destination and returns that; fails, leaving
    /// nothing behind, when something appeared at the destination meanwhile.
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        if fs::symlink_metadata(&self.staged.dest).is_ok() {
            return Err(StagingError::Commit {
                path: self.staged.dest.clone(),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        // Volatile: its writer (`pack`) syncs the data itself before committing, and the
        // new name may be lost in a crash like any file a command has just written.
        self.staged
            .commit(|temp, dest| move_into_place(temp, dest, Durability::Volatile))
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.staged.committed {
            let _ = fs::remove_file(&self.staged.temp);
        }
    }
}

/// How much of a replacement a crash (power loss, kernel panic, the WSL VM killed) can undo:
/// the one statement of what [`replace_file`], [`Replacement`], [`replace_symlink`] and
/// [`move_into_place`] guarantee.
///
/// Whatever the level, readers never see a partial file: the new file is complete under a
/// temporary name before `rename(2)` swaps it in, and the rename is atomic, so the path
/// names the old file or the new one, nothing in between. A killed process is no crash here
/// (the kernel still writes what it was given); it leaves at most its temporary file behind.
/// What a crash leaves depends on the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Nothing is flushed: after a crash the path may hold the old file, the new one, or a
    /// new file that is empty or cut short. Only for files that do not outlive a crash
    /// anyway (a tmpfs such as /run) or that are verified whenever they are used.
    Volatile,
    /// The new file's data, owner and mode are on disk before the rename: after a crash the
    /// path holds the old contents or the new ones in full, never a mix or an empty file;
    /// but the rename itself may be lost, so the old file may come back after the call
    /// returned.
    Contents,
    /// As `Contents`, and the directory is fsynced after the rename: once the call returns,
    /// the new file is what a crash leaves. On Windows, which cannot fsync a directory, this
    /// is `Contents`.
    Durable,
}

/// What a replaced file gets besides its contents, and how durable the replacement is.
/// Unix: without [`mode`](Replace::mode) the file gets `0666` less the umask, as
/// `File::create` gives it, and the creating process's owner.
#[derive(Debug, Clone, Copy)]
pub struct Replace {
    durability: Durability,
    #[cfg(unix)]
    mode: Option<u32>,
    #[cfg(unix)]
    owner: Option<(u32, u32)>,
    #[cfg(unix)]
    keep_existing: bool,
}

impl Replace {
    /// Only the durability, which every caller must choose; the rest as `File::create`.
    pub const fn new(durability: Durability) -> Replace {
        Replace {
            durability,
            #[cfg(unix)]
            mode: None,
            #[cfg(unix)]
            owner: None,
            #[cfg(unix)]
            keep_existing: false,
        }
    }

    /// Exactly these permission bits (set-id bits included), whatever the umask. The file
    /// is `0600` until they are set, after the contents are written.
    #[cfg(unix)]
    pub const fn mode(mut self, mode: u32) -> Replace {
        self.mode = Some(mode);
        self
    }

    /// This owner, set before the mode (`chown` clears set-id bits).
    #[cfg(unix)]
    pub const fn owner(mut self, uid: u32, gid: u32) -> Replace {
        self.owner = Some((uid, gid));
        self
    }

    /// The owner and mode of the file being replaced, when there is one (read through a
    /// symlink: the rename replaces the link by a file, with the mode it pointed at);
    /// [`mode`](Replace::mode) and [`owner`](Replace::owner) then apply to a new file only.
    #[cfg(unix)]
    pub const fn keep_existing(mut self) -> Replace {
        self.keep_existing = true;
        self
    }
}

/// The temporary sibling of `path`: `.NAME.distrod-PID` in the same directory (so the
/// rename never crosses file systems), hidden, and named after the process, so a file left
/// by a killed process is recognisable and the next one with that pid reuses and removes it.
/// So a process must not replace the same path from two threads at once.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.distrod-{}", std::process::id()))
}

/// The temporary file or symlink, removed when dropped unless it was renamed into place.
struct Temp {
    path: PathBuf,
    armed: bool,
}

impl Temp {
    /// Claims the temporary name of `dest`, removing what a killed process with this pid
    /// left there.
    fn beside(dest: &Path) -> io::Result<Temp> {
        if dest.file_name().is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} does not name a file", dest.display()),
            ));
        }
        let path = temp_sibling(dest);
        let _ = fs::remove_file(&path);
        Ok(Temp { path, armed: true })
    }

    /// Renames the temporary over `dest`, then fsyncs the directory if asked; the temporary
    /// is gone from then on, even when that fsync fails.
    fn rename_over(mut self, dest: &Path, durability: Durability) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.armed = false;
        if durability == Durability::Durable {
            sync_parent(dest)?;
        }
        Ok(())
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", self.path.display());
        }
    }
}

/// Makes the directory entry of `path` durable: fsync(2) of its directory.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory to flush it; NTFS journals the rename itself.
#[cfg(not(unix))]
fn sync_parent(_: &Path) -> io::Result<()> {
    Ok(())
}

/// Replaces `path` with a file whose contents `write` produces, atomically, with the owner,
/// mode and [`Durability`] of `opts` (see there for what a crash leaves). The file is
/// written at [`temp_sibling`]`(path)`, created anew, and renamed over `path`; on any error
/// `path` is untouched and the temporary file is removed. A symlink at `path` is replaced,
/// not followed.
pub fn replace_file(
    path: &Path,
    opts: Replace,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let mut r = Replacement::begin(path, opts)?;
    write(r.file())?;
    r.commit()
}

/// [`replace_file`] in steps, for a caller that writes with errors of its own or checks the
/// complete file before it goes into place: [`begin`](Replacement::begin), write to
/// [`file`](Replacement::file), [`finish`](Replacement::finish) (owner, mode, data synced,
/// closed), [`Ready::commit`]. Dropped before the commit, the temporary file is removed.
pub struct Replacement {
    // Declared before `temp`: closed before it is removed (Windows removes no open file).
    file: File,
    temp: Temp,
    dest: PathBuf,
    opts: Replace,
    /// The replaced file's mode and owner, with [`Replace::keep_existing`].
    #[cfg(unix)]
    existing: Option<(u32, u32, u32)>,
}

impl Replacement {
    /// Creates the temporary file for replacing `dest` (`0600` until finished when `opts`
    /// sets a mode or keeps the existing one, so nobody reads it half-made).
    pub fn begin(dest: &Path, opts: Replace) -> io::Result<Replacement> {
        #[cfg(unix)]
        let existing = if opts.keep_existing {
            use std::os::unix::fs::MetadataExt;
            match fs::metadata(dest) {
                Ok(m) => Some((m.mode() & 0o7777, m.uid(), m.gid())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let temp = Temp::beside(dest)?;
        let mut open = OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        if opts.mode.is_some() || opts.keep_existing {
            use std::os::unix::fs::OpenOptionsExt;
            open.mode(0o600);
        }
        let file = open.open(&temp.path)?;
        Ok(Replacement {
            file,
            temp,
            dest: dest.to_path_buf(),
            opts,
            #[cfg(unix)]
            existing,
        })
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.temp.path
    }

    /// The temporary file, open for writing.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Sets the owner and then the mode, syncs the data unless `Volatile`, and closes the
    /// file (a file open for writing cannot be executed, nor renamed on Windows).
    pub fn finish(self) -> io::Result<Ready> {
        let Replacement {
            file,
            temp,
            dest,
            opts,
            #[cfg(unix)]
            existing,
        } = self;
        let done = (|| {
            #[cfg(unix)]
            {
                let (mode, owner) = match existing {
                    Some((mode, uid, gid)) => (Some(mode), Some((uid, gid))),
                    None => (opts.mode, opts.owner),
                };
                if let Some((uid, gid)) = owner {
                    std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
                }
                if let Some(mode) = mode {
                    use std::os::unix::fs::PermissionsExt;
                    file.set_permissions(fs::Permissions::from_mode(mode))?;
                }
            }
            if opts.durability != Durability::Volatile {
                file.sync_all()?;
            }
            Ok(())
        })();
        drop(file);
        done.map(|()| Ready {
            temp,
            dest,
            durability: opts.durability,
        })
    }

    /// [`finish`](Replacement::finish), then [`Ready::commit`].
    pub fn commit(self) -> io::Result<()> {
        self.finish()?.commit()
    }
}

/// A complete, closed replacement file waiting to be renamed over its destination; dropped
/// without [`commit`](Ready::commit), it is removed.
pub struct Ready {
    temp: Temp,
    dest: PathBuf,
    durability: Durability,
}

impl Ready {
    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.temp.path
    }

    /// Renames the file over the destination (and fsyncs the directory when `Durable`).
    pub fn commit(self) -> io::Result<()> {
        self.temp.rename_over(&self.dest, self.durability)
    }
}

/// Replaces the symlink (or whatever is) at `link` with a symlink to `target`, atomically:
/// made at [`temp_sibling`]`(link)` and renamed over `link`, so the old link is replaced,
/// never followed (unlike `ln -sf` onto a link to a directory), and `link` never vanishes.
/// [`Durability`] as for files; a symlink cannot be opened to be fsynced, and its target is
/// written with the link itself, so only `Durable` (the directory fsynced) adds to
/// `Volatile`. On error `link` is untouched and the temporary link removed.
#[cfg(unix)]
pub fn replace_symlink(link: &Path, target: &Path, durability: Durability) -> io::Result<()> {
    let temp = Temp::beside(link)?;
    std::os::unix::fs::symlink(target, &temp.path)?;
    temp.rename_over(link, durability)
}

/// Renames `from`, a complete file its writer has closed, over `to` (in the same directory
/// or at least file system), for a file written under a name of its own (a resumable
/// download, a file a caller stages itself). With `Contents` or `Durable`, `from` is
/// synced first, as [`Durability`] says. On error `from` is left for the caller.
pub fn move_into_place(from: &Path, to: &Path, durability: Durability) -> io::Result<()> {
    if durability != Durability::Volatile {
        // Windows flushes only a file open for writing.
        OpenOptions::new()
            .read(true)
            .write(cfg!(windows))
            .open(from)?
            .sync_all()?;
    }
    fs::rename(from, to)?;
    if durability == Durability::Durable {
        sync_parent(to)?;
    }
    Ok(())
}

/// `rm -rf` that also copes with read-only directories (a rootfs has `0555` ones such as
/// `/proc`, which block deleting their entries when not root).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(first) => {
            make_writable(path);
            fs::remove_dir_all(path).map_err(|_| first)
        }
    }
}

#[cfg(unix)]
fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(m) = fs::symlink_metadata(path) else {
        return;
    };
    if m.is_dir() {
        let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

#[cfg(not(unix))]
fn make_writable(_: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_and_rollback() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("a/b/dest");
        {
            let s = Staging::new(&dest).unwrap();
            fs::write(s.path().join("f"), b"x").unwrap();
            assert!(s.path().starts_with(tmp.path().join("a/b")));
        }
        // Dropped: nothing left, not even the parents it made.
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);

        let s = Staging::new(&dest).unwrap();
        fs::write(s.path().join("f"), b"x").unwrap();
        assert_eq!(s.commit().unwrap(), dest);
        assert_eq!(fs::read(dest.join("f")).unwrap(), b"x");
        assert_eq!(fs::read_dir(tmp.path().join("a/b")).unwrap().count(), 1);
    }

    // Staging renames a directory over an empty one, which only Unix allows; it serves
    // `create`, which runs on Unix only.
    #[cfg(unix)]
    #[test]
    fn refuses_non_empty_and_files() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("keep"), b"mine").unwrap();
        assert!(matches!(
            Staging::new(tmp.path()),
            Err(StagingError::NotEmpty(_))
        ));
        assert!(matches!(
            Staging::new(&tmp.path().join("keep")),
            Err(StagingError::NotADirectory(_))
        ));
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let s = Staging::new(&empty).unwrap();
        s.commit().unwrap();
        assert!(empty.is_dir());
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replace_file_replaces_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.json");
        for (durability, text) in [
            (Durability::Volatile, "one"),
            (Durability::Contents, "two"),
            (Durability::Durable, "three"),
        ] {
            replace_file(&path, Replace::new(durability), |f| {
                io::Write::write_all(f, text.as_bytes())
            })
            .unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), text);
            assert_eq!(names(tmp.path()), ["f.json"]);
        }
    }

    #[test]
    fn failing_write_keeps_the_old_file_and_removes_the_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, b"old").unwrap();
        let err = replace_file(&path, Replace::new(Durability::Durable), |f| {
            io::Write::write_all(f, b"half")?;
            Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(tmp.path()), ["f"]);

        // Dropped before or after finishing: the same.
        let mut r = Replacement::begin(&path, Replace::new(Durability::Contents)).unwrap();
        io::Write::write_all(r.file(), b"new").unwrap();
        assert!(r.path().exists());
        drop(r);
        let mut r = Replacement::begin(&path, Replace::new(Durability::Contents)).unwrap();
        io::Write::write_all(r.file(), b"new").unwrap();
        let ready = r.finish().unwrap();
        assert_eq!(fs::read(ready.path()).unwrap(), b"new");
        drop(ready);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[test]
    fn a_leftover_temporary_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        // What a killed process with this pid left.
        fs::write(temp_sibling(&path), b"stale").unwrap();
        replace_file(&path, Replace::new(Durability::Volatile), |f| {
            io::Write::write_all(f, b"new")
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[test]
    fn refuses_a_path_without_a_file_name() {
        let err = replace_file(Path::new("/"), Replace::new(Durability::Volatile), |_| {
            Ok(())
        })
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn move_into_place_renames_over() {
        let tmp = tempfile::tempdir().unwrap();
        let (from, to) = (tmp.path().join("a.part"), tmp.path().join("a"));
        for durability in [Durability::Volatile, Durability::Durable] {
            fs::write(&to, b"old").unwrap();
            fs::write(&from, b"new").unwrap();
            move_into_place(&from, &to, durability).unwrap();
            assert_eq!(fs::read(&to).unwrap(), b"new");
            assert_eq!(names(tmp.path()), ["a"]);
        }
        // A missing source: an error, and the destination as it was.
        assert!(move_into_place(&from, &to, Durability::Contents).is_err());
        assert_eq!(fs::read(&to).unwrap(), b"new");
    }

    #[cfg(unix)]
    #[test]
    fn replace_file_sets_or_keeps_the_mode() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let write = |f: &mut File| io::Write::write_all(f, b"x");

        // Exactly the mode asked for, whatever the umask (0666 is wider than any default).
        let path = tmp.path().join("set");
        replace_file(&path, Replace::new(Durability::Contents).mode(0o666), write).unwrap();
        assert_eq!(mode(&path), 0o666);
        replace_file(&path, Replace::new(Durability::Contents).mode(0o640), write).unwrap();
        assert_eq!(mode(&path), 0o640);

        // A new file gets the mode given, an existing one keeps its own.
        let kept = tmp.path().join("kept");
        let keep = Replace::new(Durability::Durable)
            .mode(0o644)
            .keep_existing();
        replace_file(&kept, keep, write).unwrap();
        assert_eq!(mode(&kept), 0o644);
        fs::set_permissions(&kept, fs::Permissions::from_mode(0o604)).unwrap();
        replace_file(&kept, keep, write).unwrap();
        assert_eq!(mode(&kept), 0o604);

        // The temporary file is private until finished.
        let r = Replacement::begin(&path, Replace::new(Durability::Volatile).mode(0o644)).unwrap();
        assert_eq!(mode(r.path()), 0o600);
        assert_eq!(mode(r.finish().unwrap().path()), 0o644);
        assert_eq!(names(tmp.path()), ["kept", "set"]);
    }

    #[cfg(unix)]
    #[test]
    fn replace_file_sets_or_keeps_the_owner() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let write = |f: &mut File| io::Write::write_all(f, b"x");
        let me = fs::metadata(tmp.path()).unwrap();
        // Root gives the file away; anyone else can only chown to their own ids.
        let (uid, gid) = if nix::unistd::geteuid().is_root() {
            (65534, 65534)
        } else {
            (me.uid(), me.gid())
        };
        let opts = Replace::new(Durability::Contents)
            .owner(uid, gid)
            .mode(0o4755);
        replace_file(&path, opts, write).unwrap();
        let owner_and_mode = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.uid(), m.gid(), m.mode() & 0o7777)
        };
        // The mode comes after the owner, so the set-id bit stays.
        assert_eq!(owner_and_mode(&path), (uid, gid, 0o4755));

        // Kept: what is asked for applies to a new file only.
        let keep = Replace::new(Durability::Volatile)
            .owner(me.uid(), me.gid())
            .mode(0o644)
            .keep_existing();
        replace_file(&path, keep, write).unwrap();
        assert_eq!(owner_and_mode(&path), (uid, gid, 0o4755));
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[cfg(unix)]
    #[test]
    fn replace_symlink_replaces_the_link_not_its_target() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, b"mine").unwrap();
        let link = tmp.path().join("link");

        replace_symlink(&link, Path::new("file"), Durability::Volatile).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("file"));
        // A link to a directory is replaced, not followed into it (as `ln -sf` would).
        replace_symlink(&link, Path::new("dir"), Durability::Durable).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("dir"));
        replace_symlink(&link, Path::new("elsewhere"), Durability::Contents).unwrap();
        assert_eq!(fs::read_link(&link).unwrap(), Path::new("elsewhere"));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        assert_eq!(fs::read(&file).unwrap(), b"mine");
        assert_eq!(names(tmp.path()), ["dir", "file", "link"]);

        // A directory cannot be replaced by a link: an error, nothing left behind.
        assert!(replace_symlink(&dir, Path::new("file"), Durability::Volatile).is_err());
        assert!(dir.is_dir() && !dir.is_symlink());
        assert_eq!(names(tmp.path()), ["dir", "file", "link"]);
    }

    #[cfg(unix)]
    #[test]
    fn removes_read_only_directories() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let ro = tmp.path().join("t/ro");
        fs::create_dir_all(&ro).unwrap();
        fs::write(ro.join("f"), b"x").unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o555)).unwrap();
        remove_tree(&tmp.path().join("t")).unwrap();
        assert!(!tmp.path().join("t").exists());
    }
}
