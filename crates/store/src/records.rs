//! What the store keeps, one record type per tree.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use sluice_core::{RunState, RunStatus};

/// Per-DAG scheduling state (not the DAG's definition, which lives in the DAG file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagRecord {
    pub paused: bool,
    /// Hash of the DAG version last seen.
    pub version: String,
    /// Where the next scheduled interval starts: the end of the last one created.
    pub next_start: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A run with its task instances.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub dag_version: String,
    /// `--conf` of a triggered run.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub conf: serde_json::Value,
    /// The DAG's readiness gate for this run: its state and the figures it was decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateRecord>,
    /// SLA events raised for this run (each once).
    #[serde(default, skip_serializing_if = "sluice_core::sla::SlaMarks::is_empty")]
    pub sla: sluice_core::sla::SlaMarks,
    /// The assets the run reads (`consumes`): whether they are all materialized, what it
    /// still waits for, and which version it read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<InputsRecord>,
}

/// Where a run's inputs stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputsStatus {
    /// Some interval it reads is not materialized: its tasks are deferred.
    Waiting,
    /// Every interval it reads is materialized (latched until the run runs again).
    Ready,
    /// Still missing after the consumer's `timeout`: the run failed.
    TimedOut,
}

/// An interval of an asset a waiting run reads and nothing wrote yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingInput {
    pub asset: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// Most missing intervals kept on a run (their count goes on).
pub const MAX_MISSING_SHOWN: usize = 8;

/// A run's inputs: since when it waits, what is missing, what it read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputsRecord {
    pub status: InputsStatus,
    pub waiting_since: DateTime<Utc>,
    pub decided_at: DateTime<Utc>,
    /// When it became ready, the materialization sequence then: every version it read is
    /// below it, so a version at or above it is a rewrite it did not see.
    #[serde(default)]
    pub snapshot: u64,
    /// The first missing intervals (at most [`MAX_MISSING_SHOWN`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingInput>,
    #[serde(default)]
    pub missing_count: usize,
    /// Why the inputs cannot be known (a mapping that does not land), when so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Times the interval ran again because an input was rewritten.
    #[serde(default)]
    pub upstream_reruns: u32,
}

impl InputsRecord {
    /// Whether the run read its inputs before version `seq` was written (so a write of an
    /// interval it reads, numbered `seq`, makes it stale).
    pub fn read_before(&self, seq: u64) -> bool {
        self.status == InputsStatus::Ready && seq >= self.snapshot
    }

    /// "waiting for warehouse.agg_15m [10:45, 11:00): not materialized yet (1 of 4 missing)".
    pub fn describe(&self) -> String {
        match self.status {
            InputsStatus::Ready => format!(
                "inputs ready (read up to version {})",
                self.snapshot.saturating_sub(1)
            ),
            InputsStatus::Waiting | InputsStatus::TimedOut => {
                if let Some(problem) = &self.problem {
                    return format!("inputs cannot be resolved: {problem}");
                }
                let shown: Vec<String> = self
                    .missing
                    .iter()
                    .map(|m| {
                        format!(
                            "{} {}–{}",
                            m.asset,
                            m.start.to_rfc3339(),
                            m.end.to_rfc3339()
                        )
                    })
                    .collect();
                let more = self.missing_count.saturating_sub(self.missing.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("{}{more} not materialized yet", shown.join(", "))
            }
        }
    }
}

impl RunRecord {
    /// How many of the run's task instances are in each state, by state name: the one count
    /// the CLI and the API both show.
    pub fn task_counts(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for task in &self.state.tasks {
            *counts.entry(task.state.name()).or_insert(0) += 1;
        }
        counts
    }
}

/// Where a run's gate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    /// Closed: the run's tasks are deferred.
    Waiting,
    /// Opened (latched for the run).
    Open,
    /// Still closed after its timeout: the run failed.
    TimedOut,
}

/// A run's gate: since when it waits, and the last decision with its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateRecord {
    pub status: GateStatus,
    /// When the run began waiting (the timeout counts from this or the interval's end,
    /// whichever is later).
    pub waiting_since: DateTime<Utc>,
    /// When the last decision was made.
    pub decided_at: DateTime<Utc>,
    /// Why it is closed (or timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The figures of the last decision (none while the topic could not be seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub figures: Option<sluice_core::gate::GateFigures>,
    /// Events that arrived for this interval after its gate opened.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub late_events: u64,
    /// Late events arrived and the DAG reprocesses late data: run again after success.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_pending: bool,
    /// Times the interval was run again for late data (bounded by the gate's
    /// `max_late_reprocessing`).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub late_reprocessed: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptResult {
    Success,
    Failed,
    /// The scheduler stopped while the attempt ran; found and closed at the next start.
    FailedByCrash,
    /// Cleared or cancelled while running.
    Cancelled,
}

/// One try of one task instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub task: String,
    pub try_number: u32,
    /// `<dag>/<run_id>/<task>/<try>`.
    pub idempotency_key: String,
    pub executor: String,
    /// What the executor knows it by: a process id, an EMR step id.
    pub handle: Option<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub result: Option<AttemptResult>,
    pub error: Option<String>,
    pub log: PathBuf,
    /// The DAG version the attempt ran (a clear after a fix runs the new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dag_version: Option<String>,
    /// The task's templated fields as this attempt rendered them (Airflow's rendered
    /// template fields), secrets masked, each cut to a bound: field path → text.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rendered: std::collections::BTreeMap<String, String>,
}

/// One state transition, appended to the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub at: DateTime<Utc>,
    pub dag: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub try_number: Option<u32>,
    /// Why, when the move was not the loop's own (a rerun for a rewritten input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The interval ledger: for every DAG and interval, whether it was processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub interval_end: DateTime<Utc>,
    pub run_id: String,
    pub status: RunStatus,
    /// Times the interval's run reached success (a rerun after a clear counts again).
    pub successes: u32,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reprocess {
    /// Intervals that already have a run are left alone.
    None,
    /// Intervals whose run failed are cleared and run again.
    Failed,
    /// Every interval runs again, finished or not.
    Completed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackfillStatus {
    Running,
    /// Creates no new runs until resumed; runs already started go on.
    Paused,
    Done,
    Cancelled,
}

impl BackfillStatus {
    /// Running or paused: the DAG's one backfill, which a new one must wait for.
    pub fn is_open(self) -> bool {
        matches!(self, BackfillStatus::Running | BackfillStatus::Paused)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillRecord {
    pub dag: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub reprocess: Reprocess,
    pub max_active_runs: usize,
    /// Start of the next interval to create a run for.
    pub next_start: Option<DateTime<Utc>>,
    pub total: usize,
    pub status: BackfillStatus,
    pub created_at: DateTime<Utc>,
}

/// The file a DAG version was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DagSource {
    pub path: PathBuf,
    pub text: String,
}

/// A DAG file that did not load at the scheduler's last read of its folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportError {
    pub file: PathBuf,
    /// Where the first error is (1-based), when it has a place.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<usize>,
    /// Every problem, one line each (`file:line:col: error[code]: message`).
    pub message: String,
    /// The DAG the file defined when it last loaded: it keeps that version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_dag: Option<String>,
    pub seen_at: DateTime<Utc>,
}
