//! The clean poweroff before WSL's idle stop (src/linux/idle.rs), in the WSL stand-in:
//! sessions are fakewsl relays (comm `Relay`, as WSL's), and the Windows user's
//! `.wslconfig` sets a short `instanceIdleTimeout` so the tests wait less than WSL's 15 s.
//! WSL's idle stop itself (SIGKILL to the whole distro) is the sandbox's end; what must
//! have happened before it is checked: the container powered off cleanly, its services'
//! stop commands run, within the window less the margin.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::fakewsl::{DistrodAt, FakeWsl};
use crate::support::sandbox::{STAGED_DISTROD, Sandbox, prerequisites};

const INSTALLED: &str = "/opt/distrod/bin/distrod";

/// `instanceIdleTimeout` in the tests' `.wslconfig`, and distrod's default margin.
const WINDOW: Duration = Duration::from_secs(8);
const MARGIN: Duration = Duration::from_secs(2);

/// The file the stop command of `record-stop.service` writes: what a database's clean
/// shutdown stands for.
const RECORD: &str = "/var/lib/stop-record";
/// Written when that stop command begins.
const STOPPING: &str = "/var/lib/stopping";

/// A distro with distrod enabled, a Windows user `alice` whose `.wslconfig` sets the
/// idle window, and a service whose stop command takes `stop_secs` and records its run.
fn start(test: &str, stop_secs: u32) -> Option<FakeWsl> {
    let tree: PathBuf = prerequisites(test)?;
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    let sb = &wsl.sandbox;
    sb.write_file(
        "/mnt/c/Users/alice/.wslconfig",
        format!("[general]\ninstanceIdleTimeout={}\n", WINDOW.as_millis()),
    );
    sb.write_file(
        "/etc/systemd/system/record-stop.service",
        format!(
            "[Unit]\nDescription=records its stop\n[Service]\nType=oneshot\n\
             RemainAfterExit=yes\nExecStart=/bin/true\n\
             ExecStop=/bin/sh -c 'touch {STOPPING}; sleep {stop_secs}; date +%s > {RECORD}'\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    );
    sb.run(&[
        "sh",
        "-c",
        "mkdir -p /etc/systemd/system/multi-user.target.wants && ln -s \
         /etc/systemd/system/record-stop.service /etc/systemd/system/multi-user.target.wants/",
    ])
    .success();
    sb.run(&[STAGED_DISTROD, "enable"]).success();
    Some(wsl)
}

/// Waits up to `timeout` for the container to be gone and its stop over (systemd's pid
/// namespace empties before its PID 1 has exited, and the record goes last); how long that
/// took.
fn gone_within(sb: &Sandbox, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if sb.container_systemd().is_none() && !sb.path("/run/distrod/state.json").exists() {
            return Some(t0.elapsed());
        }
        thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The last session closes: within the window less the margin the container has powered
/// off, its service's stop command run; `status` says so, and the next session boots
/// afresh and says so too.
#[test]
fn the_last_session_ending_powers_the_container_off_cleanly() {
    let Some(wsl) = start(
        "the_last_session_ending_powers_the_container_off_cleanly",
        0,
    ) else {
        return;
    };
    let sb = &wsl.sandbox;
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    let pid = sb.container_systemd().expect("a container");
    assert!(sb.read_file(RECORD).is_none());
    let took = gone_within(sb, WINDOW + Duration::from_secs(5)).unwrap_or_else(|| {
        panic!(
            "still running after the window\n{}",
            sb.describe_processes()
        )
    });
    eprintln!("the last session ended; the container was off after {took:?} (window {WINDOW:?})");
    assert!(took < WINDOW - MARGIN, "off after {took:?}");
    assert!(
        sb.read_file(RECORD).is_some(),
        "the stop command did not run"
    );
    let status = sb.run(&[INSTALLED, "status", "--json"]);
    assert_eq!(status.code(), Some(3), "{status}");
    let previous = status.json()["previous"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(previous.contains("idle poweroff"), "{status}");

    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_ne!(sb.container_systemd(), Some(pid));
    let status = sb.run(&[INSTALLED, "status"]);
    assert!(
        status
            .stdout
            .contains("the previous container: powered off cleanly"),
        "{status}"
    );
    sb.run(&[INSTALLED, "stop"]).success();
}

/// Nothing stops while a session stays open, nor while `launch --keep-alive` runs in a
/// `wsl -e` (never hooked); once the last of them ends, the container stops.
#[test]
fn open_sessions_and_keep_alive_keep_the_container() {
    let Some(wsl) = start("open_sessions_and_keep_alive_keep_the_container", 0) else {
        return;
    };
    let sb = &wsl.sandbox;
    let open = wsl.spawn_session(
        "distrod",
        "while [ ! -e /var/tmp/end-open ]; do sleep 0.1; done",
    );
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    let pid = sb.container_systemd().expect("a container");
    thread::sleep(WINDOW + Duration::from_secs(1));
    assert_eq!(
        sb.container_systemd(),
        Some(pid),
        "stopped under an open session"
    );

    let keep = wsl.spawn_exec("root", &[INSTALLED, "launch", "--keep-alive"]);
    // (A file in /var/tmp: /tmp may be a tmpfs of the container, trixie on.)
    // The open session ends as a closed terminal ends it (its relay exits; the container,
    // started from it, is its descendant until then, so it is not killed as a tree).
    sb.write_file("/var/tmp/end-open", "");
    let out = open.wait();
    assert_eq!(out.code(), Some(0), "{out}");
    thread::sleep(WINDOW + Duration::from_secs(1));
    if sb.container_systemd() != Some(pid) {
        panic!("stopped under `launch --keep-alive`:\n{}", keep.kill());
    }
    assert!(sb.read_file(RECORD).is_none());

    let kept = keep.kill();
    eprintln!("launch --keep-alive:\n{kept}");
    assert!(
        gone_within(sb, WINDOW).is_some(),
        "the container outlived its last session\n{}",
        sb.describe_processes()
    );
    assert!(
        sb.read_file(RECORD).is_some(),
        "the stop command did not run"
    );
}

/// A session opened before the poweroff begins keeps the container; one opened while it
/// runs waits for it and lands in a fresh container.
#[test]
fn sessions_arriving_before_and_during_the_poweroff() {
    let Some(wsl) = start("sessions_arriving_before_and_during_the_poweroff", 3) else {
        return;
    };
    let sb = &wsl.sandbox;
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    let pid = sb.container_systemd().expect("a container");
    // At once (the poweroff begins a second after the last session at the soonest).
    let again = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm); sleep 3");
    assert_eq!(again.field("pid1"), "systemd", "{again}");
    assert_eq!(
        sb.container_systemd(),
        Some(pid),
        "the container was stopped"
    );
    assert!(sb.read_file(STOPPING).is_none());

    // Now the poweroff begins; its stop command takes 3 s, and a session comes meanwhile.
    let deadline = Instant::now() + WINDOW;
    while sb.read_file(STOPPING).is_none() {
        assert!(Instant::now() < deadline, "no poweroff began");
        thread::sleep(Duration::from_millis(50));
    }
    let t0 = Instant::now();
    let during = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    let waited = t0.elapsed();
    assert_eq!(during.field("pid1"), "systemd", "{during}");
    assert!(
        sb.read_file(RECORD).is_some(),
        "it entered before the stop was over"
    );
    let fresh = sb.container_systemd().expect("a container");
    assert_ne!(fresh, pid, "not a fresh container");
    eprintln!("a session during the poweroff waited {waited:?} and booted afresh");
    sb.run(&[INSTALLED, "stop"]).success();
}
