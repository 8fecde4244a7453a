//! A simplestreams tree as images.linuxcontainers.org publishes it: `streams/v1/index.json`
//! naming the products file, and the products file itself (compact one-line JSON, keys in
//! no sorted order, fields the client does not know), with the items each version lists.
//! Published into a [`Server`] together with every item's bytes.

use super::archive::sha256_hex;
use super::server::Server;

/// Where the index says the products are. Deliberately not `images.json`: clients must
/// follow the index, not guess.
pub const DEFAULT_PRODUCTS_PATH: &str = "streams/v1/images-2024.json";

/// A JSON value whose objects keep the order they were built in.
enum Json {
    Str(String),
    Num(u64),
    Bool(bool),
    Null,
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn obj(fields: Vec<(&str, Json)>) -> Json {
        Json::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    fn str(s: &str) -> Json {
        Json::Str(s.to_owned())
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Str(s) => out.push_str(&serde_json::to_string(s).expect("encode a string")),
            Json::Num(n) => out.push_str(&n.to_string()),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Null => out.push_str("null"),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    Json::Str(key.clone()).write(out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }
}

/// One item of a version: its key in `items`, what the catalog says about it, and the
/// bytes the server holds for it.
#[derive(Clone, Debug)]
pub struct Item {
    pub key: String,
    pub ftype: String,
    pub path: String,
    pub sha256: String,
    pub size: u64,
    /// `delta_base` of a delta item.
    pub delta_base: Option<String>,
    pub bytes: Vec<u8>,
}

impl Item {
    /// An item whose catalog entry describes `bytes` truthfully.
    pub fn new(key: &str, ftype: &str, path: &str, bytes: &[u8]) -> Item {
        Item {
            key: key.to_owned(),
            ftype: ftype.to_owned(),
            path: path.to_owned(),
            sha256: sha256_hex(bytes),
            size: bytes.len() as u64,
            delta_base: None,
            bytes: bytes.to_vec(),
        }
    }

    /// The plain root filesystem tarball at `path`.
    pub fn rootfs(path: &str, bytes: &[u8]) -> Item {
        Item::new("root.tar.xz", "root.tar.xz", path, bytes)
    }

    fn json(&self, oddities: bool) -> Json {
        let mut fields = vec![
            ("ftype", Json::str(&self.ftype)),
            ("sha256", Json::str(&self.sha256)),
            ("size", Json::Num(self.size)),
            ("path", Json::str(&self.path)),
        ];
        if let Some(base) = &self.delta_base {
            fields.push(("delta_base", Json::str(base)));
        }
        if self.ftype == "incus.tar.xz" || self.ftype == "lxd.tar.xz" {
            // Real entries carry these; clients that only want the rootfs ignore them.
            fields.push(("combined_sha256", Json::str(&sha256_hex(b"combined"))));
            fields.push(("combined_rootxz_sha256", Json::str(&sha256_hex(b"rootxz"))));
            fields.push(("combined_squashfs_sha256", Json::str(&sha256_hex(b"sq"))));
        }
        if oddities {
            fields.insert(0, ("signature_url", Json::Null));
            fields.push((
                "mirrors",
                Json::Arr(vec![Json::str("a"), Json::Num(2), Json::Bool(false)]),
            ));
        }
        Json::obj(fields)
    }
}

/// One build of a product: `YYYYMMDD_HH:MM` and its items.
#[derive(Clone, Debug)]
pub struct Version {
    pub build: String,
    pub items: Vec<Item>,
}

/// One product: `distro:release:arch:variant`.
#[derive(Clone, Debug)]
pub struct Product {
    pub distro: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    pub release_title: String,
    pub aliases: Vec<String>,
    pub versions: Vec<Version>,
    /// Spell `requirements` the old way, `lxd_requirements`.
    pub legacy_requirements: bool,
}

impl Product {
    /// A product with aliases `distro/release[/variant]` (the bare form for `default`).
    pub fn new(distro: &str, release: &str, arch: &str, variant: &str) -> Product {
        let mut aliases = vec![format!("{distro}/{release}/{variant}")];
        if variant == "default" {
            aliases.push(format!("{distro}/{release}"));
        }
        Product {
            distro: distro.to_owned(),
            release: release.to_owned(),
            arch: arch.to_owned(),
            variant: variant.to_owned(),
            release_title: release.to_owned(),
            aliases,
            versions: Vec::new(),
            legacy_requirements: false,
        }
    }

    /// A product whose release also has a version number, aliased the way the server
    /// does (`debian/bookworm/default,debian/12/default,debian/bookworm,debian/12`).
    pub fn numbered(
        distro: &str,
        release: &str,
        number: &str,
        arch: &str,
        variant: &str,
    ) -> Product {
        let mut product = Product::new(distro, release, arch, variant);
        product.aliases = vec![
            format!("{distro}/{release}/{variant}"),
            format!("{distro}/{number}/{variant}"),
        ];
        if variant == "default" {
            product.aliases.push(format!("{distro}/{release}"));
            product.aliases.push(format!("{distro}/{number}"));
        }
        product
    }

    pub fn title(mut self, title: &str) -> Product {
        self.release_title = title.to_owned();
        self
    }

    pub fn legacy(mut self) -> Product {
        self.legacy_requirements = true;
        self
    }

    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.distro, self.release, self.arch, self.variant
        )
    }

    /// The directory of a build, as on the server.
    pub fn build_dir(&self, build: &str) -> String {
        format!(
            "images/{}/{}/{}/{}/{build}",
            self.distro, self.release, self.arch, self.variant
        )
    }

    /// Where a build's `root.tar.xz` is published by [`Product::build`].
    pub fn rootfs_path(&self, build: &str) -> String {
        format!("{}/rootfs.tar.xz", self.build_dir(build))
    }

    /// Adds a build carrying `rootfs` as its `root.tar.xz`, next to the items a real
    /// container build also has (`incus.tar.xz`, `lxd.tar.xz`, `root.squashfs`, a delta).
    pub fn build(self, build: &str, rootfs: &[u8]) -> Product {
        let item = Item::rootfs(&self.rootfs_path(build), rootfs);
        self.build_with(build, item)
    }

    /// Adds a build whose `root.tar.xz` item is `rootfs` as given (another path, a wrong
    /// checksum...), plus the usual other items.
    pub fn build_with(self, build: &str, rootfs: Item) -> Product {
        let mut product = self.build_without_rootfs(build);
        let version = product.versions.last_mut().expect("just added");
        version.items.insert(1, rootfs);
        product
    }

    /// Adds a build without a `root.tar.xz` (as squashfs-only images have).
    pub fn build_without_rootfs(mut self, build: &str) -> Product {
        let dir = self.build_dir(build);
        let mut items = vec![
            Item::new(
                "incus.tar.xz",
                "incus.tar.xz",
                &format!("{dir}/incus.tar.xz"),
                b"incus metadata",
            ),
            Item::new(
                "lxd.tar.xz",
                "lxd.tar.xz",
                &format!("{dir}/lxd.tar.xz"),
                b"lxd metadata",
            ),
            Item::new(
                "root.squashfs",
                "squashfs",
                &format!("{dir}/rootfs.squashfs"),
                b"hsqs not really",
            ),
        ];
        if let Some(previous) = self.versions.last() {
            let mut delta = Item::new(
                &format!("delta-{}.vcdiff", previous.build),
                "squashfs.vcdiff",
                &format!("{dir}/rootfs.vcdiff"),
                b"\xd6\xc3\xc4\x00 vcdiff",
            );
            delta.delta_base = Some(previous.build.clone());
            items.push(delta);
        }
        self.versions.push(Version {
            build: build.to_owned(),
            items,
        });
        self
    }

    /// A VM-only build: `disk.qcow2` and metadata, nothing for containers.
    pub fn vm_build(mut self, build: &str) -> Product {
        let dir = self.build_dir(build);
        self.versions.push(Version {
            build: build.to_owned(),
            items: vec![
                Item::new(
                    "disk-kvm.img",
                    "disk-kvm.img",
                    &format!("{dir}/disk.qcow2"),
                    b"QFI\xfb",
                ),
                Item::new(
                    "lxd.tar.xz",
                    "lxd.tar.xz",
                    &format!("{dir}/lxd.tar.xz"),
                    b"lxd metadata",
                ),
            ],
        });
        self
    }

    /// The `root.tar.xz` item of a build.
    pub fn rootfs_item(&self, build: &str) -> &Item {
        self.versions
            .iter()
            .find(|v| v.build == build)
            .and_then(|v| v.items.iter().find(|i| i.key == "root.tar.xz"))
            .unwrap_or_else(|| panic!("{} has no root.tar.xz in {build}", self.key()))
    }

    fn os(&self) -> String {
        let mut chars = self.distro.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }

    fn json(&self, oddities: bool) -> Json {
        // Versions neither ascending nor descending: clients must pick the newest by
        // comparing, not by position.
        let mut versions: Vec<&Version> = self.versions.iter().collect();
        versions.sort_by(|a, b| a.build.cmp(&b.build));
        if versions.len() > 1 {
            versions.rotate_left(1);
        }
        let versions = Json::Obj(
            versions
                .into_iter()
                .map(|v| {
                    let items = Json::Obj(
                        v.items
                            .iter()
                            .map(|i| (i.key.clone(), i.json(oddities)))
                            .collect(),
                    );
                    let mut fields = vec![("items", items)];
                    if oddities {
                        fields.push(("pubname", Json::str(&format!("{}-{}", self.key(), v.build))));
                    }
                    (v.build.clone(), Json::obj(fields))
                })
                .collect(),
        );
        let requirements = if self.legacy_requirements {
            "lxd_requirements"
        } else {
            "requirements"
        };
        let mut fields = vec![
            ("versions", versions),
            ("aliases", Json::str(&self.aliases.join(","))),
            ("arch", Json::str(&self.arch)),
            ("os", Json::str(&self.os())),
            ("release", Json::str(&self.release)),
            ("release_title", Json::str(&self.release_title)),
            (requirements, Json::Obj(Vec::new())),
            ("variant", Json::str(&self.variant)),
        ];
        if oddities {
            fields.push((
                "future_field",
                Json::obj(vec![("nested", Json::Arr(vec![Json::Num(1), Json::Null]))]),
            ));
            fields.insert(2, ("supported", Json::Bool(true)));
        }
        Json::obj(fields)
    }
}

/// The whole tree: index, products file, items.
pub struct Catalog {
    pub products_path: String,
    pub products: Vec<Product>,
    /// Sprinkle fields and values no client knows about over every level.
    pub oddities: bool,
}

impl Catalog {
    pub fn new() -> Catalog {
        Catalog {
            products_path: DEFAULT_PRODUCTS_PATH.to_owned(),
            products: Vec::new(),
            oddities: false,
        }
    }

    pub fn with(mut self, product: Product) -> Catalog {
        self.products.push(product);
        self
    }

    pub fn product(&self, key: &str) -> &Product {
        self.products
            .iter()
            .find(|p| p.key() == key)
            .unwrap_or_else(|| panic!("no product {key} in the catalog"))
    }

    pub fn index_json(&self) -> String {
        let keys = self.products.iter().map(|p| Json::Str(p.key())).collect();
        let mut images = vec![
            ("datatype", Json::str("image-downloads")),
            ("path", Json::str(&self.products_path)),
            ("updated", Json::str("Wed, 20 Nov 2024 06:00:00 +0000")),
            ("format", Json::str("products:1.0")),
            ("products", Json::Arr(keys)),
        ];
        if self.oddities {
            images.push(("mirror_hint", Json::Null));
        }
        Json::obj(vec![
            ("index", Json::obj(vec![("images", Json::obj(images))])),
            ("updated", Json::str("Wed, 20 Nov 2024 06:00:00 +0000")),
            ("format", Json::str("index:1.0")),
        ])
        .render()
    }

    pub fn products_json(&self) -> String {
        let products = Json::Obj(
            self.products
                .iter()
                .map(|p| (p.key(), p.json(self.oddities)))
                .collect(),
        );
        let mut fields = vec![
            ("content_id", Json::str("images")),
            ("datatype", Json::str("image-downloads")),
            ("format", Json::str("products:1.0")),
            ("products", products),
        ];
        if self.oddities {
            fields.insert(0, ("updated", Json::str("Wed, 20 Nov 2024 06:00:00 +0000")));
            fields.push(("license", Json::Arr(Vec::new())));
        }
        Json::obj(fields).render()
    }

    /// Puts the index, the products file and every item's bytes on `server`.
    pub fn publish(&self, server: &Server) {
        server.put("streams/v1/index.json", self.index_json());
        server.put(&self.products_path, self.products_json());
        for product in &self.products {
            for version in &product.versions {
                for item in &version.items {
                    server.put(&item.path, item.bytes.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        let product = Product::numbered("debian", "bookworm", "12", "amd64", "default")
            .build("20241118_05:24", b"old")
            .build("20241119_05:24", b"mid")
            .build("20241120_05:24", b"new");
        Catalog::new().with(product).with(
            Product::new("nixos", "24.05", "amd64", "default")
                .build_without_rootfs("20241120_01:00"),
        )
    }

    #[test]
    fn renders_the_server_format() {
        let catalog = catalog();
        let index: serde_json::Value = serde_json::from_str(&catalog.index_json()).unwrap();
        assert_eq!(index["format"], "index:1.0");
        assert_eq!(index["index"]["images"]["path"], DEFAULT_PRODUCTS_PATH);
        assert_eq!(
            index["index"]["images"]["products"][0],
            "debian:bookworm:amd64:default"
        );

        let text = catalog.products_json();
        assert!(!text.contains('\n'), "not one line");
        let products: serde_json::Value = serde_json::from_str(&text).unwrap();
        let debian = &products["products"]["debian:bookworm:amd64:default"];
        assert_eq!(
            debian["aliases"],
            "debian/bookworm/default,debian/12/default,debian/bookworm,debian/12"
        );
        assert_eq!(debian["os"], "Debian");
        assert!(debian["requirements"].is_object());
        let item = &debian["versions"]["20241120_05:24"]["items"]["root.tar.xz"];
        assert_eq!(item["ftype"], "root.tar.xz");
        assert_eq!(item["size"], 3);
        assert_eq!(item["sha256"], sha256_hex(b"new"));
        assert_eq!(
            item["path"],
            "images/debian/bookworm/amd64/default/20241120_05:24/rootfs.tar.xz"
        );
        let delta = &debian["versions"]["20241120_05:24"]["items"]["delta-20241119_05:24.vcdiff"];
        assert_eq!(delta["delta_base"], "20241119_05:24");
        let nixos = &products["products"]["nixos:24.05:amd64:default"];
        assert!(nixos["versions"]["20241120_01:00"]["items"]["root.tar.xz"].is_null());
    }

    #[test]
    fn versions_are_not_listed_in_order() {
        let text = catalog().products_json();
        let positions: Vec<usize> = ["20241118_05:24", "20241119_05:24", "20241120_05:24"]
            .iter()
            .map(|b| text.find(&format!("\"{b}\":{{")).unwrap())
            .collect();
        let mut ascending = positions.clone();
        ascending.sort();
        let mut descending = ascending.clone();
        descending.reverse();
        assert_ne!(positions, ascending);
        assert_ne!(positions, descending);
    }

    #[test]
    fn oddities_and_legacy_requirements() {
        let mut catalog = Catalog::new().with(
            Product::new("alpine", "3.20", "amd64", "default")
                .legacy()
                .build("20241120_13:00", b"x"),
        );
        catalog.oddities = true;
        let products: serde_json::Value = serde_json::from_str(&catalog.products_json()).unwrap();
        let alpine = &products["products"]["alpine:3.20:amd64:default"];
        assert!(alpine["lxd_requirements"].is_object());
        assert!(alpine["requirements"].is_null());
        assert!(alpine["future_field"]["nested"].is_array());
        assert!(products["license"].is_array());
    }

    #[test]
    fn publishes_every_item() {
        let server = Server::start();
        let catalog = catalog();
        catalog.publish(&server);
        let paths = [
            "streams/v1/index.json".to_owned(),
            DEFAULT_PRODUCTS_PATH.to_owned(),
            catalog
                .product("debian:bookworm:amd64:default")
                .rootfs_path("20241119_05:24"),
        ];
        for path in paths {
            let url = server.url_of(&path);
            let authority = server.authority();
            let mut stream = std::net::TcpStream::connect(&authority).unwrap();
            use std::io::{Read, Write};
            write!(stream, "GET /{path} HTTP/1.1\r\nHost: {authority}\r\n\r\n").unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            assert!(response.starts_with("HTTP/1.1 200"), "{url}: {response}");
        }
    }
}
