//! libFuzzer's entry point for the `tar_unpack` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/tar_unpack.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::tar_unpack::run(data));
