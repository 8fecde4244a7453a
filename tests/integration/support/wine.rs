//! distrod.exe under Wine, against a fake WSL.
//!
//! [`wine`] prepares, once per test process, a Wine prefix (scripts/wine-prefix.sh: the
//! `bcryptprimitives.dll` stand-in Rust programs need under Wine 8) whose System32 holds the
//! fake `wsl.exe` and `wslapi.dll` built from tests/windows/*.c with MinGW-w64's gcc (cached
//! by source hash), so that distrod.exe loads them the way it loads the real ones. Tests
//! share the prefix; each has its own [`FakeWsl`] state directory (`FAKEWSL_DIR`), so
//! what one test registers the others do not see. The registry is the prefix's and is
//! shared: tests that write it use names of their own.
//!
//! The executable under test comes from `DISTROD_TEST_WINDOWS_EXE`, and the Linux binary
//! it embeds from `DISTROD_TEST_LINUX_BINARY`; without them (or without Wine or MinGW-w64)
//! the tests skip, and fail under CI.

use std::ffi::OsStr;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::termios;

use super::archive::sha256_hex;
use super::{Output, PROXY_VARS, RUN_TIMEOUT, list_dir, skip_or_fail, wait_with_deadline};

/// How long the Wine server started for the tests outlives its last client. Every run
/// makes sure one is up first (see [`Wine::ensure_server`]).
const SERVER_PERSISTENCE_SECS: u32 = 30;

/// The prefix and the programs the Windows tests run.
pub struct Wine {
    prefix: PathBuf,
    exe: PathBuf,
    linux_binary: PathBuf,
}

/// The prepared Wine, or `None` (after [`skip_or_fail`]) when something it needs is
/// missing: Wine, MinGW-w64's gcc, or the executables named by the environment.
pub fn wine() -> Option<&'static Wine> {
    static WINE: OnceLock<Result<Wine, String>> = OnceLock::new();
    match WINE.get_or_init(prepare) {
        Ok(wine) => Some(wine),
        Err(reason) => {
            skip_or_fail(reason);
            None
        }
    }
}

/// Where the test files of the Wine side live: next to the binary under test's profile
/// directory (`target/<triple>/wine`), so `cargo clean` removes them.
fn wine_root() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_distrod"));
    let profile_dir = bin.parent().expect("the binary has a directory");
    profile_dir
        .parent()
        .expect("the profile directory has a parent")
        .join("wine")
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn in_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn env_file(var: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| format!("the Windows tests need {var} (scripts/test.sh sets it)"))?;
    if !path.is_file() {
        return Err(format!("{var}={} is not a file", path.display()));
    }
    Ok(path)
}

/// Checks the prerequisites (`Err` to skip), then sets up the prefix (panics on failure:
/// with everything installed, a setup that fails is a failure).
fn prepare() -> Result<Wine, String> {
    let exe = env_file("DISTROD_TEST_WINDOWS_EXE")?;
    let linux_binary = env_file("DISTROD_TEST_LINUX_BINARY")?;
    for (program, package) in [
        ("wine", "wine wine64"),
        ("wineserver", "wine wine64"),
        ("x86_64-w64-mingw32-gcc", "gcc-mingw-w64-x86-64-win32"),
    ] {
        if !in_path(program) {
            return Err(format!(
                "the Windows tests need {program} (apt-get install --no-install-recommends {package})"
            ));
        }
    }
    let root = wine_root();
    fs::create_dir_all(&root).expect("create the Wine test directory");
    let prefix = create_prefix(&root.join("prefix"));
    install_fakes(&root, &prefix);
    Ok(Wine {
        prefix,
        exe,
        linux_binary,
    })
}

fn create_prefix(dir: &Path) -> PathBuf {
    let script = manifest_dir().join("scripts/wine-prefix.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(dir)
        .env_remove("WINEPREFIX")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} {} failed ({}):\n{}",
        script.display(),
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    PathBuf::from(printed)
}

/// The fake WSL: source file, file name in System32, extra gcc arguments.
const FAKES: &[(&str, &str, &[&str])] = &[
    ("fake_wsl.c", "wsl.exe", &["-lshell32"]),
    ("fake_wslapi.c", "wslapi.dll", &["-shared", "-lole32"]),
];

/// Builds the fakes (once per version of their sources) and puts them into the prefix's
/// System32 where they differ from what is there. Serialized across processes.
fn install_fakes(root: &Path, prefix: &Path) {
    let lock_file = fs::File::create(root.join("fakes.lock")).expect("create the fakes lock");
    let _lock = Flock::lock(lock_file, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the fakes");
    let sources = manifest_dir().join("tests/windows");
    let mut all = Vec::new();
    for (source, name, _) in FAKES {
        let text = fs::read(sources.join(source))
            .unwrap_or_else(|e| panic!("read tests/windows/{source}: {e}"));
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(&text);
    }
    let built = root.join("fakes").join(&sha256_hex(&all)[..16]);
    if !FAKES.iter().all(|(_, name, _)| built.join(name).is_file()) {
        let tmp = root.join("fakes").join("building");
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).expect("create the fakes' build directory");
        for (source, name, extra) in FAKES {
            let output = Command::new("x86_64-w64-mingw32-gcc")
                .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
                .arg(tmp.join(name))
                .arg(sources.join(source))
                .args(*extra)
                .stdin(Stdio::null())
                .output()
                .expect("run x86_64-w64-mingw32-gcc");
            assert!(
                output.status.success(),
                "x86_64-w64-mingw32-gcc failed to build tests/windows/{source}:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let _ = fs::remove_dir_all(&built);
        fs::rename(&tmp, &built).expect("move the built fakes into place");
    }
    let system32 = prefix.join("drive_c/windows/system32");
    for (_, name, _) in FAKES {
        let new = fs::read(built.join(name)).expect("read a built fake");
        let target = system32.join(name);
        if fs::read(&target).ok().as_deref() != Some(&new[..]) {
            let tmp = system32.join(format!("{name}.tmp"));
            fs::write(&tmp, &new).expect("copy a fake into System32");
            fs::rename(&tmp, &target).expect("move a fake into System32");
        }
    }
}

/// A Unix path as Wine shows it to Windows programs: `Z:\tmp\...`.
pub fn win_path(path: &Path) -> String {
    let text = path.to_str().expect("test paths are UTF-8");
    assert!(text.starts_with('/'), "{text} is not absolute");
    format!("Z:{}", text.replace('/', "\\"))
}

impl Wine {
    /// The embedded Linux binary distrod.exe must put into the distro.
    pub fn linux_binary(&self) -> &Path {
        &self.linux_binary
    }

    /// The distrod.exe under test.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    /// Starts the prefix's Wine server in persistent mode unless one runs. Without it each
    /// run would start its own server, which inherits (and holds open) the run's output
    /// pipes for seconds after the program exits. A second `wineserver` exits at once.
    fn ensure_server(&self) {
        let _ = Command::new("wineserver")
            .arg(format!("-p{SERVER_PERSISTENCE_SECS}"))
            .env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// `wine PROGRAM`: a Windows program of the prefix (`reg`, say), in a clean environment.
    pub fn program(&self, program: &str) -> WinCommand {
        self.ensure_server();
        let mut cmd = Command::new("wine");
        cmd.arg(program);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("DISTROD_")
                || key_text.starts_with("FAKEWSL_")
                || key_text.starts_with("WINE")
            {
                cmd.env_remove(&key);
            }
        }
        for var in PROXY_VARS
            .iter()
            .chain(&["RUST_BACKTRACE", "RUST_LOG", "XDG_CACHE_HOME"])
            .chain(&["DISPLAY", "WAYLAND_DISPLAY"])
        {
            cmd.env_remove(var);
        }
        cmd.env("WINEPREFIX", &self.prefix)
            .env("WINEDEBUG", "-all")
            .stdin(Stdio::null());
        WinCommand {
            cmd,
            display: vec![program.to_owned()],
            stdin: None,
        }
    }

    /// `wine distrod.exe` with `fake`'s WSL, no proxies, no backtraces, and quick retries.
    pub fn distrod(&self, fake: &FakeWsl) -> WinCommand {
        let mut cmd = self.program(self.exe.to_str().expect("the exe path is UTF-8"));
        cmd.display = vec!["distrod.exe".to_owned()];
        cmd.cmd
            .env("FAKEWSL_DIR", win_path(&fake.dir))
            .env("DISTROD_HTTP_RETRY_DELAY_MS", "20");
        cmd
    }

    /// The data of `value` under `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, as
    /// `reg query` shows it; `None` when there is no such value.
    pub fn run_key_value(&self, value: &str) -> Option<String> {
        const KEY: &str = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
        let output = self.program("reg").args(["query", KEY, "/v", value]).run();
        if output.code() != Some(0) {
            return None;
        }
        // `    NAME    REG_SZ    DATA`
        let line = output
            .stdout
            .lines()
            .find(|l| l.trim_start().starts_with(value))
            .unwrap_or_else(|| panic!("no line for {value} in reg's answer\n{output}"));
        let (_, data) = line
            .split_once("REG_SZ")
            .or_else(|| line.split_once("REG_EXPAND_SZ"))
            .unwrap_or_else(|| panic!("{value} is not a string value\n{output}"));
        Some(data.trim().to_owned())
    }
}

/// One run of a program under Wine.
pub struct WinCommand {
    cmd: Command,
    display: Vec<String>,
    stdin: Option<Vec<u8>>,
}

impl WinCommand {
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut WinCommand {
        self.display
            .push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut WinCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut WinCommand {
        self.display
            .insert(0, format!("{key}={}", value.as_ref().to_string_lossy()));
        self.cmd.env(key, value);
        self
    }

    /// Feeds `bytes` to the program's standard input (a pipe), then closes it.
    pub fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut WinCommand {
        self.stdin = Some(bytes.into());
        self.cmd.stdin(Stdio::piped());
        self
    }

    /// Starts the program with its standard input and output on pipes held by the test
    /// (standard error to the test's), for programs that run until their input ends.
    /// Whoever waits for it kills it on failure (by the returned child's pid).
    pub fn spawn_piped(&mut self) -> std::process::Child {
        let command = self.display.join(" ");
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `wine {command}`: {e}"))
    }

    /// Runs the program to completion (or kills it after [`RUN_TIMEOUT`]).
    ///
    /// Its output goes to files, not pipes: the prefix's service processes that Wine
    /// starts on the way inherit the program's standard handles and live on after it, so
    /// the end of a pipe would only come when they quit, long after the program.
    pub fn run(&mut self) -> Output {
        let command = self.display.join(" ");
        let stdout = tempfile::tempfile().expect("create a file for stdout");
        let stderr = tempfile::tempfile().expect("create a file for stderr");
        let clone = |f: &fs::File| f.try_clone().expect("duplicate an output file");
        self.cmd.stdout(clone(&stdout)).stderr(clone(&stderr));
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `wine {command}`: {e}"));
        let writer = match (self.stdin.clone(), child.stdin.take()) {
            (Some(bytes), Some(mut pipe)) => Some(thread::spawn(move || {
                // A program that exits without reading breaks the pipe: its status tells.
                let _ = pipe.write_all(&bytes);
            })),
            _ => None,
        };
        let status = wait_with_deadline(&mut child, RUN_TIMEOUT);
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        let output = Output {
            command,
            status,
            stdout: read_back(stdout),
            stderr: read_back(stderr),
        };
        if status.is_none() {
            panic!("killed after {RUN_TIMEOUT:?} without finishing\n{output}");
        }
        output
    }

    /// Starts the program on a new pseudo-terminal (its controlling terminal, as in a
    /// terminal window), to be driven with [`Pty::expect`] and [`Pty::send`].
    pub fn spawn_on_pty(&mut self) -> Pty {
        let size = nix::pty::Winsize {
            ws_row: 40,
            ws_col: 120,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(&size, None).expect("open a pseudo-terminal");
        let slave: OwnedFd = pty.slave;
        // Raw from the start, as Wine's console makes it once the program reads keys:
        // otherwise a key sent before that is cooked (Enter's CR turned into LF, which the
        // program takes for another key).
        let mut termios = termios::tcgetattr(&slave).expect("read the pty's settings");
        termios::cfmakeraw(&mut termios);
        termios::tcsetattr(&slave, termios::SetArg::TCSANOW, &termios).expect("make the pty raw");
        let clone = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("duplicate the pty"));
        self.cmd
            .stdin(clone(&slave))
            .stdout(clone(&slave))
            .stderr(clone(&slave))
            .env("TERM", "xterm");
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            self.cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let command = self.display.join(" ");
        let child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `wine {command}` on a pty: {e}"));
        drop(slave);
        let master = fs::File::from(pty.master);
        let transcript = Arc::new(Mutex::new(Vec::new()));
        // Not joined: see [`Pty::wait`].
        let mut reader = master.try_clone().expect("duplicate the pty master");
        let shared = Arc::clone(&transcript);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // Ends with EIO once no process holds the terminal any more.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                lock(&shared).extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            command,
            child,
            master: Some(master),
            transcript,
            seen: 0,
        }
    }
}

/// What was written to an output file, from its start.
fn read_back(mut file: fs::File) -> String {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_to_end(&mut bytes))
        .expect("read an output file back");
    String::from_utf8_lossy(&bytes).into_owned()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// A program running on a pseudo-terminal.
pub struct Pty {
    command: String,
    child: Child,
    /// `None` once [`Pty::wait`] closed it.
    master: Option<fs::File>,
    transcript: Arc<Mutex<Vec<u8>>>,
    /// How much of the screen text [`Pty::expect`] has consumed.
    seen: usize,
}

impl Pty {
    /// Everything written to the terminal so far, escape sequences removed.
    pub fn screen(&self) -> String {
        strip_escapes(&lock(&self.transcript))
    }

    /// Waits until the text after what earlier calls consumed contains `needle` (escape
    /// sequences removed), and consumes it. Panics with the transcript after `timeout`.
    pub fn expect(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen();
            let rest = screen.get(self.seen..).unwrap_or("");
            if let Some(at) = rest.find(needle) {
                let upto = rest[..at + needle.len()].to_owned();
                self.seen += at + needle.len();
                return upto;
            }
            let exited = self.child.try_wait().expect("poll the child").is_some();
            if exited || Instant::now() >= deadline {
                let why = if exited {
                    "the program exited"
                } else {
                    "timed out"
                };
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{why} waiting for {needle:?} on the terminal of `{}`\n--- terminal (escapes removed) ---\n{screen}\n--- after what was consumed ---\n{rest}\n--------------",
                    self.command
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Types `bytes` (a key is `b"\r"` for Enter, `b"\x1b[B"` for Down).
    pub fn send(&mut self, bytes: &[u8]) {
        // Keys one by one, as typed: a reader that takes one event at a time may drop the
        // rest of a burst.
        for byte in bytes {
            self.master
                .as_mut()
                .expect("the terminal is open")
                .write_all(std::slice::from_ref(byte))
                .expect("write to the pty");
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for the program to exit; its status, or `None` if it was killed after
    /// `timeout`. Returns the transcript too.
    pub fn wait(mut self, timeout: Duration) -> (Option<ExitStatus>, String) {
        let status = wait_with_deadline(&mut self.child, timeout);
        // What the program wrote last may still be on its way through Wine's console. The
        // reader is not waited for: the prefix's services inherit the terminal and hold it
        // open after the program exits (the reader ends when they quit).
        thread::sleep(Duration::from_millis(300));
        self.master = None;
        let screen = strip_escapes(&lock(&self.transcript));
        (status, screen)
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.master.is_some() {
            // Dropped without `wait` (a failing test): leave no process behind.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An [`Output`] that shows what a terminal showed, for the messages of assertions about a
/// program run on a [`Pty`].
pub fn screen_output(command: &str, status: Option<ExitStatus>, screen: &str) -> Output {
    Output {
        command: command.to_owned(),
        status,
        stdout: screen.to_owned(),
        stderr: String::new(),
    }
}

/// The text of terminal output: CSI, OSC and two-byte escape sequences removed, `\r`
/// dropped, invalid UTF-8 replaced.
pub fn strip_escapes(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                Some('[') => {
                    // Parameters and intermediates, then one final byte in @..~.
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    // Up to BEL or ESC \.
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next();
                            break;
                        }
                    }
                }
                Some('(' | ')') => {
                    chars.next();
                }
                _ => {}
            },
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// One test's WSL: the fake's state directory (`FAKEWSL_DIR`) and room for the test's own
/// files, all in a temporary directory.
pub struct FakeWsl {
    _root: tempfile::TempDir,
    /// The fake's state: calls.log, registered\, imported\, stdin.log, ...
    pub dir: PathBuf,
    /// A `--cache` directory.
    pub cache: PathBuf,
    /// Where tests put the `--location`s (empty at the start).
    pub locations: PathBuf,
}

impl FakeWsl {
    pub fn new() -> FakeWsl {
        let root = tempfile::tempdir().expect("create a test directory");
        let dir = root.path().join("fakewsl");
        let cache = root.path().join("cache");
        let locations = root.path().join("locations");
        for d in [&dir, &cache, &locations] {
            fs::create_dir(d).expect("create a test directory");
        }
        FakeWsl {
            _root: root,
            dir,
            cache,
            locations,
        }
    }

    /// Every call the fakes recorded, in order (`wsl.exe ARGS...` or `WslFunction ARGS`).
    pub fn calls(&self) -> Vec<String> {
        match fs::read_to_string(self.dir.join("calls.log")) {
            Ok(text) => text.lines().map(str::to_owned).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The registered distros' names, sorted.
    pub fn registered(&self) -> Vec<String> {
        list_dir(&self.dir.join("registered"))
    }

    /// Registers `name` as if it had been imported into `location` (no call recorded).
    pub fn register(&self, name: &str, location: &Path) {
        let dir = self.dir.join("registered");
        fs::create_dir_all(&dir).expect("create the registered directory");
        fs::write(dir.join(name), win_path(location)).expect("register a distro");
    }

    /// What the `-d NAME ... -e CMD` calls read on their standard input, all together.
    pub fn stdin_log(&self) -> Vec<u8> {
        fs::read(self.dir.join("stdin.log")).unwrap_or_default()
    }

    /// The tarball `--import` was given for `name`.
    pub fn imported(&self, name: &str) -> Option<Vec<u8>> {
        fs::read(self.dir.join("imported").join(format!("{name}.tar"))).ok()
    }

    /// The default uid set with WslConfigureDistribution.
    pub fn default_uid(&self, name: &str) -> Option<u32> {
        let text = fs::read_to_string(self.dir.join("default-uid").join(name)).ok()?;
        Some(text.trim().parse().expect("a uid"))
    }

    /// Lets the processes WslLaunch started to stay alive exit.
    pub fn stop_launched(&self) {
        fs::write(self.dir.join("stop-launched"), b"").expect("write stop-launched");
    }
}

impl Drop for FakeWsl {
    fn drop(&mut self) {
        // A keep-alive process of a failed test must not outlive it by minutes.
        let _ = fs::write(self.dir.join("stop-launched"), b"");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_removed() {
        let raw = b"\x1b[?25l\x1b[2J\x1b[1;1H\x1b]0;title\x07? Name \x1b[1m[Distrod]\x1b[0m\r\n\x1b(BDone";
        assert_eq!(strip_escapes(raw), "? Name [Distrod]\nDone");
    }

    #[test]
    fn windows_paths() {
        assert_eq!(win_path(Path::new("/tmp/a b/c")), r"Z:\tmp\a b\c");
    }
}
