//! `distrod firstboot`: the user WSL logs in as, then `enable` (see `distro::firstboot`).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::account::UidConflict;
use crate::cli::{EnableArgs, FirstbootArgs};
use crate::distro::firstboot;
use crate::runtime::{self};
use crate::ui::Ui;

pub fn run(args: &FirstbootArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    runtime::require_root("firstboot")?;
    if !args.no_enable {
        // Before the user is made: nothing changes in a distro that cannot be enabled.
        if let Some(why) = crate::distro::enable::without_systemd(std::path::Path::new("/")) {
            bail!("{why}");
        }
    }
    let terminal = std::io::stdin().is_terminal();
    let name = match &args.user {
        Some(u) => {
            firstboot::check_name(u).map_err(anyhow::Error::msg)?;
            if let Some(conflict) = uid_conflict(u, args.uid)? {
                bail!("{conflict}");
            }
            u.clone()
        }
        None if terminal && !args.password_stdin => ask_name(args.uid)?,
        None => bail!("no user name: give --user NAME (and the password with --password-stdin)"),
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        let pw = line.trim_end_matches(['\n', '\r']).to_string();
        firstboot::check_password(&pw).map_err(anyhow::Error::msg)?;
        pw
    } else if terminal {
        ask_password(&name)?
    } else {
        bail!("no password: give it on the first line of standard input with --password-stdin")
    };
    let account = firstboot::set_up(&name, &password, args.uid)
        .with_context(|| format!("cannot set up the user {name}"))?;
    ui.status(format_args!(
        "{} {} (uid {}){}",
        if account.created {
            "created"
        } else {
            "updated"
        },
        account.name,
        account.uid,
        match &account.admin_group {
            Some(g) => format!(", an administrator through sudo (group {g})"),
            None => String::new(),
        }
    ));
    if account.admin_group.is_none() {
        ui.warn(format_args!(
            "this distro has neither a sudo nor a wheel group: {} has no administrator rights",
            account.name
        ));
    } else if account.sudo_missing {
        ui.warn(format_args!(
            "sudo is not installed: install it as root to use {}'s administrator rights",
            account.name
        ));
    }
    if !args.no_enable {
        super::enable::enable(
            &EnableArgs {
                dns: vec![],
                start_on_windows_boot: false,
                accounts_only: false,
            },
            ui,
        )?;
    }
    if args.print_uid {
        println!("{}", account.uid);
    }
    Ok(ExitCode::SUCCESS)
}

/// Why `name` cannot be made with `uid` in this distro (see
/// [`crate::account::uid_conflict`]); always `None` without a uid.
fn uid_conflict(name: &str, uid: Option<u32>) -> anyhow::Result<Option<UidConflict>> {
    let Some(uid) = uid else {
        return Ok(None);
    };
    let passwd = std::fs::read_to_string("/etc/passwd").context("cannot read /etc/passwd")?;
    Ok(crate::account::uid_conflict(&passwd, name, uid))
}

/// Asks until a valid name comes. With `uid`: a name that exists with another uid is
/// asked again; a uid another account has is an error (only that account could have it).
fn ask_name(uid: Option<u32>) -> anyhow::Result<String> {
    eprintln!("Create the user this distro's WSL sessions log in as.");
    loop {
        let name = prompt("User name: ", true)?;
        if let Err(e) = firstboot::check_name(&name) {
            eprintln!("{e}");
            continue;
        }
        match uid_conflict(&name, uid)? {
            None => return Ok(name),
            Some(other @ UidConflict::OtherUid { .. }) => eprintln!("{other}"),
            Some(taken) => bail!("{taken}"),
        }
    }
}

fn ask_password(name: &str) -> anyhow::Result<String> {
    loop {
        let pw = prompt(&format!("Password for {name}: "), false)?;
        if let Err(e) = firstboot::check_password(&pw) {
            eprintln!("{e}");
            continue;
        }
        if prompt("Again: ", false)? == pw {
            return Ok(pw);
        }
        eprintln!("the passwords differ; again");
    }
}

/// One line from the terminal; without echo for passwords (the terminal's settings are
/// put back even on error).
fn prompt(text: &str, echo: bool) -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    eprint!("{text}");
    std::io::stderr().flush().ok();
    let stdin = std::io::stdin();
    let saved = if echo { None } else { tcgetattr(&stdin).ok() };
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    if read.context("cannot read from the terminal")? == 0 {
        bail!("end of input");
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
