//! The fuzz targets of distrod: one module per parser of input that comes from outside
//! distrod (an image server, a downloaded image, a distro's /etc, the kernel's /proc, WSL,
//! the container's systemd, root processes outside it), each with a `run(&[u8])` that feeds the bytes to the real
//! function the product uses, through the `distrod` library.
//!
//! The binaries in `fuzz_targets/` hand libFuzzer's inputs to these functions; the tests in
//! `tests/` run the seed corpus and every saved crash input through them without the fuzzer,
//! under a plain `cargo test`. A target fails by panicking: a panic in distrod's code, or an
//! assertion here about what the code promises (documented behaviour, never an
//! implementation detail).

pub mod fixup;
pub mod scratch;

/// A target's entry point: one input, which it must survive.
pub type Target = fn(&[u8]);

/// Declares each target's module and lists it in [`TARGETS`], so that a target is named
/// once.
macro_rules! targets {
    ($($name:ident),* $(,)?) => {
        $(pub mod $name;)*

        /// Every target by name, as `scripts/fuzz.sh` and the directories
        /// `corpus/<name>/` and `regressions/<name>/` call it.
        pub const TARGETS: &[(&str, Target)] = &[$((stringify!($name), $name::run)),*];
    };
}

targets![
    tar_unpack,
    tar_repack,
    xz,
    catalog,
    config,
    accounts,
    wsl_conf,
    wsl_exe,
    elf,
    procfs,
    content_range,
    status,
    privbus,
];

/// Splits an input that stands for several files at its NUL bytes: the `n`th part is the
/// `n`th file, a missing part a missing file. The seeds of such targets are the real files
/// joined with NULs, which none of these text files contain.
pub fn sections(data: &[u8]) -> Vec<&[u8]> {
    data.split(|&b| b == 0).collect()
}
