//! `distrod images`: what the server offers for an architecture, as a table or JSON.

use std::process::ExitCode;

use serde::Serialize;

use crate::cli::ImagesArgs;
use crate::image::catalog::Product;
use crate::image::fetch::Server;
use crate::image::http::Http;
use crate::ui::{Ui, human_bytes};

#[derive(Serialize)]
struct Row<'a> {
    distro: &'a str,
    release: &'a str,
    release_title: &'a str,
    variant: &'a str,
    arch: &'a str,
    build: &'a str,
    size: Option<u64>,
    sha256: Option<&'a str>,
    path: &'a str,
    aliases: &'a [String],
}

impl<'a> From<&'a Product> for Row<'a> {
    fn from(p: &'a Product) -> Row<'a> {
        let b = p.newest();
        Row {
            distro: &p.distro,
            release: &p.release,
            release_title: &p.release_title,
            variant: &p.variant,
            arch: &p.arch,
            build: &b.version,
            size: b.rootfs.size,
            sha256: b.rootfs.sha256.as_deref(),
            path: &b.rootfs.path,
            aliases: &p.aliases,
        }
    }
}

pub fn run(args: &ImagesArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    let http = Http::from_env()?;
    let server = Server::from(&args.server);
    let catalog = server.catalog(&http)?;
    let arch = server.arch();
    let rows: Vec<Row> = catalog
        .filter(
            &arch,
            args.distro.as_deref(),
            args.release.as_deref(),
            args.variant.as_deref(),
        )
        .map(Row::from)
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        ui.warn(format!(
            "no image matches for {arch} (without filters, `distrod images` lists all)"
        ));
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table(&rows));
    Ok(ExitCode::SUCCESS)
}

fn table(rows: &[Row]) -> String {
    let header = ["DISTRO", "RELEASE", "VARIANT", "BUILD", "SIZE"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let release = if r.release_title != r.release && !r.release_title.is_empty() {
                format!("{} ({})", r.release, r.release_title)
            } else {
                r.release.to_string()
            };
            [
                r.distro.to_string(),
                release,
                r.variant.to_string(),
                r.build.to_string(),
                r.size.map(human_bytes).unwrap_or_else(|| "?".into()),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; 5]| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(width).enumerate() {
            if i == 4 {
                l.push_str(&format!("{c:>w$}"));
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}
