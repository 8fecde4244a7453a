//! /etc/wsl.conf as distrod's login hook reads it: `linux::hook::wsl_conf_systemd`, which
//! decides whether WSL's own systemd is switched on (`[boot] systemd=true`), in which case
//! distrod refuses to start a second one.
//!
//! wsl.conf is the distro's file, in WSL's loose ini syntax, and is read by the setuid hook
//! at every login. It is read as UTF-8 text (`read_to_string`); other bytes are not parsed.

use distrod::linux::hook::wsl_conf_systemd;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let on = wsl_conf_systemd(text);
    // The switch is a `[boot]` key: without that section it cannot be on.
    if on {
        assert!(
            text.to_ascii_lowercase().contains("boot"),
            "systemd is on without a [boot] section"
        );
    }
}
