//! The logon entry of [`crate::wsl::logon`], kept through the registry API:
//! `distrod.exe autostart` and the installer's `--autostart` write it, `autostart disable`
//! and `uninstall` remove it. The entry runs `wsl.exe` from System32 (found through
//! `%SystemRoot%`) under `conhost.exe --headless`, so no console window opens and no copy
//! of distrod.exe has to stay in place.

use anyhow::Context;
use windows_sys::Win32::Foundation::{ERROR_FILE_NOT_FOUND, ERROR_SUCCESS};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_QUERY_VALUE, KEY_SET_VALUE, REG_OPTION_NON_VOLATILE, REG_SZ,
    RRF_RT_REG_SZ, RegCloseKey, RegCreateKeyExW, RegDeleteValueW, RegGetValueW, RegSetValueExW,
};

use crate::wsl::logon::{Autostart, RUN_SUBKEY, check_distro, command_line, value_name};

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
        let path = wide(RUN_SUBKEY);
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
            return Err(os_error(rc)).context(format!("cannot open HKCU\\{RUN_SUBKEY}"));
        }
        Ok(Key(key))
    }

    fn get(&self, name: &str) -> anyhow::Result<Option<String>> {
        let wname = wide(name);
        // RegGetValueW into `buf` (null: the size only), `size` its length in bytes.
        let query = |buf: *mut u16, size: &mut u32| -> anyhow::Result<bool> {
            // SAFETY: a NUL-terminated wide string; `buf` is null or holds `size` bytes.
            let rc = unsafe {
                RegGetValueW(
                    self.0,
                    std::ptr::null(),
                    wname.as_ptr(),
                    RRF_RT_REG_SZ,
                    std::ptr::null_mut(),
                    buf.cast(),
                    size,
                )
            };
            match rc {
                ERROR_SUCCESS => Ok(true),
                ERROR_FILE_NOT_FOUND => Ok(false),
                rc => Err(os_error(rc)).context(format!("cannot read the value {name}")),
            }
        };
        let mut size: u32 = 0;
        if !query(std::ptr::null_mut(), &mut size)? {
            return Ok(None);
        }
        let mut buf = vec![0u16; (size as usize).div_ceil(2) + 1];
        let mut size = (buf.len() * 2) as u32;
        if !query(buf.as_mut_ptr(), &mut size)? {
            return Ok(None);
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

/// Windows' System32, where the entry's conhost.exe and wsl.exe are.
fn system32() -> String {
    let root = std::env::var("SystemRoot")
        .ok()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| r"C:\Windows".into());
    format!("{root}\\System32")
}

/// The Run key as [`Autostart`].
pub struct RunKey;

impl Autostart for RunKey {
    fn enable(&self, name: &str, keep_alive: bool) -> anyhow::Result<()> {
        check_distro(name).map_err(anyhow::Error::msg)?;
        Key::open()?.set(
            &value_name(name),
            &command_line(&system32(), name, keep_alive),
        )
    }

    fn disable(&self, name: &str) -> anyhow::Result<bool> {
        Key::open()?.delete(&value_name(name))
    }

    fn status(&self, name: &str) -> anyhow::Result<Option<String>> {
        Key::open()?.get(&value_name(name))
    }
}
