//! The systemd version matrix: Debian bookworm (systemd 252), trixie (257) and sid (the
//! newest: 262 when this was written), each as the small tree `scripts/build-rootfs.sh
//! --suite SUITE` builds and as the "loaded" tree of `--suite SUITE --loaded`
//! (openssh-server, cron, rsyslog, logrotate, systemd-resolved, systemd-timesyncd, polkitd,
//! NetworkManager, unattended-upgrades and apt's timers, apparmor, e2fsprogs' timers, man-db,
//! udisks2: the services of a real installation, enabled as Debian enables them).
//!
//! What runs on which suite (scripts/test.sh):
//! - bookworm, this machine's suite: the whole suite (`cargo test --workspace`), with
//!   `DISTROD_TEST_ROOTFS_TREE` the small bookworm tree, and this module on the loaded one;
//! - trixie and sid: `cargo test --test integration -- runtime:: wsl:: run:: idle::
//!   suites::` with that
//!   suite's small tree as `DISTROD_TEST_ROOTFS_TREE` (and its tarball as
//!   `DISTROD_TEST_ROOTFS_TARBALL`) and its loaded tree as `DISTROD_TEST_LOADED_TREE`. Those
//!   are the tests that boot the distro's own systemd and meet what changes from one systemd
//!   to the next: the container runtime (launch, exec, stop, status, both rootfs modes, zero
//!   failed units), the WSL hook (sessions, interop, the masks, WSLg's sockets, slow boots,
//!   a packed .wsl file), one /run inside and outside, the idle poweroff, and this module.
//!   The rest (image pipeline, the Windows side under Wine, install, the port proxy, the
//!   hostile-input tests, several distros in one VM) does not depend on the distro's systemd
//!   version and runs once, on bookworm. Each of the two runs takes about 40 s on this project's 2-core machine; the trees build
//!   in 6-19 s each from an empty cache, the tarballs in 30-40 s.
//!
//! This module: the loaded distro boots to `running` with zero failed units, both as the
//! container of the distro's own root (with WSL's read-only bind of WSLg's sockets at
//! /tmp/.X11-unix, as in a real WSL distro) and with `distrod launch --rootfs DIR` (without
//! it), in a sandbox standing in for WSL with WSLg (`Sandbox::builder().wsl_like()`); and
//! WSLg's X11 socket `/tmp/.X11-unix/X0` is there in the container, read-only, also where the
//! suite mounts a tmpfs on /tmp at boot (`tmp.mount`, trixie on: checked to be there). The
//! state is read once the units have settled (a service that fails and is restarted is
//! `failed` only when its restarts run out, after the boot has been reported finished). A
//! failure lists every failed unit with its status and journal.
//!
//! Environment: `DISTROD_TEST_SUITE` (bookworm, trixie or sid) names the suite under test;
//! `DISTROD_TEST_LOADED_TREE` the loaded tree, and `DISTROD_TEST_ROOTFS_TREE` the small one,
//! both checked to be of that suite (its os-release and its systemd's version), so that a
//! mis-set variable cannot pass for another suite. Missing, they fail the tests under CI and
//! skip them elsewhere, with the reason.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::sandbox::Sandbox;

/// The suites of the matrix, with the systemd each has: bookworm and trixie a fixed major
/// version, sid anything newer than trixie's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Bookworm,
    Trixie,
    Sid,
}

impl Suite {
    fn parse(name: &str) -> Option<Suite> {
        match name {
            "bookworm" => Some(Suite::Bookworm),
            "trixie" => Some(Suite::Trixie),
            "sid" => Some(Suite::Sid),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
            Suite::Sid => "sid",
        }
    }

    fn systemd_matches(self, major: u32) -> bool {
        match self {
            Suite::Bookworm => major == 252,
            Suite::Trixie => major == 257,
            Suite::Sid => major > 257,
        }
    }
}

/// The container's root with `--rootfs`, inside the sandbox.
const DIR_ROOTFS: &str = "/var/lib/distrod-test/loaded";

/// Longest the loaded distro may take to finish booting.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

/// The suite `tree` is of, from its os-release (sid's says `forky/sid` and has no
/// VERSION_ID), and its systemd's major version (from libsystemd-shared-N.so).
fn identify(tree: &Path) -> Result<(Suite, u32), String> {
    let os_release = std::fs::read_to_string(tree.join("usr/lib/os-release"))
        .map_err(|e| format!("{}: no usr/lib/os-release: {e}", tree.display()))?;
    let field = |key: &str| {
        os_release.lines().find_map(|l| {
            l.strip_prefix(key)
                .and_then(|v| v.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_owned())
        })
    };
    let pretty = field("PRETTY_NAME").unwrap_or_default();
    let suite = if pretty.ends_with("/sid") {
        Suite::Sid
    } else {
        field("VERSION_CODENAME")
            .as_deref()
            .and_then(Suite::parse)
            .ok_or_else(|| format!("{}: not a suite of the matrix: {pretty}", tree.display()))?
    };
    // usr/lib/systemd (bookworm) or usr/lib/<triplet>/systemd (trixie on).
    let mut dirs = vec![tree.join("usr/lib/systemd")];
    dirs.extend(
        std::fs::read_dir(tree.join("usr/lib"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("systemd")),
    );
    let major = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("libsystemd-shared-")?
                .strip_suffix(".so")?
                .parse::<u32>()
                .ok()
        })
        .ok_or_else(|| format!("{}: no libsystemd-shared-N.so", tree.display()))?;
    Ok((suite, major))
}

/// Checks that `tree` is of `suite`; the message says what it is instead.
fn check_suite(var: &str, tree: &Path, suite: Suite) -> Result<(), String> {
    let (found, major) = identify(tree)?;
    if found != suite || !suite.systemd_matches(major) {
        return Err(format!(
            "{var}={} is {} with systemd {major}, but DISTROD_TEST_SUITE={}",
            tree.display(),
            found.name(),
            suite.name()
        ));
    }
    Ok(())
}

/// The suite under test (`DISTROD_TEST_SUITE`); None after failing under CI or saying why.
fn suite_under_test(test: &str) -> Option<Suite> {
    match std::env::var("DISTROD_TEST_SUITE").ok().as_deref() {
        Some(name) => match Suite::parse(name) {
            Some(suite) => Some(suite),
            None => panic!("DISTROD_TEST_SUITE={name}: not bookworm, trixie or sid"),
        },
        None => {
            crate::support::skip_or_fail(&format!(
                "{test}: DISTROD_TEST_SUITE (bookworm, trixie or sid) is not set \
                 (scripts/test.sh sets it)"
            ));
            None
        }
    }
}

/// The loaded tree of the suite under test when this machine can boot it in a sandbox:
/// root, the host tools, `DISTROD_TEST_SUITE` and `DISTROD_TEST_LOADED_TREE` (a tree of
/// that suite, with sshd). Otherwise None, after failing under CI or saying why.
fn loaded_prerequisites(test: &str) -> Option<(Suite, PathBuf)> {
    if !crate::support::require_root(test) {
        return None;
    }
    let missing = Sandbox::missing_tools();
    if !missing.is_empty() {
        crate::support::skip_or_fail(&format!("{test} needs {missing:?} on the host"));
        return None;
    }
    let suite = suite_under_test(test)?;
    let Some(tree) = std::env::var_os("DISTROD_TEST_LOADED_TREE").map(PathBuf::from) else {
        crate::support::skip_or_fail(&format!(
            "{test}: DISTROD_TEST_LOADED_TREE does not name the loaded tree \
             (`bash scripts/build-rootfs.sh --suite {} --loaded`)",
            suite.name()
        ));
        return None;
    };
    assert!(
        tree.join("usr/lib/systemd/systemd").exists() && tree.join("usr/sbin/sshd").exists(),
        "DISTROD_TEST_LOADED_TREE={}: not a loaded tree (no systemd or no sshd)",
        tree.display()
    );
    if let Err(e) = check_suite("DISTROD_TEST_LOADED_TREE", &tree, suite) {
        panic!("{e}");
    }
    Some((suite, tree))
}

/// Waits for the boot to end and then for the units to settle: no job queued and no unit
/// activating, deactivating or waiting to restart, three looks in a row. A service that fails
/// and is restarted (`Restart=on-failure`) is only `failed` once its restarts ran out, which
/// can be after the boot has been reported finished. Returns the state (`running`,
/// `degraded`, ...) and how long the waits took.
fn wait_for_boot(sb: &Sandbox) -> (String, Duration) {
    let started = Instant::now();
    let out = sb.run_with_timeout(
        &[
            "distrod",
            "exec",
            "--",
            "systemctl",
            "is-system-running",
            "--wait",
        ],
        BOOT_TIMEOUT,
    );
    assert!(
        !out.stdout.trim().is_empty(),
        "no state from systemctl is-system-running\n{out}\n{}",
        sb.exec(&["systemctl", "list-jobs", "--no-pager"])
    );
    let deadline = Instant::now() + BOOT_TIMEOUT;
    let mut quiet = 0;
    while quiet < 3 {
        let busy = sb.exec(&[
            "sh",
            "-c",
            "systemctl list-jobs --no-legend --no-pager; \
                 systemctl list-units --all --no-legend --no-pager --plain \
                   --state=activating,deactivating,reloading,auto-restart",
        ]);
        if busy.stdout.trim().is_empty() {
            quiet += 1;
        } else {
            quiet = 0;
            assert!(
                Instant::now() < deadline,
                "the units did not settle in {BOOT_TIMEOUT:?}\n{busy}"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let state = sb.exec(&["systemctl", "is-system-running"]);
    (state.stdout.trim().to_owned(), started.elapsed())
}

/// Every failed unit with its status and its journal, for the failure message.
fn failed_units_report(sb: &Sandbox, failed: &[String]) -> String {
    let mut report = String::new();
    for unit in failed {
        let status = sb.exec(&["systemctl", "status", "--no-pager", "-l", unit]);
        let journal = sb.exec(&[
            "journalctl",
            "-b",
            "--no-pager",
            "-o",
            "short-monotonic",
            "-u",
            unit,
        ]);
        report.push_str(&format!(
            "\n===== {unit}\n{}\n----- journal\n{}",
            status.stdout.trim_end(),
            journal.stdout.trim_end()
        ));
    }
    report
}

/// The loaded distro's container booted to `running` with no failed unit, WSLg's X11
/// socket in its /tmp/.X11-unix, and it stops cleanly.
fn check_loaded_container(sb: &Sandbox, suite: Suite, mode: &str) {
    let (state, waited) = wait_for_boot(sb);
    let failed: Vec<String> = sb
        .exec(&[
            "systemctl",
            "list-units",
            "--failed",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect();
    let since_boot = sb.exec(&["systemd-analyze", "time"]);
    eprintln!(
        "{} loaded, {mode}: {state} (settled after {waited:?}), failed units {failed:?}\n{}",
        suite.name(),
        since_boot.stdout.trim()
    );
    assert!(
        state == "running" && failed.is_empty(),
        "{} loaded, {mode}: the boot ended {state:?} with failed units {failed:?}{}",
        suite.name(),
        failed_units_report(sb, &failed)
    );

    // WSLg's X11 sockets, where X clients look for them: bound read-only from /mnt/wslg,
    // over the tmpfs that trixie on mount on /tmp (tmp.mount).
    let x11 = sb.exec(&[
        "sh",
        "-c",
        "if [ -e /tmp/.X11-unix/X0 ]; then echo X0; else echo no-X0; fi
             findmnt -n -o FSTYPE /tmp || echo no-tmp-mount
             if touch /tmp/.X11-unix/.w 2>/dev/null; then echo writable; else echo ro; fi",
    ]);
    let lines: Vec<&str> = x11.stdout.lines().collect();
    let why = || {
        sb.exec(&[
            "systemctl",
            "status",
            "--no-pager",
            "-l",
            "tmp.mount",
            "distrod-wslg-x11.service",
        ])
    };
    assert!(
        lines.len() == 3 && lines[0] == "X0" && lines[2] == "ro",
        "{} loaded, {mode}: no read-only /tmp/.X11-unix with X0 in the container\n{x11}\n{}",
        suite.name(),
        why()
    );
    if suite != Suite::Bookworm {
        assert_eq!(
            lines[1],
            "tmpfs",
            "{} loaded, {mode}: /tmp is no tmpfs: tmp.mount did not run\n{x11}\n{}",
            suite.name(),
            why()
        );
    }
    eprintln!("{mode}: /tmp/.X11-unix: {}", lines.join(" | "));

    let started = Instant::now();
    sb.distrod(&["stop"]).success();
    eprintln!("{mode}: stop took {:?}", started.elapsed());
    assert!(
        sb.container_inits().is_empty(),
        "a container still runs after stop\n{}",
        sb.describe_processes()
    );
}

/// Both trees are of the suite under test: a mis-set variable must not let one suite's
/// tests pass for another's.
#[test]
fn trees_are_of_the_suite_under_test() {
    let test = "trees_are_of_the_suite_under_test";
    let Some(suite) = suite_under_test(test) else {
        return;
    };
    let mut checked = 0;
    for var in ["DISTROD_TEST_ROOTFS_TREE", "DISTROD_TEST_LOADED_TREE"] {
        match std::env::var_os(var) {
            Some(tree) => {
                if let Err(e) = check_suite(var, Path::new(&tree), suite) {
                    panic!("{e}");
                }
                checked += 1;
            }
            None => {
                crate::support::skip_or_fail(&format!("{test}: {var} is not set"));
            }
        }
    }
    eprintln!("{checked} tree(s) of {} checked", suite.name());
}

/// The loaded distro as the container of the distro's own root (`distrod launch`, what
/// `distrod enable` starts on WSL).
#[test]
fn loaded_distro_boots_clean_as_its_own_root() {
    let Some((suite, tree)) = loaded_prerequisites("loaded_distro_boots_clean_as_its_own_root")
    else {
        return;
    };
    let sb = Sandbox::builder().wsl_like().start(&tree);
    // What WSL does in a distro with WSLg: /tmp/.X11-unix bound read-only from WSLg's.
    sb.run(&[
        "sh",
        "-euc",
        "mkdir -p /tmp/.X11-unix
         mount --bind /mnt/wslg/.X11-unix /tmp/.X11-unix
         mount -o remount,bind,ro /tmp/.X11-unix",
    ])
    .success();
    let started = Instant::now();
    sb.distrod(&["launch"]).success();
    eprintln!("launch: {:?}", started.elapsed());
    check_loaded_container(&sb, suite, "own root");
}

/// The loaded distro as a separate rootfs (`distrod launch --rootfs DIR`), DIR an overlay
/// of the tree made inside the sandbox.
#[test]
fn loaded_distro_boots_clean_from_a_rootfs_dir() {
    let Some((suite, tree)) = loaded_prerequisites("loaded_distro_boots_clean_from_a_rootfs_dir")
    else {
        return;
    };
    let sb = Sandbox::builder()
        .wsl_like()
        .bind_ro(&tree, "/srv/distrod-test-lower")
        .start(&tree);
    sb.run(&[
        "sh",
        "-euc",
        "b=/var/lib/distrod-test
         mkdir -p $b
         mount -t tmpfs -o mode=755 tmpfs $b
         mkdir $b/upper $b/work $b/loaded
         mount -t overlay overlay \
           -o lowerdir=/srv/distrod-test-lower,upperdir=$b/upper,workdir=$b/work $b/loaded",
    ])
    .success();
    let started = Instant::now();
    sb.distrod(&["launch", "--rootfs", DIR_ROOTFS]).success();
    eprintln!("launch --rootfs: {:?}", started.elapsed());
    check_loaded_container(&sb, suite, "--rootfs");
}
