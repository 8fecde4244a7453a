//! The WSL API (`wslapi.dll`), and [`System`]: the real [`Wsl`].
//!
//! The DLL is loaded from System32 only (`LOAD_LIBRARY_SEARCH_SYSTEM32`): distrod.exe is
//! typically run from a Downloads folder, where a planted `wslapi.dll` must not be picked
//! up. It is loaded on first use, so a machine without WSL still gets `wsl.exe`'s own
//! answer for the operations that go through it. Signatures are those of `wslapi.h`.

use std::ffi::c_void;
use std::os::windows::io::AsRawHandle;
use std::path::Path;
use std::sync::OnceLock;

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Com::CoTaskMemFree;
use windows_sys::Win32::System::LibraryLoader::{
    GetProcAddress, LOAD_LIBRARY_SEARCH_SYSTEM32, LoadLibraryExW,
};
use windows_sys::Win32::System::Threading::{GetExitCodeProcess, INFINITE, WaitForSingleObject};
use windows_sys::core::{BOOL, HRESULT, PCSTR, PCWSTR};

use super::exe::WslExe;
use super::{Distribution, Output, Result, Run, Wsl, WslError, check_arg};

/// `WSL_DISTRIBUTION_FLAGS`, a C enum.
type Flags = i32;

type IsDistributionRegistered = unsafe extern "system" fn(PCWSTR) -> BOOL;
type GetDistributionConfiguration = unsafe extern "system" fn(
    PCWSTR,
    *mut u32,
    *mut u32,
    *mut Flags,
    *mut *mut *mut u8,
    *mut u32,
) -> HRESULT;
type ConfigureDistribution = unsafe extern "system" fn(PCWSTR, u32, Flags) -> HRESULT;
type Launch =
    unsafe extern "system" fn(PCWSTR, PCWSTR, BOOL, HANDLE, HANDLE, HANDLE, *mut HANDLE) -> HRESULT;

/// The functions distrod uses, resolved once. The module stays loaded for the life of the
/// process (it is never freed, so the pointers stay valid).
struct Api {
    is_registered: IsDistributionRegistered,
    get_configuration: GetDistributionConfiguration,
    configure: ConfigureDistribution,
    launch: Launch,
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

impl Api {
    fn load() -> std::result::Result<Api, String> {
        let file = wide("wslapi.dll");
        // SAFETY: a NUL-terminated wide string; no file handle, as the API requires.
        let module = unsafe {
            LoadLibraryExW(
                file.as_ptr(),
                std::ptr::null_mut(),
                LOAD_LIBRARY_SEARCH_SYSTEM32,
            )
        };
        if module.is_null() {
            return Err(std::io::Error::last_os_error().to_string());
        }
        let symbol = |name: &'static [u8]| {
            // SAFETY: `name` is a NUL-terminated ASCII name and `module` a loaded module.
            let f = unsafe { GetProcAddress(module, name.as_ptr() as PCSTR) };
            f.ok_or_else(|| {
                let name = String::from_utf8_lossy(&name[..name.len() - 1]);
                format!("it has no {name}: {}", std::io::Error::last_os_error())
            })
        };
        // SAFETY: each pointer is the export of that name, whose C signature the type
        // spells out (wslapi.h).
        unsafe {
            Ok(Api {
                is_registered: std::mem::transmute::<
                    unsafe extern "system" fn() -> isize,
                    IsDistributionRegistered,
                >(symbol(b"WslIsDistributionRegistered\0")?),
                get_configuration: std::mem::transmute::<
                    unsafe extern "system" fn() -> isize,
                    GetDistributionConfiguration,
                >(symbol(b"WslGetDistributionConfiguration\0")?),
                configure: std::mem::transmute::<
                    unsafe extern "system" fn() -> isize,
                    ConfigureDistribution,
                >(symbol(b"WslConfigureDistribution\0")?),
                launch: std::mem::transmute::<unsafe extern "system" fn() -> isize, Launch>(
                    symbol(b"WslLaunch\0")?,
                ),
            })
        }
    }
}

fn check(function: &'static str, distro: &str, hr: HRESULT) -> Result<()> {
    if hr < 0 {
        Err(WslError::Api {
            function,
            distro: distro.to_string(),
            hresult: hr,
        })
    } else {
        Ok(())
    }
}

/// Closes a handle when dropped.
struct Owned(HANDLE);

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: a handle this process owns and closes once.
        unsafe { CloseHandle(self.0) };
    }
}

/// The real WSL: the API where it serves, `wsl.exe` for the rest.
pub struct System {
    exe: WslExe,
    api: OnceLock<std::result::Result<Api, String>>,
}

impl Default for System {
    fn default() -> Self {
        System::new()
    }
}

impl System {
    /// WSL as installed: `wslapi.dll` and `wsl.exe` from System32.
    pub fn new() -> System {
        System::with_exe(WslExe::system())
    }

    /// With another `wsl.exe` (a stand-in, in tests).
    pub fn with_exe(exe: WslExe) -> System {
        System {
            exe,
            api: OnceLock::new(),
        }
    }

    fn api(&self) -> Result<&Api> {
        self.api
            .get_or_init(Api::load)
            .as_ref()
            .map_err(|e| WslError::Load(e.clone()))
    }
}

impl Wsl for System {
    fn is_registered(&self, name: &str) -> Result<bool> {
        check_arg("distro name", name)?;
        let api = self.api()?;
        let name = wide(name);
        // SAFETY: a NUL-terminated wide string that outlives the call.
        Ok(unsafe { (api.is_registered)(name.as_ptr()) } != 0)
    }

    fn list(&self) -> Result<Vec<Distribution>> {
        self.exe.list()
    }

    fn import(&self, name: &str, location: &Path, tarball: &Path) -> Result<()> {
        self.exe.import(name, location, tarball)
    }

    fn unregister(&self, name: &str) -> Result<()> {
        self.exe.unregister(name)
    }

    fn set_default_user(&self, name: &str, uid: u32) -> Result<()> {
        check_arg("distro name", name)?;
        let api = self.api()?;
        let wname = wide(name);
        let (mut version, mut old_uid, mut count) = (0u32, 0u32, 0u32);
        let mut flags: Flags = 0;
        let mut env: *mut *mut u8 = std::ptr::null_mut();
        // SAFETY: every out-pointer points at a local of the declared type.
        let hr = unsafe {
            (api.get_configuration)(
                wname.as_ptr(),
                &mut version,
                &mut old_uid,
                &mut flags,
                &mut env,
                &mut count,
            )
        };
        if hr >= 0 && !env.is_null() {
            // The default environment is not needed; it is the caller's to free, each
            // string and the array (CoTaskMemAlloc).
            // SAFETY: `env` holds `count` strings allocated by the API, freed once each.
            unsafe {
                for i in 0..count as usize {
                    CoTaskMemFree(*env.add(i) as *const c_void);
                }
                CoTaskMemFree(env as *const c_void);
            }
        }
        check("WslGetDistributionConfiguration", name, hr)?;
        tracing::debug!("{name}: WSL {version}, default uid {old_uid} -> {uid}, flags {flags:#x}");
        // SAFETY: a NUL-terminated wide string; plain integers.
        let hr = unsafe { (api.configure)(wname.as_ptr(), uid, flags) };
        check("WslConfigureDistribution", name, hr)
    }

    fn run(&self, run: &Run<'_>) -> Result<Output> {
        self.exe.run(run)
    }

    fn launch_detached(&self, name: &str, command: &str) -> Result<()> {
        check_arg("distro name", name)?;
        let api = self.api()?;
        let io_err = |error| WslError::Io {
            op: format!("WslLaunch in {name}: open NUL"),
            error,
        };
        // NUL for all three: no console is read or written, and nothing waits on a pipe
        // nobody drains.
        let nul = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("NUL")
            .map_err(io_err)?;
        let handle = nul.as_raw_handle() as HANDLE;
        let wname = wide(name);
        let wcommand = wide(command);
        let mut process: HANDLE = std::ptr::null_mut();
        // SAFETY: NUL-terminated wide strings and a valid handle, all outliving the call;
        // `process` receives a handle this process then owns.
        let hr = unsafe {
            (api.launch)(
                wname.as_ptr(),
                wcommand.as_ptr(),
                0,
                handle,
                handle,
                handle,
                &mut process,
            )
        };
        check("WslLaunch", name, hr)?;
        let process = Owned(process);
        let mut code = 0u32;
        // SAFETY: a process handle owned by `process`; `code` is a local.
        let waited = unsafe {
            WaitForSingleObject(process.0, INFINITE) == WAIT_OBJECT_0
                && GetExitCodeProcess(process.0, &mut code) != 0
        };
        if !waited {
            return Err(WslError::Io {
                op: format!("WslLaunch in {name}: wait for '{command}'"),
                error: std::io::Error::last_os_error(),
            });
        }
        if code != 0 {
            return Err(WslError::Launched {
                distro: name.to_string(),
                command: command.to_string(),
                code: code as i32,
            });
        }
        Ok(())
    }

    fn terminate(&self, name: &str) -> Result<()> {
        self.exe.terminate(name)
    }
}
