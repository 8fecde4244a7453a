//! A distro's account files: /etc/passwd, /etc/shells, /etc/login.defs and /etc/group, as
//! `distrod enable` and `disable` read and edit them (`distro::accounts`: the hook rule,
//! the passwd and shells edits and their undoing) and as `distrod exec -u` reads them
//! (`runtime::users`: a user and their groups).
//!
//! These files are the distro's own: whatever a package, an administrator or `useradd`
//! wrote, and they are read as root. The input is the four files joined with NUL bytes, in
//! that order (see [`crate::sections`]); a missing part is a missing file (passwd is always
//! there). The edits run on a scratch tree that stands for `/` (every function of
//! `accounts` takes the root it works in), never on the real /etc. What is checked is what
//! the module documents: enable changes nothing but shell fields, a second enable changes
//! nothing, and disable after enable gives back the exact bytes of both files and leaves no
//! file behind, for files that do not already hold distrod's aliases.

use std::collections::HashSet;
use std::fs;

use distrod::distro::accounts::{ALIAS_DIR, LoginDefs, disable, enable, real_of};
use distrod::runtime::users::{parse_groups, parse_passwd};

use crate::scratch::{Scratch, files};

pub fn run(data: &[u8]) {
    let parts = crate::sections(data);
    let passwd = parts[0];
    let shells = parts.get(1).copied();
    let login_defs = parts.get(2).copied();
    let group = parts.get(3).copied();

    if let Some(defs) = login_defs {
        let defs = LoginDefs::parse(&String::from_utf8_lossy(defs));
        let _ = defs.hooks_uid(1000);
    }
    users(passwd, group);
    edits(passwd, shells, login_defs);
}

/// `exec -u NAME|UID`: the user by name and by uid, then their groups.
fn users(passwd: &[u8], group: Option<&[u8]>) {
    let Ok(passwd) = std::str::from_utf8(passwd) else {
        return;
    };
    let group = group
        .and_then(|g| std::str::from_utf8(g).ok())
        .unwrap_or("");
    for line in passwd.lines().take(16) {
        let fields: Vec<&str> = line.split(':').collect();
        for who in fields.iter().take(3).step_by(2) {
            if let Some(user) = parse_passwd(passwd, who) {
                assert!(!user.shell.is_empty(), "an empty shell for {who:?}");
                let groups = parse_groups(group, &user.name, user.gid);
                assert_eq!(
                    groups.first(),
                    Some(&user.gid),
                    "the primary group is not first"
                );
            }
        }
    }
}

fn edits(passwd: &[u8], shells: Option<&[u8]>, login_defs: Option<&[u8]>) {
    let scratch = Scratch::new("accounts");
    let root = scratch.path();
    fs::create_dir(root.join("etc")).expect("create etc");
    let write = |name: &str, bytes: &[u8]| {
        fs::write(root.join("etc").join(name), bytes).expect("write a file of the scratch tree")
    };
    write("passwd", passwd);
    if let Some(s) = shells {
        write("shells", s);
    }
    if let Some(d) = login_defs {
        write("login.defs", d);
    }
    let before = files(root);
    let read = |name: &str| fs::read(root.join("etc").join(name)).ok();

    let Ok(summary) = enable(root) else {
        // Refused (an alias that cannot be made, say): undoing must still work.
        let _ = disable(root);
        return;
    };
    let enabled = (read("passwd"), read("shells"));
    only_shell_fields_changed(passwd, enabled.0.as_deref().unwrap_or_default());
    for (name, real) in &summary.hooked {
        assert!(
            real_of(&format!("{ALIAS_DIR}{real}")).as_deref() == Some(real.as_str()),
            "{name} is hooked to {real}, whose alias does not lead back to it"
        );
    }

    let again = enable(root).expect("enable worked once, so it works again");
    assert!(
        again.newly_hooked.is_empty(),
        "a second enable hooked {:?}",
        again.newly_hooked
    );
    assert_eq!(
        (read("passwd"), read("shells")),
        enabled,
        "a second enable changed the files"
    );

    disable(root).expect("disable after enable");
    if holds_no_alias(passwd) && shells.is_none_or(holds_no_alias) && unique_names(passwd) {
        assert!(
            read("passwd").as_deref() == Some(passwd),
            "disable did not restore /etc/passwd"
        );
        if shells.is_none_or(|s| std::str::from_utf8(s).is_ok()) {
            assert!(
                read("shells").as_deref() == shells,
                "disable did not restore /etc/shells"
            );
        }
        assert_eq!(files(root), before, "enable and disable left files behind");
    }
}

/// The lines of `before` and `after` differ at most after their last `:`.
fn only_shell_fields_changed(before: &[u8], after: &[u8]) {
    let b: Vec<&[u8]> = before.split(|&c| c == b'\n').collect();
    let a: Vec<&[u8]> = after.split(|&c| c == b'\n').collect();
    assert_eq!(a.len(), b.len(), "enable changed the number of lines");
    for (old, new) in b.iter().zip(&a) {
        if old == new {
            continue;
        }
        let head = |l: &[u8]| l.iter().rposition(|&c| c == b':').map(|i| l[..=i].to_vec());
        assert!(
            head(old).is_some() && head(old) == head(new),
            "enable changed more than a shell field: {:?} -> {:?}",
            String::from_utf8_lossy(old),
            String::from_utf8_lossy(new)
        );
    }
}

fn holds_no_alias(bytes: &[u8]) -> bool {
    let alias = ALIAS_DIR.as_bytes();
    !bytes.windows(alias.len()).any(|w| w == alias)
}

/// No two passwd lines with the same name (disable restores empty shell fields by name).
fn unique_names(passwd: &[u8]) -> bool {
    let mut seen = HashSet::new();
    passwd
        .split(|&c| c == b'\n')
        .filter(|l| l.split(|&c| c == b':').count() == 7)
        .all(|l| seen.insert(l.split(|&c| c == b':').next().unwrap_or_default()))
}
