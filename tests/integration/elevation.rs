//! Windows drives and elevation. WSL keeps two mount namespaces per distro, the Windows
//! drives served with the administrator's token in one and the plain token in the other,
//! and starts each session in the one matching its Windows process (a Terminal run as
//! administrator or not). The stand-in (support/sandbox.rs,
//! [`wsl_namespaces`](crate::support::sandbox::SandboxBuilder::wsl_namespaces)) has both,
//! with drive `C:` holding `marker` = `ADMIN` or `user`, and relays that answer WSL's
//! elevation query; [`the_stand_in_has_two_namespaces`] proves that stand-in.
//!
//! What the other tests prove of distrod, in a distro `distrod enable` hooked, with
//! sessions of the user `distrod`:
//! - a session sees the drives with its own elevation (`ADMIN` elevated, `user` plain),
//!   whichever session started the container, in any order, also side by side;
//! - services (the container's systemd, read through `/proc/<pid>/root`, and a transient
//!   service) see only a plain session's drives: none while only elevated sessions came,
//!   `user` from the first plain session on; a drive mounted later reaches them with the
//!   next plain session;
//! - services never reach an elevated session's interop socket through
//!   `/run/WSL/1_interop`;
//! - and every test ends clean ([`assert_clean_end`]): root's `distrod stop` works, nothing
//!   is left in the sandbox, and the mount tables of both of WSL's namespaces are as they
//!   were (nothing of the container leaked into either).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::Output;
use crate::support::fakewsl::{DistrodAt, FAKEWSL, FakeWsl, QUERY_LOG_ARGS, SessionChild};
use crate::support::sandbox::{
    ELEVATED_MARKER, PLAIN_MARKER, STAGED_DISTROD, Sandbox, prerequisites,
};

const INSTALLED: &str = "/opt/distrod/bin/distrod";
const ELEVATED: bool = true;
const PLAIN: bool = false;
/// The distro's user, whose sessions these are.
const USER: &str = "distrod";
/// Longest anything here may take that a user waits for (a session, a stop).
const BOUND: Duration = Duration::from_secs(60);

/// A fake WSL distro with WSL's two namespaces (the first elevated when `first_elevated`)
/// that root's `distrod enable` hooked; the container is not running yet. Also the mount
/// tables of both namespaces before anything of distrod ran.
fn start(test: &str, first_elevated: bool) -> Option<(FakeWsl, WslMounts)> {
    let tree: PathBuf = prerequisites(test)?;
    let wsl = FakeWsl::start_with_namespaces(&tree, DistrodAt::Staged, first_elevated);
    let mounts = WslMounts::of(&wsl.sandbox);
    wsl.sandbox
        .run_with_timeout(&[STAGED_DISTROD, "enable"], BOUND)
        .success();
    Some((wsl, mounts))
}

/// A session's command: the marker of drive `letter` as it sees it (`none` when missing)
/// and whether it runs inside the container.
fn look(letter: char) -> String {
    format!(
        "echo marker={} inside=$(test -e /run/host/container-manager && echo yes || echo no)",
        marker_of(letter)
    )
}

/// Shell text printing drive `letter`'s marker, or `none`.
fn marker_of(letter: char) -> String {
    format!("$(cat /mnt/{letter}/marker 2>/dev/null || echo none)")
}

/// What a session's [`look`] printed: the marker, after checking the session ran inside
/// the container.
fn marker_inside(out: &Output) -> String {
    out.success();
    assert_eq!(
        out.field("inside"),
        "yes",
        "not inside the container\n{out}"
    );
    out.field("marker")
}

/// The marker of drive `letter` that a new session of `USER` from an elevated or plain
/// Windows process sees.
fn session_sees(wsl: &FakeWsl, elevated: bool, letter: char) -> String {
    marker_inside(&wsl.session_in(elevated, USER, &look(letter)))
}

/// The marker of drive `letter` that services see, `None` when the drive is missing:
/// read as the container's systemd sees it and by a transient service (run by root's
/// `distrod exec` from the plain namespace), which must agree.
fn services_see(wsl: &FakeWsl, letter: char) -> Option<String> {
    let sb = &wsl.sandbox;
    let systemd = sb
        .read_in_container(&format!("/mnt/{letter}/marker"))
        .map(|m| m.trim().to_owned());
    let script = format!("echo marker={}", marker_of(letter));
    let out = service(sb, &["sh", "-c", &script]);
    let service = Some(out.field("marker")).filter(|m| m != "none");
    assert_eq!(
        systemd, service,
        "systemd and a service see different drives at /mnt/{letter}\n{out}"
    );
    systemd
}

/// Asserts what services see of drive `letter`: `expected` marker, or no drive.
fn assert_services(wsl: &FakeWsl, letter: char, expected: Option<&str>) {
    assert_eq!(
        services_see(wsl, letter).as_deref(),
        expected,
        "what services see at /mnt/{letter}"
    );
}

/// Asserts a new elevated session and a new plain one each see drive `letter` with their
/// own elevation.
fn assert_sessions_see_their_own(wsl: &FakeWsl, letter: char) {
    for (elevated, marker) in [(ELEVATED, ELEVATED_MARKER), (PLAIN, PLAIN_MARKER)] {
        assert_eq!(
            session_sees(wsl, elevated, letter),
            marker,
            "a session (elevated: {elevated}) at /mnt/{letter}"
        );
    }
}

/// `argv` run as a transient service of the container's systemd (root's `distrod exec`
/// from WSL's plain namespace, outside any session, asks for it).
fn service(sb: &Sandbox, argv: &[&str]) -> Output {
    let mut full = vec![
        INSTALLED,
        "exec",
        "--no-launch",
        "--",
        "systemd-run",
        "--wait",
        "--pipe",
        "--quiet",
        "--collect",
    ];
    full.extend_from_slice(argv);
    let out = sb.run_in_with_timeout(PLAIN, &full, BOUND);
    out.success();
    out
}

/// A session of `USER` left open: it prints its drive `C:` marker at its start (`before=`)
/// and again at its end, when [`Held::end`] says so, with [`look`].
struct Held<'a> {
    session: SessionChild<'a>,
    tag: String,
}

impl<'a> Held<'a> {
    /// Opens it and waits until its shell runs (inside the container, or not).
    fn open(wsl: &'a FakeWsl, elevated: bool, tag: &str) -> Held<'a> {
        let (started, end) = (format!("/tmp/{tag}-started"), format!("/tmp/{tag}-end"));
        let cmd = format!(
            "echo before={}; touch {started}; while [ ! -e {end} ]; do sleep 0.05; done; {}",
            marker_of('c'),
            look('c'),
        );
        let session = wsl.spawn_session_in(elevated, USER, &cmd);
        let deadline = Instant::now() + BOUND;
        while wsl.sandbox.read_file(&started).is_none() {
            assert!(
                Instant::now() < deadline,
                "the session {tag} did not start within {BOUND:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        Held {
            session,
            tag: tag.to_owned(),
        }
    }

    fn relay(&self) -> i32 {
        self.session.relay_pid()
    }

    /// Ends it; returns the markers it saw at its start and at its end, after checking it
    /// ran inside the container.
    fn end(self, sb: &Sandbox) -> (String, String) {
        sb.write_file(&format!("/tmp/{}-end", self.tag), "");
        let out = self.session.wait();
        (out.field("before"), marker_inside(&out))
    }
}

/// The mount tables of WSL's two namespaces: mount point, type, source and propagation
/// (`shared`, `master` or `private`) of each mount, sorted.
#[derive(Debug, PartialEq, Eq)]
struct WslMounts {
    elevated: Vec<String>,
    plain: Vec<String>,
}

impl WslMounts {
    fn of(sb: &Sandbox) -> WslMounts {
        WslMounts {
            elevated: mount_table(&sb.mountinfo_in(ELEVATED)),
            plain: mount_table(&sb.mountinfo_in(PLAIN)),
        }
    }

    /// Asserts nothing was mounted or unmounted in either namespace since `self`.
    fn assert_unchanged(&self, sb: &Sandbox, when: &str) {
        let now = WslMounts::of(sb);
        for (name, before, after) in [
            ("elevated", &self.elevated, &now.elevated),
            ("plain", &self.plain, &now.plain),
        ] {
            let added: Vec<&String> = after.iter().filter(|m| !before.contains(m)).collect();
            let gone: Vec<&String> = before.iter().filter(|m| !after.contains(m)).collect();
            assert!(
                added.is_empty() && gone.is_empty(),
                "WSL's {name} namespace changed {when}: added {added:#?}, gone {gone:#?}"
            );
        }
    }
}

/// The lines of [`WslMounts`] from a mountinfo text (proc(5)), the relay's cover over
/// systemd's private socket left out (tests/integration/run.rs checks it).
fn mount_table(mountinfo: &str) -> Vec<String> {
    let mut table: Vec<String> = mountinfo
        .lines()
        .filter(|line| !crate::support::is_relay_cover(line))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            Some(format!("{} {}", f.get(4)?, kind(&f)?))
        })
        .collect();
    table.sort();
    table
}

/// `TYPE SOURCE PROPAGATION` of a mountinfo line split in words; the propagation is the
/// kinds of its optional fields (`shared:N` ...) without their numbers, `private` when
/// there are none.
fn kind(f: &[&str]) -> Option<String> {
    let sep = f.iter().position(|x| *x == "-")?;
    let kinds: Vec<&str> = f
        .get(6..sep)?
        .iter()
        .filter_map(|o| o.split(':').next())
        .collect();
    let propagation = if kinds.is_empty() {
        "private".to_owned()
    } else {
        kinds.join(",")
    };
    Some(format!(
        "{} {} {propagation}",
        f.get(sep + 1)?,
        f.get(sep + 2)?
    ))
}

/// The end of every test: root's `distrod stop` completes within [`BOUND`], the container
/// is stopped, no process but the sandbox's init (and the keeper of the second namespace)
/// is left, no cgroup is left, and WSL's namespaces have the mounts of `mounts`.
fn assert_clean_end(wsl: &FakeWsl, mounts: &WslMounts) {
    let sb = &wsl.sandbox;
    let stop = sb.run_with_timeout(&[INSTALLED, "stop"], BOUND);
    assert!(stop.code().is_some(), "`distrod stop` hung\n{stop}");
    stop.success();
    let status = sb.run_with_timeout(&[INSTALLED, "status"], BOUND);
    assert_eq!(status.code(), Some(3), "stopped after `stop`\n{status}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.other_processes().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    assert_only_init(sb);
    assert_eq!(sb.cgroup_dirs(), Vec::<String>::new(), "cgroups left");
    mounts.assert_unchanged(sb, "by the container");
}

/// Asserts no process runs in the sandbox but its init and the namespace keeper, once
/// transient ones are gone (the init's idle `sleep` is a `bash` until it has exec'd).
fn assert_only_init(sb: &Sandbox) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !sb.other_processes().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let others = sb.other_processes();
    assert!(
        others.is_empty(),
        "processes {others:?} in the sandbox:\n{}",
        sb.describe_processes()
    );
}

/// The mountinfo line of `point` in `mountinfo` (the topmost mount there), split in words.
fn mount_of<'a>(mountinfo: &'a str, point: &str) -> Vec<&'a str> {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(point))
        .unwrap_or_else(|| panic!("{point} is not a mount point:\n{mountinfo}"))
        .split(' ')
        .collect()
}

/// The peer group of a shared mount (`shared:N`), None for another propagation.
fn peer_group(mount: &[&str]) -> Option<String> {
    mount
        .iter()
        .find_map(|w| w.strip_prefix("shared:"))
        .map(str::to_owned)
}

/// Asks the relay behind `socket` (inside the sandbox) WSL's elevation query from the
/// host, byte for byte as WSL's `mount.drvfs` sends it; returns the raw answer.
fn query_elevation(sb: &Sandbox, socket: &str) -> Vec<u8> {
    let mut stream =
        UnixStream::connect(sb.path(socket)).unwrap_or_else(|e| panic!("connect to {socket}: {e}"));
    stream.set_read_timeout(Some(BOUND)).unwrap();
    // LxInitMessageQueryDrvfsElevated: type 12, size 16, transaction 0x0a0b0c0d, step 1.
    let query = [12, 0, 0, 0, 16, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 1, 0, 0, 0];
    stream.write_all(&query).expect("send the query");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    answer
}

#[test]
fn the_stand_in_has_two_namespaces() {
    let Some(tree) = prerequisites("the_stand_in_has_two_namespaces") else {
        return;
    };
    let wsl = FakeWsl::start_with_namespaces(&tree, DistrodAt::Installed, true);
    let sb = &wsl.sandbox;
    assert_eq!(
        sb.namespace_pid(ELEVATED),
        sb.pid1(),
        "the sandbox's own namespace is the first"
    );
    assert!(sb.init_processes().contains(&sb.namespace_pid(PLAIN)));
    assert_only_init(sb);

    // Separate drives, each its own private tmpfs with its marker, named as drvfs is.
    let (admin, plain) = (sb.mountinfo_in(ELEVATED), sb.mountinfo_in(PLAIN));
    let (c_admin, c_plain) = (mount_of(&admin, "/mnt/c"), mount_of(&plain, "/mnt/c"));
    for c in [&c_admin, &c_plain] {
        assert_eq!(kind(c).as_deref(), Some("tmpfs C:\\134 private"), "{c:?}");
    }
    assert_ne!(c_admin[2], c_plain[2], "one tmpfs for both namespaces");
    let tables = WslMounts::of(sb);
    for table in [&tables.elevated, &tables.plain] {
        assert!(
            table.contains(&"/mnt/c tmpfs C:\\134 private".to_owned()),
            "{table:#?}"
        );
    }
    for (elevated, marker) in [(ELEVATED, ELEVATED_MARKER), (PLAIN, PLAIN_MARKER)] {
        let out = sb.run_in(
            elevated,
            &[
                "sh",
                "-c",
                "cat /mnt/c/marker; test -d /mnt/c/Windows/System32",
            ],
        );
        out.success();
        assert_eq!(out.stdout.trim(), marker, "{out}");
    }
    assert_eq!(
        sb.read_file("/mnt/c/marker").unwrap().trim(),
        ELEVATED_MARKER
    );

    // WSL's propagation: `/` private, its own mounts shared, and peers across both.
    for (text, name) in [(&admin, "elevated"), (&plain, "plain")] {
        let root = kind(&mount_of(text, "/")).unwrap();
        assert!(root.ends_with(" private"), "/ in {name}: {root}");
    }
    for point in ["/proc", "/sys", "/dev", "/run", "/mnt/wsl", "/mnt/wslg"] {
        let group = peer_group(&mount_of(&admin, point));
        assert!(group.is_some(), "{point} is not shared");
        assert_eq!(
            group,
            peer_group(&mount_of(&plain, point)),
            "{point} is not a peer in both namespaces"
        );
    }

    // Sessions run in their namespace, and their relays answer WSL's elevation query.
    for (elevated, marker) in [(ELEVATED, ELEVATED_MARKER), (PLAIN, PLAIN_MARKER)] {
        let out = wsl.session_in(elevated, USER, "cat /mnt/c/marker");
        out.success();
        assert_eq!(out.stdout.trim(), marker, "{out}");
        let session = wsl.spawn_session_in(elevated, USER, "sleep 30");
        let mut expected = vec![79, 0, 0, 0, 20, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 2, 0, 0, 0];
        expected.extend([u8::from(elevated), 0, 0, 0]);
        assert_eq!(query_elevation(sb, &session.socket()), expected);
        let logged = wsl
            .interop_log()
            .into_iter()
            .rev()
            .find(|e| e.args == QUERY_LOG_ARGS && e.relay == session.relay_pid() && e.uid == 0);
        assert!(logged.is_some(), "{:?}", wsl.interop_log());
        // The text protocol still works on the same socket.
        let out = wsl.session_in(
            elevated,
            USER,
            &format!("WSL_INTEROP={} {FAKEWSL} client text", session.socket()),
        );
        out.success();
        assert!(
            out.stdout
                .contains(&format!("ok relay={}", session.relay_pid())),
            "{out}"
        );
        session.kill();
    }

    // A drive mounted later: in both namespaces, each its own.
    sb.mount_drive('e');
    for (elevated, marker) in [(ELEVATED, ELEVATED_MARKER), (PLAIN, PLAIN_MARKER)] {
        let out = sb.run_in_as(elevated, USER, &["cat", "/mnt/e/marker"]);
        out.success();
        assert_eq!(out.stdout.trim(), marker, "{out}");
        let text = sb.mountinfo_in(elevated);
        let e = mount_of(&text, "/mnt/e");
        assert_eq!(kind(&e).as_deref(), Some("tmpfs E:\\134 private"), "{e:?}");
    }
    assert_only_init(sb);
}

/// (a) An elevated session starts the container: services have no drive until the first
/// plain session, then the plain one; each session keeps its own view meanwhile.
#[test]
fn elevated_first_then_plain() {
    let Some((wsl, mounts)) = start("elevated_first_then_plain", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    let admin = Held::open(&wsl, ELEVATED, "admin");
    assert_services(&wsl, 'c', None);
    // The first plain session brings its drive to services.
    assert_eq!(session_sees(&wsl, PLAIN, 'c'), PLAIN_MARKER);
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    assert_sessions_see_their_own(&wsl, 'c');
    mounts.assert_unchanged(sb, "while the container runs");
    assert_eq!(
        admin.end(sb),
        (ELEVATED_MARKER.to_owned(), ELEVATED_MARKER.to_owned()),
        "the first elevated session, open while a plain one came"
    );
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    assert_clean_end(&wsl, &mounts);
}

/// (b) A plain session starts the container: services keep the plain view whatever
/// elevated sessions come, and sessions of both kinds side by side keep theirs.
#[test]
fn plain_first_then_elevated() {
    let Some((wsl, mounts)) = start("plain_first_then_elevated", false) else {
        return;
    };
    let sb = &wsl.sandbox;
    let plain = Held::open(&wsl, PLAIN, "plain");
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    let admin = Held::open(&wsl, ELEVATED, "admin");
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    assert_sessions_see_their_own(&wsl, 'c');
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    mounts.assert_unchanged(sb, "while the container runs");
    let both = (admin.end(sb), plain.end(sb));
    let (a, p) = (ELEVATED_MARKER.to_owned(), PLAIN_MARKER.to_owned());
    assert_eq!(both, ((a.clone(), a), (p.clone(), p)), "(elevated, plain)");
    assert_clean_end(&wsl, &mounts);
}

/// (c) A drive mounted after the container started: new sessions see it with their
/// elevation, services once a plain session came after the mount.
#[test]
fn a_drive_mounted_later() {
    let Some((wsl, mounts)) = start("a_drive_mounted_later", false) else {
        return;
    };
    let sb = &wsl.sandbox;
    assert_eq!(session_sees(&wsl, PLAIN, 'c'), PLAIN_MARKER);
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    mounts.assert_unchanged(sb, "while the container runs");

    sb.mount_drive('e');
    let mounts = WslMounts::of(sb);
    // Elevated sessions first: they see their drive, services never do.
    assert_eq!(session_sees(&wsl, ELEVATED, 'e'), ELEVATED_MARKER);
    assert_eq!(session_sees(&wsl, ELEVATED, 'c'), ELEVATED_MARKER);
    assert_ne!(
        services_see(&wsl, 'e').as_deref(),
        Some(ELEVATED_MARKER),
        "an elevated session brought its new drive to services"
    );
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    // The first plain session after the mount brings the new drive to services.
    assert_eq!(session_sees(&wsl, PLAIN, 'e'), PLAIN_MARKER);
    assert_services(&wsl, 'e', Some(PLAIN_MARKER));
    assert_services(&wsl, 'c', Some(PLAIN_MARKER));
    assert_sessions_see_their_own(&wsl, 'e');
    assert_sessions_see_their_own(&wsl, 'c');
    assert_clean_end(&wsl, &mounts);
}

/// (d) `/run/WSL/1_interop`, what services use, never leads to an elevated session's
/// relay: there is none while only elevated sessions exist, it leads to a plain session's
/// while one is open (also when an elevated one opened since), and it does not move to an
/// elevated session when the plain one ends.
#[test]
fn services_never_get_an_elevated_sessions_interop() {
    let Some((wsl, mounts)) = start("services_never_get_an_elevated_sessions_interop", true) else {
        return;
    };
    let sb = &wsl.sandbox;
    // A service's Windows program: the relay that got request `tag`, or None.
    let service_client = |tag: &str| {
        let script = format!("{FAKEWSL} client {tag}; echo client=$?");
        let out = service(sb, &["sh", "-c", &script]);
        let relay = wsl
            .interop_log()
            .into_iter()
            .find(|e| e.args == tag)
            .map(|e| e.relay);
        assert_eq!(
            out.field("client") == "0",
            relay.is_some(),
            "the client's status and the log disagree\n{out}"
        );
        relay
    };
    let admin = Held::open(&wsl, ELEVATED, "admin");
    assert_eq!(
        service_client("only-elevated"),
        None,
        "a service reached the elevated session's relay {}",
        admin.relay()
    );
    let plain = Held::open(&wsl, PLAIN, "plain");
    assert_eq!(service_client("with-plain"), Some(plain.relay()));
    let admin2 = Held::open(&wsl, ELEVATED, "admin2");
    assert_eq!(
        service_client("elevated-since"),
        Some(plain.relay()),
        "1_interop moved to the newest session, an elevated one"
    );
    plain.end(sb);
    assert_eq!(
        service_client("plain-ended"),
        None,
        "1_interop moved to an elevated session's relay (elevated: {}, {})",
        admin.relay(),
        admin2.relay()
    );
    assert_eq!(admin2.end(sb).1, ELEVATED_MARKER);
    assert_eq!(admin.end(sb).1, ELEVATED_MARKER);
    mounts.assert_unchanged(sb, "while the container runs");
    assert_clean_end(&wsl, &mounts);
}
