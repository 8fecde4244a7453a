//! How the previous container ended, kept in the distro (`/opt/distrod/state/last.json`,
//! only where distrod is installed) because /run does not outlive the distro.
//!
//! A launch writes the record with no end; a clean end fills it in: `distrod stop` and
//! `disable` (`stop`), the keeper's poweroff before WSL's idle stop (`idle`), or a
//! poweroff from inside the container, which the keeper sees happen (`container`).
//! A record without an end at the next launch means the distro was killed with the
//! container in it: `wsl --terminate`, `wsl --shutdown`, WSL's idle stop without
//! distrod's poweroff, or the VM going down; none of them can be intercepted.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, Durability, Replace};

/// Where the record is kept, in the distro (not in /run, which a stop of the distro
/// clears).
pub const FILE: &str = "/opt/distrod/state/last.json";

/// The record of one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When the container was launched, seconds since the Unix epoch.
    pub launched_at: f64,
    /// How and when it ended cleanly; None while it runs, and after a kill.
    pub ended: Option<End>,
}

/// A clean end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct End {
    /// `stop`, `idle` or `container`.
    pub how: String,
    /// When, seconds since the Unix epoch.
    pub at: f64,
}

/// The record of the previous container, for a new launch to keep in its state; then the
/// new container's record, with no end.
pub fn begin(launched_at: f64) -> Option<Record> {
    let previous = read(Path::new(FILE));
    write(
        Path::new(FILE),
        &Record {
            launched_at,
            ended: None,
        },
    );
    previous
}

/// The record of the last container launched (running, ended, or killed).
pub fn last() -> Option<Record> {
    read(Path::new(FILE))
}

/// The container launched at `launched_at` ended cleanly, `how`.
pub fn end(launched_at: f64, how: &str) {
    let path = Path::new(FILE);
    match read(path) {
        Some(r) if r.launched_at == launched_at && r.ended.is_none() => write(
            path,
            &Record {
                launched_at,
                ended: Some(End {
                    how: how.into(),
                    at: super::state::now(),
                }),
            },
        ),
        _ => {}
    }
}

fn read(path: &Path) -> Option<Record> {
    serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
}

/// Atomically, and only into an existing state directory of an installed distrod.
fn write(path: &Path, r: &Record) {
    let Some(dir) = path
        .parent()
        .filter(|d| d.parent().is_some_and(Path::is_dir))
    else {
        return;
    };
    if fs::create_dir_all(dir).is_err() {
        return;
    }
    let json = serde_json::to_string(r).expect("serialises");
    // Contents: the next launch may follow a crash of the VM, and then reads the previous
    // record or this one, never a cut file (which would read as no record at all).
    let opts = Replace::new(Durability::Contents).mode(0o644);
    if let Err(e) = fsutil::replace_file(path, opts, |f| f.write_all(json.as_bytes())) {
        tracing::debug!("write {}: {e}", path.display());
    }
}

/// One line about the previous container, for `status`.
pub fn describe(previous: Option<&Record>) -> String {
    match previous {
        None => "none recorded".into(),
        Some(Record {
            ended: Some(end), ..
        }) => {
            let how = match end.how.as_str() {
                "stop" => "`distrod stop`",
                "idle" => "the idle poweroff before WSL's idle stop",
                "container" => "a poweroff from inside",
                _ => "an unknown way",
            };
            format!("powered off cleanly by {how}")
        }
        Some(_) => "killed with the distro, without a poweroff (wsl --terminate, wsl \
                    --shutdown, WSL's idle stop, or the VM going down)"
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_begins_open_and_ends_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/last.json");
        write(
            &path,
            &Record {
                launched_at: 1.0,
                ended: None,
            },
        );
        assert_eq!(read(&path).unwrap().ended, None);
        let r = read(&path).unwrap();
        assert!(describe(Some(&r)).contains("killed"));
        write(
            &path,
            &Record {
                launched_at: 1.0,
                ended: Some(End {
                    how: "idle".into(),
                    at: 2.0,
                }),
            },
        );
        let r = read(&path).unwrap();
        assert!(describe(Some(&r)).contains("idle poweroff"));
        assert_eq!(describe(None), "none recorded");
        fs::write(&path, "garbage").unwrap();
        assert_eq!(read(&path), None);
        // No state directory's parent: nothing is written.
        let nowhere = dir.path().join("missing/state/last.json");
        write(
            &nowhere,
            &Record {
                launched_at: 1.0,
                ended: None,
            },
        );
        assert!(!nowhere.exists());
    }
}
