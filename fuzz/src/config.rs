//! /etc/distrod.toml: `config::parse` (what every session, `launch` and the port proxy
//! read), `config::render` and `config::with_ports` (what `distrod portproxy add|remove`
//! writes back into the user's file).
//!
//! The file belongs to the distro's administrator, who edits it by hand; distrod reads it
//! in the setuid login hook, so whatever is in it must give a configuration or a one-line
//! error, never a crash. What is checked beyond that: a parsed configuration renders to a
//! file that parses back to the same configuration, and `with_ports` either refuses or
//! returns a file whose ports are exactly the ones asked for.

use distrod::config::{parse, render, with_ports};

pub fn run(data: &[u8]) {
    // The file is read as UTF-8; anything else is refused before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(text);
    if let Ok(config) = &parsed {
        let rendered = render(config);
        match parse(&rendered) {
            Ok(again) => assert_eq!(&again, config, "render does not round-trip:\n{rendered}"),
            Err(e) => panic!("render wrote a file that does not parse ({e}):\n{rendered}"),
        }
    } else if let Err(e) = &parsed {
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
    for ports in [&[][..], &[22, 8080][..]] {
        if let Ok(new) = with_ports(text, ports) {
            let config = parse(&new).expect("with_ports checks its own output");
            assert_eq!(config.ports, ports);
        }
    }
}
