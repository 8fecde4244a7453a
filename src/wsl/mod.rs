//! The seam through which every call to WSL goes.
//!
//! [`Wsl`] is what the Windows installer needs from WSL: register a distro from a tarball,
//! configure its default user, run its first-boot setup, start it at logon, remove it.
//! [`System`] (Windows) is the real thing: the WSL API in `wslapi.dll` where it serves
//! (is_registered, set_default_user, launch_detached: no `wsl.exe` involved) and
//! `wsl.exe` for the rest ([`exe::WslExe`]). [`fake::Recording`] (tests) records the calls
//! and answers as told, so the installer's flow is tested on Linux.
//!
//! Errors are [`WslError`]s whose message is one line naming the operation and the distro.

// The Windows installer is the user of this module; until it lands, not all of it is used.
#![cfg_attr(not(test), allow(dead_code))]

#[cfg(windows)]
pub mod api;
pub mod conf;
pub mod exe;
#[cfg(test)]
pub mod fake;
pub mod logon;

use std::fmt;
use std::path::Path;

#[cfg(windows)]
pub use api::System;

/// Everything the installer asks of WSL. Object safe: the flow takes `&dyn Wsl`.
pub trait Wsl {
    /// Whether a distro of this name is registered (names compare case-insensitively, as
    /// WSL does).
    fn is_registered(&self, name: &str) -> Result<bool>;

    /// The registered distros, as `wsl.exe --list --verbose` shows them. No distro at all
    /// is an empty list, not an error.
    fn list(&self) -> Result<Vec<Distribution>>;

    /// Registers `tarball` (a root filesystem tar, optionally gzip/xz compressed) as a WSL 2
    /// distro named `name`, its virtual disk kept in the directory `location`
    /// (`wsl.exe --import NAME LOCATION FILE --version 2`).
    fn import(&self, name: &str, location: &Path, tarball: &Path) -> Result<()>;

    /// Removes the distro and its disk (`wsl.exe --unregister NAME`).
    fn unregister(&self, name: &str) -> Result<()>;

    /// Makes `uid` the user `wsl -d NAME` logs in as, keeping the distro's other settings
    /// (interop, Windows PATH, drive mounting) as they are.
    fn set_default_user(&self, name: &str, uid: u32) -> Result<()>;

    /// Runs the command `run` describes in its distro and waits for it:
    /// `wsl.exe -d NAME [-u USER] -e CMD...`. A non-zero exit of the command is in
    /// [`Output::code`], not an error; an error means WSL itself failed (no such distro,
    /// WSL not installed, ...).
    fn run(&self, run: &Run<'_>) -> Result<Output>;

    /// Starts `command` (a command line) in the distro as its default user, with no console
    /// and standard input/output/error on NUL, through the WSL API (`WslLaunch`), so it
    /// works without `wsl.exe` and without administrator rights (at logon, say). Waits for
    /// the command to exit and fails when it exits non-zero: the command is expected to
    /// leave what must keep running in the background itself (as `distrod launch` does).
    fn launch_detached(&self, name: &str, command: &str) -> Result<()>;

    /// Stops the distro if it runs (`wsl.exe --terminate NAME`).
    fn terminate(&self, name: &str) -> Result<()>;
}

/// A command to run in a distro and wait for ([`Wsl::run`]).
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    /// The distro's name.
    pub distro: &'a str,
    /// The user it runs as; the distro's default user when `None`.
    pub user: Option<&'a str>,
    /// The program and its arguments (no shell).
    pub command: &'a [&'a str],
    /// Written to its standard input, which is then closed; without it the command reads
    /// end-of-file.
    pub stdin: Option<&'a [u8]>,
}

impl<'a> Run<'a> {
    /// `command` in `distro`, as its default user, with no input.
    pub fn new(distro: &'a str, command: &'a [&'a str]) -> Run<'a> {
        Run {
            distro,
            user: None,
            command,
            stdin: None,
        }
    }

    /// The same, as `user`.
    pub fn user(self, user: &'a str) -> Run<'a> {
        Run {
            user: Some(user),
            ..self
        }
    }

    /// The same, with `bytes` on its standard input.
    pub fn stdin(self, bytes: &'a [u8]) -> Run<'a> {
        Run {
            stdin: Some(bytes),
            ..self
        }
    }
}

/// One registered distro, as `wsl.exe --list --verbose` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Distribution {
    /// The name WSL knows it by (`wsl -d NAME`).
    pub name: String,
    /// Whether it runs.
    pub state: State,
    /// 1 or 2.
    pub version: u32,
    /// The distro `wsl.exe` opens without `-d`.
    pub default: bool,
}

/// A distro's state. wsl.exe prints it in the user's language; words it does not know in
/// English are kept as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Started, and not yet stopped by WSL's idle timeout or `--terminate`.
    Running,
    /// Registered but not running.
    Stopped,
    /// Being registered (`--import`, `--install`).
    Installing,
    /// Being removed (`--unregister`).
    Uninstalling,
    /// Being converted between WSL 1 and 2 (`--set-version`).
    Converting,
    /// A word not known in English (a localised wsl.exe), as printed.
    Other(String),
}

impl State {
    /// The state of one word of `wsl.exe --list --verbose`'s STATE column (exact match).
    pub fn parse(word: &str) -> State {
        match word {
            "Running" => State::Running,
            "Stopped" => State::Stopped,
            "Installing" => State::Installing,
            "Uninstalling" => State::Uninstalling,
            "Converting" => State::Converting,
            other => State::Other(other.to_string()),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Running => "Running",
            State::Stopped => "Stopped",
            State::Installing => "Installing",
            State::Uninstalling => "Uninstalling",
            State::Converting => "Converting",
            State::Other(s) => s,
        })
    }
}

/// What a command run in a distro did. Its output is raw bytes: a Linux program writes
/// UTF-8 (or anything); [`Output::stdout_text`] decodes for display.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The command's exit status (0..=255; 128+N when killed by signal N).
    pub code: i32,
    /// Everything the command wrote to its standard output.
    pub stdout: Vec<u8>,
    /// Everything it wrote to its standard error (with wsl.exe, also WSL's own messages).
    pub stderr: Vec<u8>,
}

impl Output {
    /// The command exited with status 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }

    /// The standard output as text (UTF-16 or UTF-8, see [`exe::decode`]).
    pub fn stdout_text(&self) -> String {
        exe::decode(&self.stdout)
    }

    /// The standard error as text, likewise.
    pub fn stderr_text(&self) -> String {
        exe::decode(&self.stderr)
    }
}

/// A failed call to WSL. Every message is one line that names the operation and the distro.
#[derive(Debug, thiserror::Error)]
pub enum WslError {
    /// wsl.exe could not be started (not installed, not found, access denied).
    // The I/O error is part of the one-line message, not a separate cause: printed with
    // its causes, it would appear twice.
    #[error("cannot run {op}: {error}")]
    Spawn {
        /// The operation, as a command line (`wsl.exe --import NAME`).
        op: String,
        /// Why it could not be started.
        error: std::io::Error,
    },
    /// Talking to a running wsl.exe failed (writing its input, reading its output).
    #[error("{op}: {error}")]
    Io {
        /// The operation, as a command line.
        op: String,
        /// What failed.
        error: std::io::Error,
    },
    /// wsl.exe ran and reported a failure; `message` is what it said, on one line.
    #[error("{op} failed (exit {}): {message}", ExitCode(*code))]
    Exit {
        /// The operation, as a command line.
        op: String,
        /// wsl.exe's exit status: the command's (0 to 255), or -1 or an HRESULT for
        /// wsl.exe's own failure.
        code: i32,
        /// What wsl.exe or the command wrote (output and error output), on one line.
        message: String,
    },
    /// wsl.exe answered something distrod cannot read.
    #[error("{op}: unexpected output: {message}")]
    Parse {
        /// The operation, as a command line.
        op: String,
        /// What could not be read.
        message: String,
    },
    /// wslapi.dll is missing (WSL is not installed) or lacks a function distrod needs.
    #[error("cannot load wslapi.dll from System32: {0}")]
    Load(String),
    /// A function of the WSL API failed.
    #[error("{function} for {distro} failed: {}", HResult(*hresult))]
    Api {
        /// The function (`WslConfigureDistribution`...).
        function: &'static str,
        /// The distro it was called for.
        distro: String,
        /// The HRESULT it returned.
        hresult: i32,
    },
    /// A command started with `WslLaunch` exited with a non-zero status.
    #[error("WslLaunch in {distro} of '{command}' exited with status {}", ExitCode(*code))]
    Launched {
        /// The distro.
        distro: String,
        /// The command line.
        command: String,
        /// Its exit status.
        code: i32,
    },
    /// A name or user that WSL would misread (empty, starting with '-', control
    /// characters); refused before anything runs.
    #[error("invalid {what} '{value}': {why}")]
    Invalid {
        /// What the value is (`distro name`, `user`, `command`).
        what: &'static str,
        /// The value refused.
        value: String,
        /// Why, as a clause (`it is empty`).
        why: &'static str,
    },
}

/// The result of every call to WSL.
pub type Result<T, E = WslError> = std::result::Result<T, E>;

/// Exit statuses: decimal when they look like one, hex when they look like an HRESULT
/// (wsl.exe exits with -1 or an error code for its own failures).
struct ExitCode(i32);

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if (-1..=255).contains(&self.0) {
            write!(f, "{}", self.0)
        } else {
            write!(f, "0x{:08X}", self.0 as u32)
        }
    }
}

/// An HRESULT in hex, with the system's text when it wraps a Win32 error (facility 7).
struct HResult(i32);

impl fmt::Display for HResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hr = self.0 as u32;
        write!(f, "0x{hr:08X}")?;
        #[cfg(windows)]
        if hr & 0xFFFF_0000 == 0x8007_0000 {
            let text = std::io::Error::from_raw_os_error((hr & 0xFFFF) as i32).to_string();
            // std appends " (os error N)"; the hex code already says it.
            let text = text.split(" (os error").next().unwrap_or(&text).trim();
            write!(f, " ({text})")?;
        }
        Ok(())
    }
}

/// Whether every character of `name` is one WSL allows in a distro name: letters, digits,
/// `.`, `_` and `-`.
pub fn name_chars_ok(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Refuses names and user names that wsl.exe would take for an option or that could not
/// be passed intact. WSL applies its own, stricter rules after this.
pub fn check_arg(what: &'static str, value: &str) -> Result<()> {
    let why = if value.is_empty() {
        "it is empty"
    } else if value.starts_with('-') {
        "it starts with '-'"
    } else if value.chars().any(char::is_control) {
        "it contains control characters"
    } else {
        return Ok(());
    };
    Err(WslError::Invalid {
        what,
        value: value.escape_debug().to_string(),
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_naming_operation_and_distro() {
        let e = WslError::Exit {
            op: "wsl.exe --import Distrod".into(),
            code: 1,
            message: "The operation timed out.".into(),
        };
        assert_eq!(
            e.to_string(),
            "wsl.exe --import Distrod failed (exit 1): The operation timed out."
        );
        let e = WslError::Exit {
            op: "wsl.exe --terminate Distrod".into(),
            code: 0x8037_0102_u32 as i32,
            message: "x".into(),
        };
        assert_eq!(
            e.to_string(),
            "wsl.exe --terminate Distrod failed (exit 0x80370102): x"
        );
        let e = WslError::Api {
            function: "WslConfigureDistribution",
            distro: "Distrod".into(),
            hresult: 0x8037_010C_u32 as i32,
        };
        assert_eq!(
            e.to_string(),
            "WslConfigureDistribution for Distrod failed: 0x8037010C"
        );
        let e = WslError::Load("The specified module could not be found.".into());
        assert_eq!(
            e.to_string(),
            "cannot load wslapi.dll from System32: The specified module could not be found."
        );
        let e = WslError::Launched {
            distro: "Distrod".into(),
            command: "/opt/distrod/bin/distrod launch".into(),
            code: 1,
        };
        assert_eq!(
            e.to_string(),
            "WslLaunch in Distrod of '/opt/distrod/bin/distrod launch' exited with status 1"
        );
    }

    #[test]
    fn arguments_wsl_would_misread_are_refused() {
        assert!(check_arg("distro name", "Distrod").is_ok());
        assert!(check_arg("distro name", "My Distro").is_ok());
        assert!(check_arg("distro name", "Ubuntu-24.04").is_ok());
        let e = check_arg("distro name", "--shutdown").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid distro name '--shutdown': it starts with '-'"
        );
        assert!(check_arg("user", "").is_err());
        let e = check_arg("user", "a\nb").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid user 'a\\nb': it contains control characters"
        );
    }

    #[test]
    fn states_round_trip_and_keep_unknown_words() {
        for s in [
            "Running",
            "Stopped",
            "Installing",
            "Uninstalling",
            "Converting",
        ] {
            assert_eq!(State::parse(s).to_string(), s);
        }
        assert_eq!(
            State::parse("Wird ausgeführt"),
            State::Other("Wird ausgeführt".into())
        );
    }

    #[test]
    fn output_text_decodes_both_encodings() {
        let out = Output {
            code: 0,
            stdout: b"hello\n".to_vec(),
            stderr: "oops\r\n"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        };
        assert!(out.success());
        assert_eq!(out.stdout_text(), "hello\n");
        assert_eq!(out.stderr_text(), "oops\r\n");
    }
}
