//! What `wsl.exe` writes, as distrod.exe reads it: `wsl::exe::decode` (UTF-16LE with or
//! without a BOM, UTF-8, or anything else), `wsl::exe::parse_list` (the localized table of
//! `wsl.exe --list --verbose`) and `wsl::exe::one_line` (its messages, for errors).
//!
//! The bytes are the output of another program (wsl.exe, in whatever language and version
//! Windows has, or a Linux command run through it), so they may be anything. Each input is
//! read as wsl.exe's standard output.

use distrod::wsl::Output;
use distrod::wsl::exe::{decode, one_line, parse_list};

pub fn run(data: &[u8]) {
    let text = decode(data);
    if let Ok(list) = parse_list(&text) {
        for d in &list {
            assert!(!d.name.is_empty(), "a distro without a name: {d:?}");
            let _ = d.state.to_string();
        }
    }
    let line = one_line(&text);
    assert!(
        !line.contains(['\r', '\n']),
        "one_line returned several lines: {line:?}"
    );
    let out = Output {
        code: 1,
        stdout: data.to_vec(),
        stderr: data.to_vec(),
    };
    assert_eq!(out.stdout_text(), text);
    let _ = out.stderr_text();
}
