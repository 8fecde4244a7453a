//! The setuid login path against a hostile local user. In a fake WSL distro that `distrod
//! enable` hooked (support/fakewsl.rs, inside the test sandbox), a second, unprivileged
//! user, `mallory`, does what she can to the path that runs as root when she logs in:
//! stops it with Ctrl-Z on her terminal, starts the container with hostile resource
//! limits and process state, hands it forged session values, non-UTF-8 bytes, odd working
//! directories, a huge environment and a `WSL_INTEROP` that points elsewhere, races the
//! WSLg links in her runtime directory, runs links to the binary, signals and reads root's
//! processes, and logs in many times at once. The distro's normal user is `distrod`.
//!
//! Each test asserts what must still hold for root and for the other user (the container
//! boots from the distro's state, not hers; nobody is wedged; her values never reach
//! root's services; nothing of root's is written through her links), and ends with
//! [`assert_clean_end`]: root's `distrod stop` completes, no process is left in the
//! sandbox besides its init, and the container's cgroups are gone.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::fakewsl::{DistrodAt, FAKEWSL, FakeWsl};
use crate::support::sandbox::{STAGED_DISTROD, Sandbox, pid_in_namespace, prerequisites};
use crate::support::{Output, Running, list_dir};

const INSTALLED: &str = "/opt/distrod/bin/distrod";
/// The login shell `enable` gives bash users.
const ALIAS_BASH: &str = "/opt/distrod/alias/bin/bash";
const MALLORY: &str = "mallory";
/// Longest anything here may take that a user waits for (a session, a stop).
const BOUND: Duration = Duration::from_secs(60);
/// What a session prints to say where it runs.
const WHERE: &str = "echo pid1=$(cat /proc/1/comm) manager=$(cat /run/host/container-manager \
                     2>/dev/null || echo none) user=$(id -un)";

/// A fake WSL distro with mallory (uid 1001, bash) added; with `enable`, hooked by root's
/// `distrod enable`, which installs distrod first. The container is not running.
fn start(test: &str, enable: bool) -> Option<FakeWsl> {
    let tree: PathBuf = prerequisites(test)?;
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    wsl.useradd(MALLORY);
    if enable {
        root_enable(&wsl.sandbox);
        assert_eq!(shell_field(&wsl.sandbox, MALLORY), ALIAS_BASH);
    }
    Some(wsl)
}

fn root_enable(sb: &Sandbox) -> Output {
    let out = sb.run_with_timeout(&[STAGED_DISTROD, "enable"], BOUND);
    out.success();
    out
}

/// The shell field of `user` in the sandbox's /etc/passwd.
fn shell_field(sb: &Sandbox, user: &str) -> String {
    sb.passwd_entry(user)[6].clone()
}

/// `key=value` (a whitespace-separated word) in a run's stdout, if there.
fn value_of(out: &Output, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    out.stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// Asserts the run ended by itself, with status 0, inside the container (it printed
/// [`WHERE`]), as `user`, and without a panic.
fn assert_inside(out: &Output, user: &str) {
    assert!(
        out.code().is_some(),
        "the session did not end within its bound\n{out}"
    );
    assert_no_panic(out);
    out.success();
    assert_eq!(
        value_of(out, "pid1").as_deref(),
        Some("systemd"),
        "the session is not in the container\n{out}"
    );
    assert_eq!(
        value_of(out, "manager").as_deref(),
        Some("distrod"),
        "{out}"
    );
    assert_eq!(value_of(out, "user").as_deref(), Some(user), "{out}");
}

fn assert_no_panic(out: &Output) {
    assert!(!out.stderr.contains("panicked"), "distrod panicked\n{out}");
}

/// Waits (polling) until `ok` holds; false if `timeout` ran out first.
fn eventually(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The end of every test: root's `distrod stop` completes within [`BOUND`], the container
/// is stopped, no process is left in the sandbox besides its init, and no cgroup is left.
fn assert_clean_end(wsl: &FakeWsl) {
    let sb = &wsl.sandbox;
    let t0 = Instant::now();
    root_stop(sb);
    let status = sb.run_with_timeout(&[INSTALLED, "status"], BOUND);
    assert_eq!(status.code(), Some(3), "stopped after `stop`\n{status}");
    assert!(
        eventually(Duration::from_secs(20), || sb.other_processes().is_empty()),
        "processes left in the sandbox after stop ({:?} after the stop began):\n{}",
        t0.elapsed(),
        sb.describe_processes()
    );
    assert_eq!(
        sb.cgroup_dirs(),
        Vec::<String>::new(),
        "cgroups left after stop"
    );
}

/// Root's `distrod stop`, which must complete within [`BOUND`] and succeed.
fn root_stop(sb: &Sandbox) -> Output {
    let out = sb.run_with_timeout(&[INSTALLED, "stop"], BOUND);
    assert!(
        out.code().is_some(),
        "root's `distrod stop` did not complete within {BOUND:?}\n{out}\n{}",
        sb.describe_processes()
    );
    out.success();
    assert_no_panic(&out);
    out
}

/// `/proc/<pid>/<file>` on the host, or empty when the process is gone.
fn proc_text(pid: i32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

/// A process's command line, its arguments joined by spaces.
fn cmdline(pid: i32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_owned()
}

/// The value of `key:` in `/proc/<pid>/status`.
fn status_field(pid: i32, key: &str) -> String {
    proc_text(pid, "status")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// Field `n` (1-based, as in proc(5)) of `/proc/<pid>/stat`.
fn stat_field(pid: i32, n: usize) -> String {
    let stat = proc_text(pid, "stat");
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    // Field 3 (the state) is the first after the command name.
    rest.split_whitespace()
        .nth(n - 3)
        .unwrap_or_default()
        .to_owned()
}

/// Whether the process runs a file named `distrod` (the binary, also a replaced one).
fn is_distrod(pid: i32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|p| {
        let p = p.to_string_lossy();
        let p = p.strip_suffix(" (deleted)").unwrap_or(&p);
        p.rsplit('/').next() == Some("distrod")
    })
}

/// Host pids of the sandbox's processes whose effective uid is root and that run distrod.
fn root_distrod_processes(sb: &Sandbox) -> Vec<i32> {
    sb.processes()
        .into_iter()
        .filter(|&pid| is_distrod(pid))
        .filter(|&pid| status_field(pid, "Uid").split_whitespace().nth(1) == Some("0"))
        .collect()
}

/// Root-owned processes (effective uid 0) of the sandbox that are stopped (state T, or t
/// under a tracer): their host pid and session, and a description for messages.
fn stopped_root_processes(sb: &Sandbox) -> Vec<(i32, String, String)> {
    sb.processes()
        .into_iter()
        .filter(|&pid| status_field(pid, "Uid").split_whitespace().nth(1) == Some("0"))
        .filter(|&pid| matches!(stat_field(pid, 3).as_str(), "T" | "t"))
        .map(|pid| {
            let session = stat_field(pid, 6);
            let text = format!(
                "host pid {pid} (sandbox pid {}, session {session}): {}",
                pid_in_namespace(pid).unwrap_or_default(),
                cmdline(pid)
            );
            (pid, session, text)
        })
        .collect()
}

/// A boot in which logind, and so the end of a login's wait (src/linux/readiness.rs), comes
/// `secs` seconds in: a oneshot `sleep` ordered before systemd-logind.service.
fn slow_launch(sb: &Sandbox, secs: u32) {
    sb.slow_unit("slow-boot", secs, "Before=systemd-logind.service");
}

/// Whether the unit of [`slow_launch`] runs (the boot is under way).
fn slow_unit_runs(sb: &Sandbox, secs: u32) -> bool {
    let slow = format!("/bin/sleep {secs}");
    sb.processes().into_iter().any(|p| cmdline(p) == slow)
}

/// Runs `script` with bash as mallory, in the sandbox (outside the container), as she
/// would from a shell of her own that distrod did not start: a terminal-less process with
/// her ids. Killed after [`BOUND`] plus `extra`.
fn as_mallory(sb: &Sandbox, script: &str, extra: Duration) -> Output {
    sb.run_as_with_timeout(MALLORY, &["bash", "-c", script], BOUND + extra)
}

/// The file that makes mallory's terminal hang up (`fakewsl pty --until`).
const HANG_UP: &str = "/tmp/hang-up";

/// Ctrl-Z on mallory's terminal while her login boots the container: the launch runs
/// where her terminal cannot stop it, so no process of root's is stopped, another user's
/// session lands in the container within [`BOUND`], and root's `distrod stop` completes.
#[test]
fn ctrl_z_during_the_boot_wedges_nobody() {
    let Some(wsl) = start("ctrl_z_during_the_boot_wedges_nobody", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    // A launch of several seconds, so that the Ctrl-Z surely comes while it runs.
    slow_launch(sb, 4);
    // Her login stays (inside, once it got there) until root stops the container.
    let login = format!("{ALIAS_BASH} -l -c 'echo in; {WHERE}; sleep 40'");
    let argv = [
        FAKEWSL,
        "pty",
        "--stop-after",
        "500",
        "--timeout",
        "50000",
        "--until",
        HANG_UP,
        "--",
        "bash",
        "-c",
        &login,
    ];
    // Her terminal runs `bash -c LOGIN`, the login in its process group, the foreground.
    let mut term = Running::spawn(sb.command_as(MALLORY, &argv), "mallory's terminal");
    assert!(
        term.wait_for_stderr("pty: sent ^Z", Duration::from_secs(10)),
        "no Ctrl-Z sent: {}",
        term.stderr_so_far()
    );
    // Her login itself (in her terminal's session) stops: that is her business.
    let stopped_job = term.wait_for_stderr("pty: stopped", Duration::from_secs(2));
    eprintln!("mallory's login stopped by Ctrl-Z: {stopped_job}");

    // The boot goes on while her job is stopped; nothing of root's is stopped with it.
    let t0 = Instant::now();
    let out = wsl.session_with("distrod", WHERE, &[], BOUND);
    let waited = t0.elapsed();
    assert_inside(&out, "distrod");
    assert!(waited < BOUND, "distrod's session took {waited:?}");
    // Her terminal's session: that of her job (`pty: job N`, N as the sandbox sees it).
    let job: i32 = term
        .stderr_so_far()
        .lines()
        .find_map(|l| l.strip_prefix("pty: job "))
        .and_then(|n| n.trim().parse().ok())
        .expect("her terminal names its job");
    // Her job may have gone on and ended by now (root's part of it ignores Ctrl-Z), or be
    // stopped in a shell of hers: either is hers to have.
    let her_session = sb
        .processes()
        .into_iter()
        .find(|&p| pid_in_namespace(p) == Some(job))
        .map(|p| stat_field(p, 6))
        .unwrap_or_else(|| "(ended)".into());
    let (in_hers, elsewhere): (Vec<_>, Vec<_>) = stopped_root_processes(sb)
        .into_iter()
        .partition(|(_, session, _)| *session == her_session);
    let describe = |v: &[(i32, String, String)]| {
        v.iter()
            .map(|(_, _, text)| text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(
        elsewhere.is_empty(),
        "root's work outside her terminal's session was stopped by her Ctrl-Z:\n{}\n\
         all processes:\n{}",
        describe(&elsewhere),
        sb.describe_processes()
    );
    // Checked last (below), so that everything else is proven first.
    let stopped_in_hers = describe(&in_hers);
    let processes_then = sb.describe_processes();
    let systemd = sb.container_systemd().expect("the container runs");
    // Not stopped (T): sleeping, running, or for a moment in uninterruptible I/O (D).
    let state = stat_field(systemd, 3);
    assert!(
        ["S", "R", "D"].contains(&state.as_str()),
        "systemd's state {state}"
    );
    assert!(
        term.is_running(),
        "her terminal ended early\n{}",
        term.stderr_so_far()
    );

    // Root stops the container while her job is still stopped; then her window closes.
    root_stop(sb);
    sb.write_file(HANG_UP, "");
    let term = term.wait(BOUND);
    assert!(term.code().is_some(), "her terminal did not end\n{term}");
    assert_no_panic(&term);
    assert_clean_end(&wsl);
    let terminal = term.stderr;
    assert!(
        stopped_in_hers.is_empty(),
        "root-owned distrod processes in her terminal's session (session {her_session}) \
         were stopped by her Ctrl-Z:\n{}\nall processes:\n{}\nher terminal:\n{}",
        stopped_in_hers,
        processes_then,
        terminal
    );
}

/// Root's `distrod stop` while a login's boot is still under way returns without waiting
/// for the boot to finish.
#[test]
fn stop_during_a_boot_does_not_wait_for_it() {
    let Some(wsl) = start("stop_during_a_boot_does_not_wait_for_it", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    const BOOT_SECS: u32 = 25;
    slow_launch(sb, BOOT_SECS);
    let mut login = Running::spawn(wsl.session_command(MALLORY, WHERE, &[]), "mallory's login");
    assert!(
        eventually(Duration::from_secs(15), || sb.container_systemd().is_some()),
        "no container started for the login\n{}",
        sb.describe_processes()
    );
    // The boot is under way: its slow unit runs, the login still waits.
    assert!(
        eventually(Duration::from_secs(15), || slow_unit_runs(sb, BOOT_SECS)),
        "the slow unit did not start\n{}",
        sb.describe_processes()
    );
    assert!(login.is_running(), "the login did not wait for the boot");
    let t0 = Instant::now();
    let out = root_stop(sb);
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(u64::from(BOOT_SECS) / 2),
        "stop took {took:?}: it waited for the boot ({BOOT_SECS} s)\n{out}"
    );
    let login = login.wait(BOUND);
    eprintln!("stop took {took:?}; the login then:\n{login}");
    assert!(
        login.code().is_some(),
        "the login hung after the stop\n{login}"
    );
    assert_no_panic(&login);
    assert_clean_end(&wsl);
}

/// capabilities(7): the bit of CAP_SYS_RESOURCE.
const CAP_SYS_RESOURCE: u32 = 24;

/// Whether `cap` is in the process's bounding set.
fn has_capability(pid: i32, cap: u32) -> bool {
    u64::from_str_radix(&status_field(pid, "CapBnd"), 16).is_ok_and(|set| set & (1 << cap) != 0)
}

/// The lines of `/proc/<pid>/limits` (header included), from the host.
fn limits_of(pid: i32) -> Vec<String> {
    proc_text(pid, "limits")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The line of a limits table for `name` ("Max file size", ...).
fn limit_line<'a>(limits: &'a [String], name: &str) -> &'a str {
    limits
        .iter()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name:?} in {limits:#?}"))
}

/// `distrod exec -- ARGV` as root (in the running container), bounded.
fn root_exec(sb: &Sandbox, argv: &[&str]) -> Output {
    let mut full = vec![INSTALLED, "exec", "--no-launch", "--"];
    full.extend_from_slice(argv);
    let out = sb.run_with_timeout(&full, BOUND);
    assert!(out.code().is_some(), "`distrod exec` hung\n{out}");
    out
}

/// The first login of the distro is mallory's, with hostile resource limits, nice value,
/// CPU affinity, oom_score_adj, umask, ignored signals and an extra open descriptor: the
/// container's systemd starts from the distro's PID 1's state instead, and the boot is
/// clean.
#[test]
fn systemd_starts_from_the_distros_state_not_the_first_callers() {
    let Some(wsl) = start(
        "systemd_starts_from_the_distros_state_not_the_first_callers",
        true,
    ) else {
        return;
    };
    let sb = &wsl.sandbox;
    let cpus_outside = status_field(sb.pid1(), "Cpus_allowed_list");
    let has_taskset = sb.path("/usr/bin/taskset").exists();
    let pin = if !has_taskset {
        eprintln!("note: no taskset in the rootfs: the CPU affinity is not made hostile");
        ""
    } else if cpus_outside == "0" {
        eprintln!("note: one CPU only: pinning to it changes nothing");
        ""
    } else {
        "taskset -c 0"
    };
    // A hard limit she lowers can be raised again only with CAP_SYS_RESOURCE, which some
    // machines keep from everyone (their bounding set): there, only the soft limits can be
    // made hostile.
    let which = if has_capability(sb.pid1(), CAP_SYS_RESOURCE) {
        "-S -H"
    } else {
        eprintln!(
            "note: no CAP_SYS_RESOURCE on this machine: only the soft limits are made \
             hostile (nobody could raise lowered hard limits again)"
        );
        "-S"
    };
    let hostile = format!(
        "ulimit {which} -f 3000 && ulimit {which} -n 256 && ulimit {which} -u 500 || exit 90
         echo 500 > /proc/self/oom_score_adj || exit 91
         umask 077
         trap '' INT TERM HUP
         exec 7</etc/passwd
         echo hostile: $(ulimit -f) $(ulimit -n) $(ulimit -u) $(cat /proc/self/oom_score_adj) \
             $(umask)
         exec nice -n 10 {pin} {ALIAS_BASH} -l -c '{WHERE}'"
    );
    let out = as_mallory(sb, &hostile, Duration::ZERO);
    assert!(
        out.stdout.contains("hostile: 3000 256 500 500 0077"),
        "the hostile state was not set up\n{out}"
    );
    assert_inside(&out, MALLORY);

    let systemd = sb.container_systemd().expect("the container runs");
    // Limits: those of the distro's PID 1 (outside the container). systemd raises its own
    // hard limit of open files (and locked memory) at start; those must at least not be
    // hers.
    let outside = limits_of(sb.pid1());
    let inside = limits_of(systemd);
    let raised_by_systemd = ["Max open files", "Max locked memory"];
    for line in &outside {
        let name = line.get(..26).unwrap_or(line).trim_end();
        if raised_by_systemd.contains(&name) {
            continue;
        }
        assert_eq!(
            limit_line(&inside, name),
            line,
            "systemd's {name:?} is not the distro's PID 1's\ninside:\n{}\noutside:\n{}",
            inside.join("\n"),
            outside.join("\n")
        );
    }
    let nofile = limit_line(&inside, "Max open files");
    assert!(
        !nofile.split_whitespace().any(|w| w == "256"),
        "systemd kept mallory's open-file limit: {nofile}"
    );
    assert_eq!(stat_field(systemd, 19), "0", "systemd's nice value");
    assert_eq!(
        status_field(systemd, "Cpus_allowed_list"),
        cpus_outside,
        "systemd's CPU affinity"
    );
    assert_eq!(proc_text(systemd, "oom_score_adj").trim(), "0");
    // HUP, INT and TERM (bits 0, 1, 14) are not left ignored.
    let ignored = u64::from_str_radix(&status_field(systemd, "SigIgn"), 16).unwrap_or(u64::MAX);
    assert_eq!(
        ignored & 0x4003,
        0,
        "systemd ignores her signals: {ignored:x}"
    );
    let fds: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{systemd}/fd"))
        .expect("systemd's descriptors")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(
        !fds.iter().any(|p| p.ends_with("etc/passwd")),
        "systemd inherited mallory's descriptor of /etc/passwd: {fds:?}"
    );

    // Its services: journald runs with the distro's file size limit, nothing failed.
    let out = root_exec(sb, &["systemctl", "is-system-running", "--wait"]);
    assert_eq!(out.stdout.trim(), "running", "{out}");
    let out = root_exec(sb, &["systemctl", "--failed", "--plain", "--no-legend"]);
    out.success();
    assert_eq!(out.stdout.trim(), "", "failed units\n{out}");
    let out = root_exec(
        sb,
        &[
            "sh",
            "-c",
            "systemctl is-active systemd-journald; \
             cat /proc/$(systemctl show -p MainPID --value systemd-journald)/limits",
        ],
    );
    out.success();
    assert!(out.stdout.starts_with("active\n"), "{out}");
    let journald: Vec<String> = out.stdout.lines().skip(1).map(str::to_owned).collect();
    assert_eq!(
        limit_line(&journald, "Max file size"),
        limit_line(&outside, "Max file size"),
        "journald's file size limit is mallory's\n{out}"
    );
    assert_clean_end(&wsl);
}

/// Session values mallory forged, as `--env` items of her session.
const FORGED: [&str; 5] = [
    "DISPLAY=evil.example.org:0",
    "WAYLAND_DISPLAY=../../../etc/x",
    "PULSE_SERVER=tcp:10.0.0.1",
    "WSL_DISTRO_NAME=x;y z",
    "WSLENV=A/x:B",
];

/// WSL's own values (the fake relay's, with a flagged WSLENV item).
const WSLS_OWN: [&str; 5] = [
    "DISPLAY=:0",
    "WAYLAND_DISPLAY=wayland-0",
    "PULSE_SERVER=unix:/mnt/wslg/PulseServer",
    "WSL_DISTRO_NAME=FakeWSL",
    "WSLENV=WT_SESSION:WT_PROFILE_ID/u",
];

/// systemd's manager environment, as root sees it, one `K=V` per line.
fn manager_env(sb: &Sandbox) -> Vec<String> {
    let out = root_exec(sb, &["systemctl", "show-environment"]);
    out.success();
    out.stdout.lines().map(str::to_owned).collect()
}

/// The session values that reach root's services are WSL's forms only: mallory's forged
/// ones are all dropped, WSL's own are all kept.
#[test]
fn forged_session_values_never_reach_roots_services() {
    let Some(wsl) = start("forged_session_values_never_reach_roots_services", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    let out = wsl.session_with(MALLORY, WHERE, &FORGED, BOUND);
    assert_inside(&out, MALLORY);
    let env = manager_env(sb);
    for forged in FORGED {
        let key = forged.split_once('=').unwrap().0;
        let kept: Vec<&String> = env
            .iter()
            .filter(|l| l.starts_with(&format!("{key}=")))
            .collect();
        assert!(
            kept.is_empty(),
            "{key} from mallory's session reached systemd: {kept:?}\n{}",
            env.join("\n")
        );
    }
    root_stop(sb);

    let out = wsl.session_with(MALLORY, WHERE, &WSLS_OWN, BOUND);
    assert_inside(&out, MALLORY);
    let env = manager_env(sb);
    for own in WSLS_OWN.iter().chain(&["WSL_INTEROP=/run/WSL/1_interop"]) {
        assert!(
            env.iter().any(|l| l == own),
            "{own} is missing from systemd's environment:\n{}",
            env.join("\n")
        );
    }
    assert_clean_end(&wsl);
}

/// `bytes` as lowercase hex, as the probe prints it.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a session prints of its argument, locale and directory, as hex.
const BYTES_PROBE: &str = r#"hex() { printf %s "$1" | od -An -tx1 | tr -d ' \n'; echo; }
echo "arg=$(hex "$1")"
echo "lang=$(hex "$LANG")"
echo "cwd=$(hex "$(pwd)")"
"#;

/// Non-UTF-8 bytes in an environment variable's name and value, in the `-c` argument and
/// in the working directory's name: the login still lands in the container, a passed
/// variable (LANG) and the directory arrive unchanged, and nothing panics.
#[test]
fn non_utf8_bytes_are_carried_not_refused() {
    let Some(wsl) = start("non_utf8_bytes_are_carried_not_refused", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    sb.write_file("/tmp/bytes-probe.sh", BYTES_PROBE);
    let script = format!(
        r#"mkdir -p $'/tmp/d\xff\xfe' && cd $'/tmp/d\xff\xfe' || exit 90
           exec env $'X\xff=\xfe' LANG=$'C.\xff' {ALIAS_BASH} -l -c $'{WHERE}; . /tmp/bytes-probe.sh \xff'"#
    );
    let out = as_mallory(sb, &script, Duration::ZERO);
    assert_inside(&out, MALLORY);
    assert_eq!(
        value_of(&out, "arg"),
        Some(hex(b"\xff")),
        "the -c argument\n{out}"
    );
    assert_eq!(value_of(&out, "lang"), Some(hex(b"C.\xff")), "LANG\n{out}");
    assert_eq!(
        value_of(&out, "cwd"),
        Some(hex(b"/tmp/d\xff\xfe")),
        "the working directory\n{out}"
    );
    assert_clean_end(&wsl);
}

/// mallory's runtime directory while she swaps its `pulse` between a directory and
/// symlinks to root's directories, as fast as she can, until /tmp/race-end exists.
const PULSE_SWAPPER: &str = r#"p=$XDG_RUNTIME_DIR/pulse
echo "rt=$XDG_RUNTIME_DIR" > /tmp/race-rt
n=0
while [ ! -e /tmp/race-end ]; do
    rm -rf "$p"; ln -s /var/tmp/target "$p" 2>/dev/null
    rm -f "$p"; mkdir "$p" 2>/dev/null
    rm -rf "$p"; ln -s /etc "$p" 2>/dev/null
    rm -f "$p"
    n=$((n+1))
done
echo "swaps=$n""#;

/// While mallory keeps swapping `$XDG_RUNTIME_DIR/pulse` between a directory and symlinks
/// to root-owned directories, 30 logins of hers still work, and root never creates
/// anything in those directories.
#[test]
fn wslg_links_are_never_made_through_her_symlinks() {
    let Some(wsl) = start("wslg_links_are_never_made_through_her_symlinks", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    sb.run(&["mkdir", "-m", "755", "/var/tmp/target"]).success();
    let swapper = Running::spawn(
        wsl.session_command(MALLORY, PULSE_SWAPPER, &[]),
        "mallory's swapper",
    );
    assert!(
        eventually(BOUND, || sb.read_file("/tmp/race-rt").is_some()),
        "the swapper did not start"
    );
    assert_eq!(
        sb.read_file("/tmp/race-rt").unwrap().trim(),
        "rt=/run/user/1001"
    );
    // /etc as the booted container left it (systemd-tmpfiles adds /etc/mtab).
    let etc_before = list_dir(&sb.path("/etc"));
    for i in 0..30 {
        let out = wsl.session_with(MALLORY, WHERE, &[], BOUND);
        assert_inside(&out, MALLORY);
        let target = list_dir(&sb.path("/var/tmp/target"));
        assert!(
            target.is_empty(),
            "login {i}: root wrote {target:?} into /var/tmp/target through her link"
        );
        assert!(
            std::fs::symlink_metadata(sb.path("/etc/native")).is_err(),
            "login {i}: root made /etc/native through her link"
        );
    }
    sb.write_file("/tmp/race-end", "");
    let out = swapper.wait(BOUND);
    out.success();
    let swaps: u64 = value_of(&out, "swaps")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the swapper did not report\n{out}"));
    assert!(swaps > 30, "the swapper hardly ran\n{out}");
    assert_eq!(list_dir(&sb.path("/var/tmp/target")), Vec::<String>::new());
    // Left alone, her runtime directory gets the link: the feature raced above is on.
    // (What the race left is cleared first; a login makes the links before its command.)
    let out = wsl.session_with(MALLORY, "rm -rf $XDG_RUNTIME_DIR/pulse", &[], BOUND);
    assert!(out.code().is_some(), "{out}");
    let out = wsl.session_with(
        MALLORY,
        &format!("{WHERE}; echo native=$(readlink $XDG_RUNTIME_DIR/pulse/native)"),
        &[],
        BOUND,
    );
    assert_inside(&out, MALLORY);
    assert_eq!(
        value_of(&out, "native").as_deref(),
        Some("/mnt/wslg/PulseServer"),
        "{out}"
    );
    let etc_after = list_dir(&sb.path("/etc"));
    let added: Vec<&String> = etc_after
        .iter()
        .filter(|n| !etc_before.contains(n))
        .collect();
    assert!(added.is_empty(), "new in /etc: {added:?}");
    assert_clean_end(&wsl);
}

/// `enable` run from a copy of the binary placed by hand, without the setuid bit: it
/// either makes it root's with mode 4755 (and sessions land in the container), or
/// refuses with the fix and leaves /etc/passwd as it was.
#[test]
fn enable_from_a_hand_placed_non_setuid_binary() {
    let Some(wsl) = start("enable_from_a_hand_placed_non_setuid_binary", false) else {
        return;
    };
    let sb = &wsl.sandbox;
    sb.run(&["mkdir", "-p", "/opt/distrod/bin"]).success();
    sb.run(&["cp", STAGED_DISTROD, INSTALLED]).success();
    sb.run(&["chmod", "0755", INSTALLED]).success();
    let passwd0 = sb.read_file("/etc/passwd").unwrap();
    let out = sb.run_with_timeout(&[INSTALLED, "enable"], BOUND);
    assert_no_panic(&out);
    let meta = std::fs::metadata(sb.path(INSTALLED)).expect("the installed binary");
    eprintln!("{out}");
    if out.code() == Some(0) {
        assert_eq!(meta.uid(), 0, "owner of {INSTALLED}\n{out}");
        assert_eq!(
            meta.permissions().mode() & 0o7777,
            0o4755,
            "mode of {INSTALLED} after a successful enable\n{out}"
        );
        assert_eq!(shell_field(sb, "distrod"), ALIAS_BASH);
        let session = wsl.session_with("distrod", WHERE, &[], BOUND);
        assert_inside(&session, "distrod");
    } else {
        assert!(out.code().is_some(), "enable hung\n{out}");
        let error = out.error_text();
        assert!(
            error.contains("distrod install") || error.contains("4755"),
            "the error does not name the fix\n{out}"
        );
        assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    }
    assert_clean_end(&wsl);
}

/// An account whose shell is an alias of a shell that is not installed (and not in
/// /etc/shells) is left alone by `enable`: no /etc/shells line, no alias, reported.
#[test]
fn enable_leaves_an_alias_of_a_missing_shell_alone() {
    let Some(wsl) = start("enable_leaves_an_alias_of_a_missing_shell_alone", false) else {
        return;
    };
    let sb = &wsl.sandbox;
    const FISH_ALIAS: &str = "/opt/distrod/alias/usr/bin/fish";
    assert!(!sb.path("/usr/bin/fish").exists(), "fish is installed");
    sb.run(&["usermod", "--shell", FISH_ALIAS, MALLORY])
        .success();
    let out = root_enable(sb);
    let reported: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{MALLORY}: left alone: ")))
        .collect();
    assert_eq!(reported.len(), 1, "mallory is reported left alone\n{out}");
    assert_eq!(shell_field(sb, MALLORY), FISH_ALIAS, "her shell field");
    let shells = sb.read_file("/etc/shells").unwrap();
    assert!(
        !shells.lines().any(|l| l.trim() == FISH_ALIAS),
        "enable added {FISH_ALIAS} to /etc/shells:\n{shells}"
    );
    assert!(
        std::fs::symlink_metadata(sb.path(FISH_ALIAS)).is_err(),
        "enable made the alias {FISH_ALIAS}"
    );
    assert_eq!(shell_field(sb, "distrod"), ALIAS_BASH, "others are hooked");
    assert_clean_end(&wsl);
}

/// A session that says it runs (`/tmp/<tag>-up-<user>`), then waits until
/// `/tmp/<tag>-end` exists.
fn until_told(tag: &str) -> String {
    format!(
        ": > /tmp/{tag}-up-$(id -un); while [ ! -e /tmp/{tag}-end ]; do sleep 0.1; done; {WHERE}"
    )
}

/// mallory tries to stop, kill and read each of root's distrod processes running now
/// (`phase` names the moment): every attempt must fail, and none of them is stopped
/// afterwards.
fn assault_roots_processes(sb: &Sandbox, phase: &str, at_least: usize) {
    assert!(
        eventually(BOUND, || root_distrod_processes(sb).len() >= at_least),
        "{phase}: expected at least {at_least} of root's distrod processes\n{}",
        sb.describe_processes()
    );
    let targets = root_distrod_processes(sb);
    let pids: Vec<String> = targets
        .iter()
        .filter_map(|&p| pid_in_namespace(p))
        .map(|p| p.to_string())
        .collect();
    let script = format!(
        r#"for p in {}; do
               kill -STOP $p 2>/dev/null && echo "STOP $p: allowed"
               kill -KILL $p 2>/dev/null && echo "KILL $p: allowed"
               (: < /proc/$p/environ) 2>/dev/null && echo "environ $p: readable"
               (: < /proc/$p/mem) 2>/dev/null && echo "mem $p: opened"
               ls /proc/$p/fd >/dev/null 2>&1 && echo "fd $p: listed"
               readlink /proc/$p/cwd >/dev/null 2>&1 && echo "cwd $p: readable"
               echo "tried $p"
           done"#,
        pids.join(" ")
    );
    let out = as_mallory(sb, &script, Duration::ZERO);
    out.success();
    let tried = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("tried "))
        .count();
    assert_eq!(tried, pids.len(), "{phase}\n{out}");
    let got: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with("tried "))
        .collect();
    assert!(
        got.is_empty(),
        "{phase}: mallory got at root's processes:\n{}\n{out}\n{}",
        got.join("\n"),
        sb.describe_processes()
    );
    // The kernel's answers above are the proof; this only shows nothing was stopped (a
    // process may have ended by itself meanwhile: units started at boot come and go).
    for &pid in targets.iter().filter(|&&p| is_distrod(p)) {
        assert!(
            !matches!(stat_field(pid, 3).as_str(), "T" | "t"),
            "{phase}: root's process {pid} is stopped\n{}",
            sb.describe_processes()
        );
    }
    eprintln!("{phase}: {} of root's processes held", targets.len());
}

/// During logins of both users, while the container boots and once they run in it,
/// mallory can neither stop nor kill root's distrod processes, nor read their
/// environment, memory, descriptors or directory.
#[test]
fn roots_processes_are_out_of_her_reach() {
    let Some(wsl) = start("roots_processes_are_out_of_her_reach", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    const BOOT_SECS: u32 = 5;
    slow_launch(sb, BOOT_SECS);
    let theirs = wsl.spawn_session("distrod", &until_told("reach"));
    let hers = wsl.spawn_session(MALLORY, &until_told("reach"));
    // While the boot runs: both logins wait for it, one of them runs the launch.
    assert!(
        eventually(BOUND, || slow_unit_runs(sb, BOOT_SECS)),
        "the boot did not start\n{}",
        sb.describe_processes()
    );
    assault_roots_processes(sb, "during the boot", 3);
    assert!(
        slow_unit_runs(sb, BOOT_SECS),
        "the boot ended during the attempts: lengthen it"
    );
    // Once both sessions run in the container: a waiter outside and a reaper inside each.
    assert!(
        eventually(BOUND, || {
            ["distrod", MALLORY]
                .iter()
                .all(|u| sb.read_file(&format!("/tmp/reach-up-{u}")).is_some())
        }),
        "the sessions did not start"
    );
    assault_roots_processes(sb, "during the sessions", 4);
    sb.write_file("/tmp/reach-end", "");
    assert_inside(&theirs.wait(), "distrod");
    assert_inside(&hers.wait(), MALLORY);
    assert_clean_end(&wsl);
}

/// A symlink to the setuid binary in mallory's home, a hard link to it (where the kernel
/// lets her make one), and a symlink at a path that only looks like an alias all run
/// unprivileged: root's commands say they need root, and no container starts.
#[test]
fn links_to_the_binary_run_unprivileged() {
    let Some(wsl) = start("links_to_the_binary_run_unprivileged", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    let script = format!(
        r#"cd ~
           ln -s {INSTALLED} d
           ./d launch; echo "symlink-launch=$?"
           ./d exec -- id; echo "symlink-exec=$?"
           if ln {INSTALLED} h 2>hardlink.err; then
               ./h launch; echo "hardlink-launch=$?"
               ./h exec -- id; echo "hardlink-exec=$?"
           else
               echo "hardlink=refused"; cat hardlink.err >&2
           fi
           mkdir -p x/opt/distrod/alias/bin
           ln -s {INSTALLED} x/opt/distrod/alias/bin/bash
           x/opt/distrod/alias/bin/bash -l -c '{WHERE}'; echo "lookalike=$?""#
    );
    let out = as_mallory(sb, &script, Duration::ZERO);
    assert_no_panic(&out);
    for key in ["symlink-launch", "symlink-exec"] {
        assert_ne!(value_of(&out, key).as_deref(), Some("0"), "{key}\n{out}");
    }
    let must_be_root = out.stderr.matches("must run as root").count();
    eprintln!("{out}");
    if value_of(&out, "hardlink").as_deref() == Some("refused") {
        let protected = sb
            .read_file("/proc/sys/fs/protected_hardlinks")
            .unwrap_or_default();
        assert_eq!(
            protected.trim(),
            "1",
            "a refused hard link without fs.protected_hardlinks\n{out}"
        );
        assert!(
            out.stderr.contains("Operation not permitted"),
            "the kernel's refusal\n{out}"
        );
        assert_eq!(
            must_be_root, 2,
            "each root command says it needs root\n{out}"
        );
    } else {
        for key in ["hardlink-launch", "hardlink-exec"] {
            assert_ne!(value_of(&out, key).as_deref(), Some("0"), "{key}\n{out}");
        }
        assert_eq!(
            must_be_root, 4,
            "each root command says it needs root\n{out}"
        );
    }
    assert_ne!(
        value_of(&out, "pid1").as_deref(),
        Some("systemd"),
        "a look-alike alias entered the container\n{out}"
    );
    assert!(
        sb.container_systemd().is_none(),
        "a container was started through her links\n{}",
        sb.describe_processes()
    );
    assert_clean_end(&wsl);
}

/// `WSL_INTEROP` pointed at a FIFO of hers, at /dev/zero, and at the `distrod` user's
/// session socket: each login of hers starts within [`BOUND`] in the container, and no
/// request of hers reaches the other user's session.
#[test]
fn a_wsl_interop_pointing_elsewhere_neither_hangs_nor_borrows() {
    let Some(wsl) = start(
        "a_wsl_interop_pointing_elsewhere_neither_hangs_nor_borrows",
        true,
    ) else {
        return;
    };
    let sb = &wsl.sandbox;
    let theirs = wsl.spawn_session("distrod", &until_told("interop"));
    as_mallory(sb, "mkfifo ~/fifo", Duration::ZERO).success();
    let others_socket = theirs.socket();
    let targets = ["/home/mallory/fifo", "/dev/zero", others_socket.as_str()];
    for (i, target) in targets.iter().enumerate() {
        let env = format!("WSL_INTEROP={target}");
        let cmd = format!("{WHERE}; {FAKEWSL} client probe-{i}; echo client=$?");
        let t0 = Instant::now();
        let out = wsl.session_with(MALLORY, &cmd, &[env.as_str()], BOUND);
        assert_inside(&out, MALLORY);
        eprintln!(
            "WSL_INTEROP={target}: {:?}, client={:?}",
            t0.elapsed(),
            value_of(&out, "client")
        );
        let borrowed: Vec<_> = wsl
            .interop_log()
            .into_iter()
            .filter(|e| e.args == format!("probe-{i}") && e.relay == theirs.relay_pid())
            .collect();
        assert!(
            borrowed.is_empty(),
            "mallory's request reached distrod's session through {target}: {borrowed:?}\n{out}"
        );
    }
    sb.write_file("/tmp/interop-end", "");
    assert_inside(&theirs.wait(), "distrod");
    assert_clean_end(&wsl);
}

/// A working directory she may not read (mode 000), one that was deleted, and 10,000
/// environment variables: each login still lands in the container.
#[test]
fn odd_directories_and_a_huge_environment_still_log_in() {
    let Some(wsl) = start("odd_directories_and_a_huge_environment_still_log_in", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    let login = format!("exec {ALIAS_BASH} -l -c '{WHERE}; echo cwd=$(pwd)'");
    let cases = [
        (
            "an unreadable directory",
            format!("mkdir ~/locked && cd ~/locked && chmod 000 ~/locked || exit 90; {login}"),
        ),
        (
            "a deleted directory",
            format!("mkdir ~/gone && cd ~/gone && rmdir ~/gone || exit 90; {login}"),
        ),
        (
            "10,000 environment variables",
            format!(
                "for i in $(seq 10000); do export HOSTILE_VAR_$i=value-$i; done; \
                 [ $(env | grep -c ^HOSTILE_VAR_) = 10000 ] || exit 90; {login}"
            ),
        ),
    ];
    for (what, script) in &cases {
        let out = as_mallory(sb, script, Duration::ZERO);
        eprintln!("{what}: cwd={:?}", value_of(&out, "cwd"));
        assert!(out.code() != Some(90), "{what}: not set up\n{out}");
        assert_inside(&out, MALLORY);
    }
    assert_clean_end(&wsl);
}

/// 20 logins at once, from two users, with the container stopped: one container, every
/// login in it and successful, and nothing of theirs left in the container's /run
/// afterwards.
#[test]
fn twenty_concurrent_logins_share_one_container_and_leave_nothing() {
    let Some(wsl) = start(
        "twenty_concurrent_logins_share_one_container_and_leave_nothing",
        true,
    ) else {
        return;
    };
    let sb = &wsl.sandbox;
    let cmd = format!("{WHERE}; echo pidns=$(readlink /proc/self/ns/pid)");
    let logins: Vec<(&str, Running)> = (0..20)
        .map(|i| {
            let user = if i % 2 == 0 { "distrod" } else { MALLORY };
            let login = Running::spawn(
                wsl.session_command(user, &cmd, &[]),
                &format!("login {i} of {user}"),
            );
            (user, login)
        })
        .collect();
    let mut namespaces = Vec::new();
    for (user, login) in logins {
        let out = login.wait(BOUND * 2);
        assert_inside(&out, user);
        namespaces.push(value_of(&out, "pidns").unwrap());
    }
    namespaces.sort();
    namespaces.dedup();
    assert_eq!(
        namespaces.len(),
        1,
        "logins in different containers: {namespaces:?}"
    );
    let systemd = sb.container_systemd().expect("the container runs");
    // Entries of a directory in the container's /run (the session list's lock file and directory aside).
    let run = |dir: &str| {
        let mut names = list_dir(&PathBuf::from(format!("/proc/{systemd}/root{dir}")));
        names.retain(|n| n != ".lock" && n != ".sessions");
        names
    };
    assert!(
        eventually(Duration::from_secs(5), || run("/run/WSL/.sessions")
            .is_empty()
            && run("/run/WSL").is_empty()),
        "left in the container after every login ended: /run/WSL/.sessions {:?}, \
         /run/WSL {:?}",
        run("/run/WSL/.sessions"),
        run("/run/WSL")
    );
    assert_clean_end(&wsl);
}

/// What mallory tries in her session's directory under /run/WSL/.sessions, and her
/// session's interop.
const SESSION_DIR_PROBE: &str = r#"d=$(dirname "$(readlink "$WSL_INTEROP")")
echo "dir=$d owner=$(stat -c %u "$d")"
touch "$d/file" 2>/dev/null; echo "touch=$?"
mkdir "$d/dir" 2>/dev/null; echo "mkdir=$?"
ln -s /etc "$d/link" 2>/dev/null; echo "ln=$?"
ls "$d" >/dev/null 2>&1; echo "ls=$?"
/opt/fakewsl/fakewsl client from-mallory; echo "client=$?""#;

/// mallory cannot create anything in her session's directory under
/// /run/WSL/.sessions (root's, which she may only pass through), and her session's
/// interop still reaches her own relay.
#[test]
fn her_session_directory_is_roots_and_interop_still_works() {
    let Some(wsl) = start(
        "her_session_directory_is_roots_and_interop_still_works",
        true,
    ) else {
        return;
    };
    let session = wsl.spawn_session(MALLORY, SESSION_DIR_PROBE);
    let relay = session.relay_pid();
    let out = session.wait();
    out.success();
    assert_no_panic(&out);
    let dir = value_of(&out, "dir").unwrap_or_default();
    assert!(
        dir.starts_with("/run/WSL/.sessions/"),
        "WSL_INTEROP does not lead into a session directory\n{out}"
    );
    assert_eq!(value_of(&out, "owner").as_deref(), Some("0"), "{out}");
    for key in ["touch", "mkdir", "ln", "ls"] {
        assert_ne!(
            value_of(&out, key).as_deref(),
            Some("0"),
            "{key} in her session directory succeeded\n{out}"
        );
    }
    assert_eq!(value_of(&out, "client").as_deref(), Some("0"), "{out}");
    let entry = wsl
        .interop_log()
        .into_iter()
        .rev()
        .find(|e| e.args == "from-mallory")
        .unwrap_or_else(|| panic!("no interop request from mallory\n{out}"));
    assert_eq!((entry.relay, entry.uid), (relay, 1001), "{out}");
    assert_clean_end(&wsl);
}
