//! One module per subcommand. Commands orchestrate the library modules and talk to the user
//! through [`Ui`]; they make no system calls of their own.

mod create;
#[cfg(target_os = "linux")]
mod enable;
#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
mod firstboot;
mod images;
#[cfg(target_os = "linux")]
mod install;
#[cfg(target_os = "linux")]
mod launch;
#[cfg(target_os = "linux")]
mod status;
#[cfg(target_os = "linux")]
mod stop;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, ServerArgs};
use crate::image::catalog::{self, Catalog};
use crate::image::http::Http;
use crate::image::server_url;
use crate::ui::Ui;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(cli.quiet);
    match cli.command {
        Command::Images(args) => images::run(&args, &ui),
        Command::Create(args) => create::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Pack(args) => create::pack(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Launch(args) => launch::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Exec(args) => exec::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Stop(args) => stop::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Status(args) => status::run(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Enable(args) => enable::enable(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Disable(args) => enable::disable(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Install(args) => install::install(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Update(args) => install::update(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Uninstall(args) => install::uninstall(&args, &ui),
        #[cfg(target_os = "linux")]
        Command::Firstboot(args) => firstboot::run(&args, &ui),
    }
}

/// Reads the server's catalog: the stream index, then the products file it names.
fn fetch_catalog(http: &Http, server: &ServerArgs) -> anyhow::Result<Catalog> {
    const LIMIT: u64 = 256 * 1024 * 1024;
    let index_url = server_url(&server.server, "streams/v1/index.json");
    let index = http
        .get_bytes(&index_url, LIMIT)
        .with_context(|| format!("cannot read the image server's index at {}", server.server))?;
    let path =
        catalog::products_path(&index).with_context(|| format!("bad index at {index_url}"))?;
    let products_url = server_url(&server.server, &path);
    let products = http
        .get_bytes(&products_url, LIMIT)
        .with_context(|| format!("cannot read the image catalog of {}", server.server))?;
    Catalog::parse(&products).with_context(|| format!("bad image catalog at {products_url}"))
}

fn arch(server: &ServerArgs) -> String {
    server
        .arch
        .clone()
        .unwrap_or_else(|| catalog::host_arch().to_string())
}
