//! The `wsl.exe` side: argument lists, decoding what wsl.exe writes, parsing
//! `wsl.exe --list --verbose`, and running it.
//!
//! All of this compiles everywhere; only the process flags differ on Windows (no console
//! window). The pure parts are unit-tested on Linux, and so is [`WslExe`] itself, with a
//! script standing in for wsl.exe.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Distribution, Output, Result, Run, State, WslError, check_arg};

/// Statuses of the command wsl.exe ran are 0..=255; anything else is wsl.exe's own
/// failure (it exits with -1 or an error code).
fn is_linux_status(code: i32) -> bool {
    (0..=255).contains(&code)
}

/// Decodes what wsl.exe (or a program run through it) wrote. wsl.exe writes its own
/// messages in UTF-16LE, with or without a BOM (UTF-8 when `WSL_UTF8=1` is honoured); a
/// Linux program run with `-e` writes whatever it writes, usually UTF-8. UTF-16 is assumed
/// only when the bytes look like it: a BOM, or an even length, valid UTF-16 and NUL bytes
/// at odd offsets only (the high half of ASCII characters, which every wsl.exe message
/// has: at least its line ending). Anything else is UTF-8, invalid sequences replaced.
pub fn decode(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        return utf16le_lossy(rest);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return String::from_utf8_lossy(rest).into_owned();
    }
    if looks_utf16le(bytes) {
        return utf16le_lossy(bytes);
    }
    String::from_utf8_lossy(bytes).into_owned()
}

fn looks_utf16le(bytes: &[u8]) -> bool {
    if bytes.len() < 2 || !bytes.len().is_multiple_of(2) {
        return false;
    }
    let nul_even = bytes.iter().step_by(2).any(|&b| b == 0);
    let nul_odd = bytes.iter().skip(1).step_by(2).any(|&b| b == 0);
    nul_odd && !nul_even && char::decode_utf16(units(bytes)).all(|c| c.is_ok())
}

fn units(bytes: &[u8]) -> impl Iterator<Item = u16> + '_ {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
}

fn utf16le_lossy(bytes: &[u8]) -> String {
    char::decode_utf16(units(bytes))
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// A message of wsl.exe on one line: lines trimmed and joined, NULs and blank lines
/// dropped, cut at a sane length.
pub fn one_line(text: &str) -> String {
    const MAX: usize = 400;
    let joined = text
        .split(['\r', '\n'])
        .map(|l| l.trim_matches(|c: char| c.is_whitespace() || c == '\0'))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if joined.is_empty() {
        return "(no message)".to_string();
    }
    match joined.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

/// `--import NAME LOCATION FILE --version 2`
pub fn import_args(name: &str, location: &Path, tarball: &Path) -> Vec<OsString> {
    vec![
        os("--import"),
        os(name),
        location.as_os_str().to_owned(),
        tarball.as_os_str().to_owned(),
        os("--version"),
        os("2"),
    ]
}

/// `--unregister NAME`
pub fn unregister_args(name: &str) -> Vec<OsString> {
    vec![os("--unregister"), os(name)]
}

/// `--terminate NAME`
pub fn terminate_args(name: &str) -> Vec<OsString> {
    vec![os("--terminate"), os(name)]
}

/// `--list --verbose`
pub fn list_args() -> Vec<OsString> {
    vec![os("--list"), os("--verbose")]
}

/// `-d NAME [-u USER] -e CMD ARGS...`: `-e` runs the program directly, without the user's
/// shell (which distrod's hook may have replaced), and takes every argument after it
/// as the command's, even those starting with '-'.
pub fn run_args(run: &Run<'_>) -> Vec<OsString> {
    let mut args = vec![os("-d"), os(run.distro)];
    if let Some(user) = run.user {
        args.extend([os("-u"), os(user)]);
    }
    args.push(os("-e"));
    args.extend(run.command.iter().copied().map(os));
    args
}

/// Whether a failed `--list` only means that no distro is registered. wsl.exe says so with
/// an error code (recent builds) or, in English, in words.
fn no_distributions(message: &str) -> bool {
    message.contains("WSL_E_DEFAULT_DISTRO_NOT_FOUND")
        || message.contains("no installed distributions")
}

/// Parses `wsl.exe --list --verbose`:
///
/// ```text
///   NAME            STATE           VERSION
/// * Ubuntu          Running         2
///   Distrod         Stopped         2
/// ```
///
/// The header is localized, so it is used only for where its columns start (wsl.exe pads
/// every column to a common width); a row that does not fit those positions is split from
/// the right (VERSION, then STATE, the rest is the name). The first column holds `*` for
/// the default distro.
pub fn parse_list(text: &str) -> std::result::Result<Vec<Distribution>, String> {
    let mut lines = text
        .split(['\r', '\n'])
        .map(|l| l.trim_end_matches(|c: char| c.is_whitespace() || c == '\0'))
        .filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return Ok(Vec::new());
    };
    let columns = header_columns(header);
    lines
        .map(|line| {
            columns
                .and_then(|cols| by_columns(line, cols))
                .or_else(|| from_right(line))
                .ok_or_else(|| format!("cannot read the line '{}'", line.trim()))
        })
        .collect()
}

/// Where STATE and VERSION start in the header (char offsets), when it has at least three
/// labels.
fn header_columns(header: &str) -> Option<(usize, usize)> {
    let chars: Vec<char> = header.chars().collect();
    let starts: Vec<usize> = (0..chars.len())
        .filter(|&i| !chars[i].is_whitespace() && (i == 0 || chars[i - 1].is_whitespace()))
        .collect();
    match starts[..] {
        [.., state, version] if starts.len() >= 3 => Some((state, version)),
        _ => None,
    }
}

fn by_columns(line: &str, (state_col, version_col): (usize, usize)) -> Option<Distribution> {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= version_col || !chars[version_col - 1].is_whitespace() {
        return None;
    }
    if !chars[state_col - 1].is_whitespace() {
        return None;
    }
    let default = chars[..2.min(state_col)].contains(&'*');
    let name: String = chars[..state_col].iter().collect();
    let name = name.trim_start().strip_prefix('*').unwrap_or(&name).trim();
    let state: String = chars[state_col..version_col].iter().collect();
    let version: String = chars[version_col..].iter().collect();
    make(name, state.trim(), version.trim(), default)
}

fn from_right(line: &str) -> Option<Distribution> {
    let line = line.trim_start();
    let (default, rest) = match line.strip_prefix('*') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, line),
    };
    let (rest, version) = rest.rsplit_once(char::is_whitespace)?;
    let rest = rest.trim_end();
    let (name, state) = rest.rsplit_once(char::is_whitespace)?;
    make(name.trim(), state, version, default)
}

fn make(name: &str, state: &str, version: &str, default: bool) -> Option<Distribution> {
    let version = version.parse().ok()?;
    if name.is_empty() || state.is_empty() {
        return None;
    }
    Some(Distribution {
        name: name.to_string(),
        state: State::parse(state),
        version,
        default,
    })
}

/// `wsl.exe`, run as a child process without a console window.
#[derive(Debug, Clone)]
pub struct WslExe {
    /// The wsl.exe to run (a fake one in tests).
    pub program: PathBuf,
}

impl WslExe {
    /// The wsl.exe at `program`.
    pub fn new(program: impl Into<PathBuf>) -> WslExe {
        WslExe {
            program: program.into(),
        }
    }

    /// `%SystemRoot%\System32\wsl.exe`, by full path: a bare `wsl.exe` would be searched
    /// for in distrod.exe's own directory first (a Downloads folder, typically).
    pub fn system() -> WslExe {
        let root = std::env::var_os("SystemRoot")
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| OsString::from(r"C:\Windows"));
        WslExe::new(Path::new(&root).join("System32").join("wsl.exe"))
    }

    /// `wsl.exe --import NAME LOCATION TARBALL --version 2`; see
    /// [`Wsl::import`](super::Wsl::import).
    pub fn import(&self, name: &str, location: &Path, tarball: &Path) -> Result<()> {
        check_arg("distro name", name)?;
        let op = format!("wsl.exe --import {name}");
        self.checked(&op, &import_args(name, location, tarball))
    }

    /// `wsl.exe --unregister NAME`; see [`Wsl::unregister`](super::Wsl::unregister).
    pub fn unregister(&self, name: &str) -> Result<()> {
        check_arg("distro name", name)?;
        self.checked(
            &format!("wsl.exe --unregister {name}"),
            &unregister_args(name),
        )
    }

    /// `wsl.exe --terminate NAME`; see [`Wsl::terminate`](super::Wsl::terminate).
    pub fn terminate(&self, name: &str) -> Result<()> {
        check_arg("distro name", name)?;
        self.checked(
            &format!("wsl.exe --terminate {name}"),
            &terminate_args(name),
        )
    }

    /// [`Wsl::list`](super::Wsl::list): `wsl.exe --list --verbose`, parsed; wsl.exe's "no
    /// installed distributions" failure is an empty list.
    pub fn list(&self) -> Result<Vec<Distribution>> {
        let op = "wsl.exe --list --verbose";
        let out = self.exec(op, &list_args(), None)?;
        let text = decode(&out.stdout);
        if out.code != 0 {
            let message = one_line(&format!("{text}\n{}", decode(&out.stderr)));
            if no_distributions(&message) {
                return Ok(Vec::new());
            }
            return Err(WslError::Exit {
                op: op.to_string(),
                code: out.code,
                message,
            });
        }
        parse_list(&text).map_err(|message| WslError::Parse {
            op: op.to_string(),
            message,
        })
    }

    /// `wsl.exe -d NAME [-u USER] -e CMD...`; see [`Wsl::run`](super::Wsl::run). An exit
    /// status outside 0 to 255 is wsl.exe's own failure, an error.
    pub fn run(&self, run: &Run<'_>) -> Result<Output> {
        let &Run {
            distro: name,
            user,
            command,
            stdin,
        } = run;
        check_arg("distro name", name)?;
        if let Some(user) = user {
            check_arg("user", user)?;
        }
        let Some(program) = command.first() else {
            return Err(WslError::Invalid {
                what: "command",
                value: String::new(),
                why: "it is empty",
            });
        };
        let op = match user {
            Some(user) => format!("wsl.exe -d {name} -u {user} -e {program}"),
            None => format!("wsl.exe -d {name} -e {program}"),
        };
        let out = self.exec(&op, &run_args(run), stdin)?;
        if !is_linux_status(out.code) {
            let message = one_line(&format!("{}\n{}", decode(&out.stdout), decode(&out.stderr)));
            return Err(WslError::Exit {
                op,
                code: out.code,
                message,
            });
        }
        Ok(out)
    }

    /// Runs wsl.exe and turns a non-zero exit into an error carrying its message.
    fn checked(&self, op: &str, args: &[OsString]) -> Result<()> {
        let out = self.exec(op, args, None)?;
        if out.code == 0 {
            return Ok(());
        }
        let message = one_line(&format!("{}\n{}", decode(&out.stdout), decode(&out.stderr)));
        Err(WslError::Exit {
            op: op.to_string(),
            code: out.code,
            message,
        })
    }

    /// Runs the program to completion, feeding `stdin` from a thread so that a command
    /// that writes a lot before reading cannot deadlock against us.
    fn exec(&self, op: &str, args: &[OsString], stdin: Option<&[u8]>) -> Result<Output> {
        let mut cmd = Command::new(&self.program);
        cmd.args(args)
            // Recent wsl.exe then writes its messages in UTF-8; older ones ignore it, and
            // decode() reads both.
            .env("WSL_UTF8", "1")
            .stdin(stdin.map_or_else(Stdio::null, |_| Stdio::piped()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        no_window(&mut cmd);
        tracing::debug!("{op}: running {}", show(&self.program, args));
        let mut child = cmd.spawn().map_err(|error| WslError::Spawn {
            op: op.to_string(),
            error,
        })?;
        let out = std::thread::scope(|scope| {
            let writer = match (stdin, child.stdin.take()) {
                (Some(data), Some(mut pipe)) => Some(scope.spawn(move || {
                    let r = pipe.write_all(data);
                    drop(pipe);
                    r
                })),
                _ => None,
            };
            let out = child.wait_with_output();
            // A command that exits without reading its input breaks the pipe: not a
            // failure of ours, its status tells.
            if let Some(writer) = writer {
                match writer.join() {
                    Ok(Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        return Err(e);
                    }
                    _ => {}
                }
            }
            out
        })
        .map_err(|error| WslError::Io {
            op: op.to_string(),
            error,
        })?;
        Ok(Output {
            // No code means killed by a signal, which only a stand-in on Linux can be.
            code: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

fn show(program: &Path, args: &[OsString]) -> String {
    std::iter::once(program.as_os_str())
        .chain(args.iter().map(OsString::as_os_str))
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(windows)]
fn no_window(cmd: &mut Command) {
    use std::os::windows::process::CommandExt;
    cmd.creation_flags(windows_sys::Win32::System::Threading::CREATE_NO_WINDOW);
}

#[cfg(not(windows))]
fn no_window(_cmd: &mut Command) {}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(s: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { vec![] };
        out.extend(s.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    fn strs(args: &[OsString]) -> Vec<&str> {
        args.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn argument_lists() {
        assert_eq!(
            strs(&import_args(
                "Distrod",
                Path::new(r"C:\Users\a\distrod"),
                Path::new(r"C:\Users\a\rootfs.tar.gz"),
            )),
            [
                "--import",
                "Distrod",
                r"C:\Users\a\distrod",
                r"C:\Users\a\rootfs.tar.gz",
                "--version",
                "2"
            ]
        );
        assert_eq!(
            strs(&unregister_args("Distrod")),
            ["--unregister", "Distrod"]
        );
        assert_eq!(strs(&terminate_args("Distrod")), ["--terminate", "Distrod"]);
        assert_eq!(strs(&list_args()), ["--list", "--verbose"]);
        assert_eq!(
            strs(&run_args(
                &Run::new("Distrod", &["chpasswd", "-e"]).user("root")
            )),
            ["-d", "Distrod", "-u", "root", "-e", "chpasswd", "-e"]
        );
        assert_eq!(
            strs(&run_args(&Run::new("Distrod", &["true"]))),
            ["-d", "Distrod", "-e", "true"]
        );
    }

    #[test]
    fn decodes_utf16_with_and_without_bom() {
        let msg = "There is no distribution with the supplied name.\r\n";
        assert_eq!(decode(&utf16(msg, true)), msg);
        assert_eq!(decode(&utf16(msg, false)), msg);
        // Localized: non-ASCII characters, and the ASCII of the line ending and error code.
        let ja = "指定された名前のディストリビューションはありません。\r\nエラー コード: Wsl/Service/WSL_E_DISTRO_NOT_FOUND\r\n";
        assert_eq!(decode(&utf16(ja, false)), ja);
        assert_eq!(decode(&utf16("", true)), "");
    }

    #[test]
    fn falls_back_to_utf8_when_not_plausible_utf16() {
        assert_eq!(decode(b"root:x:0:0\n"), "root:x:0:0\n");
        // Even length, ASCII: no NULs, so UTF-8.
        assert_eq!(decode(b"ok"), "ok");
        assert_eq!(decode("héllo wörld\n".as_bytes()), "héllo wörld\n");
        assert_eq!(decode(b"\xEF\xBB\xBFbom"), "bom");
        // Binary with NULs at even offsets is not UTF-16 text.
        assert_eq!(decode(b"\0a\0b"), "\0a\0b");
        // An unpaired surrogate: not UTF-16.
        assert_eq!(decode(&[0x00, 0xD8, 0x41, 0x00]), "\0\u{FFFD}A\0");
        // Odd length.
        assert_eq!(decode(b"a\0b"), "a\0b");
        assert_eq!(decode(b""), "");
        assert_eq!(decode(b"\xFF\n"), "\u{FFFD}\n");
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(
            one_line("The distribution failed.\r\n\r\nError code: Wsl/E_FAIL\r\n\0"),
            "The distribution failed. Error code: Wsl/E_FAIL"
        );
        assert_eq!(one_line("  \r\n"), "(no message)");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), 403);
    }

    #[test]
    fn parses_list_verbose() {
        let text = "  NAME                   STATE           VERSION\r\n\
                    * Ubuntu-24.04           Running         2\r\n  \
                    Distrod                Stopped         2\r\n  \
                    docker-desktop         Stopped         2\r\n  \
                    legacy                 Installing      1\r\n\r\n";
        let list = parse_list(text).unwrap();
        assert_eq!(
            list,
            [
                Distribution {
                    name: "Ubuntu-24.04".into(),
                    state: State::Running,
                    version: 2,
                    default: true
                },
                Distribution {
                    name: "Distrod".into(),
                    state: State::Stopped,
                    version: 2,
                    default: false
                },
                Distribution {
                    name: "docker-desktop".into(),
                    state: State::Stopped,
                    version: 2,
                    default: false
                },
                Distribution {
                    name: "legacy".into(),
                    state: State::Installing,
                    version: 1,
                    default: false
                },
            ]
        );
    }

    #[test]
    fn parses_names_with_spaces_and_localized_headers() {
        // German: a state of two words, found by the header's column positions.
        let text = "  NAME         STATUS            VERSION\n\
                    * My Distro    Wird ausgeführt   2\n  \
                    Debian       Beendet           1\n";
        let list = parse_list(text).unwrap();
        assert_eq!(list[0].name, "My Distro");
        assert_eq!(list[0].state, State::Other("Wird ausgeführt".into()));
        assert_eq!(list[0].version, 2);
        assert!(list[0].default);
        assert_eq!(list[1].name, "Debian");
        assert_eq!(list[1].state, State::Other("Beendet".into()));
        assert!(!list[1].default);
        // Japanese header of wide characters; columns count characters.
        let text = "  名前        状態         バージョン\n* Distrod   Running    2\n";
        let list = parse_list(text).unwrap();
        assert_eq!(list[0].name, "Distrod");
        assert_eq!(list[0].state, State::Running);
    }

    #[test]
    fn rows_off_the_header_columns_are_split_from_the_right() {
        // A header that cannot give positions (two labels), and a misaligned row.
        let text = "NAME STATE\n* A  Running 2\n  My Distro Stopped 1\n";
        let list = parse_list(text).unwrap();
        assert_eq!(list[0].name, "A");
        assert!(list[0].default);
        assert_eq!(list[1].name, "My Distro");
        assert_eq!(list[1].state, State::Stopped);
        assert_eq!(list[1].version, 1);
        let text = "  NAME      STATE     VERSION\n  Distrod Running 2\n";
        assert_eq!(parse_list(text).unwrap()[0].name, "Distrod");
        assert_eq!(parse_list("").unwrap(), []);
        assert_eq!(parse_list("  NAME STATE VERSION\r\n").unwrap(), []);
        let e = parse_list("  NAME STATE VERSION\n  garbage\n").unwrap_err();
        assert_eq!(e, "cannot read the line 'garbage'");
    }

    #[test]
    fn no_distributions_is_recognized() {
        assert!(no_distributions(
            "Windows Subsystem for Linux has no installed distributions. Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND"
        ));
        assert!(no_distributions(
            "Windows Subsystem for Linux has no installed distributions."
        ));
        assert!(!no_distributions("The service cannot be started."));
    }

    /// A shell script standing in for wsl.exe: records its arguments and stdin, answers
    /// per subcommand.
    #[cfg(unix)]
    mod process {
        use super::super::*;
        use std::os::unix::fs::PermissionsExt;

        struct Stand {
            dir: tempfile::TempDir,
            exe: WslExe,
        }

        impl Stand {
            fn new(body: &str) -> Stand {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("wsl.exe");
                let script = format!(
                    "#!/bin/sh\nd={}\nprintf '%s\\n' \"$@\" > \"$d/args\"\necho \"$WSL_UTF8\" > \"$d/env\"\n{body}\n",
                    dir.path().display()
                );
                std::fs::write(&path, script).unwrap();
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
                Stand {
                    exe: WslExe::new(&path),
                    dir,
                }
            }

            fn args(&self) -> String {
                std::fs::read_to_string(self.dir.path().join("args")).unwrap()
            }

            fn file(&self, name: &str) -> String {
                std::fs::read_to_string(self.dir.path().join(name)).unwrap()
            }
        }

        #[test]
        fn import_passes_arguments_and_reports_failures_in_one_line() {
            let ok = Stand::new("exit 0");
            ok.exe
                .import("Distrod", Path::new("/loc"), Path::new("/r.tar.gz"))
                .unwrap();
            assert_eq!(
                ok.args(),
                "--import\nDistrod\n/loc\n/r.tar.gz\n--version\n2\n"
            );
            assert_eq!(ok.file("env"), "1\n");

            // UTF-16LE message with a BOM, as wsl.exe writes it, exit 1.
            let bad = Stand::new(
                r"printf '\377\376A\000 \000d\000i\000s\000t\000r\000o\000 \000e\000x\000i\000s\000t\000s\000.\000\r\000\n\000'; exit 1",
            );
            let e = bad
                .exe
                .import("Distrod", Path::new("/loc"), Path::new("/r.tar"))
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "wsl.exe --import Distrod failed (exit 1): A distro exists."
            );
        }

        #[test]
        fn unregister_and_terminate() {
            let s = Stand::new("exit 0");
            s.exe.unregister("Distrod").unwrap();
            assert_eq!(s.args(), "--unregister\nDistrod\n");
            s.exe.terminate("Distrod").unwrap();
            assert_eq!(s.args(), "--terminate\nDistrod\n");
            let e = s.exe.terminate("-x").unwrap_err();
            assert!(matches!(e, WslError::Invalid { .. }), "{e}");
        }

        #[test]
        fn run_feeds_stdin_and_returns_raw_output_and_status() {
            let s = Stand::new(r#"cat > "$d/stdin"; printf 'out\n'; printf 'err\n' >&2; exit 3"#);
            let out = s
                .exe
                .run(
                    &Run::new("Distrod", &["chpasswd"])
                        .user("root")
                        .stdin(b"alice:secret\n"),
                )
                .unwrap();
            assert_eq!(out.code, 3);
            assert_eq!(out.stdout, b"out\n");
            assert_eq!(out.stderr, b"err\n");
            assert_eq!(s.file("stdin"), "alice:secret\n");
            assert_eq!(s.args(), "-d\nDistrod\n-u\nroot\n-e\nchpasswd\n");
        }

        #[test]
        fn run_without_stdin_reads_eof_and_large_output_does_not_deadlock() {
            let s = Stand::new(r#"cat > "$d/stdin"; head -c 300000 /dev/zero"#);
            let out = s.exe.run(&Run::new("Distrod", &["true"])).unwrap();
            assert_eq!(out.code, 0);
            assert_eq!(out.stdout.len(), 300000);
            assert_eq!(s.file("stdin"), "");
            // A command that does not read a large input: broken pipe is not an error.
            let s = Stand::new("exit 0");
            let big = vec![b'x'; 1 << 20];
            let out = s
                .exe
                .run(&Run::new("Distrod", &["true"]).stdin(&big))
                .unwrap();
            assert_eq!(out.code, 0);
        }

        #[test]
        fn run_reports_wsl_failures_but_not_command_failures() {
            let s = Stand::new(
                r"printf 'N\000o\000 \000s\000u\000c\000h\000 \000d\000i\000s\000t\000r\000o\000\r\000\n\000'; exit 255",
            );
            // 255 is a Linux status: the command's, returned as is.
            let out = s.exe.run(&Run::new("Nope", &["true"])).unwrap();
            assert_eq!(out.code, 255);
            assert_eq!(out.stdout_text(), "No such distro\r\n");
            // A status outside 0..=255 is wsl.exe's own (a stand-in killed by a signal
            // reports -1, as wsl.exe does).
            let s = Stand::new(r"printf 'N\000o\000\r\000\n\000'; kill -9 $$");
            let e = s.exe.run(&Run::new("Nope", &["true"])).unwrap_err();
            assert_eq!(
                e.to_string(),
                "wsl.exe -d Nope -e true failed (exit -1): No"
            );
            let e = s.exe.run(&Run::new("Nope", &[])).unwrap_err();
            assert!(matches!(e, WslError::Invalid { .. }), "{e}");
        }

        #[test]
        fn list_parses_and_treats_no_distributions_as_empty() {
            let s = Stand::new(
                r"printf '\377\376 \000 \000N\000A\000M\000E\000 \000S\000T\000A\000T\000E\000 \000V\000E\000R\000S\000I\000O\000N\000\r\000\n\000*\000 \000D\000 \000 \000 \000R\000u\000n\000n\000i\000n\000g\000 \000 \0002\000\r\000\n\000'",
            );
            let list = s.exe.list().unwrap();
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].name, "D");
            assert_eq!(list[0].state, State::Running);
            assert!(list[0].default);
            assert_eq!(s.args(), "--list\n--verbose\n");

            let s = Stand::new(
                "echo 'Windows Subsystem for Linux has no installed distributions.'; echo 'Error code: Wsl/WSL_E_DEFAULT_DISTRO_NOT_FOUND'; exit 1",
            );
            assert_eq!(s.exe.list().unwrap(), []);

            let s = Stand::new("echo 'The service is stopping.'; exit 1");
            assert_eq!(
                s.exe.list().unwrap_err().to_string(),
                "wsl.exe --list --verbose failed (exit 1): The service is stopping."
            );
        }

        #[test]
        fn the_system_program_is_wsl_exe_in_system32() {
            // Not found on PATH or beside distrod.exe: a full path under System32.
            let exe = WslExe::system();
            assert!(exe.program.ends_with("System32/wsl.exe"), "{exe:?}");
            assert!(exe.program.components().count() >= 3, "{exe:?}");
        }

        #[test]
        fn a_missing_program_is_a_spawn_error() {
            let exe = WslExe::new("/nonexistent/wsl.exe");
            let e = exe.terminate("Distrod").unwrap_err();
            assert!(
                e.to_string()
                    .starts_with("cannot run wsl.exe --terminate Distrod: "),
                "{e}"
            );
        }
    }
}
