//! The image catalog: the simplestreams model of an image server and the choice of an image
//! from it. Pure data and functions: no I/O, so every rule here is unit-tested.
//!
//! The server publishes `streams/v1/index.json`, which names the products file (normally
//! `streams/v1/images.json`). A product key is `distro:release:arch:variant`; each product
//! lists builds (`versions`, keyed `YYYYMMDD_HH:MM`, newest = largest string) and each build
//! lists items. Only the `root.tar.xz` item is a plain root filesystem usable on WSL; products
//! without one (VM-only images, squashfs-only distros) are dropped while parsing.
//! Unknown fields are ignored, which is also how the legacy `lxd_requirements` is tolerated.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The item key (and `ftype`) of the plain root filesystem tarball.
pub const ROOTFS_ITEM: &str = "root.tar.xz";

/// Why the server's catalog cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// `streams/v1/index.json` is not JSON of the expected shape.
    #[error("the stream index is not valid JSON: {0}")]
    Index(#[source] serde_json::Error),
    /// The index lists no stream with a products file.
    #[error("the stream index names no image products file")]
    NoProductsPath,
    /// The products file is not JSON of the expected shape.
    #[error("the products file is not valid JSON: {0}")]
    Products(#[source] serde_json::Error),
}

/// One product that has a root filesystem, with its builds newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// The distro's name as the server spells it (`debian`, `ubuntu`, `archlinux`...).
    pub distro: String,
    /// The release's name (`bookworm`, `noble`, `current`...).
    pub release: String,
    /// The release's display name (`Noble Numbat`); the name when the server gives none.
    pub release_title: String,
    /// The architecture, in Debian's naming (`amd64`, `arm64`).
    pub arch: String,
    /// `default`, `cloud`, or a distro's own (Gentoo's `openrc` and `systemd`).
    pub variant: String,
    /// Other names of the product, `distro/release[/variant]` (`debian/12`,
    /// `ubuntu/noble/default`); the release part is what makes `debian:12` work.
    pub aliases: Vec<String>,
    /// Never empty; newest first.
    pub builds: Vec<Build>,
}

/// One build of a product: its root filesystem tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The build's date, `YYYYMMDD_HH:MM` (so the newest is the greatest string).
    pub version: String,
    /// The `root.tar.xz` file of the build.
    pub rootfs: Item,
}

/// A file of the server, as its catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// Relative to the server root; may contain `//` and `:`.
    pub path: String,
    /// Its SHA-256 in lower-case hexadecimal, which the download is checked against; None
    /// when the catalog gives none.
    pub sha256: Option<String>,
    /// Its size in bytes, if the catalog says (for the progress bar).
    pub size: Option<u64>,
}

impl Product {
    /// `distro:release:arch:variant`, as the server keys the product.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            self.distro, self.release, self.arch, self.variant
        )
    }

    /// The newest build (there always is one).
    pub fn newest(&self) -> &Build {
        &self.builds[0]
    }

    /// The version number this release carries in its name or aliases (`12` for bookworm via
    /// `debian/12`, `24.04` for noble), if any.
    pub fn version_number(&self) -> Option<Vec<u64>> {
        std::iter::once(self.release.as_str())
            .chain(self.aliases.iter().filter_map(|a| {
                let mut parts = a.split('/');
                (parts.next() == Some(self.distro.as_str()))
                    .then(|| parts.next())
                    .flatten()
            }))
            .filter_map(parse_version)
            .max()
    }

    /// Whether `name` designates this product's release: its name, or an alias such as
    /// `debian/12` or `debian/12/default`.
    pub fn release_matches(&self, name: &str) -> bool {
        self.release.eq_ignore_ascii_case(name)
            || self.aliases.iter().any(|a| {
                let mut parts = a.split('/');
                parts.next() == Some(self.distro.as_str())
                    && parts.next().is_some_and(|r| r.eq_ignore_ascii_case(name))
            })
    }
}

/// `12`, `24.04`, `3.20` → `[12]`, `[24, 4]`, `[3, 20]`; anything else → `None`.
fn parse_version(s: &str) -> Option<Vec<u64>> {
    if s.is_empty() {
        return None;
    }
    s.split('.').map(|p| p.parse::<u64>().ok()).collect()
}

/// The products of an image server that have a root filesystem.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// Sorted by distro, release, arch, variant.
    pub products: Vec<Product>,
}

#[derive(Deserialize)]
struct RawIndex {
    #[serde(default)]
    index: BTreeMap<String, RawIndexEntry>,
}

#[derive(Deserialize)]
struct RawIndexEntry {
    #[serde(default)]
    datatype: Option<String>,
    #[serde(default)]
    path: Option<String>,
}

#[derive(Deserialize)]
struct RawProducts {
    #[serde(default)]
    products: BTreeMap<String, RawProduct>,
}

#[derive(Deserialize)]
struct RawProduct {
    #[serde(default)]
    aliases: Option<String>,
    #[serde(default)]
    arch: Option<String>,
    #[serde(default)]
    release: Option<String>,
    #[serde(default)]
    release_title: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    versions: BTreeMap<String, RawVersion>,
}

#[derive(Deserialize)]
struct RawVersion {
    #[serde(default)]
    items: BTreeMap<String, RawItem>,
}

#[derive(Deserialize)]
struct RawItem {
    #[serde(default)]
    ftype: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    path: Option<String>,
}

/// The path of the products file named by `streams/v1/index.json`.
pub fn products_path(index_json: &[u8]) -> Result<String, CatalogError> {
    let index: RawIndex = serde_json::from_slice(index_json).map_err(CatalogError::Index)?;
    let mut entries: Vec<&RawIndexEntry> = index.index.values().collect();
    // Prefer the image-downloads stream; the official index has only that one.
    entries.sort_by_key(|e| e.datatype.as_deref() != Some("image-downloads"));
    entries
        .into_iter()
        .find_map(|e| e.path.clone())
        .ok_or(CatalogError::NoProductsPath)
}

impl Catalog {
    /// Reads the products file, keeping the products with at least one [`ROOTFS_ITEM`]
    /// build. Missing names are taken from the product's key; unknown fields are ignored.
    pub fn parse(products_json: &[u8]) -> Result<Catalog, CatalogError> {
        let raw: RawProducts =
            serde_json::from_slice(products_json).map_err(CatalogError::Products)?;
        let mut products = Vec::new();
        for (key, p) in raw.products {
            let mut parts = key.split(':');
            let key_part = |i: Option<&str>| i.unwrap_or_default().to_string();
            let (k_distro, k_release, k_arch, k_variant) = (
                key_part(parts.next()),
                key_part(parts.next()),
                key_part(parts.next()),
                key_part(parts.next()),
            );
            let mut builds: Vec<Build> = p
                .versions
                .into_iter()
                .filter_map(|(version, v)| {
                    let item = v
                        .items
                        .iter()
                        .find(|(k, i)| {
                            k.as_str() == ROOTFS_ITEM || i.ftype.as_deref() == Some(ROOTFS_ITEM)
                        })
                        .map(|(_, i)| i)?;
                    Some(Build {
                        version,
                        rootfs: Item {
                            path: item.path.clone()?,
                            sha256: item.sha256.clone().map(|s| s.to_ascii_lowercase()),
                            size: item.size,
                        },
                    })
                })
                .collect();
            if builds.is_empty() {
                continue;
            }
            builds.sort_by(|a, b| b.version.cmp(&a.version));
            let release = p.release.unwrap_or(k_release);
            products.push(Product {
                distro: k_distro,
                release_title: p.release_title.unwrap_or_else(|| release.clone()),
                release,
                arch: p.arch.unwrap_or(k_arch),
                variant: p.variant.unwrap_or(k_variant),
                aliases: p
                    .aliases
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|a| !a.is_empty())
                    .map(String::from)
                    .collect(),
                builds,
            });
        }
        products.sort_by(|a, b| {
            (&a.distro, &a.release, &a.arch, &a.variant)
                .cmp(&(&b.distro, &b.release, &b.arch, &b.variant))
        });
        Ok(Catalog { products })
    }

    /// Products of `arch` matching the optional filters (release by name or alias).
    pub fn filter<'a>(
        &'a self,
        arch: &'a str,
        distro: Option<&'a str>,
        release: Option<&'a str>,
        variant: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Product> + 'a {
        self.products.iter().filter(move |p| {
            p.arch == arch
                && distro.is_none_or(|d| p.distro.eq_ignore_ascii_case(d))
                && release.is_none_or(|r| p.release_matches(r))
                && variant.is_none_or(|v| p.variant.eq_ignore_ascii_case(v))
        })
    }

    /// Picks the product `spec` designates for `arch`, or says what is close.
    pub fn select<'a>(
        &'a self,
        spec: &ImageSpec,
        arch: &'a str,
    ) -> Result<&'a Product, SelectError> {
        let for_arch: Vec<&Product> = self.filter(arch, None, None, None).collect();
        let of_distro: Vec<&Product> = for_arch
            .iter()
            .copied()
            .filter(|p| p.distro.eq_ignore_ascii_case(&spec.distro))
            .collect();
        if of_distro.is_empty() {
            let names = unique(for_arch.iter().map(|p| p.distro.as_str()));
            return Err(SelectError::Distro {
                distro: spec.distro.clone(),
                arch: arch.to_string(),
                suggestions: close_matches(&spec.distro, &names),
            });
        }
        let release = match &spec.release {
            Some(r) => {
                let matching: Vec<&Product> = of_distro
                    .iter()
                    .copied()
                    .filter(|p| p.release_matches(r))
                    .collect();
                if matching.is_empty() {
                    let mut names = unique(of_distro.iter().map(|p| p.release.as_str()));
                    let mut candidates = names.clone();
                    for p in &of_distro {
                        candidates.extend(p.aliases.iter().filter_map(|a| a.split('/').nth(1)));
                    }
                    candidates.sort_unstable();
                    candidates.dedup();
                    names.sort_by(|a, b| release_order(&of_distro, a, b));
                    return Err(SelectError::Release {
                        distro: spec.distro.clone(),
                        release: r.clone(),
                        arch: arch.to_string(),
                        suggestions: close_matches(r, &candidates),
                        available: names.iter().map(|s| s.to_string()).collect(),
                    });
                }
                matching[0].release.clone()
            }
            None => default_release(&of_distro).to_string(),
        };
        let variant = spec.variant.as_deref().unwrap_or("default");
        let of_release: Vec<&Product> = of_distro
            .iter()
            .copied()
            .filter(|p| p.release == release)
            .collect();
        if let Some(p) = of_release
            .iter()
            .find(|p| p.variant.eq_ignore_ascii_case(variant))
        {
            return Ok(p);
        }
        let names = unique(of_release.iter().map(|p| p.variant.as_str()));
        Err(SelectError::Variant {
            distro: spec.distro.clone(),
            release,
            variant: variant.to_string(),
            suggestions: close_matches(variant, &names),
            available: names.iter().map(|s| s.to_string()).collect(),
        })
    }
}

/// Orders release names of one distro newest-preferred first (see [`default_release`]).
fn release_order(products: &[&Product], a: &str, b: &str) -> std::cmp::Ordering {
    let rank = |name: &str| {
        products
            .iter()
            .find(|p| p.release == name)
            .map(|p| release_rank(p))
    };
    rank(b).cmp(&rank(a))
}

/// Higher is preferred as the default release: a numbered release beats an unnumbered one
/// (`sid`, `edge`, `rawhide`, `tumbleweed` are rolling or development releases); for Ubuntu an
/// LTS (`YY.04` with even YY) beats a newer interim release; then the higher number wins.
/// Among unnumbered releases, `current` (Arch Linux's only one) is preferred.
fn release_rank(p: &Product) -> (bool, bool, Vec<u64>, bool) {
    let version = p.version_number();
    let lts = p.distro == "ubuntu" && matches!(version.as_deref(), Some([yy, 4]) if yy % 2 == 0);
    (
        version.is_some(),
        lts,
        version.unwrap_or_default(),
        p.release == "current",
    )
}

fn default_release<'a>(products: &[&'a Product]) -> &'a str {
    products
        .iter()
        .max_by(|a, b| {
            release_rank(a)
                .cmp(&release_rank(b))
                // Deterministic among equals: the alphabetically first name.
                .then_with(|| b.release.cmp(&a.release))
        })
        .map(|p| p.release.as_str())
        .unwrap_or_default()
}

fn unique<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut v: Vec<&str> = names.collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Up to three candidates close to `wanted` by edit distance or prefix, closest first.
pub fn close_matches(wanted: &str, candidates: &[&str]) -> Vec<String> {
    let wanted = wanted.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .iter()
        .filter_map(|c| {
            let lc = c.to_ascii_lowercase();
            let d = strsim::damerau_levenshtein(&wanted, &lc);
            let close = d <= (wanted.len().max(lc.len()) / 3).max(1)
                || (wanted.len() >= 2 && lc.starts_with(&wanted))
                || (lc.len() >= 2 && wanted.starts_with(&lc));
            close.then_some((d, *c))
        })
        .collect();
    scored.sort();
    scored.dedup();
    scored.into_iter().take(3).map(|(_, c)| c.into()).collect()
}

/// Why [`Catalog::select`] found no image, with what is close for the message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// The server has no such distro for the architecture.
    #[error(
        "the image server has no distro `{distro}` for {arch}{}",
        did_you_mean(suggestions)
    )]
    Distro {
        /// The distro asked for.
        distro: String,
        /// The architecture looked in (Debian's naming).
        arch: String,
        /// Up to three of the server's distro names close to the one asked for.
        suggestions: Vec<String>,
    },
    /// The distro has no such release for the architecture.
    #[error(
        "{distro} has no release `{release}` for {arch}{} (available: {})",
        did_you_mean(suggestions),
        available.join(", ")
    )]
    Release {
        /// The distro.
        distro: String,
        /// The release asked for.
        release: String,
        /// The architecture looked in.
        arch: String,
        /// Up to three release names or alias numbers close to the one asked for.
        suggestions: Vec<String>,
        /// Every release of the distro for the architecture, the default one first.
        available: Vec<String>,
    },
    /// The release has no such variant.
    #[error(
        "{distro} {release} has no variant `{variant}`{} (available: {})",
        did_you_mean(suggestions),
        available.join(", ")
    )]
    Variant {
        /// The distro.
        distro: String,
        /// The release (the one asked for, or the default).
        release: String,
        /// The variant asked for (`default` when none was).
        variant: String,
        /// Up to three of the release's variants close to it.
        suggestions: Vec<String>,
        /// Every variant of the release, sorted.
        available: Vec<String>,
    },
}

fn did_you_mean(s: &[String]) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!("; did you mean {}?", s.join(", "))
    }
}

/// What the user asked for: `distro[:release[:variant]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSpec {
    /// The distro (matched ignoring case).
    pub distro: String,
    /// A release name, number or alias (`bookworm`, `12`); None: the default release (the
    /// newest numbered one, for Ubuntu the newest LTS).
    pub release: Option<String>,
    /// None: `default`.
    pub variant: Option<String>,
}

impl FromStr for ImageSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let part = |i: usize| {
            parts
                .get(i)
                .map(|p| p.trim())
                .filter(|p| !p.is_empty())
                .map(String::from)
        };
        let distro = part(0).ok_or("an image is `distro[:release[:variant]]`, e.g. debian:12")?;
        if parts.len() > 3 {
            return Err(format!(
                "`{s}` has too many parts: an image is `distro[:release[:variant]]`"
            ));
        }
        Ok(ImageSpec {
            distro: distro.to_ascii_lowercase(),
            release: part(1),
            variant: part(2),
        })
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.distro)?;
        match (&self.release, &self.variant) {
            (Some(r), Some(v)) => write!(f, ":{r}:{v}")?,
            (Some(r), None) => write!(f, ":{r}")?,
            (None, Some(v)) => write!(f, "::{v}")?,
            (None, None) => {}
        }
        Ok(())
    }
}

/// The images known to have no systemd: (distro as the catalog spells it, the product key's
/// first field; the variant, or `None` for every variant; the init they use instead).
/// distrod runs a distro's own systemd, so these cannot be offered as distrod distros. This
/// is data, not a rule derived from the image: the catalog says nothing about the init, and
/// a root filesystem is known only once downloaded. Only distros known for sure are listed;
/// any other is assumed to have systemd, and [`CATALOG_DISTROS`] keeps the names honest.
pub const WITHOUT_SYSTEMD: &[(&str, Option<&str>, &str)] = &[
    ("alpine", None, "OpenRC"),
    ("busybox", None, "BusyBox init"),
    ("devuan", None, "sysvinit"),
    // Gentoo's `systemd` variant has systemd.
    ("gentoo", Some("openrc"), "OpenRC"),
    ("openwrt", None, "procd"),
    ("slackware", None, "BSD-style init"),
    ("voidlinux", None, "runit"),
];

/// The init of the `distro` (any case) and `variant` pair when [`WITHOUT_SYSTEMD`] knows it
/// has no systemd; `None` when it has, or is not known not to.
pub fn init_without_systemd(distro: &str, variant: &str) -> Option<&'static str> {
    WITHOUT_SYSTEMD
        .iter()
        .find(|(d, v, _)| {
            d.eq_ignore_ascii_case(distro) && v.is_none_or(|v| v.eq_ignore_ascii_case(variant))
        })
        .map(|(_, _, init)| *init)
}

/// The distro names the catalog of images.linuxcontainers.org carries (as of 2026). Kept so
/// that [`WITHOUT_SYSTEMD`] is tested against the names the server really uses, without the
/// network: an entry misspelt, or for a distro the server dropped, would silently match
/// nothing.
pub const CATALOG_DISTROS: &[&str] = &[
    "almalinux",
    "alpine",
    "alt",
    "amazonlinux",
    "archlinux",
    "busybox",
    "centos",
    "debian",
    "devuan",
    "fedora",
    "gentoo",
    "kali",
    "mint",
    "openeuler",
    "opensuse",
    "openwrt",
    "oracle",
    "plamo",
    "rockylinux",
    "slackware",
    "ubuntu",
    "voidlinux",
];

/// The host's architecture in the image server's (Debian's) naming.
pub fn host_arch() -> &'static str {
    debian_arch(std::env::consts::ARCH)
}

/// Maps Rust/kernel architecture names to Debian's; unknown names pass through.
pub fn debian_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i686" | "i586" => "i386",
        "arm" | "armv7l" => "armhf",
        "powerpc64le" | "powerpc64" => "ppc64el",
        "riscv64" | "riscv64gc" => "riscv64",
        "s390x" => "s390x",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(key: &str, aliases: &str, versions: &[(&str, bool)]) -> String {
        let p: Vec<&str> = key.split(':').collect();
        let versions: Vec<String> = versions
            .iter()
            .map(|(v, has_root)| {
                let root = if *has_root {
                    format!(
                        r#""root.tar.xz":{{"ftype":"root.tar.xz","sha256":"AB{v}","size":100,"path":"images/{}/{}/{}/{}/{v}/rootfs.tar.xz"}},"#,
                        p[0], p[1], p[2], p[3]
                    )
                } else {
                    String::new()
                };
                format!(
                    r#""{v}":{{"items":{{{root}"incus.tar.xz":{{"ftype":"incus.tar.xz","sha256":"x","size":1,"path":"i"}},"root.squashfs":{{"ftype":"squashfs","path":"s","size":9}}}}}}"#
                )
            })
            .collect();
        format!(
            r#""{key}":{{"aliases":"{aliases}","arch":"{}","os":"X","release":"{}","release_title":"{}","variant":"{}","lxd_requirements":{{"secureboot":false}},"unknown":[1,2],"versions":{{{}}}}}"#,
            p[2],
            p[1],
            p[1],
            p[3],
            versions.join(",")
        )
    }

    fn sample() -> Catalog {
        let products = [
            product(
                "debian:bookworm:amd64:default",
                "debian/bookworm/default,debian/12/default,debian/bookworm,debian/12",
                &[("20260101_05:24", true), ("20260102_05:24", true)],
            ),
            product(
                "debian:bookworm:amd64:cloud",
                "debian/bookworm/cloud,debian/12/cloud",
                &[("20260102_05:24", true)],
            ),
            product(
                "debian:trixie:amd64:default",
                "debian/trixie/default,debian/13/default,debian/trixie,debian/13",
                &[("20260102_05:24", true)],
            ),
            product(
                "debian:sid:amd64:default",
                "debian/sid/default,debian/sid",
                &[("20260102_05:24", true)],
            ),
            product(
                "debian:trixie:arm64:default",
                "debian/trixie",
                &[("20260102_05:24", true)],
            ),
            product(
                "ubuntu:noble:amd64:default",
                "ubuntu/noble/default,ubuntu/24.04/default,ubuntu/noble,ubuntu/24.04",
                &[("20260102_07:42", true)],
            ),
            product(
                "ubuntu:plucky:amd64:default",
                "ubuntu/plucky,ubuntu/25.04",
                &[("20260102_07:42", true)],
            ),
            product(
                "ubuntu:questing:amd64:default",
                "ubuntu/questing,ubuntu/25.10",
                &[("20260102_07:42", true)],
            ),
            product(
                "ubuntu:jammy:amd64:default",
                "ubuntu/jammy,ubuntu/22.04",
                &[("20260102_07:42", true)],
            ),
            product(
                "alpine:3.20:amd64:default",
                "alpine/3.20",
                &[("20260102_13:00", true)],
            ),
            product(
                "alpine:3.9:amd64:default",
                "alpine/3.9",
                &[("20260102_13:00", true)],
            ),
            product(
                "alpine:edge:amd64:default",
                "alpine/edge",
                &[("20260102_13:00", true)],
            ),
            product(
                "archlinux:current:amd64:default",
                "archlinux/current/default,archlinux/default,archlinux",
                &[("20260102_04:18", true)],
            ),
            product(
                "nixos:24.05:amd64:default",
                "nixos/24.05",
                &[("20260102_01:00", false)],
            ),
        ];
        let json = format!(
            r#"{{"content_id":"images","datatype":"image-downloads","format":"products:1.0","products":{{{}}}}}"#,
            products.join(",")
        );
        Catalog::parse(json.as_bytes()).unwrap()
    }

    fn select(spec: &str) -> Result<String, SelectError> {
        let c = sample();
        c.select(&spec.parse().unwrap(), "amd64").map(|p| p.key())
    }

    #[test]
    fn index_names_the_products_path() {
        let idx = br#"{"format":"index:1.0","index":{"images":{"datatype":"image-downloads","path":"streams/v1/other.json","format":"products:1.0","products":["a:b:c:d"]}}}"#;
        assert_eq!(products_path(idx).unwrap(), "streams/v1/other.json");
        assert!(matches!(
            products_path(br#"{"index":{}}"#),
            Err(CatalogError::NoProductsPath)
        ));
        assert!(matches!(
            products_path(b"<html>"),
            Err(CatalogError::Index(_))
        ));
    }

    #[test]
    fn products_without_rootfs_are_dropped_and_builds_sorted() {
        let c = sample();
        assert!(c.products.iter().all(|p| p.distro != "nixos"));
        let deb = c
            .products
            .iter()
            .find(|p| p.key() == "debian:bookworm:amd64:default")
            .unwrap();
        assert_eq!(deb.newest().version, "20260102_05:24");
        assert_eq!(deb.builds[1].version, "20260101_05:24");
        assert_eq!(
            deb.newest().rootfs,
            Item {
                path: "images/debian/bookworm/amd64/default/20260102_05:24/rootfs.tar.xz".into(),
                sha256: Some("ab20260102_05:24".into()),
                size: Some(100),
            }
        );
        assert_eq!(deb.aliases.len(), 4);
    }

    #[test]
    fn filters() {
        let c = sample();
        let keys =
            |d, r, v| -> Vec<String> { c.filter("amd64", d, r, v).map(|p| p.key()).collect() };
        assert_eq!(
            keys(Some("debian"), Some("12"), None),
            vec![
                "debian:bookworm:amd64:cloud",
                "debian:bookworm:amd64:default"
            ]
        );
        assert_eq!(
            keys(None, None, Some("cloud")),
            vec!["debian:bookworm:amd64:cloud"]
        );
        assert_eq!(c.filter("arm64", None, None, None).count(), 1);
    }

    /// Each spec selects the product of each key.
    fn assert_selects(pairs: &[(&str, &str)]) {
        for (spec, key) in pairs {
            assert_eq!(select(spec).unwrap(), *key, "{spec}");
        }
    }

    #[test]
    fn default_release_is_newest_numbered_or_lts() {
        assert_selects(&[
            ("debian", "debian:trixie:amd64:default"),
            ("ubuntu", "ubuntu:noble:amd64:default"),
            // 3.20 > 3.9 numerically, and edge is not a release.
            ("alpine", "alpine:3.20:amd64:default"),
            ("archlinux", "archlinux:current:amd64:default"),
        ]);
    }

    #[test]
    fn release_by_name_or_alias_and_variant() {
        assert_selects(&[
            ("debian:12", "debian:bookworm:amd64:default"),
            ("debian:bookworm:cloud", "debian:bookworm:amd64:cloud"),
            ("Debian:SID", "debian:sid:amd64:default"),
            ("ubuntu:25.10", "ubuntu:questing:amd64:default"),
        ]);
    }

    #[test]
    fn unknown_names_get_close_matches() {
        match select("debain").unwrap_err() {
            SelectError::Distro { suggestions, .. } => {
                assert_eq!(suggestions, vec!["debian"])
            }
            e => panic!("{e}"),
        }
        let e = select("debian:bookwrom").unwrap_err();
        assert!(e.to_string().contains("did you mean bookworm?"), "{e}");
        assert!(
            e.to_string().contains("available: trixie, bookworm, sid"),
            "{e}"
        );
        let e = select("debian:12:clod").unwrap_err();
        assert!(e.to_string().contains("did you mean cloud?"), "{e}");
        let e = select("zzzzzz").unwrap_err();
        assert!(!e.to_string().contains("did you mean"), "{e}");
    }

    #[test]
    fn spec_parsing() {
        assert_eq!(
            "debian:12:cloud".parse::<ImageSpec>().unwrap(),
            ImageSpec {
                distro: "debian".into(),
                release: Some("12".into()),
                variant: Some("cloud".into())
            }
        );
        assert_eq!("ubuntu".parse::<ImageSpec>().unwrap().release, None);
        assert!("".parse::<ImageSpec>().is_err());
        assert!("a:b:c:d".parse::<ImageSpec>().is_err());
        assert_eq!(
            "ubuntu::cloud".parse::<ImageSpec>().unwrap().to_string(),
            "ubuntu::cloud"
        );
    }

    #[test]
    fn distros_without_systemd_are_catalog_names() {
        for (distro, _, _) in WITHOUT_SYSTEMD {
            assert!(CATALOG_DISTROS.contains(distro), "{distro}");
        }
    }

    #[test]
    fn init_without_systemd_by_distro_and_variant() {
        assert_eq!(init_without_systemd("gentoo", "openrc"), Some("OpenRC"));
        assert_eq!(init_without_systemd("gentoo", "systemd"), None);
        for distro in ["alpine", "Alpine", "ALPINE"] {
            for variant in ["default", "cloud"] {
                assert_eq!(init_without_systemd(distro, variant), Some("OpenRC"));
            }
        }
        assert_eq!(init_without_systemd("voidlinux", "default"), Some("runit"));
        assert_eq!(init_without_systemd("debian", "default"), None);
    }

    #[test]
    fn arch_names() {
        assert_eq!(debian_arch("x86_64"), "amd64");
        assert_eq!(debian_arch("aarch64"), "arm64");
        assert_eq!(debian_arch("loongarch64"), "loongarch64");
    }
}
