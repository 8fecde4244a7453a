//! libFuzzer's entry point for the `catalog` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/catalog.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::catalog::run(data));
