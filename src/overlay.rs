//! The files of `distrod-rootfs/`, embedded at build time so that every build of distrod
//! carries them: `distrod install` lays them into a running distro, and the Windows
//! installer adds them to the root filesystem tarball it registers with WSL.

/// The files of `distrod-rootfs/`, at their paths inside the distro (relative to `/`), all
/// under `opt/distrod/`. A unit test checks this list against the directory; README.md is
/// not installed.
pub const OVERLAY: &[(&str, &[u8])] = &[
    (
        "opt/distrod/lib/systemd/distrod-portproxy.service",
        include_bytes!("../distrod-rootfs/opt/distrod/lib/systemd/distrod-portproxy.service"),
    ),
    (
        "opt/distrod/share/distrod.toml.example",
        include_bytes!("../distrod-rootfs/opt/distrod/share/distrod.toml.example"),
    ),
];

#[cfg(test)]
mod tests {
    use super::OVERLAY;
    use std::fs;
    use std::path::Path;

    /// The overlay list names exactly the files under distrod-rootfs/ (README.md aside),
    /// with their contents, all under opt/distrod/ and with plain relative paths.
    #[test]
    fn overlay_matches_distrod_rootfs() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("distrod-rootfs");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let rel: Vec<String> = path
                        .strip_prefix(&root)
                        .unwrap()
                        .components()
                        .map(|c| c.as_os_str().to_str().unwrap().to_owned())
                        .collect();
                    let rel = rel.join("/");
                    if rel != "README.md" {
                        on_disk.push(rel);
                    }
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = OVERLAY.iter().map(|(r, _)| r.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "OVERLAY and distrod-rootfs/ differ");
        for (rel, contents) in OVERLAY {
            assert_eq!(fs::read(root.join(rel)).unwrap(), *contents, "{rel}");
            let rest = rel.strip_prefix("opt/distrod/");
            assert!(
                rest.is_some_and(|r| r.split('/').all(|c| !c.is_empty() && c != "." && c != "..")),
                "{rel} is not a plain path under opt/distrod/"
            );
        }
    }
}
