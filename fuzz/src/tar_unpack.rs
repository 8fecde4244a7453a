//! `distrod create`'s unpacker: a tar stream, as it comes out of the decompressor, unpacked
//! by `image::unpack::unpack` (through the tar-entry walker it shares with the repacker).
//!
//! The tar comes from outside: an image server, a mirror, or any file or URL given to
//! `--image`, and it is read before its checksum can be verified (the bytes stream through
//! the hash and the unpacker at once). Every input is unpacked into a fresh directory
//! `dest` under the temporary directory, beside an empty directory `outside`; afterwards
//! nothing but `dest` may have changed there (the unpacker must never write outside its
//! destination, whatever `..`, absolute paths, symlinks or hard links the archive holds).
//! The options are those `create` uses for the user running the fuzzer (as root: owners,
//! xattrs and device nodes, all inside `dest`). Each input is also unpacked with its header
//! checksums repaired (see [`crate::fixup`]).

use std::fs;

use distrod::image::unpack::{UnpackOptions, unpack};

use crate::scratch::Scratch;

pub fn run(data: &[u8]) {
    unpack_checked(data);
    if let Some(fixed) = crate::fixup::tar(data) {
        unpack_checked(&fixed);
    }
}

fn unpack_checked(data: &[u8]) {
    let scratch = Scratch::new("unpack");
    let dest = scratch.path().join("dest");
    let outside = scratch.path().join("outside");
    fs::create_dir(&dest).expect("create dest");
    fs::create_dir(&outside).expect("create outside");

    let opts = UnpackOptions::for_current_user();
    let result = unpack(data, &dest, &opts);
    if let Ok(report) = &result {
        assert!(
            report.files <= report.entries,
            "more files than entries: {report:?}"
        );
    }

    let mut beside: Vec<String> = fs::read_dir(scratch.path())
        .expect("list the scratch directory")
        .map(|e| {
            e.expect("read the scratch directory")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    beside.sort();
    assert_eq!(
        beside,
        ["dest", "outside"],
        "the unpacker wrote beside its destination (result: {result:?})"
    );
    let meta = fs::symlink_metadata(&outside).expect("stat outside");
    assert!(meta.is_dir(), "`outside` was replaced (result: {result:?})");
    assert!(
        fs::read_dir(&outside)
            .expect("list outside")
            .next()
            .is_none(),
        "the unpacker wrote into a directory outside its destination (result: {result:?})"
    );
}
