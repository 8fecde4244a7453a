//! libFuzzer's entry point for the `xz` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/xz.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::xz::run(data));
