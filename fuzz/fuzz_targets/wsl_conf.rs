//! libFuzzer's entry point for the `wsl_conf` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/wsl_conf.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::wsl_conf::run(data));
