//! The WSL distro integration (Linux only): how a distro gets distrod and how its WSL
//! sessions land in the container ([`crate::runtime`]).
//!
//! - [`install`] puts the binary into the distro (`install`, `update`, `uninstall`);
//!   [`accounts`] hooks the login accounts and puts them back; [`enable`] holds `enable`'s
//!   checks and `disable`'s work side by side; [`hook`] is what a hooked login shell runs:
//!   it starts the container and enters it.
//! - [`firstboot`] creates the user of a new distro (the Windows installer's and a `.wsl`
//!   package's first start).
//! - [`logon`] asks Windows to start the distro at logon, from inside it.

pub mod accounts;
pub mod enable;
pub mod firstboot;
pub mod hook;
pub mod install;
pub mod logon;

use std::path::Path;

use crate::runtime::launch::Tuning;

/// The launch adjustments of /etc/distrod.toml for this distro: as
/// [`Tuning::from_config`], with the re-hook unit only where the accounts are hooked
/// ([`accounts::is_enabled`]; the unit would otherwise have nothing to do).
pub fn tuning(config: &crate::config::Config) -> Tuning {
    let mut t = Tuning::from_config(config);
    t.rehook &= accounts::is_enabled(Path::new("/"));
    t
}
