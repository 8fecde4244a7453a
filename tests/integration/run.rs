//! One /run inside and outside the container (src/linux/mounts.rs): what `wsl -e` commands
//! (which never pass through distrod's hook: Docker Desktop's integration, an editor's
//! server, scripts run from Windows) make in the distro's /run, sessions and services in
//! the container see, and the other way round; `systemctl` from `wsl -e` reaches the
//! container's manager; after `distrod stop` nothing of systemd's is left in /run. And
//! /tmp: what sessions and `wsl -e` see of each other's files there, which depends on
//! whether the distro mounts a tmpfs on /tmp (Debian 13 and later, Fedora, Arch do).

use std::path::PathBuf;

use crate::support::Output;
use crate::support::fakewsl::{DistrodAt, FakeWsl};
use crate::support::sandbox::{STAGED_DISTROD, prerequisites};

const INSTALLED: &str = "/opt/distrod/bin/distrod";
const FAKEWSL: &str = crate::support::sandbox::FAKEWSL_INSIDE;

fn start(test: &str) -> Option<FakeWsl> {
    let tree: PathBuf = prerequisites(test)?;
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    wsl.sandbox.run(&[STAGED_DISTROD, "enable"]).success();
    Some(wsl)
}

/// `wsl -e sh -c SCRIPT` as root.
fn outside(wsl: &FakeWsl, script: &str) -> Output {
    wsl.exec("root", &["/bin/sh", "-c", script])
}

/// Both ways through /run, `systemctl` from outside, a Docker Desktop-like socket link made
/// outside and used in a session, a service's socket used from outside, and a clean /run
/// after the stop.
#[test]
fn one_run_inside_and_outside() {
    let Some(wsl) = start("one_run_inside_and_outside") else {
        return;
    };
    let sb = &wsl.sandbox;
    // A service of the container with a socket in /run, and one that makes a directory.
    sb.write_file(
        "/etc/systemd/system/svc-echo.service",
        format!(
            "[Service]\nUMask=0000\nExecStart={FAKEWSL} echo unix:/run/svc.sock\n\
             [Install]\nWantedBy=multi-user.target\n"
        ),
    );
    sb.write_file(
        "/etc/systemd/system/svc-dir.service",
        "[Service]\nType=oneshot\nRemainAfterExit=yes\n\
         ExecStart=/bin/mkdir -p /run/inside-svc\n\
         ExecStart=/bin/echo svc-dir-marker\n\
         [Install]\nWantedBy=multi-user.target\n",
    );
    sb.run(&[
        "sh",
        "-c",
        "mkdir -p /etc/systemd/system/multi-user.target.wants && \
         ln -s /etc/systemd/system/svc-echo.service /etc/systemd/system/svc-dir.service \
         /etc/systemd/system/multi-user.target.wants/",
    ])
    .success();
    let before = sb.run(&["ls", "-A", "/run"]).stdout;

    // Outside, before any session: Docker Desktop's integration (from `wsl -e`) serves a
    // socket under /mnt/wsl and links /var/run/docker.sock to it, and makes a directory.
    outside(
        &wsl,
        "mkdir -p /mnt/wsl/docker-desktop /run/outside-dir && \
         ln -sfn /mnt/wsl/docker-desktop/proxy.sock /var/run/docker.sock",
    )
    .success();
    // (Docker's socket is for the docker group; here for everyone.)
    let serve = format!("umask 0; exec {FAKEWSL} echo unix:/mnt/wsl/docker-desktop/proxy.sock");
    let _docker = wsl.spawn_exec("root", &["/bin/sh", "-c", &serve]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sb.path("/mnt/wsl/docker-desktop/proxy.sock").exists() {
        assert!(std::time::Instant::now() < deadline, "no proxy socket");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // A session in the container sees both, and reaches the socket through the link.
    let session = wsl.session(
        "distrod",
        &format!(
            "echo pid1=$(cat /proc/1/comm) dir=$(test -d /run/outside-dir && echo yes); \
             {FAKEWSL} send unix:/var/run/docker.sock 100000"
        ),
    );
    session.success();
    assert_eq!(session.field("pid1"), "systemd", "{session}");
    assert_eq!(session.field("dir"), "yes", "{session}");
    assert!(session.stdout.contains("ok 100000"), "{session}");

    // Outside, the container's services and manager are there too: systemctl and
    // systemd-run as root and as a user, loginctl, busctl and journalctl reach the
    // container's manager, logind and journal.
    let out = outside(
        &wsl,
        &format!(
            "echo dir=$(test -d /run/inside-svc && echo yes) \
             private=$(stat -c %a:%U /run/systemd/private) \
             root=$(systemctl is-system-running) \
             user=$(setpriv --reuid 1000 --regid 1000 --clear-groups systemctl \
             is-system-running) loginctl=$(loginctl list-sessions >/dev/null; echo $?) \
             busctl=$(busctl call org.freedesktop.systemd1 /org/freedesktop/systemd1 \
             org.freedesktop.DBus.Peer Ping; echo $?) \
             journal=$(journalctl -q -o cat -u svc-dir.service | grep -c svc-dir-marker) \
             pipe=$(echo relayed | systemd-run --quiet --pipe --wait /bin/cat); \
             {FAKEWSL} send unix:/run/svc.sock 100000"
        ),
    );
    out.success();
    assert_eq!(out.field("dir"), "yes", "{out}");
    // Outside, systemd's private socket is the relay's, for root only (README).
    assert_eq!(out.field("private"), "600:root", "{out}");
    for key in ["root", "user"] {
        assert!(
            ["running", "degraded"].contains(&out.field(key).as_str()),
            "systemctl outside does not reach the container's manager\n{out}"
        );
    }
    assert_eq!(out.field("loginctl"), "0", "{out}");
    assert_eq!(out.field("busctl"), "0", "{out}");
    assert_ne!(out.field("journal"), "0", "{out}");
    // systemd-run --pipe hands systemd its stdio as descriptors: they cross the relay.
    assert_eq!(out.field("pipe"), "relayed", "{out}");
    assert!(out.stdout.contains("ok 100000"), "{out}");
    // Inside, root's systemctl still has systemd's private socket (it works before the
    // bus does, in early boot and in package scripts).
    let session = wsl.session(
        "root",
        "echo private=$(test -S /run/systemd/private && echo socket) \
         covered=$(findmnt -n /run/systemd/private | wc -l) \
         state=$(systemctl is-system-running)",
    );
    assert_eq!(session.field("private"), "socket", "{session}");
    assert_eq!(session.field("covered"), "0", "{session}");
    assert!(
        ["running", "degraded"].contains(&session.field("state").as_str()),
        "{session}"
    );

    // systemd makes its private socket anew when it re-executes (an upgrade of systemd):
    // root's systemctl outside still reaches it once the keeper has seen that.
    wsl.session("root", "systemctl daemon-reexec").success();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let out = outside(&wsl, "systemctl is-system-running; true");
        if ["running", "degraded"].contains(&out.stdout.trim()) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "root's systemctl outside fails after a daemon-reexec\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // After the stop: none of systemd's state in /run, so outside nothing thinks it runs;
    // what outside tools made stays.
    sb.run(&[INSTALLED, "stop"]).success();
    let after = sb.run(&["ls", "-A", "/run"]).stdout;
    let new: Vec<&str> = after
        .split_whitespace()
        .filter(|n| !before.split_whitespace().any(|b| b == *n))
        .collect();
    for gone in [
        "systemd",
        "nologin",
        "dbus",
        "host",
        "utmp",
        "log",
        "tmpfiles.d",
    ] {
        assert!(
            !new.contains(&gone),
            "/run/{gone} left after the stop: {new:?}"
        );
    }
    assert!(new.contains(&"outside-dir"), "{new:?}");
    assert!(
        sb.path("/run/docker.sock").symlink_metadata().is_ok(),
        "the link outside was removed"
    );
    let out = outside(
        &wsl,
        "systemctl is-system-running; echo mounted=$(findmnt -n /run/systemd/private | wc -l)",
    );
    assert_eq!(out.stdout.lines().next(), Some("offline"), "{out}");
    assert_eq!(out.field("mounted"), "0", "{out}");
}

/// /tmp: with the distro's /tmp (Debian 12), a session and `wsl -e` see each other's files;
/// where the distro mounts a tmpfs on /tmp (`tmp.mount`: Debian 13 and later), the
/// container's /tmp is that tmpfs and they do not (README says so).
#[test]
fn what_sessions_and_wsl_e_see_of_each_others_tmp() {
    let Some(wsl) = start("what_sessions_and_wsl_e_see_of_each_others_tmp") else {
        return;
    };
    let session = wsl.session(
        "distrod",
        "echo from-session > /tmp/from-session; \
         echo tmpfs=$(findmnt -n -o FSTYPE /tmp | grep -c tmpfs)",
    );
    session.success();
    let own_tmpfs = session.field("tmpfs") != "0";
    let out = wsl.exec("distrod", &["/bin/cat", "/tmp/from-session"]);
    assert_eq!(out.code() == Some(0), !own_tmpfs, "{out}");
    wsl.exec(
        "distrod",
        &["/bin/sh", "-c", "echo from-outside > /tmp/from-outside"],
    )
    .success();
    let session = wsl.session(
        "distrod",
        "echo seen=$(cat /tmp/from-outside 2>/dev/null || echo none)",
    );
    let expected = if own_tmpfs { "none" } else { "from-outside" };
    assert_eq!(session.field("seen"), expected, "{session}");
    wsl.sandbox.run(&[INSTALLED, "stop"]).success();
}

/// `systemctl poweroff` in a session: the container's keeper cleans up after it as a stop
/// would, so outside nothing thinks a systemd runs, and the next session boots afresh.
#[test]
fn a_poweroff_from_inside_leaves_run_clean() {
    let Some(wsl) = start("a_poweroff_from_inside_leaves_run_clean") else {
        return;
    };
    let sb = &wsl.sandbox;
    let first = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(first.field("pid1"), "systemd", "{first}");
    // The session goes down with the container; how it ends is not the point.
    let _ = wsl.session("root", "systemctl poweroff; sleep 30");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = outside(
            &wsl,
            "echo left=$(ls -A /run/systemd /run/nologin /run/distrod/state.json 2>/dev/null \
             | wc -l) mounted=$(findmnt -n /run/systemd/private | wc -l)",
        );
        if out.field("left") == "0" && out.field("mounted") == "0" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "systemd's state is still in /run after the poweroff\n{out}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let out = outside(&wsl, "systemctl is-system-running; true");
    assert_eq!(out.stdout.trim(), "offline", "{out}");
    let again = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(again.field("pid1"), "systemd", "{again}");
    sb.run(&[INSTALLED, "stop"]).success();
}
