//! Sluice: a workflow DAG engine for batch data pipelines.
//!
//! See ARCHITECTURE.md at the repository root for where each concept lives.

pub mod api;
pub mod cli;
pub mod clickhouse;
pub mod config;
pub mod connections;
pub mod core;
pub mod executor;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod reports;
pub mod schedule;
pub mod scheduler;
pub mod spec;
pub mod store;
pub mod template;
pub mod trigger;
pub mod ui;
