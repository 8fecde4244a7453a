//! `distrod create` on a real distro: the Debian rootfs with systemd that
//! `scripts/build-rootfs.sh` builds from Debian's packages, published on a real HTTP server.
//! GNU tar unpacking the same tarball is the oracle: every node must come out the same.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::server::Server;
use crate::support::streams::{Catalog, Product};
use crate::support::{Distrod, Workspace, host_arch, require_root, skip_or_fail};

/// The tarball `scripts/test.sh` exports; without it the test cannot run.
fn rootfs_tarball() -> Option<PathBuf> {
    match std::env::var_os("DISTROD_TEST_ROOTFS_TARBALL") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => {
            skip_or_fail(
                "DISTROD_TEST_ROOTFS_TARBALL does not name a rootfs tarball \
                 (scripts/test.sh builds one with scripts/build-rootfs.sh)",
            );
            None
        }
    }
}

/// Everything about a node that unpacking must keep.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let m = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("link -> {}", fs::read_link(&path).unwrap().display())
            } else if ft.is_dir() {
                stack.push(path.clone());
                "dir".to_string()
            } else if ft.is_file() {
                let data = fs::read(&path).unwrap();
                format!(
                    "file {} {}",
                    data.len(),
                    crate::support::archive::sha256_hex(&data)
                )
            } else {
                format!("special rdev={}", m.rdev())
            };
            // Directory mtimes are included: they must be restored after their children.
            let mtime = if ft.is_symlink() { 0 } else { m.mtime() };
            out.insert(
                rel,
                format!(
                    "{what} mode={:o} uid={} gid={} mtime={mtime} xattrs={:?}",
                    m.permissions().mode(),
                    m.uid(),
                    m.gid(),
                    xattrs(&path)
                ),
            );
        }
    }
    out
}

/// `name=value` of every extended attribute of `path` (not following a symlink).
fn xattrs(path: &Path) -> Vec<String> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: valid C string and buffer of the given length.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out: Vec<String> = names
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|name| {
            let cname = CString::new(name).unwrap();
            let mut value = vec![0u8; 64 * 1024];
            // SAFETY: as above.
            let len = unsafe {
                libc::lgetxattr(
                    c.as_ptr(),
                    cname.as_ptr(),
                    value.as_mut_ptr().cast(),
                    value.len(),
                )
            };
            value.truncate(len.max(0) as usize);
            format!("{}={value:02x?}", String::from_utf8_lossy(name))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_real_debian_rootfs_unpacks_exactly_as_gnu_tar_does() {
    if !require_root("unpacking a real rootfs with its owners and device nodes") {
        return;
    }
    let Some(tarball) = rootfs_tarball() else {
        return;
    };
    let bytes = fs::read(&tarball).unwrap();
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build("20260101_00:00", &bytes);
    let server = Server::start();
    Catalog::new().with(product).publish(&server);

    let ws = Workspace::new();
    let out = Distrod::new()
        .args([
            "create",
            "debian",
            "--no-cache",
            "--server",
            &server.url(),
            "--dir",
        ])
        .arg(ws.target())
        .run();
    out.success();

    let oracle = ws.inputs.join("gnu-tar");
    fs::create_dir(&oracle).unwrap();
    let status = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpJf"])
        .arg(&tarball)
        .arg("-C")
        .arg(&oracle)
        .status()
        .unwrap();
    assert!(status.success(), "GNU tar failed on {}", tarball.display());

    let ours = describe(&ws.target());
    let theirs = describe(&oracle);
    assert!(ours.len() > 1000, "only {} nodes in the rootfs", ours.len());
    let differing: Vec<String> = theirs
        .iter()
        .filter(|(k, v)| ours.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}:\n  tar:     {v}\n  distrod: {:?}", ours.get(k)))
        .chain(
            ours.keys()
                .filter(|k| !theirs.contains_key(*k))
                .map(|k| format!("{k}: only in distrod's tree")),
        )
        .take(20)
        .collect();
    assert!(
        differing.is_empty(),
        "trees differ:\n{}",
        differing.join("\n")
    );

    // The things a distro needs to boot and log in are really there.
    let root = ws.target();
    let systemd = fs::metadata(root.join("usr/lib/systemd/systemd")).unwrap();
    assert!(systemd.permissions().mode() & 0o111 != 0);
    let passwd_bin = fs::metadata(root.join("usr/bin/passwd")).unwrap();
    assert_eq!(
        passwd_bin.permissions().mode() & 0o4000,
        0o4000,
        "passwd lost setuid"
    );
    assert_eq!(passwd_bin.uid(), 0);
    assert!(
        fs::read_to_string(root.join("etc/passwd"))
            .unwrap()
            .starts_with("root:")
    );
}
