//! The scheduling rules, as pure functions: no I/O, no clock reads, no tokio, no sled.
//!
//! Given the state of a run and an event (a task finished, a timer fired, an operator
//! cleared a task) the core decides the next state and which tasks may start. The
//! scheduler shell (`crate::scheduler`) persists each change before acting on it.
//!
//! - `plan`: a DAG compiled for scheduling (task indices, upstream/downstream lists).
//! - `state`: task and run states.
//! - `trigger`: trigger rules and `depends_on_past`.
//! - `retry`: retry delays and the retry-or-fail decision (SLA deadline rule).
//! - `run`: the run state machine.
//! - `admission`: concurrency limits (`max_active_tasks`, pools) across runs.
//! - `intervals`: which scheduled runs to create (catchup, start/end).
//! - `lag`: Kafka consumer lag over a window, with Burrow's rules (for readiness gates).
//! - `gate`: event-time watermark and the open/closed/timed-out decision of a gate.
//! - `sla`: when a run's processing-latency warning and breach are due.

pub mod admission;
pub mod gate;
pub mod intervals;
pub mod lag;
pub mod plan;
pub mod retry;
pub mod run;
pub mod sla;
pub mod state;
pub mod time_lag;
pub mod trigger;

pub use admission::Admission;
pub use plan::{DagPlan, TaskPlan};
pub use run::{Change, Outcome, RunState};
pub use state::{Cause, RunKind, RunStatus, TaskState, transition_lines};

#[cfg(test)]
mod tests;
