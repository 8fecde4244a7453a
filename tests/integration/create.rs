//! `distrod create`: from a catalog on a real HTTP server (or a file, or a URL) to a root
//! filesystem directory, through everything the network and the disk can do wrong.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::archive::{self, RootfsSpec};
use crate::support::server::{Behaviour, Server, closed_port_url};
use crate::support::streams::{Catalog, Item, Product};
use crate::support::{
    Distrod, Output, Workspace, assert_nothing_created, host_arch, list_dir, other_arch,
    require_root, skip_or_fail,
};

/// The build every single-build product in these tests has.
const BUILD: &str = "20241120_05:24";
const OLDER_BUILD: &str = "20241119_05:24";

/// A published rootfs: its spec (to check the unpacked tree) and its compressed bytes.
struct Image {
    spec: RootfsSpec,
    bytes: Vec<u8>,
}

impl Image {
    /// A small distro tree, single-block xz.
    fn small(name: &str) -> Image {
        let spec = RootfsSpec::distro(name);
        let bytes = archive::xz(&spec.tar());
        Image { spec, bytes }
    }

    /// A distro tree with `payload` bytes of incompressible data, single-block xz.
    fn sized(name: &str, payload: usize) -> Image {
        let spec = RootfsSpec::distro(name).with_payload(payload, 7);
        let bytes = archive::xz(&spec.tar());
        Image { spec, bytes }
    }

    fn sha256(&self) -> String {
        archive::sha256_hex(&self.bytes)
    }
}

/// `distrod create ARGS... --dir DIR --cache CACHE`: every run names its cache, so none
/// touches a default cache of the machine.
fn create(ws: &Workspace, dir: &Path, args: &[&str]) -> Distrod {
    let mut cmd = Distrod::new();
    cmd.arg("create")
        .args(args)
        .arg("--dir")
        .arg(dir)
        .arg("--cache")
        .arg(&ws.cache);
    cmd
}

/// `create IMAGE --server URL` into the workspace's target.
fn create_from(ws: &Workspace, server: &Server, image: &str) -> Output {
    create(ws, &ws.target(), &[image, "--server", &server.url()]).run()
}

/// A server publishing one product, `debian:bookworm` (12) for the host, with `image` as
/// the rootfs of its only build.
fn serve_bookworm(image: &Image) -> (Server, Product) {
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build(BUILD, &image.bytes);
    let server = Server::start();
    Catalog::new().with(product.clone()).publish(&server);
    (server, product)
}

/// Asserts a successful create: the tree is `image`'s and nothing (no temporary sibling)
/// sits beside it.
fn assert_created(ws: &Workspace, image: &Image, output: &Output) {
    output.success();
    image.spec.assert_unpacked(&ws.target());
    assert_eq!(
        list_dir(&ws.parent),
        ["rootfs"],
        "something was left beside the new tree\n{output}"
    );
}

/// Asserts the cache holds the verified download under its sha256 and no partial one.
fn assert_cached(ws: &Workspace, sha256: &str, output: &Output) {
    let cached = ws.cache.join(sha256);
    let bytes = fs::read(&cached).unwrap_or_else(|e| {
        panic!(
            "no verified download at {}: {e}\n{output}",
            cached.display()
        )
    });
    assert_eq!(
        archive::sha256_hex(&bytes),
        sha256,
        "the cached file is not the image"
    );
    assert_no_partial(ws, output);
}

fn assert_no_partial(ws: &Workspace, output: &Output) {
    let partial: Vec<String> = list_dir(&ws.cache)
        .into_iter()
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(
        partial.is_empty(),
        "partial downloads left: {partial:?}\n{output}"
    );
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

fn write_input(ws: &Workspace, name: &str, bytes: &[u8]) -> PathBuf {
    let path = ws.inputs.join(name);
    fs::write(&path, bytes).expect("write an input file");
    path
}

// ---------------------------------------------------------------------------------------
// From the catalog

#[test]
fn creates_a_tree_from_single_block_xz() {
    let image = Image::sized("bookworm", 300 * 1024);
    assert_eq!(archive::xz_block_count(&image.bytes), 1);
    let (server, product) = serve_bookworm(&image);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:bookworm");
    assert_created(&ws, &image, &output);
    assert_cached(&ws, &image.sha256(), &output);
    let requests = server.requests_for(&product.rootfs_path(BUILD));
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let agent = requests[0].header("user-agent").unwrap_or_default();
    assert!(agent.starts_with("distrod/"), "User-Agent {agent:?}");
}

#[test]
fn creates_a_tree_from_multi_block_xz() {
    let spec = RootfsSpec::distro("bookworm-mt").with_payload(400 * 1024, 11);
    let bytes = archive::xz_multi_block(&spec.tar());
    let blocks = archive::xz_block_count(&bytes);
    assert!(blocks > 4, "the test archive has only {blocks} blocks");
    let image = Image { spec, bytes };
    let (server, _) = serve_bookworm(&image);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:bookworm");
    assert_created(&ws, &image, &output);
}

/// Releases for the selection tests, each with its own tree: Debian bookworm (12, default
/// and cloud), trixie (13), sid (no number) and trixie for another architecture; Ubuntu
/// 22.04 and 24.04 (LTS) with the newer 24.10 and 25.04; Alpine 3.9, 3.21 and edge.
struct Selection {
    server: Server,
    catalog: Catalog,
    images: Vec<(String, Image)>,
}

impl Selection {
    fn new() -> Selection {
        let arch = host_arch();
        let other = other_arch();
        let products = [
            Product::numbered("debian", "bookworm", "12", arch, "default"),
            Product::numbered("debian", "bookworm", "12", arch, "cloud"),
            Product::numbered("debian", "trixie", "13", arch, "default"),
            Product::new("debian", "sid", arch, "default"),
            Product::numbered("debian", "trixie", "13", other, "default"),
            Product::numbered("ubuntu", "jammy", "22.04", arch, "default"),
            Product::numbered("ubuntu", "noble", "24.04", arch, "default"),
            Product::numbered("ubuntu", "oracular", "24.10", arch, "default"),
            Product::numbered("ubuntu", "plucky", "25.04", arch, "default"),
            Product::new("alpine", "3.9", arch, "default"),
            Product::new("alpine", "3.21", arch, "default"),
            Product::new("alpine", "edge", arch, "default"),
        ];
        let mut catalog = Catalog::new();
        let mut images = Vec::new();
        for product in products {
            let key = product.key();
            let image = Image::small(&key);
            catalog = catalog.with(product.build(BUILD, &image.bytes));
            images.push((key, image));
        }
        let server = Server::start();
        catalog.publish(&server);
        Selection {
            server,
            catalog,
            images,
        }
    }

    /// Runs `create IMAGE` and asserts it made exactly the tree of product `expected`,
    /// fetching no other tarball.
    fn assert_picks(&self, image: &str, expected: &str) {
        self.assert_picks_with(&[image], expected);
    }

    fn assert_picks_with(&self, args: &[&str], expected: &str) {
        let image = args.join(" ");
        let ws = Workspace::new();
        let before = self.server.requests().len();
        let url = self.server.url();
        let mut args = args.to_vec();
        args.extend(["--server", url.as_str()]);
        let output = create(&ws, &ws.target(), &args).run();
        let (_, wanted) = self
            .images
            .iter()
            .find(|(key, _)| key == expected)
            .expect("a product of the selection catalog");
        assert_created(&ws, wanted, &output);
        let tarballs: Vec<String> = self.server.requests()[before..]
            .iter()
            .map(|r| r.path())
            .filter(|p| p.ends_with(".tar.xz"))
            .collect();
        let path = self.catalog.product(expected).rootfs_path(BUILD);
        assert_eq!(
            tarballs,
            [path],
            "`{image}` fetched the wrong tarballs\n{output}"
        );
    }
}

fn product_key(distro: &str, release: &str, variant: &str) -> String {
    format!("{distro}:{release}:{}:{variant}", host_arch())
}

#[test]
fn default_release_is_the_newest_numbered_one() {
    let selection = Selection::new();
    // trixie (13) beats bookworm (12) and the unnumbered sid.
    selection.assert_picks("debian", &product_key("debian", "trixie", "default"));
    // 3.21 beats 3.9 (numbers, not strings) and the unnumbered edge.
    selection.assert_picks("alpine", &product_key("alpine", "3.21", "default"));
}

#[test]
fn ubuntu_defaults_to_the_newest_lts() {
    let selection = Selection::new();
    // 24.04 beats the newer 24.10 and 25.04 (not LTS) and the older 22.04.
    selection.assert_picks("ubuntu", &product_key("ubuntu", "noble", "default"));
}

#[test]
fn release_by_name_or_number_and_variant() {
    let selection = Selection::new();
    let bookworm = product_key("debian", "bookworm", "default");
    selection.assert_picks("debian:12", &bookworm);
    selection.assert_picks("debian:bookworm", &bookworm);
    selection.assert_picks(
        "debian:12:cloud",
        &product_key("debian", "bookworm", "cloud"),
    );
    selection.assert_picks("debian:sid", &product_key("debian", "sid", "default"));
    selection.assert_picks(
        "ubuntu:24.10",
        &product_key("ubuntu", "oracular", "default"),
    );
    selection.assert_picks_with(
        &["debian", "--arch", other_arch()],
        &format!("debian:trixie:{}:default", other_arch()),
    );
}

#[test]
fn follows_a_redirect_to_another_server() {
    let image = Image::small("redirected");
    let (front, product) = serve_bookworm(&image);
    let mirror = Server::start();
    let path = product.rootfs_path(BUILD);
    mirror.put(&path, image.bytes.clone());
    front.behave(&path, Behaviour::Redirect(mirror.url_of(&path)));
    let ws = Workspace::new();
    let output = create_from(&ws, &front, "debian:12");
    assert_created(&ws, &image, &output);
    assert_eq!(front.requests_for(&path).len(), 1, "{output}");
    assert_eq!(mirror.requests_for(&path).len(), 1, "{output}");
}

#[test]
fn item_paths_with_double_slashes_are_fetched() {
    let image = Image::small("double-slash");
    let path = format!(
        "images/debian/bookworm/{}/default/{BUILD}//rootfs.tar.xz",
        host_arch()
    );
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build_with(BUILD, Item::rootfs(&path, &image.bytes));
    let server = Server::start();
    Catalog::new().with(product).publish(&server);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    assert_eq!(server.requests_for(&path).len(), 1, "{output}");
}

#[test]
fn falls_back_to_the_previous_build_when_the_newest_is_missing() {
    let older = Image::small("bookworm-older");
    let newest = Image::small("bookworm-newest");
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build(OLDER_BUILD, &older.bytes)
        .build(BUILD, &newest.bytes);
    let server = Server::start();
    Catalog::new().with(product.clone()).publish(&server);
    // The mirror lists the newest build but has not synced it.
    server.behave(&product.rootfs_path(BUILD), Behaviour::NotFound);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &older, &output);
    let wanted = format!("falling back to {OLDER_BUILD}");
    assert!(
        output
            .stderr
            .lines()
            .any(|l| l.contains("warning:") && l.contains(&wanted)),
        "expected a `warning:` line containing {wanted:?}\n{output}"
    );
    assert!(!server.requests_for(&product.rootfs_path(BUILD)).is_empty());
}

#[test]
fn checksum_mismatch_leaves_nothing_behind() {
    let image = Image::small("tampered");
    let path = format!(
        "images/debian/bookworm/{}/default/{BUILD}/rootfs.tar.xz",
        host_arch()
    );
    let mut item = Item::rootfs(&path, &image.bytes);
    let expected = archive::sha256_hex(b"what the catalog promised");
    item.sha256 = expected.clone();
    let product = Product::numbered("debian", "bookworm", "12", host_arch(), "default")
        .build_with(BUILD, item);
    let server = Server::start();
    Catalog::new().with(product).publish(&server);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    output.failure().error_mentions(&[
        "checksum mismatch",
        &server.url_of(&path),
        &format!("expected {expected}"),
        &format!("calculated {}", image.sha256()),
    ]);
    assert_nothing_created(&ws.target(), &[], &output);
    assert_no_partial(&ws, &output);
    assert!(
        !ws.cache.join(&expected).exists() && !ws.cache.join(image.sha256()).exists(),
        "unverified bytes kept in the cache: {:?}\n{output}",
        list_dir(&ws.cache)
    );
}

// ---------------------------------------------------------------------------------------
// Unreliable transfers

#[test]
fn resumes_a_truncated_body_with_a_range_request() {
    let image = Image::sized("truncated", 200 * 1024);
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    let half = image.bytes.len() / 2;
    server.behave(
        &path,
        Behaviour::Truncate {
            after: half,
            times: 1,
        },
    );
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    let requests = server.requests_for(&path);
    assert_eq!(requests.len(), 2, "{requests:#?}\n{output}");
    assert_eq!(requests[0].range(), None, "{output}");
    assert_eq!(
        requests[1].range(),
        Some(format!("bytes={half}-").as_str()),
        "{output}"
    );
    assert_cached(&ws, &image.sha256(), &output);
}

#[test]
fn gives_up_after_the_configured_number_of_attempts() {
    let image = Image::sized("always-truncated", 100 * 1024);
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    server.behave(
        &path,
        Behaviour::Truncate {
            after: image.bytes.len() / 3,
            times: usize::MAX,
        },
    );
    let ws = Workspace::new();
    let output = create(&ws, &ws.target(), &["debian:12", "--server", &server.url()])
        .env("DISTROD_HTTP_RETRIES", "3")
        .run();
    output
        .failure()
        .error_mentions(&["failed after 3 attempts"]);
    assert_eq!(server.requests_for(&path).len(), 3, "{output}");
    assert_nothing_created(&ws.target(), &[], &output);

    // Five attempts in all by default.
    let ws = Workspace::new();
    let before = server.requests_for(&path).len();
    let output = create_from(&ws, &server, "debian:12");
    output
        .failure()
        .error_mentions(&["failed after 5 attempts"]);
    assert_eq!(server.requests_for(&path).len() - before, 5, "{output}");
    assert_nothing_created(&ws.target(), &[], &output);
}

#[test]
fn retries_a_chunked_body_dropped_midway() {
    let image = Image::sized("dropped", 200 * 1024);
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    server.behave(
        &path,
        Behaviour::DropMidBody {
            after: image.bytes.len() / 3,
            times: 1,
        },
    );
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    assert!(server.requests_for(&path).len() >= 2, "{output}");
}

#[test]
fn accepts_a_body_without_content_length() {
    let image = Image::sized("close-delimited", 100 * 1024);
    let (server, product) = serve_bookworm(&image);
    server.behave(&product.rootfs_path(BUILD), Behaviour::NoContentLength);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
}

// ---------------------------------------------------------------------------------------
// The download cache

#[test]
fn resumes_a_partial_download_from_the_cache() {
    let image = Image::sized("resumed", 200 * 1024);
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    let ws = Workspace::new();
    let half = image.bytes.len() / 2;
    fs::write(
        ws.cache.join(format!("{}.part", image.sha256())),
        &image.bytes[..half],
    )
    .unwrap();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    let requests = server.requests_for(&path);
    assert_eq!(requests.len(), 1, "{requests:#?}\n{output}");
    assert_eq!(
        requests[0].range(),
        Some(format!("bytes={half}-").as_str()),
        "{output}"
    );
    assert_cached(&ws, &image.sha256(), &output);
}

#[test]
fn resumes_correctly_when_the_server_ignores_range() {
    let image = Image::sized("range-ignored", 200 * 1024);
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    server.behave(&path, Behaviour::IgnoreRange);
    let ws = Workspace::new();
    let half = image.bytes.len() / 2;
    fs::write(
        ws.cache.join(format!("{}.part", image.sha256())),
        &image.bytes[..half],
    )
    .unwrap();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    let requests = server.requests_for(&path);
    assert_eq!(
        requests[0].range(),
        Some(format!("bytes={half}-").as_str()),
        "{output}"
    );
    assert_cached(&ws, &image.sha256(), &output);
}

#[test]
fn a_corrupt_partial_download_is_not_trusted() {
    let image = Image::sized("corrupt-part", 100 * 1024);
    let (server, _) = serve_bookworm(&image);
    let ws = Workspace::new();
    let half = image.bytes.len() / 2;
    let part = ws.cache.join(format!("{}.part", image.sha256()));
    fs::write(&part, archive::pseudo_random(99, half)).unwrap();
    let first = create_from(&ws, &server, "debian:12");
    if first.code() == Some(0) {
        // Detected before use and downloaded afresh.
        assert_created(&ws, &image, &first);
    } else {
        // Or detected by the checksum: the bad prefix must be gone, so a second run works.
        first.failure().error_mentions(&["checksum mismatch"]);
        assert_nothing_created(&ws.target(), &[], &first);
        assert!(
            !part.exists(),
            "the corrupt partial download was kept\n{first}"
        );
        let second = create_from(&ws, &server, "debian:12");
        assert_created(&ws, &image, &second);
    }
    assert_cached(&ws, &image.sha256(), &first);
}

#[test]
fn a_verified_download_is_reused_without_fetching_again() {
    let image = Image::small("cached");
    let (server, product) = serve_bookworm(&image);
    let path = product.rootfs_path(BUILD);
    let ws = Workspace::new();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
    // The tarball disappears from the server; the catalog stays.
    server.behave(&path, Behaviour::NotFound);
    let second = ws.parent.join("second");
    let output = create(&ws, &second, &["debian:12", "--server", &server.url()]).run();
    output.success();
    image.spec.assert_unpacked(&second);
    assert_eq!(
        server.requests_for(&path).len(),
        1,
        "fetched again\n{output}"
    );
}

#[test]
fn a_verified_download_is_used_with_the_server_gone() {
    let image = Image::small("offline");
    let ws = Workspace::new();
    fs::write(ws.cache.join(image.sha256()), &image.bytes).unwrap();
    let url = format!("{}images/rootfs.tar.xz", closed_port_url());
    let output = create(
        &ws,
        &ws.target(),
        &["--image", &url, "--sha256", &image.sha256()],
    )
    .env("DISTROD_HTTP_RETRIES", "1")
    .run();
    assert_created(&ws, &image, &output);
}

#[test]
fn works_without_a_cache() {
    let image = Image::small("uncached");
    let (server, _) = serve_bookworm(&image);
    let ws = Workspace::new();
    let output = Distrod::new()
        .args([
            "create",
            "debian:12",
            "--no-cache",
            "--server",
            &server.url(),
            "--dir",
        ])
        .arg(ws.target())
        .run();
    assert_created(&ws, &image, &output);
}

// ---------------------------------------------------------------------------------------
// Errors a user makes or meets

#[test]
fn unreachable_server_is_named_and_nothing_is_created() {
    let url = closed_port_url();
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let ws = Workspace::new();
    let output = create(&ws, &ws.target(), &["debian", "--server", &url])
        .env("DISTROD_HTTP_RETRIES", "2")
        .run();
    output.failure().error_mentions(&[authority]);
    assert_nothing_created(&ws.target(), &[], &output);
}

#[test]
fn unknown_distro_or_release_suggests_close_names() {
    let selection = Selection::new();
    let ws = Workspace::new();
    let output = create_from(&ws, &selection.server, "debain");
    output.failure().error_mentions(&["did you mean", "debian"]);
    let text = output.error_text();
    let hint = &text[text.find("did you mean").unwrap()..];
    assert!(
        hint.contains("debian"),
        "the suggestion must follow `did you mean`\n{output}"
    );
    assert_nothing_created(&ws.target(), &[], &output);

    let output = create_from(&ws, &selection.server, "debian:bookwrom");
    output.failure().error_mentions(&["did you mean"]);
    let text = output.error_text();
    let hint = &text[text.find("did you mean").unwrap()..];
    assert!(
        hint.contains("bookworm"),
        "no `bookworm` after `did you mean`\n{output}"
    );
    assert_nothing_created(&ws.target(), &[], &output);
    // A failed choice downloads nothing.
    let tarballs = selection
        .server
        .requests()
        .iter()
        .filter(|r| r.path().ends_with(".tar.xz"))
        .count();
    assert_eq!(tarballs, 0);
}

#[test]
fn refuses_a_directory_that_is_not_empty() {
    let image = Image::small("refused");
    let (server, product) = serve_bookworm(&image);
    let ws = Workspace::new();
    let dir = ws.target();
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("precious"), b"keep me").unwrap();
    let output = create_from(&ws, &server, "debian:12");
    output.failure().error_mentions(&["not empty"]);
    assert_eq!(list_dir(&dir), ["precious"], "{output}");
    assert_eq!(fs::read(dir.join("precious")).unwrap(), b"keep me");
    assert_eq!(list_dir(&ws.parent), ["rootfs"], "{output}");
    assert!(server.requests_for(&product.rootfs_path(BUILD)).is_empty());
}

#[test]
fn fills_an_existing_empty_directory() {
    let image = Image::small("empty-dir");
    let (server, _) = serve_bookworm(&image);
    let ws = Workspace::new();
    fs::create_dir(ws.target()).unwrap();
    let output = create_from(&ws, &server, "debian:12");
    assert_created(&ws, &image, &output);
}

#[test]
fn quiet_prints_nothing_on_success() {
    let image = Image::small("quiet");
    let (server, _) = serve_bookworm(&image);
    let ws = Workspace::new();
    let output = create(
        &ws,
        &ws.target(),
        &["debian:12", "--quiet", "--server", &server.url()],
    )
    .run();
    assert_created(&ws, &image, &output);
    assert_eq!(output.stderr, "", "{output}");
}

/// A tmpfs mounted for one test, unmounted (lazily, so a busy mount cannot leak) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> nix::Result<Tmpfs> {
        use nix::mount::{MsFlags, mount};
        mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0755").as_str()),
        )?;
        Ok(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_disk_leaves_nothing_behind() {
    if !require_root("mounting a small tmpfs") {
        return;
    }
    let ws = Workspace::new();
    let _tmpfs = match Tmpfs::mount(&ws.parent, "2m") {
        Ok(t) => t,
        Err(e) => {
            skip_or_fail(&format!("cannot mount a tmpfs: {e}"));
            return;
        }
    };
    let image = Image::sized("too-big", 3 * 1024 * 1024);
    assert!(image.spec.content_size() > 2 * 1024 * 1024);
    let input = write_input(&ws, "big.tar.xz", &image.bytes);
    let output = create(&ws, &ws.target(), &["--image", path_str(&input)]).run();
    output.failure();
    // The premise: it failed for lack of space, not for anything else.
    let error = output.error_text().to_lowercase();
    assert!(error.contains("space"), "not a disk-full error\n{output}");
    assert_nothing_created(&ws.target(), &[], &output);
}

// ---------------------------------------------------------------------------------------
// --image: local files and URLs

fn create_from_file(name: &str, bytes: impl FnOnce(&[u8]) -> Vec<u8>) {
    let spec = RootfsSpec::distro(name).with_payload(64 * 1024, 3);
    let image = Image {
        bytes: bytes(&spec.tar()),
        spec,
    };
    let ws = Workspace::new();
    let input = write_input(&ws, name, &image.bytes);
    let output = create(&ws, &ws.target(), &["--image", path_str(&input)]).run();
    assert_created(&ws, &image, &output);
}

#[test]
fn local_tar_xz() {
    create_from_file("rootfs.tar.xz", archive::xz_multi_block);
}

#[test]
fn local_tar_gz() {
    create_from_file("rootfs.tar.gz", archive::gzip);
}

#[test]
fn local_plain_tar() {
    create_from_file("rootfs.tar", |tar| tar.to_vec());
}

#[test]
fn local_wsl_file() {
    // A `.wsl` file is a gzip-compressed tar.
    create_from_file("debian.wsl", archive::gzip);
}

#[test]
fn local_file_format_is_sniffed_not_guessed_from_the_name() {
    create_from_file("misnamed.tar.gz", archive::xz);
}

#[test]
fn image_from_a_url() {
    let image = Image::sized("from-url", 100 * 1024);
    let server = Server::start();
    server.put("downloads/custom.tar.xz", image.bytes.clone());
    let ws = Workspace::new();
    let url = server.url_of("downloads/custom.tar.xz");
    let output = create(
        &ws,
        &ws.target(),
        &["--image", &url, "--sha256", &image.sha256()],
    )
    .run();
    assert_created(&ws, &image, &output);
    assert_eq!(server.requests_for("downloads/custom.tar.xz").len(), 1);
    assert_cached(&ws, &image.sha256(), &output);
}

#[test]
fn wrong_sha256_for_a_local_file_is_a_mismatch() {
    let image = Image::small("local-mismatch");
    let ws = Workspace::new();
    let input = write_input(&ws, "rootfs.tar.xz", &image.bytes);
    let wrong = archive::sha256_hex(b"something else");
    let output = create(
        &ws,
        &ws.target(),
        &["--sha256", &wrong, "--image", path_str(&input)],
    )
    .run();
    output.failure().error_mentions(&[
        "checksum mismatch",
        &format!("expected {wrong}"),
        &format!("calculated {}", image.sha256()),
    ]);
    assert_nothing_created(&ws.target(), &[], &output);
}
