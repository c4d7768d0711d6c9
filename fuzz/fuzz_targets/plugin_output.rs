//! Fuzz target: see `sluice_fuzz::plugin_output` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::plugin_output(data));
