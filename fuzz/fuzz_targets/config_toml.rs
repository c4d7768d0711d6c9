//! Fuzz target: see `sluice_fuzz::config_toml` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::config_toml(data));
