//! libFuzzer's entry point for the `content_range` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/content_range.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::content_range::run(data));
