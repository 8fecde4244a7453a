//! Whether a distro boots systemd in distrod's container, decided before anything changes:
//! by `enable` and `firstboot` on the running distro's tree, and by `pack` and the Windows
//! installer on an image as it streams past (see `image::repack`).
//!
//! The container's PID 1 is the first of [`INIT_CANDIDATES`] that can be executed (the
//! shim's order: `/sbin/init` is what the distro chose; the others cover a distro with
//! systemd but without `systemd-sysv`). The tree is fit when that first one is systemd.
//! Otherwise every session would print that systemd could not start and run outside it:
//! a distro with no systemd at all (Alpine's OpenRC, Void's runit, Devuan's sysvinit), or
//! one whose `/sbin/init` is another init although systemd is installed.
//!
//! Paths are resolved inside the tree as the kernel would inside the container: absolute
//! symlinks from the tree's root, `..` never above it, at most 40 links.

use std::collections::HashMap;
use std::fmt;

/// The candidates for PID 1, in the order the shim (`runtime::shim`) tries them, relative to
/// the tree's root.
pub const INIT_CANDIDATES: [&str; 3] = [
    "sbin/init",
    "lib/systemd/systemd",
    "usr/lib/systemd/systemd",
];

/// What a path of a tree is, as far as this check cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file (or a hard link to one), with whether any execute bit is set.
    File {
        /// Any of its execute bits is set.
        executable: bool,
    },
    /// A symbolic link and its target.
    Link(String),
    /// A directory, or anything else.
    Other,
}

/// A tree to look paths up in (relative, `/`-separated, no `.` or `..`).
pub trait Tree {
    /// What is at `path`, not following a final symlink; None when nothing is there (or it
    /// cannot be read).
    fn node(&self, path: &str) -> Option<Node>;
}

/// Why a tree does not boot systemd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// None of the candidates can be executed.
    NoSystemd,
    /// The first that can is another program (its path in the tree).
    OtherInit(String),
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::NoSystemd => write!(
                f,
                "no systemd (none of /sbin/init, /lib/systemd/systemd, \
                 /usr/lib/systemd/systemd can be started)"
            ),
            Missing::OtherInit(init) => {
                write!(f, "/sbin/init is /{init}, another init than systemd")
            }
        }
    }
}

/// A tree without systemd: what is missing and how its distro gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSystemd {
    /// Why the tree does not boot systemd.
    pub missing: Missing,
    /// From its os-release ([`hint`]).
    pub hint: String,
}

impl fmt::Display for NoSystemd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.missing, self.hint)
    }
}

/// The path in `tree` that the container would start, if it is systemd; else what is
/// missing.
pub fn check(tree: &dyn Tree) -> Result<String, Missing> {
    for candidate in INIT_CANDIDATES {
        // As the shim's execve: a missing file is skipped, one that cannot be executed ends
        // the search.
        let path = match resolve(tree, candidate) {
            Some((path, Node::File { executable: true })) => path,
            Some((_, Node::File { executable: false })) => return Err(Missing::NoSystemd),
            _ => continue,
        };
        return if path.rsplit('/').next() == Some("systemd") {
            Ok(path)
        } else {
            Err(Missing::OtherInit(path))
        };
    }
    Err(Missing::NoSystemd)
}

/// Follows `path`'s symlinks (in every component) inside `tree`: the final path and what is
/// there. None when a component is missing, a loop, or too deep.
pub fn resolve(tree: &dyn Tree, path: &str) -> Option<(String, Node)> {
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        done.push(c);
        let here = done.join("/");
        match tree.node(&here)? {
            Node::Link(target) => {
                links += 1;
                if links > 40 {
                    return None;
                }
                done.pop();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_owned));
            }
            node if todo.iter().all(|t| t.is_empty() || t == ".") => return Some((here, node)),
            Node::File { .. } => return None,
            Node::Other => {}
        }
    }
    Some((done.join("/"), Node::Other))
}

/// How the distro of an os-release text (`/etc/os-release`) gets systemd, in one clause.
pub fn hint(os_release: Option<&str>) -> String {
    let field = |key: &str| -> String {
        os_release
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches(['"', '\'']).to_ascii_lowercase())
            .unwrap_or_default()
    };
    let id = field("ID");
    let like = field("ID_LIKE");
    let is = |name: &str| id == name || like.split_whitespace().any(|l| l == name);
    if id == "alpine" {
        "Alpine has no systemd (it boots OpenRC)".into()
    } else if id == "void" {
        "Void Linux has no systemd (it boots runit)".into()
    } else if id == "devuan" {
        "Devuan does not package systemd".into()
    } else if id == "gentoo" {
        "on Gentoo, switch to a systemd profile (eselect profile) and emerge systemd, or use \
         the image's systemd variant"
            .into()
    } else if is("debian") || is("ubuntu") {
        "install it with `apt install systemd-sysv`".into()
    } else if is("fedora") || is("rhel") || is("centos") || id == "amzn" {
        "install it with `dnf install systemd`".into()
    } else if is("arch") {
        "install it with `pacman -S systemd`".into()
    } else if is("suse") || id.starts_with("opensuse") {
        "install it with `zypper install systemd`".into()
    } else {
        "install the distro's systemd package, with systemd as /sbin/init".into()
    }
}

/// What a tar stream says about the paths [`check`] follows: every symlink, and the regular
/// files and hard links that could be an init (see [`TarIndex::file`]).
#[derive(Debug, Default)]
pub struct TarIndex {
    nodes: HashMap<String, Node>,
}

impl TarIndex {
    /// Records one entry (`path` without a leading `/`; a later entry replaces an earlier
    /// one, as extracting does).
    pub fn symlink(&mut self, path: &str, target: &str) {
        self.nodes
            .insert(path.to_owned(), Node::Link(target.to_owned()));
    }

    /// Records a regular file with its mode; only files an init could be are kept, so that
    /// the index of a whole root filesystem stays small.
    pub fn file(&mut self, path: &str, mode: u32) {
        // What /sbin/init may lead to: an executable in a bin, sbin or lib directory
        // (`bin/busybox`, `lib/sysvinit/init`, `usr/lib/systemd/systemd`), or anything
        // named like an init. Deeper files (most of a tree) are not kept.
        let name = path.rsplit('/').next().unwrap_or_default();
        let shallow = path.split('/').count() <= 4 && mode & 0o111 != 0;
        if shallow || name == "init" || name == "systemd" {
            self.nodes.insert(
                path.to_owned(),
                Node::File {
                    executable: mode & 0o111 != 0,
                },
            );
        } else {
            self.nodes.remove(path);
        }
    }

    /// Anything else: a directory, a device.
    pub fn other(&mut self, path: &str) {
        self.nodes.remove(path);
    }
}

impl Tree for TarIndex {
    fn node(&self, path: &str) -> Option<Node> {
        // A path the stream did not record is a directory as far as this check goes: a
        // missing one shows at the end, when no executable file is found.
        Some(self.nodes.get(path).cloned().unwrap_or(Node::Other))
    }
}

/// A directory tree on this machine (`root`, usually `/`).
#[cfg(unix)]
pub struct DirTree<'a> {
    /// The tree's root directory; paths are looked up under it.
    pub root: &'a std::path::Path,
}

#[cfg(unix)]
impl Tree for DirTree<'_> {
    fn node(&self, path: &str) -> Option<Node> {
        use std::os::unix::fs::PermissionsExt;
        let full = self.root.join(path);
        let meta = std::fs::symlink_metadata(&full).ok()?;
        let t = meta.file_type();
        Some(if t.is_symlink() {
            Node::Link(
                std::fs::read_link(&full)
                    .ok()?
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if t.is_file() {
            Node::File {
                executable: meta.permissions().mode() & 0o111 != 0,
            }
        } else {
            Node::Other
        })
    }
}

/// [`check`] of the tree at `root`, with the hint from its os-release.
#[cfg(unix)]
pub fn check_dir(root: &std::path::Path) -> Result<String, NoSystemd> {
    let tree = DirTree { root };
    check(&tree).map_err(|missing| NoSystemd {
        missing,
        hint: hint(read_os_release(&tree, root).as_deref()),
    })
}

#[cfg(unix)]
fn read_os_release(tree: &DirTree<'_>, root: &std::path::Path) -> Option<String> {
    use std::io::Read;
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .find_map(|p| {
            let (path, node) = resolve(tree, p)?;
            if !matches!(node, Node::File { .. }) {
                return None;
            }
            let mut text = String::new();
            std::fs::File::open(root.join(path))
                .ok()?
                .take(64 * 1024)
                .read_to_string(&mut text)
                .ok()?;
            Some(text)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Node)]) -> TarIndex {
        let mut t = TarIndex::default();
        for (p, n) in entries {
            t.nodes.insert(p.to_string(), n.clone());
        }
        t
    }

    fn link(t: &str) -> Node {
        Node::Link(t.into())
    }

    const EXEC: Node = Node::File { executable: true };

    /// The tree's init is the systemd at /usr/lib/systemd/systemd.
    fn assert_boots(entries: &[(&str, Node)]) {
        assert_eq!(check(&tree(entries)), Ok("usr/lib/systemd/systemd".into()));
    }

    #[test]
    fn debian_merged_usr_boots_systemd() {
        assert_boots(&[
            ("sbin", link("usr/sbin")),
            ("lib", link("usr/lib")),
            ("usr/sbin/init", link("../lib/systemd/systemd")),
            ("usr/lib/systemd/systemd", EXEC),
        ]);
    }

    #[test]
    fn systemd_without_systemd_sysv_and_absolute_links() {
        assert_boots(&[("usr/lib/systemd/systemd", EXEC)]);
        assert_boots(&[
            ("sbin/init", link("/lib/systemd/systemd")),
            ("lib", link("/usr/lib")),
            ("usr/lib/systemd/systemd", EXEC),
        ]);
    }

    #[test]
    fn other_inits_and_none() {
        // Alpine: /sbin/init is busybox.
        let t = tree(&[("sbin/init", link("/bin/busybox")), ("bin/busybox", EXEC)]);
        assert_eq!(check(&t), Err(Missing::OtherInit("bin/busybox".into())));
        // sysvinit's own /sbin/init, although systemd is installed.
        let t = tree(&[("sbin/init", EXEC), ("lib/systemd/systemd", EXEC)]);
        assert_eq!(check(&t), Err(Missing::OtherInit("sbin/init".into())));
        // Nothing at all; a dangling /sbin/init; a systemd that is not executable; a loop.
        assert_eq!(check(&tree(&[])), Err(Missing::NoSystemd));
        let t = tree(&[("sbin/init", link("../lib/systemd/systemd"))]);
        assert_eq!(check(&t), Err(Missing::NoSystemd));
        let t = tree(&[("usr/lib/systemd/systemd", Node::File { executable: false })]);
        assert_eq!(check(&t), Err(Missing::NoSystemd));
        let t = tree(&[("sbin", link("sbin"))]);
        assert_eq!(check(&t), Err(Missing::NoSystemd));
        // `..` never climbs above the root.
        let t = tree(&[
            ("sbin/init", link("../../../../lib/systemd/systemd")),
            ("lib/systemd/systemd", EXEC),
        ]);
        assert_eq!(check(&t), Ok("lib/systemd/systemd".into()));
    }

    #[test]
    fn the_tar_index_keeps_the_last_entry() {
        let mut t = TarIndex::default();
        t.file("usr/lib/systemd/systemd", 0o755);
        t.symlink("sbin/init", "/usr/lib/systemd/systemd");
        assert!(check(&t).is_ok());
        t.other("usr/lib/systemd/systemd");
        assert_eq!(check(&t), Err(Missing::NoSystemd));
        t.file("usr/lib/systemd/systemd", 0o644);
        assert_eq!(check(&t), Err(Missing::NoSystemd));
    }

    #[test]
    fn hints_by_distro() {
        let h = |text: &str| hint(Some(text));
        assert!(h("ID=alpine\n").contains("OpenRC"));
        assert!(h("ID=\"void\"\n").contains("runit"));
        assert!(h("ID=devuan\nID_LIKE=debian\n").contains("Devuan"));
        assert!(h("ID=debian\n").contains("apt install systemd-sysv"));
        assert!(h("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\n").contains("apt"));
        assert!(h("ID=fedora\n").contains("dnf"));
        assert!(h("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n").contains("dnf"));
        assert!(h("ID=arch\n").contains("pacman"));
        assert!(h("ID=opensuse-tumbleweed\nID_LIKE=\"opensuse suse\"\n").contains("zypper"));
        assert!(h("ID=gentoo\n").contains("profile"));
        assert!(hint(None).contains("systemd package"));
        // Not a key that merely starts like one.
        assert!(h("IDX=alpine\nID=debian\n").contains("apt"));
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib/systemd")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/os-release"), "ID=debian\n").unwrap();
        let e = check_dir(root).unwrap_err();
        assert_eq!(e.missing, Missing::NoSystemd);
        assert!(e.to_string().contains("apt install systemd-sysv"), "{e}");
        let systemd = root.join("usr/lib/systemd/systemd");
        std::fs::write(&systemd, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&systemd, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::create_dir_all(root.join("sbin")).unwrap();
        std::os::unix::fs::symlink("/lib/systemd/systemd", root.join("sbin/init")).unwrap();
        assert_eq!(check_dir(root), Ok("usr/lib/systemd/systemd".into()));
    }
}
