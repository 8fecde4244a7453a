//! What `distrod.exe` needs from Windows beyond WSL (see [`crate::wsl`]): the logon entry
//! ([`autostart`]) and the console ([`console`]).

pub mod autostart;
pub mod console;
