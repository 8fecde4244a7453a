//! `distrod enable --start-on-windows-boot`: ask Windows, through WSL's interop, to start
//! this distro and its systemd at logon, for the Windows user only and without
//! administrator rights.
//!
//! It writes the logon entry of [`crate::wsl::logon`] (the one `distrod.exe autostart
//! enable` writes too) with Windows' own `reg.exe`, with `--keep-alive`: systemd starts,
//! and the command stays until the container stops so WSL does not stop an idle distro.
//! The record `/opt/distrod/state/logon.json` lets `distrod disable` remove the value
//! again.
//!
//! What it needs from the session: the distro's name (`WSL_DISTRO_NAME`) and the Windows
//! directories on `PATH`. `sudo` clears both, so they are read from the nearest ancestor
//! process that has them (the session's shell).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::runtime::{Context, Error, INSTALL_DIR, Result};
pub use crate::wsl::logon::RUN_KEY;
use crate::wsl::logon::{check_distro, command_line, value_name};

fn record_path() -> PathBuf {
    Path::new(INSTALL_DIR).join("state/logon.json")
}

/// What `enable` wrote, for `disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The WSL name of the distro the entry starts.
    pub distro: String,
    /// The Linux path of the reg.exe that wrote it.
    pub reg_exe: PathBuf,
    /// The registry value's name ([`crate::wsl::logon::value_name`]).
    pub value: String,
}

/// `/mnt/c/Windows/System32` → `C:\Windows\System32`: a directory under a drive mount
/// (the mount root is whatever wsl.conf's automount says; the drive is the one-letter
/// component under it).
pub fn windows_path(linux: &Path) -> Option<String> {
    let parts: Vec<&str> = linux
        .to_str()?
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let at = parts
        .iter()
        .position(|p| p.len() == 1 && p.chars().all(|c| c.is_ascii_alphabetic()))?;
    let drive = parts[at].to_ascii_uppercase();
    let rest = parts[at + 1..].join("\\");
    Some(format!("{drive}:\\{rest}"))
}

/// A variable of the WSL session: this process's, else the nearest ancestor's.
pub fn session_var(name: &str) -> Option<String> {
    session_values(name).into_iter().next()
}

/// Every non-empty value of `name`: this process's first, then its ancestors', nearest
/// first (`sudo` sets a PATH of its own; the session's is further up).
fn session_values(name: &str) -> Vec<String> {
    let mut values = Vec::new();
    if let Some(v) = std::env::var_os(name).filter(|v| !v.is_empty())
        && let Ok(v) = v.into_string()
    {
        values.push(v);
    }
    let prefix = format!("{name}=");
    let mut pid = std::os::unix::process::parent_id();
    while pid > 1 {
        if let Ok(environ) = fs::read(format!("/proc/{pid}/environ")) {
            let found = environ
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                .filter(|v| !v.is_empty());
            if let Some(Ok(v)) = found.map(|v| String::from_utf8(v.to_vec())) {
                values.push(v);
            }
        }
        pid = crate::runtime::interop::parent_of(pid).unwrap_or(0);
    }
    values
}

/// reg.exe on the session's PATH (Windows' System32 is there with `appendWindowsPath`).
fn find_reg_exe() -> Option<PathBuf> {
    session_values("PATH").into_iter().find_map(|path| {
        path.split(':')
            .filter(|d| !d.is_empty())
            .flat_map(|d| {
                ["reg.exe", "REG.EXE", "Reg.exe"]
                    .into_iter()
                    .map(move |n| Path::new(d).join(n))
            })
            .find(|p| p.is_file())
    })
}

fn run_reg(reg: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(reg)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Error::Other(format!(
                "cannot run {} (is Windows interop on?): {e}",
                reg.display()
            ))
        })?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(Error::Other(format!(
            "reg.exe {} failed ({}): {}",
            args.first().copied().unwrap_or_default(),
            out.status,
            if text.is_empty() { "no message" } else { &text }
        )));
    }
    Ok(())
}

/// The entry to write, found before `enable` changes anything.
#[derive(Debug, Clone)]
pub struct Plan {
    distro: String,
    reg: PathBuf,
    data: String,
}

impl Plan {
    /// The WSL name of the distro the entry will start.
    pub fn distro(&self) -> &str {
        &self.distro
    }
}

/// Finds the distro's name and reg.exe, or says why there are none.
pub fn prepare() -> Result<Plan> {
    let distro = session_var("WSL_DISTRO_NAME").ok_or_else(|| {
        Error::Other(
            "not in a WSL session (no WSL_DISTRO_NAME): --start-on-windows-boot asks Windows, \
             so run it from `wsl -d <distro>`"
                .into(),
        )
    })?;
    check_distro(&distro).map_err(Error::Other)?;
    let reg = find_reg_exe().ok_or_else(|| {
        Error::Other(
            "reg.exe is not on the session's PATH (interop or appendWindowsPath is off); \
             from Windows, run `distrod.exe autostart enable --name <distro>` instead"
                .into(),
        )
    })?;
    let dir = reg.parent().unwrap_or(Path::new("/"));
    let system32 = windows_path(dir).ok_or_else(|| {
        Error::Other(format!(
            "{} is not under a Windows drive mount",
            reg.display()
        ))
    })?;
    let data = command_line(&system32, &distro, true);
    Ok(Plan { distro, reg, data })
}

/// Writes the logon entry and records it.
pub fn enable(plan: &Plan) -> Result<Record> {
    let value = value_name(&plan.distro);
    run_reg(
        &plan.reg,
        &[
            "add", RUN_KEY, "/v", &value, "/t", "REG_SZ", "/d", &plan.data, "/f",
        ],
    )?;
    let record = Record {
        distro: plan.distro.clone(),
        reg_exe: plan.reg.clone(),
        value,
    };
    let path = record_path();
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).ctx(|| format!("create {}", parent.display()))?;
    }
    let json = serde_json::to_vec_pretty(&record).expect("a plain record serializes");
    fs::write(&path, json).ctx(|| format!("write {}", path.display()))?;
    Ok(record)
}

/// Removes the entry `enable` wrote, if it did; the record of it.
pub fn disable() -> Result<Option<Record>> {
    let path = record_path();
    let record: Record = match fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::Other(format!("{} is corrupt: {e}", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx(|| format!("read {}", path.display())),
    };
    run_reg(
        &record.reg_exe,
        &["delete", RUN_KEY, "/v", &record.value, "/f"],
    )
    .map_err(|e| {
        Error::Other(format!(
            "{e}; remove the logon entry from Windows with `reg delete {RUN_KEY} /v {} /f`",
            record.value
        ))
    })?;
    fs::remove_file(&path).ctx(|| format!("remove {}", path.display()))?;
    Ok(Some(record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_paths_of_drive_mounts() {
        assert_eq!(
            windows_path(Path::new("/mnt/c/WINDOWS/system32")).as_deref(),
            Some("C:\\WINDOWS\\system32")
        );
        assert_eq!(
            windows_path(Path::new("/c/Windows/System32/")).as_deref(),
            Some("C:\\Windows\\System32")
        );
        assert_eq!(windows_path(Path::new("/usr/bin")), None);
    }
}
