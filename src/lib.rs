//! distrod as a library: every module of the binary, so that the fuzz targets (fuzz/) and
//! the binary (src/main.rs) share one implementation of each parser and rule.

pub mod account;
pub mod cli;
pub mod commands;
#[cfg(target_os = "linux")]
pub mod config;
#[cfg(target_os = "linux")]
pub mod distro;
pub mod elf;
pub mod embedded;
pub mod fsutil;
pub mod image;
pub mod initsys;
pub mod installer;
pub mod interrupt;
pub mod overlay;
pub mod portproxy;
#[cfg(target_os = "linux")]
pub mod runtime;
pub mod ui;
pub mod version;
#[cfg(windows)]
pub mod windows;
pub mod wsl;
