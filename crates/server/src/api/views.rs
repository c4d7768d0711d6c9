//! What the API returns: views of the store's records, named and shaped for callers
//! (Airflow's REST API names where there is one), independent of how the store keeps them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use sluice_core::DagPlan;
use sluice_store::{AttemptRecord, BackfillRecord, RunRecord};

#[derive(Debug, Serialize, ToSchema)]
pub struct DagSummary {
    pub dag_id: String,
    pub description: Option<String>,
    pub owner: Option<String>,
    pub tags: Vec<String>,
    /// The cron expression, or none for a DAG run only by triggers.
    pub schedule: Option<String>,
    pub timezone: String,
    pub is_paused: bool,
    /// The next interval a scheduled run will be created for.
    pub next_interval: Option<Interval>,
    /// The latest runs, newest first (at most 10).
    pub recent_runs: Vec<RunBrief>,
    /// Hash of the DAG version the scheduler runs.
    pub version: String,
    /// The DAG's file no longer loads: it runs its last good version (`version`) until the
    /// file is fixed; the first problem, `file:line:col: error[code]: message`.
    pub import_error: Option<String>,
}

/// A DAG file that did not load at the scheduler's last read of its folder.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorView {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Every problem, one per line: `file:line:col: error[code]: message`.
    pub message: String,
    /// The DAG the file defined when it last loaded, which keeps that version.
    pub kept_dag: Option<String>,
    pub seen_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportErrorList {
    pub import_errors: Vec<ImportErrorView>,
}

pub fn import_error_view(e: &sluice_store::ImportError) -> ImportErrorView {
    ImportErrorView {
        file: e.file.display().to_string(),
        line: e.line,
        column: e.column,
        message: e.message.clone(),
        kept_dag: e.kept_dag.clone(),
        seen_at: e.seen_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunBrief {
    pub run_id: String,
    pub state: String,
    pub logical_date: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagList {
    pub dags: Vec<DagSummary>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskSpec {
    pub task_id: String,
    /// `noop`, `command`, `wasm`, `spark`, `clickhouse`.
    pub kind: String,
    pub upstream: Vec<String>,
    pub retries: u32,
    pub pool: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DagDetail {
    #[serde(flatten)]
    pub summary: DagSummary,
    pub tasks: Vec<TaskSpec>,
    pub max_active_runs: usize,
    pub catchup: bool,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    /// The DAG as the scheduler loaded it (the YAML's model).
    #[schema(value_type = Object)]
    pub definition: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceView {
    pub task_id: String,
    /// `none`, `scheduled`, `running`, `success`, `failed`, `up_for_retry`,
    /// `upstream_failed`, `skipped`, `deferred`.
    pub state: String,
    pub try_number: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub retry_at: Option<DateTime<Utc>>,
    /// Why it is in its state (a failure's error, a skip's reason).
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunDetail {
    #[serde(flatten)]
    pub run: RunSummary,
    pub task_instances: Vec<TaskInstanceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunSummary>,
    /// Runs matching the filters (all pages).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    pub try_number: u32,
    pub executor: String,
    /// What the executor knows it by: a process id, an EMR step id, a plugin's hash.
    pub handle: Option<String>,
    /// `<dag>/<run_id>/<task>/<try>`: the key remote side effects are named by.
    pub idempotency_key: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    /// `success`, `failed`, `failed_by_crash`, `cancelled`; none while running.
    pub result: Option<String>,
    pub error: Option<String>,
    /// The DAG version the attempt ran (a clear after a fix runs the new one).
    pub dag_version: Option<String>,
    /// The task's templated fields as this attempt rendered them (field → text), secrets
    /// masked (a field named like a secret is `***`), each at most 16 KiB and 64 KiB in
    /// all; empty when the task has no template.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rendered_fields: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TaskInstanceDetail {
    #[serde(flatten)]
    pub instance: TaskInstanceView,
    pub dag_id: String,
    pub run_id: String,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LogChunk {
    pub try_number: u32,
    /// Byte offset of `text` in the log.
    pub offset: u64,
    /// Where the next read continues (`offset` of the following call).
    pub next_offset: u64,
    /// The log's size now.
    pub size: u64,
    pub text: String,
    /// The attempt has ended: no more lines will come.
    pub complete: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillView {
    pub dag_id: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// `none`, `failed` or `completed`.
    pub reprocess: String,
    pub max_active_runs: usize,
    /// `running`, `paused`, `done`, `cancelled`.
    pub state: String,
    pub total: usize,
    /// Start of the next interval it will create a run for.
    pub next_start: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Intervals done so far, from the ledger.
    pub progress: sluice_store::reports::BackfillProgress,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillList {
    pub backfills: Vec<BackfillView>,
}

pub use sluice_store::reports::{AuditEntry, AuditReport, Interval, RunSummary, name_of};

#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Triggered {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub message: String,
}

/// The task instances of a run, named by the plan of the run's DAG version; an attempt's end
/// is the latest attempt's.
pub fn task_instances(
    record: &RunRecord,
    plan: &DagPlan,
    attempts: &[AttemptRecord],
) -> Vec<TaskInstanceView> {
    record
        .state
        .tasks
        .iter()
        .zip(&plan.tasks)
        .map(|(instance, task)| {
            let last = attempts
                .iter()
                .filter(|a| a.task == task.id)
                .max_by_key(|a| a.try_number);
            TaskInstanceView {
                task_id: task.id.clone(),
                state: instance.state.name().to_owned(),
                try_number: instance.try_number,
                started_at: instance.started_at,
                ended_at: last.and_then(|a| a.ended_at),
                retry_at: instance.retry_at,
                reason: instance.reason.clone(),
            }
        })
        .collect()
}

pub fn attempt_view(a: &AttemptRecord) -> AttemptView {
    AttemptView {
        try_number: a.try_number,
        executor: a.executor.clone(),
        handle: a.handle.clone(),
        idempotency_key: a.idempotency_key.clone(),
        started_at: a.started_at,
        ended_at: a.ended_at,
        duration_seconds: a
            .ended_at
            .map(|end| (end - a.started_at).num_milliseconds() as f64 / 1000.0),
        result: a.result.as_ref().map(name_of),
        error: a.error.clone(),
        dag_version: a.dag_version.clone(),
        rendered_fields: a.rendered.clone(),
    }
}

pub fn backfill_view(b: &BackfillRecord, store: &sluice_store::Store) -> BackfillView {
    BackfillView {
        dag_id: b.dag.clone(),
        from: b.from,
        to: b.to,
        reprocess: name_of(&b.reprocess),
        max_active_runs: b.max_active_runs,
        state: name_of(&b.status),
        total: b.total,
        next_start: b.next_start,
        created_at: b.created_at,
        // A store error leaves the progress unknown (zeros), not the backfill unlisted.
        progress: sluice_store::reports::backfill_progress(store, b).unwrap_or_default(),
    }
}
