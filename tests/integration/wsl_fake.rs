//! The WSL stand-in itself (support/fakewsl.rs and the `fakewsl` program), checked against
//! what WSL does, in a WSL-like sandbox *without* distrod's session hook (its /etc/passwd is
//! the rootfs's own): sessions run the login shell with WSL's environment and exit status,
//! and interop finds the session's socket through `WSL_INTEROP`, the parent walk (through
//! `sudo`, which clears the environment) and `/run/WSL/1_interop`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Output;
use crate::support::fakewsl::{DistrodAt, FAKEWSL, FakeWsl, LogEntry};
use crate::support::sandbox::{STAGED_DISTROD, prerequisites};

fn start(test: &str) -> Option<FakeWsl> {
    let tree = prerequisites(test)?;
    Some(FakeWsl::start(&tree, DistrodAt::Installed))
}

/// The value after `prefix` on the first stdout line that starts with it.
fn line_value<'a>(out: &'a Output, prefix: &str) -> &'a str {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting {prefix:?} on stdout\n{out}"))
}

/// The relay's pid as the session's shell sees it (`echo relay=$PPID`).
fn relay_of(out: &Output) -> i32 {
    line_value(out, "relay=")
        .parse()
        .unwrap_or_else(|_| panic!("relay= is not a pid\n{out}"))
}

fn assert_socket_gone(wsl: &FakeWsl, relay: i32) {
    let socket = format!("/run/WSL/{relay}_interop");
    assert!(
        !wsl.sandbox.path(&socket).exists(),
        "{socket} is left after its session ended"
    );
}

#[test]
fn a_session_is_the_login_shell_with_wsls_environment() {
    let Some(wsl) = start("a_session_is_the_login_shell_with_wsls_environment") else {
        return;
    };
    // The shell's environment as exec'd (before any profile script changed it).
    let out = wsl.session(
        "distrod",
        r#"echo relay=$PPID; echo "shell=$0 $WSL_DISTRO_NAME $WSL_INTEROP"; echo "ids=$(id -u) $(id -G)"; echo "cwd=$(pwd)"; echo ENV:; tr '\0' '\n' < /proc/$$/environ | sort"#,
    );
    out.success();
    let relay = relay_of(&out);
    assert_eq!(
        line_value(&out, "shell="),
        format!("-bash FakeWSL /run/WSL/{relay}_interop"),
        "{out}"
    );
    assert_eq!(line_value(&out, "ids="), "1000 1000 27", "{out}");
    assert_eq!(line_value(&out, "cwd="), "/home/distrod", "{out}");
    let env: Vec<&str> = out
        .stdout
        .lines()
        .skip_while(|l| *l != "ENV:")
        .skip(1)
        .collect();
    let interop = format!("WSL_INTEROP=/run/WSL/{relay}_interop");
    let host = format!("NAME={}", wsl.sandbox.name());
    let expected = [
        "DISPLAY=:0",
        "HOME=/home/distrod",
        "HOSTTYPE=x86_64",
        "LOGNAME=distrod",
        host.as_str(),
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/mnt/c/Windows/System32:/mnt/c/Windows",
        "PULSE_SERVER=unix:/mnt/wslg/PulseServer",
        "SHELL=/bin/bash",
        "TERM=xterm-256color",
        "USER=distrod",
        "WAYLAND_DISPLAY=wayland-0",
        "WSLENV=WT_SESSION:WT_PROFILE_ID",
        "WSL_DISTRO_NAME=FakeWSL",
        interop.as_str(),
        "XDG_RUNTIME_DIR=/mnt/wslg/runtime-dir",
    ];
    for want in expected {
        assert!(
            env.contains(&want),
            "{want} missing from the environment\n{out}"
        );
    }
    // Nothing of the caller's environment (the sandbox runs commands with LANG set): the
    // two Windows Terminal ids are all there is besides.
    assert_eq!(env.len(), expected.len() + 2, "unexpected variables\n{out}");
    for var in ["WT_SESSION=", "WT_PROFILE_ID="] {
        let id = line_value(&out, var);
        let groups: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(
            groups,
            [8, 4, 4, 4, 12],
            "{var}{id} is not uuid-like\n{out}"
        );
    }
    assert_socket_gone(&wsl, relay);

    // Without a command: an interactive login shell (here reading stdin).
    let out = wsl.login("distrod", "echo \"login=$0 $USER\"\nexit 3\n");
    assert_eq!(out.code(), Some(3), "{out}");
    assert_eq!(line_value(&out, "login="), "-bash distrod", "{out}");
}

#[test]
fn a_session_exits_with_its_shells_status() {
    let Some(wsl) = start("a_session_exits_with_its_shells_status") else {
        return;
    };
    let out = wsl.session("distrod", "exit 7");
    assert_eq!(out.code(), Some(7), "{out}");
    let out = wsl.session("root", "true");
    assert_eq!(out.code(), Some(0), "{out}");
    // Killed by a signal: 128 + the signal, as a shell reports it.
    let out = wsl.session("distrod", "kill -KILL $$");
    assert_eq!(out.code(), Some(137), "{out}");
    // An unknown user is the relay's own error.
    let out = wsl.session("nosuchuser", "true");
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("nosuchuser"), "{out}");
}

#[test]
fn relay_options_set_the_directory_and_the_environment() {
    let Some(wsl) = start("relay_options_set_the_directory_and_the_environment") else {
        return;
    };
    let out = wsl.sandbox.run(&[
        FAKEWSL,
        "relay",
        "--user",
        "distrod",
        "--cwd",
        "/tmp",
        "--env",
        "DISPLAY=",
        "--env",
        "EXTRA=a=b",
        "--env",
        "WSL_DISTRO_NAME=Other",
        "--",
        "echo",
        r#""cwd=$(pwd) display=${DISPLAY-unset} extra=$EXTRA name=$WSL_DISTRO_NAME""#,
    ]);
    out.success();
    assert_eq!(
        line_value(&out, "cwd="),
        "/tmp display=unset extra=a=b name=Other",
        "{out}"
    );
    // A second regular user has its own home and uid.
    wsl.useradd("alice");
    let out = wsl.session("alice", r#"echo "who=$(id -un) $(id -u) $HOME $(pwd)""#);
    out.success();
    assert_eq!(
        line_value(&out, "who="),
        "alice 1001 /home/alice /home/alice",
        "{out}"
    );
}

#[test]
fn interop_through_wsl_interop_and_the_parent_walk() {
    let Some(wsl) = start("interop_through_wsl_interop_and_the_parent_walk") else {
        return;
    };
    let out = wsl.session(
        "distrod",
        &format!(
            "echo relay=$PPID; {FAKEWSL} client hello world; \
             env -u WSL_INTEROP {FAKEWSL} client walked"
        ),
    );
    out.success();
    let relay = relay_of(&out);
    let ok = format!("ok relay={relay}");
    let via = format!("via /run/WSL/{relay}_interop");
    let answers: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("ok ") || l.starts_with("via "))
        .collect();
    assert_eq!(answers, [&ok, &via, &ok, &via], "{out}");
    let log = wsl.interop_log();
    assert_eq!(log.len(), 2, "{log:?}\n{out}");
    let expect = |args: &str, entry: &LogEntry| {
        assert_eq!(
            (entry.relay, entry.uid, entry.args.as_str()),
            (relay, 1000, args),
            "{log:?}"
        );
        assert!(entry.pid > 1 && entry.pid != relay, "{log:?}");
    };
    expect("hello world", &log[0]);
    expect("walked", &log[1]);
    assert_ne!(log[0].pid, log[1].pid, "{log:?}");
    assert_socket_gone(&wsl, relay);
    let meta = std::fs::metadata(wsl.sandbox.path("/run/fakewsl/interop.log")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
}

#[test]
fn interop_survives_sudo_through_the_parent_walk() {
    let Some(wsl) = start("interop_survives_sudo_through_the_parent_walk") else {
        return;
    };
    let out = wsl.session(
        "distrod",
        &format!(
            "echo relay=$PPID; echo \"root-env=$(sudo -i printenv WSL_INTEROP || echo unset)\"; \
             sudo -i {FAKEWSL} client x"
        ),
    );
    out.success();
    let relay = relay_of(&out);
    // sudo cleared WSL_INTEROP: only the walk can have found the socket.
    assert_eq!(line_value(&out, "root-env="), "unset", "{out}");
    assert_eq!(
        line_value(&out, "via "),
        format!("/run/WSL/{relay}_interop"),
        "{out}"
    );
    let log = wsl.interop_log();
    assert_eq!(log.len(), 1, "{log:?}\n{out}");
    assert_eq!((log[0].relay, log[0].uid), (relay, 0), "{log:?}");
    assert_eq!(log[0].args, "x");
}

#[test]
fn sockets_belong_to_their_sessions_user() {
    let Some(wsl) = start("sockets_belong_to_their_sessions_user") else {
        return;
    };
    let root = wsl.spawn_session("root", "sleep 30");
    let mut user = wsl.spawn_session("distrod", "sleep 30");
    for (socket, uid) in [(root.socket(), 0), (user.socket(), 1000)] {
        let meta = std::fs::metadata(wsl.sandbox.path(&socket)).unwrap();
        assert_eq!(meta.uid(), uid, "owner of {socket}");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600, "{socket}");
    }
    // A user cannot connect to root's socket.
    let out = wsl.session(
        "distrod",
        &format!("WSL_INTEROP={} {FAKEWSL} client denied", root.socket()),
    );
    assert_eq!(out.code(), Some(3), "{out}");
    assert!(out.stderr.contains("EACCES"), "{out}");
    // Root can use any session's socket (an unauthenticated socket, as in WSL).
    let out = wsl.session(
        "root",
        &format!("WSL_INTEROP={} {FAKEWSL} client borrowed", user.socket()),
    );
    out.success();
    let log = wsl.interop_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].relay, log[0].uid, log[0].args.as_str()),
        (user.relay_pid(), 0, "borrowed")
    );
    // Killing one session kills its processes and leaves the other running.
    let sleeps = || {
        wsl.sandbox
            .other_processes()
            .into_iter()
            .filter(|p| {
                // A killed process stays a zombie until the sandbox's init reaps it.
                let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
                stat.contains("(sleep) ") && !stat.contains("(sleep) Z")
            })
            .count()
    };
    assert_eq!(sleeps(), 2, "{}", wsl.sandbox.describe_processes());
    let killed = root.kill();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sleeps() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(sleeps(), 1, "{}", wsl.sandbox.describe_processes());
    assert_eq!(killed.code(), None, "killed by a signal\n{killed}");
    assert!(user.is_running(), "the other session died with the first");
}

#[test]
fn without_a_session_only_pid_1s_socket_is_found() {
    let Some(wsl) = start("without_a_session_only_pid_1s_socket_is_found") else {
        return;
    };
    // Run from outside any session: nothing to find.
    let out = wsl.sandbox.run(&[FAKEWSL, "client", "lost"]);
    assert_eq!(out.code(), Some(2), "{out}");
    let out = wsl.sandbox.run(&[
        "env",
        "WSL_INTEROP=/run/WSL/999_interop",
        FAKEWSL,
        "client",
        "lost",
    ]);
    assert_eq!(out.code(), Some(2), "{out}");

    // What WSL's native systemd does: /run/WSL/1_interop links to a live session's socket,
    // and a process whose parent is PID 1 (a service) finds it.
    let session = wsl.spawn_session("root", "sleep 30");
    wsl.sandbox
        .run(&["ln", "-s", &session.socket(), "/run/WSL/1_interop"])
        .success();
    wsl.sandbox
        .run(&[
            "sh",
            "-c",
            &format!("sh -c 'sleep 0.5; exec {FAKEWSL} client service' >/run/svc.out 2>&1 &"),
        ])
        .success();
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = wsl.sandbox.read_file("/run/svc.out").unwrap_or_default();
        if out.contains("via ") || Instant::now() >= deadline {
            break out;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(out.contains("via /run/WSL/1_interop"), "{out:?}");
    let log = wsl.interop_log();
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        (log[0].relay, log[0].args.as_str()),
        (session.relay_pid(), "service")
    );
}

/// The mountinfo line of mount point `point` (the last one: the topmost mount).
fn mount_line<'a>(mountinfo: &'a str, point: &str) -> &'a str {
    mountinfo
        .lines()
        .rfind(|l| l.split_whitespace().nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} is not a mount point:\n{mountinfo}"))
}

fn is_read_only(mount_line: &str) -> bool {
    mount_line
        .split_whitespace()
        .nth(5)
        .is_some_and(|opts| opts.split(',').any(|o| o == "ro"))
}

#[test]
fn the_sandbox_looks_like_wsl() {
    let Some(wsl) = start("the_sandbox_looks_like_wsl") else {
        return;
    };
    let mountinfo = wsl.sandbox.mountinfo();
    for point in ["/proc", "/mnt/wsl"] {
        let line = mount_line(&mountinfo, point);
        assert!(line.contains(" shared:"), "{point} is not shared: {line}");
    }
    assert!(mount_line(&mountinfo, "/mnt/wsl").contains(" - tmpfs "));
    assert!(is_read_only(mount_line(&mountinfo, FAKEWSL)));
    let mode = |p: &str| {
        let meta = std::fs::metadata(wsl.sandbox.path(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        (
            meta.permissions().mode() & 0o7777,
            meta.uid(),
            meta.is_dir(),
        )
    };
    assert_eq!(mode("/mnt/wslg/.X11-unix"), (0o1777, 0, true));
    assert!(!mode("/mnt/wslg/.X11-unix/X0").2);
    assert_eq!(mode("/mnt/wslg/runtime-dir"), (0o700, 1000, true));
    assert_eq!(mode("/mnt/wslg/runtime-dir/wayland-0").1, 1000);
    assert!(!mode("/mnt/wslg/PulseServer").2);
    assert!(mode("/mnt/c/Windows/System32").2);
    assert!(mode("/opt/distrod/bin/distrod").0 & 0o111 != 0);

    // Reading, writing and running as a user through the sandbox.
    wsl.sandbox.write_file("/etc/distrod-test/note", "hi\n");
    assert_eq!(
        wsl.sandbox.read_file("/etc/distrod-test/note").unwrap(),
        "hi\n"
    );
    assert_eq!(wsl.sandbox.read_file("/etc/distrod-test/absent"), None);
    let out = wsl.sandbox.run_as(
        "distrod",
        &[
            "sh",
            "-c",
            "echo $(id -u) $(id -G) $HOME $(cat /etc/distrod-test/note)",
        ],
    );
    out.success();
    assert_eq!(out.stdout.trim(), "1000 1000 27 /home/distrod hi", "{out}");
}

#[test]
fn a_staged_distrod_is_not_installed() {
    let Some(tree) = prerequisites("a_staged_distrod_is_not_installed") else {
        return;
    };
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    assert!(
        !wsl.sandbox.path("/opt/distrod").exists(),
        "/opt/distrod exists before installation"
    );
    let out = wsl.sandbox.run(&["sh", "-c", "command -v distrod"]);
    out.success();
    assert_eq!(out.stdout.trim(), STAGED_DISTROD, "{out}");
    wsl.sandbox.run(&["distrod", "--version"]).success();
    assert!(is_read_only(mount_line(
        &wsl.sandbox.mountinfo(),
        STAGED_DISTROD
    )));
    // Sessions work there too.
    wsl.session("distrod", &format!("{FAKEWSL} client staged"))
        .success();
    assert_eq!(wsl.interop_log().len(), 1);
}
