//! Users and groups of the *container*, read from its /etc/passwd and /etc/group after
//! entering its mount namespace. A static binary has no NSS, and the distro's files are
//! what its own tools use.

use std::path::PathBuf;

use super::{Context, Error, Result};

/// An account of the container's /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user's name.
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary group's gid.
    pub gid: u32,
    /// The home directory, as passwd says (it need not exist).
    pub home: PathBuf,
    /// The login shell; `/bin/sh` when passwd leaves it empty.
    pub shell: String,
}

/// passwd(5): name:password:uid:gid:gecos:home:shell. `who` is a name or a numeric uid.
pub fn parse_passwd(text: &str, who: &str) -> Option<User> {
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || !(f[0] == who || f[2] == who) {
            return None;
        }
        Some(User {
            name: f[0].into(),
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5].into(),
            shell: if f[6].is_empty() {
                "/bin/sh".into()
            } else {
                f[6].into()
            },
        })
    })
}

/// group(5): name:password:gid:members. The primary group first, then every group that
/// lists `user` as a member (what initgroups(3) does).
pub fn parse_groups(text: &str, user: &str, primary: u32) -> Vec<u32> {
    let mut v = vec![primary];
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() >= 4
            && f[3].split(',').any(|m| m == user)
            && let Ok(g) = f[2].parse()
            && !v.contains(&g)
        {
            v.push(g);
        }
    }
    v
}

/// Looks `who` up in the current root's /etc/passwd and /etc/group.
pub fn lookup(who: &str) -> Result<(User, Vec<u32>)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ctx(|| "read /etc/passwd".into())?;
    let user = parse_passwd(&passwd, who)
        .ok_or_else(|| Error::Other(format!("no user {who:?} in the container's /etc/passwd")))?;
    let groups = std::fs::read_to_string("/etc/group")
        .map(|g| parse_groups(&g, &user.name, user.gid))
        .unwrap_or_else(|_| vec![user.gid]);
    Ok((user, groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        broken:x:zz:1::/:\n\
        distrod:x:1000:1000:,,,:/home/distrod:\n";

    #[test]
    fn finds_users_by_name_or_uid() {
        let u = parse_passwd(PASSWD, "distrod").unwrap();
        assert_eq!(
            u,
            User {
                name: "distrod".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/distrod".into(),
                shell: "/bin/sh".into(),
            }
        );
        assert_eq!(parse_passwd(PASSWD, "0").unwrap().name, "root");
        assert_eq!(parse_passwd(PASSWD, "broken"), None);
        assert_eq!(parse_passwd(PASSWD, "nobody"), None);
    }

    #[test]
    fn supplementary_groups() {
        let group = "root:x:0:\nsudo:x:27:distrod,other\nusers:x:100:\naudio:x:29:distrod\ndistrod:x:1000:\n";
        assert_eq!(parse_groups(group, "distrod", 1000), [1000, 27, 29]);
        assert_eq!(parse_groups(group, "root", 0), [0]);
    }
}
