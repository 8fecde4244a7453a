//! The rules for the account distrod creates in a distro (`distrod firstboot`), shared with
//! the Windows installer, which checks the answers before anything is downloaded, and with
//! `pack`, which chooses the uid a `.wsl` package's first start gives that account.

/// useradd(8)'s default rule for names (and what Debian's adduser enforces): a lower-case
/// letter or `_` first, then lower-case letters, digits, `_` or `-`, at most 32.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok_first = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let ok_rest = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if name.is_empty() || name.len() > 32 || !ok_first || !ok_rest {
        return Err(format!(
            "{name:?} is not a valid user name: a lower-case letter or _ first, then \
             lower-case letters, digits, _ or -, at most 32 characters"
        ));
    }
    if name == "root" {
        return Err("root exists already; choose the name of a regular user".into());
    }
    Ok(())
}

/// A password chpasswd(8) takes on one `name:password` line.
pub fn check_password(password: &str) -> std::result::Result<(), String> {
    if password.is_empty() {
        return Err("the password is empty".into());
    }
    if password.contains(['\n', '\r', '\0']) {
        return Err("the password contains a line break or NUL".into());
    }
    Ok(())
}

/// The uid range of ordinary users, from login.defs(5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginDefs {
    /// `UID_MIN`: the lowest uid of an ordinary user (1000 when not set).
    pub uid_min: u32,
    /// `UID_MAX`: the highest, inclusive (60000 when not set).
    pub uid_max: u32,
}

impl Default for LoginDefs {
    fn default() -> Self {
        LoginDefs {
            uid_min: 1000,
            uid_max: 60000,
        }
    }
}

impl LoginDefs {
    /// `KEY value` lines; the last one of a key wins and a value that is not a number keeps
    /// the default, as shadow-utils' getdef does.
    pub fn parse(text: &str) -> Self {
        let mut defs = LoginDefs::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(n) = parse_number(value.trim_matches('"')) else {
                continue;
            };
            match key {
                "UID_MIN" => defs.uid_min = n,
                "UID_MAX" => defs.uid_max = n,
                _ => {}
            }
        }
        defs
    }
}

/// strtoul with base 0, as getdef uses: decimal, 0x hexadecimal or 0 octal.
fn parse_number(s: &str) -> Option<u32> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u32::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

/// The accounts of passwd(5) text, as (name, uid); lines without a numeric uid field
/// (NIS `+` entries, garbage) are skipped.
fn accounts(passwd: &str) -> impl Iterator<Item = (&str, u32)> {
    passwd.lines().filter_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let uid = f.nth(1)?.parse().ok()?;
        Some((name, uid))
    })
}

/// The name of the first account of `passwd` with `uid`.
pub fn uid_owner(passwd: &str, uid: u32) -> Option<&str> {
    accounts(passwd).find(|&(_, u)| u == uid).map(|(n, _)| n)
}

/// The uid of the first account of `passwd` named `name`.
pub fn uid_of(passwd: &str, name: &str) -> Option<u32> {
    accounts(passwd).find(|&(n, _)| n == name).map(|(_, u)| u)
}

/// The uid a `.wsl` package's first start gives the user it creates (and WSL then logs in
/// as, `oobe.defaultUid`): the lowest one in UID_MIN..=UID_MAX that no account of the
/// image's `passwd` has (`useradd` would take the one after the highest in use: the same
/// in an image without gaps). `None` when the range is full.
pub fn first_free_uid(passwd: &str, defs: LoginDefs) -> Option<u32> {
    let taken: std::collections::BTreeSet<u32> = accounts(passwd).map(|(_, u)| u).collect();
    (defs.uid_min..=defs.uid_max).find(|u| !taken.contains(u))
}

/// Why `name` cannot be the account with `uid` (`firstboot --uid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidConflict {
    /// Another account has the uid.
    Taken {
        /// The uid asked for.
        uid: u32,
        /// The account that has it.
        owner: String,
    },
    /// The user exists with another uid.
    OtherUid {
        /// The user's name.
        name: String,
        /// The uid asked for.
        uid: u32,
        /// The uid the existing account has.
        has: u32,
    },
}

impl std::fmt::Display for UidConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UidConflict::Taken { uid, owner } => write!(
                f,
                "uid {uid} is taken by {owner}: the first start must create the user WSL \
                 logs in as (oobe.defaultUid) with exactly that uid"
            ),
            UidConflict::OtherUid { name, uid, has } => write!(
                f,
                "{name} exists with uid {has}, not {uid}: WSL logs in as uid {uid} \
                 (oobe.defaultUid); choose another name"
            ),
        }
    }
}

/// Whether `name` can be the account with `uid`: `None` when the user exists with that uid
/// already, or when neither the name nor the uid is taken.
pub fn uid_conflict(passwd: &str, name: &str, uid: u32) -> Option<UidConflict> {
    match (uid_owner(passwd, uid), uid_of(passwd, name)) {
        (Some(owner), _) if owner != name => Some(UidConflict::Taken {
            uid,
            owner: owner.to_owned(),
        }),
        (None, Some(has)) => Some(UidConflict::OtherUid {
            name: name.to_owned(),
            uid,
            has,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        +::::::\n\
        distrod:x:1000:1000::/home/distrod:/bin/bash\n\
        bob:x:1002:1002::/home/bob:/bin/bash\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn the_first_free_uid_of_the_ordinary_range() {
        let defs = LoginDefs::default();
        assert_eq!(first_free_uid(PASSWD, defs), Some(1001));
        assert_eq!(first_free_uid("", defs), Some(1000));
        assert_eq!(
            first_free_uid("root:x:0:0::/root:/bin/sh\n", defs),
            Some(1000)
        );
        let defs = LoginDefs::parse("UID_MIN 1002\nUID_MAX 1003\n");
        assert_eq!(first_free_uid(PASSWD, defs), Some(1003));
        let full = LoginDefs::parse("UID_MIN 1002\nUID_MAX 1002\n");
        assert_eq!(first_free_uid(PASSWD, full), None);
        let defs = LoginDefs::parse("UID_MIN 500\n");
        assert_eq!(first_free_uid(PASSWD, defs), Some(500));
    }

    #[test]
    fn uid_owners_and_conflicts() {
        assert_eq!(uid_owner(PASSWD, 1000), Some("distrod"));
        assert_eq!(uid_owner(PASSWD, 1001), None);
        assert_eq!(uid_of(PASSWD, "bob"), Some(1002));
        assert_eq!(uid_of(PASSWD, "+"), None);
        assert_eq!(uid_conflict(PASSWD, "alice", 1001), None);
        // Run again after it made bob: the same account.
        assert_eq!(uid_conflict(PASSWD, "bob", 1002), None);
        let taken = uid_conflict(PASSWD, "alice", 1000).unwrap();
        assert_eq!(
            taken,
            UidConflict::Taken {
                uid: 1000,
                owner: "distrod".into()
            }
        );
        let text = taken.to_string();
        assert!(text.starts_with("uid 1000 is taken by distrod: "), "{text}");
        assert!(!text.contains('\n'));
        let other = uid_conflict(PASSWD, "bob", 1001).unwrap().to_string();
        assert!(
            other.starts_with("bob exists with uid 1002, not 1001: "),
            "{other}"
        );
        assert!(matches!(
            uid_conflict(PASSWD, "alice", 0),
            Some(UidConflict::Taken { .. })
        ));
    }
}
