//! What a WSL session's program is: the user's login shell from /etc/passwd, its argv and
//! its environment (the pure part of the relay).

use crate::accounts::User;

/// The distro name WSL would report for this stand-in.
pub const DISTRO_NAME: &str = "FakeWSL";

/// `PATH` of a session: Linux's defaults with the Windows directories appended, as with
/// `appendWindowsPath` on.
pub const SESSION_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:\
                                /mnt/c/Windows/System32:/mnt/c/Windows";

/// The program a session runs: the shell field as written, `/bin/sh` when it is empty.
pub fn shell_path(user: &User) -> &str {
    if user.shell.is_empty() {
        "/bin/sh"
    } else {
        &user.shell
    }
}

/// A login shell's argv: `-<basename>` alone for an interactive session, or followed by
/// `-c` and the command words joined with spaces (what `wsl -- CMD` does: the words are
/// run through the shell, not exec'd).
pub fn shell_argv(shell: &str, cmd: &[String]) -> Vec<String> {
    let base = shell.rsplit('/').next().unwrap_or(shell);
    let mut argv = vec![format!("-{base}")];
    if !cmd.is_empty() {
        argv.push("-c".to_owned());
        argv.push(cmd.join(" "));
    }
    argv
}

/// Values of the session environment that are not derived from the user.
pub struct SessionFacts<'a> {
    pub hostname: &'a str,
    pub interop_socket: &'a str,
    pub wt_session: &'a str,
    pub wt_profile_id: &'a str,
}

/// The environment of a session's shell, in a fixed order: nothing inherited, then
/// `overrides` (`K=V` sets K, `K=` removes it).
pub fn session_env(
    user: &User,
    facts: &SessionFacts,
    overrides: &[String],
) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = [
        ("HOME", user.home.as_str()),
        ("USER", &user.name),
        ("LOGNAME", &user.name),
        ("SHELL", shell_path(user)),
        ("TERM", "xterm-256color"),
        ("PATH", SESSION_PATH),
        ("WSL_DISTRO_NAME", DISTRO_NAME),
        ("WSL_INTEROP", facts.interop_socket),
        ("WSLENV", "WT_SESSION:WT_PROFILE_ID"),
        ("NAME", facts.hostname),
        ("HOSTTYPE", "x86_64"),
        ("DISPLAY", ":0"),
        ("WAYLAND_DISPLAY", "wayland-0"),
        ("XDG_RUNTIME_DIR", "/mnt/wslg/runtime-dir"),
        ("PULSE_SERVER", "unix:/mnt/wslg/PulseServer"),
        ("WT_SESSION", facts.wt_session),
        ("WT_PROFILE_ID", facts.wt_profile_id),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("--env {item:?}: expected KEY=VALUE"))?;
        if value.is_empty() {
            env.retain(|(k, _)| k != key);
        } else if let Some(slot) = env.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value.to_owned();
        } else {
            env.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(env)
}

/// A UUID-like string (8-4-4-4-12 lowercase hex) from 16 bytes.
pub fn uuid_like(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(shell: &str) -> User {
        User {
            name: "distrod".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/distrod".into(),
            shell: shell.into(),
        }
    }

    const FACTS: SessionFacts = SessionFacts {
        hostname: "box",
        interop_socket: "/run/WSL/42_interop",
        wt_session: "s",
        wt_profile_id: "p",
    };

    #[test]
    fn argv0_is_a_dash_and_the_shell_basename() {
        assert_eq!(shell_argv("/bin/bash", &[]), vec!["-bash"]);
        assert_eq!(shell_argv("/usr/bin/zsh", &[]), vec!["-zsh"]);
        assert_eq!(shell_argv("bash", &[]), vec!["-bash"]);
        assert_eq!(
            shell_argv("/opt/distrod/bin/distrod", &[]),
            vec!["-distrod"]
        );
    }

    #[test]
    fn a_command_goes_through_the_shell_joined_by_spaces() {
        let cmd = vec!["echo".to_owned(), "a b".to_owned(), "$HOME".to_owned()];
        assert_eq!(
            shell_argv("/bin/bash", &cmd),
            vec!["-bash", "-c", "echo a b $HOME"]
        );
    }

    #[test]
    fn an_empty_shell_field_means_bin_sh() {
        assert_eq!(shell_path(&user("")), "/bin/sh");
        assert_eq!(shell_path(&user("/bin/zsh")), "/bin/zsh");
        let env = session_env(&user(""), &FACTS, &[]).unwrap();
        assert!(env.contains(&("SHELL".into(), "/bin/sh".into())));
    }

    #[test]
    fn the_environment_is_wsls() {
        let env = session_env(&user("/bin/bash"), &FACTS, &[]).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HOME"), Some("/home/distrod"));
        assert_eq!(get("USER"), Some("distrod"));
        assert_eq!(get("LOGNAME"), Some("distrod"));
        assert_eq!(get("SHELL"), Some("/bin/bash"));
        assert_eq!(get("WSL_DISTRO_NAME"), Some("FakeWSL"));
        assert_eq!(get("WSL_INTEROP"), Some("/run/WSL/42_interop"));
        assert_eq!(get("NAME"), Some("box"));
        assert_eq!(get("WT_SESSION"), Some("s"));
        assert_eq!(get("WT_PROFILE_ID"), Some("p"));
        assert_eq!(get("XDG_RUNTIME_DIR"), Some("/mnt/wslg/runtime-dir"));
        assert!(
            get("PATH")
                .unwrap()
                .ends_with(":/mnt/c/Windows/System32:/mnt/c/Windows")
        );
        assert_eq!(env.len(), 17);
    }

    #[test]
    fn overrides_set_replace_and_remove() {
        let overrides = vec![
            "WSL_INTEROP=/elsewhere".to_owned(),
            "EXTRA=a=b".to_owned(),
            "DISPLAY=".to_owned(),
            "ABSENT=".to_owned(),
        ];
        let env = session_env(&user("/bin/bash"), &FACTS, &overrides).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("WSL_INTEROP"), Some("/elsewhere"));
        assert_eq!(get("EXTRA"), Some("a=b"));
        assert_eq!(get("DISPLAY"), None);
        assert_eq!(env.len(), 17);
        assert!(session_env(&user(""), &FACTS, &["NOEQUALS".into()]).is_err());
        assert!(session_env(&user(""), &FACTS, &["=x".into()]).is_err());
    }

    #[test]
    fn uuid_like_has_the_uuid_shape() {
        let u = uuid_like([0xab; 16]);
        assert_eq!(u, "abababab-abab-abab-abab-abababababab");
    }
}
