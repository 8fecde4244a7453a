//! Making a directory appear whole or not at all: [`Staging`] builds into a temporary sibling
//! of the destination and renames it into place on success; dropped without `commit` it
//! removes the sibling and any parent directories it created, so a failure, a full disk or
//! Ctrl-C leaves nothing behind.

// Staging serves `create`, which unpacks on Unix only; distrod.exe uses StagedFile.
#![cfg_attr(windows, allow(dead_code))]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("{0} exists and is not empty")]
    NotEmpty(PathBuf),
    #[error("{0} exists and is not a directory")]
    NotADirectory(PathBuf),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot move the new tree into place at {path}: {source}")]
    Commit {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub struct Staging {
    temp: PathBuf,
    dest: PathBuf,
    created_parents: Vec<PathBuf>,
    committed: bool,
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
            temp: PathBuf::new(),
            dest: dest.clone(),
            created_parents: Vec::new(),
            committed: false,
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
        staging.temp = temp;
        Ok(staging)
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// Moves the finished tree to the destination. `rename(2)` replaces an empty directory
    /// atomically and fails on a non-empty one, so a destination filled meanwhile is safe.
    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        fs::rename(&self.temp, &self.dest).map_err(|source| StagingError::Commit {
            path: self.dest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if !self.temp.as_os_str().is_empty()
            && let Err(e) = remove_tree(&self.temp)
        {
            eprintln!(
                "warning: cannot remove the unfinished tree {}: {e}",
                self.temp.display()
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
    temp: PathBuf,
    dest: PathBuf,
    committed: bool,
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
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let temp = dest
            .parent()
            .unwrap_or(Path::new("/"))
            .join(format!(".{name}.distrod-{}", std::process::id()));
        Ok(StagedFile {
            temp,
            dest,
            committed: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.temp
    }

    pub fn commit(mut self) -> Result<PathBuf, StagingError> {
        if fs::symlink_metadata(&self.dest).is_ok() {
            return Err(StagingError::Commit {
                path: self.dest.clone(),
                source: io::Error::from(io::ErrorKind::AlreadyExists),
            });
        }
        fs::rename(&self.temp, &self.dest).map_err(|source| StagingError::Commit {
            path: self.dest.clone(),
            source,
        })?;
        self.committed = true;
        Ok(self.dest.clone())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
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
