//! Several distros with distrod in one WSL VM (support/sandbox.rs, `first_in_vm`): they
//! share one cgroup tree, one network namespace and one `/mnt/wsl`, each in its own mount,
//! pid, uts and ipc namespaces with its init in `wsl-user/<distro>`, as WSL lays them out.
//! Each distro's sessions land in its own systemd, all at once; a container's cgroup is
//! below its own distro's; stopping one touches nothing of another's.

use std::path::PathBuf;

use crate::support::fakewsl::{DistrodAt, EchoServer, FAKEWSL, FakeWsl, SessionChild};
use crate::support::sandbox::{STAGED_DISTROD, Sandbox, host_cgroup_of, prerequisites};

const INSTALLED: &str = "/opt/distrod/bin/distrod";
const ID_FILE: &str = "/opt/distrod/state/id";

/// The distros of one VM, the first (which made the VM) first; dropped last to first, so
/// the VM outlives its other distros.
struct Distros(Vec<FakeWsl>);

impl std::ops::Deref for Distros {
    type Target = [FakeWsl];
    fn deref(&self) -> &[FakeWsl] {
        &self.0
    }
}

impl Drop for Distros {
    fn drop(&mut self) {
        while let Some(distro) = self.0.pop() {
            drop(distro);
        }
    }
}

/// The VM's first distro, then the others in it, each with distrod enabled and a marker
/// `/etc/which-distro` holding its name; with `own_cgroups` each distro's init runs in a
/// cgroup of its own (WSL 2.9 and later), else all in the VM's root cgroup (before).
fn vm(test: &str, names: &[&'static str], own_cgroups: bool) -> Option<Distros> {
    let tree: PathBuf = prerequisites(test)?;
    let cg = |name: &'static str| own_cgroups.then_some(name);
    let first = FakeWsl::first_in_vm(&tree, DistrodAt::Staged, cg(names[0]));
    let mut all = Distros(vec![first]);
    for name in &names[1..] {
        let next = FakeWsl::in_vm_of(&all[0], &tree, DistrodAt::Staged, cg(name));
        all.0.push(next);
    }
    for (wsl, name) in all.iter().zip(names) {
        wsl.sandbox
            .write_file("/etc/which-distro", format!("{name}\n"));
        wsl.sandbox.run(&[STAGED_DISTROD, "enable"]).success();
    }
    Some(all)
}

/// A Windows-side client left open in each distro (`wsl -e sleep infinity`, outside the
/// container): WSL stops a distro once it has none for its idle timeout, and distrod powers
/// the container off cleanly before that (tests/integration/idle.rs). The tests here need
/// their containers to run for as long as they look at them, however slow the machine.
fn keep_open(all: &Distros) -> Vec<SessionChild<'_>> {
    all.iter()
        .map(|wsl| wsl.spawn_exec("root", &["/bin/sleep", "infinity"]))
        .collect()
}

const WHERE: &str = "echo pid1=$(cat /proc/1/comm) distro=$(cat /etc/which-distro) \
                     shared=$(cat /mnt/wsl/shared/f 2>/dev/null || echo none)";

/// The host pid of the distro's container's systemd, and its cgroup on the host.
fn container_of(sb: &Sandbox) -> (i32, PathBuf) {
    let pid = sb
        .container_systemd()
        .unwrap_or_else(|| panic!("no container runs\n{}", sb.describe_processes()));
    let cg = host_cgroup_of(&pid.to_string()).expect("its cgroup");
    (pid, cg)
}

/// Three distros of one VM: each session lands in its own distro's systemd, all three
/// containers run at once, each in a cgroup `distrod-<its id>` below its distro's; a mount
/// one distro makes under `/mnt/wsl` is seen by all (inside their containers too) and
/// survives another distro's stop; stopping one leaves the others running and reachable.
#[test]
fn three_distros_each_in_their_own_systemd() {
    let names = ["distro-1", "distro-2", "distro-3"];
    let Some(all) = vm("three_distros_each_in_their_own_systemd", &names, true) else {
        return;
    };
    let _open = keep_open(&all);
    for (wsl, name) in all.iter().zip(names) {
        let out = wsl.session("distrod", WHERE);
        out.success();
        assert_eq!(out.field("pid1"), "systemd", "{out}");
        assert_eq!(out.field("distro"), name, "{out}");
    }
    // All three at once, each below its own distro's cgroup, named by its own id.
    let mut ids = Vec::new();
    let mut before = Vec::new();
    for wsl in all.iter() {
        let sb = &wsl.sandbox;
        let (pid, cg) = container_of(sb);
        let id = sb
            .read_file(ID_FILE)
            .expect("enable made the id")
            .trim()
            .to_string();
        let expected = sb.cgroup().join(format!("distrod-{id}"));
        assert!(
            cg.starts_with(&expected),
            "systemd {pid} is in {}, not below {}",
            cg.display(),
            expected.display()
        );
        ids.push(id);
        before.push(pid);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "the distros share an id");

    // A mount made under /mnt/wsl by the first distro (outside its container) is the VM's.
    let first = &all[0].sandbox;
    first
        .run(&[
            "sh",
            "-c",
            "mkdir /mnt/wsl/shared && mount -t tmpfs shared /mnt/wsl/shared && \
             echo from-1 > /mnt/wsl/shared/f",
        ])
        .success();
    for wsl in all.iter() {
        let out = wsl.session("distrod", WHERE);
        out.success();
        assert_eq!(out.field("shared"), "from-1", "{out}");
    }

    // The third distro's container stops: the others run on, untouched and reachable, and
    // the VM's /mnt/wsl keeps the first distro's mount everywhere.
    all[2].sandbox.run(&[INSTALLED, "stop"]).success();
    assert!(all[2].sandbox.container_systemd().is_none());
    for (i, wsl) in all.iter().enumerate().take(2) {
        let (pid, _) = container_of(&wsl.sandbox);
        assert_eq!(pid, before[i], "{} restarted", names[i]);
        let out = wsl.session("distrod", WHERE);
        out.success();
        assert_eq!(out.field("distro"), names[i], "{out}");
        assert_eq!(out.field("shared"), "from-1", "{out}");
    }
    for wsl in all.iter() {
        let out = wsl.sandbox.run(&["cat", "/mnt/wsl/shared/f"]);
        assert_eq!(out.stdout.trim(), "from-1", "{out}");
    }
    // `status` in a distro says nothing of the others; `stop` in one stopped only it.
    let status = all[2].sandbox.run(&[INSTALLED, "status", "--json"]);
    assert_eq!(status.code(), Some(3), "{status}");
    assert_eq!(status.json()["running"], false, "{status}");
    let status = all[1].sandbox.run(&[INSTALLED, "status", "--json"]);
    status.success();
    assert_eq!(
        status.json()["pid"].as_i64(),
        crate::support::sandbox::pid_in_namespace(before[1]).map(i64::from),
        "{status}"
    );
    for wsl in &all[..2] {
        wsl.sandbox.run(&[INSTALLED, "stop"]).success();
    }
}

/// The container's systemd as its distro sees it: its pid and cgroup (relative to the
/// VM's root), from `distrod status` and /proc in the distro.
fn container_in_distro(sb: &Sandbox) -> (i64, String) {
    let status = sb.run(&[INSTALLED, "status", "--json"]);
    status.success();
    let pid = status.json()["pid"].as_i64().expect("a pid");
    let cg = sb.run(&["cat", &format!("/proc/{pid}/cgroup")]);
    cg.success();
    let v2 = cg
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup2 line\n{cg}"));
    (pid, v2.to_string())
}

/// A copy of a distro (`wsl --export` and `--import`) carries its id; where distros share
/// a cgroup (WSL before 2.9 ran every distro's init in the root cgroup), the copy finds
/// the cgroup of that id held by processes it cannot see, takes a new id, and starts its
/// own container beside the original's, which it never touches.
#[test]
fn a_copy_of_a_distro_takes_a_new_id() {
    let Some(all) = vm(
        "a_copy_of_a_distro_takes_a_new_id",
        &["original", "copy"],
        false,
    ) else {
        return;
    };
    let _open = keep_open(&all);
    let (original, copy) = (&all[0].sandbox, &all[1].sandbox);
    let id = original.read_file(ID_FILE).expect("an id");
    copy.write_file(ID_FILE, &id);
    let out = all[0].session("distrod", WHERE);
    assert_eq!(out.field("distro"), "original", "{out}");
    let before = container_in_distro(original);
    assert_eq!(before.1, format!("/distrod-{}/init.scope", id.trim()));

    let out = all[1].session("distrod", WHERE);
    out.success();
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_eq!(out.field("distro"), "copy", "{out}");
    let new_id = copy.read_file(ID_FILE).expect("an id");
    assert_ne!(new_id.trim(), id.trim(), "the copy kept the original's id");
    assert_eq!(
        container_in_distro(copy).1,
        format!("/distrod-{}/init.scope", new_id.trim())
    );
    assert_eq!(
        container_in_distro(original),
        before,
        "the original's container was touched"
    );
    for wsl in all.iter().rev() {
        wsl.sandbox.run(&[INSTALLED, "stop"]).success();
    }
}

/// Windows' ports are one for all the distros of a VM: a port one distro's proxy serves is
/// refused to another's with one clear line, its /etc/distrod.toml unchanged and the first
/// proxy still serving; at boot, a proxy whose port is taken fails with that line, which
/// `distrod status` shows.
#[test]
fn two_port_proxies_for_one_port_give_one_clear_error() {
    let Some(all) = vm(
        "two_port_proxies_for_one_port_give_one_clear_error",
        &["web", "other"],
        true,
    ) else {
        return;
    };
    let (web, other) = (&all[0].sandbox, &all[1].sandbox);
    // The VM's eth0 (WSL's distros share it), and a server behind it.
    web.add_eth0("10.77.0.2/24");
    let _server = EchoServer::start(web, "10.77.0.2:8080");
    for sb in [web, other] {
        // distrod.exe's `portproxy serve` is the Linux binary's code: it stands in here,
        // the VM's shared network standing in for Windows' ports.
        sb.run(&["cp", INSTALLED, "/opt/distrod/bin/distrod.exe"])
            .success();
    }
    let config = "[portproxy]\nports = [8080]\nlisten = \"127.0.0.1\"\n";
    web.write_file("/etc/distrod.toml", config);
    let none = "[portproxy]\nlisten = \"127.0.0.1\"\n";
    other.write_file("/etc/distrod.toml", none);
    web.run(&[INSTALLED, "launch"]).success();
    let through = |sb: &Sandbox| sb.run(&[FAKEWSL, "send", "127.0.0.1:8080", "1000"]);
    through(web).success();

    other.run(&[INSTALLED, "launch"]).success();
    let out = other.run(&[INSTALLED, "portproxy", "add", "8080"]);
    assert_eq!(out.code(), Some(1), "{out}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(
        lines[0].contains("8080")
            && lines[0].contains("another distro's port proxy")
            && lines[0].contains("unchanged"),
        "{out}"
    );
    assert_eq!(other.read_file("/etc/distrod.toml").as_deref(), Some(none));
    through(web).success();
    through(other).success();

    // Asked for at boot: the unit fails with the line, and says so in `status`.
    other.write_file("/etc/distrod.toml", config);
    other.run(&[INSTALLED, "stop"]).success();
    other.run(&[INSTALLED, "launch"]).success();
    let status = other.run(&[INSTALLED, "status", "--json"]);
    let failed = status.json()["failed"].clone();
    let proxy = failed
        .as_array()
        .and_then(|f| f.iter().find(|u| u["unit"] == "distrod-portproxy.service"))
        .unwrap_or_else(|| panic!("the proxy did not fail\n{status}"));
    assert!(
        proxy["last_log"]
            .as_str()
            .is_some_and(|l| l.contains("another distro's port proxy")),
        "{status}"
    );
    through(web).success();
    for wsl in all.iter().rev() {
        wsl.sandbox.run(&[INSTALLED, "stop"]).success();
    }
}

/// A container that died with its distro (WSL killed it; the distro's /run went with it)
/// leaves its cgroup behind where distros share a cgroup: the distro's next launch removes
/// that stale cgroup of its own and boots afresh, while another distro's running container
/// is never touched.
#[test]
fn a_stale_cgroup_of_its_own_is_cleaned_and_no_other() {
    let Some(all) = vm(
        "a_stale_cgroup_of_its_own_is_cleaned_and_no_other",
        &["crashed", "neighbour"],
        false,
    ) else {
        return;
    };
    let _open = keep_open(&all);
    let (crashed, neighbour) = (&all[0].sandbox, &all[1].sandbox);
    for wsl in all.iter() {
        let out = wsl.session("distrod", WHERE);
        assert_eq!(out.field("pid1"), "systemd", "{out}");
    }
    let theirs = container_in_distro(neighbour);
    let (pid, cg) = container_in_distro(crashed);
    // Killed as WSL's stop kills it (SIGKILL to everything), and the distro's /run gone.
    crashed
        .run(&[
            "sh",
            "-c",
            &format!("kill -KILL {pid}; rm -rf /run/distrod"),
        ])
        .success();
    let stale = crashed.cgroup().join(cg.trim_start_matches('/'));
    let stale_root = stale.parent().expect("distrod-<id>").to_path_buf();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while crashed.run(&["kill", "-0", &pid.to_string()]).code() == Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "systemd survived SIGKILL"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        stale_root.is_dir(),
        "no stale cgroup at {}",
        stale_root.display()
    );
    // A cgroup left below it (empty, as the dead systemd's are).
    let left = stale_root.join("left-by-the-crash");
    std::fs::create_dir(&left).expect("mkdir in the stale cgroup");

    let out = all[0].session("distrod", WHERE);
    out.success();
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    assert_eq!(out.field("distro"), "crashed", "{out}");
    let (new_pid, new_cg) = container_in_distro(crashed);
    assert_ne!(new_pid, pid);
    assert_eq!(new_cg, cg, "the same distro, the same cgroup");
    assert!(!left.exists(), "the stale cgroup was not removed");
    assert_eq!(
        container_in_distro(neighbour),
        theirs,
        "the neighbour was touched"
    );
    for wsl in all.iter().rev() {
        wsl.sandbox.run(&[INSTALLED, "stop"]).success();
    }
}
