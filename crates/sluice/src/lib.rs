//! Sluice: a workflow DAG engine for batch data pipelines. This crate is the `sluice`
//! command line; the layers it drives are crates of their own (see ARCHITECTURE.md).

pub mod cli;
