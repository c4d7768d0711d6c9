//! `sluice-sdk`: what plugin authors depend on to write Sluice tasks as WASI command modules.
//!
//! The plugin ABI (task context as JSON on stdin, output as JSON on stdout, exit codes,
//! host functions under the `sluice` import module) is specified in DESIGN.md; the SDK's
//! API (`sluice_sdk::run`, typed context, `TaskError::retryable/fatal`, host-function
//! wrappers) arrives with the WASM plugin issue. This crate is a workspace member now so the
//! layout and the build are in place from the start.
