//! The console `distrod.exe` runs in.

use windows_sys::Win32::System::Console::GetConsoleProcessList;

/// Whether the console is this process's alone: Windows made it for us because we were
/// started from Explorer (double-clicked), so it closes with us and a last message would
/// vanish unread. From a shell, the shell shares it.
pub fn owns_console() -> bool {
    let mut pids = [0u32; 4];
    // SAFETY: the buffer and its length agree.
    let n = unsafe { GetConsoleProcessList(pids.as_mut_ptr(), pids.len() as u32) };
    n == 1
}
