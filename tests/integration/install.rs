//! `distrod install`, `update FILE`, `uninstall` and scripts/install.sh, end to end, in a
//! WSL stand-in sandbox (support/sandbox.rs) whose tree is a distro before install: the
//! binary under test staged at /usr/lib/distrod-test/distrod, no /opt/distrod.
//!
//! The tree is compared before and after with a listing of the sandbox's root (path,
//! type, mode, owner, size, SHA-256 of files, symlink targets), read from the host through
//! the sandbox's PID 1.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::support::sandbox::{STAGED_DISTROD, Sandbox, prerequisites};
use crate::support::{Output, skip_or_fail};

const INSTALLED: &str = "/opt/distrod/bin/distrod";
const OVERLAY_FILE: &str = "/opt/distrod/share/distrod.toml.example";
/// Where the tests bind scripts/ and the host's busybox.
const SCRIPTS: &str = "/usr/lib/distrod-test/scripts";
const BUSYBOX_DIR: &str = "/usr/lib/distrod-test/busybox";
/// Not part of the distro's tree: API file systems, scratch space, and the test's own
/// binds (the staged binary, scripts/, busybox).
const UNLISTED: &[&str] = &["proc", "sys", "dev", "run", "tmp", "usr/lib/distrod-test"];
/// The build id a stamped copy of the binary under test carries (16 bytes).
const NEWER_ID: &str = "newer-build-0002";
const MARKER: &[u8] = b"distrod-build-id:";

fn fresh_sandbox(tree: &Path) -> Sandbox {
    Sandbox::builder().distrod_not_installed().start(tree)
}

/// The binary under test (read once: it is large in a debug build).
fn binary() -> &'static [u8] {
    static BINARY: OnceLock<Vec<u8>> = OnceLock::new();
    BINARY.get_or_init(|| {
        fs::read(env!("CARGO_BIN_EXE_distrod")).expect("read the binary under test")
    })
}

/// A copy of the binary under test with the build id [`NEWER_ID`] stamped into its marker
/// slot: "a newer binary", without rebuilding.
fn newer() -> &'static [u8] {
    static NEWER: OnceLock<Vec<u8>> = OnceLock::new();
    NEWER.get_or_init(|| {
        let mut bytes = binary().to_vec();
        let hits: Vec<usize> = bytes
            .windows(MARKER.len())
            .enumerate()
            .filter(|(_, w)| *w == MARKER)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(hits.len(), 1, "the build-id marker must occur exactly once");
        let at = hits[0] + MARKER.len();
        bytes[at..at + NEWER_ID.len()].copy_from_slice(NEWER_ID.as_bytes());
        bytes
    })
}

/// Writes an executable file into the sandbox.
fn put(sb: &Sandbox, inside: &str, contents: &[u8]) {
    sb.write_file(inside, contents);
    fs::set_permissions(sb.path(inside), fs::Permissions::from_mode(0o755))
        .expect("chmod a file in the sandbox");
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The SHA-256 of a file, remembered by inode, size and times: the rootfs's files are the
/// same in every listing, and hashing them again each time would dominate the tests'
/// run time. Writing to a file changes its ctime, so a changed file is hashed again.
fn file_sha256(path: &Path, m: &fs::Metadata) -> String {
    type Key = (u64, u64, i64, i64, i64, i64);
    static SEEN: Mutex<BTreeMap<Key, String>> = Mutex::new(BTreeMap::new());
    let key = (
        m.ino(),
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    );
    if let Some(hash) = SEEN.lock().unwrap().get(&key) {
        return hash.clone();
    }
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let hash = sha256(&bytes);
    SEEN.lock().unwrap().insert(key, hash.clone());
    hash
}

/// One line per entry of the sandbox's tree: type, mode, uid, gid, and the size and
/// SHA-256 of a file or the target of a symlink (no times: they are not the tree's).
fn listing(sb: &Sandbox) -> BTreeMap<String, String> {
    let root = sb.path("/");
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display())) {
            let entry = entry.expect("a directory entry");
            let rel = rel.join(entry.file_name());
            let rel_s = rel.to_string_lossy().into_owned();
            if UNLISTED.contains(&rel_s.as_str()) {
                continue;
            }
            let path = root.join(&rel);
            let m = fs::symlink_metadata(&path)
                .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
            let head = format!("{:o} {}:{}", m.mode(), m.uid(), m.gid());
            let what = if m.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("read a symlink");
                format!("link {head} -> {}", target.display())
            } else if m.is_dir() {
                stack.push(rel.clone());
                format!("dir {head}")
            } else if m.is_file() {
                format!("file {head} {} {}", m.len(), file_sha256(&path, &m))
            } else {
                format!("other {head} rdev {}", m.rdev())
            };
            out.insert(format!("/{rel_s}"), what);
        }
    }
    out
}

/// Asserts two listings are equal, naming the differences.
fn assert_same_tree(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) {
    let mut diff = String::new();
    for (path, what) in before {
        match after.get(path) {
            None => diff.push_str(&format!("- {path}: {what}\n")),
            Some(now) if now != what => diff.push_str(&format!("~ {path}: {what} => {now}\n")),
            Some(_) => {}
        }
    }
    for (path, what) in after {
        if !before.contains_key(path) {
            diff.push_str(&format!("+ {path}: {what}\n"));
        }
    }
    assert!(diff.is_empty(), "the tree changed:\n{diff}");
}

/// The directory install puts its PATH symlink in, for this rootfs.
fn link_path(tree: &Path) -> &'static str {
    if tree.join("usr/local/sbin").is_dir() {
        "/usr/local/sbin/distrod"
    } else {
        "/usr/local/bin/distrod"
    }
}

fn install(sb: &Sandbox) -> Output {
    let out = sb.run(&[STAGED_DISTROD, "install"]);
    out.success();
    out
}

/// The installed binary is the stamped or plain build `expected`, 04755 root:root.
fn assert_installed(sb: &Sandbox, expected: &[u8], out: &Output) {
    let path = sb.path(INSTALLED);
    let m = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("{INSTALLED}: {e}\n{out}"));
    assert!(m.is_file(), "{INSTALLED} is not a file\n{out}");
    assert_eq!(m.mode() & 0o7777, 0o4755, "{INSTALLED} mode\n{out}");
    assert_eq!((m.uid(), m.gid()), (0, 0), "{INSTALLED} owner\n{out}");
    let now = fs::read(&path).expect("read the installed binary");
    assert!(
        now.len() == expected.len() && now == expected,
        "{INSTALLED} is not the expected binary ({} bytes, expected {})\n{out}",
        now.len(),
        expected.len()
    );
    // No staging file left beside it.
    assert_eq!(
        crate::support::list_dir(&sb.path("/opt/distrod/bin")),
        ["distrod"],
        "{out}"
    );
}

fn version(sb: &Sandbox, argv: &[&str]) -> String {
    let out = sb.run(argv);
    out.success();
    assert!(out.stdout.starts_with("distrod "), "{out}");
    out.stdout.trim().to_owned()
}

#[test]
fn install_lays_down_the_binary_the_overlay_and_the_path_link() {
    let Some(tree) = prerequisites("install") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    assert!(
        !sb.path("/opt/distrod").exists(),
        "the sandbox has /opt/distrod"
    );
    let out = install(&sb);
    assert!(
        out.stderr.contains(&format!("installed {INSTALLED}")),
        "{out}"
    );
    assert_installed(&sb, binary(), &out);

    let overlay = fs::symlink_metadata(sb.path(OVERLAY_FILE))
        .unwrap_or_else(|e| panic!("{OVERLAY_FILE}: {e}\n{out}"));
    assert_eq!(overlay.mode() & 0o7777, 0o644, "{OVERLAY_FILE} mode");
    let repo_copy = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("distrod-rootfs")
        .join(OVERLAY_FILE.trim_start_matches('/'));
    assert_eq!(
        fs::read(sb.path(OVERLAY_FILE)).unwrap(),
        fs::read(repo_copy).unwrap(),
        "{OVERLAY_FILE} differs from distrod-rootfs/"
    );
    for dir in [
        "/opt",
        "/opt/distrod",
        "/opt/distrod/bin",
        "/opt/distrod/share",
    ] {
        let m = fs::metadata(sb.path(dir)).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.gid()),
            (0o755, 0, 0),
            "{dir}"
        );
    }

    let link = link_path(&tree);
    assert_eq!(
        fs::read_link(sb.path(link)).unwrap_or_else(|e| panic!("{link}: {e}\n{out}")),
        Path::new(INSTALLED),
        "{link}"
    );
    // Found through PATH by the link alone.
    let via_path = version(
        &sb,
        &[
            "env",
            "-i",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/bin:/bin",
            "sh",
            "-c",
            "command -v distrod >&2 && distrod --version",
        ],
    );
    assert!(via_path.contains(" (build "), "{via_path}");

    // Again, from the staged binary and from the installed one: nothing changes.
    let before = listing(&sb);
    for argv in [[STAGED_DISTROD, "install"], [INSTALLED, "install"]] {
        let again = sb.run(&argv);
        again.success();
        assert!(again.stderr.contains("already this binary"), "{again}");
        assert!(again.stderr.contains("nothing changed"), "{again}");
        assert_same_tree(&before, &listing(&sb));
    }
}

#[test]
fn install_refuses_what_is_in_its_way() {
    let Some(tree) = prerequisites("install over foreign files") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    let link = link_path(&tree);
    put(&sb, link, b"#!/bin/sh\necho someone else's distrod\n");
    let before = listing(&sb);
    let out = sb.run(&[STAGED_DISTROD, "install"]);
    out.failure()
        .error_mentions(&[link, "is a file, not distrod's symlink"]);
    assert_same_tree(&before, &listing(&sb));
    drop(sb);

    // A setuid root binary goes nowhere another user could swap it.
    let sb = fresh_sandbox(&tree);
    fs::create_dir_all(sb.path("/opt/distrod")).unwrap();
    fs::set_permissions(sb.path("/opt/distrod"), fs::Permissions::from_mode(0o777)).unwrap();
    let before = listing(&sb);
    let out = sb.run(&[STAGED_DISTROD, "install"]);
    out.failure().error_mentions(&[
        "/opt/distrod must be a directory owned by root and writable by root only",
    ]);
    assert_same_tree(&before, &listing(&sb));
}

#[test]
fn update_refuses_what_is_not_a_distrod_binary() {
    let Some(tree) = prerequisites("update") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    install(&sb);
    let original = binary();

    let mut other_machine = original.to_vec();
    let em: u16 = if cfg!(target_arch = "aarch64") {
        62
    } else {
        183
    };
    other_machine[18..20].copy_from_slice(&em.to_le_bytes());
    put(&sb, "/tmp/script", b"#!/bin/sh\necho distrod 9.9.9\n");
    put(&sb, "/tmp/truncated", &original[..original.len() / 2]);
    put(&sb, "/tmp/other-machine", &other_machine);
    let other_reason = format!("built for aarch64 (ELF machine {em})");
    let other_reason = if em == 62 {
        format!("built for x86_64 (ELF machine {em})")
    } else {
        other_reason
    };
    let mut cases: Vec<(&str, &str)> = vec![
        ("/tmp/script", "not an ELF file but a script"),
        ("/tmp/truncated", "truncated: "),
        ("/tmp/other-machine", &other_reason),
        // The distro's own coreutils: dynamically linked.
        ("/usr/bin/true", "dynamically linked (interpreter "),
        ("/tmp/missing", "No such file"),
    ];
    // A static binary for this machine that is not distrod.
    if let Some(busybox) = host_busybox() {
        put(&sb, "/tmp/busybox", &fs::read(busybox).unwrap());
        cases.push(("/tmp/busybox", "not a distrod binary"));
    }
    for (file, reason) in cases {
        let out = sb.run(&[INSTALLED, "update", file]);
        out.failure().error_mentions(&[file, reason]);
        assert_eq!(
            out.error_text().lines().count(),
            1,
            "the reason is one line\n{out}"
        );
        assert_installed(&sb, original, &out);
    }
}

#[test]
fn update_installs_a_newer_build() {
    let Some(tree) = prerequisites("update") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    install(&sb);
    let old = version(&sb, &[INSTALLED, "--version"]);
    assert!(old.ends_with("(build dev-------------)"), "{old}");

    let newer = newer();
    put(&sb, "/tmp/distrod-new", newer);
    let out = sb.run(&["distrod", "update", "/tmp/distrod-new"]);
    out.success();
    assert!(
        out.stderr.contains(&format!("(build {NEWER_ID})")),
        "update names the new version\n{out}"
    );
    assert_installed(&sb, newer, &out);
    let new = version(&sb, &[INSTALLED, "--version"]);
    assert_eq!(
        new,
        old.replace("dev-------------", NEWER_ID),
        "the installed binary's version"
    );

    // The same file again: nothing to replace.
    let again = sb.run(&["distrod", "update", "/tmp/distrod-new"]);
    again.success();
    assert!(again.stderr.contains("nothing changed"), "{again}");
    assert_installed(&sb, newer, &again);
}

#[test]
fn a_session_open_during_an_update_keeps_running() {
    let Some(tree) = prerequisites("update with a session open") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    install(&sb);
    put(&sb, "/tmp/distrod-new", newer());

    let session = sb
        .command(&[INSTALLED, "exec", "--", "sh", "-c", "sleep 2; echo alive"])
        .spawn()
        .expect("start a session");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(session.wait_with_output());
    });
    // The session is inside the container once its `sleep 2` runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !sb
        .processes()
        .iter()
        .any(|p| fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x002\x00"))
    {
        assert!(
            Instant::now() < deadline,
            "the session's command did not start\n{}",
            sb.describe_processes()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let out = sb.run(&[INSTALLED, "update", "/tmp/distrod-new"]);
    out.success();

    let session = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the session did not end within 60 s")
        .expect("wait for the session");
    let stdout = String::from_utf8_lossy(&session.stdout);
    let stderr = String::from_utf8_lossy(&session.stderr);
    assert_eq!(
        (session.status.code(), stdout.as_ref()),
        (Some(0), "alive\n"),
        "the open session\n--- stderr ---\n{stderr}"
    );

    // A new session runs the new binary.
    let inside = sb.run(&[INSTALLED, "exec", "--", INSTALLED, "--version"]);
    inside.success();
    assert!(
        inside
            .stdout
            .trim()
            .ends_with(&format!("(build {NEWER_ID})")),
        "{inside}"
    );
    sb.run(&[INSTALLED, "stop"]).success();
    assert!(
        sb.container_inits().is_empty(),
        "the container is still running\n{}",
        sb.describe_processes()
    );
}

#[test]
fn uninstall_leaves_the_tree_as_it_was() {
    let Some(tree) = prerequisites("uninstall") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    put(&sb, "/tmp/distrod-new", newer());
    let before = listing(&sb);
    install(&sb);
    sb.run(&[INSTALLED, "update", "/tmp/distrod-new"]).success();
    let out = sb.run(&["distrod", "uninstall"]);
    out.success();
    assert!(out.stderr.contains("removed /opt/distrod"), "{out}");
    assert_same_tree(&before, &listing(&sb));

    // Nothing left to remove: still a success, still the same tree.
    let again = sb.run(&[STAGED_DISTROD, "uninstall"]);
    again.success();
    assert!(again.stderr.contains("not installed"), "{again}");
    assert_same_tree(&before, &listing(&sb));
}

#[test]
fn uninstall_is_refused_inside_the_container() {
    let Some(tree) = prerequisites("uninstall inside the container") else {
        return;
    };
    let sb = fresh_sandbox(&tree);
    install(&sb);
    let out = sb.run(&[INSTALLED, "exec", "--", INSTALLED, "uninstall"]);
    out.failure().error_mentions(&[
        "inside the systemd container",
        "-u root -e /opt/distrod/bin/distrod uninstall",
    ]);
    assert!(sb.path(INSTALLED).is_file(), "{out}");
    sb.run(&[INSTALLED, "stop"]).success();
    assert!(sb.path(INSTALLED).is_file());
}

/// The host's static busybox, when there is one.
fn host_busybox() -> Option<PathBuf> {
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A directory with the host's busybox and a symlink for each of its applets, so that a
/// shell with only this directory on PATH meets busybox's tools, as on Alpine.
fn busybox_dir(busybox: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a directory for busybox");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::copy(busybox, dir.path().join("busybox")).expect("copy busybox");
    let list = std::process::Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if !applet.is_empty() && applet != "busybox" {
            std::os::unix::fs::symlink("busybox", dir.path().join(applet)).unwrap();
        }
    }
    dir
}

#[test]
fn install_script_works_under_dash_and_busybox() {
    let Some(tree) = prerequisites("scripts/install.sh") else {
        return;
    };
    let Some(busybox) = host_busybox() else {
        skip_or_fail("scripts/install.sh needs a static busybox on the host (busybox-static)");
        return;
    };
    let bb = busybox_dir(&busybox);
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let sb = Sandbox::builder()
        .distrod_not_installed()
        .bind_ro(&scripts, SCRIPTS)
        .bind_ro(bb.path(), BUSYBOX_DIR)
        .start(&tree);
    let script = format!("{SCRIPTS}/install.sh");
    let bb_path = format!("PATH={BUSYBOX_DIR}");
    let bb_sh = format!("{BUSYBOX_DIR}/sh");
    let env_bb = format!("{BUSYBOX_DIR}/env");
    // (name, the command that runs the script: shell and environment)
    let shells: [(&str, Vec<&str>); 2] = [
        ("dash", vec!["dash"]),
        ("busybox", vec![&env_bb, "-i", &bb_path, &bb_sh]),
    ];
    put(&sb, "/tmp/distrod-new", newer());
    put(&sb, "/tmp/not-elf", b"just text, no ELF header\n");
    let before = listing(&sb);
    for (name, shell) in &shells {
        let run = |args: &[&str]| {
            let mut argv = shell.clone();
            argv.push(&script);
            argv.extend_from_slice(args);
            sb.run(&argv)
        };
        let mut syntax = shell.clone();
        syntax.extend_from_slice(&["-n", &script]);
        sb.run(&syntax).success();

        let help = run(&["--help"]);
        help.success();
        assert!(
            help.stdout.contains("Usage: install.sh install [FILE]"),
            "{name}\n{help}"
        );
        let bad = run(&["frobnicate"]);
        assert_eq!(bad.code(), Some(2), "{name}\n{bad}");

        let not_elf = run(&["install", "/tmp/not-elf"]);
        assert_eq!(not_elf.code(), Some(1), "{name}\n{not_elf}");
        assert!(
            not_elf.stderr.contains("is not an ELF file"),
            "{name}\n{not_elf}"
        );
        let missing = run(&["install", "/tmp/nothing-here"]);
        assert_eq!(missing.code(), Some(1), "{name}\n{missing}");
        assert!(
            missing.stderr.contains("does not exist"),
            "{name}\n{missing}"
        );
        let early = run(&["update", "/tmp/distrod-new"]);
        assert_eq!(early.code(), Some(1), "{name}\n{early}");
        assert!(early.stderr.contains("not installed"), "{name}\n{early}");
        assert_same_tree(&before, &listing(&sb));

        let install = run(&["install", STAGED_DISTROD]);
        install.success();
        assert_installed(&sb, binary(), &install);
        let update = run(&["update", "/tmp/distrod-new"]);
        update.success();
        assert_installed(&sb, newer(), &update);
        // The binary's own refusal, and its exit status, come through.
        let refused = run(&["update", "/usr/bin/true"]);
        assert_eq!(refused.code(), Some(1), "{name}\n{refused}");
        assert!(
            refused.stderr.contains("dynamically linked"),
            "{name}\n{refused}"
        );
        let uninstall = run(&["uninstall"]);
        uninstall.success();
        assert_same_tree(&before, &listing(&sb));
    }

    // Not as root.
    let user = sb.run_as("distrod", &["dash", &script, "install", STAGED_DISTROD]);
    assert_eq!(user.code(), Some(1), "{user}");
    assert!(user.stderr.contains("must run as root"), "{user}");
}

/// Issue-level round trip through a fake WSL: install, enable, a session lands in systemd,
/// an update while a session is open (it keeps working on the old binary; a new session
/// runs the new one), uninstall, and the tree is as before install. Running systemd
/// writes its own state into the distro, like any boot: those paths are compared apart.
#[test]
fn install_enable_update_uninstall_through_wsl_sessions() {
    use crate::support::fakewsl::{DistrodAt, FakeWsl};
    let Some(tree) = prerequisites("install_enable_update_uninstall_through_wsl_sessions") else {
        return;
    };
    let wsl = FakeWsl::start(&tree, DistrodAt::Staged);
    let sb = &wsl.sandbox;
    let before = listing(sb);

    install(sb);
    sb.run(&[INSTALLED, "enable"]).success();
    let out = wsl.session("distrod", "echo pid1=$(cat /proc/1/comm)");
    out.success();
    assert!(out.stdout.contains("pid1=systemd"), "{out}");

    // A root session stays open across the update; its reaper ($PPID of its shell) runs
    // the binary that was installed when it started.
    let open = wsl.spawn_session(
        "root",
        "readlink /proc/$PPID/exe > /tmp/open-before; \
         while [ ! -e /tmp/open-go ]; do sleep 0.05; done; \
         readlink /proc/$PPID/exe > /tmp/open-after; echo alive",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while sb.read_file("/tmp/open-before").is_none() {
        assert!(Instant::now() < deadline, "the open session did not start");
        thread::sleep(Duration::from_millis(50));
    }
    put(sb, "/tmp/newer", newer());
    sb.run(&[INSTALLED, "update", "/tmp/newer"]).success();
    let out = wsl.session(
        "root",
        "echo new=$(readlink /proc/$PPID/exe); /opt/distrod/bin/distrod --version",
    );
    out.success();
    assert!(out.stdout.contains(&format!("(build {NEWER_ID})")), "{out}");
    assert!(
        out.stdout.contains("new=/opt/distrod/bin/distrod\n"),
        "a new session runs the new binary\n{out}"
    );
    sb.write_file("/tmp/open-go", "");
    let out = open.wait();
    assert_eq!(out.code(), Some(0), "{out}");
    assert!(out.stdout.contains("alive"), "{out}");
    assert!(
        sb.read_file("/tmp/open-after")
            .is_some_and(|s| s.trim() == "/opt/distrod/bin/distrod (deleted)"),
        "the open session kept the old binary"
    );

    sb.run(&[INSTALLED, "uninstall"]).success();
    assert!(!sb.path("/opt/distrod").exists());
    let after = listing(sb);
    // What booting systemd itself leaves in a distro (WSL's own systemd leaves the same):
    // its state under /var, and what systemd-tmpfiles creates at every boot when missing
    // (etc.conf: /etc/mtab; provision.conf: /root/.ssh; home.conf: /srv).
    let booted = |p: &str| {
        p.starts_with("/var/")
            || ["/etc/machine-id", "/etc/mtab", "/root/.ssh", "/srv"].contains(&p)
    };
    let keep = |m: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.iter()
            .filter(|(p, _)| !booted(p))
            .map(|(p, w)| (p.clone(), w.clone()))
            .collect()
    };
    assert_same_tree(&keep(&before), &keep(&after));
}
