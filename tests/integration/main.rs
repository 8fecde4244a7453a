//! Integration tests: the real `distrod` binary against a real HTTP server on 127.0.0.1
//! and real archives built by the tests.

mod create;
mod elevation;
mod hostile;
mod idle;
mod images;
mod install;
mod layout;
mod no_systemd;
mod portproxy;
mod real_rootfs;
mod run;
mod runtime;
mod status;
mod suites;
mod support;
mod vm;
mod windows;
mod windows_portproxy;
mod wsl;
mod wsl_fake;
