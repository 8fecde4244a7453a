//! The installer's flow against the recording fake of WSL: the calls it makes, in order,
//! and what is left after each kind of failure.

use std::cell::RefCell;
use std::fs;
use std::path::Path;

use super::*;
use crate::wsl::Output;
use crate::wsl::fake::{Call, CallKind, Recording};

/// A logon-entry store in memory, failing on request.
#[derive(Default)]
struct Entries {
    on: RefCell<Vec<String>>,
    fail_enable: bool,
}

impl Autostart for Entries {
    fn enable(&self, name: &str, _keep_alive: bool) -> anyhow::Result<()> {
        if self.fail_enable {
            anyhow::bail!("cannot write the value distrod-{name}: access denied");
        }
        self.on.borrow_mut().push(name.to_string());
        Ok(())
    }
    fn disable(&self, name: &str) -> anyhow::Result<bool> {
        let mut on = self.on.borrow_mut();
        let before = on.len();
        on.retain(|n| n != name);
        Ok(on.len() != before)
    }
    fn status(&self, name: &str) -> anyhow::Result<Option<String>> {
        Ok(self
            .on
            .borrow()
            .iter()
            .any(|n| n == name)
            .then(|| name.into()))
    }
}

fn plan(location: &Path) -> Plan {
    Plan {
        name: "Distrod".into(),
        location: location.to_path_buf(),
        user: "alice".into(),
        password: "s3cret pw".into(),
        autostart: false,
        systemd: true,
    }
}

/// What an install that goes to its end needs: a WSL whose first boot answers uid 1000, an
/// empty logon-entry store, and a plan (at `loc`) that starts the distro at logon.
fn full_install(loc: &Path) -> (Recording, Entries, Plan) {
    let wsl = Recording::new();
    wsl.push_output(uid_output("1000"));
    let mut p = plan(loc);
    p.autostart = true;
    (wsl, Entries::default(), p)
}

fn uid_output(uid: &str) -> Output {
    Output {
        code: 0,
        stdout: format!("{uid}\n").into_bytes(),
        stderr: b"created alice (uid 1000)\n".to_vec(),
    }
}

/// Writes a small tarball where asked, as the real builder would.
fn write_tarball(path: &Path) -> anyhow::Result<()> {
    fs::write(path, b"tar bytes")?;
    Ok(())
}

/// The error of an install with no logon entries that writes `write_tarball`'s tarball.
fn install_error(wsl: &Recording, p: &Plan) -> String {
    Installer {
        wsl,
        autostart: &Entries::default(),
        ui: &ui(),
    }
    .install(p, write_tarball)
    .unwrap_err()
    .to_string()
}

fn ui() -> Ui {
    Ui::new(true)
}

#[test]
fn a_full_install_makes_the_calls_in_order_and_leaves_only_the_distro() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("Distrod").join("Distrod");
    let (wsl, entries, p) = full_install(&loc);
    let seen = RefCell::new(None);
    let done = Installer {
        wsl: &wsl,
        autostart: &entries,
        ui: &ui(),
    }
    .install(&p, |t| {
        *seen.borrow_mut() = Some(t.to_path_buf());
        write_tarball(t)
    })
    .unwrap();
    assert_eq!(done.uid, 1000);
    let tarball = loc.join(TARBALL_NAME);
    assert_eq!(seen.borrow().as_deref(), Some(tarball.as_path()));
    assert_eq!(
        wsl.calls(),
        vec![
            Call::IsRegistered {
                name: "Distrod".into()
            },
            Call::Import {
                name: "Distrod".into(),
                location: loc.clone(),
                tarball: tarball.clone(),
            },
            Call::Run {
                name: "Distrod".into(),
                user: Some("root".into()),
                command: [
                    "/opt/distrod/bin/distrod",
                    "firstboot",
                    "--user",
                    "alice",
                    "--password-stdin",
                    "--print-uid"
                ]
                .map(String::from)
                .to_vec(),
                stdin: Some(b"s3cret pw\n".to_vec()),
            },
            Call::SetDefaultUser {
                name: "Distrod".into(),
                uid: 1000,
            },
        ]
    );
    assert_eq!(wsl.registered(), ["Distrod"]);
    assert_eq!(wsl.default_uid("Distrod"), Some(1000));
    assert_eq!(*entries.on.borrow(), ["Distrod"]);
    // The tarball is gone; the location stays for WSL's disk.
    assert!(!tarball.exists());
    assert!(loc.is_dir());
    assert_eq!(fs::read_dir(&loc).unwrap().count(), 0);
}

#[test]
fn a_registered_name_is_refused_before_anything_is_made() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("loc");
    let wsl = Recording::with_registered(&["distrod"]);
    let called = RefCell::new(false);
    let e = Installer {
        wsl: &wsl,
        autostart: &Entries::default(),
        ui: &ui(),
    }
    .install(&plan(&loc), |_| {
        *called.borrow_mut() = true;
        Ok(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("already registered") && e.contains("Distrod"),
        "{e}"
    );
    assert!(!*called.borrow());
    assert_eq!(wsl.kinds(), [CallKind::IsRegistered]);
    assert!(!loc.exists());
}

#[test]
fn bad_answers_are_refused_before_wsl_is_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("loc");
    let wsl = Recording::new();
    for (edit, needle) in [
        (
            (|p: &mut Plan| p.name = "--help".into()) as fn(&mut Plan),
            "starts with '-'",
        ),
        (
            |p: &mut Plan| p.name = "My Distro".into(),
            "not a valid WSL",
        ),
        (
            |p: &mut Plan| p.user = "Alice".into(),
            "not a valid user name",
        ),
        (|p: &mut Plan| p.user = "root".into(), "regular user"),
        (
            |p: &mut Plan| p.password = String::new(),
            "password is empty",
        ),
        (
            |p: &mut Plan| p.location = "relative/dir".into(),
            "not an absolute path",
        ),
    ] {
        let mut p = plan(&loc);
        edit(&mut p);
        let e = install_error(&wsl, &p);
        assert!(e.contains(needle), "{e} (wanted {needle})");
    }
    assert!(wsl.kinds().iter().all(|k| *k == CallKind::IsRegistered));
    assert!(!loc.exists());
}

#[test]
fn a_location_in_use_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("loc");
    fs::create_dir(&loc).unwrap();
    fs::write(loc.join("mine.txt"), b"keep").unwrap();
    let wsl = Recording::new();
    let e = install_error(&wsl, &plan(&loc));
    assert!(e.contains("not empty"), "{e}");
    assert_eq!(fs::read(loc.join("mine.txt")).unwrap(), b"keep");
    assert_eq!(fs::read_dir(&loc).unwrap().count(), 1);
    // An empty existing directory is fine, and is kept on failure.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    wsl.fail_on(CallKind::Import);
    Installer {
        wsl: &wsl,
        autostart: &Entries::default(),
        ui: &ui(),
    }
    .install(&plan(&empty), write_tarball)
    .unwrap_err();
    assert!(empty.is_dir());
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

/// Each way an install can fail after the checks: nothing registered, no tarball, no
/// directory it created, no logon entry.
#[test]
fn every_failure_after_the_checks_leaves_nothing_behind() {
    type Setup = fn(&Recording, &mut Entries);
    let cases: [(&str, Setup, &str); 6] = [
        ("tarball", |_, _| {}, "checksum mismatch"),
        ("import", |w, _| w.fail_on(CallKind::Import), "--import"),
        (
            "firstboot exit",
            |w, _| {
                w.push_output(Output {
                    code: 1,
                    stdout: vec![],
                    stderr: b"useradd: cannot lock /etc/passwd\n".to_vec(),
                })
            },
            "cannot lock /etc/passwd",
        ),
        ("firstboot wsl", |w, _| w.fail_on(CallKind::Run), "Distrod"),
        (
            "default user",
            |w, _| {
                w.push_output(uid_output("1000"));
                w.fail_on(CallKind::SetDefaultUser)
            },
            "WslConfigureDistribution",
        ),
        (
            "autostart",
            |w, e| {
                w.push_output(uid_output("1000"));
                e.fail_enable = true;
            },
            "access denied",
        ),
    ];
    for (case, setup, needle) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let loc = tmp.path().join("a").join("b");
        let wsl = Recording::new();
        let mut entries = Entries::default();
        setup(&wsl, &mut entries);
        let mut p = plan(&loc);
        p.autostart = true;
        let e = Installer {
            wsl: &wsl,
            autostart: &entries,
            ui: &ui(),
        }
        .install(&p, |t| {
            if case == "tarball" {
                fs::write(t, b"partial")?;
                anyhow::bail!("checksum mismatch for the image");
            }
            write_tarball(t)
        })
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains(needle), "{case}: {e}");
        assert!(wsl.registered().is_empty(), "{case}: still registered");
        assert!(entries.on.borrow().is_empty(), "{case}: logon entry left");
        assert!(!tmp.path().join("a").exists(), "{case}: directories left");
        let imported = wsl.kinds().contains(&CallKind::Import);
        let unregistered = wsl.kinds().contains(&CallKind::Unregister);
        assert_eq!(
            unregistered,
            imported && case != "import",
            "{case}: {:?}",
            wsl.kinds()
        );
    }
}

#[test]
fn a_firstboot_that_prints_no_uid_is_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let loc = tmp.path().join("loc");
    let wsl = Recording::new();
    wsl.push_output(uid_output("not a number"));
    let e = install_error(&wsl, &plan(&loc));
    assert!(e.contains("printed no uid"), "{e}");
    assert!(wsl.registered().is_empty());
    assert!(!loc.exists());
}

#[test]
fn names_follow_wsl_rules() {
    assert!(check_name("Distrod").is_ok());
    assert!(check_name("Ubuntu-24.04").is_ok());
    assert!(check_name("my_distro").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name("a b").is_err());
    assert!(check_name("a/b").is_err());
    assert!(check_name(&"x".repeat(65)).is_err());
}

#[test]
fn the_default_location_is_under_local_app_data() {
    // Only read here; the process environment is not changed by the tests.
    match std::env::var_os("LOCALAPPDATA") {
        Some(base) if !base.is_empty() => assert_eq!(
            default_location("X").unwrap(),
            Path::new(&base).join("Distrod").join("X")
        ),
        _ => assert_eq!(default_location("X"), None),
    }
}

#[test]
fn the_image_list_puts_debian_stable_and_ubuntu_lts_first() {
    let json = br#"{"format":"products:1.0","products":{
      "alpine:3.21:amd64:default":{"aliases":"alpine/3.21","arch":"amd64","os":"Alpine","release":"3.21","release_title":"3.21","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"a.tar.xz","sha256":"00","size":1}}}}},
      "alpine:3.22:amd64:default":{"aliases":"alpine/3.22","arch":"amd64","os":"Alpine","release":"3.22","release_title":"3.22","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"b.tar.xz","sha256":"00","size":1}}}}},
      "debian:bookworm:amd64:default":{"aliases":"debian/12,debian/bookworm","arch":"amd64","os":"Debian","release":"bookworm","release_title":"bookworm","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"c.tar.xz","sha256":"00","size":1}}}}},
      "debian:trixie:amd64:default":{"aliases":"debian/13,debian/trixie","arch":"amd64","os":"Debian","release":"trixie","release_title":"trixie","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"d.tar.xz","sha256":"00","size":1}}}}},
      "debian:trixie:amd64:cloud":{"aliases":"debian/13/cloud","arch":"amd64","os":"Debian","release":"trixie","release_title":"trixie","variant":"cloud","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"e.tar.xz","sha256":"00","size":1}}}}},
      "debian:sid:amd64:default":{"aliases":"debian/sid","arch":"amd64","os":"Debian","release":"sid","release_title":"sid","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"f.tar.xz","sha256":"00","size":1}}}}},
      "ubuntu:noble:amd64:default":{"aliases":"ubuntu/24.04,ubuntu/noble","arch":"amd64","os":"Ubuntu","release":"noble","release_title":"noble","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"g.tar.xz","sha256":"00","size":1}}}}},
      "ubuntu:plucky:amd64:default":{"aliases":"ubuntu/25.04,ubuntu/plucky","arch":"amd64","os":"Ubuntu","release":"plucky","release_title":"plucky","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"h.tar.xz","sha256":"00","size":1}}}}},
      "ubuntu:noble:arm64:default":{"aliases":"ubuntu/24.04","arch":"arm64","os":"Ubuntu","release":"noble","release_title":"noble","variant":"default","versions":{"1":{"items":{"root.tar.xz":{"ftype":"root.tar.xz","path":"i.tar.xz","sha256":"00","size":1}}}}}
    }}"#;
    let catalog = Catalog::parse(json).unwrap();
    let list = choices(&catalog, "x86_64");
    assert_eq!(
        keys(&list.offered),
        [
            "debian:trixie:default",
            "ubuntu:noble:default",
            "debian:bookworm:default",
            "debian:sid:default",
            "ubuntu:plucky:default",
        ]
    );
    assert_eq!(list.offered[0].label, "Debian trixie (13)  [recommended]");
    assert_eq!(list.offered[1].label, "Ubuntu noble (24.04)  [recommended]");
    assert_eq!(list.offered[2].label, "Debian bookworm (12)");
    // Alpine has no systemd: left out, and named once for both releases.
    assert_eq!(list.left_out, ["Alpine (OpenRC)"]);
}

/// `distro:release:variant` of each choice, to compare lists in one assertion.
fn keys(list: &[Choice]) -> Vec<String> {
    list.iter()
        .map(|c| format!("{}:{}:{}", c.distro, c.release, c.variant))
        .collect()
}

/// A catalog with one build of a root filesystem for each `distro:release:arch:variant`
/// key, the release's number (if any) as its alias, as the server spells them.
fn catalog(products: &[&str]) -> Catalog {
    let products: Vec<String> = products
        .iter()
        .map(|key| {
            let p: Vec<&str> = key.split(':').collect();
            format!(
                r#""{key}":{{"aliases":"{d}/{r}","arch":"{a}","release":"{r}","release_title":"{r}","variant":"{v}","versions":{{"1":{{"items":{{"root.tar.xz":{{"ftype":"root.tar.xz","path":"{d}-{r}-{v}.tar.xz","sha256":"00","size":1}}}}}}}}}}"#,
                d = p[0],
                r = p[1],
                a = p[2],
                v = p[3],
            )
        })
        .collect();
    let json = format!(
        r#"{{"format":"products:1.0","products":{{{}}}}}"#,
        products.join(",")
    );
    Catalog::parse(json.as_bytes()).unwrap()
}

#[test]
fn the_image_list_leaves_out_images_without_systemd_and_says_so() {
    let catalog = catalog(&[
        "alpine:3.22:amd64:default",
        "alpine:3.22:amd64:cloud",
        "debian:13:amd64:default",
        "gentoo:current:amd64:openrc",
        "gentoo:current:amd64:systemd",
        "voidlinux:current:amd64:default",
    ]);
    let list = choices(&catalog, "amd64");
    assert_eq!(
        keys(&list.offered),
        ["debian:13:default", "gentoo:current:systemd"]
    );
    assert_eq!(list.offered[1].label, "Gentoo current, systemd variant");
    assert_eq!(
        list.left_out,
        [
            "Alpine (OpenRC)",
            "Gentoo openrc (OpenRC)",
            "Voidlinux (runit)"
        ]
    );
    let line = left_out_line(&list.left_out).unwrap();
    assert!(
        line.contains("Alpine (OpenRC), Gentoo openrc (OpenRC), Voidlinux (runit).")
            && line.contains("--without-systemd"),
        "{line}"
    );
    assert_eq!(left_out_line(&[]), None);
}

/// Ctrl-C between any two steps: the steps before it are undone.
#[test]
fn ctrl_c_at_any_step_leaves_nothing_behind() {
    use std::cell::Cell;
    // The flow asks whether Ctrl-C came after the tarball, the import, the first boot and
    // the last step: answer yes at the n-th question.
    for at in 1..=4 {
        let tmp = tempfile::tempdir().unwrap();
        let loc = tmp.path().join("x").join("loc");
        let (wsl, entries, p) = full_install(&loc);
        preflight(&wsl, &p).unwrap();
        let asked = Cell::new(0);
        let interrupted = || {
            asked.set(asked.get() + 1);
            asked.get() == at
        };
        let e = Installer {
            wsl: &wsl,
            autostart: &entries,
            ui: &ui(),
        }
        .install_with(&p, write_tarball, &interrupted)
        .unwrap_err()
        .to_string();
        assert_eq!(e, "interrupted", "at {at}");
        assert!(wsl.registered().is_empty(), "at {at}: still registered");
        assert!(entries.on.borrow().is_empty(), "at {at}: logon entry left");
        assert!(!tmp.path().join("x").exists(), "at {at}: files left");
        assert_eq!(
            wsl.kinds().contains(&CallKind::Unregister),
            at > 1,
            "at {at}: {:?}",
            wsl.kinds()
        );
    }
}
