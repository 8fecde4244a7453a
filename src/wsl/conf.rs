//! WSL's ini files as WSL reads them: a distro's `/etc/wsl.conf` (`[boot] systemd`,
//! `[automount] root`) and the Windows user's `.wslconfig` (`[general]
//! instanceIdleTimeout`). Loose syntax: case-insensitive section and key names, optional
//! quotes, `#` and `;` comments, the last value wins.

/// `[boot] systemd=true` in wsl.conf's ini syntax (case-insensitive keys and values,
/// optional quotes, `#`/`;` comments).
pub fn systemd_on(text: &str) -> bool {
    value(text, "boot", "systemd").is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The value of `key` in `[section]` of a wsl.conf text (the last one wins; section and
/// key names case-insensitive; quotes and trailing `#`/`;` comments removed).
pub fn value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    let mut found = None;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            current = s.trim().to_ascii_lowercase();
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if current.eq_ignore_ascii_case(section) && k.trim().eq_ignore_ascii_case(key) {
            let v = v.split(['#', ';']).next().unwrap_or("").trim();
            found = Some(v.trim_matches('"').trim().to_string());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wsl_conf_systemd_switch() {
        assert!(systemd_on("[boot]\nsystemd=true\n"));
        assert!(systemd_on("[Boot]\n  SystemD = \"True\"  # on\n"));
        assert!(!systemd_on("[boot]\nsystemd=false\n"));
        assert!(!systemd_on("[user]\nsystemd=true\n"));
        assert!(!systemd_on("[boot]\n# systemd=true\ncommand=x\n"));
        assert!(!systemd_on("[boot]\nsystemd=true\nsystemd=false\n"));
        assert!(!systemd_on(""));
        assert_eq!(
            value(
                "[AutoMount]\nRoot = \"/win/\" # here\n",
                "automount",
                "root"
            ),
            Some("/win/".into())
        );
        assert_eq!(value("[boot]\nroot=/x\n", "automount", "root"), None);
    }
}
