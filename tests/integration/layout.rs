//! README.md's "How the code is laid out" names every source file under src/, and only
//! files that exist: the map of the code cannot drift from the code.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_layout_section_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let start = readme
        .find("## How the code is laid out")
        .expect("README.md has a layout section");
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];

    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let named = |rel: &str| {
        section
            .split(|c: char| c.is_whitespace() || c == '`')
            .any(|word| word == rel)
    };
    let mut missing: Vec<String> = files
        .iter()
        .map(|f| f.strip_prefix(root).unwrap().to_string_lossy().into_owned())
        .filter(|rel| !named(rel))
        .collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "README.md's layout section does not name {missing:?}"
    );

    let stale: Vec<&str> = section
        .split(|c: char| c.is_whitespace() || c == '`')
        .filter(|w| w.starts_with("src/") && w.ends_with(".rs"))
        .filter(|w| !root.join(w).is_file())
        .collect();
    assert!(
        stale.is_empty(),
        "README.md's layout section names files that do not exist: {stale:?}"
    );
}
