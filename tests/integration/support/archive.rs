//! Real root-filesystem archives made from a small spec, shaped like the image server's
//! (`tar --numeric-owner -C rootfs .`: `./`-prefixed names, numeric owners, setuid bits,
//! symlinks and hardlinks), compressed the ways distrod must read: xz in one block or in
//! many (as `xz --threads=0` writes them), gzip, or not at all. The same spec then checks
//! the unpacked tree.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use liblzma::stream::{Check, MtStreamBuilder};
use sha2::{Digest, Sha256};

/// Block size of the multi-block xz streams: small, so a test archive of a few hundred KiB
/// spans several blocks.
pub const XZ_BLOCK_SIZE: u64 = 64 * 1024;

/// A fixed timestamp for every entry, so archives are reproducible.
const MTIME: u64 = 1_700_000_000;

#[derive(Clone, Debug)]
enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    /// A hard link to the entry at `target` (a path in the same spec).
    Hardlink {
        target: String,
    },
}

#[derive(Clone, Debug)]
struct Entry {
    /// Relative path without `./`; empty for the root itself.
    path: String,
    node: Node,
}

/// A root filesystem as a list of entries, in archive order.
#[derive(Clone, Debug)]
pub struct RootfsSpec {
    entries: Vec<Entry>,
}

impl RootfsSpec {
    /// Only the root directory (`./`, mode 0755).
    pub fn new() -> RootfsSpec {
        RootfsSpec {
            entries: vec![Entry {
                path: String::new(),
                node: Node::Dir { mode: 0o755 },
            }],
        }
    }

    pub fn dir(mut self, path: &str, mode: u32) -> RootfsSpec {
        self.push(path, Node::Dir { mode });
        self
    }

    pub fn file(mut self, path: &str, mode: u32, data: impl Into<Vec<u8>>) -> RootfsSpec {
        let data = data.into();
        self.push(path, Node::File { mode, data });
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> RootfsSpec {
        let target = target.to_owned();
        self.push(path, Node::Symlink { target });
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> RootfsSpec {
        assert!(
            self.entries
                .iter()
                .any(|e| e.path == target && matches!(e.node, Node::File { .. })),
            "hardlink target {target} must be a file added before"
        );
        let target = target.to_owned();
        self.push(path, Node::Hardlink { target });
        self
    }

    fn push(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches("./").trim_matches('/').to_owned();
        assert!(!path.is_empty(), "the root is implicit");
        self.entries.push(Entry { path, node });
    }

    /// A small tree shaped like a distro: merged `/usr`, a setuid `sudo`, a sticky `/tmp`, a
    /// private `/root`, absolute and relative symlinks, a hardlinked binary, systemd as
    /// `/sbin/init` (a stand-in: distrod checks that an image boots systemd, see
    /// src/initsys.rs), and an `os-release` naming `name` so tests can tell images apart.
    pub fn distro(name: &str) -> RootfsSpec {
        RootfsSpec::distro_without_systemd(name)
            .dir("usr/lib/systemd", 0o755)
            .file("usr/lib/systemd/systemd", 0o755, script("systemd"))
            .dir("usr/sbin", 0o755)
            .symlink("usr/sbin/init", "../lib/systemd/systemd")
            .symlink("sbin", "usr/sbin")
    }

    /// [`RootfsSpec::distro`] without systemd: nothing at /sbin/init or where systemd would
    /// be (an image whose distro boots another init, as far as distrod can tell).
    pub fn distro_without_systemd(name: &str) -> RootfsSpec {
        RootfsSpec::new()
            .dir("etc", 0o755)
            .file(
                "etc/os-release",
                0o644,
                format!("ID={name}\nPRETTY_NAME=\"{name} (distrod test image)\"\n"),
            )
            .file("etc/hostname", 0o644, "localhost\n")
            .file("etc/shadow", 0o640, "root:*:19000:0:99999:7:::\n")
            .symlink("etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
            .dir("usr", 0o755)
            .dir("usr/bin", 0o755)
            .file("usr/bin/sudo", 0o4755, script("sudo"))
            .file("usr/bin/wall", 0o2755, script("wall"))
            .file("usr/bin/perl5.36", 0o755, script("perl"))
            .hardlink("usr/bin/perl", "usr/bin/perl5.36")
            .symlink("usr/bin/sh", "dash")
            .file("usr/bin/dash", 0o755, script("dash"))
            .dir("usr/lib", 0o755)
            .dir("usr/share", 0o755)
            .dir("usr/share/zoneinfo", 0o755)
            .dir("usr/share/zoneinfo/Etc", 0o755)
            .file("usr/share/zoneinfo/Etc/UTC", 0o644, "TZif2 fake\n")
            .symlink("bin", "usr/bin")
            .symlink("lib", "usr/lib")
            .dir("root", 0o700)
            .file("root/.profile", 0o644, "# root's profile\n")
            .dir("tmp", 0o1777)
            .dir("var", 0o755)
            .dir("var/empty", 0o555)
    }

    /// Adds `bytes` of pseudo-random (incompressible) data in a shared library, so the
    /// archive is as large as its content and an xz stream of it spans many blocks.
    pub fn with_payload(self, bytes: usize, seed: u64) -> RootfsSpec {
        self.file("usr/lib/libpayload.so.1", 0o644, pseudo_random(seed, bytes))
    }

    /// The total size of the file contents.
    pub fn content_size(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match &e.node {
                Node::File { data, .. } => data.len(),
                _ => 0,
            })
            .sum()
    }

    /// The uncompressed tar archive.
    pub fn tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(MTIME);
            let name = match (&entry.node, entry.path.as_str()) {
                (_, "") => "./".to_owned(),
                (Node::Dir { .. }, path) => format!("./{path}/"),
                (_, path) => format!("./{path}"),
            };
            // `Header::set_path` drops `./`; the image server's archives keep it.
            set_raw(&mut header.as_old_mut().name, &name);
            match &entry.node {
                Node::Dir { mode } => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(*mode);
                    header.set_size(0);
                }
                Node::File { mode, data } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(*mode);
                    header.set_size(data.len() as u64);
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    set_raw(&mut header.as_old_mut().linkname, target);
                }
                Node::Hardlink { target } => {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_mode(0o644);
                    header.set_size(0);
                    set_raw(&mut header.as_old_mut().linkname, &format!("./{target}"));
                }
            }
            header.set_cksum();
            let data: &[u8] = match &entry.node {
                Node::File { data, .. } => data,
                _ => &[],
            };
            builder
                .append(&header, data)
                .expect("append to the archive");
        }
        builder.into_inner().expect("finish the archive")
    }

    /// Asserts that `root` holds every entry of the spec with its type, permission bits
    /// (including setuid, setgid and sticky), content, symlink target and hardlink identity.
    /// Extra entries are allowed: distrod may add its own files to a tree.
    pub fn assert_unpacked(&self, root: &Path) {
        for entry in &self.entries {
            let path = root.join(&entry.path);
            let shown = format!("/{}", entry.path);
            let meta = std::fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("{shown} missing from {}: {e}", root.display()));
            match &entry.node {
                Node::Dir { mode } => {
                    assert!(meta.is_dir(), "{shown} is not a directory");
                    assert_mode(&shown, &meta, *mode);
                }
                Node::File { mode, data } => {
                    assert!(meta.file_type().is_file(), "{shown} is not a regular file");
                    assert_mode(&shown, &meta, *mode);
                    assert_content(&shown, &path, data);
                }
                Node::Symlink { target } => {
                    assert!(meta.file_type().is_symlink(), "{shown} is not a symlink");
                    let found = std::fs::read_link(&path).expect("read the symlink");
                    assert_eq!(
                        found,
                        Path::new(target),
                        "{shown} points to the wrong target"
                    );
                }
                Node::Hardlink { target } => {
                    assert!(meta.file_type().is_file(), "{shown} is not a regular file");
                    let other = std::fs::symlink_metadata(root.join(target))
                        .unwrap_or_else(|e| panic!("/{target} missing: {e}"));
                    assert_eq!(
                        (meta.dev(), meta.ino()),
                        (other.dev(), other.ino()),
                        "{shown} is not a hard link to /{target}"
                    );
                    assert!(meta.nlink() >= 2, "{shown} has a link count below 2");
                }
            }
        }
    }
}

fn set_raw(field: &mut [u8], value: &str) {
    assert!(
        value.len() < field.len(),
        "{value} is too long for a tar field"
    );
    field.fill(0);
    field[..value.len()].copy_from_slice(value.as_bytes());
}

fn script(name: &str) -> String {
    format!("#!/bin/sh\n# stand-in for {name}\nexit 0\n")
}

fn assert_mode(shown: &str, meta: &std::fs::Metadata, mode: u32) {
    let found = meta.permissions().mode() & 0o7777;
    assert_eq!(found, mode, "{shown} has mode {found:o}, expected {mode:o}");
}

fn assert_content(shown: &str, path: &Path, expected: &[u8]) {
    let found = std::fs::read(path).expect("read an unpacked file");
    if found != expected {
        panic!(
            "{shown} has the wrong content: {} bytes (sha256 {}), expected {} bytes (sha256 {})",
            found.len(),
            sha256_hex(&found),
            expected.len(),
            sha256_hex(expected)
        );
    }
}

/// xz, one block (`xz -T1`, preset 6).
pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut encoder = liblzma::write::XzEncoder::new(Vec::new(), 6);
    encoder.write_all(data).expect("xz");
    encoder.finish().expect("xz")
}

/// xz in blocks of [`XZ_BLOCK_SIZE`] from the multi-threaded encoder, as
/// `xz --threads=0` writes the image server's tarballs.
pub fn xz_multi_block(data: &[u8]) -> Vec<u8> {
    let stream = MtStreamBuilder::new()
        .threads(2)
        .block_size(XZ_BLOCK_SIZE)
        .preset(6)
        .check(Check::Crc64)
        .encoder()
        .expect("multi-threaded xz encoder");
    let mut encoder = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
    encoder.write_all(data).expect("xz");
    encoder.finish().expect("xz")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

/// The number of blocks of a single-stream xz file, read from its index (found through
/// the stream footer's backward size).
pub fn xz_block_count(xz: &[u8]) -> u64 {
    assert!(xz.len() >= 24, "too short for xz");
    let footer = &xz[xz.len() - 12..];
    assert_eq!(&footer[10..], b"YZ", "no xz stream footer");
    let backward = u32::from_le_bytes(footer[4..8].try_into().unwrap());
    let index_size = (backward as usize + 1) * 4;
    let index = &xz[xz.len() - 12 - index_size..xz.len() - 12];
    assert_eq!(index[0], 0, "no xz index indicator");
    // Number of Records: a little-endian base-128 varint.
    let mut count = 0u64;
    for (i, byte) in index[1..].iter().enumerate().take(9) {
        count |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return count;
        }
    }
    panic!("bad xz index record count");
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic incompressible bytes (xorshift64*).
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Decompresses an xz file whole (to check the archives themselves).
pub fn unxz(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("valid xz");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RootfsSpec {
        RootfsSpec::distro("sample").with_payload(300 * 1024, 1)
    }

    #[test]
    fn multi_block_xz_has_several_blocks() {
        let tar = sample().tar();
        let multi = xz_multi_block(&tar);
        let blocks = xz_block_count(&multi);
        assert!(
            blocks > 1 && blocks >= tar.len() as u64 / XZ_BLOCK_SIZE,
            "{blocks} blocks for {} bytes",
            tar.len()
        );
        assert_eq!(unxz(&multi), tar);
        let single = xz(&tar);
        assert_eq!(xz_block_count(&single), 1);
        assert_eq!(unxz(&single), tar);
    }

    #[test]
    fn gzip_round_trips() {
        let tar = sample().tar();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&tar)[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, tar);
    }

    #[test]
    fn entries_look_like_the_image_servers() {
        let tar = sample().tar();
        let mut archive = tar::Archive::new(&tar[..]);
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let header = entry.header();
            let name = String::from_utf8(header.path_bytes().into_owned()).unwrap();
            assert!(name.starts_with("./"), "{name} lacks ./");
            assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
            if name == "./usr/bin/sudo" {
                assert_eq!(header.mode().unwrap(), 0o4755);
            }
            if name == "./usr/bin/perl" {
                assert_eq!(header.entry_type(), tar::EntryType::Link);
                assert_eq!(&*header.link_name_bytes().unwrap(), b"./usr/bin/perl5.36");
            }
            names.push(name);
        }
        assert_eq!(names[0], "./");
        assert!(names.contains(&"./tmp/".to_owned()));
    }

    fn reference_unpack(spec: &RootfsSpec) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let tar = spec.tar();
        let mut archive = tar::Archive::new(&tar[..]);
        archive.set_preserve_permissions(true);
        archive.unpack(dir.path()).unwrap();
        dir
    }

    /// The checker accepts what a reference unpacker (the `tar` crate, preserving
    /// permissions) makes of the archive...
    #[test]
    fn reference_unpack_passes_the_check() {
        let spec = sample();
        let dir = reference_unpack(&spec);
        spec.assert_unpacked(dir.path());
    }

    /// ...and rejects a tree that lost a setuid bit.
    #[test]
    #[should_panic(expected = "/usr/bin/sudo has mode 755, expected 4755")]
    fn lost_setuid_fails_the_check() {
        let spec = sample();
        let dir = reference_unpack(&spec);
        let sudo = dir.path().join("usr/bin/sudo");
        std::fs::set_permissions(&sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
        spec.assert_unpacked(dir.path());
    }

    #[test]
    #[should_panic(expected = "is not a hard link")]
    fn copied_hardlink_fails_the_check() {
        let spec = sample();
        let dir = reference_unpack(&spec);
        let perl = dir.path().join("usr/bin/perl");
        std::fs::remove_file(&perl).unwrap();
        std::fs::copy(dir.path().join("usr/bin/perl5.36"), &perl).unwrap();
        spec.assert_unpacked(dir.path());
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
