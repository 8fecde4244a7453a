//! libFuzzer's entry point for the `privbus` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/privbus.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::privbus::run(data));
