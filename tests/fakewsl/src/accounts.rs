//! /etc/passwd and /etc/group, read directly: the binary is static, so there is no NSS to
//! ask, and WSL's own init reads these files itself too.

/// One /etc/passwd line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    /// The shell field exactly as written (possibly empty).
    pub shell: String,
}

/// One /etc/group line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The entry for `name` in a passwd file's text. Comment, blank and malformed lines are
/// skipped, as libc's parser does.
pub fn find_user(passwd: &str, name: &str) -> Option<User> {
    passwd
        .lines()
        .filter_map(parse_user)
        .find(|u| u.name == name)
}

fn parse_user(line: &str) -> Option<User> {
    if line.starts_with('#') {
        return None;
    }
    let fields: Vec<&str> = line.split(':').collect();
    if fields.len() != 7 || fields[0].is_empty() {
        return None;
    }
    Some(User {
        name: fields[0].to_owned(),
        uid: fields[2].parse().ok()?,
        gid: fields[3].parse().ok()?,
        home: fields[5].to_owned(),
        shell: fields[6].to_owned(),
    })
}

/// Every well-formed entry of a group file's text.
pub fn parse_groups(group: &str) -> Vec<Group> {
    group
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() != 4 || fields[0].is_empty() {
                return None;
            }
            Some(Group {
                name: fields[0].to_owned(),
                gid: fields[2].parse().ok()?,
                members: fields[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// What `initgroups` would give `user`: the primary group first, then every group that
/// lists the user as a member, without duplicates.
pub fn supplementary_groups(user: &User, groups: &[Group]) -> Vec<u32> {
    let mut gids = vec![user.gid];
    for g in groups {
        if g.members.iter().any(|m| m == &user.name) && !gids.contains(&g.gid) {
            gids.push(g.gid);
        }
    }
    gids
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        # a comment\n\
        \n\
        broken:x:notanumber:0::/:/bin/sh\n\
        short:x:5:5\n\
        distrod:x:1000:1000:Dis Trod,,,:/home/distrod:/bin/bash\n\
        noshell:x:1001:1001::/home/noshell:\n";

    #[test]
    fn finds_users_and_keeps_the_shell_field_verbatim() {
        let u = find_user(PASSWD, "distrod").unwrap();
        assert_eq!(
            u,
            User {
                name: "distrod".into(),
                uid: 1000,
                gid: 1000,
                home: "/home/distrod".into(),
                shell: "/bin/bash".into(),
            }
        );
        assert_eq!(find_user(PASSWD, "noshell").unwrap().shell, "");
        assert_eq!(find_user(PASSWD, "root").unwrap().uid, 0);
    }

    #[test]
    fn skips_malformed_lines() {
        assert_eq!(find_user(PASSWD, "broken"), None);
        assert_eq!(find_user(PASSWD, "short"), None);
        assert_eq!(find_user(PASSWD, "nobody"), None);
        assert_eq!(find_user(PASSWD, ""), None);
    }

    #[test]
    fn groups_listing_the_user_follow_the_primary_one() {
        let groups = parse_groups(
            "root:x:0:\nsudo:x:27:distrod\naudio:x:29:other, distrod\n\
             distrod:x:1000:distrod\nbad:x:z:distrod\nvideo:x:44:other\n",
        );
        assert_eq!(groups.len(), 5);
        assert_eq!(groups[2].members, vec!["other", "distrod"]);
        let u = find_user(PASSWD, "distrod").unwrap();
        assert_eq!(supplementary_groups(&u, &groups), vec![1000, 27, 29]);
        let root = find_user(PASSWD, "root").unwrap();
        assert_eq!(supplementary_groups(&root, &groups), vec![0]);
    }
}
