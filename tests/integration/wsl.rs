//! WSL integration end to end: `distrod enable` in a fake WSL distro (support/fakewsl.rs,
//! inside the test sandbox), sessions opened the way `wsl -d` opens them (a relay that is a
//! subreaper and serves `/run/WSL/<pid>_interop`, then the user's login shell from
//! /etc/passwd), and a client that finds its interop socket the way WSL's `/init` does.
//!
//! Each test starts with distrod only staged (not installed): `enable` installs it first.

use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Output;
use crate::support::fakewsl::{DistrodAt, EchoServer, FAKEWSL, FakeWsl, LogEntry};
use crate::support::sandbox::{STAGED_DISTROD, Sandbox, prerequisites};

const INSTALLED: &str = "/opt/distrod/bin/distrod";

fn start(test: &str) -> Option<FakeWsl> {
    let tree: PathBuf = prerequisites(test)?;
    Some(FakeWsl::start(&tree, DistrodAt::Staged))
}

fn enable(sb: &Sandbox) -> Output {
    let out = sb.run(&[STAGED_DISTROD, "enable"]);
    out.success();
    out
}

/// The shell field of `user` in the sandbox's /etc/passwd.
fn shell_of(sb: &Sandbox, user: &str) -> String {
    let passwd = sb.read_file("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() == 7 && f[0] == user)
        .map(|f| f[6].to_string())
        .unwrap_or_else(|| panic!("no {user} in /etc/passwd:\n{passwd}"))
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// The sandbox's own mount points (the distro's namespace, outside the container), with
/// their file system types; the relay's cover over systemd's private socket left out
/// (tests/integration/run.rs checks it).
fn outer_mounts(sb: &Sandbox) -> Vec<String> {
    let mut v: Vec<String> = sb
        .mountinfo()
        .lines()
        .filter(|l| !crate::support::is_relay_cover(l))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(format!("{} {}", f.get(4)?, f.get(sep + 1)?))
        })
        .collect();
    v.sort();
    v
}

fn last_entry(wsl: &FakeWsl, args: &str) -> LogEntry {
    wsl.interop_log()
        .into_iter()
        .rev()
        .find(|e| e.args == args)
        .unwrap_or_else(|| panic!("no interop request {args:?} in {:?}", wsl.interop_log()))
}

#[test]
fn sessions_enter_systemd_with_interop_everywhere() {
    let Some(wsl) = start("sessions_enter_systemd_with_interop_everywhere") else {
        return;
    };
    let sb = &wsl.sandbox;
    let passwd0 = sb.read_file("/etc/passwd").unwrap();
    let shells0 = sb.read_file("/etc/shells").unwrap();
    let mounts0 = outer_mounts(sb);

    let out = enable(sb);
    assert!(
        out.stderr
            .contains("distrod: sessions enter systemd, then run /bin/bash"),
        "enable says what it hooked\n{out}"
    );
    assert_eq!(shell_of(sb, "distrod"), "/opt/distrod/alias/bin/bash");
    assert_eq!(shell_of(sb, "root"), "/opt/distrod/alias/bin/bash");
    assert_eq!(
        shell_of(sb, "daemon"),
        "/usr/sbin/nologin",
        "system accounts stay"
    );
    let bin = std::fs::metadata(sb.path(INSTALLED)).expect("enable installed distrod");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(bin.permissions().mode() & 0o7777, 0o4755);

    // A session's shell runs in the container, as the user, with a logind session and the
    // session's environment.
    let out = wsl.session(
        "distrod",
        "echo pid1=$(cat /proc/1/comm) user=$(id -un) shell=$0 interop=$WSL_INTEROP \
         rt=$XDG_RUNTIME_DIR distro=$WSL_DISTRO_NAME wt=${WT_SESSION:+set} \
         win=$(echo $PATH | tr : '\\n' | grep -c '^/mnt/c/'); \
         systemctl --user is-system-running --wait >/dev/null; echo user-manager=$?",
    );
    out.success();
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_eq!(out.field("user"), "distrod");
    assert_eq!(
        out.field("shell"),
        "-bash",
        "a login shell, as WSL starts it"
    );
    let interop = out.field("interop");
    assert!(
        interop.starts_with("/run/WSL/") && interop.ends_with("_interop"),
        "{out}"
    );
    assert_eq!(out.field("rt"), "/run/user/1000");
    assert_eq!(out.field("distro"), "FakeWSL");
    assert_eq!(out.field("wt"), "set");
    assert_eq!(out.field("win"), "2", "the Windows part of PATH\n{out}");
    assert_eq!(
        out.field("user-manager"),
        "0",
        "systemctl --user works\n{out}"
    );

    // Interop from the shell, through WSL_INTEROP and through the parent walk, and from
    // sudo -i (environment cleared: the walk finds the session's subreaper).
    let out = wsl.session("distrod", &format!("{FAKEWSL} client from-shell"));
    out.success();
    assert_eq!(last_entry(&wsl, "from-shell").uid, 1000);
    let out = wsl.session(
        "distrod",
        &format!("env -u WSL_INTEROP {FAKEWSL} client from-walk"),
    );
    out.success();
    assert!(out.stdout.contains("via /run/WSL/"), "{out}");
    let out = wsl.session(
        "distrod",
        &format!("sudo -i {FAKEWSL} client from-sudo; echo pid1=$(sudo cat /proc/1/comm)"),
    );
    out.success();
    assert_eq!(last_entry(&wsl, "from-sudo").uid, 0);
    assert_eq!(out.field("pid1"), "systemd", "sudo -i stays inside\n{out}");

    // Two sessions side by side; the outer mount table does not change.
    let s1 = wsl.spawn_session(
        "distrod",
        "echo $WSL_INTEROP > /var/tmp/s1-interop; \
         while [ ! -e /var/tmp/s1-end ]; do sleep 0.05; done",
    );
    let s2 = wsl.spawn_session(
        "root",
        "echo $WSL_INTEROP > /var/tmp/s2-interop; \
         while [ ! -e /var/tmp/s2-end ]; do sleep 0.05; done",
    );
    wait_for(
        "both sessions to be inside",
        Duration::from_secs(20),
        || {
            sb.read_file("/var/tmp/s1-interop").is_some()
                && sb.read_file("/var/tmp/s2-interop").is_some()
        },
    );
    assert_eq!(outer_mounts(sb), mounts0, "the outer mount table changed");

    // A systemd service reaches Windows through /run/WSL/1_interop.
    let service = |tag: &str| {
        wsl.session(
            "root",
            &format!("systemd-run --quiet --wait --pipe --collect {FAKEWSL} client {tag}"),
        )
    };
    service("from-service").success();
    assert_eq!(last_entry(&wsl, "from-service").uid, 0);

    // Another user can neither use the first user's socket nor walk into it.
    wsl.useradd("other");
    enable(sb);
    assert_eq!(shell_of(sb, "other"), "/opt/distrod/alias/bin/bash");
    let s1_interop = sb
        .read_file("/var/tmp/s1-interop")
        .unwrap()
        .trim()
        .to_string();
    let out = wsl.session(
        "other",
        &format!(
            "{FAKEWSL} client mine; cat {s1_interop}; echo cat=$?; \
             ls -l {s1_interop}; WSL_INTEROP={s1_interop} {FAKEWSL} client steal"
        ),
    );
    out.success();
    assert!(
        out.stderr.contains("Permission denied") && out.field("cat") != "0",
        "another user's session socket must be out of reach\n{out}"
    );
    let mine = last_entry(&wsl, "mine");
    assert_eq!(mine.uid, 1001);
    let steal = last_entry(&wsl, "steal");
    assert_ne!(
        steal.relay,
        s1.relay_pid(),
        "the request reached s1's relay\n{out}"
    );
    assert_eq!(
        steal.relay, mine.relay,
        "it fell back to other's own session"
    );

    // The first session ends: services still get through (1_interop moved to a live one).
    sb.write_file("/var/tmp/s1-end", "");
    let out = s1.wait();
    assert_eq!(out.code(), Some(0), "{out}");
    service("after-first-ended").success();
    assert_eq!(
        last_entry(&wsl, "after-first-ended").relay,
        s2.relay_pid(),
        "1_interop follows the session that is still open"
    );
    sb.write_file("/var/tmp/s2-end", "");
    s2.wait();
    assert_eq!(outer_mounts(sb), mounts0, "the outer mount table changed");

    // disable: passwd and shells byte for byte, the container stopped, sessions outside.
    let out = sb.run(&[INSTALLED, "disable"]);
    out.success();
    let passwd = sb.read_file("/etc/passwd").unwrap();
    let other_line = passwd
        .lines()
        .find(|l| l.starts_with("other:"))
        .unwrap()
        .to_string();
    assert_eq!(
        passwd.replace(&format!("{other_line}\n"), ""),
        passwd0,
        "disable must restore /etc/passwd (apart from the added user)"
    );
    assert!(other_line.ends_with(":/bin/bash"), "{other_line}");
    assert_eq!(sb.read_file("/etc/shells").unwrap(), shells0);
    assert_eq!(sb.run(&[INSTALLED, "status"]).code(), Some(3));
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    out.success();
    assert_ne!(out.field("pid1"), "systemd", "{out}");
}

#[test]
fn enable_refuses_wsl_systemd_and_follows_chsh() {
    let Some(wsl) = start("enable_refuses_wsl_systemd_and_follows_chsh") else {
        return;
    };
    let sb = &wsl.sandbox;
    let passwd0 = sb.read_file("/etc/passwd").unwrap();
    let shells0 = sb.read_file("/etc/shells").unwrap();

    sb.write_file("/etc/wsl.conf", "[boot]\nsystemd = true\n");
    let out = sb.run(&[STAGED_DISTROD, "enable"]);
    out.failure()
        .error_mentions(&["systemd=true", "/etc/wsl.conf", "systemd=false"]);
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    assert!(!sb.path("/opt/distrod").exists(), "nothing installed");
    std::fs::remove_file(sb.path("/etc/wsl.conf")).unwrap();

    // A bad configuration is refused with the key, before anything changes.
    sb.write_file("/etc/distrod.toml", "[container]\ndns = [\"1.1.1\"]\n");
    let out = sb.run(&[STAGED_DISTROD, "enable"]);
    out.failure().error_mentions(&["container.dns", "1.1.1"]);
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    std::fs::remove_file(sb.path("/etc/distrod.toml")).unwrap();

    // The container runs: chsh is followed by the container's re-hook.
    enable(sb);
    wsl.session("distrod", "true").success();
    sb.run(&["chsh", "-s", "/bin/sh", "distrod"]).success();
    wait_for("the re-hook after chsh", Duration::from_secs(15), || {
        shell_of(sb, "distrod") == "/opt/distrod/alias/bin/sh"
    });
    let out = wsl.session("distrod", "echo shell=$0 pid1=$(cat /proc/1/comm)");
    out.success();
    assert_eq!(out.field("shell"), "-sh");
    assert_eq!(out.field("pid1"), "systemd");

    // Stopped: `enable` again re-hooks by hand.
    sb.run(&[INSTALLED, "stop"]).success();
    sb.run(&["chsh", "-s", "/bin/bash", "distrod"]).success();
    assert_eq!(shell_of(sb, "distrod"), "/bin/bash");
    sb.run(&[INSTALLED, "enable"]).success();
    assert_eq!(shell_of(sb, "distrod"), "/opt/distrod/alias/bin/bash");

    // disable keeps the shell chosen last and restores the files byte for byte.
    sb.run(&[INSTALLED, "disable"]).success();
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    assert_eq!(sb.read_file("/etc/shells").unwrap(), shells0);
    assert!(!sb.path("/opt/distrod/alias").exists());
}

#[test]
fn runtime_adjustments_dns_wslg_masks_and_fallback() {
    let Some(wsl) = start("runtime_adjustments_dns_wslg_masks_and_fallback") else {
        return;
    };
    let sb = &wsl.sandbox;
    // WSL's generated resolv.conf (a symlink into the shared /mnt/wsl).
    sb.write_file("/mnt/wsl/resolv.conf", "nameserver 172.28.0.1\n");
    sb.run(&["ln", "-sf", "/mnt/wsl/resolv.conf", "/etc/resolv.conf"])
        .success();
    let resolv0 = sb.read_file("/etc/resolv.conf");
    let out = sb.run(&[STAGED_DISTROD, "enable", "--dns", "192.0.2.53,2001:db8::53"]);
    out.success();
    assert!(
        sb.read_file("/etc/distrod.toml")
            .unwrap()
            .contains("192.0.2.53"),
        "--dns is kept in a new /etc/distrod.toml"
    );
    let out = wsl.session(
        "distrod",
        "systemctl is-system-running --wait; \
         echo ns=$(grep -c '^nameserver 192.0.2.53$' /etc/resolv.conf) \
         x11=$(ls /tmp/.X11-unix) \
         wayland=$(readlink $XDG_RUNTIME_DIR/wayland-0) \
         pulse=$(readlink $XDG_RUNTIME_DIR/pulse/native) \
         networkd=$(systemctl show -p LoadState --value systemd-networkd.service) \
         getty=$(systemctl show -p LoadState --value serial-getty@ttyS0.service) \
         svc_interop=$(systemctl show-environment | grep -c '^WSL_INTEROP=/run/WSL/1_interop$') \
         svc_distro=$(systemctl show-environment | sed -n 's/^WSL_DISTRO_NAME=//p') \
         manager=$(cat /run/host/container-manager)",
    );
    out.success();
    assert!(
        out.stdout.starts_with("running"),
        "no failed units with distrod's masks\n{out}"
    );
    assert_eq!(out.field("ns"), "1", "{out}");
    assert_eq!(
        out.field("x11"),
        "X0",
        "WSLg's X11 sockets at /tmp/.X11-unix\n{out}"
    );
    assert_eq!(out.field("wayland"), "/mnt/wslg/runtime-dir/wayland-0");
    assert_eq!(out.field("pulse"), "/mnt/wslg/PulseServer");
    assert_eq!(out.field("networkd"), "masked");
    assert_eq!(out.field("getty"), "masked");
    assert_eq!(out.field("svc_interop"), "1");
    assert_eq!(out.field("svc_distro"), "FakeWSL");
    assert_eq!(out.field("manager"), "distrod");
    // Only the container sees the resolvers; the distro's files are untouched.
    assert_eq!(sb.read_file("/etc/resolv.conf"), resolv0);
    assert!(
        !sb.path("/etc/systemd/system/systemd-networkd.service")
            .exists()
    );
    sb.run(&[INSTALLED, "stop"]).success();

    // systemd cannot start: the session still gets its shell, outside, with one warning.
    sb.run(&[
        "mv",
        "/usr/lib/systemd/systemd",
        "/usr/lib/systemd/systemd.off",
    ])
    .success();
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    out.success();
    assert_ne!(out.field("pid1"), "systemd");
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("distrod:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{out}");
    assert!(
        warnings[0].contains("outside the systemd container"),
        "{out}"
    );
}

/// A boot slower than `boot_timeout` is entered, not waited out: the first session waits
/// the timeout, says so in one line and lands in systemd; the next one enters at once.
/// The lines distrod itself wrote to a session's stderr.
fn distrod_lines(out: &Output) -> Vec<&str> {
    out.stderr
        .lines()
        .filter(|l| l.starts_with("distrod:") || l.starts_with("warning:"))
        .collect()
}

/// A session waits for what it needs (the bus and logind), not for the boot: with a 45 s
/// job in multi-user.target, the first session enters while the boot goes on, silently,
/// with its logind session and user manager.
#[test]
fn a_slow_job_does_not_hold_up_the_first_session() {
    let Some(wsl) = start("a_slow_job_does_not_hold_up_the_first_session") else {
        return;
    };
    let sb = &wsl.sandbox;
    enable(sb);
    sb.slow_boot(45);
    let t0 = Instant::now();
    let first = wsl.session(
        "distrod",
        "echo pid1=$(cat /proc/1/comm) system=$(systemctl is-system-running) \
         job=$(systemctl is-active slow-boot.service) \
         user=$(systemctl --user is-system-running) session=${XDG_SESSION_ID:-none}",
    );
    let took = t0.elapsed();
    first.success();
    assert_eq!(first.field("pid1"), "systemd", "{first}");
    assert_eq!(first.field("system"), "starting", "{first}");
    assert_eq!(first.field("job"), "activating", "{first}");
    assert_ne!(first.field("session"), "none", "no logind session\n{first}");
    assert!(
        ["running", "starting", "degraded"].contains(&first.field("user").as_str()),
        "the user's manager does not answer\n{first}"
    );
    assert!(distrod_lines(&first).is_empty(), "{first}");
    assert!(!first.stderr.contains("waiting for"), "{first}");
    // The boot itself takes 45 s; the session came long before (the first-prompt figure
    // is measured by scripts/bench-firstprompt.sh, not here).
    assert!(took < Duration::from_secs(30), "took {took:?}");
    sb.run(&[INSTALLED, "stop"]).success();
}

/// A boot stuck before logind: past `boot_timeout` the session enters anyway with one line
/// naming `distrod status`, without a logind session and without waiting for one; later
/// sessions enter at once.
#[test]
fn a_boot_stuck_before_logind_is_entered_after_the_limit() {
    let Some(wsl) = start("a_boot_stuck_before_logind_is_entered_after_the_limit") else {
        return;
    };
    let sb = &wsl.sandbox;
    enable(sb);
    sb.write_file("/etc/distrod.toml", "[container]\nboot_timeout = 2\n");
    sb.slow_unit("before-logind", 40, "Before=systemd-logind.service");
    let t0 = Instant::now();
    let first = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    let first_took = t0.elapsed();
    first.success();
    assert_eq!(first.field("pid1"), "systemd", "{first}");
    let lines = distrod_lines(&first);
    assert_eq!(lines.len(), 1, "{first}");
    assert!(
        lines[0].contains("still starting")
            && lines[0].contains("systemd-logind")
            && lines[0].contains("distrod status"),
        "{first}"
    );
    // Not D-Bus's 25 s for a CreateSession that logind would answer only after the job.
    assert!(first_took < Duration::from_secs(12), "took {first_took:?}");
    let t0 = Instant::now();
    let second = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    second.success();
    assert_eq!(second.field("pid1"), "systemd", "{second}");
    assert!(
        !second.stderr.contains("still starting"),
        "the second session waited again\n{second}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t0.elapsed()
    );
    sb.run(&[INSTALLED, "stop"]).success();
}

/// A wait of more than a second shows one status line on a terminal, saying what it waits
/// for, erased when the wait ends; without a terminal (`wsl -- CMD`) nothing at all.
#[test]
fn a_wait_shows_a_status_line_only_on_a_terminal() {
    let Some(wsl) = start("a_wait_shows_a_status_line_only_on_a_terminal") else {
        return;
    };
    let sb = &wsl.sandbox;
    enable(sb);
    // logind comes 5 s into the boot.
    sb.slow_unit("before-logind", 5, "Before=systemd-logind.service");
    let login = "echo in-$(cat /proc/1/comm)";
    let term = sb.run(&[
        FAKEWSL,
        "pty",
        "--timeout",
        "40000",
        "--",
        FAKEWSL,
        "relay",
        "--user",
        "distrod",
        "--",
        login,
    ]);
    term.success();
    // The terminal's bytes (the pty copies them to stdout).
    let shown = "distrod: starting systemd: waiting for systemd-logind...";
    let at = term
        .stdout
        .find(shown)
        .unwrap_or_else(|| panic!("no status line on the terminal\n{term}"));
    assert!(
        term.stdout[..at].ends_with("\r\x1b[2K"),
        "the line is not drawn in place\n{term}"
    );
    let erased = term.stdout[at..]
        .find("\r\x1b[2K")
        .unwrap_or_else(|| panic!("the status line is never erased\n{term}"));
    let inside = term
        .stdout
        .find("in-systemd")
        .unwrap_or_else(|| panic!("the session did not enter\n{term}"));
    assert!(at + erased < inside, "erased after the prompt\n{term}");
    assert!(!term.stdout.contains("still starting"), "{term}");
    sb.run(&[INSTALLED, "stop"]).success();

    // The same wait without a terminal: the output is the command's alone.
    let plain = wsl.session("distrod", login);
    plain.success();
    assert_eq!(plain.stdout.trim(), "in-systemd", "{plain}");
    assert!(
        !plain.stderr.contains("distrod") && !plain.stderr.contains('\x1b'),
        "{plain}"
    );
    sb.run(&[INSTALLED, "stop"]).success();
}

/// `firstboot` as the Windows installer runs it after `wsl --import` (`--user NAME
/// --password-stdin --print-uid`; the installer makes the printed uid the default user),
/// on the test image, which already has an account with uid 1000: the new user gets the
/// next free uid and that is what is printed.
#[test]
fn firstboot_creates_the_login_user_and_enables() {
    let Some(wsl) = start("firstboot_creates_the_login_user_and_enables") else {
        return;
    };
    let sb = &wsl.sandbox;
    let passwd0 = sb.read_file("/etc/passwd").unwrap();

    // No terminal: each missing answer names its flag, and nothing changes.
    let out = sb.run(&[STAGED_DISTROD, "firstboot"]);
    out.failure()
        .error_mentions(&["--user NAME", "--password-stdin"]);
    let out = sb.run(&[STAGED_DISTROD, "firstboot", "--user", "alice"]);
    out.failure().error_mentions(&["--password-stdin"]);
    let out = sb.run(&[STAGED_DISTROD, "firstboot", "--user", "Alice Smith"]);
    out.failure().error_mentions(&["not a valid user name"]);
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    // `--uid` (a package's first start) that another account has: refused, nothing made.
    let out = sb.run(&[
        "sh",
        "-c",
        &format!(
            "printf 'pw\\n' | {STAGED_DISTROD} firstboot --user alice --password-stdin --uid 1000"
        ),
    ]);
    out.failure()
        .error_mentions(&["uid 1000 is taken by distrod"]);
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    assert_eq!(wsl.user_with_uid(1000).as_deref(), Some("distrod"));

    let first = format!(
        "printf 'open sesame\\n' | {STAGED_DISTROD} firstboot --user alice --password-stdin \
         --print-uid"
    );
    let out = sb.run(&["sh", "-c", &first]);
    out.success();
    assert_eq!(out.stdout.trim(), "1001", "the new user's uid\n{out}");
    assert!(out.stderr.contains("created alice (uid 1001)"), "{out}");
    assert_eq!(
        shell_of(sb, "alice"),
        "/opt/distrod/alias/bin/bash",
        "enabled"
    );

    // alice's first session: inside systemd, her password works for sudo.
    let out = wsl.session(
        "alice",
        "echo pid1=$(cat /proc/1/comm) home=$HOME; \
         echo 'open sesame' | sudo -S -p '' -k id -u; \
         echo 'wrong' | sudo -S -p '' -k true 2>/dev/null; echo wrong=$?",
    );
    out.success();
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_eq!(out.field("home"), "/home/alice");
    assert!(
        out.stdout.lines().any(|l| l == "0"),
        "sudo with her password\n{out}"
    );
    assert_ne!(
        out.field("wrong"),
        "0",
        "a wrong password is refused\n{out}"
    );

    // Again (the installer retried): the same user, a new password, still enabled.
    let again = format!(
        "printf 'new pass\\n' | {INSTALLED} firstboot --user alice --password-stdin --print-uid"
    );
    let out = sb.run(&["sh", "-c", &again]);
    out.success();
    assert_eq!(out.stdout.trim(), "1001");
    assert!(out.stderr.contains("updated alice"), "{out}");
    let out = wsl.session("alice", "echo 'new pass' | sudo -S -p '' -k id -u");
    out.success();
    assert_eq!(out.stdout.trim(), "0", "{out}");
}

/// The test rootfs tarball (`DISTROD_TEST_ROOTFS_TARBALL`), or `None` when the test is
/// skipped without it.
fn rootfs_tarball() -> Option<std::ffi::OsString> {
    let tarball = std::env::var_os("DISTROD_TEST_ROOTFS_TARBALL");
    if tarball.is_none() {
        crate::support::skip_or_fail(
            "DISTROD_TEST_ROOTFS_TARBALL does not name the test rootfs tarball \
             (scripts/test.sh builds it)",
        );
    }
    tarball
}

/// `distrod pack` of the test image into `dir`/Debian.wsl: its bytes and pack's output.
fn pack_test_image(tarball: &std::ffi::OsStr, dir: &std::path::Path) -> (Vec<u8>, Output) {
    let wsl_file = dir.join("Debian.wsl");
    let out = crate::support::Distrod::new()
        .args(["pack", "--image"])
        .arg(tarball)
        .args(["--name", "Debian", "--out"])
        .arg(&wsl_file)
        .run();
    out.success();
    (std::fs::read(&wsl_file).unwrap(), out)
}

/// A pack of the test image (which has an account with uid 1000, `distrod`) passes the rules
/// of WSL's own validator of modern distributions (see support/wsl_package.rs for which
/// and from where): no error, and no warning about the first-start command or the
/// default uid being taken. What is left, and why:
/// - "Default UID is not 1000": WSL's recommendation, which an image with its own uid-1000
///   account cannot follow without WSL logging every session in as that account;
/// - "No shortcut.icon provided": distrod ships no icon yet.
#[test]
fn a_packed_wsl_file_passes_the_rules_of_wsls_validator() {
    let Some(tarball) = rootfs_tarball() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let (package, _) = pack_test_image(&tarball, work.path());
    let findings = crate::support::wsl_package::check(&package);
    let validator = crate::support::wsl_package::VALIDATOR;
    assert!(
        findings.errors.is_empty(),
        "{validator} would report errors: {findings:#?}"
    );
    let members = crate::support::wsl_package::members(&{
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&package[..]), &mut tar)
            .unwrap();
        tar
    });
    let passwd = String::from_utf8(members["etc/passwd"].data.clone()).unwrap();
    assert!(
        passwd.lines().any(|l| l.split(':').nth(2) == Some("1000")),
        "the test image has an account with uid 1000\n{passwd}"
    );
    let first_free = (1000..)
        .find(|u: &u32| {
            !passwd
                .lines()
                .any(|l| l.split(':').nth(2) == Some(u.to_string().as_str()))
        })
        .unwrap();
    assert_eq!(
        findings.warnings,
        [
            format!("Default UID is not 1000. Found: {first_free}"),
            "No shortcut.icon provided".to_owned(),
        ],
        "{validator}"
    );
}

/// `distrod pack` makes a `.wsl` package of an image; installed (unpacked, as `wsl
/// --install --from-file` does) and started the first time as WSL starts it, its first-start
/// command asks for the user on the terminal and creates it with the uid WSL then logs in
/// as, and that session lands in systemd as the new user. The test image already has an
/// account with uid 1000 (`distrod`): the new user gets the next free uid, and WSL must
/// not log in as the old account.
#[test]
fn a_packed_wsl_file_boots_into_systemd_after_its_first_start_command() {
    let Some(_) =
        prerequisites("a_packed_wsl_file_boots_into_systemd_after_its_first_start_command")
    else {
        return;
    };
    let Some(tarball) = rootfs_tarball() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let wsl_file = work.path().join("Debian.wsl");
    let (bytes, out) = pack_test_image(&tarball, work.path());
    assert!(
        out.stderr.contains("wsl --install --from-file Debian.wsl"),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("creates the user WSL logs in as with uid 1001"),
        "{out}"
    );
    let again = crate::support::Distrod::new()
        .args(["pack", "--image"])
        .arg(&tarball)
        .arg("--out")
        .arg(&wsl_file)
        .run();
    again.failure().error_mentions(&["exists"]);

    // What WSL reads: gzip, the configuration, the first-start script, the setuid binary.
    assert_eq!(&bytes[..2], b"\x1f\x8b", "a gzip-compressed tar");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut tar).unwrap();
    let members = crate::support::wsl_package::members(&tar);
    let conf = String::from_utf8(members["etc/wsl-distribution.conf"].data.clone()).unwrap();
    assert!(
        conf.contains(
            "[oobe]\ncommand = /usr/lib/wsl/distrod-oobe.sh\ndefaultUid = 1001\n\
             defaultName = Debian\n"
        ),
        "{conf}"
    );
    let script = &members["usr/lib/wsl/distrod-oobe.sh"];
    assert_eq!(script.kind, tar::EntryType::Regular);
    assert_eq!((script.mode, script.uid, script.gid), (0o755, 0, 0));
    let text = String::from_utf8(script.data.clone()).unwrap();
    assert!(
        text.starts_with("#!/bin/sh\n")
            && text.ends_with("\nexec /opt/distrod/bin/distrod firstboot --uid 1001 \"$@\"\n"),
        "{text}"
    );
    let bin = &members["opt/distrod/bin/distrod"];
    assert_eq!((bin.mode, bin.uid), (0o4755, 0));

    // Installed: unpacked as WSL would.
    let tree = work.path().join("tree");
    crate::support::Distrod::new()
        .args(["create", "--image"])
        .arg(&wsl_file)
        .arg("--dir")
        .arg(&tree)
        .run()
        .success();
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    let sb = &wsl.sandbox;
    assert_eq!(wsl.user_with_uid(1000).as_deref(), Some("distrod"));

    // The first start, on WSL's terminal: `distrod` is refused (it has uid 1000, WSL logs
    // in as 1001) and asked again; alice is created with uid 1001.
    let first = wsl.first_start("distrod\nalice\nopen sesame\nopen sesame\n");
    let term = &first.output.stdout;
    first.output.success();
    assert_eq!(first.command, "/usr/lib/wsl/distrod-oobe.sh");
    assert_eq!(first.default_uid, Some(1001));
    assert!(
        term.contains("distrod exists with uid 1000, not 1001"),
        "{}",
        first.output
    );
    assert_eq!(term.matches("User name: ").count(), 2, "{}", first.output);
    assert!(
        term.contains("created alice (uid 1001)"),
        "{}",
        first.output
    );
    assert_eq!(wsl.user_with_uid(1001).as_deref(), Some("alice"));
    assert_eq!(wsl.user_with_uid(1000).as_deref(), Some("distrod"));
    assert_eq!(shell_of(sb, "alice"), "/opt/distrod/alias/bin/bash");

    // Then WSL logs in as defaultUid: alice, inside systemd, her password good for sudo.
    let user = wsl.user_with_uid(first.default_uid.unwrap()).unwrap();
    let out = wsl.session(
        &user,
        "echo pid1=$(cat /proc/1/comm) user=$(id -un) uid=$(id -u); \
         echo 'open sesame' | sudo -S -p '' -k id -u",
    );
    out.success();
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_eq!(out.field("user"), "alice");
    assert_eq!(out.field("uid"), "1001");
    assert!(out.stdout.lines().any(|l| l == "0"), "sudo\n{out}");

    // Should WSL run it again (it does until the command succeeds): the same user is
    // updated, never another uid.
    let again = wsl.first_start("alice\nnew pass\nnew pass\n");
    again.output.success();
    assert!(
        again.output.stdout.contains("updated alice (uid 1001)"),
        "{}",
        again.output
    );
    // The uid taken by then by someone else: one line, nothing made.
    let passwd = sb.read_file("/etc/passwd").unwrap();
    let out = sb.run(&[
        "sh",
        "-c",
        "printf 'pw\\n' | /usr/lib/wsl/distrod-oobe.sh --user bob --password-stdin",
    ]);
    out.failure()
        .error_mentions(&["uid 1001 is taken by alice"]);
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out}");
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd, "nothing made");
    assert!(!sb.path("/home/bob").exists());
}

/// A stand-in for Windows' reg.exe, on the session's PATH as System32 is under WSL: it
/// logs its arguments (one line per call, `|` between them) and fails when told to.
const FAKE_REG: &str = "#!/bin/sh\n\
    [ -e /tmp/reg-fails ] && { echo 'ERROR: Access is denied.' >&2; exit 1; }\n\
    (IFS='|'; printf '%s\\n' \"$*\") >> /tmp/reg.log\n";

#[test]
fn start_on_windows_boot_writes_the_logon_entry_and_disable_removes_it() {
    let Some(wsl) = start("start_on_windows_boot_writes_the_logon_entry_and_disable_removes_it")
    else {
        return;
    };
    let sb = &wsl.sandbox;
    sb.write_file("/mnt/c/Windows/System32/reg.exe", FAKE_REG);
    sb.run(&["chmod", "755", "/mnt/c/Windows/System32/reg.exe"])
        .success();
    let passwd0 = sb.read_file("/etc/passwd").unwrap();

    // Outside a WSL session there is no distro name: refused before anything changes.
    let out = sb.run(&[STAGED_DISTROD, "enable", "--start-on-windows-boot"]);
    out.failure().error_mentions(&["WSL_DISTRO_NAME", "wsl -d"]);
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
    assert!(!sb.path("/opt/distrod").exists(), "nothing installed");

    // From a session, under sudo (which clears WSL's variables and PATH): the distro name
    // and reg.exe are found in the session's shell.
    let out = wsl.session(
        "distrod",
        &format!("sudo {STAGED_DISTROD} enable --start-on-windows-boot"),
    );
    out.success();
    assert!(
        out.stderr
            .contains("Windows starts FakeWSL and its systemd at logon"),
        "{out}"
    );
    let run_key = r"HKCU\Software\Microsoft\Windows\CurrentVersion\Run";
    let added = format!(
        "add|{run_key}|/v|distrod-FakeWSL|/t|REG_SZ|/d|C:\\Windows\\System32\\conhost.exe \
         --headless C:\\Windows\\System32\\wsl.exe -d FakeWSL -u root -e \
         /opt/distrod/bin/distrod launch --keep-alive|/f"
    );
    assert_eq!(sb.read_file("/tmp/reg.log").unwrap(), format!("{added}\n"));
    assert!(sb.path("/opt/distrod/state/logon.json").exists());
    assert_eq!(shell_of(sb, "distrod"), "/opt/distrod/alias/bin/bash");

    // What the entry runs: systemd starts, and the command stays until the container stops.
    let mut keep = sb
        .command(&[INSTALLED, "launch", "--keep-alive"])
        .spawn()
        .expect("start launch --keep-alive");
    // Booted, as the launch waits for before it keeps alive: a stop during the boot is a
    // launch that failed, not the end of a kept-alive container.
    wait_for(
        "systemd under launch --keep-alive to finish booting",
        Duration::from_secs(60),
        || {
            let status = sb.run(&[INSTALLED, "status", "--json"]);
            status.code() == Some(0)
                && !matches!(
                    status.json()["state"].as_str(),
                    None | Some("initializing" | "starting")
                )
        },
    );
    thread::sleep(Duration::from_millis(300));
    assert!(
        keep.try_wait().unwrap().is_none(),
        "launch --keep-alive returned while the container runs"
    );
    sb.run(&[INSTALLED, "stop"]).success();
    wait_for(
        "launch --keep-alive to return",
        Duration::from_secs(30),
        || keep.try_wait().unwrap().is_some(),
    );
    let kept = keep.wait_with_output().unwrap();
    assert!(kept.status.success(), "{kept:?}");

    // disable removes the value it wrote, and its record.
    sb.run(&[INSTALLED, "disable"]).success();
    assert_eq!(
        sb.read_file("/tmp/reg.log").unwrap(),
        format!("{added}\ndelete|{run_key}|/v|distrod-FakeWSL|/f\n")
    );
    assert!(!sb.path("/opt/distrod/state/logon.json").exists());
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);

    // reg.exe failing: one error line naming it; a disable then has nothing to remove.
    sb.write_file("/tmp/reg-fails", "");
    let out = wsl.session(
        "root",
        &format!("{INSTALLED} enable --start-on-windows-boot"),
    );
    out.failure()
        .error_mentions(&["reg.exe add failed", "Access is denied"]);
    assert!(!sb.path("/opt/distrod/state/logon.json").exists());
    sb.run(&[INSTALLED, "disable"]).success();
    assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0);
}

#[test]
fn the_port_proxy_forwards_to_the_distro_while_the_container_runs() {
    let Some(wsl) = start("the_port_proxy_forwards_to_the_distro_while_the_container_runs") else {
        return;
    };
    let sb = &wsl.sandbox;
    sb.add_eth0("10.77.0.2/24");

    sb.run(&[STAGED_DISTROD, "install"]).success();
    // distrod.exe would run on Windows through interop; its `portproxy serve` is the same
    // code as the Linux binary's, which stands in for it here.
    sb.run(&["cp", INSTALLED, "/opt/distrod/bin/distrod.exe"])
        .success();
    sb.write_file(
        "/etc/distrod.toml",
        "# mine\n[portproxy]\nports = [8080]\nlisten = \"127.0.0.1\"\n",
    );
    let _web = EchoServer::start(sb, "10.77.0.2:8080");
    let _ssh = EchoServer::start(sb, "10.77.0.2:9090");

    sb.run(&[INSTALLED, "launch"]).success();
    wait_for(
        "the port proxy on 127.0.0.1:8080",
        Duration::from_secs(30),
        || sb.run(&[FAKEWSL, "send", "127.0.0.1:8080", "1"]).code() == Some(0),
    );
    // A large transfer through it, checked byte for byte.
    let out = sb.run(&[FAKEWSL, "send", "127.0.0.1:8080", "8000000"]);
    out.success();
    assert_eq!(out.stdout.trim(), "ok 8000000");
    // The unit: started at boot, without waiting for network-online.target.
    let out = sb.run(&[
        INSTALLED,
        "exec",
        "--",
        "systemctl",
        "show",
        "-p",
        "ActiveState",
        "-p",
        "After",
        "-p",
        "Wants",
        "distrod-portproxy.service",
    ]);
    out.success();
    assert!(out.stdout.contains("ActiveState=active"), "{out}");
    assert!(!out.stdout.contains("network-online"), "{out}");
    let out = sb.run(&[INSTALLED, "exec", "--", "systemctl", "is-system-running"]);
    assert_eq!(out.stdout.trim(), "running", "{out}");

    // Not yet forwarded: 9090. `add` saves it (keeping the file's other lines) and applies
    // it at once.
    assert_ne!(
        sb.run(&[FAKEWSL, "send", "127.0.0.1:9090", "1"]).code(),
        Some(0)
    );
    sb.run(&[INSTALLED, "portproxy", "add", "9090"]).success();
    assert_eq!(
        sb.read_file("/etc/distrod.toml").unwrap(),
        "# mine\n[portproxy]\nports = [8080, 9090]\nlisten = \"127.0.0.1\"\n"
    );
    let out = sb.run(&[INSTALLED, "portproxy", "list"]);
    assert_eq!(out.stdout, "127.0.0.1:8080\n127.0.0.1:9090\n");
    wait_for("the port proxy on 9090", Duration::from_secs(30), || {
        sb.run(&[FAKEWSL, "send", "127.0.0.1:9090", "100000"])
            .code()
            == Some(0)
    });
    let out = sb.run(&[INSTALLED, "portproxy", "add", "0"]);
    assert_eq!(out.code(), Some(2), "{out}");
    assert!(out.stderr.contains("0 is not in 1..=65535"), "{out}");
    sb.run(&[INSTALLED, "portproxy", "remove", "8080"])
        .success();
    wait_for("8080 no longer forwarded", Duration::from_secs(30), || {
        sb.run(&[FAKEWSL, "send", "127.0.0.1:8080", "1"]).code() != Some(0)
    });
    sb.run(&[FAKEWSL, "send", "127.0.0.1:9090", "1000"])
        .success();

    // The container stops: so does the relay.
    sb.run(&[INSTALLED, "stop"]).success();
    wait_for("the relay to stop", Duration::from_secs(10), || {
        sb.run(&[FAKEWSL, "send", "127.0.0.1:9090", "1"]).code() != Some(0)
    });
}
