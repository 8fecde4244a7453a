//! The container's mount plan as plain data ([`plan`]) and the code that applies it
//! ([`apply`]), step by step, in the shim (PID 1 of the new namespaces, before systemd).
//!
//! Why each step is there:
//! - WSL mounts `/`, `/proc` and `/sys` *shared* (wsl.md). Without `MS_REC|MS_SLAVE` first,
//!   every mount below would propagate back into the distro (an earlier tool broke every
//!   second `wsl -d` session that way). Slave, not private: drives WSL mounts later under
//!   /mnt must still reach the container.
//! - A procfs of the new pid namespace; /proc/sys read-only when the caller's is, so the
//!   container never gets more than the distro had.
//! - cgroup2 on /sys/fs/cgroup, rooted at the container's cgroup namespace. The distro's
//!   mount there has to go first (MNT_DETACH also drops v1 submounts): the kernel refuses
//!   to mount a superblock on the root of a mount of the same superblock (EBUSY).
//! - One /run for the distro: the container keeps the distro's own /run, so what tools
//!   started outside with `wsl -e` make there (Docker Desktop's `/var/run/docker.sock`)
//!   sessions and services see, and what the container's services and systemd make there
//!   (sockets, `/run/systemd`, the bus) `wsl -e` commands see; with WSL's own systemd it
//!   is the same. Why the container once had a fresh tmpfs instead, and how each reason is
//!   met now:
//!   - systemd expects an empty /run at boot: what it (and distrod for it) leaves there is
//!     removed after the container ([`super::stop::clean_run`]: the names of
//!     [`super::stop::RUN_STATE`] that were not there before the launch), also after a
//!     container that died; a link left by one is replaced at the next launch;
//!   - WSL's `/run/WSL/<pid>_interop` entries are named by pids of the distro's pid
//!     namespace, which inside mean other processes (WSL's parent-pid walk would find a
//!     stranger's socket): the container gets a tmpfs of its own on `/run/WSL`, empty at
//!     boot, where entering sessions add entries named by their container pids
//!     ([`super::interop`]);
//!   - the container's marker (`/run/host/container-manager`, which tells distrod it runs
//!     inside) must not be seen outside: `/run/host` is a tmpfs of the container's too,
//!     holding the notify socket, carried over through an O_PATH fd opened beforehand.
//!
//!   - systemd's private socket (`/run/systemd/private`, root's `systemctl`) serves only
//!     processes of the container's pid namespace: the distro's own mount namespace gets
//!     it covered ([`super::privbus`]), so that root's `systemctl` from `wsl -e` uses the
//!     system bus; the container's /run is cut from the distro's mount propagation (it
//!     receives no mounts made outside later) so that the cover stays outside.
//!
//!   The mount namespace is a slave of the distro's, so those two tmpfs, and what systemd
//!   mounts under /run (`/run/user/<uid>`, credentials), stay inside. A tree of another
//!   distro (`--rootfs`) gets a fresh tmpfs /run as before: its systemd's state is not
//!   this distro's.
//! - Runtime-only adjustments in /run, leaving the distro's /etc alone (gone with the
//!   container, so `distrod disable` leaves nothing behind): the units in [`MASKED`]
//!   masked; `d /tmp` instead of Debian's `D /tmp`, which would empty the running distro's
//!   /tmp; with WSLg, `/tmp/.X11-unix` bound read-only from `/mnt/wslg/.X11-unix` after
//!   tmp.mount (and systemd-tmpfiles told to leave it alone); the WSL session variables as
//!   services' DefaultEnvironment; a path unit that re-hooks login accounts when
//!   /etc/passwd changes; `/run/host/container-manager` saying `distrod`.
//! - binfmt_misc: where the distro has it mounted (WSL does), it is mounted in the
//!   container too with a read-only file over its `status`, so that systemd-binfmt's
//!   `--unregister` at shutdown ("-1" to status) cannot remove WSL's VM-wide `WSLInterop`
//!   entry, which would break running `.exe` files in every distro (WSL's
//!   `protectBinfmt` does the same).
//! - Optional DNS servers: a resolv.conf written in the container's /run and bound over
//!   the file /etc/resolv.conf resolves to, in the container only.
//! - /dev/console bound to /dev/null: systemd's status output must not reach the caller.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::{Context, Result};

/// Where the launcher's notify socket appears inside the container.
pub const CONTAINER_NOTIFY: &str = "/run/host/notify";

/// An fd opened (O_PATH) before any mount changes, bound somewhere later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The launcher's notify socket, bound at [`CONTAINER_NOTIFY`].
    Notify,
}

/// Units masked while the container runs, and why: each stalls a boot under WSL or fights
/// WSL for something WSL owns. `unmask` in /etc/distrod.toml keeps any of them; `mask`
/// adds more.
pub const MASKED: &[(&str, &str)] = &[
    (
        "systemd-networkd-wait-online.service",
        "waits for a network WSL configures itself: stalls the boot",
    ),
    (
        "NetworkManager-wait-online.service",
        "waits for a network WSL configures itself: stalls the boot",
    ),
    (
        "systemd-networkd.service",
        "would reconfigure eth0, which WSL configures",
    ),
    ("systemd-networkd.socket", "activates systemd-networkd"),
    (
        "NetworkManager.service",
        "would reconfigure eth0, which WSL configures",
    ),
    (
        "networking.service",
        "ifupdown: would reconfigure eth0, which WSL configures",
    ),
    (
        "systemd-timesyncd.service",
        "WSL keeps the clock in step with Windows",
    ),
    (
        "console-getty.service",
        "there is no console: /dev/console is /dev/null in the container, and setting it up \
         as a terminal makes /dev/null mode 0600 (unusable for every unprivileged process)",
    ),
    ("getty@.service", "there are no virtual terminals"),
    ("serial-getty@.service", "there are no serial lines"),
    (
        "systemd-remount-fs.service",
        "WSL mounts the root file system; remounting it fails",
    ),
    (
        "systemd-modules-load.service",
        "WSL's kernel comes with its modules; loading fails",
    ),
];

/// The unit that binds WSLg's X11 socket directory at /tmp/.X11-unix (see [`wslg_units`]).
pub const X11_UNIT: &str = "distrod-wslg-x11.service";

/// The unit pair that re-hooks login accounts when /etc/passwd changes (chsh, new users).
pub const REHOOK_UNIT: &str = "distrod-rehook";

/// One step of the mount plan; [`apply`] carries them out in order, the first failure
/// ending the launch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// mount(NULL, target, NULL, flags, NULL): propagation change.
    Propagation {
        /// The mount whose propagation changes.
        target: PathBuf,
        /// The propagation type (`MS_SLAVE`, `MS_PRIVATE`), with `MS_REC` for the subtree.
        flags: MsFlags,
    },
    /// mount(2) of a filesystem: `source` of `fstype` on `target`.
    Mount {
        /// The source as mount(2) takes it (`proc`, `tmpfs`, `cgroup2`...).
        source: String,
        /// Where it is mounted (the directory must exist).
        target: PathBuf,
        /// The filesystem type.
        fstype: Option<String>,
        /// The mount flags.
        flags: MsFlags,
        /// Filesystem options (`mode=755`...).
        data: Option<String>,
    },
    /// Bind `source` (MS_REC when `recursive`); a missing target is created like the
    /// source (directory or empty file); skipped when the target is a symlink, which
    /// would be followed in the *outer* tree.
    Bind {
        /// What is bound.
        source: PathBuf,
        /// Where it appears.
        target: PathBuf,
        /// With the mounts under `source` (MS_REC).
        recursive: bool,
    },
    /// Remount a bind mount read-only.
    ReadOnly {
        /// The bind mount.
        target: PathBuf,
    },
    /// umount2(target, MNT_DETACH); "not a mount point" is fine.
    Detach {
        /// The mount point.
        target: PathBuf,
    },
    /// Bind an fd opened before the mounts started.
    BindHeld {
        /// Which fd.
        held: Held,
        /// Where it is bound (created like the fd's file when missing).
        target: PathBuf,
    },
    /// pivot_root(".", ".") in `new_root`, then detach the old root stacked on it.
    PivotRoot {
        /// The container's tree, which becomes `/`.
        new_root: PathBuf,
    },
    /// Create a directory and its missing parents.
    Mkdir {
        /// The directory.
        path: PathBuf,
    },
    /// Create a symlink (and its missing parent directories), replacing a symlink already
    /// there (one a container that died left in the shared /run).
    Symlink {
        /// What the link points to.
        target: PathBuf,
        /// The link itself.
        link: PathBuf,
    },
    /// Write a file (and create its missing parent directories).
    WriteFile {
        /// The file.
        path: PathBuf,
        /// Its whole contents.
        contents: String,
    },
}

impl Step {
    /// A recursive bind (`mount --rbind source target`).
    fn rbind(source: PathBuf, target: PathBuf) -> Step {
        Step::Bind {
            source,
            target,
            recursive: true,
        }
    }

    /// A new mount of the kernel file system `fstype` (its source named after it, as
    /// mount(8) shows it), with `flags` and `data` (its mount options).
    fn new_fs(fstype: &str, target: PathBuf, flags: MsFlags, data: Option<&str>) -> Step {
        Step::Mount {
            source: fstype.into(),
            target,
            fstype: Some(fstype.into()),
            flags,
            data: data.map(Into::into),
        }
    }

    /// A bind of `source` alone (`mount --bind source target`).
    fn bind(source: PathBuf, target: PathBuf) -> Step {
        Step::Bind {
            source,
            target,
            recursive: false,
        }
    }
}

/// What the plan depends on, gathered by the launcher before forking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Inputs {
    /// None: the running distro itself.
    pub rootfs: Option<PathBuf>,
    /// The caller's /proc/sys is read-only.
    pub proc_sys_ro: bool,
    /// WSL paths that exist in the distro, bound into a separate rootfs.
    pub wsl_paths: Vec<PathBuf>,
    /// The container's tree or the distro has a /dev/console, which is bound to /dev/null.
    pub has_console: bool,
    /// binfmt_misc is mounted in the distro (WSL's interop entry lives there).
    pub binfmt: bool,
    /// WSLg's `/mnt/wslg/.X11-unix` exists.
    pub wslg: bool,
    /// The units to mask (see [`MASKED`]).
    pub masks: Vec<String>,
    /// DNS servers for the container's own resolv.conf, and the path (inside the
    /// container's tree, before pivot_root: relative to its root) that /etc/resolv.conf
    /// resolves to, which the file is bound over.
    pub dns: Vec<std::net::IpAddr>,
    /// See `dns`, set with it; None: the container keeps the distro's resolv.conf.
    pub resolv_target: Option<PathBuf>,
    /// DefaultEnvironment of services (and user managers).
    pub service_env: Vec<(String, String)>,
    /// The installed binary, when login accounts are hooked: re-hook on /etc/passwd changes.
    pub rehook: Option<PathBuf>,
    /// The port proxy's unit shipped with distrod ([`PORTPROXY_UNIT_FILE`]), when the
    /// distro has it: linked into the container's /run and started at boot.
    pub portproxy_unit: Option<PathBuf>,
    /// Windows drives of the launching session that services must not see (it is not a
    /// plain session, see [`super::drives`]): detached in the container (or, with a
    /// separate rootfs, not bound into it).
    pub hide_drives: Vec<PathBuf>,
}

/// The port proxy's unit (see `distrod portproxy`), shipped in distrod-rootfs/.
pub const PORTPROXY_UNIT: &str = "distrod-portproxy.service";
/// Where that unit file is installed in a distro ([`Inputs::portproxy_unit`]).
pub const PORTPROXY_UNIT_FILE: &str = "/opt/distrod/lib/systemd/distrod-portproxy.service";

/// Paths WSL provides in a distro that a separate rootfs needs too (`/run/WSL` is carried
/// by fd since /run is replaced; drive letters are added by [`wsl_paths_present`]).
pub const WSL_PATHS: [&str; 7] = [
    "/init",
    "/mnt/wsl",
    "/mnt/wslg",
    "/usr/lib/wsl",
    "/tmp/.X11-unix",
    "/etc/resolv.conf",
    "/run/WSL",
];

/// The WSL paths (and `/mnt/a` .. `/mnt/z`) that exist here.
pub fn wsl_paths_present() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = WSL_PATHS
        .iter()
        .filter(|p| **p != "/run/WSL")
        .map(PathBuf::from)
        .collect();
    v.extend((b'a'..=b'z').map(|c| PathBuf::from(format!("/mnt/{}", c as char))));
    v.retain(|p| p.exists());
    v
}

const NSE: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// The whole mount sequence of the shim, in order.
pub fn plan(inp: &Inputs) -> Vec<Step> {
    let mut v = vec![Step::Propagation {
        target: p("/"),
        flags: MsFlags::MS_REC | MsFlags::MS_SLAVE,
    }];
    // Before pivot_root, the container's tree is under `root`; after it, at /.
    let root = inp.rootfs.clone().unwrap_or_else(|| p("/"));
    let at = |s: &str| root.join(s.trim_start_matches('/'));
    if inp.rootfs.is_none() {
        for d in &inp.hide_drives {
            v.push(Step::Detach { target: d.clone() });
        }
    }
    if inp.rootfs.is_some() {
        // pivot_root needs the new root to be a mount point.
        v.push(Step::rbind(root.clone(), root.clone()));
    }
    v.push(Step::new_fs("proc", at("/proc"), NSE, None));
    if inp.proc_sys_ro {
        v.push(Step::rbind(at("/proc/sys"), at("/proc/sys")));
        v.push(Step::ReadOnly {
            target: at("/proc/sys"),
        });
    }
    if inp.rootfs.is_some() {
        // The distro's /sys (read-only stays read-only: a bind keeps the mount flags) and
        // /dev (on WSL a devtmpfs; in tests a private tmpfs), then WSL's own paths.
        for d in ["/sys", "/dev"] {
            v.push(Step::rbind(p(d), at(d)));
        }
        for w in inp
            .wsl_paths
            .iter()
            .filter(|w| !inp.hide_drives.contains(w))
        {
            v.push(Step::rbind(w.clone(), at(&w.to_string_lossy())));
        }
    }
    v.push(Step::Detach {
        target: at("/sys/fs/cgroup"),
    });
    v.push(Step::new_fs("cgroup2", at("/sys/fs/cgroup"), NSE, None));
    if inp.rootfs.is_some() {
        // Another tree: a /run of its own (its systemd's state is not this distro's).
        v.push(Step::new_fs(
            "tmpfs",
            at("/run"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=755"),
        ));
        for d in ["/run/lock", "/run/WSL"] {
            v.push(Step::Mkdir { path: at(d) });
        }
    } else {
        // The distro's own /run, one for inside and outside (see the module
        // documentation); only WSL's interop entries and the container's marker are the
        // container's own, each on a tmpfs mounted inside only (the mount namespace is a
        // slave: nothing mounted here shows outside). Private first: the cover the distro
        // gets over systemd's private socket must not reach the container.
        v.push(Step::Propagation {
            target: at("/run"),
            flags: MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        });
        for d in ["/run/WSL", "/run/host"] {
            v.push(Step::Mkdir { path: at(d) });
            v.push(Step::new_fs(
                "tmpfs",
                at(d),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
                Some("mode=755,size=1m"),
            ));
        }
    }
    v.push(Step::BindHeld {
        held: Held::Notify,
        target: at(CONTAINER_NOTIFY),
    });
    v.push(Step::WriteFile {
        path: at(super::CONTAINER_MANAGER_FILE),
        contents: "distrod\n".into(),
    });
    if inp.binfmt {
        // A fresh procfs has no binfmt_misc mount; the instance is WSL's (VM-wide).
        v.push(Step::new_fs("binfmt_misc", at(BINFMT), NSE, None));
        v.push(Step::WriteFile {
            path: at("/run/distrod/binfmt_status"),
            contents: "enabled\n".into(),
        });
        v.push(Step::bind(
            at("/run/distrod/binfmt_status"),
            at(&format!("{BINFMT}/status")),
        ));
        v.push(Step::ReadOnly {
            target: at(&format!("{BINFMT}/status")),
        });
    }
    for unit in &inp.masks {
        v.push(Step::Symlink {
            target: p("/dev/null"),
            link: at(&format!("/run/systemd/system/{unit}")),
        });
    }
    v.push(Step::WriteFile {
        path: at("/run/tmpfiles.d/tmp.conf"),
        contents: "d /tmp 1777 root root -\n".into(),
    });
    if inp.wslg {
        v.extend(wslg_units(&at));
    }
    if !inp.service_env.is_empty() {
        let conf = manager_env_conf(&inp.service_env);
        for manager in ["system", "user"] {
            v.push(Step::WriteFile {
                path: at(&format!("/run/systemd/{manager}.conf.d/50-distrod.conf")),
                contents: conf.clone(),
            });
        }
    }
    if let Some(bin) = &inp.rehook {
        v.extend(rehook_units(&at, bin));
    }
    if let Some(unit) = &inp.portproxy_unit {
        v.push(Step::Symlink {
            target: unit.clone(),
            link: at(&format!("/run/systemd/system/{PORTPROXY_UNIT}")),
        });
        v.push(Step::Symlink {
            target: PathBuf::from(format!("../{PORTPROXY_UNIT}")),
            link: at(&format!(
                "/run/systemd/system/multi-user.target.wants/{PORTPROXY_UNIT}"
            )),
        });
    }
    if let (false, Some(target)) = (inp.dns.is_empty(), &inp.resolv_target) {
        v.push(Step::WriteFile {
            path: at("/run/distrod/resolv.conf"),
            contents: resolv_conf(&inp.dns),
        });
        v.push(Step::bind(
            at("/run/distrod/resolv.conf"),
            at(&target.to_string_lossy()),
        ));
    }
    if inp.has_console {
        v.push(Step::bind(p("/dev/null"), at("/dev/console")));
    }
    // Last: everything above was made while the distro's tree (and the O_PATH fds into
    // it) could still be reached; after pivot_root and the detach of the old root, a
    // mount from it can no longer be a bind source (EINVAL).
    if let Some(r) = &inp.rootfs {
        v.push(Step::PivotRoot {
            new_root: r.clone(),
        });
    }
    // Shared from here on (still a slave of the distro, so nothing goes back there): the
    // mount namespace a session of another elevation gets is a slave copy of this one, and
    // must receive what systemd and logind mount later (/run/user/UID, ...). systemd leaves
    // a container's propagation as its manager set it.
    v.push(Step::Propagation {
        target: p("/"),
        flags: MsFlags::MS_REC | MsFlags::MS_SHARED,
    });
    v
}

/// The O_PATH fds of [`Held`] paths, opened before the plan runs.
const BINFMT: &str = "/proc/sys/fs/binfmt_misc";

/// WSLg's X11 sockets at /tmp/.X11-unix, surviving a tmpfs /tmp (`tmp.mount`, trixie on:
/// the bind is made after it) and systemd-tmpfiles' `D! /tmp/.X11-unix` (an empty x11.conf
/// in /run overrides the vendor one).
///
/// A oneshot service does the bind, not a mount unit: systemd starts no mount unit while its
/// mountinfo monitor is rate-limited (more than 5 mount changes in a second), and from
/// systemd 257 on the first second of a boot has that many (tmp.mount, the credential mounts
/// of the early services): a mount unit ordered before local-fs.target held the whole boot
/// back by up to a second (1.2 s to `running` instead of 0.2 s for a small trixie or sid). Not
/// run when /tmp/.X11-unix is a mount point already (a separate rootfs gets the distro's
/// bound in, and without a tmpfs /tmp it stays visible).
fn wslg_units(at: &dyn Fn(&str) -> PathBuf) -> Vec<Step> {
    vec![
        Step::WriteFile {
            path: at(&format!("/run/systemd/system/{X11_UNIT}")),
            contents: "[Unit]\n\
                Description=WSLg X11 sockets (distrod)\n\
                DefaultDependencies=no\n\
                ConditionPathIsDirectory=/mnt/wslg/.X11-unix\n\
                ConditionPathIsMountPoint=!/tmp/.X11-unix\n\
                After=local-fs-pre.target tmp.mount\n\
                Before=local-fs.target\n\
                \n\
                [Service]\n\
                Type=oneshot\n\
                RemainAfterExit=yes\n\
                ExecStart=/bin/mkdir -p /tmp/.X11-unix\n\
                ExecStart=/bin/mount --bind /mnt/wslg/.X11-unix /tmp/.X11-unix\n\
                ExecStart=/bin/mount -o remount,bind,ro /tmp/.X11-unix\n"
                .into(),
        },
        Step::Symlink {
            target: PathBuf::from(format!("../{X11_UNIT}")),
            link: at(&format!(
                "/run/systemd/system/local-fs.target.wants/{X11_UNIT}"
            )),
        },
        Step::WriteFile {
            path: at("/run/tmpfiles.d/x11.conf"),
            contents: String::new(),
        },
    ]
}

/// A path unit watching /etc/passwd and the service it starts: `distrod enable
/// --accounts-only` hooks accounts that appeared or whose shell changed (chsh).
fn rehook_units(at: &dyn Fn(&str) -> PathBuf, bin: &Path) -> Vec<Step> {
    let bin = bin.display();
    vec![
        Step::WriteFile {
            path: at(&format!("/run/systemd/system/{REHOOK_UNIT}.path")),
            contents: "[Unit]\n\
                Description=Hook new and changed login accounts into distrod\n\
                \n\
                [Path]\n\
                PathChanged=/etc/passwd\n"
                .into(),
        },
        Step::WriteFile {
            path: at(&format!("/run/systemd/system/{REHOOK_UNIT}.service")),
            contents: format!(
                "[Unit]\n\
                 Description=Hook new and changed login accounts into distrod\n\
                 ConditionPathExists={bin}\n\
                 \n\
                 [Service]\n\
                 Type=oneshot\n\
                 ExecStart={bin} --quiet enable --accounts-only\n"
            ),
        },
        Step::Symlink {
            target: PathBuf::from(format!("../{REHOOK_UNIT}.path")),
            link: at(&format!(
                "/run/systemd/system/paths.target.wants/{REHOOK_UNIT}.path"
            )),
        },
    ]
}

/// systemd-system.conf(5) `DefaultEnvironment=`: space-separated, double-quoted
/// assignments (values with quotes, backslashes or control characters are left out).
pub fn manager_env_conf(env: &[(String, String)]) -> String {
    let items: Vec<String> = env
        .iter()
        .filter(|(k, v)| {
            !k.is_empty()
                && !v
                    .chars()
                    .any(|c| c == '"' || c == '\\' || c == '%' || c.is_control())
        })
        .map(|(k, v)| format!("\"{k}={v}\""))
        .collect();
    format!("[Manager]\nDefaultEnvironment={}\n", items.join(" "))
}

/// The container's own resolv.conf: one `nameserver` line per server, in order.
pub fn resolv_conf(dns: &[std::net::IpAddr]) -> String {
    let mut s =
        String::from("# Written by distrod (dns in /etc/distrod.toml); the container's only.\n");
    for ip in dns {
        s.push_str(&format!("nameserver {ip}\n"));
    }
    s
}

/// The fds the [`Held`] steps bind, opened by the shim before the first mount changes.
#[derive(Default)]
pub struct HeldFds {
    /// The launcher's notify socket; None when it cannot be opened (its step is then
    /// skipped).
    pub notify: Option<OwnedFd>,
}

/// An O_PATH fd of `path` (a reference to use later, not for reading); None when it cannot
/// be opened.
pub fn open_path(path: &Path) -> Option<OwnedFd> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(path)
        .ok()
        .map(OwnedFd::from)
}

fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<()> {
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | flags,
        None::<&str>,
    )
    .ctx(|| format!("bind {} on {}", source.display(), target.display()))
}

/// Creates `target` as the same kind as `like` (directory or empty file) if missing.
fn ensure_target(target: &Path, like: &Path) -> Result<()> {
    if fs::symlink_metadata(target).is_ok() {
        return Ok(());
    }
    if like.is_dir() {
        fs::create_dir_all(target).ctx(|| format!("create {}", target.display()))
    } else {
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
        }
        fs::File::create(target)
            .map(drop)
            .ctx(|| format!("create {}", target.display()))
    }
}

/// Runs the plan. Errors name the step that failed.
pub fn apply(steps: &[Step], held: &HeldFds) -> Result<()> {
    for step in steps {
        tracing::trace!(?step, "mount step");
        match step {
            Step::Propagation { target, flags } => {
                mount(None::<&str>, target, None::<&str>, *flags, None::<&str>)
                    .ctx(|| format!("change propagation of {}", target.display()))?
            }
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => mount(
                Some(source.as_str()),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            )
            .ctx(|| format!("mount {source} on {}", target.display()))?,
            Step::Bind {
                source,
                target,
                recursive,
            } => {
                if fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink()) {
                    tracing::debug!(target = %target.display(), "not binding over a symlink");
                    continue;
                }
                ensure_target(target, source)?;
                let rec = if *recursive {
                    MsFlags::MS_REC
                } else {
                    MsFlags::empty()
                };
                bind(source, target, rec)?
            }
            Step::ReadOnly { target } => mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | NSE,
                None::<&str>,
            )
            .ctx(|| format!("make {} read-only", target.display()))?,
            Step::Detach { target } => match umount2(target, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
                Err(e) => Err(e).ctx(|| format!("unmount {}", target.display()))?,
            },
            Step::BindHeld {
                held: which,
                target,
            } => {
                let fd = match which {
                    Held::Notify => &held.notify,
                };
                let Some(fd) = fd else { continue };
                let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
                // /proc/self/fd/N of an O_PATH fd: a bind source that needs no path in
                // the (already replaced) tree.
                let like = fs::metadata(&src).ctx(|| format!("stat {}", src.display()))?;
                if like.is_dir() {
                    fs::create_dir_all(target).ctx(|| format!("create {}", target.display()))?;
                } else {
                    ensure_target(target, Path::new("/nonexistent-file"))?;
                }
                bind(&src, target, MsFlags::empty())?
            }
            Step::PivotRoot { new_root } => {
                nix::unistd::chdir(new_root).ctx(|| format!("chdir {}", new_root.display()))?;
                // pivot_root(2): with new_root == put_old the old root ends up stacked on
                // top of the new one; detaching "." then leaves only the new root.
                nix::unistd::pivot_root(".", ".").ctx(|| "pivot_root".into())?;
                umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root".into())?;
                nix::unistd::chdir("/").ctx(|| "chdir /".into())?
            }
            Step::Mkdir { path } => {
                fs::create_dir_all(path).ctx(|| format!("create {}", path.display()))?
            }
            Step::Symlink { target, link } => {
                if let Some(parent) = link.parent() {
                    fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
                }
                // A link left in the distro's /run (shared with it) by a container that
                // died with its record is replaced, not an error.
                if fs::symlink_metadata(link).is_ok_and(|m| m.file_type().is_symlink()) {
                    let _ = fs::remove_file(link);
                }
                std::os::unix::fs::symlink(target, link)
                    .ctx(|| format!("create {}", link.display()))?
            }
            Step::WriteFile { path, contents } => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
                }
                fs::write(path, contents).ctx(|| format!("write {}", path.display()))?
            }
        }
    }
    Ok(())
}

/// systemd's whole environment: `container=` tells it it is in a container (no
/// hardware, no kernel tuning), NOTIFY_SOCKET where to report READY=1.
pub fn init_env() -> Vec<CString> {
    [
        "container=distrod".to_string(),
        format!("NOTIFY_SOCKET={CONTAINER_NOTIFY}"),
    ]
    .into_iter()
    .map(|s| CString::new(s).expect("no NUL"))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Propagation { target, .. } => format!("propagation {}", target.display()),
                Step::Mount { source, target, .. } => {
                    format!("mount {source} {}", target.display())
                }
                Step::Bind { source, target, .. } => {
                    format!("bind {} {}", source.display(), target.display())
                }
                Step::ReadOnly { target } => format!("ro {}", target.display()),
                Step::Detach { target } => format!("detach {}", target.display()),
                Step::BindHeld { held, target } => format!("held {held:?} {}", target.display()),
                Step::PivotRoot { new_root } => format!("pivot {}", new_root.display()),
                Step::Mkdir { path } => format!("mkdir {}", path.display()),
                Step::Symlink { link, .. } => format!("symlink {}", link.display()),
                Step::WriteFile { path, .. } => format!("write {}", path.display()),
            })
            .collect()
    }

    #[test]
    fn plan_for_the_running_distro() {
        let steps = plan(&Inputs {
            rootfs: None,
            proc_sys_ro: true,
            has_console: true,
            binfmt: true,
            wslg: true,
            masks: vec!["console-getty.service".into()],
            dns: vec!["1.1.1.1".parse().unwrap()],
            resolv_target: Some("/mnt/wsl/resolv.conf".into()),
            service_env: vec![("WSL_DISTRO_NAME".into(), "Debian".into())],
            rehook: Some("/opt/distrod/bin/distrod".into()),
            portproxy_unit: Some(PORTPROXY_UNIT_FILE.into()),
            ..Default::default()
        });
        assert_eq!(
            steps[0],
            Step::Propagation {
                target: "/".into(),
                flags: MsFlags::MS_REC | MsFlags::MS_SLAVE
            }
        );
        assert_eq!(
            names(&steps),
            [
                "propagation /",
                "mount proc /proc",
                "bind /proc/sys /proc/sys",
                "ro /proc/sys",
                "detach /sys/fs/cgroup",
                "mount cgroup2 /sys/fs/cgroup",
                "propagation /run",
                "mkdir /run/WSL",
                "mount tmpfs /run/WSL",
                "mkdir /run/host",
                "mount tmpfs /run/host",
                "held Notify /run/host/notify",
                "write /run/host/container-manager",
                "mount binfmt_misc /proc/sys/fs/binfmt_misc",
                "write /run/distrod/binfmt_status",
                "bind /run/distrod/binfmt_status /proc/sys/fs/binfmt_misc/status",
                "ro /proc/sys/fs/binfmt_misc/status",
                "symlink /run/systemd/system/console-getty.service",
                "write /run/tmpfiles.d/tmp.conf",
                "write /run/systemd/system/distrod-wslg-x11.service",
                "symlink /run/systemd/system/local-fs.target.wants/distrod-wslg-x11.service",
                "write /run/tmpfiles.d/x11.conf",
                "write /run/systemd/system.conf.d/50-distrod.conf",
                "write /run/systemd/user.conf.d/50-distrod.conf",
                "write /run/systemd/system/distrod-rehook.path",
                "write /run/systemd/system/distrod-rehook.service",
                "symlink /run/systemd/system/paths.target.wants/distrod-rehook.path",
                "symlink /run/systemd/system/distrod-portproxy.service",
                "symlink /run/systemd/system/multi-user.target.wants/distrod-portproxy.service",
                "write /run/distrod/resolv.conf",
                "bind /run/distrod/resolv.conf /mnt/wsl/resolv.conf",
                "bind /dev/null /dev/console",
                "propagation /",
            ]
        );
    }

    /// Drives of a session that is not plain go first, before anything is mounted; the
    /// container's mounts end shared (slave copies of it follow it), still slaves of the
    /// distro's.
    #[test]
    fn hidden_drives_and_the_final_propagation() {
        let steps = plan(&Inputs {
            hide_drives: vec!["/mnt/c".into(), "/mnt/d".into()],
            ..Default::default()
        });
        let n = names(&steps);
        assert_eq!(n[..3], ["propagation /", "detach /mnt/c", "detach /mnt/d"]);
        assert_eq!(
            steps.first(),
            Some(&Step::Propagation {
                target: "/".into(),
                flags: MsFlags::MS_REC | MsFlags::MS_SLAVE
            })
        );
        assert_eq!(
            steps.last(),
            Some(&Step::Propagation {
                target: "/".into(),
                flags: MsFlags::MS_REC | MsFlags::MS_SHARED
            })
        );
    }

    #[test]
    fn plan_for_a_separate_rootfs() {
        let steps = plan(&Inputs {
            rootfs: Some("/srv/deb".into()),
            wsl_paths: vec!["/init".into(), "/mnt/c".into()],
            masks: vec!["console-getty.service".into()],
            ..Default::default()
        });
        assert_eq!(
            names(&steps),
            [
                "propagation /",
                "bind /srv/deb /srv/deb",
                "mount proc /srv/deb/proc",
                "bind /sys /srv/deb/sys",
                "bind /dev /srv/deb/dev",
                "bind /init /srv/deb/init",
                "bind /mnt/c /srv/deb/mnt/c",
                "detach /srv/deb/sys/fs/cgroup",
                "mount cgroup2 /srv/deb/sys/fs/cgroup",
                "mount tmpfs /srv/deb/run",
                "mkdir /srv/deb/run/lock",
                "mkdir /srv/deb/run/WSL",
                "held Notify /srv/deb/run/host/notify",
                "write /srv/deb/run/host/container-manager",
                "symlink /srv/deb/run/systemd/system/console-getty.service",
                "write /srv/deb/run/tmpfiles.d/tmp.conf",
                "pivot /srv/deb",
                "propagation /",
            ]
        );
        // The launching session's drives hidden from services: not bound in.
        let hidden = plan(&Inputs {
            rootfs: Some("/srv/deb".into()),
            wsl_paths: vec!["/init".into(), "/mnt/c".into()],
            hide_drives: vec!["/mnt/c".into()],
            ..Default::default()
        });
        assert!(!names(&hidden).contains(&"bind /mnt/c /srv/deb/mnt/c".to_string()));
        assert!(names(&hidden).contains(&"bind /init /srv/deb/init".to_string()));
    }

    /// WSLg's X11 bind: a oneshot service wanted by local-fs.target, ordered after
    /// tmp.mount and before local-fs.target, never a mount unit (systemd holds mount units
    /// back while its mountinfo monitor is rate-limited, which held trixie's boot back by a
    /// second); skipped where /tmp/.X11-unix is a mount point already; the vendor
    /// x11.conf (`D! /tmp/.X11-unix`) overridden by an empty one.
    #[test]
    fn wslg_x11_bind_is_a_service_after_tmp_mount() {
        let steps = plan(&Inputs {
            wslg: true,
            ..Default::default()
        });
        assert!(X11_UNIT.ends_with(".service"), "{X11_UNIT}");
        let unit = steps
            .iter()
            .find_map(|s| match s {
                Step::WriteFile { path, contents }
                    if path == Path::new(&format!("/run/systemd/system/{X11_UNIT}")) =>
                {
                    Some(contents.clone())
                }
                _ => None,
            })
            .expect("the X11 unit is written");
        for line in [
            "DefaultDependencies=no",
            "ConditionPathIsDirectory=/mnt/wslg/.X11-unix",
            "ConditionPathIsMountPoint=!/tmp/.X11-unix",
            "After=local-fs-pre.target tmp.mount",
            "Before=local-fs.target",
            "Type=oneshot",
            "RemainAfterExit=yes",
            "ExecStart=/bin/mkdir -p /tmp/.X11-unix",
            "ExecStart=/bin/mount --bind /mnt/wslg/.X11-unix /tmp/.X11-unix",
            "ExecStart=/bin/mount -o remount,bind,ro /tmp/.X11-unix",
        ] {
            assert!(unit.lines().any(|l| l == line), "no `{line}` in\n{unit}");
        }
        assert!(!unit.contains("[Mount]"), "{unit}");
        assert!(steps.contains(&Step::Symlink {
            target: format!("../{X11_UNIT}").into(),
            link: format!("/run/systemd/system/local-fs.target.wants/{X11_UNIT}").into(),
        }));
        assert!(steps.contains(&Step::WriteFile {
            path: "/run/tmpfiles.d/x11.conf".into(),
            contents: String::new(),
        }));
        // Without WSLg, none of it.
        let plain = names(&plan(&Inputs::default()));
        assert!(
            !plain
                .iter()
                .any(|n| n.contains("x11") || n.contains(X11_UNIT))
        );
    }

    #[test]
    fn manager_environment_is_quoted_and_filtered() {
        let env = [
            ("WSL_DISTRO_NAME".to_string(), "Debian 12".to_string()),
            ("BAD".to_string(), "a\"b".to_string()),
            ("DISPLAY".to_string(), ":0".to_string()),
        ];
        assert_eq!(
            manager_env_conf(&env),
            "[Manager]\nDefaultEnvironment=\"WSL_DISTRO_NAME=Debian 12\" \"DISPLAY=:0\"\n"
        );
    }

    #[test]
    fn resolv_conf_lists_the_servers() {
        let dns = [
            "1.1.1.1".parse().unwrap(),
            "2606:4700::1111".parse().unwrap(),
        ];
        let text = resolv_conf(&dns);
        assert!(text.ends_with("nameserver 1.1.1.1\nnameserver 2606:4700::1111\n"));
    }

    #[test]
    fn systemd_environment() {
        let env: Vec<_> = init_env()
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect();
        assert_eq!(env, ["container=distrod", "NOTIFY_SOCKET=/run/host/notify"]);
    }

    /// The binfmt_misc steps of the plan, applied for real to a private binfmt_misc
    /// instance (a user namespace of its own has one, since Linux 6.7): with an interop
    /// entry registered, what systemd-binfmt does at boot and shutdown (`-1` into
    /// `status`: unregister everything; `0`: disable) fails, and the entry stays. The
    /// host's instance is never touched: the mount is refused outright where the kernel
    /// does not give user namespaces their own instance.
    #[test]
    fn binfmt_status_stays_read_only_with_a_private_instance() {
        use nix::sched::{CloneFlags, unshare};
        use nix::sys::wait::{WaitStatus, waitpid};
        use nix::unistd::{ForkResult, fork};
        if !crate::runtime::test_as_root("the binfmt_misc test") {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        // SAFETY: the child only makes system calls and exits with a code.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                let code = (|| -> Result<i32, String> {
                    let e = |what: &str| {
                        let what = what.to_string();
                        move |err: nix::Error| format!("{what}: {err}")
                    };
                    let uid = nix::unistd::geteuid().as_raw();
                    let gid = nix::unistd::getegid().as_raw();
                    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
                        .map_err(e("unshare"))?;
                    fs::write("/proc/self/setgroups", "deny").map_err(|x| x.to_string())?;
                    fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
                        .map_err(|x| x.to_string())?;
                    fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
                        .map_err(|x| x.to_string())?;
                    mount(
                        None::<&str>,
                        "/",
                        None::<&str>,
                        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                        None::<&str>,
                    )
                    .map_err(e("make / private"))?;
                    // A tmpfs of this namespace for the container's tree.
                    mount(
                        Some("tmpfs"),
                        &root,
                        Some("tmpfs"),
                        MsFlags::empty(),
                        None::<&str>,
                    )
                    .map_err(e("mount tmpfs"))?;
                    fs::create_dir_all(root.join("proc/sys/fs/binfmt_misc"))
                        .map_err(|x| x.to_string())?;
                    fs::create_dir_all(root.join("run/distrod")).map_err(|x| x.to_string())?;
                    let steps: Vec<Step> = plan(&Inputs {
                        rootfs: Some(root.clone()),
                        binfmt: true,
                        ..Default::default()
                    })
                    .into_iter()
                    .filter(|s| format!("{s:?}").contains("binfmt"))
                    .collect();
                    if steps.len() != 4 {
                        return Err(format!("expected 4 binfmt steps, got {steps:?}"));
                    }
                    // The first step mounts the instance: refused unless it is private.
                    if let Err(err) = apply(&steps[..1], &HeldFds::default()) {
                        return Err(format!(
                            "no private binfmt_misc instance here (Linux 6.7 or later): {err}"
                        ));
                    }
                    let dir = root.join("proc/sys/fs/binfmt_misc");
                    // A new instance: nobody else's entries.
                    let names: Vec<String> = fs::read_dir(&dir)
                        .map_err(|x| x.to_string())?
                        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
                        .collect();
                    if names.iter().any(|n| n != "register" && n != "status") {
                        return Err(format!("not a fresh instance: {names:?}"));
                    }
                    fs::write(dir.join("register"), ":WSLInterop:M::MZ::/bin/true:PF")
                        .map_err(|x| format!("register: {x}"))?;
                    apply(&steps[1..], &HeldFds::default()).map_err(|x| x.to_string())?;
                    for value in ["-1", "0"] {
                        match fs::write(dir.join("status"), value) {
                            Err(x) if x.raw_os_error() == Some(libc::EROFS) => {}
                            other => {
                                return Err(format!("writing {value} to status: {other:?}"));
                            }
                        }
                    }
                    let entry = fs::read_to_string(dir.join("WSLInterop"))
                        .map_err(|x| format!("the entry is gone: {x}"))?;
                    if !entry.starts_with("enabled") || !entry.contains("/bin/true") {
                        return Err(format!("the entry changed: {entry}"));
                    }
                    // Entries themselves stay manageable (not the test's concern to keep).
                    fs::write(dir.join("WSLInterop"), "-1").map_err(|x| x.to_string())?;
                    Ok(0)
                })();
                let code = match code {
                    Ok(c) => c,
                    Err(msg) => {
                        eprintln!("binfmt test child: {msg}");
                        1
                    }
                };
                // SAFETY: leaving the forked child without running the parent's atexit code.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                let status = waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    WaitStatus::Exited(child, 0),
                    "the child's message above says why"
                );
            }
        }
    }
}
