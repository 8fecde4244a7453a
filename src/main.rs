//! distrod: parse the command line, set up logging, dispatch, turn an error into one line
//! and an exit code. No logic lives here.

use distrod::{cli, commands, interrupt};
#[cfg(target_os = "linux")]
use distrod::{distro, runtime};

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Run as a login shell through `enable`'s alias: the session hook, before anything
    // else reads the (caller's) arguments or environment.
    #[cfg(target_os = "linux")]
    if let Some(shell) = distro::hook::invoked_as_shell() {
        return distro::hook::run(shell);
    }
    #[cfg(target_os = "linux")]
    distro::hook::drop_setuid();
    // `exec`'s waiting half, re-executed as a small image (after the setuid drop: it
    // forwards signals to a pid it is given).
    #[cfg(target_os = "linux")]
    if let Some(code) = runtime::waiter::dispatch() {
        return ExitCode::from(code);
    }
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if interrupt::requested() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("DISTROD_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::new(f),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "distrod=debug",
            _ => "distrod=trace",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
