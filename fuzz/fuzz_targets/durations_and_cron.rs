//! Fuzz target: see `sluice_fuzz::durations_and_cron` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::durations_and_cron(data));
