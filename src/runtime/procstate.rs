//! The process state systemd starts from: as if the distro's init had started it, never
//! the state of whoever ran the login hook.
//!
//! The first session of a WSL start launches the container through the setuid hook, so
//! systemd (and through it every service) would inherit that user's resource limits
//! (`ulimit -f 3000` made journald die of SIGXFSZ), nice value, CPU affinity,
//! oom_score_adj, umask, scheduling policy, I/O priority and personality. Resource limits
//! and the CPU affinity are copied from the distro's PID 1 (WSL's init, which starts every
//! session with them), else the kernel's defaults for init; everything else is the
//! kernel's default. [`for_systemd`] builds that state as plain data (unit-tested);
//! [`CleanState::apply`] sets it on the calling process, whose children inherit it.
//!
//! Signal dispositions and mask, descriptors, the working directory and the environment
//! are reset by the shim just before systemd is executed ([`super::shim`]).

use std::fmt;

/// One resource limit: soft and hard, `RLIM_INFINITY` for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Which resource.
    pub resource: Resource,
    /// The soft limit, the one the kernel enforces; never above `hard`.
    pub soft: u64,
    /// The hard limit: the most an unprivileged process may raise the soft one to.
    pub hard: u64,
}

/// The resources of getrlimit(2), in the kernel's order (RLIMIT_CPU = 0 ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// RLIMIT_CPU: CPU time, in seconds.
    Cpu,
    /// RLIMIT_FSIZE: the largest file a process may write, in bytes.
    Fsize,
    /// RLIMIT_DATA: the data segment and heap, in bytes.
    Data,
    /// RLIMIT_STACK: the main thread's stack, in bytes.
    Stack,
    /// RLIMIT_CORE: the largest core dump, in bytes.
    Core,
    /// RLIMIT_RSS: resident memory, in bytes (not enforced by Linux).
    Rss,
    /// RLIMIT_NPROC: processes (threads) of the real user.
    Nproc,
    /// RLIMIT_NOFILE: one more than the highest file descriptor.
    Nofile,
    /// RLIMIT_MEMLOCK: locked memory, in bytes.
    Memlock,
    /// RLIMIT_AS: virtual address space, in bytes.
    As,
    /// RLIMIT_LOCKS: file locks (not enforced by Linux).
    Locks,
    /// RLIMIT_SIGPENDING: queued signals of the real user.
    Sigpending,
    /// RLIMIT_MSGQUEUE: bytes of POSIX message queues of the real user.
    Msgqueue,
    /// RLIMIT_NICE: how far the nice value may be lowered, as 20 - nice.
    Nice,
    /// RLIMIT_RTPRIO: the highest real-time priority.
    Rtprio,
    /// RLIMIT_RTTIME: CPU time under a real-time policy without blocking, in microseconds.
    Rttime,
}

/// Every [`Resource`], in the kernel's order.
pub const RESOURCES: [Resource; 16] = [
    Resource::Cpu,
    Resource::Fsize,
    Resource::Data,
    Resource::Stack,
    Resource::Core,
    Resource::Rss,
    Resource::Nproc,
    Resource::Nofile,
    Resource::Memlock,
    Resource::As,
    Resource::Locks,
    Resource::Sigpending,
    Resource::Msgqueue,
    Resource::Nice,
    Resource::Rtprio,
    Resource::Rttime,
];

impl Resource {
    fn number(self) -> libc::c_int {
        self as libc::c_int
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RLIMIT_{}", format!("{self:?}").to_ascii_uppercase())
    }
}

const INF: u64 = libc::RLIM_INFINITY;

/// The kernel's limits for init (include/asm-generic/resource.h, INIT_RLIMITS;
/// kernel/fork.c sets NPROC and SIGPENDING to threads-max / 2; MLOCK_LIMIT is 8 MiB since
/// Linux 5.16), for a resource PID 1's limits cannot be read for.
pub fn kernel_default(r: Resource, threads_max: u64) -> (u64, u64) {
    match r {
        Resource::Stack => (8 << 20, INF),
        Resource::Core => (0, INF),
        Resource::Nproc | Resource::Sigpending => (threads_max / 2, threads_max / 2),
        Resource::Nofile => (1024, 4096),
        Resource::Memlock => (8 << 20, 8 << 20),
        Resource::Msgqueue => (819_200, 819_200),
        Resource::Nice | Resource::Rtprio => (0, 0),
        _ => (INF, INF),
    }
}

/// What [`for_systemd`] is built from: what could be read of the distro's PID 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Readings {
    /// PID 1's limits, by resource, where readable.
    pub pid1_limits: Vec<(Resource, u64, u64)>,
    /// The CPUs PID 1 may run on (sched_getaffinity), if readable.
    pub pid1_cpus: Option<Vec<usize>>,
    /// /proc/sys/kernel/threads-max.
    pub threads_max: u64,
}

/// The state systemd starts from; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanState {
    /// Every resource, in the kernel's order.
    pub limits: Vec<Limit>,
    /// The nice value: 0.
    pub nice: i32,
    /// /proc/self/oom_score_adj: 0, the kernel's default.
    pub oom_score_adj: i32,
    /// The file mode creation mask: 0o022, init's.
    pub umask: u32,
    /// None: every CPU the kernel lets us use.
    pub cpus: Option<Vec<usize>>,
    /// SCHED_OTHER at priority 0, without SCHED_RESET_ON_FORK.
    pub scheduler: libc::c_int,
    /// IOPRIO_CLASS_NONE: the I/O priority follows the nice value.
    pub io_priority: libc::c_int,
    /// PER_LINUX: no ADDR_NO_RANDOMIZE or other flags a caller's `setarch` left.
    pub personality: libc::c_ulong,
    /// prctl(PR_SET_TIMERSLACK, 0): the default timer slack.
    pub timer_slack: libc::c_ulong,
}

/// The one function that decides systemd's starting state.
pub fn for_systemd(r: &Readings) -> CleanState {
    let limits = RESOURCES
        .iter()
        .map(|&res| {
            let (soft, hard) = r
                .pid1_limits
                .iter()
                .find(|(x, _, _)| *x == res)
                .map(|&(_, s, h)| (s, h))
                .unwrap_or_else(|| kernel_default(res, r.threads_max));
            Limit {
                resource: res,
                soft: soft.min(hard),
                hard,
            }
        })
        .collect();
    CleanState {
        limits,
        nice: 0,
        oom_score_adj: 0,
        umask: 0o022,
        cpus: r.pid1_cpus.clone().filter(|c| !c.is_empty()),
        scheduler: libc::SCHED_OTHER,
        io_priority: 0,
        personality: 0,
        timer_slack: 0,
    }
}

/// Reads what [`for_systemd`] needs from the distro's PID 1 (as root: prlimit(2) on
/// another process needs CAP_SYS_RESOURCE or the same ids).
pub fn read_pid1() -> Readings {
    let mut limits = Vec::new();
    for res in RESOURCES {
        let mut old = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit64 with a NULL new limit only writes the old one into `old`.
        let r = unsafe { libc::prlimit64(1, res.number() as _, std::ptr::null(), &mut old) };
        if r == 0 {
            limits.push((res, old.rlim_cur, old.rlim_max));
        }
    }
    let cpus = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(1))
        .ok()
        .map(|set| {
            (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .collect()
        });
    let threads_max = std::fs::read_to_string("/proc/sys/kernel/threads-max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 16);
    Readings {
        pid1_limits: limits,
        pid1_cpus: cpus,
        threads_max,
    }
}

/// The clean state for systemd, read and applied to the calling process (root).
pub fn clean() {
    for_systemd(&read_pid1()).apply();
}

impl CleanState {
    /// Sets this state on the calling process. Best effort: what the kernel refuses (a
    /// hard limit above what this process may raise to) is logged and left as it is.
    pub fn apply(&self) {
        for l in &self.limits {
            let new = libc::rlimit64 {
                rlim_cur: l.soft,
                rlim_max: l.hard,
            };
            // SAFETY: setrlimit64 on ourselves with a valid struct.
            if unsafe { libc::setrlimit64(l.resource.number() as _, &new) } != 0 {
                tracing::debug!(
                    "cannot set {}: {}",
                    l.resource,
                    std::io::Error::last_os_error()
                );
            }
        }
        // SAFETY: plain syscalls on the calling process with integer arguments.
        unsafe {
            libc::setpriority(libc::PRIO_PROCESS, 0, self.nice);
            let param = libc::sched_param { sched_priority: 0 };
            libc::sched_setscheduler(0, self.scheduler, &param);
            // ioprio_set(IOPRIO_WHO_PROCESS, 0, prio)
            libc::syscall(libc::SYS_ioprio_set, 1, 0, self.io_priority);
            libc::personality(self.personality);
            libc::prctl(libc::PR_SET_TIMERSLACK, self.timer_slack, 0, 0, 0);
            libc::umask(self.umask as libc::mode_t);
        }
        let mut set = nix::sched::CpuSet::new();
        let all: Vec<usize> = (0..nix::sched::CpuSet::count()).collect();
        for &c in self.cpus.as_deref().unwrap_or(&all) {
            let _ = set.set(c);
        }
        if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
            tracing::debug!("cannot set the CPU affinity: {e}");
        }
        if let Err(e) = std::fs::write("/proc/self/oom_score_adj", self.oom_score_adj.to_string()) {
            tracing::debug!("cannot set oom_score_adj: {e}");
        }
    }
}

/// Signals the terminal (or a hang-up of it) sends to a foreground process group:
/// ignored by root's processes that work for a session, so a user's Ctrl-Z, Ctrl-C or
/// closed window never stops or kills them half-way (with a lock held).
pub const TERMINAL_SIGNALS: [libc::c_int; 6] = [
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGHUP,
];

/// Ignores the job-control signals only (SIGTSTP, SIGTTIN, SIGTTOU): for root's process
/// that stays in the caller's session to wait for the session (the caller may still end
/// their own login with Ctrl-C, but never leaves a root process stopped).
pub fn ignore_job_control() {
    for s in &TERMINAL_SIGNALS[..3] {
        // SAFETY: SIG_IGN installs no handler.
        unsafe { libc::signal(*s, libc::SIG_IGN) };
    }
}

/// Ignores [`TERMINAL_SIGNALS`] and SIGPIPE (a caller's closed pipe must not kill root's
/// work either).
pub fn ignore_terminal_signals() {
    for s in TERMINAL_SIGNALS.iter().chain(&[libc::SIGPIPE]) {
        // SAFETY: SIG_IGN installs no handler.
        unsafe { libc::signal(*s, libc::SIG_IGN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_starts_from_pid1s_limits_or_the_kernels() {
        let r = Readings {
            pid1_limits: vec![
                (Resource::Fsize, INF, INF),
                (Resource::Nofile, 1024, 524_288),
                // A soft limit above the hard one can never be set: clamp it.
                (Resource::Core, 10, 5),
            ],
            pid1_cpus: Some(vec![0, 1, 2, 3]),
            threads_max: 1000,
        };
        let s = for_systemd(&r);
        let get = |res| {
            let l = s.limits.iter().find(|l| l.resource == res).unwrap();
            (l.soft, l.hard)
        };
        assert_eq!(s.limits.len(), 16);
        assert_eq!(
            s.limits.iter().map(|l| l.resource).collect::<Vec<_>>(),
            RESOURCES
        );
        assert_eq!(get(Resource::Fsize), (INF, INF));
        assert_eq!(get(Resource::Nofile), (1024, 524_288));
        assert_eq!(get(Resource::Core), (5, 5));
        // Not read from PID 1: the kernel's defaults for init.
        assert_eq!(get(Resource::Nproc), (500, 500));
        assert_eq!(get(Resource::Stack), (8 << 20, INF));
        assert_eq!(get(Resource::Cpu), (INF, INF));
        assert_eq!(
            s,
            CleanState {
                limits: s.limits.clone(),
                nice: 0,
                oom_score_adj: 0,
                umask: 0o022,
                cpus: Some(vec![0, 1, 2, 3]),
                scheduler: libc::SCHED_OTHER,
                io_priority: 0,
                personality: 0,
                timer_slack: 0,
            }
        );
    }

    #[test]
    fn nothing_readable_gives_the_kernels_defaults_and_every_cpu() {
        let s = for_systemd(&Readings {
            pid1_cpus: Some(vec![]),
            threads_max: 64,
            ..Default::default()
        });
        assert_eq!(s.cpus, None);
        for l in &s.limits {
            assert_eq!(
                (l.soft, l.hard),
                kernel_default(l.resource, 64),
                "{}",
                l.resource
            );
        }
        assert_eq!(Resource::Nofile.to_string(), "RLIMIT_NOFILE");
        assert_eq!(
            Resource::Rttime.number(),
            libc::RLIMIT_RTTIME as libc::c_int
        );
        assert_eq!(
            Resource::Nofile.number(),
            libc::RLIMIT_NOFILE as libc::c_int
        );
    }

    /// The readings of this process's own PID 1 are complete (every limit is readable by
    /// root; a user may read them only for processes of their own).
    #[test]
    fn pid1_readings() {
        let r = read_pid1();
        assert!(r.threads_max > 0);
        if nix::unistd::geteuid().is_root() {
            assert_eq!(r.pid1_limits.len(), 16, "{r:?}");
        }
    }
}
