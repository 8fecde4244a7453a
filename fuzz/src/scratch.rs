//! Fresh scratch directories for the targets that write files (the tar unpacker, the
//! account edits): one per input, under the temporary directory (`$TMPDIR`, else /tmp),
//! removed again after the input, so that no run sees what an earlier one left.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory that is removed, whatever is in it, when dropped.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `<tmp>/distrod-fuzz-<what>.<pid>.<n>`, empty.
    pub fn new(what: &str) -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("distrod-fuzz-{what}.{}.{n}", std::process::id()));
        // A crashed earlier process with the same pid may have left it.
        remove_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create the scratch directory {path:?}: {e}"));
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_all(&self.path);
    }
}

/// Removes `path` and everything below it. An unpacked tree may hold directories whose
/// mode locks out their owner (a user who is not root cannot list or empty them): those get
/// owner permissions back first.
pub fn remove_all(path: &Path) {
    if fs::symlink_metadata(path).is_err() || fs::remove_dir_all(path).is_ok() {
        return;
    }
    unlock(path);
    if let Err(e) = fs::remove_dir_all(path) {
        panic!("cannot remove the scratch directory {path:?}: {e}");
    }
}

fn unlock(dir: &Path) {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            unlock(&e.path());
        }
    }
}

/// Every path under `root` (relative, sorted) that is not a directory, with its kind: what
/// a target compares before and after to see what was left behind.
pub fn files(root: &Path) -> Vec<(PathBuf, &'static str)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, &'static str)>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let kind = if t.is_symlink() { "symlink" } else { "file" };
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            out.push((rel, kind));
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
