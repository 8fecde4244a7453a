//! `distrod portproxy`: forwards TCP connections from Windows' network interfaces to the WSL distro.

pub mod relay;
