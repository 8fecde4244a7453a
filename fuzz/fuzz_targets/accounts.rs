//! libFuzzer's entry point for the `accounts` target; what it fuzzes, and why its input comes
//! from outside distrod, is documented in `src/accounts.rs`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distrod_fuzz::accounts::run(data));
