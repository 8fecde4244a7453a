//! A WSL distro stand-in that sessions can be opened in: a [`Sandbox`] made
//! [`wsl_like`](super::sandbox::SandboxBuilder::wsl_like), plus the `fakewsl` test program (tests/fakewsl)
//! playing WSL's per-session relay and its interop client.
//!
//! - [`FakeWsl::session`] is `wsl -d FakeWSL -u USER -- CMD`: `fakewsl relay` starts the
//!   user's login shell from the sandbox's /etc/passwd with WSL's environment, serving the
//!   session's interop socket `/run/WSL/<relay pid>_interop` meanwhile.
//! - `/opt/fakewsl/fakewsl client ARGS` ([`FAKEWSL`]) run in a session is a Windows program
//!   started from Linux: it finds the socket as WSL's `/init` does (`WSL_INTEROP`, else the
//!   parent pid walk) and the relay records the request in [`INTEROP_LOG`], which
//!   [`FakeWsl::interop_log`] reads.
//! - With WSL's two mount namespaces ([`FakeWsl::start_with_namespaces`]),
//!   [`FakeWsl::session_in`] and [`FakeWsl::spawn_session_in`] open a session from an
//!   elevated or a plain Windows process: the relay runs in the matching namespace and
//!   answers WSL's elevation query (`LxInitMessageQueryDrvfsElevated`) accordingly; the
//!   queries are logged as [`QUERY_LOG_ARGS`]. Other sessions are plain.

use std::fs;
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use super::sandbox::{FAKEWSL_INSIDE, Sandbox, SandboxBuilder, pid_in_namespace};
use super::{Output, RUN_TIMEOUT, drain, join_text, wait_with_deadline};

/// The `fakewsl` binary inside a [`FakeWsl`] sandbox.
pub const FAKEWSL: &str = FAKEWSL_INSIDE;

/// Where the relays record interop requests, inside the sandbox.
pub const INTEROP_LOG: &str = "/run/fakewsl/interop.log";

/// The `args` of a logged elevation query.
pub const QUERY_LOG_ARGS: &str = "<query-drvfs-elevated>";

/// Longest a spawned session may take to have its interop socket.
const SESSION_START_TIMEOUT: Duration = Duration::from_secs(10);

/// The `fakewsl` binary, built (`cargo build -p fakewsl`, same target directory, target
/// and profile as the binary under test) when it is missing or older than its sources.
pub fn fakewsl_binary() -> PathBuf {
    // One build per test process; cargo's own lock orders concurrent test processes.
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.as_ref() {
        return path.clone();
    }
    // target/<triple>/<profile>/distrod: fakewsl lands next to it.
    let distrod = Path::new(env!("CARGO_BIN_EXE_distrod"));
    let binary = distrod.with_file_name("fakewsl");
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakewsl");
    if !is_fresh(&binary, &sources) {
        build_fakewsl(distrod);
        assert!(
            binary.is_file(),
            "`cargo build -p fakewsl` succeeded but {} does not exist",
            binary.display()
        );
    }
    *built = Some(binary.clone());
    binary
}

/// Whether `binary` exists and is newer than every file under `sources`.
fn is_fresh(binary: &Path, sources: &Path) -> bool {
    let Ok(built) = fs::metadata(binary).and_then(|m| m.modified()) else {
        return false;
    };
    newest_mtime(sources) <= built
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if let Ok(m) = meta.modified() {
                newest = newest.max(m);
            }
        }
    }
    newest
}

fn build_fakewsl(distrod: &Path) {
    let profile_dir = distrod.parent().expect("the binary's directory");
    let mut target_dir = profile_dir
        .parent()
        .expect("the target directory")
        .to_path_buf();
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "-p", "fakewsl"]);
    // target/<triple>/<profile>/ when a target is named (the repository's config names one).
    let triple = target_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n.matches('-').count() >= 2);
    if let Some(triple) = triple {
        cmd.args(["--target", &triple]);
        target_dir = target_dir
            .parent()
            .expect("the target directory")
            .to_path_buf();
    }
    match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => {}
        Some("release") => {
            cmd.arg("--release");
        }
        Some(other) => {
            cmd.args(["--profile", other]);
        }
        None => {}
    }
    cmd.env("CARGO_TARGET_DIR", &target_dir);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("failed to run `cargo build -p fakewsl`: {e}"));
    assert!(
        output.status.success(),
        "`cargo build -p fakewsl` failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Where the binary under test is in a [`FakeWsl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DistrodAt {
    /// At `/opt/distrod/bin/distrod`, as after `distrod install` (but nothing else of an
    /// installation: no session hook).
    Installed,
    /// Only staged at [`super::sandbox::STAGED_DISTROD`]; no `/opt/distrod`
    /// ([`super::sandbox::SandboxBuilder::distrod_not_installed`]).
    Staged,
}

/// A WSL-like sandbox to open sessions in; see the module documentation.
pub struct FakeWsl {
    pub sandbox: Sandbox,
}

/// One line of [`INTEROP_LOG`]: which relay answered whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The relay's pid inside the sandbox (its socket is `/run/WSL/<relay>_interop`).
    pub relay: i32,
    /// The client's uid and pid (SO_PEERCRED), pid inside the sandbox.
    pub uid: u32,
    pub pid: i32,
    /// The client's arguments, joined by spaces.
    pub args: String,
}

impl FakeWsl {
    /// Starts a [`wsl_like`](super::sandbox::SandboxBuilder::wsl_like) sandbox over `rootfs_tree` (never
    /// written to) with distrod where `distrod` says.
    pub fn start(rootfs_tree: &Path, distrod: DistrodAt) -> FakeWsl {
        FakeWsl::start_with(rootfs_tree, distrod, Sandbox::builder().wsl_like())
    }

    /// [`FakeWsl::start`] with WSL's two mount namespaces
    /// ([`wsl_namespaces`](super::sandbox::SandboxBuilder::wsl_namespaces)): the sandbox's
    /// own is elevated when `first_elevated`, the second has the other elevation.
    pub fn start_with_namespaces(
        rootfs_tree: &Path,
        distrod: DistrodAt,
        first_elevated: bool,
    ) -> FakeWsl {
        let builder = Sandbox::builder().wsl_namespaces(first_elevated);
        FakeWsl::start_with(rootfs_tree, distrod, builder)
    }

    /// [`FakeWsl::start`] as the first distro, `distro`, of a WSL VM that later ones join
    /// ([`first_in_vm`](super::sandbox::SandboxBuilder::first_in_vm)).
    pub fn first_in_vm(rootfs_tree: &Path, distrod: DistrodAt, distro: Option<&str>) -> FakeWsl {
        let builder = Sandbox::builder().wsl_like().first_in_vm(distro);
        FakeWsl::start_with(rootfs_tree, distrod, builder)
    }

    /// [`FakeWsl::start`] as another distro, `distro`, of the VM of `vm` (which must outlive
    /// it): its own root and namespaces, the VM's cgroup tree, network and `/mnt/wsl`.
    pub fn in_vm_of(
        vm: &FakeWsl,
        rootfs_tree: &Path,
        distrod: DistrodAt,
        distro: Option<&str>,
    ) -> FakeWsl {
        let builder = Sandbox::builder().wsl_like().in_vm_of(&vm.sandbox, distro);
        FakeWsl::start_with(rootfs_tree, distrod, builder)
    }

    fn start_with(rootfs_tree: &Path, distrod: DistrodAt, mut builder: SandboxBuilder) -> FakeWsl {
        if distrod == DistrodAt::Staged {
            builder = builder.distrod_not_installed();
        }
        FakeWsl {
            sandbox: builder.start(rootfs_tree),
        }
    }

    /// `wsl -d FakeWSL -u USER -- CMD`: `cmd` runs through the user's login shell (so it
    /// may use shell syntax); returns when the session's relay exits, with its status (the
    /// shell's). Killed after the suite's run timeout.
    pub fn session(&self, user: &str, cmd: &str) -> Output {
        self.sandbox.run(&relay_argv(user, cmd))
    }

    /// [`FakeWsl::session`] with `env` (`K=V` items: the relay's `--env`, which sets K, or
    /// removes it when V is empty) over WSL's session environment, killed after `timeout`
    /// (`None` status in the output then).
    pub fn session_with(&self, user: &str, cmd: &str, env: &[&str], timeout: Duration) -> Output {
        self.sandbox
            .run_with_timeout(&relay_argv_with(user, cmd, env), timeout)
    }

    /// The command [`FakeWsl::session_with`] runs, to be spawned by the caller (several at
    /// once, or in the background); stdout and stderr piped.
    pub fn session_command(&self, user: &str, cmd: &str, env: &[&str]) -> Command {
        self.sandbox.command(&relay_argv_with(user, cmd, env))
    }

    /// `wsl -d FakeWSL -u USER` without a command: the interactive login shell, reading
    /// `input` on its stdin (no terminal).
    pub fn login(&self, user: &str, input: &str) -> Output {
        let argv = [FAKEWSL, "relay", "--user", user];
        let command = format!("[{}] {} <<< {input:?}", self.sandbox.name(), argv.join(" "));
        let mut child = self
            .sandbox
            .command(&argv)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{command}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        // A shell that exits early closes its stdin: that is its business.
        let _ = stdin.write_all(input.as_bytes());
        drop(stdin);
        let status = wait_with_deadline(&mut child, RUN_TIMEOUT);
        Output {
            command,
            status,
            stdout: join_text(stdout),
            stderr: join_text(stderr),
        }
    }

    /// [`FakeWsl::session`] from an elevated (`elevated`) or a plain Windows process: the
    /// relay runs in the matching mount namespace of a sandbox started
    /// [`with_namespaces`](FakeWsl::start_with_namespaces) and answers WSL's elevation query
    /// so.
    pub fn session_in(&self, elevated: bool, user: &str, cmd: &str) -> Output {
        self.sandbox
            .run_in(elevated, &relay_argv_in(elevated, user, cmd))
    }

    /// [`FakeWsl::session`] left running (e.g. `sleep 30`), for tests that need sessions
    /// side by side. Returns once the session's interop socket exists.
    pub fn spawn_session(&self, user: &str, cmd: &str) -> SessionChild<'_> {
        let argv = relay_argv(user, cmd);
        self.spawn(self.sandbox.command(&argv), &argv)
    }

    /// [`FakeWsl::spawn_session`] from an elevated or a plain Windows process, as
    /// [`FakeWsl::session_in`] opens it.
    pub fn spawn_session_in(&self, elevated: bool, user: &str, cmd: &str) -> SessionChild<'_> {
        let argv = relay_argv_in(elevated, user, cmd);
        self.spawn(self.sandbox.command_in(elevated, &argv), &argv)
    }

    /// `wsl -u USER -e ARGV...`: `argv` run by the relay itself, without the login shell
    /// (never through distrod's hook), in the distro outside the container; returns when it
    /// ends.
    pub fn exec(&self, user: &str, argv: &[&str]) -> Output {
        let mut full = vec![FAKEWSL, "relay", "--user", user, "--exec", "--"];
        full.extend_from_slice(argv);
        self.sandbox.run(&full)
    }

    /// `wsl -u USER -e ARGV...` left running: `argv` run by the relay itself, without the
    /// login shell (so never through distrod's hook), as an editor's server or the logon
    /// entry's `distrod launch --keep-alive` runs. Returns once its interop socket exists.
    pub fn spawn_exec(&self, user: &str, argv: &[&str]) -> SessionChild<'_> {
        let mut full = vec![FAKEWSL, "relay", "--user", user, "--exec", "--"];
        full.extend_from_slice(argv);
        self.spawn(self.sandbox.command(&full), &full)
    }

    /// Spawns `cmd`, which runs the relay `argv`; returns once its interop socket exists.
    fn spawn(&self, mut cmd: Command, argv: &[&str]) -> SessionChild<'_> {
        let command = format!("[{}] {}", self.sandbox.name(), argv.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{command}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let mut session = SessionChild {
            _wsl: PhantomData,
            command,
            child: Some(child),
            stdout: Some(stdout),
            stderr: Some(stderr),
            relay_host_pid: 0,
            relay: 0,
        };
        // The child is sh, exec'ing setpriv, exec'ing nsenter, whose one child (forked into
        // the sandbox's pid namespace) is the relay.
        let host_pid = session.child.as_ref().unwrap().id() as i32;
        let deadline = Instant::now() + SESSION_START_TIMEOUT;
        loop {
            if let Some(relay_host) = first_child(host_pid)
                && let Some(relay) = pid_in_namespace(relay_host)
                && self
                    .sandbox
                    .path(&format!("/run/WSL/{relay}_interop"))
                    .exists()
            {
                session.relay_host_pid = relay_host;
                session.relay = relay;
                return session;
            }
            let exited = session.child.as_mut().unwrap().try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                let out = session.wait();
                panic!("the session did not start (no interop socket)\n{out}");
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every request the relays have recorded, oldest first.
    pub fn interop_log(&self) -> Vec<LogEntry> {
        let text = self.sandbox.read_file(INTEROP_LOG).unwrap_or_default();
        text.lines()
            .map(|line| {
                parse_log_line(line).unwrap_or_else(|| panic!("malformed log line {line:?}"))
            })
            .collect()
    }

    /// Adds a regular user `name` with a home directory and bash as shell (`useradd -m`).
    pub fn useradd(&self, name: &str) {
        self.sandbox
            .run(&["useradd", "--create-home", "--shell", "/bin/bash", name])
            .success();
    }

    /// The first start of a distro installed from a `.wsl` package, as WSL's init runs it
    /// (src/linux/init/init.cpp of microsoft/WSL): it reads `oobe.command` and
    /// `oobe.defaultUid` from /etc/wsl-distribution.conf *before* the command runs, runs
    /// the command with `/bin/sh -c` as root on the user's terminal (here a new
    /// pseudo-terminal, `typed` typed ahead as the answers to its prompts: `fakewsl pty
    /// --input`), and when it succeeded makes defaultUid the default user: the session
    /// then goes on as that uid's account ([`FakeWsl::user_with_uid`]).
    pub fn first_start(&self, typed: &str) -> FirstStart {
        let conf = self
            .sandbox
            .read_file("/etc/wsl-distribution.conf")
            .expect("/etc/wsl-distribution.conf");
        let command = wsl_conf_value(&conf, "oobe", "command").unwrap_or_default();
        let default_uid = wsl_conf_value(&conf, "oobe", "defaultUid").map(|v| {
            parse_c_long(&v).unwrap_or_else(|| panic!("oobe.defaultUid {v:?} is no number"))
        });
        assert!(!command.is_empty(), "no oobe.command in\n{conf}");
        let output = self.sandbox.run(&[
            FAKEWSL,
            "pty",
            "--timeout",
            "120000",
            "--input",
            typed,
            "--",
            "/bin/sh",
            "-c",
            &command,
        ]);
        FirstStart {
            output,
            command,
            default_uid,
        }
    }

    /// The account with `uid` in the sandbox's /etc/passwd (what WSL's getpwuid gives).
    pub fn user_with_uid(&self, uid: u32) -> Option<String> {
        let passwd = self.sandbox.read_file("/etc/passwd").expect("/etc/passwd");
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 7 && f[2].parse() == Ok(uid)).then(|| f[0].to_owned())
        })
    }
}

/// What [`FakeWsl::first_start`] did.
pub struct FirstStart {
    /// The first-start command's run; its terminal's output (prompts, echoed answers,
    /// what it printed) on stdout.
    pub output: Output,
    /// `oobe.command` as WSL read it.
    pub command: String,
    /// `oobe.defaultUid` as WSL read it, before the command ran.
    pub default_uid: Option<u32>,
}

/// A value of WSL's configuration files as WSL's parser (src/shared/configfile) reads it:
/// `[section]` and `key = value` lines, names case-insensitive, `#` starting a comment
/// outside quotes, surrounding whitespace and quotes dropped; the last one wins.
pub fn wsl_conf_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let mut in_quotes = false;
        let line: String = line
            .chars()
            .take_while(|&c| {
                in_quotes ^= c == '"';
                in_quotes || c != '#'
            })
            .collect();
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.trim().to_lowercase();
        } else if let Some((k, v)) = line.split_once('=')
            && current == section.to_lowercase()
            && k.trim().eq_ignore_ascii_case(key)
        {
            found = Some(v.trim().trim_matches('"').to_owned());
        }
    }
    found
}

/// strtol with base 0, as WSL reads integers: decimal, 0x hexadecimal, 0 octal.
fn parse_c_long(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

fn relay_argv<'a>(user: &'a str, cmd: &'a str) -> Vec<&'a str> {
    relay_argv_with(user, cmd, &[])
}

/// The relay of a session from an elevated or a plain Windows process.
fn relay_argv_in<'a>(elevated: bool, user: &'a str, cmd: &'a str) -> Vec<&'a str> {
    let mut argv = relay_argv(user, cmd);
    if elevated {
        argv.insert(2, "--elevated");
    }
    argv
}

fn relay_argv_with<'a>(user: &'a str, cmd: &'a str, env: &[&'a str]) -> Vec<&'a str> {
    let mut argv = vec![FAKEWSL, "relay", "--user", user];
    for item in env {
        argv.extend(["--env", item]);
    }
    argv.extend(["--", cmd]);
    argv
}

/// `relay=R uid=U pid=P args=ARGS`.
fn parse_log_line(line: &str) -> Option<LogEntry> {
    let mut parts = line.splitn(4, ' ');
    let relay = parts.next()?.strip_prefix("relay=")?.parse().ok()?;
    let uid = parts.next()?.strip_prefix("uid=")?.parse().ok()?;
    let pid = parts.next()?.strip_prefix("pid=")?.parse().ok()?;
    let args = parts.next()?.strip_prefix("args=")?.to_owned();
    Some(LogEntry {
        relay,
        uid,
        pid,
        args,
    })
}

/// A running session from [`FakeWsl::spawn_session`]. Dropping it kills it like
/// [`SessionChild::kill`].
pub struct SessionChild<'a> {
    /// The sandbox must outlive the session: its pids are only killed while it runs.
    _wsl: PhantomData<&'a FakeWsl>,
    command: String,
    /// The host-side `nsenter` the session was started through.
    child: Option<std::process::Child>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    relay_host_pid: i32,
    relay: i32,
}

impl SessionChild<'_> {
    /// The relay's pid inside the sandbox.
    pub fn relay_pid(&self) -> i32 {
        self.relay
    }

    /// The session's interop socket inside the sandbox, `/run/WSL/<relay pid>_interop`.
    pub fn socket(&self) -> String {
        format!("/run/WSL/{}_interop", self.relay)
    }

    /// Whether the session is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Kills this session only: the relay and every process below it (by pid, deepest
    /// first, SIGKILL), then waits for it. What it printed is returned.
    pub fn kill(mut self) -> Output {
        self.kill_tree();
        self.wait()
    }

    /// Waits for the session to end by itself (killed after the suite's run timeout).
    pub fn wait(mut self) -> Output {
        self.finish()
    }

    fn kill_tree(&mut self) {
        // Only while nsenter is unreaped: then the relay's pid cannot have been reused.
        if self.relay_host_pid <= 0 || !self.is_running() {
            return;
        }
        let mut pids = vec![self.relay_host_pid];
        let mut i = 0;
        while i < pids.len() {
            pids.extend(children(pids[i]));
            i += 1;
        }
        for pid in pids.into_iter().rev() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn finish(&mut self) -> Output {
        let Some(mut child) = self.child.take() else {
            return Output {
                command: self.command.clone(),
                status: None,
                stdout: String::new(),
                stderr: String::new(),
            };
        };
        let status: Option<ExitStatus> = wait_with_deadline(&mut child, RUN_TIMEOUT);
        Output {
            command: self.command.clone(),
            status,
            stdout: self.stdout.take().map(join_text).unwrap_or_default(),
            stderr: self.stderr.take().map(join_text).unwrap_or_default(),
        }
    }
}

impl Drop for SessionChild<'_> {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill_tree();
            // Processes of the session that live on elsewhere (inside a container) may
            // hold its output pipes: do not wait for them to close.
            self.stdout = None;
            self.stderr = None;
            let _ = self.finish();
        }
    }
}

/// The children of `pid` (all its threads'), host pids.
fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(text) = fs::read_to_string(task.path().join("children")) {
            out.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    out
}

fn first_child(pid: i32) -> Option<i32> {
    children(pid).into_iter().next()
}

/// A TCP echo server inside a sandbox (`fakewsl echo ADDR`), stopped (by pid) when
/// dropped.
pub struct EchoServer(std::process::Child);

impl EchoServer {
    /// Starts it and returns once it listens on `addr`.
    pub fn start(sb: &Sandbox, addr: &str) -> EchoServer {
        use std::io::BufRead;
        let mut child = sb
            .command(&[FAKEWSL, "echo", addr])
            .spawn()
            .expect("start the echo server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the echo server's first line");
        assert!(line.starts_with("ready"), "echo server on {addr}: {line:?}");
        EchoServer(child)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsl_conf_values_as_wsl_reads_them() {
        let conf = "# distrod\n[oobe]\ncommand = /usr/lib/wsl/x.sh  # first start\n\
                    DefaultUid = 0x3e9\n[shortcut]\ncommand = other\n";
        assert_eq!(
            wsl_conf_value(conf, "oobe", "command").as_deref(),
            Some("/usr/lib/wsl/x.sh")
        );
        let uid = wsl_conf_value(conf, "OOBE", "defaultUid").unwrap();
        assert_eq!(parse_c_long(&uid), Some(1001));
        assert_eq!(parse_c_long("1001"), Some(1001));
        assert_eq!(wsl_conf_value(conf, "oobe", "defaultName"), None);
        assert_eq!(
            wsl_conf_value("[a]\nk = \"x # y\"\n", "a", "k").as_deref(),
            Some("x # y")
        );
    }

    #[test]
    fn log_lines_parse() {
        assert_eq!(
            parse_log_line("relay=12 uid=1000 pid=34 args=cmd.exe /c echo hi"),
            Some(LogEntry {
                relay: 12,
                uid: 1000,
                pid: 34,
                args: "cmd.exe /c echo hi".into()
            })
        );
        assert_eq!(
            parse_log_line("relay=1 uid=0 pid=2 args=").map(|e| e.args),
            Some(String::new())
        );
        assert_eq!(parse_log_line("relay=x uid=0 pid=2 args="), None);
        assert_eq!(parse_log_line("garbage"), None);
    }
}
