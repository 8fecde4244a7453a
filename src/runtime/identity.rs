//! The distro's identity: a random id made once (at install, or at the first launch) and
//! kept in the distro itself, at [`ID_FILE`]. It names the container's cgroup
//! (`distrod-<id>`), so that the distros of one WSL VM, which share one cgroup tree, never
//! take each other's. A distro name would not do: `wsl --import` and a rename change it,
//! and two distros may be imported from one tarball under different names.
//!
//! A copy of a distro (`wsl --export` then `--import`) carries the id along; when the copy
//! finds its cgroup held by processes it cannot see (another distro's, see
//! [`super::launch`]), it takes a new id with [`renew`].

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{Context, Result};

/// Where the id is kept: in the distro itself, which outlives WSL's VM (unlike /run).
pub const ID_FILE: &str = "/opt/distrod/state/id";

/// 128 random bits, as 32 lowercase hex digits.
fn is_valid(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ctx(|| "read /dev/urandom".into())?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// This distro's id: the one in [`ID_FILE`], else a new one written there when distrod is
/// installed (`install` makes it; a binary run from elsewhere never creates
/// /opt/distrod). Where there is none and none can be written, an id derived from the
/// root directory's device and inode stands in: stable while the distro runs, which is
/// all a cgroup name needs.
pub fn get() -> String {
    if let Some(id) = read(Path::new(ID_FILE)) {
        return id;
    }
    if !Path::new(super::INSTALL_DIR).is_dir() {
        return fallback();
    }
    match create(Path::new(ID_FILE)) {
        Ok(id) => id,
        Err(e) => {
            tracing::debug!("no distro id file: {}", super::chain(&e));
            fallback()
        }
    }
}

/// A new id for this distro (its old one is another distro's too), written to [`ID_FILE`].
pub fn renew() -> Result<String> {
    let _ = fs::remove_file(ID_FILE);
    create(Path::new(ID_FILE))
}

fn read(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let id = text.trim();
    is_valid(id).then(|| id.to_string())
}

/// Writes a new id with O_EXCL (a concurrent first launch may write it first: then that
/// one is read back), mode 0644, in a root-owned 0755 directory.
fn create(path: &Path) -> Result<String> {
    let dir = path.parent().expect("a parent");
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    let id = random_id()?;
    let tmp = dir.join(format!(".id.{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(format!("{id}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .ctx(|| format!("write {}", tmp.display()))?;
    drop(f);
    // link(2) fails if the id exists: the first writer wins.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(id),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(path)
            .ok_or_else(|| super::Error::Other(format!("{} is not a distro id", path.display()))),
        Err(e) => Err(e).ctx(|| format!("write {}", path.display())),
    }
}

fn fallback() -> String {
    let (dev, ino) = fs::metadata("/")
        .map(|m| (m.dev(), m.ino()))
        .unwrap_or_default();
    format!("{dev:016x}{ino:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_128_random_bits_in_hex() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert!(is_valid(&a) && is_valid(&b), "{a} {b}");
        assert_ne!(a, b);
        assert!(is_valid(&fallback()));
        for bad in [
            "",
            "x",
            &"A".repeat(32),
            &"0".repeat(31),
            &"0".repeat(33),
            "../etc",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn the_first_writer_wins_and_garbage_is_not_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/id");
        assert_eq!(read(&path), None);
        let first = create(&path).unwrap();
        assert_eq!(read(&path).as_deref(), Some(first.as_str()));
        // A second create finds the file and returns what is there.
        assert_eq!(create(&path).unwrap(), first);
        fs::write(&path, "not an id\n").unwrap();
        assert_eq!(read(&path), None);
        assert!(create(&path).is_err());
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [std::ffi::OsString::from("id")]);
    }
}
