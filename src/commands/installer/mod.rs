//! `distrod.exe`'s commands ([`windows`]) and the wizard's questions ([`wizard`]): the
//! glue between the command line or the terminal and the install flow of
//! [`crate::installer`].

#[cfg(windows)]
pub mod windows;
pub mod wizard;
