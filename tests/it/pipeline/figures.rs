//! What the pipeline test reads back to prove its point: per-interval counts from both
//! layers, and how long each task took (the SLA budget's measured terms).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sluice_demo::services::clickhouse_text;
use sluice_store::{AttemptRecord, AttemptResult, Store};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// `window start → number` from a two-column TSV answer whose first column is a
/// ClickHouse DateTime (`2025-09-01 10:15:00`).
pub fn per_window(
    warehouse: &clickhouse::Client,
    sql: &str,
) -> Result<BTreeMap<DateTime<Utc>, u64>, Error> {
    let mut counts = BTreeMap::new();
    for line in clickhouse_text(warehouse, sql)?.lines() {
        let (window, n) = line.split_once('\t').ok_or("expected two columns")?;
        let at = chrono::NaiveDateTime::parse_from_str(window, "%Y-%m-%d %H:%M:%S")?.and_utc();
        counts.insert(at, n.parse()?);
    }
    Ok(counts)
}

/// Every attempt of a run, oldest first.
pub fn attempts(store: &Store, dag: &str, at: DateTime<Utc>) -> Result<Vec<AttemptRecord>, Error> {
    let mut attempts = store.attempts_of_run(dag, at)?;
    attempts.sort_by_key(|a| (a.task.clone(), a.try_number));
    Ok(attempts)
}

/// The tries of a task: `ok`, `FAILED`, joined by `→` (e.g. `FAILED→ok`).
pub fn tries(attempts: &[AttemptRecord], task: &str) -> String {
    attempts
        .iter()
        .filter(|a| a.task == task)
        .map(|a| match a.result {
            Some(AttemptResult::Success) => "ok",
            Some(AttemptResult::Failed | AttemptResult::FailedByCrash) => "FAILED",
            Some(AttemptResult::Cancelled) => "cancelled",
            None => "running",
        })
        .collect::<Vec<_>>()
        .join("→")
}

/// Seconds the successful attempt of each task took, over many runs.
#[derive(Default)]
pub struct Durations(BTreeMap<String, Vec<f64>>);

impl Durations {
    pub fn add(&mut self, attempts: &[AttemptRecord]) {
        for a in attempts {
            if let (Some(AttemptResult::Success), Some(end)) = (a.result, a.ended_at) {
                let seconds = (end - a.started_at).num_milliseconds() as f64 / 1000.0;
                self.0.entry(a.task.clone()).or_default().push(seconds);
            }
        }
    }

    /// `task: median / max seconds over n`.
    pub fn summary(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(task, seconds)| {
                let mut sorted = seconds.clone();
                sorted.sort_by(f64::total_cmp);
                let median = sorted[sorted.len() / 2];
                let max = sorted[sorted.len() - 1];
                format!(
                    "{task}: median {median:.1} s, max {max:.1} s over {} runs",
                    sorted.len()
                )
            })
            .collect()
    }
}
