//! Which names of tar entries distrod accepts, for unpacking an image ([`super::unpack`])
//! and for repacking one ([`super::repack`]): one rule, so that a repacked image never holds
//! a name its unpacking would refuse, nor the other way round.
//!
//! A name is a plain relative path: normal components, `.` and empty components (`./a//b/`,
//! which GNU tar writes), which are dropped; `..`, an absolute path and a NUL byte are
//! refused. Byte-wise, with `/` as the only separator, so that the rule is the Linux one on
//! whatever platform repacks. The reasons are phrased to follow "refusing tar entry
//! `NAME`: ".

/// The components of an entry's name, or why it is refused. An empty list stands for the
/// root of the tree (`./`), which only a directory may name; that, and how a refusal is
/// reported, are the caller's.
pub fn components(raw: &[u8]) -> Result<Vec<&[u8]>, &'static str> {
    if raw.contains(&0) {
        return Err("its path contains a NUL byte");
    }
    if raw.starts_with(b"/") {
        return Err("its path is absolute");
    }
    let mut comps = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("its path contains `..`"),
            c => comps.push(c),
        }
    }
    Ok(comps)
}

/// Why a hard link's target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkTarget {
    /// It breaks [`components`]' rule (the reason).
    Path(&'static str),
    /// It names the root, a directory, which no hard link may point at.
    Root,
}

/// The components of a hard link's target. A hard link names another entry of the
/// archive, from the root of the tree (not from the link's directory), so its target
/// follows the rule of entry names; and it may not be the root. A symlink's target, by
/// contrast, is stored as written: it is only ever resolved inside the tree, so it is not
/// checked here. An empty target names the root; the unpacker reports a missing or empty
/// one as a broken header before it asks.
pub fn link_target(raw: &[u8]) -> Result<Vec<&[u8]>, LinkTarget> {
    let comps = components(raw).map_err(LinkTarget::Path)?;
    if comps.is_empty() {
        return Err(LinkTarget::Root);
    }
    Ok(comps)
}

/// Whether an entry is a directory: its type says so, or it is a pre-POSIX (v7) header,
/// which marks directories only with a trailing slash on a regular entry's name.
pub fn is_directory(header: &tar::Header, raw: &[u8]) -> bool {
    let kind = header.entry_type();
    kind == tar::EntryType::Directory
        || (kind == tar::EntryType::Regular
            && header.as_ustar().is_none()
            && header.as_gnu().is_none()
            && raw.ends_with(b"/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_relative_names() {
        fn ok(raw: &[u8]) -> Vec<&[u8]> {
            components(raw).unwrap()
        }
        assert_eq!(ok(b"etc/passwd"), [&b"etc"[..], b"passwd"]);
        assert_eq!(ok(b"./usr//lib/./x/"), [&b"usr"[..], b"lib", b"x"]);
        assert_eq!(ok(b"..."), [&b"..."[..]]);
        assert_eq!(ok(b"a..b/.c"), [&b"a..b"[..], b".c"]);
        for root in [&b""[..], b".", b"./", b"././/"] {
            assert!(ok(root).is_empty(), "{root:?}");
        }
    }

    #[test]
    fn refusals_and_their_reasons() {
        let no = |raw: &[u8]| components(raw).unwrap_err();
        assert_eq!(no(b"/etc/passwd"), "its path is absolute");
        assert_eq!(no(b"//x"), "its path is absolute");
        assert_eq!(no(b".."), "its path contains `..`");
        assert_eq!(no(b"../escape"), "its path contains `..`");
        assert_eq!(no(b"usr/../../escape"), "its path contains `..`");
        assert_eq!(no(b"a/.."), "its path contains `..`");
        assert_eq!(no(b"a\0b"), "its path contains a NUL byte");
        // The NUL byte first, then absoluteness, then `..`.
        assert_eq!(no(b"/../\0"), "its path contains a NUL byte");
        assert_eq!(no(b"/.."), "its path is absolute");
    }

    #[test]
    fn hard_link_targets() {
        assert_eq!(
            link_target(b"./usr/bin/x"),
            Ok(vec![&b"usr"[..], b"bin", b"x"])
        );
        assert_eq!(link_target(b""), Err(LinkTarget::Root));
        assert_eq!(link_target(b"./"), Err(LinkTarget::Root));
        assert_eq!(
            link_target(b"/etc/shadow"),
            Err(LinkTarget::Path("its path is absolute"))
        );
        assert_eq!(
            link_target(b"../../etc/shadow"),
            Err(LinkTarget::Path("its path contains `..`"))
        );
    }

    #[test]
    fn directories_by_type_or_old_trailing_slash() {
        let mut h = tar::Header::new_old();
        h.set_entry_type(tar::EntryType::Regular);
        assert!(is_directory(&h, b"usr/"));
        assert!(!is_directory(&h, b"usr"));
        h.set_entry_type(tar::EntryType::Directory);
        assert!(is_directory(&h, b"usr"));
        for mut h in [tar::Header::new_ustar(), tar::Header::new_gnu()] {
            h.set_entry_type(tar::EntryType::Regular);
            assert!(!is_directory(&h, b"usr/"));
        }
    }
}
