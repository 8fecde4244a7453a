//! Texts distrod reads from the kernel and from the session's processes:
//! `/proc/self/mountinfo` (`runtime::cgroup::parse_cgroup2_mount`, which also undoes its octal
//! escapes), `/proc/PID/stat` (`runtime::sys::parse_start_time`, after a command name that may
//! hold spaces and parentheses), `/proc/locks` (`runtime::sys::holder_in`), and the directories
//! of the session's `PATH`, read from `/proc/PID/environ` (`distro::logon::windows_path`).
//!
//! They come from outside distrod's control: a mount point, a process name and an
//! environment are chosen by whoever made them, and the setuid hook and `enable` read them
//! as root. Each input is tried as each of these texts.

use std::path::Path;

use distrod::distro::logon::windows_path;
use distrod::runtime::cgroup::parse_cgroup2_mount;
use distrod::runtime::sys::{holder_in, parse_start_time};

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);

    if let Some(mount) = parse_cgroup2_mount(&text) {
        assert!(
            text.contains("cgroup2"),
            "found a cgroup2 mount ({mount:?}) in a text without one"
        );
    }

    let _ = parse_start_time(&text);

    for (major, minor, ino) in [(0, 0x1a, 99), (0xfd, 1, 0), (8, 1, 5678)] {
        if let Some(pid) = holder_in(&text, major, minor, ino) {
            assert!(pid > 0, "a lock held by pid {pid}");
        }
    }

    for dir in text.split([':', '\n', '\0']).take(64) {
        if let Some(win) = windows_path(Path::new(dir)) {
            assert!(win.get(1..3) == Some(":\\"), "not a Windows path: {win:?}");
        }
    }
}
