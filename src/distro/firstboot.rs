//! First-boot setup of a distro made by distrod's installer (or a `.wsl` package's OOBE
//! command): the user WSL will log in as, with a password and administrator rights
//! through sudo, then `enable`.
//!
//! Distros differ in their tools, so the account is made with what the distro has:
//! shadow-utils' `useradd` (Debian, Ubuntu, Fedora, Arch, openSUSE) or else BusyBox's
//! `adduser`/`addgroup` (Alpine); the password is set with `chpasswd`, which both have.
//! Administrators are the `sudo` group where it exists (Debian, Ubuntu), else `wheel`
//! (Fedora, Arch, Alpine); where sudo's configuration leaves that group without a rule
//! (Arch ships `%wheel` commented out), a drop-in `/etc/sudoers.d/10-distrod-admins`
//! grants it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::runtime::{Context, Error, Result, users};

/// What was set up.
#[derive(Debug)]
pub struct Account {
    /// The user's name.
    pub name: String,
    /// The user's uid (what WSL's default user is set to).
    pub uid: u32,
    /// False when the user existed already (its password and groups were updated).
    pub created: bool,
    /// The group that gives sudo rights, if the distro has one.
    pub admin_group: Option<String>,
    /// sudo itself is not installed (the group is there for when it is).
    pub sudo_missing: bool,
}

pub use crate::account::{check_name, check_password};

/// The group that makes a user an administrator here: `sudo`, else `wheel`.
pub fn admin_group(group_file: &str) -> Option<&'static str> {
    let has = |g: &str| group_file.lines().any(|l| l.split(':').next() == Some(g));
    ["sudo", "wheel"].into_iter().find(|g| has(g))
}

/// Whether sudoers (main file and drop-ins, as text) grants `%group` anything.
pub fn sudoers_grants(sudoers: &str, group: &str) -> bool {
    let needle = format!("%{group}");
    sudoers.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with('#') && l.split_whitespace().next() == Some(needle.as_str())
    })
}

/// Creates (or updates) the account and sets its password. Idempotent: an existing user
/// keeps its uid and gets the group and the new password.
///
/// With `uid` (a `.wsl` package's first start: the `oobe.defaultUid` WSL logs in as) the
/// user is created with exactly that uid; before anything changes, it is an error when
/// another account has the uid or the user exists with another one (see
/// [`crate::account::uid_conflict`]).
pub fn set_up(name: &str, password: &str, uid: Option<u32>) -> Result<Account> {
    check_name(name).map_err(Error::Other)?;
    check_password(password).map_err(Error::Other)?;
    if let Some(uid) = uid {
        let passwd = fs::read_to_string("/etc/passwd").ctx(|| "read /etc/passwd".into())?;
        if let Some(conflict) = crate::account::uid_conflict(&passwd, name, uid) {
            return Err(Error::Other(conflict.to_string()));
        }
    }
    let group_file = fs::read_to_string("/etc/group").unwrap_or_default();
    let admin = admin_group(&group_file).map(str::to_string);
    let existed = users::lookup(name).is_ok();
    let shell = ["/bin/bash", "/usr/bin/bash", "/bin/sh"]
        .into_iter()
        .find(|s| Path::new(s).exists())
        .unwrap_or("/bin/sh");
    if !existed {
        if tool("useradd") {
            let mut cmd = Command::new("useradd");
            cmd.args(["--create-home", "--shell", shell]);
            if let Some(uid) = uid {
                cmd.args(["--uid", &uid.to_string()]);
            }
            if let Some(g) = &admin {
                cmd.args(["--groups", g]);
            }
            run(cmd.arg(name), None, "useradd")?;
        } else if tool("adduser") {
            // BusyBox: -D no password prompt, -s shell, -u uid.
            let mut cmd = Command::new("adduser");
            cmd.args(["-D", "-s", shell]);
            if let Some(uid) = uid {
                cmd.args(["-u", &uid.to_string()]);
            }
            run(cmd.arg(name), None, "adduser")?;
        } else {
            return Err(Error::Other(
                "neither useradd nor adduser is installed: cannot create the user".into(),
            ));
        }
    }
    if let Some(g) = &admin {
        if tool("usermod") {
            run(
                Command::new("usermod").args(["--append", "--groups", g, name]),
                None,
                "usermod",
            )?;
        } else if tool("addgroup") {
            run(Command::new("addgroup").args([name, g]), None, "addgroup")?;
        }
    }
    run(
        &mut Command::new("chpasswd"),
        Some(format!("{name}:{password}\n").as_bytes()),
        "chpasswd",
    )?;
    let sudo_missing = !["/usr/bin/sudo", "/bin/sudo", "/usr/sbin/sudo"]
        .iter()
        .any(|p| Path::new(p).exists());
    if let Some(g) = &admin {
        grant_sudo(g)?;
    }
    let (user, _) = users::lookup(name)?;
    if let Some(uid) = uid
        && user.uid != uid
    {
        return Err(Error::Other(format!(
            "{name} was made with uid {} instead of {uid}",
            user.uid
        )));
    }
    Ok(Account {
        name: name.to_string(),
        uid: user.uid,
        created: !existed,
        admin_group: admin,
        sudo_missing,
    })
}

/// A drop-in for `%group` unless sudoers already has a rule for it (only where sudo is
/// configured at all: /etc/sudoers.d exists).
fn grant_sudo(group: &str) -> Result<()> {
    let dir = Path::new("/etc/sudoers.d");
    if !dir.is_dir() {
        return Ok(());
    }
    let mut text = fs::read_to_string("/etc/sudoers").unwrap_or_default();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            text.push_str(&fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    if sudoers_grants(&text, group) {
        return Ok(());
    }
    let path = dir.join("10-distrod-admins");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o440)
        .open(&path)
        .map_err(|e| Error::Io {
            what: format!("create {}", path.display()),
            source: e,
        })?;
    writeln!(
        f,
        "# Written by distrod's first-boot setup: members of {group} may administer.\n\
         %{group} ALL=(ALL:ALL) ALL"
    )
    .map_err(|e| Error::Io {
        what: format!("write {}", path.display()),
        source: e,
    })
}

fn tool(name: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(name).is_file())
}

/// Runs a system tool (with the PATH of root's tools); its stderr names the failure.
fn run(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Result<()> {
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    .stdin(stdin.map_or_else(Stdio::null, |_| Stdio::piped()))
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Io {
        what: format!("run {what}"),
        source: e,
    })?;
    if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
        let _ = w.write_all(data);
    }
    let out = child.wait_with_output().map_err(|e| Error::Io {
        what: format!("run {what}"),
        source: e,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Other(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names() {
        for ok in ["alice", "_svc", "bob-2", "a"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Alice",
            "1bob",
            "bob smith",
            "root",
            "a:b",
            &"x".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords() {
        assert!(check_password("s3cret pass").is_ok());
        assert!(check_password("").is_err());
        assert!(check_password("a\nb").is_err());
    }

    #[test]
    fn the_admin_group_of_each_family() {
        assert_eq!(
            admin_group("root:x:0:\nsudo:x:27:\nwheel:x:10:\n"),
            Some("sudo")
        );
        assert_eq!(admin_group("root:x:0:\nwheel:x:10:root\n"), Some("wheel"));
        assert_eq!(admin_group("root:x:0:\n"), None);
    }

    #[test]
    fn sudoers_rules() {
        let arch = "root ALL=(ALL:ALL) ALL\n# %wheel ALL=(ALL:ALL) ALL\n";
        assert!(!sudoers_grants(arch, "wheel"));
        assert!(sudoers_grants("%sudo\tALL=(ALL:ALL) ALL\n", "sudo"));
        assert!(sudoers_grants(
            "  %wheel ALL=(ALL) NOPASSWD: ALL\n",
            "wheel"
        ));
        assert!(!sudoers_grants("%wheelers ALL=(ALL) ALL\n", "wheel"));
    }
}
