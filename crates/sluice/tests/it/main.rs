//! The `sluice` binary's integration tests, one test binary for the crate (the heavy
//! dependencies link once): each module is one area, run against the real binary, the engine
//! in-process, or the services `scripts/test` starts. Shared support is the `sluice-tests`
//! library (`tests/support/`); `in_process` is the harness for an engine in this process.

mod api;
mod assets;
mod backfill_task;
mod batch_outage;
mod binary;
mod chaos;
mod clickhouse_dq;
mod clickhouse_tasks;
mod config_check;
mod crash_backfill;
mod daily_use;
mod emr_serverless;
mod emr_steps;
mod fault_proxy;
mod ha;
mod in_process;
mod interval_replace;
mod kafka_gates;
mod overload;
mod retries;
mod scheduler_process;
mod sensor;
mod sla_webhooks;
mod state_backup;
mod state_disk_full;
mod store_recovery;
mod trust;
mod ui_browser;
mod wasm_sandbox;
