//! /etc/wsl.conf as distrod's login hook reads it: `wsl::conf::systemd_on`, which
//! decides whether WSL's own systemd is switched on (`[boot] systemd=true`), in which case
//! distrod refuses to start a second one.
//!
//! wsl.conf is the distro's file, in WSL's loose ini syntax, and is read by the setuid hook
//! at every login. It is read as UTF-8 text (`read_to_string`); other bytes are not parsed.

use distrod::wsl::conf::systemd_on;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let on = systemd_on(text);
    // The switch is a `[boot]` key: without that section it cannot be on.
    if on {
        assert!(
            text.to_ascii_lowercase().contains("boot"),
            "systemd is on without a [boot] section"
        );
    }
}
