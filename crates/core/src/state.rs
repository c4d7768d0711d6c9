//! Task-instance and run states.

use serde::{Deserialize, Serialize};

/// The life of one task instance (a task in one run).
///
/// `none → scheduled → running → success | failed | up_for_retry`, with
/// `up_for_retry → scheduled` when the retry is due, and `upstream_failed`/`skipped`
/// decided from upstream states. `deferred` waits on a gate, holding no slot. Every allowed
/// move is in [`TASK_TRANSITIONS`].
///
/// There is no `queued`: a granted attempt is handed to its executor right after the flush
/// that makes it durable, so no executor queue sits between `scheduled` and `running` (an EMR
/// step pending on its cluster is `running`: Sluice's part is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for upstream tasks.
    None,
    /// Upstreams allow it; waiting for a slot.
    Scheduled,
    /// A slot was granted and the attempt handed to its executor.
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
    pub const ALL: [TaskState; 9] = [
        TaskState::None,
        TaskState::Scheduled,
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
        self == TaskState::Running
    }

    pub fn is_failure(self) -> bool {
        matches!(self, TaskState::Failed | TaskState::UpstreamFailed)
    }

    pub fn name(self) -> &'static str {
        match self {
            TaskState::None => "none",
            TaskState::Scheduled => "scheduled",
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

/// What moves a run's states: the methods of `RunState` that make changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Upstreams, the gate, `depends_on_past` and due retries (`RunState::evaluate`).
    Evaluate,
    /// The gate stayed closed past its timeout (`RunState::gate_timed_out`).
    GateTimeout,
    /// A slot was granted (`RunState::start`).
    Start,
    /// An attempt ended (`RunState::finish`).
    Finish,
    /// An operator cleared task instances (`RunState::clear`).
    Clear,
    /// An operator set a task instance's outcome (`RunState::mark`).
    Mark,
    /// Every task finished, or one was reset (`RunState::settle`, after the others).
    Settle,
}

use TaskState as T;

/// Every move a task instance may make: (cause, from any of, to). `RunState` checks each
/// change against it; the state diagram in ARCHITECTURE.md is this table.
pub const TASK_TRANSITIONS: &[(Cause, &[TaskState], TaskState)] = &[
    (Cause::Evaluate, &[T::None, T::Deferred], T::Scheduled),
    (Cause::Evaluate, &[T::None], T::Deferred),
    (Cause::Evaluate, &[T::None, T::Deferred], T::Skipped),
    (Cause::Evaluate, &[T::None, T::Deferred], T::UpstreamFailed),
    (Cause::Evaluate, &[T::UpForRetry], T::Scheduled),
    (Cause::GateTimeout, &[T::Deferred], T::Failed),
    (Cause::Start, &[T::Scheduled], T::Running),
    (Cause::Finish, &[T::Running], T::Success),
    (Cause::Finish, &[T::Running], T::UpForRetry),
    (Cause::Finish, &[T::Running], T::Failed),
    (Cause::Clear, &TaskState::ALL, T::None),
    (Cause::Mark, &TaskState::ALL, T::Success),
    (Cause::Mark, &TaskState::ALL, T::Failed),
];

/// Every move a run may make: (cause, from any of, to).
pub const RUN_TRANSITIONS: &[(Cause, &[RunStatus], RunStatus)] = &[
    (Cause::Evaluate, &[RunStatus::Queued], RunStatus::Running),
    // A mark can turn a finished run's outcome over, so settling starts from any status.
    (Cause::Settle, &RunStatus::ALL, RunStatus::Success),
    (Cause::Settle, &RunStatus::ALL, RunStatus::Failed),
    (
        Cause::Settle,
        &[RunStatus::Success, RunStatus::Failed],
        RunStatus::Running,
    ),
    (
        Cause::Clear,
        &[RunStatus::Success, RunStatus::Failed],
        RunStatus::Running,
    ),
];

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Evaluate => "evaluate",
            Cause::GateTimeout => "gate timeout",
            Cause::Start => "start",
            Cause::Finish => "finish",
            Cause::Clear => "clear",
            Cause::Mark => "mark",
            Cause::Settle => "settle",
        }
    }
}

/// The transition tables as text, one line a move (`task: none | deferred → scheduled
/// (evaluate)`): ARCHITECTURE.md's state diagram, held to the code by a test.
pub fn transition_lines() -> Vec<String> {
    fn from_text<S: Copy + PartialEq + std::fmt::Display>(from: &[S], all: &[S]) -> String {
        if from.len() == all.len() && all.iter().all(|s| from.contains(s)) {
            return "any".into();
        }
        from.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    }
    let tasks = TASK_TRANSITIONS.iter().map(|(cause, from, to)| {
        format!(
            "task: {} → {to} ({})",
            from_text(from, &TaskState::ALL),
            cause.name()
        )
    });
    let runs = RUN_TRANSITIONS.iter().map(|(cause, from, to)| {
        format!(
            "run: {} → {to} ({})",
            from_text(from, &RunStatus::ALL),
            cause.name()
        )
    });
    tasks.chain(runs).collect()
}

impl TaskState {
    /// Whether `cause` may move a task instance from `self` to `to`.
    pub fn may_move(self, cause: Cause, to: TaskState) -> bool {
        TASK_TRANSITIONS
            .iter()
            .any(|(c, from, target)| *c == cause && *target == to && from.contains(&self))
    }
}

impl RunStatus {
    /// Whether `cause` may move a run from `self` to `to`.
    pub fn may_move(self, cause: Cause, to: RunStatus) -> bool {
        RUN_TRANSITIONS
            .iter()
            .any(|(c, from, target)| *c == cause && *target == to && from.contains(&self))
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
    pub const ALL: [RunStatus; 4] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Success,
        RunStatus::Failed,
    ];

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
        RunStatus::ALL.into_iter().find(|s| s.name() == name)
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
