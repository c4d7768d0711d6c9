//! Fuzz target: see `sluice_fuzz::dag_yaml` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::dag_yaml(data));
