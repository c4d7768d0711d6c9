//! Fuzz target: see `sluice_fuzz::api_requests` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::api_requests(data));
