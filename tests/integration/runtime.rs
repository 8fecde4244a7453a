//! The container runtime end to end: `distrod launch/exec/stop/status`, the real binary, a
//! real systemd (the rootfs `scripts/build-rootfs.sh` builds), inside a WSL stand-in
//! sandbox (support/sandbox.rs) so that nothing touches this machine.
//!
//! Two scenarios, each booting systemd twice:
//! - the container's rootfs is the distro's own `/` (what `distrod enable` does on WSL);
//! - `--rootfs DIR`, where DIR is an overlay made inside the sandbox over a read-only bind
//!   of the same tree (its own tmpfs upper), marked with a file `/` does not have.

use std::thread;
use std::time::{Duration, Instant};

use crate::support::Output;
use crate::support::sandbox::{Sandbox, prerequisites};

/// Failed units a `degraded` container may have, each with why the sandbox (not the
/// runtime) causes it. Any other failed unit fails the tests.
const JUSTIFIED_FAILED_UNITS: &[(&str, &str)] = &[];

/// The container's own root in the `--rootfs` scenario, inside the sandbox.
const DIR_ROOTFS: &str = "/var/lib/distrod-test/root";

fn exec_user(sb: &Sandbox, user: &str, cmd: &[&str]) -> Output {
    let mut argv = vec!["exec", "-u", user, "--"];
    argv.extend_from_slice(cmd);
    sb.distrod(&argv)
}

/// `status --json` says running, in state `running` (or `degraded` with justified units
/// only), with the given rootfs and a PID; returns the JSON.
fn assert_running(sb: &Sandbox, rootfs: &str) -> serde_json::Value {
    let out = sb.distrod(&["status", "--json"]);
    out.success();
    let json = out.json();
    assert_eq!(json["running"], true, "status says not running\n{out}");
    assert!(
        json["pid"].as_u64().is_some_and(|p| p > 0),
        "no pid in status\n{out}"
    );
    assert!(json["uptime_secs"].is_number(), "no uptime_secs\n{out}");
    assert_eq!(json["rootfs"], rootfs, "wrong rootfs in status\n{out}");
    let failed: Vec<String> = json["failed_units"]
        .as_array()
        .unwrap_or_else(|| panic!("failed_units is not an array\n{out}"))
        .iter()
        .map(|u| u.as_str().unwrap_or_default().to_owned())
        .collect();
    match json["state"].as_str() {
        Some("running") => assert!(failed.is_empty(), "running with failed units\n{out}"),
        Some("degraded") => {
            let unjustified: Vec<&String> = failed
                .iter()
                .filter(|u| !JUSTIFIED_FAILED_UNITS.iter().any(|(j, _)| j == u))
                .collect();
            assert!(
                unjustified.is_empty() && !failed.is_empty(),
                "degraded with failed units {unjustified:?} that nothing justifies\n{}\n{out}",
                sb.exec(&["systemctl", "--no-pager", "--failed", "-l"])
            );
            for u in &failed {
                let why = JUSTIFIED_FAILED_UNITS
                    .iter()
                    .find(|(j, _)| j == u)
                    .unwrap()
                    .1;
                eprintln!("degraded: {u} failed: {why}");
            }
        }
        _ => panic!("state is neither running nor degraded\n{out}"),
    }
    // Plain status agrees.
    let plain = sb.distrod(&["status"]);
    assert_eq!(plain.code(), Some(0), "status exit code\n{plain}");
    json
}

/// Exactly one container init, systemd, which `status` names.
fn assert_one_container(sb: &Sandbox, status: &serde_json::Value) {
    let inits = sb.container_inits();
    assert_eq!(
        inits.len(),
        1,
        "expected exactly one container init, got {inits:?}\n{}",
        sb.describe_processes()
    );
    assert_eq!(inits[0].1, "systemd", "the container's init: {inits:?}");
    // `pid` is in the sandbox's pid namespace: the host pid's NSpid has it second.
    let nspid = std::fs::read_to_string(format!("/proc/{}/status", inits[0].0))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:").map(str::to_owned))
        .unwrap();
    let in_sandbox: u64 = nspid.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(
        status["pid"].as_u64(),
        Some(in_sandbox),
        "status pid is not the container's systemd (NSpid {nspid})"
    );
}

/// What every running container must do: systemd as PID 1, a user's logind session with
/// a working user manager, exit codes passed through, orphans reaped.
fn check_container(sb: &Sandbox) {
    let comm = sb.exec(&["cat", "/proc/1/comm"]);
    comm.success();
    assert_eq!(comm.stdout.trim(), "systemd", "PID 1 inside\n{comm}");

    // A real session for the user: its runtime dir, and its user manager.
    let env = exec_user(
        sb,
        "distrod",
        &["sh", "-c", "id -un; echo \"$XDG_RUNTIME_DIR\""],
    );
    env.success();
    assert_eq!(
        env.stdout.lines().collect::<Vec<_>>(),
        ["distrod", "/run/user/1000"],
        "user and XDG_RUNTIME_DIR\n{env}"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let user = exec_user(sb, "distrod", &["systemctl", "--user", "is-system-running"]);
        let state = user.stdout.trim().to_owned();
        if state == "running" {
            user.success();
            break;
        }
        if (state == "starting" || state == "initializing") && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(200));
            continue;
        }
        panic!(
            "the user manager is not running\n{user}\n{}",
            exec_user(
                sb,
                "distrod",
                &["systemctl", "--user", "--failed", "--no-pager"]
            )
        );
    }

    // Exit codes.
    let seven = sb.exec(&["sh", "-c", "exit 7"]);
    assert_eq!(seven.code(), Some(7), "exit 7\n{seven}");
    let term = sb.exec(&["sh", "-c", "kill -TERM $$"]);
    assert_eq!(term.code(), Some(143), "killed by SIGTERM = 128+15\n{term}");
    let missing = sb.exec(&["/nonexistent"]);
    assert_eq!(missing.code(), Some(127), "command not found\n{missing}");

    // An orphan storm: 3000 background sleeps whose parents exit at once.
    let started = Instant::now();
    let storm = sb.exec(&[
        "sh",
        "-c",
        "for i in $(seq 3000); do (sleep 0.05 &) ; done; sleep 1",
    ]);
    storm.success();
    eprintln!("orphan storm: {:?}", started.elapsed());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = sb.exec(&["ps", "-eo", "stat=,pid=,ppid=,comm="]);
        ps.success();
        let zombies: Vec<&str> = ps
            .stdout
            .lines()
            .filter(|l| l.trim_start().starts_with('Z'))
            .collect();
        if zombies.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "zombies left in the container: {zombies:?}\n{ps}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// `stop` powers off and leaves nothing: only the sandbox's init, its mounts as before the
/// launch, no cgroup directory, no state; `status` then exits 3.
fn stop_and_check(sb: &Sandbox, mountinfo_before: &str) {
    let started = Instant::now();
    sb.distrod(&["stop"]).success();
    eprintln!("stop: {:?}", started.elapsed());
    assert_eq!(
        sb.other_processes(),
        Vec::<i32>::new(),
        "processes left after stop:\n{}",
        sb.describe_processes()
    );
    assert_eq!(
        sb.mountinfo(),
        mountinfo_before,
        "the sandbox's mounts changed across launch + stop"
    );
    assert_eq!(
        sb.cgroup_dirs(),
        Vec::<String>::new(),
        "cgroup directories left under the sandbox's /sys/fs/cgroup"
    );
    let status = sb.distrod(&["status"]);
    assert_eq!(status.code(), Some(3), "status after stop\n{status}");
    // Stopping what is not running is fine.
    sb.distrod(&["stop"]).success();
    // No state left behind (checked last so that the checks above report first).
    // Only the lock file may stay: removing a lock file that others may be waiting on would
    // let two launchers lock different files.
    let left = crate::support::list_dir(&sb.path("/run/distrod"));
    assert!(
        left.iter().all(|f| f == "lock"),
        "/run/distrod holds {left:?} after stop"
    );
    if let Ok(m) = std::fs::metadata(sb.path("/run/distrod/lock")) {
        assert_eq!(m.len(), 0, "the lock file holds data");
    }
}

/// Runs `n` copies of `argv` at once; returns their outputs.
fn concurrently(sb: &Sandbox, n: usize, argv: &[&str]) -> Vec<Output> {
    thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| sb.run(argv))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn container_of_the_distros_own_root() {
    let Some(tree) = prerequisites("container_of_the_distros_own_root") else {
        return;
    };
    let sb = Sandbox::start(&tree);
    let before = sb.mountinfo();

    // Nothing runs yet.
    let status = sb.distrod(&["status"]);
    assert_eq!(status.code(), Some(3), "status before launch\n{status}");
    let no_launch = sb.distrod(&["exec", "--no-launch", "--", "true"]);
    assert_eq!(no_launch.code(), Some(1), "exec --no-launch\n{no_launch}");
    assert!(sb.container_inits().is_empty(), "--no-launch launched");

    // 20 execs against a stopped container: one launch, all succeed.
    let started = Instant::now();
    let outs = concurrently(&sb, 20, &["distrod", "exec", "--", "true"]);
    eprintln!(
        "20 concurrent exec (with the launch): {:?}",
        started.elapsed()
    );
    for out in &outs {
        out.success();
    }
    let status = assert_running(&sb, "/");
    assert_one_container(&sb, &status);
    eprintln!("status: {status}");

    // launch on a running container: exit 0, the same container.
    sb.distrod(&["launch"]).success();
    assert_one_container(&sb, &status);

    check_container(&sb);
    stop_and_check(&sb, &before);

    // A second boot after the stop.
    let started = Instant::now();
    sb.distrod(&["launch"]).success();
    eprintln!("second launch: {:?}", started.elapsed());
    let status = assert_running(&sb, "/");
    assert_one_container(&sb, &status);
    let comm = sb.exec(&["cat", "/proc/1/comm"]);
    assert_eq!(comm.stdout.trim(), "systemd", "{comm}");
    stop_and_check(&sb, &before);
}

#[test]
fn container_of_a_rootfs_dir() {
    let Some(tree) = prerequisites("container_of_a_rootfs_dir") else {
        return;
    };
    let sb = Sandbox::builder()
        .bind_ro(&tree, "/srv/distrod-test-lower")
        .start(&tree);
    // DIR: an overlay of the read-only tree with its own tmpfs upper, and a marker file
    // that the sandbox's `/` does not have.
    let setup = sb.run(&[
        "sh",
        "-euc",
        "b=/var/lib/distrod-test
         mkdir -p $b
         mount -t tmpfs -o mode=755 tmpfs $b
         mkdir $b/upper $b/work $b/root
         mount -t overlay overlay \
           -o lowerdir=/srv/distrod-test-lower,upperdir=$b/upper,workdir=$b/work $b/root
         echo container-of-a-rootfs-dir > $b/root/etc/distrod-test-marker",
    ]);
    setup.success();
    let before = sb.mountinfo();

    // Five launches at once start one container.
    let started = Instant::now();
    let outs = concurrently(&sb, 5, &["distrod", "launch", "--rootfs", DIR_ROOTFS]);
    eprintln!("5 concurrent launch --rootfs: {:?}", started.elapsed());
    for out in &outs {
        out.success();
    }
    let status = assert_running(&sb, DIR_ROOTFS);
    assert_one_container(&sb, &status);

    // The container's root is DIR, not the sandbox's `/`.
    let marker = sb.exec(&["cat", "/etc/distrod-test-marker"]);
    marker.success();
    assert_eq!(
        marker.stdout.trim(),
        "container-of-a-rootfs-dir",
        "{marker}"
    );

    check_container(&sb);
    stop_and_check(&sb, &before);

    sb.distrod(&["launch", "--rootfs", DIR_ROOTFS]).success();
    let status = assert_running(&sb, DIR_ROOTFS);
    assert_one_container(&sb, &status);
    stop_and_check(&sb, &before);
}

/// The harness itself: the sandbox is the WSL stand-in it claims to be, its init reaps,
/// and dropping it leaves nothing on the host. Needs no runtime, only the rootfs.
#[test]
fn sandbox_is_a_safe_wsl_stand_in() {
    let Some(tree) = prerequisites("sandbox_is_a_safe_wsl_stand_in") else {
        return;
    };
    let sb = Sandbox::start(&tree);
    let cgroup = sb.cgroup().to_path_buf();
    let out = sb.run(&[
        "sh",
        "-c",
        r#"cat /proc/sys/kernel/hostname; cat /proc/1/comm; while read -r k v; do [ "$k" = CapBnd: ] && echo "$k $v"; done </proc/self/status
         while IFS= read -r l; do case $l in 0::*) echo "$l";; esac; done </proc/self/cgroup
         ls /sys/class/net; cat /sys/class/net/lo/operstate
         test -x /opt/distrod/bin/distrod && echo distrod-bound
         test -e /run/WSL && test -x /init && echo wsl-like
         echo x > /proc/sys/kernel/pid_max 2>/dev/null || echo proc-sys-ro
         touch /sys/x 2>/dev/null || echo sys-ro
         touch /opt/distrod/bin/distrod 2>/dev/null || echo distrod-ro"#,
    ]);
    out.success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], sb.name(), "hostname\n{out}");
    assert_eq!(lines[1], "bash", "the sandbox's init\n{out}");
    assert_eq!(sb.init_processes().len(), 3, "{}", sb.describe_processes());
    // Bit 25 = CAP_SYS_TIME, bit 16 = CAP_SYS_MODULE.
    let bnd = lines[2].strip_prefix("CapBnd: ");
    let bnd = u64::from_str_radix(bnd.unwrap_or_else(|| panic!("CapBnd\n{out}")), 16).unwrap();
    assert_eq!(bnd & (1 << 25 | 1 << 16), 0, "bounding set\n{out}");
    assert_ne!(bnd & (1 << 21), 0, "CAP_SYS_ADMIN kept\n{out}");
    assert_eq!(lines[3], "0::/", "cgroup namespace root\n{out}");
    assert_eq!(lines[4], "lo", "only lo\n{out}");
    assert!(matches!(lines[5], "unknown" | "up"), "lo up\n{out}");
    assert_eq!(
        &lines[6..],
        [
            "distrod-bound",
            "wsl-like",
            "proc-sys-ro",
            "sys-ro",
            "distrod-ro"
        ],
        "{out}"
    );
    // The root is rshared (WSL's worst case); /dev is a private tmpfs.
    let mountinfo = sb.mountinfo();
    let root = mountinfo.lines().find(|l| l.split(' ').nth(4) == Some("/"));
    assert!(root.is_some_and(|l| l.contains(" shared:")), "{mountinfo}");
    assert!(
        mountinfo
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/dev") && l.contains(" - tmpfs ")),
        "{mountinfo}"
    );

    // Orphans of the sandbox (not of a container) are reaped by its init.
    sb.run(&[
        "bash",
        "-c",
        "for i in $(seq 300); do (sleep 0.05 &); done; sleep 0.5",
    ])
    .success();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ps = sb.run(&["ps", "-eo", "stat=,pid=,ppid=,comm="]);
        ps.success();
        if !ps.stdout.lines().any(|l| l.trim_start().starts_with('Z'))
            && sb.other_processes().is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "orphans not reaped by the sandbox's init\n{ps}\n{}",
            sb.describe_processes()
        );
        thread::sleep(Duration::from_millis(50));
    }

    drop(sb);
    assert!(!cgroup.exists(), "{} left after drop", cgroup.display());
}
