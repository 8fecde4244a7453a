//! The rules for the account distrod creates in a distro (`distrod firstboot`), shared with
//! the Windows installer, which checks the answers before anything is downloaded.

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
