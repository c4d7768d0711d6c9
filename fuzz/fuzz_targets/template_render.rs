//! Fuzz target: see `sluice_fuzz::template_render` for what it checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice_fuzz::template_render(data));
