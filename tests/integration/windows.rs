//! distrod.exe, the Windows installer, run under Wine against a fake WSL (a `wsl.exe` and
//! a `wslapi.dll` in the prefix's System32, see tests/windows/) and a real image server
//! on 127.0.0.1: what it registers, the calls it makes in order, and what it leaves behind
//! when something fails.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::archive::{self, RootfsSpec};
use crate::support::server::Server;
use crate::support::streams::{Catalog, Item, Product};
use crate::support::wine::{FakeWsl, WinCommand, Wine, screen_output, win_path, wine};
use crate::support::{Output, host_arch, list_dir};

const BUILD: &str = "20241120_05:24";
const PASSWORD: &str = "correct horse";
const FIRSTBOOT: &str = "/opt/distrod/bin/distrod firstboot";
/// The install tarball distrod.exe writes into the location and hands to `--import`.
const TARBALL: &str = "distrod-rootfs.tar";

/// The image server of a test: one product, `debian:bookworm` (12) for the host, whose
/// only build's rootfs is `spec` (single-block xz).
struct Served {
    server: Server,
    spec_tar: Vec<u8>,
    rootfs_path: String,
}

fn serve(name: &str) -> Served {
    serve_spec(RootfsSpec::distro(name))
}

/// [`serve`] of the rootfs `spec`.
fn serve_spec(spec: RootfsSpec) -> Served {
    let spec_tar = spec.tar();
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build(BUILD, &archive::xz(&spec_tar));
    let server = Server::start();
    Catalog::new().with(product.clone()).publish(&server);
    Served {
        server,
        spec_tar,
        rootfs_path: product.rootfs_path(BUILD),
    }
}

/// `distrod.exe install` of debian bookworm from `served` as `name` into `location`, as
/// user alice with the password on standard input.
fn install(
    wine: &Wine,
    fake: &FakeWsl,
    served: &Served,
    name: &str,
    location: &Path,
) -> WinCommand {
    let mut cmd = wine.distrod(fake);
    cmd.args(["install", "--distro", "debian", "--release", "bookworm"])
        .args(["--name", name, "--location", &win_path(location)])
        .args(["--user", "alice", "--password-stdin", "--yes"])
        .args(["--server", &served.server.url()])
        .args(["--cache", &win_path(&fake.cache)])
        .stdin(format!("{PASSWORD}\n"));
    cmd
}

fn import_call(name: &str, location: &Path) -> String {
    let location = win_path(location);
    format!("wsl.exe --import {name} {location} {location}\\{TARBALL} --version 2")
}

fn firstboot_call(name: &str) -> String {
    format!("wsl.exe -d {name} -u root -e {FIRSTBOOT} --user alice --password-stdin --print-uid")
}

fn registered_query(name: &str) -> String {
    format!("WslIsDistributionRegistered {name}")
}

fn assert_calls(fake: &FakeWsl, expected: &[String], output: &Output) {
    assert_eq!(
        fake.calls(),
        expected,
        "the calls to WSL (calls.log) differ\n{output}"
    );
}

/// Asserts that nothing is registered and nothing is left in the locations' parent.
fn assert_nothing_left(fake: &FakeWsl, output: &Output) {
    assert_eq!(
        fake.registered(),
        Vec::<String>::new(),
        "a distro stayed registered\n{output}"
    );
    assert_eq!(
        list_dir(&fake.locations),
        Vec::<String>::new(),
        "files were left where the location was\n{output}"
    );
}

/// The error as the user sees it, lower-cased.
fn error_lower(output: &Output) -> String {
    output.error_text().to_lowercase()
}

// ---------------------------------------------------------------------------------------
// The install tarball

#[derive(Debug, PartialEq)]
struct TarEntry {
    kind: tar::EntryType,
    mode: u32,
    owner: (u64, u64),
    data: Vec<u8>,
    link: Option<String>,
}

/// `./usr/bin/` and `usr/bin` name the same entry.
fn tar_name(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut name = text.as_ref();
    while let Some(rest) = name.strip_prefix("./") {
        name = rest;
    }
    name.trim_start_matches('/')
        .trim_end_matches('/')
        .to_owned()
}

/// The entries of an uncompressed tar by name (the root entry left out).
fn tar_entries(bytes: &[u8]) -> BTreeMap<String, TarEntry> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("read the tar") {
        let mut entry = entry.expect("read a tar entry");
        let name = tar_name(&entry.path_bytes());
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().expect("a mode") & 0o7777;
        let owner = (header.uid().expect("a uid"), header.gid().expect("a gid"));
        let link = entry.link_name_bytes().map(|l| match kind {
            // A hard link names an entry of the archive; a symlink's target is kept as is.
            tar::EntryType::Link => tar_name(&l),
            _ => String::from_utf8_lossy(&l).into_owned(),
        });
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read a tar entry's data");
        if !name.is_empty() {
            out.insert(
                name,
                TarEntry {
                    kind,
                    mode,
                    owner,
                    data,
                    link,
                },
            );
        }
    }
    out
}

/// The files of distrod-rootfs/ (README.md aside) at their paths inside the distro.
fn overlay_files() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("distrod-rootfs");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read distrod-rootfs") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path
                .strip_prefix(&root)
                .expect("under distrod-rootfs")
                .to_str()
                .expect("UTF-8 names")
                .to_owned();
            if rel != "README.md" {
                out.push((rel, fs::read(&path).expect("read an overlay file")));
            }
        }
    }
    assert!(!out.is_empty(), "distrod-rootfs/ has no files");
    out.sort();
    out
}

/// Asserts the tarball WSL imported: every entry of the served image unchanged (type,
/// permission bits, owner, content, link target), distrod's binary setuid root and equal
/// to the embedded one, and the overlay files.
fn assert_install_tarball(wine: &Wine, served: &Served, imported: &[u8], output: &Output) {
    let found = tar_entries(imported);
    for (name, expected) in tar_entries(&served.spec_tar) {
        match found.get(&name) {
            Some(entry) => assert_eq!(
                entry, &expected,
                "/{name} differs from the image's in the imported tarball\n{output}"
            ),
            None => panic!("/{name} of the image is missing from the imported tarball\n{output}"),
        }
    }
    let binary = found
        .get("opt/distrod/bin/distrod")
        .unwrap_or_else(|| panic!("no opt/distrod/bin/distrod in the imported tarball\n{output}"));
    assert_eq!(
        binary.kind,
        tar::EntryType::Regular,
        "distrod's binary is not a file"
    );
    assert_eq!(
        binary.mode, 0o4755,
        "distrod's binary has mode {:o}",
        binary.mode
    );
    assert_eq!(binary.owner, (0, 0), "distrod's binary is not root's");
    let embedded = fs::read(wine.linux_binary()).expect("read the Linux binary");
    assert!(
        binary.data == embedded,
        "opt/distrod/bin/distrod ({} bytes, sha256 {}) is not {} ({} bytes, sha256 {})",
        binary.data.len(),
        archive::sha256_hex(&binary.data),
        wine.linux_binary().display(),
        embedded.len(),
        archive::sha256_hex(&embedded)
    );
    // distrod.exe itself: the port proxy runs it on the Windows side.
    let exe = found.get("opt/distrod/bin/distrod.exe").unwrap_or_else(|| {
        panic!("no opt/distrod/bin/distrod.exe in the imported tarball\n{output}")
    });
    assert_eq!(
        exe.kind,
        tar::EntryType::Regular,
        "distrod.exe is not a file"
    );
    assert_eq!(exe.mode, 0o755, "distrod.exe has mode {:o}", exe.mode);
    assert_eq!(exe.owner, (0, 0), "distrod.exe is not root's");
    assert!(
        exe.data == fs::read(wine.exe()).expect("read the exe"),
        "opt/distrod/bin/distrod.exe is not the distrod.exe under test"
    );
    for (rel, data) in overlay_files() {
        let entry = found
            .get(&rel)
            .unwrap_or_else(|| panic!("the overlay file {rel} is missing\n{output}"));
        assert_eq!(entry.kind, tar::EntryType::Regular, "{rel} is not a file");
        assert!(
            entry.data == data,
            "{rel} differs from distrod-rootfs/{rel}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// install

#[test]
fn install_registers_the_image_with_distrod_in_it() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let name = "Full";
    let location = fake.locations.join("Full");
    let output = install(wine, &fake, &served, name, &location)
        .env("FAKEWSL_UID", "1001")
        .run();
    output.success();
    assert_eq!(fake.registered(), [name], "{output}");
    assert_eq!(fake.default_uid(name), Some(1001), "{output}");
    assert_eq!(
        String::from_utf8_lossy(&fake.stdin_log()),
        format!("{PASSWORD}\n"),
        "what firstboot read on its standard input\n{output}"
    );
    let imported = fake
        .imported(name)
        .unwrap_or_else(|| panic!("nothing was imported\n{output}"));
    assert_install_tarball(wine, &served, &imported, &output);
    assert_eq!(
        list_dir(&location),
        ["ext4.vhdx"],
        "the location holds more than WSL's disk\n{output}"
    );
    assert_eq!(list_dir(&fake.locations), ["Full"], "{output}");
    assert_eq!(
        served.server.requests_for(&served.rootfs_path).len(),
        1,
        "the rootfs was not downloaded once\n{output}"
    );
    assert_calls(
        &fake,
        &[
            registered_query(name),
            import_call(name, &location),
            firstboot_call(name),
            format!("WslGetDistributionConfiguration {name}"),
            // The flags WslGetDistributionConfiguration gave, kept.
            format!("WslConfigureDistribution {name} 1001 7"),
        ],
        &output,
    );
}

#[test]
fn an_already_registered_name_is_refused_before_anything_is_downloaded() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let elsewhere = fake.locations.join("existing");
    fake.register("Taken", &elsewhere);
    // WSL's names compare case-insensitively.
    for name in ["Taken", "taken"] {
        let location = fake.locations.join("new");
        let output = install(wine, &fake, &served, name, &location).run();
        output.failure();
        let error = output.error_text();
        assert!(
            error.lines().count() == 1 && error.contains(name),
            "expected one error line naming {name}\n{output}"
        );
        assert!(error.contains("already registered"), "{output}");
        assert_eq!(
            served.server.requests().len(),
            0,
            "something was downloaded\n{output}"
        );
        assert_eq!(list_dir(&fake.locations), Vec::<String>::new(), "{output}");
        assert_eq!(list_dir(&fake.cache), Vec::<String>::new(), "{output}");
        assert_eq!(fake.registered(), ["Taken"], "{output}");
        let calls = fake.calls();
        assert!(
            !calls.is_empty() && calls.iter().all(|c| *c == registered_query(name)),
            "expected only the registration query: {calls:#?}\n{output}"
        );
        fs::remove_file(fake.dir.join("calls.log")).expect("reset calls.log");
    }
}

#[test]
fn a_location_that_is_not_empty_is_refused() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let location = fake.locations.join("used");
    fs::create_dir(&location).unwrap();
    fs::write(location.join("notes.txt"), "mine\n").unwrap();
    let output = install(wine, &fake, &served, "Used", &location).run();
    output.failure();
    assert!(
        output.error_text().contains("not empty"),
        "expected the error to say the location is not empty\n{output}"
    );
    assert_eq!(served.server.requests().len(), 0, "{output}");
    assert_eq!(list_dir(&location), ["notes.txt"], "{output}");
    assert_eq!(
        fs::read_to_string(location.join("notes.txt")).unwrap(),
        "mine\n"
    );
    let calls = fake.calls();
    assert!(
        calls.iter().all(|c| *c == registered_query("Used")),
        "expected at most the registration query: {calls:#?}\n{output}"
    );
    assert_eq!(fake.registered(), Vec::<String>::new(), "{output}");
}

#[test]
fn a_checksum_mismatch_registers_nothing_and_leaves_nothing() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let spec = RootfsSpec::distro("tampered");
    let bytes = archive::xz(&spec.tar());
    let path = format!(
        "images/debian/bookworm/{}/default/{BUILD}/rootfs.tar.xz",
        host_arch()
    );
    let mut item = Item::rootfs(&path, &bytes);
    item.sha256 = archive::sha256_hex(b"what the catalog promised");
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build_with(BUILD, item);
    let server = Server::start();
    Catalog::new().with(product).publish(&server);
    let served = Served {
        server,
        spec_tar: spec.tar(),
        rootfs_path: path.clone(),
    };
    let location = fake.locations.join("Tampered");
    let output = install(wine, &fake, &served, "Tampered", &location)
        .arg("-vv")
        .run();
    eprintln!("{output}");
    output.failure();
    let error = error_lower(&output);
    assert!(
        error.contains("sha256") || error.contains("checksum"),
        "expected the error to be about the checksum\n{output}"
    );
    assert!(
        !served.server.requests_for(&path).is_empty(),
        "the rootfs was never requested\n{output}"
    );
    assert!(
        fake.calls().iter().all(|c| !c.starts_with("wsl.exe")),
        "wsl.exe was run: {:#?}\n{output}",
        fake.calls()
    );
    assert_nothing_left(&fake, &output);
}

#[test]
fn a_failing_import_registers_nothing_and_leaves_nothing() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    // Two levels that do not exist: both must go.
    let location = fake.locations.join("Distrod").join("Broken");
    let output = install(wine, &fake, &served, "Broken", &location)
        .env("FAKEWSL_FAIL", "import")
        .run();
    output.failure();
    // What the fake wsl.exe said, in UTF-16, reaches the user.
    assert!(
        output.error_text().contains("HCS_E_SERVICE_NOT_AVAILABLE"),
        "expected wsl.exe's message in the error\n{output}"
    );
    let calls = fake.calls();
    assert!(
        calls.contains(&import_call("Broken", &location)),
        "no import call: {calls:#?}\n{output}"
    );
    assert!(
        calls
            .iter()
            .all(|c| !c.contains(FIRSTBOOT) && !c.starts_with("WslConfigure")),
        "went on after the failed import: {calls:#?}\n{output}"
    );
    assert_nothing_left(&fake, &output);
}

#[test]
fn a_failing_firstboot_unregisters_and_leaves_nothing() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let location = fake.locations.join("NoUser");
    let output = install(wine, &fake, &served, "NoUser", &location)
        .env("FAKEWSL_FAIL", "firstboot")
        .run();
    output.failure();
    assert!(
        output.error_text().contains("useradd exited with status 1"),
        "expected firstboot's own message in the error\n{output}"
    );
    assert_calls(
        &fake,
        &[
            registered_query("NoUser"),
            import_call("NoUser", &location),
            firstboot_call("NoUser"),
            "wsl.exe --unregister NoUser".to_owned(),
        ],
        &output,
    );
    assert_eq!(fake.default_uid("NoUser"), None, "{output}");
    assert_nothing_left(&fake, &output);
}

// ---------------------------------------------------------------------------------------
// Without a terminal, without WSL

#[test]
fn without_a_terminal_missing_answers_name_their_flags() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");

    // No arguments at all: the wizard cannot run; how to install without it.
    let output = wine.distrod(&fake).run();
    assert!(
        matches!(output.code(), Some(1 | 2)),
        "expected exit status 1 or 2\n{output}"
    );
    assert!(
        output.stderr.contains("distrod.exe install"),
        "expected the hint `distrod.exe install ...`\n{output}"
    );

    let location = fake.locations.join("Asked");
    let base = [
        "install",
        "--name",
        "Asked",
        "--location",
        &win_path(&location),
        "--server",
        &served.server.url(),
        "--cache",
        &win_path(&fake.cache),
    ];
    let cases: &[(&[&str], &str)] = &[
        (&["--distro", "debian", "--password-stdin"], "--user"),
        (
            &["--distro", "debian", "--user", "alice"],
            "--password-stdin",
        ),
        (&["--user", "alice", "--password-stdin"], "--distro"),
    ];
    for (extra, flag) in cases {
        let output = wine
            .distrod(&fake)
            .args(base)
            .args(*extra)
            .stdin(format!("{PASSWORD}\n"))
            .run();
        assert!(
            matches!(output.code(), Some(1 | 2)),
            "expected exit status 1 or 2\n{output}"
        );
        assert!(
            output.stderr.lines().any(|l| l.contains(flag)),
            "expected a line naming {flag}\n{output}"
        );
        assert!(
            fake.calls().iter().all(|c| !c.starts_with("wsl.exe")),
            "wsl.exe was run: {:#?}\n{output}",
            fake.calls()
        );
        assert_nothing_left(&fake, &output);
    }
    assert!(
        served.server.requests_for(&served.rootfs_path).is_empty(),
        "the rootfs was downloaded without all the answers"
    );
}

#[test]
fn without_wslapi_dll_commands_fail_cleanly() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let location = fake.locations.join("NoApi");
    let output = install(wine, &fake, &served, "NoApi", &location)
        .env("WINEDLLOVERRIDES", "wslapi=d")
        .run();
    output.failure();
    assert!(
        output.error_text().contains("cannot load wslapi.dll"),
        "expected `cannot load wslapi.dll`\n{output}"
    );
    assert_eq!(served.server.requests().len(), 0, "{output}");
    assert_eq!(fake.calls(), Vec::<String>::new(), "{output}");
    assert_nothing_left(&fake, &output);

    fake.register("NoApi", &location);
    let output = wine
        .distrod(&fake)
        .args(["start", "--name", "NoApi"])
        .env("WINEDLLOVERRIDES", "wslapi=d")
        .run();
    output.failure();
    assert!(
        output.error_text().contains("cannot load wslapi.dll"),
        "expected `cannot load wslapi.dll`\n{output}"
    );
    assert_eq!(fake.calls(), Vec::<String>::new(), "{output}");
}

// ---------------------------------------------------------------------------------------
// list, start, uninstall, autostart

/// A distro name no other test (or earlier run) uses: the registry is the prefix's.
fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", std::process::id())
}

#[test]
fn install_list_start_uninstall_round_trip() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve("bookworm");
    let name = unique("Round");
    let value = format!("distrod-{name}");
    let location = fake.locations.join(&name);

    let output = install(wine, &fake, &served, &name, &location)
        .arg("--autostart")
        .run();
    output.success();
    assert_eq!(fake.registered(), [name.as_str()], "{output}");
    assert_eq!(fake.default_uid(&name), Some(1000), "{output}");
    let data = wine
        .run_key_value(&value)
        .unwrap_or_else(|| panic!("no {value} under the Run key after --autostart\n{output}"));
    assert!(
        data.ends_with(&format!(
            "\\wsl.exe -d {name} -u root -e /opt/distrod/bin/distrod launch"
        )),
        "{value} = {data}"
    );

    fake.register("Other", &fake.locations.join("other"));
    let output = wine.distrod(&fake).arg("list").run();
    output.success();
    let rows: Vec<Vec<&str>> = output
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.first().is_some_and(|h| h.contains(&"NAME")),
        "expected a header line\n{output}"
    );
    // The first imported is WSL's default; the distro started at logon says so.
    assert!(
        rows.iter()
            .any(|r| r[..] == ["*", name.as_str(), "Stopped", "2", "yes"]),
        "no row for {name} as the default, started at logon\n{output}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..] == ["Other", "Stopped", "2", "no"]),
        "no row for Other\n{output}"
    );
    fs::remove_file(fake.dir.join("registered").join("Other")).unwrap();

    fs::remove_file(fake.dir.join("calls.log")).unwrap();
    let output = wine.distrod(&fake).args(["start", "--name", &name]).run();
    output.success();
    let calls = fake.calls();
    let launches: Vec<&String> = calls
        .iter()
        .filter(|c| c.starts_with("WslLaunch "))
        .collect();
    assert_eq!(
        launches.len(),
        1,
        "expected one WslLaunch: {calls:#?}\n{output}"
    );
    assert!(
        launches[0].starts_with(&format!("WslLaunch {name} ")),
        "{calls:#?}"
    );

    let output = wine
        .distrod(&fake)
        .args(["start", "--name", &name])
        .env("FAKEWSL_FAIL", "launch")
        .run();
    output.failure();
    assert!(
        output.error_text().contains(&name),
        "expected the error to name {name}\n{output}"
    );
    let output = wine
        .distrod(&fake)
        .args(["start", "--name", &name])
        .env("FAKEWSL_FAIL", "launched")
        .run();
    output.failure();

    fs::remove_file(fake.dir.join("calls.log")).unwrap();
    let output = wine
        .distrod(&fake)
        .args(["uninstall", "--name", &name, "--yes"])
        .run();
    output.success();
    assert!(
        fake.calls()
            .contains(&format!("wsl.exe --unregister {name}")),
        "no --unregister: {:#?}\n{output}",
        fake.calls()
    );
    assert_eq!(fake.registered(), Vec::<String>::new(), "{output}");
    assert_eq!(list_dir(&location), Vec::<String>::new(), "{output}");
    assert_eq!(
        wine.run_key_value(&value),
        None,
        "uninstall left the logon entry\n{output}"
    );

    let output = wine.distrod(&fake).arg("list").run();
    output.success();
    assert!(
        !output.stdout.contains(&name),
        "the removed distro is listed\n{output}"
    );
    let output = wine
        .distrod(&fake)
        .args(["uninstall", "--name", &name, "--yes"])
        .run();
    output.failure();
}

#[test]
fn start_keep_alive_runs_until_the_distro_stops() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let name = unique("Alive");
    fake.register(&name, &fake.locations.join("alive"));
    let mut run = wine.distrod(&fake);
    run.args(["start", "--name", &name, "--keep-alive"]);
    let started = Instant::now();
    let output = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(1500));
            fake.stop_launched();
        });
        run.run()
    });
    output.success();
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "start --keep-alive returned before the distro stopped\n{output}"
    );
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.starts_with(&format!("WslLaunch {name} ")) && c.contains("sleep infinity")),
        "expected a WslLaunch keeping the distro alive: {calls:#?}\n{output}"
    );
}

#[test]
fn autostart_enable_status_disable() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let name = unique("Logon");
    let value = format!("distrod-{name}");
    let status = |fake: &FakeWsl| {
        let output = wine
            .distrod(fake)
            .args(["autostart", "status", "--name", &name])
            .run();
        output.success();
        output
    };

    // Not registered: refused, nothing written.
    let output = wine
        .distrod(&fake)
        .args(["autostart", "enable", "--name", &name])
        .run();
    output.failure();
    assert!(output.error_text().contains(&name), "{output}");
    assert_eq!(wine.run_key_value(&value), None, "{output}");

    fake.register(&name, &fake.locations.join("logon"));
    let output = status(&fake);
    assert!(
        output.stdout.contains("does not start at logon"),
        "expected `does not start at logon`\n{output}"
    );

    let output = wine
        .distrod(&fake)
        .args(["autostart", "enable", "--name", &name])
        .run();
    output.success();
    let data = wine
        .run_key_value(&value)
        .unwrap_or_else(|| panic!("no {value} under the Run key\n{output}"));
    // The one logon entry, as `distrod enable --start-on-windows-boot` writes it too (see
    // wsl.rs): Wine's wsl.exe under conhost.exe --headless, running the distro's distrod.
    let entry = |tail: &str| {
        format!(
            "C:\\windows\\System32\\conhost.exe --headless C:\\windows\\System32\\wsl.exe \
             -d {name} -u root -e /opt/distrod/bin/distrod launch{tail}"
        )
    };
    assert_eq!(data, entry(""), "{value}");
    let output = status(&fake);
    assert!(
        output.stdout.contains("starts at logon") && !output.stdout.contains("does not"),
        "expected `starts at logon`\n{output}"
    );

    let output = wine
        .distrod(&fake)
        .args(["autostart", "enable", "--name", &name, "--keep-alive"])
        .run();
    output.success();
    let data = wine.run_key_value(&value).expect("the value");
    assert_eq!(data, entry(" --keep-alive"), "{value}");

    let output = wine
        .distrod(&fake)
        .args(["autostart", "disable", "--name", &name])
        .run();
    output.success();
    assert_eq!(wine.run_key_value(&value), None, "{output}");
    let output = status(&fake);
    assert!(
        output.stdout.contains("does not start at logon"),
        "{output}"
    );
    // Disabling twice is not an error.
    wine.distrod(&fake)
        .args(["autostart", "disable", "--name", &name])
        .run()
        .success();
}

// ---------------------------------------------------------------------------------------
// The wizard

#[test]
fn the_wizard_on_a_terminal_installs() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let spec_tar = RootfsSpec::distro("bookworm").tar();
    let debian = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build(BUILD, &archive::xz(&spec_tar));
    // An image without systemd: left out of the list, with a line that says so.
    let alpine = Product::numbered("alpine", "3.22", "3.22", host_arch(), "default").build(
        BUILD,
        &archive::xz(&RootfsSpec::distro_without_systemd("alpine").tar()),
    );
    let server = Server::start();
    Catalog::new()
        .with(debian.clone())
        .with(alpine)
        .publish(&server);
    let served = Served {
        server,
        spec_tar,
        rootfs_path: debian.rootfs_path(BUILD),
    };
    let location: PathBuf = fake.locations.join("Wizard");
    let wait = Duration::from_secs(60);
    let mut pty = wine
        .distrod(&fake)
        .env("DISTROD_IMAGE_SERVER", served.server.url())
        // The wizard has no --cache; the prefix's default cache is shared by every run.
        .env("DISTROD_CACHE_DIR", win_path(&fake.cache))
        .spawn_on_pty();
    pty.expect("Not listed, having no systemd", wait);
    pty.expect("Alpine (OpenRC)", wait);
    pty.expect("Image to install", wait);
    pty.expect("Debian bookworm", wait);
    pty.send(b"\r");
    pty.expect("Name in WSL", wait);
    pty.send(b"\r");
    pty.expect("Location of its disk", wait);
    // The default location is shown; typing replaces it.
    pty.expect("Distrod\\Distrod", wait);
    pty.send(win_path(&location).as_bytes());
    pty.send(b"\r");
    pty.expect("Linux user name", wait);
    pty.send(b"alice\r");
    pty.expect("Password for alice", wait);
    pty.send(PASSWORD.as_bytes());
    pty.send(b"\r");
    pty.expect("Repeat it", wait);
    pty.send(PASSWORD.as_bytes());
    pty.send(b"\r");
    // `Install IMAGE as NAME, its disk in LOCATION, user USER? (Y/n)`; Enter says yes.
    pty.expect("Install", wait);
    pty.expect("alice?", wait);
    pty.send(b"\r");
    pty.expect("Installed Distrod", wait);
    // Alone in its console, as when double-clicked: it waits before the window closes.
    pty.expect("Press Enter", wait);
    pty.send(b"\r");
    let (status, screen) = pty.wait(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the wizard did not exit with status 0 ({status:?})\n{screen}"
    );
    assert!(
        !screen.contains(PASSWORD),
        "the password was echoed\n{screen}"
    );
    assert_eq!(fake.registered(), ["Distrod"]);
    assert_eq!(
        String::from_utf8_lossy(&fake.stdin_log()),
        format!("{PASSWORD}\n")
    );
    assert_eq!(list_dir(&location), ["ext4.vhdx"]);
    assert_eq!(
        served.server.requests_for(&served.rootfs_path).len(),
        1,
        "the rootfs was not downloaded once"
    );
    let output = screen_output("distrod.exe (the wizard)", status, &screen);
    assert_calls(
        &fake,
        &[
            // The name's check as it was typed: the install does not ask again.
            registered_query("Distrod"),
            import_call("Distrod", &location),
            firstboot_call("Distrod"),
            "WslGetDistributionConfiguration Distrod".to_owned(),
            "WslConfigureDistribution Distrod 1000 7".to_owned(),
        ],
        &output,
    );
}

// ---------------------------------------------------------------------------------------
// Packages for others

/// `distrod.exe pack`: a `.wsl` file (gzip tar) of the image with both binaries, the
/// overlay, the first-start script /usr/lib/wsl/distrod-oobe.sh (`distrod firstboot` with
/// the uid WSL then logs in as: the image's first free one, 1001 here since the image has
/// an account with uid 1000) and a wsl-distribution.conf that names both; no WSL
/// involved, and an existing file is never replaced.
#[test]
fn pack_writes_a_wsl_package_that_sets_itself_up_on_first_start() {
    let Some(wine) = wine() else {
        return;
    };
    let fake = FakeWsl::new();
    let served = serve_spec(RootfsSpec::distro("packed").file(
        "etc/passwd",
        0o644,
        "root:x:0:0:root:/root:/bin/bash\nuser:x:1000:1000::/home/user:/bin/bash\n",
    ));
    let out_dir = tempfile::tempdir().expect("a directory for the package");
    let out = out_dir.path().join("Debian.wsl");
    let pack = |out: &Path| {
        wine.distrod(&fake)
            .args(["pack", "debian:bookworm", "--out", &win_path(out)])
            .args(["--server", &served.server.url()])
            .args(["--cache", &win_path(&fake.cache)])
            .run()
    };
    let output = pack(&out);
    output.success();
    assert!(
        fake.calls().is_empty(),
        "pack asked WSL: {:?}",
        fake.calls()
    );
    assert_eq!(list_dir(out_dir.path()), ["Debian.wsl"], "{output}");

    let gz = fs::read(&out).expect("read the package");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar)
        .expect("the package is gzip");
    let found = tar_entries(&tar);
    for (name, expected) in tar_entries(&served.spec_tar) {
        if name == "etc/wsl-distribution.conf" {
            continue;
        }
        assert_eq!(found.get(&name), Some(&expected), "/{name} in the package");
    }
    let binary = &found["opt/distrod/bin/distrod"];
    assert_eq!((binary.mode, binary.owner), (0o4755, (0, 0)));
    assert!(binary.data == fs::read(wine.linux_binary()).unwrap());
    let exe = &found["opt/distrod/bin/distrod.exe"];
    assert_eq!((exe.mode, exe.owner), (0o755, (0, 0)));
    assert!(exe.data == fs::read(wine.exe()).unwrap());
    for (rel, data) in overlay_files() {
        assert!(found.get(&rel).is_some_and(|e| e.data == data), "{rel}");
    }
    let conf = String::from_utf8(found["etc/wsl-distribution.conf"].data.clone()).unwrap();
    assert!(
        conf.contains("command = /usr/lib/wsl/distrod-oobe.sh\n")
            && conf.contains("defaultName = Debian\n")
            && conf.contains("defaultUid = 1001\n"),
        "{conf}"
    );
    let script = &found["usr/lib/wsl/distrod-oobe.sh"];
    assert_eq!((script.mode, script.owner), (0o755, (0, 0)));
    let text = String::from_utf8(script.data.clone()).unwrap();
    assert!(
        text.starts_with("#!/bin/sh\n")
            && text.contains("\nexec /opt/distrod/bin/distrod firstboot --uid 1001 \"$@\"\n"),
        "{text}"
    );
    assert!(output.stderr.contains("uid 1001"), "{output}");
    // What WSL's validator of modern distributions checks (support/wsl_package.rs).
    let findings = crate::support::wsl_package::check(&gz);
    assert!(
        findings.errors.is_empty()
            && findings
                .warnings
                .iter()
                .all(|w| !w.contains("oobe.command") && !w.contains("default uid")),
        "{findings:#?}"
    );

    // A second pack to the same file is refused; the package stays as it was.
    let again = pack(&out);
    again.failure();
    assert!(error_lower(&again).contains("exists"), "{again}");
    assert_eq!(fs::read(&out).unwrap(), gz);
    assert_eq!(list_dir(out_dir.path()), ["Debian.wsl"]);
}

// ---------------------------------------------------------------------------------------
// Images without systemd (src/initsys.rs)

/// `install` of an image without systemd: refused with the reason and the way out before
/// anything is registered, nothing left; `--without-systemd` installs the plain distro,
/// whose first-boot setup creates the user without enabling distrod, and says so.
#[test]
fn an_image_without_systemd_is_refused_unless_installed_plain() {
    let Some(wine) = wine() else { return };
    let fake = FakeWsl::new();
    let served = serve_spec(RootfsSpec::distro_without_systemd("nosystemd"));
    let location = fake.locations.join("Plain");
    let output = install(wine, &fake, &served, "Plain", &location).run();
    output.failure();
    let error = output.error_text();
    for needle in [
        "no systemd",
        "/usr/lib/systemd/systemd",
        "--without-systemd",
    ] {
        assert!(
            error.contains(needle),
            "{needle:?} not in the error\n{output}"
        );
    }
    assert_calls(&fake, &[registered_query("Plain")], &output);
    assert_nothing_left(&fake, &output);

    let output = install(wine, &fake, &served, "Plain", &location)
        .arg("--without-systemd")
        .run();
    output.success();
    assert_calls(
        &fake,
        &[
            registered_query("Plain"),
            registered_query("Plain"),
            import_call("Plain", &location),
            format!("{} --no-enable", firstboot_call("Plain")),
            "WslGetDistributionConfiguration Plain".to_owned(),
            "WslConfigureDistribution Plain 1000 7".to_owned(),
        ],
        &output,
    );
    assert!(
        output.stderr.contains("not enabled in Plain"),
        "the closing message does not say so\n{output}"
    );
}

/// `pack` of an image without systemd under Wine: refused, no file left.
#[test]
fn pack_refuses_an_image_without_systemd() {
    let Some(wine) = wine() else {
        return;
    };
    let fake = FakeWsl::new();
    let served = serve_spec(RootfsSpec::distro_without_systemd("nosystemd"));
    let out_dir = tempfile::tempdir().expect("a directory for the package");
    let out = out_dir.path().join("Debian.wsl");
    let output = wine
        .distrod(&fake)
        .args(["pack", "debian:bookworm", "--out", &win_path(&out)])
        .args(["--server", &served.server.url()])
        .args(["--cache", &win_path(&fake.cache)])
        .run();
    output.failure();
    assert!(
        output.error_text().contains("--without-systemd"),
        "{output}"
    );
    assert!(list_dir(out_dir.path()).is_empty(), "{output}");
}
