//! `distrod images`: listing what a simplestreams server offers, served by a real HTTP
//! server on 127.0.0.1.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::server::{Server, closed_port_url};
use crate::support::streams::{Catalog, Product};
use crate::support::{Distrod, host_arch, other_arch};

/// Bytes standing in for a tarball: listing never downloads them, only their size and
/// checksum matter.
fn blob(len: usize, fill: u8) -> Vec<u8> {
    vec![fill; len]
}

/// A catalog shaped like the real one: several builds per product, variants, numbered and
/// unnumbered releases, another architecture, and products without a `root.tar.xz`.
fn catalog() -> Catalog {
    let arch = host_arch();
    Catalog::new()
        .with(
            Product::numbered("debian", "bookworm", "12", arch, "default")
                .build("20241118_05:24", &blob(1000, 1))
                .build("20241120_05:24", &blob(3000, 3))
                .build("20241119_05:24", &blob(2000, 2)),
        )
        .with(
            Product::numbered("debian", "bookworm", "12", arch, "cloud")
                .build("20241120_05:24", &blob(3100, 4)),
        )
        .with(
            Product::numbered("debian", "trixie", "13", arch, "default")
                .build("20241120_05:24", &blob(4000, 5)),
        )
        .with(
            Product::new("debian", "sid", arch, "default").build("20241120_05:24", &blob(4100, 6)),
        )
        .with(
            Product::numbered("debian", "bookworm", "12", other_arch(), "default")
                .build("20241120_05:24", &blob(5000, 7)),
        )
        .with(
            Product::numbered("ubuntu", "noble", "24.04", arch, "default")
                .title("Noble Numbat")
                .build("20241121_07:42", &blob(6000, 8)),
        )
        // A VM-only variant and a squashfs-only distro: nothing to unpack on WSL.
        .with(
            Product::numbered("ubuntu", "noble", "24.04", arch, "desktop")
                .vm_build("20241121_07:42"),
        )
        .with(
            Product::new("nixos", "24.05", arch, "default")
                .build_without_rootfs("20241119_01:00")
                .build_without_rootfs("20241120_01:00"),
        )
}

fn serve(catalog: &Catalog) -> Server {
    let server = Server::start();
    catalog.publish(&server);
    server
}

fn images_json(server: &Server, extra: &[&str]) -> Vec<Value> {
    let output = Distrod::new()
        .args(["images", "--server", &server.url(), "--json"])
        .args(extra)
        .run();
    output.success();
    match output.json() {
        Value::Array(rows) => rows,
        other => panic!("expected a JSON array, got {other}\n{output}"),
    }
}

/// `distro:release:variant` of each listed row.
fn listed(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{}:{}:{}",
                str_field(r, "distro"),
                str_field(r, "release"),
                str_field(r, "variant")
            )
        })
        .collect()
}

fn str_field<'a>(row: &'a Value, key: &str) -> &'a str {
    row[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} is not a string in {row}"))
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn lists_only_products_with_a_rootfs_and_their_newest_build() {
    let catalog = catalog();
    let server = serve(&catalog);
    let rows = images_json(&server, &["--arch", host_arch()]);
    assert_eq!(
        listed(&rows),
        set(&[
            "debian:bookworm:cloud",
            "debian:bookworm:default",
            "debian:sid:default",
            "debian:trixie:default",
            "ubuntu:noble:default",
        ]),
        "{rows:#?}"
    );
    for row in &rows {
        let key = format!(
            "{}:{}:{}:{}",
            str_field(row, "distro"),
            str_field(row, "release"),
            str_field(row, "arch"),
            str_field(row, "variant")
        );
        let product = catalog.product(&key);
        let newest = product
            .versions
            .iter()
            .map(|v| v.build.as_str())
            .max()
            .unwrap();
        let item = product.rootfs_item(newest);
        assert_eq!(str_field(row, "build"), newest, "build of {key}");
        assert_eq!(row["size"].as_u64(), Some(item.size), "size of {key}");
        assert_eq!(str_field(row, "sha256"), item.sha256, "sha256 of {key}");
        assert_eq!(str_field(row, "path"), item.path, "path of {key}");
        assert_eq!(
            str_field(row, "release_title"),
            product.release_title,
            "release_title of {key}"
        );
        let aliases: Vec<&str> = row["aliases"]
            .as_array()
            .unwrap_or_else(|| panic!("aliases of {key} is not an array: {row}"))
            .iter()
            .map(|a| a.as_str().expect("an alias is a string"))
            .collect();
        assert_eq!(aliases, product.aliases, "aliases of {key}");
    }
    let bookworm = rows
        .iter()
        .find(|r| r["release"] == "bookworm" && r["variant"] == "default")
        .unwrap();
    assert_eq!(bookworm["build"], "20241120_05:24");
    assert_eq!(bookworm["size"], 3000);
}

#[test]
fn table_has_the_columns_and_the_newest_builds() {
    let server = serve(&catalog());
    let output = Distrod::new()
        .args(["images", "--server", &server.url(), "--arch", host_arch()])
        .run();
    output.success();
    let mut lines = output.stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["DISTRO", "RELEASE", "VARIANT", "BUILD", "SIZE"],
        "{output}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 5, "one line per image with a rootfs\n{output}");
    assert!(
        rows.iter().any(|r| r[0] == "debian"
            && r[1] == "bookworm"
            && r.contains(&"default")
            && r.contains(&"20241120_05:24")),
        "no line for debian bookworm default at its newest build\n{output}"
    );
    assert!(
        rows.iter()
            .any(|r| r[0] == "ubuntu" && r[1] == "noble" && r.contains(&"20241121_07:42")),
        "no line for ubuntu noble\n{output}"
    );
    for absent in ["20241119_05:24", "20241118_05:24", "nixos", "desktop"] {
        assert!(!output.stdout.contains(absent), "{absent} listed\n{output}");
    }
}

#[test]
fn filters_by_distro_release_variant_and_arch() {
    let server = serve(&catalog());
    let arch = host_arch();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--distro", "debian"],
            &[
                "debian:bookworm:cloud",
                "debian:bookworm:default",
                "debian:sid:default",
                "debian:trixie:default",
            ],
        ),
        (
            &["--distro", "debian", "--release", "bookworm"],
            &["debian:bookworm:cloud", "debian:bookworm:default"],
        ),
        // A release by the number in its aliases (`debian/12`).
        (
            &["--distro", "debian", "--release", "12"],
            &["debian:bookworm:cloud", "debian:bookworm:default"],
        ),
        (
            &["--distro", "ubuntu", "--release", "24.04"],
            &["ubuntu:noble:default"],
        ),
        (&["--variant", "cloud"], &["debian:bookworm:cloud"]),
        (
            &[
                "--distro",
                "debian",
                "--release",
                "12",
                "--variant",
                "default",
            ],
            &["debian:bookworm:default"],
        ),
    ];
    for (filters, expected) in cases {
        let mut args = vec!["--arch", arch];
        args.extend_from_slice(filters);
        let rows = images_json(&server, &args);
        assert_eq!(listed(&rows), set(expected), "distrod images {args:?}");
    }
    let rows = images_json(&server, &["--arch", other_arch()]);
    assert_eq!(listed(&rows), set(&["debian:bookworm:default"]));
    assert!(rows.iter().all(|r| r["arch"] == other_arch()), "{rows:#?}");
    assert_eq!(rows[0]["size"], 5000);
}

#[test]
fn architecture_defaults_to_the_hosts() {
    let server = serve(&catalog());
    let rows = images_json(&server, &[]);
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|r| r["arch"] == host_arch()),
        "expected only {} images: {rows:#?}",
        host_arch()
    );
    assert_eq!(listed(&rows).len(), 5, "{rows:#?}");
}

#[test]
fn follows_the_index_to_the_products_file() {
    let mut catalog = catalog();
    catalog.products_path = "streams/v1/mirror-listing.json".to_owned();
    let server = serve(&catalog);
    let rows = images_json(&server, &["--arch", host_arch()]);
    assert_eq!(rows.len(), 5);
    assert_eq!(server.requests_for("streams/v1/index.json").len(), 1);
    assert_eq!(
        server.requests_for("streams/v1/mirror-listing.json").len(),
        1
    );
    assert!(
        server.requests_for("streams/v1/images.json").is_empty(),
        "fetched a hard-coded images.json"
    );
    // Listing needs the catalog only, never a tarball.
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        let agent = request.header("user-agent").unwrap_or_default();
        assert!(
            agent.starts_with("distrod/"),
            "User-Agent {agent:?} of {}",
            request.target
        );
    }
}

#[test]
fn tolerates_legacy_requirements_and_unknown_fields() {
    let mut catalog = catalog();
    for product in &mut catalog.products {
        product.legacy_requirements = true;
    }
    catalog.oddities = true;
    let server = serve(&catalog);
    let rows = images_json(&server, &["--arch", host_arch(), "--distro", "debian"]);
    assert_eq!(
        listed(&rows),
        set(&[
            "debian:bookworm:cloud",
            "debian:bookworm:default",
            "debian:sid:default",
            "debian:trixie:default",
        ])
    );
    let bookworm = rows
        .iter()
        .find(|r| r["release"] == "bookworm" && r["variant"] == "default")
        .unwrap();
    assert_eq!(bookworm["build"], "20241120_05:24");
}

#[test]
fn server_can_come_from_the_environment() {
    let server = serve(&catalog());
    let output = Distrod::new()
        .env("DISTROD_IMAGE_SERVER", server.url())
        .args([
            "images",
            "--json",
            "--arch",
            host_arch(),
            "--distro",
            "ubuntu",
        ])
        .run();
    output.success();
    let rows = output.json();
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{output}");
    assert_eq!(rows[0]["release"], "noble");
    assert!(!server.requests_for("streams/v1/index.json").is_empty());
}

#[test]
fn unreachable_server_is_named_in_the_error() {
    let url = closed_port_url();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let output = Distrod::new()
        .env("DISTROD_HTTP_RETRIES", "2")
        .args(["images", "--server", &url])
        .run();
    output.failure().error_mentions(&[authority]);
    assert!(output.stdout.is_empty(), "{output}");
}
