//! Distros without systemd (src/initsys.rs): `enable` and `firstboot` refuse them before
//! anything changes, with one line naming what is missing and how the distro gets it;
//! `pack` refuses an image without systemd and leaves nothing, unless `--without-systemd`
//! asks for the plain distro, whose first start then creates the user only. The Windows
//! installer's side is in tests/integration/windows.rs.

use crate::support::archive::{RootfsSpec, gzip};
use crate::support::fakewsl::{DistrodAt, FakeWsl};
use crate::support::sandbox::{STAGED_DISTROD, prerequisites};
use crate::support::{Distrod, Output};

fn start(test: &str) -> Option<FakeWsl> {
    let tree = prerequisites(test)?;
    Some(FakeWsl::start(&tree, DistrodAt::Staged))
}

/// `enable`, then `firstboot`, on the test distro with systemd taken away, then with another
/// init as /sbin/init: refused, nothing changed; `firstboot --no-enable` still creates the
/// user of a plain distro; with systemd back, `enable` works.
#[test]
fn enable_and_firstboot_refuse_a_distro_without_systemd() {
    let Some(wsl) = start("enable_and_firstboot_refuse_a_distro_without_systemd") else {
        return;
    };
    let sb = &wsl.sandbox;
    let passwd0 = sb.read_file("/etc/passwd").unwrap();
    let shells0 = sb.read_file("/etc/shells").unwrap();
    let unchanged = |out: &Output| {
        assert_eq!(sb.read_file("/etc/passwd").unwrap(), passwd0, "{out}");
        assert_eq!(sb.read_file("/etc/shells").unwrap(), shells0, "{out}");
        assert!(!sb.path("/opt/distrod").exists(), "installed anyway\n{out}");
    };
    sb.run(&[
        "sh",
        "-c",
        "mv /usr/lib/systemd/systemd /var/tmp/systemd && mv /usr/sbin/init /var/tmp/init",
    ])
    .success();

    let out = sb.run(&[STAGED_DISTROD, "enable"]);
    out.failure().error_mentions(&[
        "no systemd",
        "/usr/lib/systemd/systemd",
        "apt install systemd-sysv",
        "nothing was changed",
    ]);
    assert_eq!(out.stderr.trim().lines().count(), 1, "one line\n{out}");
    unchanged(&out);

    let firstboot = |extra: &str| {
        sb.run(&[
            "sh",
            "-c",
            &format!(
                "echo 'pw pw' | {STAGED_DISTROD} firstboot --user alice --password-stdin {extra}"
            ),
        ])
    };
    let out = firstboot("");
    out.failure()
        .error_mentions(&["no systemd", "apt install systemd-sysv"]);
    unchanged(&out);

    // Another init as /sbin/init, although systemd is installed.
    sb.run(&[
        "sh",
        "-c",
        "mv /var/tmp/systemd /usr/lib/systemd/systemd && ln -s /bin/true /usr/sbin/init",
    ])
    .success();
    let out = sb.run(&[STAGED_DISTROD, "enable"]);
    out.failure()
        .error_mentions(&["/sbin/init is /usr/bin/true", "another init than systemd"]);
    unchanged(&out);

    // The plain distro's first start: the user, and nothing of distrod's.
    let out = firstboot("--no-enable");
    out.success();
    assert!(
        sb.read_file("/etc/passwd").unwrap().contains("\nalice:"),
        "{out}"
    );
    assert!(!sb.path("/opt/distrod").exists(), "enabled anyway\n{out}");

    // systemd as /sbin/init again: enable goes ahead.
    sb.run(&[
        "sh",
        "-c",
        "rm /usr/sbin/init && mv /var/tmp/init /usr/sbin/init",
    ])
    .success();
    sb.run(&[STAGED_DISTROD, "enable"]).success();
    let out = wsl.session("alice", "echo pid1=$(cat /proc/1/comm)");
    assert_eq!(out.field("pid1"), "systemd", "{out}");
    sb.run(&["/opt/distrod/bin/distrod", "stop"]).success();
}

/// An Alpine-like image: busybox as /sbin/init, no systemd.
fn alpine() -> RootfsSpec {
    RootfsSpec::new()
        .dir("etc", 0o755)
        .file(
            "etc/os-release",
            0o644,
            "NAME=\"Alpine Linux\"\nID=alpine\n",
        )
        .file("etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/ash\n")
        .dir("bin", 0o755)
        .file("bin/busybox", 0o755, "#!/bin/sh\n")
        .symlink("bin/sh", "/bin/busybox")
        .dir("sbin", 0o755)
        .symlink("sbin/init", "/bin/busybox")
}

/// `pack` of an image without systemd: refused with the reason, no file left; with
/// `--without-systemd`, a package whose first start creates the user without enabling.
#[test]
fn pack_refuses_an_image_without_systemd_unless_asked_for_a_plain_distro() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("alpine.tar.gz");
    std::fs::write(&image, gzip(&alpine().tar())).unwrap();
    let out_file = dir.path().join("Alpine.wsl");
    let pack = |extra: &[&str]| {
        Distrod::new()
            .args(["pack", "--image"])
            .arg(&image)
            .args(["--name", "Alpine", "--out"])
            .arg(&out_file)
            .args(extra)
            .run()
    };
    let out = pack(&[]);
    out.failure()
        .error_mentions(&["/sbin/init is /bin/busybox", "OpenRC", "--without-systemd"]);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["alpine.tar.gz"], "{out}");

    let out = pack(&["--without-systemd"]);
    out.success();
    assert!(out.stderr.contains("not enabled"), "{out}");
    let mut tar = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&std::fs::read(&out_file).unwrap()[..]),
        &mut tar,
    )
    .unwrap();
    let members = crate::support::wsl_package::members(&tar);
    let script = members
        .get("usr/lib/wsl/distrod-oobe.sh")
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .expect("a first-start script");
    assert!(
        script.contains("firstboot --uid 1000 --no-enable"),
        "{script}"
    );
}
