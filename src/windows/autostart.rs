//! Starting a distro at logon, per user and without administrator rights: a value named
//! `distrod-NAME` under `HKCU\Software\Microsoft\Windows\CurrentVersion\Run`, which
//! Explorer runs at logon. It runs a copy of distrod.exe kept at
//! `%LOCALAPPDATA%\Distrod\distrod.exe` (the downloaded one may be moved or deleted), as
//! `distrod.exe start --name NAME` under `conhost.exe --headless`, so no console window
//! opens; `start` reaches the distro through the WSL API (`WslLaunch`), which needs no
//! administrator rights and no stored password.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_QUERY_VALUE, KEY_SET_VALUE, REG_OPTION_NON_VOLATILE, REG_SZ,
    RRF_RT_REG_SZ, RegCloseKey, RegCreateKeyExW, RegDeleteValueW, RegGetValueW, RegSetValueExW,
};

use crate::commands::installer::Autostart;
use crate::fsutil::{self, Durability, Replace, Replacement};

const RUN_KEY: &str = r"Software\Microsoft\Windows\CurrentVersion\Run";

/// The registry value for a distro.
pub fn value_name(distro: &str) -> String {
    format!("distrod-{distro}")
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn os_error(code: u32) -> std::io::Error {
    std::io::Error::from_raw_os_error(code as i32)
}

/// The Run key, opened (created if missing) for reading and writing values.
struct Key(HKEY);

impl Key {
    fn open() -> anyhow::Result<Key> {
        let path = wide(RUN_KEY);
        let mut key: HKEY = std::ptr::null_mut();
        // SAFETY: a NUL-terminated wide string and an out-pointer to a local.
        let rc = unsafe {
            RegCreateKeyExW(
                HKEY_CURRENT_USER,
                path.as_ptr(),
                0,
                std::ptr::null(),
                REG_OPTION_NON_VOLATILE,
                KEY_QUERY_VALUE | KEY_SET_VALUE,
                std::ptr::null(),
                &mut key,
                std::ptr::null_mut(),
            )
        };
        if rc != ERROR_SUCCESS {
            return Err(os_error(rc)).context(format!("cannot open HKCU\\{RUN_KEY}"));
        }
        Ok(Key(key))
    }

    fn get(&self, name: &str) -> anyhow::Result<Option<String>> {
        let wname = wide(name);
        let mut size: u32 = 0;
        // SAFETY: first call asks for the size only (null buffer).
        let rc = unsafe {
            RegGetValueW(
                self.0,
                std::ptr::null(),
                wname.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut size,
            )
        };
        if rc == ERROR_FILE_NOT_FOUND {
            return Ok(None);
        }
        if rc != ERROR_SUCCESS {
            return Err(os_error(rc)).context(format!("cannot read the value {name}"));
        }
        let mut buf = vec![0u16; (size as usize).div_ceil(2) + 1];
        let mut size = (buf.len() * 2) as u32;
        // SAFETY: `buf` holds `size` bytes.
        let rc = unsafe {
            RegGetValueW(
                self.0,
                std::ptr::null(),
                wname.as_ptr(),
                RRF_RT_REG_SZ,
                std::ptr::null_mut(),
                buf.as_mut_ptr().cast(),
                &mut size,
            )
        };
        if rc == ERROR_FILE_NOT_FOUND {
            return Ok(None);
        }
        if rc != ERROR_SUCCESS {
            return Err(os_error(rc)).context(format!("cannot read the value {name}"));
        }
        let len = buf.iter().position(|&c| c == 0).unwrap_or(buf.len());
        Ok(Some(String::from_utf16_lossy(&buf[..len])))
    }

    fn set(&self, name: &str, data: &str) -> anyhow::Result<()> {
        let wname = wide(name);
        let wdata = wide(data);
        // SAFETY: NUL-terminated wide strings; the size is in bytes, NUL included.
        let rc = unsafe {
            RegSetValueExW(
                self.0,
                wname.as_ptr(),
                0,
                REG_SZ,
                wdata.as_ptr().cast(),
                (wdata.len() * 2) as u32,
            )
        };
        if rc != ERROR_SUCCESS {
            return Err(os_error(rc)).context(format!("cannot write the value {name}"));
        }
        Ok(())
    }

    fn delete(&self, name: &str) -> anyhow::Result<bool> {
        let wname = wide(name);
        // SAFETY: a NUL-terminated wide string.
        let rc = unsafe { RegDeleteValueW(self.0, wname.as_ptr()) };
        match rc {
            ERROR_SUCCESS => Ok(true),
            ERROR_FILE_NOT_FOUND => Ok(false),
            rc => Err(os_error(rc)).context(format!("cannot remove the value {name}")),
        }
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: a key this value opened.
        unsafe { RegCloseKey(self.0) };
    }
}

/// The copy of distrod.exe the logon entry runs, made or refreshed from the running one.
fn stable_copy() -> anyhow::Result<PathBuf> {
    let base = std::env::var_os("LOCALAPPDATA")
        .filter(|v| !v.is_empty())
        .context("%LOCALAPPDATA% is not set")?;
    let dir = Path::new(&base).join("Distrod");
    let target = dir.join("distrod.exe");
    let me = std::env::current_exe().context("cannot find the running distrod.exe")?;
    if same_file(&me, &target) {
        return Ok(target);
    }
    let mine = fs::read(&me).with_context(|| format!("cannot read {}", me.display()))?;
    if fs::read(&target).is_ok_and(|theirs| theirs == mine) {
        return Ok(target);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // Contents: Windows runs this file at logon, which may follow a crash; it must then be
    // the old copy or the new one, not a cut one.
    let temp = fsutil::temp_sibling(&target);
    let ready = Replacement::begin(&target, Replace::new(Durability::Contents))
        .and_then(|mut new| {
            new.file().write_all(&mine)?;
            new.finish()
        })
        .with_context(|| format!("cannot write {}", temp.display()))?;
    ready.commit().with_context(|| {
        format!(
            "cannot replace {} (a distro started at logon may be running it: \
             `wsl --terminate` it first)",
            target.display()
        )
    })?;
    Ok(target)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The command line of the logon entry.
pub fn command_line(exe: &Path, distro: &str, keep_alive: bool) -> String {
    let root = std::env::var_os("SystemRoot").unwrap_or_else(|| r"C:\Windows".into());
    let conhost = Path::new(&root).join("System32").join("conhost.exe");
    format!(
        "\"{}\" --headless \"{}\" --quiet start --name \"{distro}\"{}",
        conhost.display(),
        exe.display(),
        if keep_alive { " --keep-alive" } else { "" }
    )
}

/// The Run key as [`Autostart`].
pub struct RunKey;

impl Autostart for RunKey {
    fn enable(&self, name: &str, keep_alive: bool) -> anyhow::Result<()> {
        if name.contains('"') {
            bail!("a distro name with '\"' cannot be started at logon");
        }
        let exe = stable_copy()?;
        Key::open()?.set(&value_name(name), &command_line(&exe, name, keep_alive))
    }

    fn disable(&self, name: &str) -> anyhow::Result<bool> {
        // The copy of distrod.exe stays: other distros' entries may run it, and the next
        // enable replaces it.
        Key::open()?.delete(&value_name(name))
    }

    fn status(&self, name: &str) -> anyhow::Result<Option<String>> {
        Key::open()?.get(&value_name(name))
    }
}
