//! `sluice-sdk`: write Sluice task plugins in Rust.
//!
//! A plugin is a WASI preview 1 command module. Sluice writes the task context to its stdin
//! as JSON, reads its JSON output from stdout, keeps stderr as the attempt log, and reads
//! the exit code: 0 success, 75 retryable failure, anything else fatal. This crate hides
//! that protocol:
//!
//! ```no_run
//! use serde::Deserialize;
//! use sluice_sdk::{TaskContext, TaskError};
//!
//! #[derive(Deserialize)]
//! struct Config {
//!     table: String,
//! }
//!
//! fn main() {
//!     sluice_sdk::run(|ctx: &TaskContext| {
//!         let config: Config = ctx.config()?;
//!         sluice_sdk::info!("checking {} for {}", config.table, ctx.data_interval.start);
//!         if config.table.is_empty() {
//!             return Err(TaskError::fatal("`table` is empty"));
//!         }
//!         Ok(serde_json::json!({ "table": config.table }))
//!     })
//! }
//! ```
//!
//! Host functions ([`host`]) need the task to grant a capability: `kv` for the key-value
//! store, `clickhouse` for queries. Build for `wasm32-wasip1` (or `wasm32-wasi` on Rust
//! before 1.78); see the crate's README.

mod context;
mod error;
pub mod host;
pub mod log;
mod run;

pub use context::{DataInterval, TaskContext};
pub use error::{HostError, TaskError};
pub use run::{execute, run, Completion, FATAL_EXIT, RETRYABLE_EXIT};

/// Declares capabilities the plugin uses when the task grants them and can run without,
/// as a byte string of comma-separated names: `sluice_sdk::optional_capabilities!(b"clickhouse");`
/// at the top level of the plugin. Without it, a plugin that calls a host function of an
/// ungranted capability fails to instantiate; with it, the call returns a "not granted"
/// [`HostError`] instead. (Sluice reads the list from the module's `sluice.optional`
/// custom section.)
#[macro_export]
macro_rules! optional_capabilities {
    ($names:literal) => {
        #[link_section = "sluice.optional"]
        #[used]
        static SLUICE_OPTIONAL_CAPABILITIES: [u8; $names.len()] = *$names;
    };
}

/// Re-exported so plugins need not name the same versions.
pub use serde_json;
