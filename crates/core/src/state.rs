//! Task-instance and run states.

use serde::{Deserialize, Serialize};

/// The life of one task instance (a task in one run).
///
/// `none → scheduled → queued → running → success | failed | up_for_retry`, with
/// `up_for_retry → scheduled` when the retry is due, and `upstream_failed`/`skipped`
/// decided from upstream states. `deferred` waits on a gate, holding no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for upstream tasks.
    None,
    /// Upstreams allow it; waiting for a slot.
    Scheduled,
    /// A slot was granted; handed to the executor.
    Queued,
    Running,
    Success,
    Failed,
    UpForRetry,
    UpstreamFailed,
    Skipped,
    /// Waiting on the DAG's gate (data readiness), holding no slot.
    Deferred,
}

impl TaskState {
    pub const ALL: [TaskState; 10] = [
        TaskState::None,
        TaskState::Scheduled,
        TaskState::Queued,
        TaskState::Running,
        TaskState::Success,
        TaskState::Failed,
        TaskState::UpForRetry,
        TaskState::UpstreamFailed,
        TaskState::Skipped,
        TaskState::Deferred,
    ];

    /// No further transition without an operator (clear/mark).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped
        )
    }

    /// Holds an executor slot.
    pub fn holds_slot(self) -> bool {
        matches!(self, TaskState::Queued | TaskState::Running)
    }

    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::UpstreamFailed)
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
            TaskState::Queued => "queued",
            TaskState::Running => "running",
            TaskState::Success => "success",
            TaskState::Failed => "failed",
            TaskState::UpForRetry => "up_for_retry",
            TaskState::UpstreamFailed => "upstream_failed",
            TaskState::Skipped => "skipped",
            TaskState::Deferred => "deferred",
        }
    }

    pub fn parse(name: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The state of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Success,
    Failed,
}

impl RunStatus {
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Success | RunStatus::Failed)
    }

    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Success => "success",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(name: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Success,
            RunStatus::Failed,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How a run came to be; the prefix of its run id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Scheduled,
    Manual,
    Backfill,
}

impl RunKind {
    pub fn prefix(self) -> &'static str {
        match self {
            RunKind::Scheduled => "scheduled",
            RunKind::Manual => "manual",
            RunKind::Backfill => "backfill",
        }
    }

    /// `scheduled__2025-09-01T00:00:00Z`
    pub fn run_id(self, logical_date: chrono::DateTime<chrono::Utc>) -> String {
        format!(
            "{}__{}",
            self.prefix(),
            sluice_model::spec::instant::format_instant(logical_date)
        )
    }
}
