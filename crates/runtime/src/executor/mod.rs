//! Executors run attempts; one module per task kind behind the [`Executor`] trait. They
//! report back through a [`Reporter`] as events; the scheduler never waits on them.

pub mod clickhouse;
pub mod command;
pub mod noop;
pub mod orphans;
pub mod spark;
pub mod wasm;

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use sluice_core::Outcome;
use sluice_model::spec::{Duration, TaskKind};

/// One attempt, with its fields already rendered.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub dag_id: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub task_id: String,
    pub try_number: u32,
    /// `<dag>/<run_id>/<task>/<try>`.
    pub idempotency_key: String,
    pub kind: TaskKind,
    pub timeout: Option<Duration>,
    pub log_path: PathBuf,
    /// Working directory when the task sets none.
    pub work_dir: PathBuf,
    /// The run's context for plugins: dag, run, task, try, interval, params, upstream outputs.
    pub context: serde_json::Value,
}

/// What an executor says about an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The attempt runs; `handle` is how to find it again (a pid, an EMR step id).
    Started { handle: Option<String> },
    Finished {
        outcome: Outcome,
        output: Option<serde_json::Value>,
    },
}

/// Identifies the attempt a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptId {
    pub dag_id: String,
    pub logical_date: DateTime<Utc>,
    pub task_id: String,
    pub try_number: u32,
}

/// Where executors' reports go. The scheduler provides it (its loop's inbox); executors
/// know only this, never the loop's own message type.
pub trait ReportSink: Send + Sync {
    /// Delivers a report. A sink whose receiver is gone drops it: that happens only during
    /// shutdown, when the store already says the attempt was running and recovery settles it.
    fn report(&self, attempt: AttemptId, report: Report);
}

/// Sends one attempt's reports.
#[derive(Clone)]
pub struct Reporter {
    pub id: AttemptId,
    pub sink: Arc<dyn ReportSink>,
}

impl Reporter {
    pub fn send(&self, report: Report) {
        self.sink.report(self.id.clone(), report);
    }
}

/// Runs attempts of one kind of task.
pub trait Executor: Send + Sync {
    /// Name recorded on attempts (`noop`, `command`, …).
    fn name(&self) -> &'static str;

    /// Starts an attempt. Must not block: long work goes to a thread or a tokio task, and
    /// every attempt ends with exactly one `Report::Finished`.
    fn start(&self, attempt: Attempt, reporter: Reporter);

    /// Stops an attempt (cleared while running, or the scheduler is shutting down).
    fn cancel(&self, idempotency_key: &str);
}
