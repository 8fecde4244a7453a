//! What the integration tests share: running the real `distrod` binary in a clean
//! environment, and the fixtures it is run against (an HTTP server, archives, a
//! simplestreams catalog).

pub mod archive;
pub mod fakewsl;
pub mod sandbox;
pub mod server;
pub mod streams;
pub mod wine;
pub mod wsl_package;

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Longest a single run may take before it is killed and the test fails: a download that
/// hangs must fail the test, not the whole suite.
const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Variables that would send requests somewhere other than the test's own servers.
const PROXY_VARS: &[&str] = &[
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// One invocation of the `distrod` binary, with nothing of the caller's environment that
/// could change its behaviour: no `DISTROD_*` variable, no backtraces or log filters, no
/// proxies, and a throw-away `HOME` so the default cache never touches the real one.
pub struct Distrod {
    cmd: Command,
    display: Vec<String>,
    _home: tempfile::TempDir,
}

impl Distrod {
    pub fn new() -> Distrod {
        let home = tempfile::tempdir().expect("create a throw-away HOME");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_distrod"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DISTROD_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("RUST_BACKTRACE").env_remove("RUST_LOG");
        for var in PROXY_VARS {
            cmd.env_remove(var);
        }
        cmd.env("DISTROD_HTTP_RETRY_DELAY_MS", "20")
            .env("HOME", home.path())
            .env("XDG_CACHE_HOME", home.path().join(".cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        Distrod {
            cmd,
            display: vec!["distrod".to_owned()],
            _home: home,
        }
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Distrod {
        self.display
            .push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut Distrod
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self.arg(arg);
        }
        self
    }

    pub fn env(&mut self, key: &str, value: impl AsRef<OsStr>) -> &mut Distrod {
        self.display
            .insert(0, format!("{key}={}", value.as_ref().to_string_lossy()));
        self.cmd.env(key, value);
        self
    }

    /// Runs the binary to completion (or kills it after [`RUN_TIMEOUT`]).
    pub fn run(&mut self) -> Output {
        let command = self.display.join(" ");
        let mut child = self
            .cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{command}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let status = wait_with_deadline(&mut child, RUN_TIMEOUT);
        let output = Output {
            command,
            status,
            stdout: join_text(stdout),
            stderr: join_text(stderr),
        };
        if status.is_none() {
            panic!("killed after {RUN_TIMEOUT:?} without finishing\n{output}");
        }
        output
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

fn join_text(handle: JoinHandle<Vec<u8>>) -> String {
    String::from_utf8_lossy(&handle.join().expect("pipe reader panicked")).into_owned()
}

fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for distrod") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// A command left running (stdout and stderr piped) whose output can be watched while it
/// runs: for tests that act while something else is under way.
pub struct Running {
    command: String,
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd`, which must pipe stdout and stderr; `command` names it in messages.
    pub fn spawn(mut cmd: Command, command: &str) -> Running {
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{command}`: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let out_pipe: Box<dyn Read + Send> = Box::new(child.stdout.take().expect("piped stdout"));
        let err_pipe: Box<dyn Read + Send> = Box::new(child.stderr.take().expect("piped stderr"));
        let readers = [(out_pipe, &stdout), (err_pipe, &stderr)]
            .into_iter()
            .map(|(mut pipe, sink)| {
                let sink = Arc::clone(sink);
                thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = pipe.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        sink.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                })
            })
            .collect();
        Running {
            command: command.to_owned(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    /// What it has written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until its stderr contains `needle`; false when `timeout` ran out first or it
    /// exited without writing it.
    pub fn wait_for_stderr(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.stderr_so_far().contains(needle) {
                return true;
            }
            let exited = self.child.try_wait().ok().flatten().is_some();
            if (exited && self.readers.iter().all(|r| r.is_finished()))
                || Instant::now() >= deadline
            {
                return self.stderr_so_far().contains(needle);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Waits for it to exit (killed after `timeout`: `None` status then) and returns what it
    /// wrote. Processes it left behind may hold its pipes: their readers are given a moment,
    /// not waited for.
    pub fn wait(mut self, timeout: Duration) -> Output {
        let status = wait_with_deadline(&mut self.child, timeout);
        let grace = Instant::now() + Duration::from_secs(2);
        while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < grace {
            thread::sleep(Duration::from_millis(10));
        }
        let text =
            |b: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&b.lock().unwrap()).into_owned();
        Output {
            command: self.command.clone(),
            status,
            stdout: text(&self.stdout),
            stderr: text(&self.stderr),
        }
    }
}

/// What a run produced. Every assertion prints the command and both streams when it fails.
pub struct Output {
    command: String,
    status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The value of the first `key=value` word of stdout (what a session's `echo key=...`
    /// printed); a missing key fails the test with the output.
    pub fn field(&self, key: &str) -> String {
        let prefix = format!("{key}=");
        self.stdout
            .split_whitespace()
            .find_map(|w| w.strip_prefix(prefix.as_str()))
            .unwrap_or_else(|| panic!("no {key}= in the output\n{self}"))
            .to_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Asserts exit status 0.
    pub fn success(&self) -> &Output {
        assert_eq!(self.code(), Some(0), "expected success\n{self}");
        self
    }

    /// Asserts the documented failure shape: exit status 1 and a line starting `error: `.
    pub fn failure(&self) -> &Output {
        assert_eq!(self.code(), Some(1), "expected exit status 1\n{self}");
        assert!(
            self.stderr.lines().any(|l| l.starts_with("error: ")),
            "expected a line starting `error: ` on stderr\n{self}"
        );
        self
    }

    /// The error as the user sees it: every stderr line from the first `error: ` line on
    /// (causes may follow on later lines).
    pub fn error_text(&self) -> String {
        let mut lines = self
            .stderr
            .lines()
            .skip_while(|l| !l.starts_with("error: "));
        let mut text = String::new();
        for line in lines.by_ref() {
            text.push_str(line);
            text.push('\n');
        }
        assert!(!text.is_empty(), "no `error: ` line on stderr\n{self}");
        text
    }

    /// Asserts the error text mentions every needle.
    pub fn error_mentions(&self, needles: &[&str]) -> &Output {
        let text = self.error_text();
        for needle in needles {
            assert!(
                text.contains(needle),
                "expected the error to mention {needle:?}\n{self}"
            );
        }
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Some(status) => status.to_string(),
            None => "killed (timeout)".to_owned(),
        };
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "status:  {status}")?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}--------------", self.stderr)
    }
}

/// The host's architecture in Debian's naming, which distrod must default `--arch` to.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "riscv64" => "riscv64",
        "x86" => "i386",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        other => panic!("no Debian architecture name known for {other}"),
    }
}

/// An architecture that is not the host's, for products `--arch` must keep out.
pub fn other_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

/// The names in `dir`, sorted; empty when `dir` does not exist.
pub fn list_dir(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("read a directory entry").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// Asserts that a failed `create` left nothing behind: no `dir`, and in its parent nothing
/// but the names that were there before (`expected_siblings`), so no half-unpacked
/// temporary directory either.
pub fn assert_nothing_created(dir: &Path, expected_siblings: &[&str], output: &Output) {
    assert!(
        std::fs::symlink_metadata(dir).is_err(),
        "{} exists after a failed create\n{output}",
        dir.display()
    );
    let parent = dir.parent().expect("DIR has a parent");
    let mut expected: Vec<String> = expected_siblings.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        list_dir(parent),
        expected,
        "unexpected entries left in {}\n{output}",
        parent.display()
    );
}

/// A directory for one test: `DIR`'s parent, a cache and room for input files, each
/// separate so that leftovers in one cannot hide in another.
pub struct Workspace {
    _root: tempfile::TempDir,
    /// Parent of the directory `create` makes; empty at the start.
    pub parent: PathBuf,
    /// The `--cache` directory.
    pub cache: PathBuf,
    /// Where tests put input files (`--image FILE`).
    pub inputs: PathBuf,
}

impl Workspace {
    pub fn new() -> Workspace {
        let root = tempfile::tempdir().expect("create a test directory");
        let parent = root.path().join("distros");
        let cache = root.path().join("cache");
        let inputs = root.path().join("inputs");
        for dir in [&parent, &cache, &inputs] {
            std::fs::create_dir(dir).expect("create a test directory");
        }
        Workspace {
            _root: root,
            parent,
            cache,
            inputs,
        }
    }

    /// The `--dir` of a `create`, not yet existing.
    pub fn target(&self) -> PathBuf {
        self.parent.join("rootfs")
    }
}

/// Whether tests that need root may run; when not, they must fail in CI (env `CI` set) and
/// say why they skip elsewhere.
pub fn require_root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    skip_or_fail(&format!("{what} needs root"))
}

/// Fails under CI, otherwise prints why the test does nothing.
pub fn skip_or_fail(reason: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{reason}, and CI is set: this test must run there");
    }
    eprintln!("skipping: {reason}");
    false
}

/// Whether a mountinfo line is the one mount distrod makes in the distro's own mount
/// namespace while the container runs (src/linux/privbus.rs): the relay's socket bound over
/// systemd's private socket. Tests that check that nothing else changes outside leave it
/// out of the tables they compare.
pub fn is_relay_cover(mountinfo_line: &str) -> bool {
    let mut f = mountinfo_line.split(' ');
    matches!(
        (f.nth(3), f.next()),
        (Some(root), Some("/run/systemd/private")) if root.ends_with("/distrod/systemd-private")
    )
}
