//! libFuzzer's entry point for the `config` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/config.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::config::run(data));
