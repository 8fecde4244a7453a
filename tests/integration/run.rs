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

    // Outside, the container's services and manager are there too.
    let out = outside(
        &wsl,
        &format!(
            "echo dir=$(test -d /run/inside-svc && echo yes) \
             bus=$(SYSTEMCTL_FORCE_BUS=1 systemctl is-system-running) \
             user=$(setpriv --reuid 1000 --regid 1000 --clear-groups systemctl \
             is-system-running) loginctl=$(loginctl list-sessions >/dev/null; echo $?); \
             {FAKEWSL} send unix:/run/svc.sock 100000"
        ),
    );
    out.success();
    assert_eq!(out.field("dir"), "yes", "{out}");
    // systemctl over the system bus, as a user does it (root's goes to systemd's private
    // socket, which systemd refuses to peers outside its pid namespace: README), and
    // loginctl, reach the container's manager and logind.
    for key in ["bus", "user"] {
        assert!(
            ["running", "degraded"].contains(&out.field(key).as_str()),
            "systemctl outside does not reach the container's manager\n{out}"
        );
    }
    assert_eq!(out.field("loginctl"), "0", "{out}");
    assert!(out.stdout.contains("ok 100000"), "{out}");

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
    let out = outside(&wsl, "systemctl is-system-running; true");
    assert_eq!(out.stdout.trim(), "offline", "{out}");
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
