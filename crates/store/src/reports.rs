//! Reports read from the store: the SLA report (`sluice sla report`, `GET
//! /api/v1/dags/{dag}/sla`): the processing latency of a DAG's scheduled runs (interval end
//! → success) as p50/p95/max, and the SLA events raised with their deliveries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{Store, StoreError};
use sluice_core::{RunKind, RunStatus};

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LatencySummary {
    /// Scheduled runs that succeeded, with logical dates in the range.
    pub runs: usize,
    pub p50_seconds: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaMiss {
    pub run_id: String,
    /// `warn` or `breach`.
    pub kind: String,
    pub due: DateTime<Utc>,
    pub raised_at: DateTime<Utc>,
    pub reason: String,
    /// Per notification target: `delivered`, `pending` or `failed: <last error>`.
    #[schema(value_type = Object)]
    pub deliveries: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SlaReport {
    pub dag_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub latency: LatencySummary,
    pub warnings: usize,
    pub breaches: usize,
    pub misses: Vec<SlaMiss>,
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

pub fn sla_report(
    store: &Store,
    dag: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<SlaReport, StoreError> {
    let mut latencies = Vec::new();
    for run in store.runs_between(dag, from, to) {
        let run = run?;
        if run.state.kind == RunKind::Scheduled
            && run.state.status == RunStatus::Success
            && let Some(ended) = run.ended_at
        {
            latencies.push((ended - run.state.interval.end).num_milliseconds() as f64 / 1000.0);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let events = store.sla_events_between(dag, from, to)?;
    let misses: Vec<SlaMiss> = events
        .iter()
        .map(|e| SlaMiss {
            run_id: e.run_id.clone(),
            kind: e.kind.name().to_owned(),
            due: e.due,
            raised_at: e.raised_at,
            reason: e.reason.clone(),
            deliveries: e
                .deliveries
                .iter()
                .map(|d| {
                    let state = if d.delivered_at.is_some() {
                        "delivered".to_owned()
                    } else if d.gave_up {
                        format!("failed: {}", d.last_error.clone().unwrap_or_default())
                    } else {
                        "pending".to_owned()
                    };
                    (d.target.clone(), serde_json::Value::String(state))
                })
                .collect(),
        })
        .collect();
    Ok(SlaReport {
        dag_id: dag.to_owned(),
        from,
        to,
        latency: LatencySummary {
            runs: latencies.len(),
            p50_seconds: percentile(&latencies, 50.0),
            p95_seconds: percentile(&latencies, 95.0),
            max_seconds: latencies.last().copied(),
        },
        warnings: misses.iter().filter(|m| m.kind == "warn").count(),
        breaches: misses.iter().filter(|m| m.kind == "breach").count(),
        misses,
    })
}

#[cfg(test)]
mod tests {
    use super::percentile;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(10.0));
        assert_eq!(percentile(&values, 95.0), Some(19.0));
        assert_eq!(percentile(&values, 100.0), Some(20.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
