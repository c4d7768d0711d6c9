//! Reports read from the store, computed here once and rendered by the CLI and the API
//! alike: the audit of a range of intervals (`sluice audit`, `GET /api/v1/dags/{dag}/audit`)
//! and the SLA report (`sluice sla report`, `GET /api/v1/dags/{dag}/sla`): the processing
//! latency of a DAG's scheduled runs (interval end → success) as p50/p95/max, and the SLA
//! events raised with their deliveries.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{BackfillRecord, RunRecord, Store, StoreError};
use sluice_core::{RunKind, RunStatus};
use sluice_model::spec::Dag;

/// Most intervals one audit lists: a year of 15-minute intervals (366 × 96).
pub const MAX_AUDIT_INTERVALS: usize = 35_136;

/// One interval of an audit.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The ledger's status, or `missing`.
    pub status: String,
    pub run_id: Option<String>,
    pub successes: u32,
    /// It read an input that was written again since (it is out of date until it reruns).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Not processed: missing, failed, still running, or stale.
    pub gap: bool,
}

/// Every whole interval of a DAG's schedule in a range, with its ledger status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditReport {
    pub dag_id: String,
    pub intervals: usize,
    pub gaps: usize,
    pub entries: Vec<AuditEntry>,
}

/// Why an audit could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("DAG `{0}` has no schedule, so it has no intervals to audit")]
    Unscheduled(String),
    #[error("the range holds more than {MAX_AUDIT_INTERVALS} intervals")]
    TooManyIntervals,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuditError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            AuditError::TooManyIntervals => Some("audit it in parts"),
            _ => None,
        }
    }
}

/// A span of time, `[start, end)`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One run as every caller sees it: the CLI's `runs list`/`runs show`, the API, the UI.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunSummary {
    pub dag_id: String,
    pub run_id: String,
    /// `scheduled`, `manual` or `backfill`.
    pub run_type: String,
    /// `queued`, `running`, `success`, `failed`.
    pub state: String,
    pub logical_date: DateTime<Utc>,
    pub data_interval: Interval,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Task instances by state (`success: 3`).
    #[schema(value_type = Object)]
    pub task_counts: std::collections::BTreeMap<&'static str, usize>,
    #[schema(value_type = Object)]
    pub conf: serde_json::Value,
    /// The readiness gate: state, watermark and lag figures of its last decision.
    #[schema(value_type = Option<Object>)]
    pub gate: Option<crate::GateRecord>,
    /// The assets it reads (`consumes`): `waiting` with what is missing, `ready` with the
    /// version read, or `timed_out`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub inputs: Option<crate::InputsRecord>,
    /// The same in one line ("warehouse.agg_15m 10:45–11:00 not materialized yet").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
}

impl RunSummary {
    pub fn of(record: &RunRecord) -> RunSummary {
        let state = &record.state;
        RunSummary {
            dag_id: state.dag_id.clone(),
            run_id: state.run_id.clone(),
            run_type: name_of(&state.kind),
            state: name_of(&state.status),
            logical_date: state.logical_date,
            data_interval: Interval {
                start: state.interval.start,
                end: state.interval.end,
            },
            created_at: record.created_at,
            started_at: record.started_at,
            ended_at: record.ended_at,
            task_counts: record.task_counts(),
            conf: record.conf.clone(),
            gate: record.gate.clone(),
            inputs: record.inputs.clone(),
            waiting_for: record
                .inputs
                .as_ref()
                .filter(|i| i.status != crate::InputsStatus::Ready)
                .map(crate::InputsRecord::describe),
        }
    }
}

/// A serde enum's snake_case name (`RunStatus::Success` → `success`).
pub fn name_of<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The audit of `dag` over `[from, to)`: each whole interval from the DAG's `start` on.
pub fn audit(
    store: &Store,
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<AuditReport, AuditError> {
    let schedule = dag
        .schedule
        .as_ref()
        .ok_or_else(|| AuditError::Unscheduled(dag.dag.clone()))?;
    let ledger: std::collections::BTreeMap<_, _> = store
        .ledger_between(&dag.dag, from, to)?
        .into_iter()
        .collect();
    // An interval is complete only if it ran after the last write of everything it read.
    let stale: std::collections::BTreeSet<DateTime<Utc>> = if dag.consumes.is_empty() {
        Default::default()
    } else {
        store
            .stale_intervals(Some(&dag.dag), usize::MAX)?
            .into_iter()
            .map(|s| s.interval_start)
            .filter(|s| *s >= from && *s < to)
            .collect()
    };
    let mut entries = Vec::new();
    for interval in schedule
        .intervals(dag.timezone.tz(), from.max(dag.start.unwrap_or(from)))
        .take_while(|i| i.end <= to)
    {
        if entries.len() == MAX_AUDIT_INTERVALS {
            return Err(AuditError::TooManyIntervals);
        }
        let entry = ledger.get(&interval.start);
        entries.push(AuditEntry {
            start: interval.start,
            end: interval.end,
            status: entry.map_or_else(|| "missing".to_owned(), |e| e.status.name().to_owned()),
            run_id: entry.map(|e| e.run_id.clone()),
            successes: entry.map_or(0, |e| e.successes),
            stale: stale.contains(&interval.start),
            gap: entry.is_none_or(|e| e.status != RunStatus::Success)
                || stale.contains(&interval.start),
        });
    }
    Ok(AuditReport {
        dag_id: dag.dag.clone(),
        intervals: entries.len(),
        gaps: entries.iter().filter(|e| e.gap).count(),
        entries,
    })
}

/// How far a backfill has come: its intervals whose run finished since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct BackfillProgress {
    pub total: usize,
    /// Intervals whose run ended (success or failed) since the backfill was created.
    pub done: usize,
    pub succeeded: usize,
    pub failed: usize,
}

impl std::fmt::Display for BackfillProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} interval(s) done: {} succeeded, {} failed",
            self.done, self.total, self.succeeded, self.failed
        )
    }
}

/// A backfill's progress from the ledger: an interval counts once its run finished after
/// the backfill was created, or when the backfill leaves its earlier outcome alone
/// (`reprocess: none` leaves every finished run, `failed` leaves successes).
pub fn backfill_progress(
    store: &Store,
    backfill: &BackfillRecord,
) -> Result<BackfillProgress, StoreError> {
    let mut progress = BackfillProgress {
        total: backfill.total,
        ..BackfillProgress::default()
    };
    for (_, entry) in store.ledger_between(&backfill.dag, backfill.from, backfill.to)? {
        let left_alone = match backfill.reprocess {
            crate::Reprocess::None => true,
            crate::Reprocess::Failed => entry.status == RunStatus::Success,
            crate::Reprocess::Completed => false,
        };
        // A backfill covers whole intervals ending by `to`; the one straddling it is not its.
        if entry.interval_end > backfill.to
            || !entry.status.is_finished()
            || !(left_alone || entry.updated_at >= backfill.created_at)
        {
            continue;
        }
        match entry.status {
            RunStatus::Success => progress.succeeded += 1,
            _ => progress.failed += 1,
        }
        progress.done += 1;
    }
    Ok(progress)
}

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
    use super::{BackfillProgress, backfill_progress, percentile};
    use crate::{BackfillRecord, BackfillStatus, LedgerEntry, Reprocess, Store, Writes};
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use sluice_core::RunStatus;

    fn hour(h: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default()
            + TimeDelta::hours(h)
    }

    /// Four hourly intervals 00–04; the backfill started at 10:00. Before it: 00 succeeded,
    /// 01 failed. Since: 02 succeeded, 03 failed, 04 (past `to`) succeeded, 05 running.
    fn progress_of(reprocess: Reprocess) -> Result<BackfillProgress, Box<dyn std::error::Error>> {
        let root = std::env::temp_dir().join(format!(
            "sluice-progress-{reprocess:?}-{}",
            std::process::id()
        ));
        let store = Store::temporary(&root)?;
        let mut writes = Writes::default();
        let entries = [
            (0, RunStatus::Success, 5),
            (1, RunStatus::Failed, 5),
            (2, RunStatus::Success, 11),
            (3, RunStatus::Failed, 11),
            (4, RunStatus::Success, 11),
            (5, RunStatus::Running, 11),
        ];
        for (start, status, updated) in entries {
            let entry = LedgerEntry {
                interval_end: hour(start + 1),
                run_id: format!("r{start}"),
                status,
                successes: u32::from(status == RunStatus::Success),
                updated_at: hour(updated),
            };
            writes.put_ledger("d", hour(start), &entry);
        }
        store.apply(writes)?;
        let backfill = BackfillRecord {
            dag: "d".into(),
            from: hour(0),
            to: hour(4) + TimeDelta::minutes(30),
            reprocess,
            max_active_runs: 1,
            next_start: None,
            total: 4,
            status: BackfillStatus::Running,
            created_at: hour(10),
        };
        let progress = backfill_progress(&store, &backfill)?;
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
        Ok(progress)
    }

    #[test]
    fn backfill_progress_counts_only_what_the_backfill_decided()
    -> Result<(), Box<dyn std::error::Error>> {
        let counts = |p: BackfillProgress| (p.done, p.succeeded, p.failed);
        // none: every finished run in range stands, earlier ones included.
        assert_eq!(counts(progress_of(Reprocess::None)?), (4, 2, 2));
        // failed: earlier successes stand; the earlier failure waits for its rerun.
        assert_eq!(counts(progress_of(Reprocess::Failed)?), (3, 2, 1));
        // completed: only runs finished since the backfill began.
        assert_eq!(counts(progress_of(Reprocess::Completed)?), (2, 1, 1));
        Ok(())
    }

    #[test]
    fn every_backfill_stays_in_the_history_newest_first() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = std::env::temp_dir().join(format!("sluice-bf-history-{}", std::process::id()));
        let store = Store::temporary(&root)?;
        let backfill = |dag: &str, created: i64| BackfillRecord {
            dag: dag.into(),
            from: hour(0),
            to: hour(created),
            reprocess: Reprocess::None,
            max_active_runs: 1,
            next_start: None,
            total: 1,
            status: BackfillStatus::Running,
            created_at: hour(created),
        };
        store.put_backfill(&backfill("d", 1))?;
        // The loop writes through its group commit; a later write of one backfill (its
        // state) replaces its history entry, not adds one.
        let mut writes = Writes::default();
        writes.put_backfill(&backfill("d", 2));
        store.apply(writes)?;
        let mut done = backfill("d", 1);
        done.status = BackfillStatus::Done;
        store.put_backfill(&done)?;
        store.put_backfill(&backfill("d2", 3))?;
        store.put_backfill(&backfill("d", 4))?;
        let created = |list: Vec<BackfillRecord>| {
            list.iter()
                .map(|b| (b.created_at, b.status))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            created(store.backfill_history("d", 10)?),
            [
                (hour(4), BackfillStatus::Running),
                (hour(2), BackfillStatus::Running),
                (hour(1), BackfillStatus::Done),
            ]
        );
        assert_eq!(store.backfill_history("d", 2)?.len(), 2);
        assert_eq!(
            created(store.backfill_history("d2", 10)?),
            [(hour(3), BackfillStatus::Running)]
        );
        // `backfill` is the last written: the latest record under the DAG's own key.
        assert_eq!(store.backfill("d")?.map(|b| b.created_at), Some(hour(4)));
        drop(store);
        let _ = std::fs::remove_dir_all(&root);
        Ok(())
    }

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
