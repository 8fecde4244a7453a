//! A stand-in for the parts of WSL that distrod's session hook meets, for distrod's tests
//! (never shipped):
//!
//! - `fakewsl relay --user NAME [--elevated] [--exec] [--cwd DIR] [--log FILE]
//!   [--env K=V]... [-- CMD...]` is a session's relay (comm `Relay`, as WSL's): a child
//!   subreaper serving `/run/WSL/<its pid>_interop` while it runs the user's login shell
//!   from /etc/passwd (as `wsl -d`, or `wsl -u NAME -- CMD`), or with `--exec` CMD itself
//!   (as `wsl -e`), with WSL's environment, in the mount namespace it was started in. Each interop request is logged as
//!   `relay=<pid> uid=<peer uid> pid=<peer pid> args=<request>` (default log
//!   `/run/fakewsl/interop.log`). WSL's binary `LxInitMessageQueryDrvfsElevated` is answered
//!   too (the session is plain unless `--elevated`) and logged with the arguments
//!   `<query-drvfs-elevated>` (lxinit.rs). Exits with the shell's status.
//! - `fakewsl client [ARGS...]` is WSL's `/init` starting a Windows program: it finds the
//!   interop socket (`WSL_INTEROP`, else a walk up the parent pids), sends the arguments and
//!   prints the answer and `via <socket>`. Exit 2: no socket; 3: connect failed; 4: bad
//!   answer.
//! - `fakewsl pty [--stop-after MS] [--timeout MS] [--until FILE] [--input TEXT] -- CMD...`
//!   runs CMD as the foreground job of a new pseudo-terminal, can press Ctrl-Z on it and
//!   type answers to its prompts (see pty.rs).
//! - `fakewsl echo ADDR` serves echo (TCP `HOST:PORT`, or a Unix socket `unix:PATH`);
//!   `fakewsl send ADDR BYTES` checks an echo of BYTES bytes through it (prints `ok BYTES`).

mod accounts;
mod client;
mod lxinit;
mod pty;
mod relay;
mod session;
mod tcp;

use std::process::ExitCode;

const USAGE: &str =
    "usage: fakewsl relay --user NAME [--elevated] [--exec] [--cwd DIR] [--log FILE]
                     [--env K=V]... [-- CMD...]
       fakewsl client [ARGS...]
       fakewsl pty [--stop-after MS] [--timeout MS] [--until FILE] [--input TEXT] -- CMD...
       fakewsl echo ADDR
       fakewsl send ADDR BYTES";

fn main() -> ExitCode {
    // `pty` takes its command as bytes; everything else is text.
    let raw: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if raw.first().is_some_and(|a| a == "pty") {
        let code = match pty::parse(&raw[1..]).and_then(pty::run) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("fakewsl pty: {e}\n{USAGE}");
                1
            }
        };
        return ExitCode::from(u8::try_from(code).unwrap_or(255));
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("relay") => match parse_relay(&args[1..]).and_then(relay::run) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("fakewsl relay: {e}");
                1
            }
        },
        Some("client") => client::run(&args[1..]),
        Some("echo") if args.len() == 2 => tcp::echo(&args[1]),
        Some("send") if args.len() == 3 => tcp::send(&args[1], &args[2]),
        _ => {
            eprintln!("{USAGE}");
            1
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(255))
}

fn parse_relay(args: &[String]) -> Result<relay::RelayArgs, String> {
    let mut user = None;
    let mut elevated = false;
    let mut cwd = None;
    let mut log = relay::DEFAULT_LOG.to_owned();
    let mut env = Vec::new();
    let mut cmd = Vec::new();
    let mut exec = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--user" => user = Some(value("--user")?),
            "--elevated" => elevated = true,
            "--exec" => exec = true,
            "--cwd" => cwd = Some(value("--cwd")?),
            "--log" => log = value("--log")?,
            "--env" => env.push(value("--env")?),
            "--" => {
                cmd = it.by_ref().cloned().collect();
                break;
            }
            other => return Err(format!("unexpected argument {other:?}\n{USAGE}")),
        }
    }
    Ok(relay::RelayArgs {
        user: user.ok_or_else(|| format!("--user is required\n{USAGE}"))?,
        elevated,
        cwd,
        log,
        env,
        cmd,
        exec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn relay_arguments() {
        let a = parse_relay(&strings(&[
            "--user", "u", "--env", "A=1", "--env", "B=", "--log", "/l", "--", "echo", "--x",
        ]))
        .unwrap();
        assert_eq!(a.user, "u");
        assert!(!a.elevated, "a plain session unless --elevated");
        assert_eq!(a.cwd, None);
        assert_eq!(a.log, "/l");
        assert_eq!(a.env, strings(&["A=1", "B="]));
        assert_eq!(a.cmd, strings(&["echo", "--x"]));
        let a = parse_relay(&strings(&["--cwd", "/tmp", "--user", "root", "--elevated"])).unwrap();
        assert!(a.elevated);
        assert_eq!(a.cwd.as_deref(), Some("/tmp"));
        assert_eq!(a.log, relay::DEFAULT_LOG);
        assert!(a.cmd.is_empty());
        assert!(parse_relay(&strings(&["--cwd", "/"])).is_err());
        assert!(parse_relay(&strings(&["--user"])).is_err());
        assert!(parse_relay(&strings(&["--user", "u", "extra"])).is_err());
    }
}
