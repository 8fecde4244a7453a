//! A stand-in for a WSL2 distro that a test can boot containers in without touching this
//! machine. Rules for booting a real systemd on a shared test machine, all followed here:
//! its own network, cgroup and mount namespaces, a private /dev, a read-only /proc/sys,
//! no CAP_SYS_TIME or CAP_SYS_MODULE, `/` made private before anything is mounted, only
//! processes it started killed (by pid), and its cgroups removed afterwards.
//!
//! [`Sandbox::start`] makes, for one test:
//! - a cgroup of its own under the host's cgroup2 mount (`distrod-test-<pid>-<n>`), which
//!   becomes the root of the sandbox's cgroup namespace and of its `/sys/fs/cgroup`;
//! - new net (only `lo`, up), cgroup, mount, pid, uts and ipc namespaces, with `CAP_SYS_TIME`
//!   and `CAP_SYS_MODULE` out of the bounding set of everything in them;
//! - a root that is an overlay of the rootfs tree (read-only lower; the upper and work dirs
//!   live in a temporary directory), with a fresh `/proc` (`/proc/sys` read-only), `/sys`
//!   read-only, cgroup2 at `/sys/fs/cgroup`, a private tmpfs `/dev`, a tmpfs `/run` with
//!   `/run/WSL`, a fake `/init`, its own hostname, the binary under test at
//!   `/opt/distrod/bin/distrod` (read-only), `pivot_root`ed into and then made `rshared`
//!   (the worst case for a runtime's mounts; [`SandboxBuilder::wsl_namespaces`] has WSL's
//!   own propagation instead);
//! - a PID 1 standing in for WSL's `/init`, which only reaps orphans (a bash waiting on an
//!   idle `sleep infinity`: [`Sandbox::init_processes`]).
//!
//! Builder options: [`SandboxBuilder::wsl_like`] adds what WSL sessions and interop meet
//! (shared `/proc` and `/mnt/wsl`, WSLg's `/mnt/wslg`, `/mnt/c/Windows`, and the `fakewsl`
//! relay/client at `/opt/fakewsl/fakewsl`, see support/fakewsl.rs);
//! [`SandboxBuilder::wsl_namespaces`] adds WSL's two mount namespaces with their Windows
//! drives (see below); [`SandboxBuilder::distrod_not_installed`] stages the binary under
//! test at `/usr/lib/distrod-test/distrod` and leaves `/opt/distrod` absent.
//!
//! WSL's two mount namespaces ([`SandboxBuilder::wsl_namespaces`]): WSL's init keeps an
//! elevated and a plain mount namespace per distro, the same tree with the Windows drives
//! served with the administrator's token in one and the plain token in the other, and
//! starts each session in the one matching its Windows process. Here the sandbox's own
//! mount namespace (its PID 1's, where [`Sandbox::run`] runs) is the first, with the
//! elevation asked for; the second is made from it by `unshare -m` once its drive is
//! mounted (shared mounts stay peers), its drive unmounted and mounted again, and is kept
//! by a keeper process, a child of the sandbox's PID 1 ending as `sleep infinity`
//! ([`Sandbox::init_processes`] counts it). The propagation is WSL's: `/` private,
//! `/proc`, `/sys`, `/dev`, `/run`, `/mnt/wsl` and `/mnt/wslg` shared, drives private. The
//! drive `C:` is a tmpfs of its own in each namespace (source `C:\` in mountinfo, as
//! drvfs shows it) holding `marker` (`ADMIN` or `user`) and `Windows/System32`;
//! [`Sandbox::mount_drive`] adds one later. [`Sandbox::run_in`] runs a command in either.
//!
//! Dropping the sandbox kills its PID 1 (so the kernel kills everything in its pid
//! namespace, nested containers and the keeper included, and the mount namespaces go with
//! them), waits for the cgroup to empty, removes the cgroup directories depth-first and
//! then the overlay's directories. Nothing is mounted in the host's mount namespace at any time.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::{Output, RUN_TIMEOUT, drain, join_text, wait_with_deadline};

/// The setup script run as the sandbox's PID 1 before it `exec`s the reaper.
const INIT_SCRIPT: &str = include_str!("sandbox-init.sh");

/// `PATH` inside the sandbox: first the binary under test, so `run(&["distrod", ..])`
/// runs it.
const INSIDE_PATH: &str =
    "/opt/distrod/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where [`SandboxBuilder::distrod_not_installed`] puts the binary under test.
pub const STAGED_DISTROD: &str = "/usr/lib/distrod-test/distrod";

/// `PATH` of a sandbox with a staged binary: an installed one (once `distrod install` ran)
/// comes first, the staged one otherwise.
const STAGED_PATH: &str = "/opt/distrod/bin:/usr/lib/distrod-test:\
                           /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where [`SandboxBuilder::wsl_like`] binds the `fakewsl` binary.
pub const FAKEWSL_INSIDE: &str = "/opt/fakewsl/fakewsl";

/// The capabilities no test may hand to a container (the clock and kernel modules are the
/// host's), dropped from the bounding set of the sandbox and of every command run in it.
const BOUNDING_SET: &str = "-sys_time,-sys_module";

/// Longest the sandbox may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Host tools the sandbox is made with (util-linux and iproute2).
pub const HOST_TOOLS: &[&str] = &["unshare", "nsenter", "setpriv", "mount", "ip", "hostname"];

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The text of `marker` on a drive served with the administrator's token.
pub const ELEVATED_MARKER: &str = "ADMIN";
/// The text of `marker` on a drive served with the plain token.
pub const PLAIN_MARKER: &str = "user";

/// What a test may add to a sandbox before it starts.
#[derive(Default)]
pub struct SandboxBuilder {
    binds: Vec<(PathBuf, PathBuf)>,
    wsl_like: bool,
    /// `Some(first_elevated)`: WSL's two mount namespaces.
    wsl_namespaces: Option<bool>,
    distrod_not_installed: bool,
    vm: Option<VmRole>,
}

/// A sandbox's place in a WSL VM of several distros ([`SandboxBuilder::first_in_vm`],
/// [`SandboxBuilder::in_vm_of`]).
#[derive(Clone)]
enum VmRole {
    /// The first distro: makes the VM (its cgroup namespace, network and `/mnt/wsl`).
    First { distro: Option<String> },
    /// A later one, in the VM of the first.
    Member { vm: Vm, distro: Option<String> },
}

/// What a VM's later distros join: its first distro's PID 1 (for the cgroup and network
/// namespaces), the keeper of the VM's mount namespace, and paths on the host.
#[derive(Clone)]
struct Vm {
    pid1: i32,
    keeper: i32,
    /// The VM's cgroup on the host (the root of its cgroup namespace).
    root: PathBuf,
    /// The VM's `/mnt/wsl` tmpfs: a shared mount in the keeper's mount namespace.
    wsl: PathBuf,
}

impl SandboxBuilder {
    /// Makes the sandbox look like WSL where sessions and interop are concerned: `/proc`
    /// mounted shared (as WSL does), `/mnt/wsl` a shared tmpfs, `/mnt/wslg` with
    /// `.X11-unix/X0`, `runtime-dir/wayland-0` (dir 0700, uid 1000) and `PulseServer`,
    /// empty `/mnt/c/Windows/System32`, and the `fakewsl` binary (built on demand) read-only
    /// at [`FAKEWSL_INSIDE`].
    pub fn wsl_like(mut self) -> SandboxBuilder {
        self.wsl_like = true;
        self
    }

    /// [`SandboxBuilder::wsl_like`] with WSL's two mount namespaces (see the module
    /// documentation): the sandbox's own is the first, elevated when `first_elevated`, the
    /// second has the other elevation. Drive `C:` in each, marker [`ELEVATED_MARKER`] or
    /// [`PLAIN_MARKER`]; WSL's propagation instead of the default mode's shared `/`.
    pub fn wsl_namespaces(mut self, first_elevated: bool) -> SandboxBuilder {
        self.wsl_like = true;
        self.wsl_namespaces = Some(first_elevated);
        self
    }

    /// The binary under test read-only at [`STAGED_DISTROD`] instead of
    /// `/opt/distrod/bin/distrod`, and no `/opt/distrod`: the tree as it is before
    /// `distrod install`. [`Sandbox::run`] still finds `distrod` by name.
    pub fn distrod_not_installed(mut self) -> SandboxBuilder {
        self.distrod_not_installed = true;
        self
    }

    /// The first distro of a WSL VM that later sandboxes join ([`SandboxBuilder::in_vm_of`]),
    /// as WSL lays one out: the sandbox's cgroup is the VM's whole tree (the root of a
    /// cgroup namespace all its distros share, as WSL gives a distro none of its own);
    /// with a `distro` name, each distro's init runs in `wsl-user/<distro>` below it (WSL
    /// 2.9 and later), without one in the VM's root cgroup, all distros together (WSL
    /// before 2.9: then [`Sandbox::processes`] and what builds on it see every distro's
    /// processes, and only the first distro removes the cgroup); the network
    /// namespace is the VM's, and `/mnt/wsl` is one tmpfs shared by every distro (a mount
    /// made under it in one appears in all). The VM's mount namespace, a private copy of
    /// the host's in which that tmpfs is the only shared mount, is held by a keeper
    /// process; each distro's mount namespace is made from it, so nothing is ever mounted
    /// in the host's. Implies [`SandboxBuilder::wsl_like`].
    pub fn first_in_vm(mut self, distro: Option<&str>) -> SandboxBuilder {
        self.wsl_like = true;
        self.vm = Some(VmRole::First {
            distro: distro.map(str::to_string),
        });
        self
    }

    /// Another distro, `distro`, of the VM that `vm` (made with
    /// [`SandboxBuilder::first_in_vm`]) is the first of: its own mount, pid, uts and ipc
    /// namespaces and root, and the VM's cgroup tree, network and `/mnt/wsl`.
    pub fn in_vm_of(mut self, vm: &Sandbox, distro: Option<&str>) -> SandboxBuilder {
        self.wsl_like = true;
        self.vm = Some(VmRole::Member {
            vm: vm
                .vm
                .clone()
                .expect("in_vm_of: that sandbox is not the first of a VM"),
            distro: distro.map(str::to_string),
        });
        self
    }

    /// Binds host directory `host` read-only at `inside` (absolute) in the sandbox.
    pub fn bind_ro(mut self, host: &Path, inside: &str) -> SandboxBuilder {
        assert!(inside.starts_with('/'), "{inside}: not an absolute path");
        self.binds.push((host.to_path_buf(), PathBuf::from(inside)));
        self
    }

    pub fn start(self, rootfs_tree: &Path) -> Sandbox {
        Sandbox::start_with(rootfs_tree, self)
    }
}

/// One running sandbox; see the module documentation.
pub struct Sandbox {
    name: String,
    /// The sandbox's cgroup on the host (root of its cgroup namespace).
    cgroup: PathBuf,
    /// Holds upper/, work/, merged/ (a mount point only inside the sandbox), init.sh, logs.
    dir: Option<tempfile::TempDir>,
    /// `unshare --fork`, whose child is the sandbox's PID 1.
    unshare: Option<Child>,
    /// The sandbox's PID 1, as the host sees it.
    pid1: Option<i32>,
    /// `PATH` of the commands run inside.
    inside_path: &'static str,
    /// WSL's two mount namespaces, when asked for.
    namespaces: Option<Namespaces>,
    /// The VM this sandbox is a distro of.
    vm: Option<Vm>,
    /// The first distro of a VM: the keeper of the VM's mount namespace, and the VM's
    /// cgroup (removed after the distro's own).
    vm_keeper: Option<Child>,
    vm_root: Option<PathBuf>,
    /// False for a distro that shares the VM's root cgroup with the first.
    owns_cgroup: bool,
}

/// A VM distro's cgroup on the host: `wsl-user/<distro>` below the VM's, or the VM's own.
fn distro_cgroup(vm_root: &Path, distro: Option<&str>) -> PathBuf {
    match distro {
        Some(d) => vm_root.join("wsl-user").join(d),
        None => vm_root.to_path_buf(),
    }
}

/// The two mount namespaces of a [`SandboxBuilder::wsl_namespaces`] sandbox.
#[derive(Clone, Copy)]
struct Namespaces {
    /// Whether the first (the sandbox's PID 1's) is the elevated one.
    first_elevated: bool,
    /// The keeper of the second, host pid (a child of the sandbox's PID 1).
    keeper: i32,
}

impl Sandbox {
    /// The host tools the sandbox needs and lacks.
    pub fn missing_tools() -> Vec<&'static str> {
        HOST_TOOLS
            .iter()
            .copied()
            .filter(|tool| {
                !std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                    .chain(["/usr/sbin".into(), "/sbin".into()])
                    .any(|dir| dir.join(tool).is_file())
            })
            .collect()
    }

    pub fn builder() -> SandboxBuilder {
        SandboxBuilder::default()
    }

    /// Starts a sandbox whose root is an overlay of `rootfs_tree` (never written to).
    pub fn start(rootfs_tree: &Path) -> Sandbox {
        Sandbox::start_with(rootfs_tree, SandboxBuilder::default())
    }

    fn start_with(rootfs_tree: &Path, builder: SandboxBuilder) -> Sandbox {
        assert!(
            rootfs_tree.join("usr/bin").is_dir(),
            "{}: not a rootfs tree",
            rootfs_tree.display()
        );
        let name = format!(
            "distrod-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        // A distro of a VM runs in `wsl-user/<distro>` of the VM's cgroup, which its init
        // script creates; the first distro makes the VM's.
        let (vm_root, cgroup) = match &builder.vm {
            None => (None, host_cgroup2_parent().join(&name)),
            Some(VmRole::First { distro }) => {
                let root = host_cgroup2_parent().join(&name);
                let own = distro_cgroup(&root, distro.as_deref());
                (Some(root), own)
            }
            Some(VmRole::Member { vm, distro }) => {
                (None, distro_cgroup(&vm.root, distro.as_deref()))
            }
        };
        // A distro in the VM's root cgroup shares it: only the first distro removes it.
        let owns_cgroup = !matches!(&builder.vm, Some(VmRole::Member { distro: None, .. }));
        let made = vm_root.as_ref().unwrap_or(&cgroup);
        if builder.vm.is_none() || vm_root.is_some() {
            fs::create_dir(made)
                .unwrap_or_else(|e| panic!("create cgroup {}: {e}", made.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{name}."))
            .tempdir()
            .expect("create the sandbox's directory");
        // From here on, Drop cleans up whatever exists.
        let mut sandbox = Sandbox {
            name,
            cgroup,
            dir: Some(dir),
            unshare: None,
            pid1: None,
            inside_path: if builder.distrod_not_installed {
                STAGED_PATH
            } else {
                INSIDE_PATH
            },
            namespaces: None,
            vm: None,
            vm_keeper: None,
            vm_root: vm_root.clone(),
            owns_cgroup,
        };
        let d = sandbox.dir().to_path_buf();
        for sub in ["upper", "work", "merged"] {
            fs::create_dir(d.join(sub)).expect("create an overlay directory");
        }
        let binds: String = builder
            .binds
            .iter()
            .map(|(host, inside)| format!("{}\t{}\n", host.display(), inside.display()))
            .collect();
        fs::write(d.join("binds"), binds).expect("write the binds list");
        fs::write(d.join("init.sh"), INIT_SCRIPT).expect("write the init script");
        let log = fs::File::create(d.join("init.log")).expect("create the init log");
        let mut options: Vec<PathBuf> = Vec::new();
        if builder.wsl_like {
            options.push("--wsl-like".into());
            options.push(super::fakewsl::fakewsl_binary());
        }
        if let Some(first_elevated) = builder.wsl_namespaces {
            options.push("--wsl-namespaces".into());
            options.push(if first_elevated { "elevated" } else { "plain" }.into());
        }
        if builder.distrod_not_installed {
            options.push("--distrod-at".into());
            options.push(STAGED_DISTROD.into());
        }

        // `sh` moves itself into the sandbox's cgroup before `unshare --cgroup`, so that
        // cgroup is the namespace's root; the bounding set is cut before any namespace
        // exists, so nothing inside can get those capabilities back. A distro of a VM
        // starts in the VM's cgroup and mount namespace (and, but for the first, its
        // cgroup and network namespaces), and its init moves to `wsl-user/<distro>`.
        let (enter_cgroup, namespaces) = match &builder.vm {
            None => (
                sandbox.cgroup.clone(),
                "unshare --net --cgroup --mount --pid --uts --ipc --fork --kill-child \
                 --propagation private"
                    .to_string(),
            ),
            Some(role) => {
                let (vm_root, keeper, join, distro) = match role {
                    VmRole::First { distro } => {
                        let root = vm_root.clone().expect("the VM's cgroup");
                        let keeper = sandbox.start_vm_keeper(&root);
                        (root, keeper, String::new(), distro)
                    }
                    VmRole::Member { vm, distro } => (
                        vm.root.clone(),
                        vm.keeper,
                        format!(
                            "--cgroup=/proc/{0}/ns/cgroup --net=/proc/{0}/ns/net",
                            vm.pid1
                        ),
                        distro,
                    ),
                };
                let new = if join.is_empty() {
                    "--net --cgroup "
                } else {
                    ""
                };
                if let Some(distro) = distro {
                    options.push("--cgroup-dir".into());
                    options.push(format!("wsl-user/{distro}").into());
                }
                options.push("--vm-wsl".into());
                options.push(match role {
                    VmRole::First { .. } => d.join("vm-wsl"),
                    VmRole::Member { vm, .. } => vm.wsl.clone(),
                });
                (
                    vm_root,
                    format!(
                        "nsenter --mount=/proc/{keeper}/ns/mnt {join} -- unshare {new}--mount \
                         --pid --uts --ipc --fork --kill-child --propagation unchanged"
                    ),
                )
            }
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                r#"echo $$ > "$1/cgroup.procs" || exit 125
                   shift
                   exec setpriv --bounding-set "$0" {namespaces} -- bash "$@""#
            ))
            .arg(BOUNDING_SET)
            .arg(&enter_cgroup)
            .arg(d.join("init.sh"))
            .arg(&d)
            .arg(rootfs_tree)
            .arg(env!("CARGO_BIN_EXE_distrod"))
            .arg(&sandbox.name)
            .args(&options)
            .env("PATH", host_path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup the log"))
            .stderr(log)
            .spawn()
            .expect("start unshare");
        let unshare_pid = child.id() as i32;
        sandbox.unshare = Some(child);

        let deadline = Instant::now() + START_TIMEOUT;
        while !d.join("ready").exists() {
            if sandbox.pid1.is_none() {
                sandbox.pid1 = first_child(unshare_pid);
            }
            if let Some(status) = sandbox.unshare.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "the sandbox exited during its setup ({status}):\n{}",
                    fs::read_to_string(d.join("init.log")).unwrap_or_default()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "the sandbox was not up after {START_TIMEOUT:?}:\n{}",
                    fs::read_to_string(d.join("init.log")).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
        if sandbox.pid1.is_none() {
            sandbox.pid1 = first_child(unshare_pid);
        }
        let pid1 = sandbox.pid1.expect("the sandbox's PID 1");
        // Wait until the setup script has exec'd the reaper.
        let is_reaper = || {
            let comm = fs::read_to_string(format!("/proc/{pid1}/comm")).unwrap_or_default();
            let cmdline = fs::read_to_string(format!("/proc/{pid1}/cmdline")).unwrap_or_default();
            comm.trim() == "bash" && cmdline.contains("sleep infinity")
        };
        while !is_reaper() {
            assert!(
                Instant::now() < deadline,
                "the sandbox's init did not start"
            );
            thread::sleep(Duration::from_millis(10));
        }
        if let Some(first_elevated) = builder.wsl_namespaces {
            let inside: i32 = fs::read_to_string(d.join("keeper"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .expect("the init script wrote the keeper's pid");
            let keeper = children_of(pid1)
                .into_iter()
                .find(|&p| pid_in_namespace(p) == Some(inside))
                .expect("the keeper of the second mount namespace runs");
            sandbox.namespaces = Some(Namespaces {
                first_elevated,
                keeper,
            });
        }
        match &builder.vm {
            Some(VmRole::First { .. }) => {
                sandbox.vm = Some(Vm {
                    pid1,
                    keeper: sandbox.vm_keeper.as_ref().expect("the VM's keeper").id() as i32,
                    root: sandbox.vm_root.clone().expect("the VM's cgroup"),
                    wsl: d.join("vm-wsl"),
                })
            }
            Some(VmRole::Member { vm, .. }) => sandbox.vm = Some(vm.clone()),
            None => {}
        }
        sandbox
    }

    /// The keeper of a new VM's mount namespace (see [`SandboxBuilder::first_in_vm`]): a
    /// private copy of the host's, made by `unshare -m`, with a tmpfs at `<dir>/vm-wsl`
    /// mounted shared (the VM's `/mnt/wsl`); it ends as `sleep infinity` in the VM's
    /// cgroup. Returns its pid once the tmpfs is there.
    fn start_vm_keeper(&mut self, vm_root: &Path) -> i32 {
        let d = self.dir().to_path_buf();
        fs::create_dir(d.join("vm-wsl")).expect("create the VM's /mnt/wsl");
        let child = Command::new("sh")
            .arg("-c")
            .arg(
                r#"echo $$ > "$0/cgroup.procs" || exit 125
                   exec unshare --mount --propagation private -- sh -c '
                       mount -t tmpfs -o mode=755,nosuid,nodev,size=16m vm-wsl "$0" &&
                       mount --make-shared "$0" && : > "$1" && exec sleep infinity' "$1" "$2""#,
            )
            .arg(vm_root)
            .arg(d.join("vm-wsl"))
            .arg(d.join("vm-ready"))
            .env("PATH", host_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the VM's keeper");
        let pid = child.id() as i32;
        self.vm_keeper = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while !d.join("vm-ready").exists() {
            if let Some(status) = self.vm_keeper.as_mut().unwrap().try_wait().unwrap() {
                panic!("the VM's keeper exited during its setup ({status})");
            }
            assert!(Instant::now() < deadline, "the VM's keeper did not come up");
            thread::sleep(Duration::from_millis(10));
        }
        pid
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("the sandbox's directory").path()
    }

    /// The sandbox's name, also its hostname and its cgroup's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The sandbox's PID 1 as the host sees it.
    pub fn pid1(&self) -> i32 {
        self.pid1.expect("the sandbox is up")
    }

    /// The sandbox's cgroup directory on the host, which is `/sys/fs/cgroup` inside.
    pub fn cgroup(&self) -> &Path {
        &self.cgroup
    }

    /// A path inside the sandbox, reached from the host through its PID 1's root.
    pub fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root", self.pid1())).join(inside.trim_start_matches('/'))
    }

    /// The sandbox's `/proc/1/mountinfo`.
    pub fn mountinfo(&self) -> String {
        fs::read_to_string(format!("/proc/{}/mountinfo", self.pid1()))
            .expect("read the sandbox's mountinfo")
    }

    /// Writes `contents` to `inside` (absolute; parent directories created, owned by
    /// root), through the sandbox's root.
    pub fn write_file(&self, inside: &str, contents: impl AsRef<[u8]>) {
        assert!(inside.starts_with('/'), "{inside}: not an absolute path");
        let path = self.path(inside);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create the parent of {inside} in the sandbox: {e}"));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {inside} in the sandbox: {e}"));
    }

    /// Reads `inside` (absolute) through the sandbox's root; `None` when it is missing.
    pub fn read_file(&self, inside: &str) -> Option<String> {
        match fs::read_to_string(self.path(inside)) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("read {inside} in the sandbox: {e}"),
        }
    }

    /// [`Sandbox::run`] as `user` (a name or uid in the sandbox's /etc/passwd): its uid,
    /// primary gid and groups (`setpriv --init-groups`), and the environment `setpriv
    /// --reset-env` gives (HOME, USER, LOGNAME, SHELL, a default PATH).
    pub fn run_as(&self, user: &str, argv: &[&str]) -> Output {
        self.run_as_with_timeout(user, argv, RUN_TIMEOUT)
    }

    /// [`Sandbox::run_as`] with a shorter limit (`None` status in the output when it hit it).
    pub fn run_as_with_timeout(&self, user: &str, argv: &[&str], timeout: Duration) -> Output {
        self.run_with_timeout(&self.as_user(user, argv), timeout)
    }

    /// [`Sandbox::command`] as `user`, as [`Sandbox::run_as`] runs it.
    pub fn command_as(&self, user: &str, argv: &[&str]) -> Command {
        self.command(&self.as_user(user, argv))
    }

    /// The seven fields of `user`'s line (a name or uid) in the sandbox's /etc/passwd.
    pub fn passwd_entry(&self, user: &str) -> Vec<String> {
        let passwd = self
            .read_file("/etc/passwd")
            .expect("the sandbox has /etc/passwd");
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() == 7 && (f[0] == user || f[2] == user))
            .map(|f| f.into_iter().map(str::to_owned).collect())
            .unwrap_or_else(|| panic!("no user {user} in the sandbox's /etc/passwd:\n{passwd}"))
    }

    /// `setpriv` switching to `user`, then `argv`.
    fn as_user(&self, user: &str, argv: &[&str]) -> Vec<String> {
        let gid = &self.passwd_entry(user)[3];
        let mut full: Vec<String> = vec![
            "setpriv".into(),
            format!("--reuid={user}"),
            format!("--regid={gid}"),
            "--init-groups".into(),
            "--reset-env".into(),
            "--".into(),
        ];
        full.extend(argv.iter().map(|a| a.to_string()));
        full
    }

    /// Runs `argv` inside the sandbox as root, as a WSL session would: in the sandbox's
    /// cgroup and all its namespaces, at its root, with `PATH` starting at
    /// `/opt/distrod/bin`, stdin `/dev/null`, and the reduced bounding set. Killed after
    /// the suite's run timeout.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.run_with_timeout(argv, RUN_TIMEOUT)
    }

    /// [`Sandbox::run`] with a shorter limit (`None` status in the output when it hit it).
    pub fn run_with_timeout<S: AsRef<str>>(&self, argv: &[S], timeout: Duration) -> Output {
        self.run_command(self.command(argv), argv, "", timeout)
    }

    /// [`Sandbox::run`] in WSL's elevated (`elevated`) or plain mount namespace of a
    /// [`SandboxBuilder::wsl_namespaces`] sandbox; every other namespace is the sandbox's.
    pub fn run_in(&self, elevated: bool, argv: &[&str]) -> Output {
        self.run_in_with_timeout(elevated, argv, RUN_TIMEOUT)
    }

    /// [`Sandbox::run_in`] with a shorter limit (`None` status in the output when it hit it).
    pub fn run_in_with_timeout<S: AsRef<str>>(
        &self,
        elevated: bool,
        argv: &[S],
        timeout: Duration,
    ) -> Output {
        let tag = if elevated { " elevated" } else { " plain" };
        self.run_command(self.command_in(elevated, argv), argv, tag, timeout)
    }

    /// [`Sandbox::run_in`] as `user`, as [`Sandbox::run_as`] runs it.
    pub fn run_in_as(&self, elevated: bool, user: &str, argv: &[&str]) -> Output {
        self.run_in_with_timeout(elevated, &self.as_user(user, argv), RUN_TIMEOUT)
    }

    /// Runs `cmd` (spawning `argv`) to its end or `timeout`; `tag` says where in messages.
    fn run_command<S: AsRef<str>>(
        &self,
        mut cmd: Command,
        argv: &[S],
        tag: &str,
        timeout: Duration,
    ) -> Output {
        let words: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
        let command = format!("[{}{tag}] {}", self.name, words.join(" "));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start `{command}`: {e}"));
        let stdout = drain(child.stdout.take().expect("piped stdout"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let status = wait_with_deadline(&mut child, timeout);
        Output {
            command,
            status,
            stdout: join_text(stdout),
            stderr: join_text(stderr),
        }
    }

    /// The command [`Sandbox::run`] spawns, with piped stdout and stderr.
    pub fn command<S: AsRef<str>>(&self, argv: &[S]) -> Command {
        self.command_at(self.pid1(), argv)
    }

    /// The command [`Sandbox::run_in`] spawns, with piped stdout and stderr.
    pub fn command_in<S: AsRef<str>>(&self, elevated: bool, argv: &[S]) -> Command {
        self.command_at(self.namespace_pid(elevated), argv)
    }

    /// A process (host pid) in WSL's elevated or plain mount namespace and every other
    /// namespace of the sandbox: its PID 1 or the keeper of the second namespace.
    pub fn namespace_pid(&self, elevated: bool) -> i32 {
        let ns = self
            .namespaces
            .expect("a sandbox started with SandboxBuilder::wsl_namespaces");
        if elevated == ns.first_elevated {
            self.pid1()
        } else {
            ns.keeper
        }
    }

    /// The mountinfo of WSL's elevated or plain mount namespace.
    pub fn mountinfo_in(&self, elevated: bool) -> String {
        let pid = self.namespace_pid(elevated);
        fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap_or_else(|e| panic!("read the mountinfo of {pid}: {e}"))
    }

    /// A Windows drive mounted now (after the container started, say), as WSL's automount
    /// would: a tmpfs of its own at `/mnt/<letter>` in both namespaces, private, with
    /// `marker` [`ELEVATED_MARKER`] or [`PLAIN_MARKER`] (sandbox-init.sh's mount_drive).
    pub fn mount_drive(&self, letter: char) {
        assert!(letter.is_ascii_lowercase(), "{letter}: not a drive letter");
        let point = format!("/mnt/{letter}");
        let source = format!("{}:\\", letter.to_ascii_uppercase());
        for (elevated, marker) in [(true, ELEVATED_MARKER), (false, PLAIN_MARKER)] {
            self.run_in(
                elevated,
                &[
                    "bash",
                    "-c",
                    INIT_SCRIPT,
                    "sandbox-init.sh",
                    "--mount-drive",
                    &point,
                    &source,
                    marker,
                ],
            )
            .success();
        }
    }

    /// A oneshot unit `slow-boot.service` that keeps the boot from finishing for `secs`
    /// seconds (multi-user.target waits for it, as for a first boot's cloud-init or apt
    /// run), installed in the distro's /etc.
    pub fn slow_boot(&self, secs: u32) {
        self.slow_unit("slow-boot", secs, "");
    }

    /// A oneshot unit `NAME.service` in multi-user.target that takes `secs` seconds, with
    /// `unit_lines` added to its [Unit] section (ordering: `Before=...`).
    pub fn slow_unit(&self, name: &str, secs: u32, unit_lines: &str) {
        self.write_file(
            &format!("/etc/systemd/system/{name}.service"),
            format!(
                "[Unit]\nDescription=a slow start-up job\n{unit_lines}\n[Service]\n\
                 Type=oneshot\nExecStart=/bin/sleep {secs}\n[Install]\n\
                 WantedBy=multi-user.target\n"
            ),
        );
        self.run(&[
            "sh",
            "-c",
            &format!(
                "mkdir -p /etc/systemd/system/multi-user.target.wants && ln -s \
                 /etc/systemd/system/{name}.service /etc/systemd/system/multi-user.target.wants/"
            ),
        ])
        .success();
    }

    /// `distrod ARGS` in the sandbox (the binary under test comes first on its PATH).
    pub fn distrod(&self, args: &[&str]) -> Output {
        let mut argv = vec!["distrod"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// `distrod exec -- CMD` in the sandbox: CMD as root in its container.
    pub fn exec(&self, cmd: &[&str]) -> Output {
        let mut argv = vec!["exec", "--"];
        argv.extend_from_slice(cmd);
        self.distrod(&argv)
    }

    /// `ip ARGS` of the host in the sandbox's network namespace only (the VM's, for a
    /// distro of one).
    pub fn ip(&self, args: &[&str]) {
        let out = Command::new("nsenter")
            .args(["-t", &self.pid1().to_string(), "-n", "ip"])
            .args(args)
            .env("PATH", host_path())
            .output()
            .expect("run nsenter ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An `eth0` like WSL's (a veth whose peer is up) with `address` (`IP/PREFIX`), in the
    /// sandbox's network namespace.
    pub fn add_eth0(&self, address: &str) {
        self.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth0peer",
        ]);
        self.ip(&["addr", "add", address, "dev", "eth0"]);
        self.ip(&["link", "set", "eth0peer", "up"]);
        self.ip(&["link", "set", "eth0", "up"]);
    }

    /// The host pid of the systemd of the container running in the sandbox, if one runs
    /// (one at most).
    pub fn container_systemd(&self) -> Option<i32> {
        match self.container_inits()[..] {
            [] => None,
            // Its shim until it has exec'd systemd.
            [(pid, ref comm)] => (comm == "systemd").then_some(pid),
            ref other => panic!(
                "more than one container runs: {other:?}\n{}",
                self.describe_processes()
            ),
        }
    }

    /// Reads `inside` (absolute) as the container's systemd sees it (its mount namespace,
    /// through `/proc/<pid>/root`): what services see. `None` when it is missing; a
    /// container must run.
    pub fn read_in_container(&self, inside: &str) -> Option<String> {
        assert!(inside.starts_with('/'), "{inside}: not an absolute path");
        let pid = self
            .container_systemd()
            .unwrap_or_else(|| panic!("no container runs\n{}", self.describe_processes()));
        match fs::read_to_string(format!("/proc/{pid}/root{inside}")) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => panic!("read {inside} in the container: {e}"),
        }
    }

    /// The command running `argv` in the namespaces of `target` (a host pid: the sandbox's
    /// PID 1 or the keeper of its second mount namespace).
    fn command_at<S: AsRef<str>>(&self, target: i32, argv: &[S]) -> Command {
        assert!(!argv.is_empty(), "no command to run in the sandbox");
        // nsenter joins the *sandbox* (a WSL session's view); it is never used to join a
        // container, which is what the runtime under test does.
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(
                r#"echo $$ > "$1/cgroup.procs" || exit 125
                   pid=$2; shift 2
                   exec setpriv --bounding-set "$0" nsenter -t "$pid" -a -- "$@""#,
            )
            .arg(BOUNDING_SET)
            .arg(&self.cgroup)
            .arg(target.to_string())
            .args(argv.iter().map(AsRef::as_ref))
            .env_clear()
            .env("PATH", self.inside_path)
            .env("HOME", "/root")
            .env("USER", "root")
            .env("LOGNAME", "root")
            .env("LANG", "C.UTF-8")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Host PIDs of the sandbox's own init: `unshare` (outside, its parent), its PID 1 and
    /// the idle `sleep infinity` that waits on (and the keeper of the second mount
    /// namespace, also a `sleep infinity`, with [`SandboxBuilder::wsl_namespaces`]).
    pub fn init_processes(&self) -> Vec<i32> {
        let pid1 = self.pid1();
        let mut pids = vec![pid1];
        pids.extend(self.unshare.as_ref().map(|c| c.id() as i32));
        pids.extend(self.namespaces.map(|ns| ns.keeper));
        pids.extend(children_of(pid1).into_iter().filter(|p| {
            fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\0infinity\0")
        }));
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Host PIDs of every process in the sandbox besides its own init
    /// ([`Sandbox::init_processes`]).
    pub fn other_processes(&self) -> Vec<i32> {
        let init = self.init_processes();
        self.processes()
            .into_iter()
            .filter(|p| !init.contains(p))
            .collect()
    }

    /// Host PIDs of every process in the sandbox's cgroup tree (its PID 1 included).
    pub fn processes(&self) -> Vec<i32> {
        let mut pids = Vec::new();
        for dir in cgroup_tree(&self.cgroup) {
            if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
                pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        pids.sort_unstable();
        pids
    }

    /// The cgroup directories under the sandbox's `/sys/fs/cgroup`, relative to it, sorted.
    pub fn cgroup_dirs(&self) -> Vec<String> {
        let mut dirs: Vec<String> = cgroup_tree(&self.cgroup)
            .into_iter()
            .filter(|d| d != &self.cgroup)
            .map(|d| d.strip_prefix(&self.cgroup).unwrap().display().to_string())
            .collect();
        dirs.sort();
        dirs
    }

    /// `(host pid, command)` of every process in the sandbox that is PID 1 of a nested pid
    /// namespace (a container's init).
    pub fn container_inits(&self) -> Vec<(i32, String)> {
        self.other_processes()
            .into_iter()
            .filter_map(|pid| {
                let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
                let nspid: Vec<&str> = status
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))?
                    .split_whitespace()
                    .collect();
                // host, sandbox, container...: PID 1 of a namespace below the sandbox's.
                (nspid.len() >= 3 && nspid.last() == Some(&"1")).then(|| {
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    (pid, comm.trim().to_owned())
                })
            })
            .collect()
    }

    /// One line per process in the sandbox (`pid comm cmdline`), for failure messages.
    pub fn describe_processes(&self) -> String {
        self.processes()
            .into_iter()
            .map(|pid| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                format!("{pid} {} {}\n", comm.trim(), cmdline.trim())
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // The PID 1 of the sandbox's pid namespace: killing it kills every process of the
        // namespace and of the namespaces nested in it; the mount namespace goes with them.
        if let Some(pid1) = self.pid1
            && let Some(child) = self.unshare.as_mut()
            && child.try_wait().ok().flatten().is_none()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid1),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        if let Some(mut child) = self.unshare.take() {
            if self.pid1.is_none() {
                // Still in its setup: unshare itself (never anything else).
                let _ = child.kill();
            }
            if wait_with_deadline(&mut child, Duration::from_secs(20)).is_none() {
                eprintln!("sandbox {}: unshare did not exit", self.name);
            }
        }
        // Every process is gone once the cgroup says so; then rmdir depth-first. (A
        // distro in the VM's root cgroup leaves that to the VM's cleanup below.)
        if self.owns_cgroup && self.vm_root.as_ref() != Some(&self.cgroup) {
            remove_cgroup(&self.name, &self.cgroup, "its cgroup");
        }
        // The first distro of a VM: the keeper of its mount namespace, then its cgroup (the
        // other distros' are gone by now: they borrow this sandbox).
        if let Some(mut keeper) = self.vm_keeper.take() {
            let _ = keeper.kill();
            if wait_with_deadline(&mut keeper, Duration::from_secs(20)).is_none() {
                eprintln!("sandbox {}: the VM's keeper did not exit", self.name);
            }
        }
        if let Some(root) = self.vm_root.take() {
            remove_cgroup(&self.name, &root, "the VM's cgroup");
        }
        // The overlay's directories (merged/ was a mount point only in the dead namespace).
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            eprintln!("sandbox {}: remove its directory: {e}", self.name);
        }
    }
}

/// Waits (at most 20 s) until nothing lives in the cgroup `dir` (`what` in messages, for
/// sandbox `name`), then removes it and every cgroup below it, children first.
fn remove_cgroup(name: &str, dir: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while fs::read_to_string(dir.join("cgroup.events"))
        .map(|e| e.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
    {
        if Instant::now() >= deadline {
            eprintln!("sandbox {name}: {what} is still populated");
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut dirs = cgroup_tree(dir);
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        if let Err(e) = fs::remove_dir(&d)
            && e.kind() != ErrorKind::NotFound
        {
            eprintln!("sandbox {name}: rmdir {}: {e}", d.display());
        }
    }
}

/// Where a test's cgroup goes: this process's own cgroup in the host's cgroup2 hierarchy.
fn host_cgroup2_parent() -> PathBuf {
    host_cgroup_of("self").expect("read /proc/self/cgroup")
}

/// The cgroup of a host process (`pid`, or `self`) as a directory of the host's cgroup2
/// mount; None once the process is gone.
pub fn host_cgroup_of(pid: &str) -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo");
    let mount = mountinfo
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next() == Some("cgroup2"))
                .then(|| left.split_whitespace().nth(4).map(unescape_mountinfo))?
        })
        .expect("no cgroup2 mount on this host (/proc/self/mountinfo)");
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_owned))
        .unwrap_or_else(|| "/".to_owned());
    Some(Path::new(&mount).join(own.trim_start_matches('/')))
}

/// Mount points in mountinfo escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("-"), 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `root` and every directory below it.
fn cgroup_tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(entry.path());
                }
            }
            out.push(dir);
        }
    }
    out
}

/// The first child of `pid` (its main thread's), if it has one yet.
fn first_child(pid: i32) -> Option<i32> {
    children_of(pid).into_iter().next()
}

/// The children of `pid`'s main thread, host pids.
fn children_of(pid: i32) -> Vec<i32> {
    fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A host pid's pid in the sandbox's pid namespace (the second field of `NSpid`).
pub fn pid_in_namespace(host_pid: i32) -> Option<i32> {
    fs::read_to_string(format!("/proc/{host_pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The host's `PATH` for the tools that make the sandbox, with the sbin directories.
fn host_path() -> String {
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{path}:/usr/local/sbin:/usr/sbin:/sbin:/usr/bin:/bin")
}

/// The test rootfs tree (`DISTROD_TEST_ROOTFS_TREE`, which scripts/test.sh exports) when
/// this machine can run sandbox tests at all: root, the host tools, a tree with systemd
/// and sudo. Otherwise None, after failing under CI or saying why locally.
pub fn prerequisites(test: &str) -> Option<PathBuf> {
    if !super::require_root(test) {
        return None;
    }
    let missing = Sandbox::missing_tools();
    if !missing.is_empty() {
        super::skip_or_fail(&format!("{test} needs {missing:?} on the host"));
        return None;
    }
    match std::env::var_os("DISTROD_TEST_ROOTFS_TREE") {
        Some(p)
            if Path::new(&p).join("usr/lib/systemd/systemd").exists()
                && Path::new(&p).join("usr/bin/sudo").exists() =>
        {
            Some(p.into())
        }
        _ => {
            super::skip_or_fail(&format!(
                "{test}: DISTROD_TEST_ROOTFS_TREE does not name the test rootfs tree with \
                 systemd and sudo (scripts/test.sh exports `bash scripts/build-rootfs.sh`)"
            ));
            None
        }
    }
}
