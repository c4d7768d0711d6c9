//! `dq_checks`: data-quality rules evaluated on rows.
//!
//! Rows come from `clickhouse_query` when the task grants `clickhouse` and the config has a
//! `query`, or from an upstream task's output otherwise. Every check runs (one failure does
//! not hide the others); the report is the task's output. Any failed check fails the task
//! fatally, with the report in the log: bad data does not get better on retry. With
//! `report_only`, the task succeeds and its output carries the verdict instead.

mod checks;
mod compare;
mod config;
mod rows;
mod time;

use sluice_sdk::{TaskContext, TaskError};

// Rows come from upstream outputs when the task grants no ClickHouse connection.
sluice_sdk::optional_capabilities!(b"clickhouse");

fn main() {
    sluice_sdk::run(evaluate)
}

fn evaluate(ctx: &TaskContext) -> Result<serde_json::Value, TaskError> {
    let config: config::Config = ctx.config()?;
    let rows = rows::fetch(ctx, &config.source)?;
    let mut results = Vec::with_capacity(config.checks.len());
    for check in &config.checks {
        results.push(checks::evaluate(check, &rows, ctx)?);
    }
    let failed: Vec<&checks::CheckResult> = results.iter().filter(|r| !r.passed).collect();
    let report = serde_json::json!({
        "passed": failed.is_empty(),
        "rows": rows.len(),
        "checks": results,
    });
    if failed.is_empty() {
        sluice_sdk::info!("{} checks passed on {} rows", results.len(), rows.len());
        return Ok(report);
    }
    if config.report_only {
        sluice_sdk::warn!(
            "{} of {} checks failed on {} rows (report only: the task succeeds, its output says so)",
            failed.len(),
            results.len(),
            rows.len()
        );
        return Ok(report);
    }
    let names: Vec<String> = failed
        .iter()
        .map(|r| {
            if r.summary.is_empty() {
                r.name.clone()
            } else {
                format!("{} ({})", r.name, r.summary)
            }
        })
        .collect();
    Err(TaskError::fatal(format!(
        "{} of {} data-quality checks failed: {}",
        failed.len(),
        results.len(),
        names.join("; ")
    ))
    .with_details(report))
}
