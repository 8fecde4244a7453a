//! `distrod pack` (Linux and Windows): download and verify like `create`, and repack on the
//! fly into a `.wsl` package (a gzip tar) with the Linux distrod at /opt/distrod/bin/distrod
//! and an /etc/wsl-distribution.conf whose first-start command, /usr/lib/wsl/distrod-oobe.sh,
//! runs `distrod firstboot` with the uid WSL then logs in as (`oobe.defaultUid`: the first
//! free uid of the image, chosen as its /etc/passwd streams past; see `image::repack`).
//! Written beside `--out` and renamed into place once the checksum is proven, and once the
//! image is known to boot systemd in distrod's container (`initsys`, read off its entries as
//! they stream past): an image without systemd is refused, with nothing left, unless
//! `--without-systemd` asks for the plain distro (its first start then does not enable).

use std::io::{self, BufWriter};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::cli::PackArgs;
use crate::embedded;
use crate::fsutil;
use crate::image::fetch::{ImageRequest, candidates, fetch};
use crate::image::http::Http;
use crate::image::repack::{self, Extras, WslPackage};
use crate::interrupt;
use crate::ui::Ui;

pub fn run(args: &PackArgs, ui: &Ui) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        bail!(
            "{} exists; choose another --out or remove it",
            args.out.display()
        );
    }
    let binary = embedded::linux_distrod()?;
    let request = ImageRequest::from(&args.source);
    if request.spec.is_some() || request.server.arch.is_some() {
        embedded::check_arch(&binary, &request.server.arch())?;
    }
    let http = Http::from_env()?;
    let (what, candidates) = candidates(&request, &http)?;
    let name = match (&args.name, &args.source.spec) {
        (Some(n), _) => n.clone(),
        (None, Some(spec)) => default_name(&spec.distro),
        (None, None) => "Distrod".to_string(),
    };
    // oobe.defaultName: what `wsl --install --from-file` registers the package as.
    crate::installer::check_name(&name).map_err(anyhow::Error::msg)?;
    interrupt::install();
    ui.status(format!("Packing {} from {what}", args.out.display()));
    let started = Instant::now();
    let windows_exe = embedded::windows_exe()?;
    let extras = Extras {
        distrod: &binary,
        windows_exe: windows_exe.as_deref(),
        wsl_package: Some(WslPackage {
            default_name: name,
            enable: !args.without_systemd,
        }),
    };
    let tmp = fsutil::StagedFile::beside(&args.out)?;
    let (finished, report) = fetch(&candidates, &http, &ui.download(), |decoder| {
        let file = std::fs::File::create(tmp.path())
            .with_context(|| format!("cannot create {}", tmp.path().display()))?;
        let mut gz = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(256 * 1024, file),
            flate2::Compression::default(),
        );
        let report = repack::repack(decoder, &mut gz, &extras)?;
        let file = gz
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .context("cannot write the package")?;
        file.sync_all().context("cannot write the package")?;
        Ok::<_, anyhow::Error>(report)
    })?;
    if let (Some(no), false) = (&report.no_systemd, args.without_systemd) {
        // The staged file goes with `tmp`: nothing is left.
        bail!(
            "not packing {what}: the image has {no}; choose an image with systemd, or pack it \
             as a plain distro with --without-systemd"
        );
    }
    let out = tmp.commit()?;
    if let Some(uid) = report.default_uid {
        ui.status(format!(
            "Its first start creates the user WSL logs in as with uid {uid} \
             (the first free one of the image){}",
            if args.without_systemd {
                "; distrod is not enabled in it (--without-systemd): its sessions run \
                 without systemd"
            } else {
                ""
            }
        ));
    }
    ui.status(format!(
        "Wrote {}: {} entries (sha256 of the image {}{}) in {:.1}s; install it on Windows \
         with `wsl --install --from-file {}`",
        out.display(),
        report.entries,
        &finished.sha256[..16],
        if finished.from_cache {
            ", from the cache"
        } else {
            ""
        },
        started.elapsed().as_secs_f64(),
        out.file_name().unwrap_or_default().to_string_lossy()
    ));
    let _ = io::Write::flush(&mut io::stderr());
    Ok(ExitCode::SUCCESS)
}

/// "debian" -> "Debian".
pub fn default_name(distro: &str) -> String {
    let mut c = distro.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => "Distrod".into(),
    }
}
