//! The environment of a session in the container: a clean one, as login(1) would build it
//! for the user, plus the few caller variables worth keeping. One policy for every way in:
//! the login hook and `distrod exec` ([`super::enter`]).

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

use super::users::User;

/// Caller variables worth keeping: the terminal, the locale (and every `LC_*`), and WSL's
/// session variables (WSLg, Windows Terminal). Everything else is the container's
/// business. `WSL_INTEROP` is set to the session's entry inside ([`super::interop`]), and the
/// Windows directories of the caller's PATH (drive mounts, `/mnt/<letter>/...`, which WSL
/// appends) are appended to the session's PATH.
pub const PASSED_ENV: [&str; 13] = [
    "TERM",
    "COLORTERM",
    "LANG",
    "LANGUAGE",
    "WSL_DISTRO_NAME",
    "WSLENV",
    "NAME",
    "HOSTTYPE",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "PULSE_SERVER",
    "WT_SESSION",
    "WT_PROFILE_ID",
];

fn passed(key: &[u8], extra: &[String]) -> bool {
    PASSED_ENV.iter().any(|p| p.as_bytes() == key)
        || key.starts_with(b"LC_")
        || extra.iter().any(|e| e.as_bytes() == key)
}

/// The caller's PATH entries under Windows drive mounts (`/mnt/c/...`).
fn windows_path(caller_path: Option<&[u8]>) -> Vec<&[u8]> {
    caller_path
        .unwrap_or_default()
        .split(|b| *b == b':')
        .filter(|b| {
            b.len() >= 6
                && b.starts_with(b"/mnt/")
                && b[5].is_ascii_lowercase()
                && (b.len() == 6 || b[6] == b'/')
        })
        .collect()
}

/// What a session's environment is made of besides the user.
#[derive(Debug, Default)]
pub struct SessionVars<'a> {
    /// The logind session's runtime directory: XDG_RUNTIME_DIR and the user's bus.
    pub runtime_dir: Option<&'a str>,
    /// The logind session's id: XDG_SESSION_ID, with the session's type and class.
    pub session_id: Option<&'a str>,
    /// The session's `/run/WSL/<pid>_interop`.
    pub interop: Option<&'a Path>,
    /// The caller's environment, of which only what [`PASSED_ENV`] and `pass_env` name is
    /// kept (and the Windows directories of its PATH).
    pub caller_env: &'a [(OsString, OsString)],
    /// More variable names to keep (`session.pass_env` in /etc/distrod.toml).
    pub pass_env: &'a [String],
}

/// The session's environment: a clean one, as login(1) would build it, plus what the
/// caller passes on (see [`PASSED_ENV`]).
pub fn session_env(user: &User, v: &SessionVars) -> Vec<OsString> {
    let mut path = if user.uid == 0 {
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    } else {
        "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
    }
    .as_bytes()
    .to_vec();
    let caller_path = v
        .caller_env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, p)| p.as_bytes());
    for d in windows_path(caller_path) {
        path.push(b':');
        path.extend_from_slice(d);
    }
    let (runtime_dir, session_id) = (v.runtime_dir, v.session_id);
    let mut path_var = b"PATH=".to_vec();
    path_var.extend_from_slice(&path);
    let mut env: Vec<OsString> = vec![OsString::from_vec(path_var)];
    env.extend(
        [
            format!("HOME={}", user.home.display()),
            format!("USER={}", user.name),
            format!("LOGNAME={}", user.name),
            format!("SHELL={}", user.shell),
        ]
        .map(OsString::from),
    );
    if let Some(dir) = runtime_dir {
        env.push(format!("XDG_RUNTIME_DIR={dir}").into());
        env.push(format!("DBUS_SESSION_BUS_ADDRESS=unix:path={dir}/bus").into());
    }
    if let Some(id) = session_id {
        env.push(format!("XDG_SESSION_ID={id}").into());
        env.push("XDG_SESSION_TYPE=tty".into());
        env.push("XDG_SESSION_CLASS=user".into());
    }
    if let Some(p) = v.interop {
        let mut e = OsString::from("WSL_INTEROP=");
        e.push(p.as_os_str());
        env.push(e);
    }
    env.extend(
        v.caller_env
            .iter()
            .filter(|(k, _)| passed(k.as_bytes(), v.pass_env))
            .map(|(k, v)| {
                let mut e = k.clone();
                e.push("=");
                e.push(v);
                e
            }),
    );
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_of_a_user_session() {
        let u = User {
            name: "distrod".into(),
            uid: 1000,
            gid: 1000,
            home: "/home/distrod".into(),
            shell: "/bin/bash".into(),
        };
        let passed: Vec<(OsString, OsString)> = [
            ("TERM", "xterm"),
            ("SECRET", "x"),
            ("WSL_INTEROP", "/run/WSL/9_interop"),
            ("LC_TIME", "C"),
            ("MINE", "1"),
            (
                "PATH",
                "/usr/bin:/mnt/c/Windows/System32:/mnt/cdrom:/mnt/d:/home/x/bin",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .chain([
            // Bytes that are not UTF-8 pass unchanged, in names and values.
            (
                OsString::from("LANG"),
                OsString::from_vec(b"de\xff".to_vec()),
            ),
            (OsString::from_vec(b"LC_\xfe".to_vec()), OsString::from("x")),
        ])
        .collect();
        let vars = SessionVars {
            runtime_dir: Some("/run/user/1000"),
            session_id: Some("3"),
            interop: Some(Path::new("/run/WSL/42_interop")),
            caller_env: &passed,
            pass_env: &["MINE".to_string()],
        };
        let env: Vec<Vec<u8>> = session_env(&u, &vars)
            .into_iter()
            .map(OsString::into_vec)
            .collect();
        let expected: Vec<Vec<u8>> = [
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games\
                 :/mnt/c/Windows/System32:/mnt/d",
            "HOME=/home/distrod",
            "USER=distrod",
            "LOGNAME=distrod",
            "SHELL=/bin/bash",
            "XDG_RUNTIME_DIR=/run/user/1000",
            "DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus",
            "XDG_SESSION_ID=3",
            "XDG_SESSION_TYPE=tty",
            "XDG_SESSION_CLASS=user",
            "WSL_INTEROP=/run/WSL/42_interop",
            "TERM=xterm",
            "LC_TIME=C",
            "MINE=1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain([b"LANG=de\xff".to_vec(), b"LC_\xfe=x".to_vec()])
        .collect();
        assert_eq!(env, expected);
    }
}
