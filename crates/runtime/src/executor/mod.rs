//! Executors run attempts; one module per task kind behind the [`Executor`] trait. They
//! report back through a [`Reporter`] as events; the scheduler never waits on them.

mod attempt_log;
mod cancel;
pub mod clickhouse;
pub mod command;
pub mod noop;
pub mod orphans;
pub mod sensor;
pub mod spark;
pub mod task_env;
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
    /// Sends a report, a failure's reason with its secrets masked (the API shows it).
    pub fn send(&self, report: Report) {
        let report = match report {
            Report::Finished {
                outcome: Outcome::Failed { retryable, reason },
                output,
            } => Report::Finished {
                outcome: Outcome::Failed {
                    retryable,
                    reason: crate::masking::mask(&reason).into_owned(),
                },
                output,
            },
            other => other,
        };
        self.sink.report(self.id.clone(), report);
    }

    /// Ends the attempt with a failure no retry can mend.
    pub fn fatal(&self, reason: String) {
        self.send(Report::Finished {
            outcome: Outcome::Failed {
                retryable: false,
                reason,
            },
            output: None,
        });
    }
}

/// What an executor says of an attempt of another kind than its own.
pub fn wrong_kind(executor: &str, kind: &TaskKind) -> String {
    format!(
        "the {executor} executor cannot run a `{}` task",
        kind.type_name()
    )
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

/// Every executor, one per task kind that runs outside the loop: where a new kind's
/// executor is registered (`type: backfill` is run by the loop itself).
pub struct Executors {
    pub noop: noop::NoopExecutor,
    pub command: Arc<command::CommandExecutor>,
    pub spark: spark::SparkExecutor,
    pub wasm: wasm::WasmExecutor,
    pub clickhouse: clickhouse::ClickhouseExecutor,
    pub sensor: sensor::SensorExecutor,
}

impl Executors {
    pub fn new(
        runtime: tokio::runtime::Handle,
        dags_dir: &std::path::Path,
        connections: &crate::connections::Connections,
        task_env: task_env::TaskEnv,
        wasm: wasm::WasmExecutor,
        side_effects: crate::ha::SideEffects,
    ) -> Executors {
        let command = Arc::new(command::CommandExecutor::new(runtime.clone(), task_env));
        Executors {
            noop: noop::NoopExecutor,
            spark: spark::SparkExecutor::new(
                Arc::clone(&command),
                dags_dir.to_path_buf(),
                runtime.clone(),
                connections.clone(),
                side_effects.clone(),
            ),
            command,
            clickhouse: clickhouse::ClickhouseExecutor::new(
                runtime.clone(),
                connections.clone(),
                side_effects,
            ),
            sensor: sensor::SensorExecutor::new(runtime, connections.clone()),
            wasm,
        }
    }

    /// Starts an attempt on the executor of its kind.
    pub fn start(&self, attempt: Attempt, reporter: Reporter) {
        match &attempt.kind {
            TaskKind::Noop(_) => self.noop.start(attempt, reporter),
            TaskKind::Command(_) => self.command.start(attempt, reporter),
            TaskKind::Wasm(_) => self.wasm.start(attempt, reporter),
            TaskKind::Spark(_) => self.spark.start(attempt, reporter),
            TaskKind::Clickhouse(_) => self.clickhouse.start(attempt, reporter),
            TaskKind::Sensor(_) => self.sensor.start(attempt, reporter),
            TaskKind::Backfill(_) => reporter.send(Report::Finished {
                outcome: Outcome::Failed {
                    retryable: false,
                    reason: "`backfill` tasks are run by the scheduler's loop, not an executor"
                        .into(),
                },
                output: None,
            }),
        }
    }

    /// Stops an attempt, whichever executor runs it (the others do not know the key).
    pub fn cancel(&self, idempotency_key: &str) {
        self.command.cancel(idempotency_key);
        self.spark.cancel(idempotency_key);
        self.wasm.cancel(idempotency_key);
        self.clickhouse.cancel(idempotency_key);
        self.sensor.cancel(idempotency_key);
    }

    /// Whether a kind's attempts run outside this process (an EMR step) and so survive it.
    pub fn runs_remotely(&self, kind: &TaskKind) -> bool {
        self.spark.runs_remotely(kind)
    }
}
