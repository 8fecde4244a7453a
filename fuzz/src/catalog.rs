//! The image server's simplestreams catalog: `streams/v1/index.json` (which names the
//! products file) and `streams/v1/images.json` (every product and build), parsed by
//! `image::catalog`, then everything `distrod images`, `distrod create` and the installer's
//! wizard do with it: filtering, choosing the default release, selecting an image by
//! `distro[:release[:variant]]` with suggestions when nothing matches, and the wizard's
//! list.
//!
//! Both files come from the image server (`--server`, `DISTROD_IMAGE_SERVER`, or a mirror
//! it redirects to). Each input is tried as both.

use distrod::image::catalog::{Catalog, ImageSpec, products_path};
use distrod::installer::choices;
use distrod::ui::human_bytes;

pub fn run(data: &[u8]) {
    let _ = products_path(data);
    let Ok(catalog) = Catalog::parse(data) else {
        return;
    };

    let mut arches: Vec<&str> = catalog.products.iter().map(|p| p.arch.as_str()).collect();
    arches.sort_unstable();
    arches.dedup();
    arches.truncate(4);
    arches.push("amd64");

    let mut specs: Vec<ImageSpec> = ["debian", "ubuntu", "ubuntu:24.04", "alpine:edge:cloud"]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    for p in catalog.products.iter().take(8) {
        assert!(!p.builds.is_empty(), "a product without builds: {p:?}");
        let _ = human_bytes(p.newest().rootfs.size.unwrap_or_default());
        let _ = p.key();
        let _ = p.version_number();
        for spec in [
            p.distro.clone(),
            format!("{}:{}", p.distro, p.release),
            format!("{}:{}:{}", p.distro, p.release, p.variant),
            // Near misses, for the suggestions.
            format!("{}x:{}", p.distro, p.release),
            format!("{}:{}x", p.distro, p.release),
            format!("{}:{}:{}x", p.distro, p.release, p.variant),
        ] {
            if let Ok(s) = spec.parse::<ImageSpec>() {
                let _ = s.to_string();
                specs.push(s);
            }
        }
        for alias in p.aliases.iter().take(4) {
            if let Some(release) = alias.split('/').nth(1) {
                specs.push(ImageSpec {
                    distro: p.distro.clone(),
                    release: Some(release.to_owned()),
                    variant: None,
                });
            }
        }
    }

    for arch in arches {
        for spec in &specs {
            match catalog.select(spec, arch) {
                Ok(p) => {
                    assert_eq!(p.arch, arch, "selected a product of another architecture");
                    assert!(
                        p.distro.eq_ignore_ascii_case(&spec.distro),
                        "selected {} for {spec}",
                        p.key()
                    );
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        let _ = catalog
            .filter(arch, Some("debian"), Some("12"), Some("default"))
            .count();
        let found = choices(&catalog, arch);
        for c in &found.offered {
            assert!(!c.label.is_empty(), "a wizard choice without a label");
            assert!(
                distrod::image::catalog::init_without_systemd(&c.distro, &c.variant).is_none(),
                "an image without systemd offered: {c:?}"
            );
        }
        for label in &found.left_out {
            assert!(!label.is_empty(), "a left-out image without a label");
        }
    }
}
